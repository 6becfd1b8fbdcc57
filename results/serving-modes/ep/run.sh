#!/bin/sh
# Regenerates results/serving-modes/ep/ep.csv: DeepSeek-V3 on 8 x H200 at EP 8 under Zipf
# routing (s = 1.2), with neither expert-parallel option, the two-batch overlap, EPLB with 32
# redundant experts (DeepSeek-V3's count, REFERENCE.md §Expert-parallel load balancing), and
# both; on the decode-heavy shipped scenario and on its prefill side. About 15 s. Run from the
# repository root:
#   cargo build --release && sh results/serving-modes/ep/run.sh
set -eu
D=${DYAD:-target/release/dyad}
R=results/serving-modes/ep
OUT=$R/ep.csv
echo "scenario,options,total_tokens_per_s,output_tokens_per_s,ttft_p50_s,tbt_p50_s,kv_capacity_tokens,load_max_mean_plain,load_max_mean,replica_gb_per_device,a2a_s,a2a_hidden_s" > "$OUT"
for s in workloads/serving/deepseek-v3-ep8-zipf.toml $R/deepseek-v3-ep8-zipf-prefill.toml; do
    for o in neither overlap eplb both; do
        case $o in
            neither) flags="" ;;
            overlap) flags="--two-batch-overlap" ;;
            eplb) flags="--redundant-experts 32" ;;
            both) flags="--two-batch-overlap --redundant-experts 32" ;;
        esac
        # shellcheck disable=SC2086
        "$D" run --serving "$s" $flags --format json |
        jq -r --arg s "$(basename "$s" .toml)" --arg o "$o" '
          .serving as $v | (.expert_parallel // {}) as $e |
          [$s, $o, $v.total_tokens_per_s, $v.output_tokens_per_s, $v.ttft_s.p50, $v.tbt_s.p50,
           $v.kv_capacity_tokens, ($e.load_max_mean_plain // ""), ($e.load_max_mean // ""),
           (($e.replica_weight_bytes // 0) / 1e9), ($e.overlap_comm_s // ""),
           ($e.comm_hidden_s // "")] | @csv' >> "$OUT"
    done
done
