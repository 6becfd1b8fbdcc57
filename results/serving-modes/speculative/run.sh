#!/bin/sh
# Regenerates results/serving-modes/speculative/: self-speculative decoding by early exit
# (workloads/serving/speculative/mixtral-early-exit.toml: Mixtral-8x7B, TP 4, d = 4, exit after
# layer 8 of 32, α = 0.8) against plain serving, on 4 x H100 and on 4 x Duplex (policy duplex),
# at batch 1, 16 and 64; and where the verify and draft passes send their attention and expert
# time (xPU or PIM), summed from each run's trace; and LayerSkip Llama-2-7B at batch 1 against
# DEL's band. Run from the repository root:
#   cargo build --release && sh results/serving-modes/speculative/run.sh
set -eu
D=${DYAD:-target/release/dyad}
R=results/serving-modes/speculative
S=workloads/serving/speculative/mixtral-early-exit.toml
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
for B in 1 16 64; do
    # The batch, and 4 batches of requests; the plain run drops the [speculative] table.
    sed -e "s/^closed = .*/closed = $B/" -e "s/^max_batch = .*/max_batch = $B/" \
        -e "s/^count = .*/count = $((4 * B))/" "$S" > "$T/spec-$B.toml"
    sed '/^\[speculative\]/,$d' "$T/spec-$B.toml" > "$T/plain-$B.toml"
    for sys in h100 duplex; do
        case $sys in h100) F="" ;; duplex) F="--arch duplex --policy duplex" ;; esac
        # Paths in the copies are relative to the scenario's folder.
        cp "$T/spec-$B.toml" "$T/plain-$B.toml" workloads/serving/speculative/
        "$D" run --serving "workloads/serving/speculative/plain-$B.toml" $F --format json \
            > "$T/$sys-plain-$B.json"
        "$D" run --serving "workloads/serving/speculative/spec-$B.toml" $F --format json \
            --trace "$T/$sys-spec-$B.trace.json" --trace-limit all > "$T/$sys-spec-$B.json"
        rm "workloads/serving/speculative/spec-$B.toml" "workloads/serving/speculative/plain-$B.toml"
    done
done
# DEL's band: LayerSkip Llama-2-7B at batch 1 (exit after layer 8, 6 drafts, α = 0.9346 derived
# from LayerSkip's measured 79.45% accepted; REFERENCE.md §Speculative decoding).
L=workloads/serving/speculative/layerskip-llama2-7b.toml
for sys in h100 duplex; do
    case $sys in h100) F="" ;; duplex) F="--arch duplex --policy duplex" ;; esac
    sed '/^\[speculative\]/,$d' "$L" > workloads/serving/speculative/plain-del.toml
    "$D" run --serving workloads/serving/speculative/plain-del.toml $F --format json \
        > "$T/$sys-plain-del.json"
    rm workloads/serving/speculative/plain-del.toml
    "$D" run --serving "$L" $F --format json > "$T/$sys-spec-del.json"
done
python3 - "$T" > "$R/summary.md" <<'PY'
import json, sys, collections
t = sys.argv[1]
print("| system | batch | plain tok/s | speculative tok/s | speedup | tokens/round | draft share of time | verify op time on PIM |")
print("|---|---|---|---|---|---|---|---|")
rows = []
for sys_ in ["h100", "duplex"]:
    for b in [1, 16, 64]:
        p = json.load(open(f"{t}/{sys_}-plain-{b}.json"))["serving"]
        r = json.load(open(f"{t}/{sys_}-spec-{b}.json"))
        s, sp = r["serving"], r["speculative"]
        draft = sp["draft_s"] / (sp["draft_s"] + sp["verify_s"])
        print(f"| {sys_} | {b} | {p['output_tokens_per_s']:.0f} | {s['output_tokens_per_s']:.0f} | "
              f"{s['output_tokens_per_s'] / p['output_tokens_per_s']:.2f}x | {sp['tokens_per_round']:.2f} | "
              f"{100 * draft:.0f}% | {100 * sp['verify_pim_share']:.0f}% |")
        rows.append((sys_, b))
print()
print("Op time of one device by pass and op class, and its share on PIM (from the traces; "
      "the verify pass's first 8 layers run one position per sequence, the rest 5):")
print()
print("| system | batch | pass | attention time | attention on PIM | expert time | experts on PIM |")
print("|---|---|---|---|---|---|---|")
for sys_, b in rows:
    tr = json.load(open(f"{t}/{sys_}-spec-{b}.trace.json"))
    acc = collections.defaultdict(float)
    for e in tr["traceEvents"]:
        a = e.get("args", {})
        if "op" not in a or "unit" not in a or e.get("pid") != 1:
            continue
        op = a["op"]
        phase = "draft" if op.startswith("draft ") else "verify"
        op = op.removeprefix("draft ")
        cls = "attention" if op.startswith("attn_") and "allreduce" not in op and "norm" not in op \
            else "experts" if op.startswith("expert_") else None
        if cls:
            acc[(phase, cls, a["unit"])] += e["dur"]
    for phase in ["draft", "verify"]:
        cells = []
        for cls in ["attention", "experts"]:
            x, p = acc[(phase, cls, "xpu")], acc[(phase, cls, "pim")]
            cells += [f"{(x + p) / 1e3:.1f} ms", f"{100 * p / max(x + p, 1e-12):.0f}%"]
        print(f"| {sys_} | {b} | {phase} | " + " | ".join(cells) + " |")
print()
print("DEL's band (2.16x-2.62x over plain decoding): LayerSkip Llama-2-7B at batch 1, exit after "
      "layer 8, 6 drafts, alpha = 0.9346 (workloads/serving/speculative/layerskip-llama2-7b.toml):")
print()
print("| system | plain tok/s | speculative tok/s | speedup | tokens/round | in DEL's band |")
print("|---|---|---|---|---|---|")
for sys_ in ["h100", "duplex"]:
    p = json.load(open(f"{t}/{sys_}-plain-del.json"))["serving"]
    r = json.load(open(f"{t}/{sys_}-spec-del.json"))
    s, sp = r["serving"], r["speculative"]
    x = s["output_tokens_per_s"] / p["output_tokens_per_s"]
    band = "yes" if 2.16 <= x <= 2.62 else "no"
    print(f"| {sys_} | {p['output_tokens_per_s']:.0f} | {s['output_tokens_per_s']:.0f} | {x:.2f}x | "
          f"{sp['tokens_per_round']:.2f} | {band} |")
PY
