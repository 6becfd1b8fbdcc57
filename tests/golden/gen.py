#!/usr/bin/env python3
"""Golden vectors for dyad's reference kernels, from an independent implementation (numpy).

Run from the repository root:  python3 tests/golden/gen.py
Writes one small JSON file per case next to this script. Inputs are drawn from a fixed seed;
outputs are computed in float64 from the inputs as stored (rounded to the case's element type).
Layouts match src/kernels/: row-major; queries [tokens, heads, d]; new keys/values
[tokens, kv_heads, d]; cached keys/values per sequence [kv_heads, ctx, d]; GEMM A [m, k],
B [k, n].
"""
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20240607)


def bf16(x):
    """Round float32 to bfloat16 (nearest, ties to even), returned as float32."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


ROUND = {"f32": lambda x: np.asarray(x, dtype=np.float32),
         "f16": lambda x: np.asarray(x, dtype=np.float16).astype(np.float32),
         "bf16": bf16}


def rand(*shape, dtype="f32", scale=1.0):
    return ROUND[dtype](rng.uniform(-scale, scale, size=shape))


def flat(x):
    return [float(v) for v in np.asarray(x, dtype=np.float64).ravel()]


def write(name, dtype, dims, inputs, outputs):
    doc = {"case": name, "dtype": dtype, "dims": dims,
           "inputs": {k: flat(v) for k, v in inputs.items()},
           "outputs": {k: flat(v) for k, v in outputs.items()}}
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


def gemm(dtype, m, k, n):
    a, b = rand(m, k, dtype=dtype), rand(k, n, dtype=dtype)
    c = a.astype(np.float64) @ b.astype(np.float64)
    write(f"gemm_{dtype}", dtype, {"m": m, "k": k, "n": n}, {"a": a, "b": b}, {"c": c})


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attention(name, heads, kv_heads, d, seqs):
    """seqs: list of (ctx, q_len). Causal: query at position p sees keys 0..=p."""
    tq = sum(q for _, q in seqs)
    q = rand(tq, heads, d)
    kn, vn = rand(tq, kv_heads, d), rand(tq, kv_heads, d)
    kc = [rand(kv_heads, c, d) for c, _ in seqs]
    vc = [rand(kv_heads, c, d) for c, _ in seqs]
    out = np.zeros((tq, heads, d))
    row = 0
    group = heads // kv_heads
    for s, (ctx, ql) in enumerate(seqs):
        for g in range(kv_heads):
            keys = np.concatenate([kc[s][g], kn[row:row + ql, g]]).astype(np.float64)
            vals = np.concatenate([vc[s][g], vn[row:row + ql, g]]).astype(np.float64)
            for h in range(g * group, (g + 1) * group):
                for i in range(ql):
                    p = ctx + i
                    sc = keys[:p + 1] @ q[row + i, h].astype(np.float64) / np.sqrt(d)
                    out[row + i, h] = softmax(sc) @ vals[:p + 1]
        row += ql
    inputs = {"q": q, "k_new": kn, "v_new": vn}
    for s in range(len(seqs)):
        inputs[f"k_cache{s}"] = kc[s]
        inputs[f"v_cache{s}"] = vc[s]
    dims = {"heads": heads, "kv_heads": kv_heads, "head_dim": d,
            "ctx": [c for c, _ in seqs], "q_len": [q for _, q in seqs]}
    write(name, "f32", dims, inputs, {"out": out})


def rmsnorm(rows, h, eps=1e-5):
    x, r, gain = rand(rows, h), rand(rows, h), rand(h)
    s = x.astype(np.float64) + r
    y = s / np.sqrt((s * s).mean(axis=-1, keepdims=True) + eps) * gain
    write("rmsnorm_f32", "f32", {"h": h}, {"x": x, "residual": r, "gain": gain},
          {"y": y, "residual_out": s})


def rope(heads, d, pos, base=10000.0):
    x = rand(len(pos), heads, d).astype(np.float64)
    half = d // 2
    j = np.arange(half)
    theta = np.outer(pos, base ** (-2.0 * j / d))[:, None, :]
    c, s = np.cos(theta), np.sin(theta)
    y = np.concatenate([x[..., :half] * c - x[..., half:] * s,
                        x[..., :half] * s + x[..., half:] * c], axis=-1)
    write("rope_f32", "f32", {"heads": heads, "head_dim": d, "pos": pos, "base": base},
          {"x": x}, {"y": y})


def silu(x):
    return x / (1.0 + np.exp(-x))


def swiglu(t, inner):
    g, u = rand(t, inner, scale=4.0), rand(t, inner)
    write("swiglu_f32", "f32", {"inner": inner}, {"gate": g, "up": u},
          {"y": silu(g.astype(np.float64)) * u})


def softmax_case(rows, n):
    x = rand(rows, n, scale=30.0)
    write("softmax_f32", "f32", {"n": n}, {"x": x}, {"y": softmax(x.astype(np.float64))})


def moe(t, h, inner, experts, top_k):
    """Mixtral routing: softmax over experts, top-k, renormalise; SwiGLU experts; combine."""
    x = rand(t, h)
    router = rand(h, experts)
    gate = rand(experts, h, inner, scale=0.5)
    up = rand(experts, h, inner, scale=0.5)
    down = rand(experts, inner, h, scale=0.5)
    logits = x.astype(np.float64) @ router
    p = softmax(logits)
    ids = np.argsort(-p, axis=-1, kind="stable")[:, :top_k]
    w = np.take_along_axis(p, ids, axis=-1)
    w = w / w.sum(axis=-1, keepdims=True)
    y = np.zeros((t, h))
    for i in range(t):
        for e, wt in zip(ids[i], w[i]):
            xi = x[i].astype(np.float64)
            act = silu(xi @ gate[e]) * (xi @ up[e])
            y[i] += wt * (act @ down[e])
    write("moe_f32", "f32", {"h": h, "inner": inner, "experts": experts, "top_k": top_k},
          {"x": x, "router": router, "gate": gate, "up": up, "down": down},
          {"ids": ids, "weights": w, "y": y})


if __name__ == "__main__":
    gemm("f32", 3, 5, 4)
    gemm("f16", 4, 16, 3)
    gemm("bf16", 4, 16, 3)
    attention("attn_decode_gqa", heads=4, kv_heads=2, d=4, seqs=[(3, 1), (6, 1)])
    attention("attn_prefill_mqa", heads=4, kv_heads=1, d=4, seqs=[(0, 4), (3, 2)])
    attention("attn_prefill_mha", heads=2, kv_heads=2, d=4, seqs=[(2, 3)])
    rmsnorm(3, 8)
    rope(2, 4, [0, 1, 5])
    swiglu(3, 5)
    softmax_case(3, 6)
    moe(t=5, h=4, inner=6, experts=4, top_k=2)
