#!/bin/sh
# Regenerates results/serving-modes/ulysses/ (ulysses.csv, pipeline.csv, pipeline-m*.trace.json):
# one long-prompt prefill (batch 1) under tensor
# parallelism (--tp 8) and DeepSpeed-Ulysses sequence parallelism (--sp 8) on one node of 8
# devices, for prompts of 32k, 64k and 128k tokens. Run from the repository root:
#   cargo build --release && sh results/serving-modes/ulysses/run.sh
# Writes ulysses.csv: prefill time (= TTFT of a lone request on an idle system), the bytes each
# device sends over its links in the whole iteration, and that per layer.
set -eu
D=${DYAD:-target/release/dyad}
R=results/serving-modes/ulysses
OUT=$R/ulysses.csv
echo "arch,policy,model,prompt,mode,prefill_s,link_sent_bytes,link_sent_bytes_per_layer,link_s,weights_gb_per_device" > "$OUT"
for sys in "h100 all-xpu" "duplex duplex"; do
    set -- $sys
    arch=$1 policy=$2
    for model in llama-3-8b llama-2-7b; do
        for n in 32768 65536 131072; do
            for mode in "tp 8" "sp 8"; do
                set -- $mode
                "$D" run --arch "$arch" --policy "$policy" --model "workloads/models/$model.json" \
                    --phase prefill --batch 1 --prompt-len "$n" --$1 "$2" --format json |
                jq -r --arg arch "$arch" --arg policy "$policy" --arg model "$model" \
                    --arg n "$n" --arg mode "$1$2" '
                  def sent: (.shape | capture("(?<b>[0-9]+) B x(?<p>[0-9]+)") |
                    (.b | tonumber) as $b | (.p | tonumber) as $p |
                    if $p <= 1 then 0 else $b * ($p - 1) / $p end);
                  [.ops[] | select(.class == "collective")] as $c |
                  ([$c[] | (sent * (if (.name | test("allreduce")) then 2 else 1 end))] | add) as $s |
                  ([.ops[] | .layer] | map(select(. != null)) | max + 1) as $layers |
                  [$arch, $policy, $model, $n, $mode, .totals.iteration_s, $s, ($s / $layers),
                   ([$c[] | .time_s] | add), (.memory.weights_bytes / 1e9)] | @csv' >> "$OUT"
            done
        done
    done
done

# Pipeline parallelism: Llama-3-70B prefill of 16 prompts of 2048 tokens on 4 stages of TP 2
# (8 H100), against micro-batches; the bubble share and the makespan.
P=$R/pipeline.csv
echo "stages,micro_batches,makespan_s,bubble,bubble_closed_form" > "$P"
for m in 1 2 4 8 16; do
    "$D" run --arch h100 --model workloads/models/llama-3-70b.json --phase prefill --batch 16 \
        --prompt-len 2048 --tp 2 --pp 4 --micro-batches "$m" \
        --pipeline-trace "$R/pipeline-m$m.trace.json" |
    awk -v m="$m" '/^makespan/ { printf "4,%s,%s,%s,%.4f\n", m, $2, $5, 3 / (m + 3) }' >> "$P"
done
