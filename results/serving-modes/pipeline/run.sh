#!/bin/sh
# Regenerates results/serving-modes/pipeline/: Llama-2-70B on the same 4 x H100 as tensor
# parallelism (TP 4), a pipeline of 4 stages (PP 4, tp 1) and TP 2 x PP 2, with 1, 2, 4 and 8
# micro-batches per iteration, on the decode-heavy shipped scenario
# (workloads/serving/llama2-70b-pp4.toml) and on its prefill-heavy side; pipeline.csv, and the
# text reports of the three layouts at their scenario's M = 4 (TP 4 at M = 1, the plain engine).
# A few seconds. Run from the repository root:
#   cargo build --release && sh results/serving-modes/pipeline/run.sh
set -eu
D=${DYAD:-target/release/dyad}
R=results/serving-modes/pipeline
OUT=$R/pipeline.csv
echo "scenario,layout,tp,stages,micro_batches,output_tokens_per_s,total_tokens_per_s,ttft_p50_s,ttft_p99_s,tbt_p50_s,tbt_p99_s,mean_batch,kv_capacity_tokens,bubble_share,stage0_utilization,joules_per_output_token" > "$OUT"
for s in workloads/serving/llama2-70b-pp4.toml $R/llama2-70b-pp4-prefill.toml; do
    for layout in "tp4 4 1" "pp4 1 4" "tp2pp2 2 2"; do
        set -- $layout
        for m in 1 2 4 8; do
            [ "$1" = tp4 ] && [ "$m" != 1 ] && continue
            "$D" run --serving "$s" --tp "$2" --pp "$3" --micro-batches "$m" --format json |
            jq -r --arg s "$(basename "$s" .toml)" --arg l "$1" '
              .serving as $v | (.pipeline // {}) as $p |
              [$s, $l, .inputs.tp, ($p.stages // 1), ($p.micro_batches // 1),
               $v.output_tokens_per_s, $v.total_tokens_per_s, $v.ttft_s.p50, $v.ttft_s.p99,
               $v.tbt_s.p50, $v.tbt_s.p99, $v.mean_batch, $v.kv_capacity_tokens,
               ($p.bubble_share // 0), ($p.per_stage[0].utilization // ""),
               $v.energy_per_output_token_j] | @csv' >> "$OUT"
        done
    done
done
s=workloads/serving/llama2-70b-pp4.toml
"$D" run --serving "$s" --tp 4 --pp 1 --micro-batches 1 > $R/tp4.txt
"$D" run --serving "$s" > $R/pp4-m4.txt
"$D" run --serving "$s" --tp 2 --pp 2 > $R/tp2-pp2-m4.txt
