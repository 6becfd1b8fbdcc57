"""Writes results/variants/summary.md from the study's sweeps and per-iteration JSON
(called by results/variants/run.sh: summary.py OUT TMP "VARIANTS")."""
import csv
import json
import sys

out, tmp, variants, moe = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
per_model = {"llama-3-8b": variants, "mixtral-8x7b": variants + moe}
models = {"llama-3-8b": "Llama-3-8B, 1 device (TP 1), bf16",
          "mixtral-8x7b": "Mixtral-8x7B, 2 devices (TP 2), bf16"}
systems = {"h100": "GPU", "duplex": "Duplex"}
names = {"plain": "plain", "matryoshka": "MatryoshkaKV 37.5%", "finercut": "FinerCut 8/32 attn",
         "masformer": "MASFormer 4 full + w 1024", "delta": "DELTA top 2048 (p16)",
         "indexer": "DSA indexer top 2048", "skip-8": "skip 8/32 layers",
         "moepp": "MoE++ τ 0.75 (+4 ZC experts)", "top-p": "top-p 0.4 (1.76 experts)"}


def points(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def variant_of(value):
    for v in variants + moe:
        if value.endswith(f"-{v}.toml"):
            return v
    return "plain"


def run(m, v, s):
    return json.load(open(f"{tmp}/{m}-{v}-{s}.json"))


def category(op):
    n = op["name"]
    if n in ("token_score", "index_q_proj", "index_k_proj"):
        return "select"
    if op["class"] == "attention":
        return "attention"
    if n.startswith("expert_") or n in ("gate_up_proj", "down_proj", "act", "router", "topk",
                                         "moe_combine", "shared_expert"):
        return "ffn"
    if n in ("qkv_proj", "o_proj", "qk_rank_proj"):
        return "attn proj"
    return "other"


def times(d):
    """Op time by (category, unit) of one iteration, and in all."""
    t = {}
    for o in d["ops"]:
        k = (category(o), o["unit"])
        t[k] = t.get(k, 0.0) + o["time_s"]
    return t, sum(t.values())


w = ["# Variants study: tables\n",
     "Written by `sh results/variants/run.sh`; README.md says what they show. Serving: closed "
     "loop of 128 requests in flight, 256 in all, 4,096-token prompts, 1,024 output tokens, "
     "uniform routing, bf16. GPU: H100 (arch/h100.toml), all-xpu; Duplex: arch/duplex.toml, "
     "duplex policy. tok/s: output tokens per second of the system; TBT: median time between "
     "tokens; J/tok: all-in energy per output token (dynamic + static); KV cap: tokens the KV "
     "cache holds; batch: mean sequences per iteration (at most 128); PIM: share of op time on "
     "Logic-PIM.\n"]
for m, title in models.items():
    rows = {}
    for s in systems:
        for r in points(f"{out}/{m}/{s}/points.csv"):
            rows[(variant_of(r["model"]), s)] = r
    w.append(f"\n## Serving: {title}\n")
    w.append("| variant | system | tok/s | vs plain | Duplex/GPU | TBT p50 (ms) | J/tok (mJ) "
             "| KV cap (k tokens) | batch | PIM |")
    w.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for v in per_model[m]:
        for s, sn in systems.items():
            r = rows[(v, s)]
            if r["error"]:
                w.append(f"| {names[v]} | {sn} | failed: {r['error'][:60]} | | | | | | | |")
                continue
            t = float(r["output_tokens_per_s"])
            plain = float(rows[("plain", s)]["output_tokens_per_s"])
            gpu = float(rows[(v, "h100")]["output_tokens_per_s"])
            w.append(f"| {names[v]} | {sn} | {t:.0f} | {t / plain:.2f}x | {t / gpu:.2f}x "
                     f"| {1e3 * float(r['tbt_s.p50']):.1f} "
                     f"| {1e3 * float(r['energy_per_output_token_j']):.0f} "
                     f"| {float(r['kv_capacity_tokens']) / 1e3:.0f} "
                     f"| {float(r['mean_batch']):.0f} | {100 * float(r['pim_time_share']):.0f}% |")

    w.append(f"\n### One decode iteration: {title}, batch 64, KV length 4096\n")
    w.append("Iteration: the sum of op times on one device (no xPU/PIM overlap). attention: the "
             "attention ops (with the indexer's or DELTA's scoring, `select`, apart); "
             "attn proj: QKV, output and MatryoshkaKV's key projection; ffn: dense FFN or "
             "experts with router. Duplex columns: the share of the iteration's op time by class "
             "and unit. attn adv.: GPU attention time over Duplex attention time (PIM's advantage "
             "on attention). KV/token: KV bytes per token per device.\n")
    w.append("| variant | GPU (ms) | Duplex (ms) | Duplex speed-up | attn adv. | KV/token (KiB) "
             "| Duplex: attention | select | attn proj | ffn | other |")
    w.append("|---|---:|---:|---:|---:|---:|---|---|---|---|---|")
    for v in per_model[m]:
        g, gt = times(run(m, v, "h100"))
        d = run(m, v, "duplex")
        dd, dt = times(d)
        att = lambda t: sum(x for (c, _), x in t.items() if c in ("attention", "select"))
        kv = d["memory"]["kv_bytes"] / (64 * 4096) / 1024

        def share(c):
            parts = [(u, x) for (cc, u), x in dd.items() if cc == c and x > 0]
            if not parts:
                return "–"
            return " + ".join(f"{100 * x / dt:.0f}% {u}" for u, x in sorted(parts))
        w.append(f"| {names[v]} | {1e3 * gt:.2f} | {1e3 * dt:.2f} | {gt / dt:.2f}x "
                 f"| {att(g) / max(att(dd), 1e-30):.2f}x | {kv:.0f} | {share('attention')} "
                 f"| {share('select')} | {share('attn proj')} | {share('ffn')} "
                 f"| {share('other')} |")

w.append("\n## MatryoshkaKV budget (serving)\n")
w.append("| model | budget | KV cap (k tokens) | batch GPU | batch Duplex | tok/s GPU | tok/s Duplex "
         "| Duplex/GPU | PIM |")
w.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for m in models:
    g = {r["model.kv_budget"]: r for r in points(f"{out}/budget/{m}-h100/points.csv")}
    d = {r["model.kv_budget"]: r for r in points(f"{out}/budget/{m}-duplex/points.csv")}
    for b in sorted(g, key=float):
        tg, td = float(g[b]["output_tokens_per_s"]), float(d[b]["output_tokens_per_s"])
        w.append(f"| {m} | {float(b):.3g} | {float(g[b]['kv_capacity_tokens']) / 1e3:.0f} "
                 f"| {float(g[b]['mean_batch']):.0f} | {float(d[b]['mean_batch']):.0f} "
                 f"| {tg:.0f} | {td:.0f} | {td / tg:.2f}x "
                 f"| {100 * float(d[b]['pim_time_share']):.0f}% |")



def expert_time(d):
    """Time of the expert side (FFN and constant experts) by unit."""
    t = {}
    for o in d["ops"]:
        if o["name"].startswith(("expert_", "const_")):
            t[o["unit"]] = t.get(o["unit"], 0.0) + o["time_s"]
    return t


def moepp():
    """MoE++'s expert time against τ (Table 3's trend) and its serving runs."""
    taus = ["vanilla", "0.1", "0.25", "0.5", "0.75", "1.0"]
    r = {t: (1.0 if t == "vanilla" else float(t) * 8 / (float(t) * 8 + 4)) for t in taus}
    e = {(t, s, ph): expert_time(json.load(open(f"{tmp}/moepp-{t}-{s}{ph}.json")))
         for t in taus for s in systems for ph in ("", "-prefill")}
    tot = lambda x: sum(x.values())
    # The affine fit t = a + b·r through τ = 0.1 and 1.0 of the GPU's prefill, and the largest
    # departure from it of the τ between.
    (r0, t0), (r1, t1) = [(r[t], tot(e[(t, "h100", "-prefill")])) for t in ("0.1", "1.0")]
    b = (t1 - t0) / (r1 - r0)
    a = t0 - b * r0
    dev = max(abs(tot(e[(t, "h100", "-prefill")]) / (a + b * r[t]) - 1) for t in taus[2:5])
    def serving(s):
        rows = {float(p["model.moe_tau"]): p for p in points(f"{out}/moepp/mixtral-8x7b-{s}/points.csv")}
        plain = [p for p in points(f"{out}/mixtral-8x7b/{s}/points.csv") if variant_of(p["model"]) == "plain"]
        return {t: (plain[0] if t == "vanilla" else rows[float(t)]) for t in taus}
    g, d = serving("h100"), serving("duplex")
    w = ["\n## MoE++ on Mixtral-8x7B against τ (Table 3's trend)\n",
         "r: the FFN share of routed slots, τ·8 / (τ·8 + 4) (vanilla: 1, and no zero-computation "
         "experts). Expert time: the FFN and constant experts' op time in one iteration on one "
         "device of TP 2: a prefill of 8 prompts of 4,096 tokens (compute-bound) and a decode "
         "step of batch 256 at KV 4,096; on Duplex the longer of its xPU and PIM parts (they run "
         "at once under co-processing), and PIM's share of the summed expert op time. Serving: "
         "the study's closed loop.\n",
         "| τ | r | prefill experts GPU (ms) | affine fit (ms) | decode experts GPU (ms) "
         "| decode experts Duplex (ms) | on PIM | tok/s GPU | tok/s Duplex |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t in taus:
        dx = e[(t, "duplex", "")]
        sv = lambda rows: f"{float(rows[t]['output_tokens_per_s']):.0f}"
        w.append(f"| {t} | {r[t]:.3f} | {1e3 * tot(e[(t, 'h100', '-prefill')]):.2f} "
                 f"| {1e3 * (a + b * r[t]):.2f} | {1e3 * tot(e[(t, 'h100', '')]):.2f} "
                 f"| {1e3 * max(dx.values()):.2f} "
                 f"| {100 * dx.get('pim', 0.0) / max(tot(dx), 1e-30):.0f}% "
                 f"| {sv(g)} | {sv(d)} |")
    w.append(f"\nAffine fit through τ = 0.1 and 1.0: {1e3 * a:.3f} ms + {1e3 * b:.3f} ms × r; "
             f"τ = 0.25, 0.5, 0.75 depart from it by at most {100 * dev:.2g}%. Paper "
             f"(REFERENCE.md §MoE++): 1.1–2.1x expert forward throughput against a vanilla MoE "
             f"of the same size; dyad's prefill expert time, vanilla over MoE++: "
             + ", ".join(f"{tot(e[('vanilla', 'h100', '-prefill')]) / tot(e[(t, 'h100', '-prefill')]):.2f}x (τ {t})"
                         for t in taus[1:]) + ".")
    return w


w.append("\n## Headline figures against dyad's\n")
w.append("| variant | paper (REFERENCE.md) | dyad |")
w.append("|---|---|---|")
for m in models:
    p = run(m, "plain", "duplex")["memory"]
    mk = run(m, "matryoshka", "duplex")["memory"]
    fc = run(m, "finercut", "duplex")["memory"]
    w.append(f"| MatryoshkaKV ({m}) | over 90% of accuracy at 60% average KV compression "
             f"(§MatryoshkaKV) | KV bytes at a 37.5% budget: {mk['kv_bytes'] / p['kv_bytes']:.3f} "
             f"of plain; weights {mk['weights_bytes'] / p['weights_bytes']:.3f} |")
    w.append(f"| FinerCut 8/32 ({m}) | – | KV {fc['kv_bytes'] / p['kv_bytes'] - 1:+.1%}, weights "
             f"{fc['weights_bytes'] / p['weights_bytes'] - 1:+.1%} |")
a, b = json.load(open(f"{tmp}/70b-plain.json")), json.load(open(f"{tmp}/70b-finercut.json"))
w.append(f"| FinerCut 34/80 (Llama-3-70B) | KV −42.5%, weights −7.3% (§FinerCut) | KV "
         f"{b['memory']['kv_bytes'] / a['memory']['kv_bytes'] - 1:+.1%}, weights "
         f"{b['memory']['weights_bytes'] / a['memory']['weights_bytes'] - 1:+.1%} |")
for m in models:
    pf = lambda v: sum(o["flops"] for o in run(m, v, "prefill")["ops"] if o["class"] == "attention")
    it = lambda v: run(m, v, "prefill")["totals"]["iteration_s"]
    S, L, l, win = 4096, 32, 4, 1024
    closed = (l * S * (S + 1) / 2 + (L - l) * (win * (win + 1) / 2 + (S - win) * win)) / (L * S * (S + 1) / 2)
    w.append(f"| MASFormer ({m}) | up to 75% lower computational cost (1.3B model, §MASFormer) "
             f"| prefill of 4,096: attention FLOPs {pf('masformer') / pf('plain'):.3f} of plain "
             f"(closed form {closed:.3f}); whole prefill time {it('masformer') / it('plain'):.3f} |")
    gt = lambda v, s: times(run(m, v, s))[1]
    w.append(f"| layer skipping 8/32 ({m}) | decode up to L/(L−n) = 1.33x (§Unified layer "
             f"skipping) | decode iteration {gt('plain', 'h100') / gt('skip-8', 'h100'):.3f}x "
             f"(GPU), {gt('plain', 'duplex') / gt('skip-8', 'duplex'):.3f}x (Duplex) |")
    if m == "mixtral-8x7b":
        ef = lambda v: sum(o["flops"] for o in run(m, v, "h100")["ops"] if o["name"].startswith("expert_"))
        w.append(f"| dynamic top-p 0.4 ({m}) | 1.76 experts per token, routed-expert FLOPs x 0.88 "
                 f"against top-2 (§Dynamic top-p routing) | decode batch 64: routed-expert FLOPs "
                 f"{ef('top-p') / ef('plain'):.3f} of top-2; decode iteration "
                 f"{gt('plain', 'h100') / gt('top-p', 'h100'):.3f}x (GPU), "
                 f"{gt('plain', 'duplex') / gt('top-p', 'duplex'):.3f}x (Duplex) |")
    for v, ref in (("delta", "§DELTA: no figure"), ("indexer", "§DeepSeek-V3.2 sparse attention: no speed figure")):
        w.append(f"| {names[v]} ({m}) | {ref} | decode iteration at KV 4096 "
                 f"{gt('plain', 'h100') / gt(v, 'h100'):.3f}x (GPU), "
                 f"{gt('plain', 'duplex') / gt(v, 'duplex'):.3f}x (Duplex) |")
w += moepp()
open(f"{out}/summary.md", "w").write("\n".join(w) + "\n")
