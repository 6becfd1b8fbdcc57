#!/bin/sh
# Regenerates the variants study, results/variants/ (README.md there says what it shows):
#   sh results/variants/run.sh        # from the repository root; builds dyad in release if needed
# DYAD=path/to/dyad picks another binary. Needs python3 (standard library only). About 10 s.
#
# 1. One serving sweep per model and system (MODEL/SYSTEM/sweep.toml): the plain model and each
#    variant overlay of models/, on one H100 (Llama-3-8B) or two (Mixtral-8x7B, TP 2), all-xpu,
#    and on as many Duplex devices under the duplex policy.
# 2. One sweep per model and system over MatryoshkaKV's budget (budget/MODEL-SYSTEM/sweep.toml,
#    a `model.kv_budget` axis), and on Mixtral over MoE++'s τ (moepp/MODEL-SYSTEM/sweep.toml).
# 3. One decode iteration per model, variant and system (`dyad run --format json`, batch 64,
#    KV length 4096; not kept) for the time each unit spends on each class of op, and one prefill
#    of a 4,096-token prompt for the attention FLOPs; MoE++'s expert time at each τ.
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
        dirs="$out/$m/$s $out/budget/$m-$s"
        [ "$m" = mixtral-8x7b ] && dirs="$dirs $out/moepp/$m-$s"
        for dir in $dirs; do
            rm -f "$dir"/points.jsonl "$dir"/points.csv "$dir"/pareto.md "$dir"/*.svg
            "$DYAD" sweep "$dir/sweep.toml" --out "$dir" --quiet >/dev/null
        done
    done
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
variants="plain matryoshka finercut masformer delta indexer skip-8"
moe="moepp top-p"
for m in llama-3-8b mixtral-8x7b; do
    tp=1 vs=$variants
    [ "$m" = mixtral-8x7b ] && tp=2 vs="$variants $moe"
    for v in $vs; do
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
# MoE++ at each τ of its Table 3 (and the vanilla model): the experts' time in a compute-bound
# prefill (8 prompts of 4,096 tokens) and in decode (batch 256, KV 4,096: its cache does not fit
# two devices beside the weights, --allow-oversize; the time is what is used), on both systems.
for tau in vanilla 0.1 0.25 0.5 0.75 1.0; do
    file=mixtral-8x7b
    if [ "$tau" != vanilla ]; then
        file=$tmp/moepp-$tau.toml
        printf 'extends = "%s"\nmoe_tau = %s\n' "$PWD/$out/models/mixtral-8x7b-moepp.toml" \
            "$tau" >"$file"
    fi
    for s in h100 duplex; do
        policy=all-xpu
        [ "$s" = duplex ] && policy=duplex
        "$DYAD" run --model "$file" --arch "arch/$s.toml" --policy "$policy" --tp 2 --batch 256 \
            --allow-oversize \
            --kv-len 4096 --format json --out "$tmp/moepp-$tau-$s.json" >/dev/null
        "$DYAD" run --model "$file" --arch "arch/$s.toml" --policy "$policy" --tp 2 \
            --phase prefill --batch 8 --prompt-len 4096 --format json \
            --out "$tmp/moepp-$tau-$s-prefill.json" >/dev/null
    done
done
"$DYAD" run --model llama-3-70b --tp 4 --batch 1 --kv-len 4096 --format json \
    --out "$tmp/70b-plain.json" >/dev/null
"$DYAD" run --model workloads/models/variants/llama-3-70b-finercut.toml --tp 4 --batch 1 \
    --kv-len 4096 --format json --out "$tmp/70b-finercut.json" >/dev/null
python3 "$out/summary.py" "$out" "$tmp" "$variants" "$moe"
