#!/usr/bin/env bash
# Regenerates the modern-MoE study, results/modern-moe/ (README.md there says what it shows):
#   scripts/modern-moe.sh            # from the repository root; builds dyad in release if needed
# DYAD=path/to/dyad picks another binary. Needs bash and python3 (standard library only).
#
# 1. One sweep per model and system (results/modern-moe/MODEL/SYSTEM/sweep.toml): batch x prompt
#    length, serving runs, each writing points.jsonl, points.csv, pareto.md and its plots there.
# 2. Per-op Op/B and the unit each op runs on: `dyad run --format json` of one decode iteration
#    on Duplex-H200 under the duplex policy, per model and batch (the JSON is not kept).
# 3. summary.md: the tables the README quotes, from the points and the per-op JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/modern-moe
if [[ -z "${DYAD:-}" ]]; then
    cargo build --release --quiet
    DYAD=target/release/dyad
fi
models=(deepseek-v3 qwen3-30b-a3b gpt-oss-120b mixtral-8x7b)
systems=(h200 b200 duplex-h200)

for m in "${models[@]}"; do
    for s in "${systems[@]}"; do
        dir=$out/$m/$s
        rm -f "$dir"/points.jsonl "$dir"/points.csv "$dir"/pareto.md "$dir"/*.svg
        "$DYAD" sweep "$dir/sweep.toml" --out "$dir" --quiet >/dev/null
    done
done
# A sweep draws its fastest point's decode iteration with the whole batch on one device and no
# expert parallelism (src/sweep/iteration.rs builds it at the scenario's TP alone), which is not
# how DeepSeek-V3 is served here (EP 8): its iteration plots would mislead, so none are kept.
rm -f "$out"/deepseek-v3/*/roofline.svg "$out"/deepseek-v3/*/layers.svg

# One decode iteration per model and batch, at a KV length of 4096, on one Duplex-H200 (TP 1).
# DeepSeek-V3 is served with expert parallelism, which `dyad run` does not cost: its attention,
# dense layers and shared expert are taken at the batch of one data-parallel rank (batch / 8),
# its routed experts at the whole batch (under EP 8 each expert sees the tokens routed to it from
# all 8 ranks, batch x 8 / 256), both on one device (--allow-oversize: the time is not used).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
opb() { # model batch tag
    "$DYAD" run --model "$1" --arch arch/duplex-h200.toml --policy duplex --tp 1 --batch "$2" \
        --kv-len 4096 --allow-oversize --format json --out "$tmp/$1-$3.json" >/dev/null
}
for b in 64 256 1024; do
    opb deepseek-v3 $((b / 8)) "b$b-rank"
    opb deepseek-v3 "$b" "b$b-experts"
done
for m in qwen3-30b-a3b gpt-oss-120b mixtral-8x7b; do
    for b in 16 64 256; do opb "$m" "$b" "b$b"; done
done
python3 - "$out" "$tmp" <<'EOF'
import csv, json, sys
out, tmp = sys.argv[1], sys.argv[2]
models = {"deepseek-v3": "DeepSeek-V3, 8 devices (EP 8, attention data-parallel 8), fp8",
          "qwen3-30b-a3b": "Qwen3-30B-A3B, 1 device, bf16",
          "gpt-oss-120b": "gpt-oss-120b, 1 device, bf16 with MXFP4 experts",
          "mixtral-8x7b": "Mixtral-8x7B, 1 device, bf16 (reference)"}
systems = ["h200", "b200", "duplex-h200"]
names = {"h200": "H200", "b200": "B200", "duplex-h200": "Duplex-H200"}
w = []
w.append("# Modern-MoE study: tables\n")
w.append("Written by `scripts/modern-moe.sh`; README.md says what they show. Closed loop, "
         "256 output tokens per request, twice the batch in requests, uniform routing. "
         "tok/s: output tokens per second of the whole system; TBT: median time between "
         "tokens; J/tok: energy per output token, all-in (dynamic + static) and dynamic; "
         "PIM: share of op time on Logic-PIM; mean batch: sequences per iteration (below the batch "
         "where the KV cache is full); all tok/s: prompt and output tokens per second.\n")
for m, title in models.items():
    rows = {}
    for s in systems:
        with open(f"{out}/{m}/{s}/points.csv") as f:
            for r in csv.DictReader(f):
                rows[(s, int(r["batching.max_batch"]), int(r["requests.prompt.fixed"]))] = r
    w.append(f"\n## {title}\n")
    w.append("| batch | prompt | system | tok/s | vs H200 | vs B200 | TBT p50 (ms) "
             "| J/tok all-in (mJ) | J/tok dynamic (mJ) | PIM | mean batch | all tok/s |")
    w.append("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    keys = sorted({(b, L) for (_, b, L) in rows})
    for b, L in keys:
        base = {s: float(rows[(s, b, L)]["output_tokens_per_s"] or "nan") for s in systems}
        for s in systems:
            r = rows[(s, b, L)]
            if r["error"]:
                w.append(f"| {b} | {L} | {names[s]} | failed: {r['error'][:60]} | | | | | | | | |")
                continue
            t = float(r["output_tokens_per_s"])
            w.append(f"| {b} | {L} | {names[s]} | {t:.0f} | {t / base['h200']:.2f}x "
                     f"| {t / base['b200']:.2f}x | {1e3 * float(r['tbt_s.p50']):.1f} "
                     f"| {1e3 * float(r['energy_per_output_token_j']):.0f} "
                     f"| {1e3 * float(r['energy_per_output_token_dynamic_j']):.0f} "
                     f"| {100 * float(r['pim_time_share']):.0f}% "
                     f"| {float(r['mean_batch']):.0f} | {float(r['total_tokens_per_s']):.0f} |")

def ops(path, keep):
    """First instance of each op in the first layer of each kind, Op/B and unit."""
    d = json.load(open(path))
    seen, res = set(), []
    for o in d["ops"]:
        name = "routed expert" if o["name"].startswith("expert_") else o["name"]
        if not keep(name) or name in seen or o["flops"] == 0 or o["bytes"] == 0:
            continue
        seen.add(name)
        units = {p["unit"] for p in d["ops"] if p["layer"] == o["layer"]
                 and (p["name"] == o["name"] or (name == "routed expert"
                                                  and p["name"].startswith("expert_")))}
        res.append((name, o["op_b"], "+".join(sorted(units))))
    return res

w.append("\n## Per-op Op/B on Duplex-H200 (duplex policy), decode, KV length 4096\n")
w.append("Op/B: FLOPs per DRAM byte of the op's first instance; unit: where the duplex policy "
         "puts it (xpu+pim: the layer's routed experts are split between them). Norms, RoPE and "
         "other elementwise ops (Op/B below 3, on PIM) are left out. DeepSeek-V3: attention, "
         "dense GEMMs and shared expert at one data-parallel rank's batch (batch / 8); routed "
         "experts at the whole batch, as expert parallelism gives each expert its tokens.\n")
gemm = lambda n: n not in ("attn_norm", "ffn_norm", "q_a_norm", "kv_a_norm", "rope", "act",
                           "topk", "moe_combine", "shared_add", "final_norm", "qk_norm",
                           "post_attn_norm", "post_ffn_norm", "embedding", "softcap")
for m, batches in [("deepseek-v3", [64, 256, 1024]), ("qwen3-30b-a3b", [16, 64, 256]),
                   ("gpt-oss-120b", [16, 64, 256]), ("mixtral-8x7b", [16, 64, 256])]:
    table = {}
    for b in batches:
        if m == "deepseek-v3":
            r = ops(f"{tmp}/{m}-b{b}-rank.json", lambda n: gemm(n) and n != "routed expert")
            r += ops(f"{tmp}/{m}-b{b}-experts.json", lambda n: n == "routed expert")
        else:
            r = ops(f"{tmp}/{m}-b{b}.json", gemm)
        for name, opb, unit in r:
            table.setdefault(name, {})[b] = (opb, unit)
    w.append(f"\n### {models[m]}\n")
    w.append("| op | " + " | ".join(f"batch {b}" for b in batches) + " |")
    w.append("|---|" + "---:|" * len(batches))
    for name, cells in table.items():
        w.append(f"| {name} | " + " | ".join(
            f"{cells[b][0]:.1f} ({cells[b][1]})" if b in cells else "–" for b in batches) + " |")
open(f"{out}/summary.md", "w").write("\n".join(w) + "\n")
EOF
