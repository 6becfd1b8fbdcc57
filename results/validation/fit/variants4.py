"""Issue 17, fourth pass: variants of the GEMM model (results/validation/issue17.md, fourth pass).
The shipped model (wave2.py, as src/hw/tiles.rs: operand reuse rh = 8, tile overhead, stream-K)
plus switches; the curves are refitted for each variant on every GEMM row of each device, then the
cross-check (each device's fit on the other's rows, operand bandwidth scaled by the BF16 peak).
Prints each device's (rows, median %, p90 %, max %) in sample and with the other's fit ("x"),
and the m = 512 -> 520 step test's model ratio (measured x1.483; within 15%: >= x1.261).
Switches (key=JSON value):
  x     what the compute curve is a function of: "F" (GEMM FLOPs, shipped), "wave" (the useful
        FLOPs of one wave: F / waves of the candidate), "tile" (one tile's FLOPs times the SMs)
  k0    k-steps of prologue + epilogue a tile pays beside its k/tk main-loop steps (tk = 64
        elements on H100, 32 on A100): rate x kit/(kit + k0), normalised at k = 4096; 0 = off
  one   the library runs one wave of the largest tile when it fits in one wave, and else, when
        the least-time candidate has at most `one` waves, the largest tile with one wave (0 = off)
  onecb the `one` rule only when the least-time candidate is slower than the DRAM time (the
        product is compute-bound; a memory-bound one keeps its small tiles)
  fixdram the stream-K fixup (every SM's tile of fp32 partials written and read back, S*tm*tn*8
        bytes) at DRAM bandwidth instead of the operand bandwidth (shipped False)
  pm    the GEMM's time from its waves' time tw and its DRAM time tm as (tw^p + tm^p)^(1/p)
        (0: max, shipped): DRAM streaming and arithmetic overlap imperfectly near the ridge
  pf    the same between a wave's arithmetic and its operand feed (0: max, shipped)
  rh    operand reuse at half rate (elements; shipped 8), te tile overhead (s; shipped 1e-6)
  bw    [h100, a100] operand bandwidth in B/s (shipped 9e12, 7e12)
  kmin  split-K only when k >= kmin (shipped: any k when the smallest tile leaves SMs idle)
  boost per-SM arithmetic rate of a partial wave of r of the S SMs: x (1 + (boost-1)(1 - r/S))
        (fewer SMs busy, a clock below the power limit); 1 = off; a list [h100, a100] per device
  bmode "lin" (as above) or "cube": x min(boost, (S/r)^(1/3)) (dynamic power ~ f^3 per busy SM
        held at the power limit, the clock capped at boost times the full-wave clock)
  pw    a partial wave's feed shared by r SMs (shipped, True) or priced like a full wave (False)
  skmin full waves before the stream-K hybrid is a candidate (shipped 2)
  skmax most full waves with the stream-K hybrid (0: no limit, shipped); [h100, a100] per device
  skeff the stream-K part (the last full wave and the partial one, split over the SMs) runs at
        this fraction of the data-parallel rate (fixup traffic, waits on the partial sums); 1 = off
Usage: python3 results/validation/fit/variants4.py x='"wave"' k0=4   (about 30 s)"""
import sys, os, json
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import curve
from gemm import DEV, TILES, SPLITS, cdiv, reuse, main
OPT = dict(x="F", k0=0.0, one=0, kmin=0, boost=1.0, pw=True, skmin=2, skeff=1.0, bmode="lin", skmax=0, onecb=False, fixdram=False, pm=0, pf=0, rh=None, te=None, bw=None)
TK = {'h100': 64, 'a100': 32}
def cands(m, n, k, b, S, dev):
    """Per candidate: (flops at the reuse-scaled rate, operand bytes, full waves, rest, stream-K
    area, curve abscissa, k-step factor, tile area, split)."""
    rh = DEV[dev]['rh']; out = []
    skinny = b * cdiv(m, 16) * cdiv(n, 128) < S
    most = max(reuse(a, c, rh) for a, c in TILES)
    F = 2 * m * n * k * b
    for tm, tn in TILES:
        eff = reuse(tm, tn, rh) / most
        for s in SPLITS:
            if s > 1 and (not skinny or s > k or k < OPT['kmin']): continue
            kt = cdiv(k, s); T = b * cdiv(m, tm) * cdiv(n, tn) * s
            fl = 2 * tm * tn * kt / eff; by = (tm + tn) * kt * 2 + (tm * tn * 8 if s > 1 else 0)
            w, r = divmod(T, S)
            x = {'F': F, 'wave': F / cdiv(T, S), 'tile': 2 * tm * tn * kt * S}[OPT['x']]
            kf = 1.0
            if OPT['k0'] > 0:
                kit = kt / TK[dev]; ref = 4096 / TK[dev]
                kf = (kit / (kit + OPT['k0'])) / (ref / (ref + OPT['k0']))
            out.append((fl, by, w, r, tm * tn if s == 1 else 0, x, kf, tm * tn, s))
    return out
def boost(dev):
    b = OPT['boost']; return b[0 if dev == 'h100' else 1] if isinstance(b, list) else b
DRAM = [1.0]
def smax(a, b, p):
    return max(a, b) if not p else (a ** p + b ** p) ** (1 / p)
def one_time(c, rate, S, BL2, te, sk, bst=1.0):
    fl, by, w, r, area, x, kf, a2, s = c
    rate = rate * kf
    pf = OPT['pf']
    full = smax(fl / rate, S * by / BL2, pf) + te
    t = w * full
    if r:
        pr = rate * ((1 + (bst - 1) * (1 - r / S)) if OPT['bmode'] == 'lin' else min(bst, (S / r) ** (1 / 3)))
        t += smax(fl / pr, (r if OPT['pw'] else S) * by / BL2, pf) + te
    if sk and area and r and w >= OPT['skmin'] and (not SKMAX[0] or w <= SKMAX[0]):
        part = smax((S + r) * fl / (S * rate), (S + r) * by / BL2, pf) / OPT['skeff']
        fix = S * area * 8 / (DRAM[0] if OPT['fixdram'] else BL2)
        t = min(t, (w - 1) * full + part + 2 * te + fix)
    return t
SKMAX = [0]
def tw(c, ecf, peak_sm, S, BL2, te, sk, bst=1.0, mem=0.0):
    ts = [one_time(x, peak_sm * ecf(x[5]), S, BL2, te, sk, bst) for x in c]
    i = min(range(len(c)), key=ts.__getitem__)
    if OPT['one'] and (not OPT['onecb'] or ts[i] > mem):
        ones = [j for j in range(len(c)) if c[j][8] == 1 and c[j][2] + (1 if c[j][3] else 0) == 1]
        if ones:
            big = max(ones, key=lambda j: (c[j][7], -ts[j]))
            best_w = c[i][2] + (1 if c[i][3] else 0)
            if c[big][7] == max(a for *_, a, _ in c) or best_w <= OPT['one']:
                return ts[big]
    return ts[i]
def evalp(pre, ec, em, dev, BL2):
    x = OPT['skmax']; SKMAX[0] = x[0 if dev == 'h100' else 1] if isinstance(x, list) else x
    DRAM[0] = DEV[dev]['BW']
    d = DEV[dev]; ecf = curve(ec); emf = curve(em); S = d['S']; res = []
    for F, B, c, s, ov, lab in pre:
        mem = B / (d['BW'] * emf(B))
        p = smax(tw(c, ecf, d['P'] / S, S, BL2, d['te'], d['sk'], BST.get(dev, boost(dev)), mem), mem, OPT['pm']) + ov
        res.append((p, s, lab))
    return res
BST = {}  # per device boost override (the cross-check: the fitted device's boost)
def on_cross(dev, oth):
    if dev: BST[dev] = boost(oth)
    else: BST.clear()
if __name__ == '__main__':
    main(OPT, evalp, cands, on_cross=on_cross)
