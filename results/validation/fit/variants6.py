"""Issue 17, sixth pass: the shipped model (wave2.py) with the weights re-read from DRAM by the
tile raster. A GEMM's weights (B, n x k) that do not fit in L2 are streamed from DRAM once per
band of tile rows that the library rasters together (a swizzle of g tile rows, or more where
a wave spans more rows: a wave of S tiles over Nt tile columns covers S / Nt rows at once and
they share each panel); weights that fit in L2 are read once. The activations (a band's A
panels, g x tm x k) stay in L2 while the band is swept. DRAM bytes per candidate tiling:
A + C + B x max(1, Mt / max(g, S / Nt)); each candidate is then priced as the shipped model
prices the op (its waves and this DRAM stream overlapped with the exponent pm), the least time
taken. Split-K candidates read B once.
Switches (key=JSON value):
  g     [h100, a100] swizzle band in tile rows (0 = off: the shipped model)
  l2    [h100, a100] L2 bytes the weights must fit in to be read once (datasheet 50 and 40 MB)
Usage: python3 results/validation/fit/variants6.py g=[4,2]"""
import sys, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wave2
from common import curve
from gemm import DEV, cdiv, main
OPT = dict(g=[0, 0], l2=[50e6, 40e6], rh=None, te=None, bw=None)
def idx(dev): return 0 if dev == 'h100' else 1
def cands(m, n, k, b, S, dev):
    """wave2.cands, each with the DRAM bytes it adds by re-reading the weights."""
    g, l2 = OPT['g'][idx(dev)], OPT['l2'][idx(dev)]
    out = []
    for c in wave2.cands(m, n, k, b, S, dev):
        tm, tn, s, T = c[5]
        wb = n * k * 2 * b
        extra = 0.0
        if g and s == 1 and wb > l2:
            mt, nt = cdiv(m, tm), cdiv(n, tn)
            extra = wb * (max(1.0, mt / max(g, S / nt)) - 1)
        out.append(c + (extra,))
    return out
def evalp(pre, ec, em, dev, BL2):
    d = DEV[dev]; ecf = curve(ec); emf = curve(em); S = d['S']; pm = d['pm']; res = []
    for F, B, c, s, ov, lab in pre:
        rate = d['P'] / S * ecf(F); bw = d['BW'] * emf(B)
        wave = lambda x: wave2.cand_time(x, rate, S, BL2, d['te'], d['sk'], d['skmin'], d['skeff'])[0]
        best = min((wave(x) ** pm + ((B + x[6]) / bw) ** pm) ** (1 / pm) for x in c)
        res.append((best + ov, s, lab))
    return res
if __name__ == '__main__':
    main(OPT, evalp, cands)
