"""Issue 17, fifth pass: variants of the shipped model (variants4.py with pm = 3, the overlap of
the waves and the DRAM stream) plus the fifth pass's switches; the curves refitted per variant on
every GEMM row of each device, then the step test and the cross-check (as variants4.py).
Every variants4.py switch is accepted (skmin, skeff, boost, ...). New switches (key=JSON value):
  tiles   extra tile shapes beside the shipped seven, e.g. [[64,256],[256,64]] or [[128,192]];
          [tm, tn, c]: a cluster of c CTAs (H100) sharing the B panel (see cands); x and k0 are off
  ovl     the overlap's form: "p" ((c^p + m^p)^(1/p), shipped) or "lin" (max + ova * min: a fixed
          fraction of the shorter side not hidden)
  ova     that fraction (ovl = "lin")
  ridge   the overlap exponent by the distance from the ridge: p = pm * (1 + ridge * |ln(c/m)|)
          (0 = off): near the ridge the loads are least hidden, far from it the longer side rules;
          p held in [1, 30]
  gemv    m at or below which a product runs as a GEMV-like kernel (split-K over k, no tiles):
          its time the DRAM stream at gemve of DRAM bandwidth (0 = off)
  gemve   that efficiency (a constant fraction of DRAM bandwidth)
Usage: python3 results/validation/fit/variants5.py skmin=1 skeff=0.88   (about a minute)"""
import sys, os, math
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import variants4 as v4
from common import curve
from gemm import DEV, TILES, main
OPT = v4.OPT
OPT.update(pm=3, tiles=[], ovl="p", ova=0.26, ridge=0.0, gemv=0, gemve=0.8)
def overlap(a, m):
    if OPT['ovl'] == 'lin': return max(a, m) + OPT['ova'] * min(a, m)
    p = OPT['pm']
    if OPT['ridge']: p = min(30.0, max(1.0, p * (1 + OPT['ridge'] * abs(math.log(a / m)))))
    return (a ** p + m ** p) ** (1 / p)
def evalp(pre, ec, em, dev, BL2):
    x = OPT['skmax']; v4.SKMAX[0] = x[0 if dev == 'h100' else 1] if isinstance(x, list) else x
    v4.DRAM[0] = DEV[dev]['BW']
    d = DEV[dev]; ecf = curve(ec); emf = curve(em); S = d['S']; res = []
    for F, B, c, s, ov, lab in pre:
        mem = B / (d['BW'] * emf(B))
        gv = c[-1] == 'gemv'
        if gv: c = c[:-1]
        a = v4.tw(c, ecf, d['P'] / S, S, BL2, d['te'], d['sk'], v4.BST.get(dev, v4.boost(dev)), mem)
        p = overlap(a, mem)
        if gv: p = min(p, B / (d['BW'] * OPT['gemve']))
        res.append((p + ov, s, lab))
    return res
def cands(m, n, k, b, S, dev):
    """variants4.cands with the extra tiles; a tile [tm, tn, c] (H100 only) is a cluster of c
    CTAs along m sharing the B panel by TMA multicast: per SM tm x tn outputs, (tm + tn / c)
    operand elements per k-step (its reuse and feed by those)."""
    rh = DEV[dev]['rh']; out = []
    tiles = [tuple(t) + (1,) for t in TILES] + [tuple(t) + ((1,) if len(t) == 2 else ()) for t in OPT['tiles']]
    if dev != 'h100': tiles = [t for t in tiles if t[2] == 1]
    skinny = b * v4.cdiv(m, 16) * v4.cdiv(n, 128) < S
    ru = lambda tm, tn, c: (lambda i: i / (i + rh))(tm * tn / (tm + tn / c))
    most = max(ru(*t) for t in tiles)
    F = 2 * m * n * k * b
    for tm, tn, cl in tiles:
        eff = ru(tm, tn, cl) / most
        for s in v4.SPLITS:
            if s > 1 and (not skinny or s > k or k < OPT['kmin']): continue
            kt = v4.cdiv(k, s); T = b * v4.cdiv(m, tm) * v4.cdiv(n, tn) * s
            fl = 2 * tm * tn * kt / eff; by = (tm + tn / cl) * kt * 2 + (tm * tn * 8 if s > 1 else 0)
            w, r = divmod(T, S)
            out.append((fl, by, w, r, tm * tn if s == 1 else 0, F, 1.0, tm * tn, s))
    if OPT['gemv'] and m <= OPT['gemv']: out.append('gemv')
    return out
if __name__ == '__main__':
    main(OPT, evalp, cands, on_cross=v4.on_cross)
