#!/bin/sh
# Regenerates the variants study, results/variants/ (README.md there says what it shows):
#   sh results/variants/run.sh        # from the repository root; builds dyad in release if needed
# DYAD=path/to/dyad picks another binary. Needs python3 (standard library only). About 30 s.
#
# 1. One serving sweep per model and system (MODEL/SYSTEM/sweep.toml): the plain model and each
#    variant overlay of models/, on one H100 (Llama-3-8B) or two (Mixtral-8x7B, TP 2), all-xpu,
#    and on as many Duplex devices under the duplex policy.
# 2. One sweep per model and system over MatryoshkaKV's budget (budget/MODEL-SYSTEM/sweep.toml,
#    a `model.kv_budget` axis).
# 3. One decode iteration per model, variant and system (`dyad run --format json`, batch 64,
#    KV length 4096; not kept) for the time each unit spends on each class of op, and one prefill
#    of a 4,096-token prompt for the attention FLOPs.
# 4. summary.md: the tables the README quotes.
set -eu
cd "$(dirname "$0")/../.."
out=results/variants
if [ -z "${DYAD:-}" ]; then
    cargo build --release --quiet
    DYAD=target/release/dyad
fi
for m in llama-3-8b mixtral-8x7b; do
    for s in h100 duplex; do
        for dir in "$out/$m/$s" "$out/budget/$m-$s"; do
            rm -f "$dir"/points.jsonl "$dir"/points.csv "$dir"/pareto.md "$dir"/*.svg
            "$DYAD" sweep "$dir/sweep.toml" --out "$dir" --quiet >/dev/null
        done
    done
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
variants="plain matryoshka finercut masformer delta indexer skip-8"
for m in llama-3-8b mixtral-8x7b; do
    tp=1
    [ "$m" = mixtral-8x7b ] && tp=2
    for v in $variants; do
        file=$out/models/$m-$v.toml
        [ "$v" = plain ] && file=$m
        "$DYAD" run --model "$file" --arch arch/h100.toml --policy all-xpu --tp "$tp" --batch 64 \
            --kv-len 4096 --format json --out "$tmp/$m-$v-h100.json" >/dev/null
        "$DYAD" run --model "$file" --arch arch/duplex.toml --policy duplex --tp "$tp" --batch 64 \
            --kv-len 4096 --format json --out "$tmp/$m-$v-duplex.json" >/dev/null
        "$DYAD" run --model "$file" --arch arch/h100.toml --policy all-xpu --tp "$tp" \
            --phase prefill --batch 1 --prompt-len 4096 --format json \
            --out "$tmp/$m-$v-prefill.json" >/dev/null
    done
done
"$DYAD" run --model llama-3-70b --tp 4 --batch 1 --kv-len 4096 --format json \
    --out "$tmp/70b-plain.json" >/dev/null
"$DYAD" run --model workloads/models/variants/llama-3-70b-finercut.toml --tp 4 --batch 1 \
    --kv-len 4096 --format json --out "$tmp/70b-finercut.json" >/dev/null
python3 "$out/summary.py" "$out" "$tmp" "$variants"
