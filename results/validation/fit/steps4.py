"""Issue 17, fourth pass: the measured steps of one series, grouped by the tile count of one tile
shape, against one full wave (what the library does past one wave, read from the data alone).
Usage: python3 results/validation/fit/steps4.py [dev n k tm tn]   (default: h100 4096 11008 256 128)"""
import sys, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import vidur_gemms
from gemm import DEV, cdiv
a = sys.argv[1:] or ['h100', '4096', '11008', '256', '128']
dev, (n, k, tm, tn) = a[0], map(int, a[1:])
S = DEV[dev]['S']; groups = {}
for m, n2, k2, b, s, *_ in vidur_gemms(dev):
    if (n2, k2) == (n, k): groups.setdefault(cdiv(m, tm) * cdiv(n, tn), []).append((m, s))
one = max(groups[t] for t in groups if t <= S)  # the largest count that still fits one wave
ref = sorted(s for _, s in one)[len(one) // 2]
print(f'{dev} n={n} k={k}, {tm}x{tn} tiles, {S} SMs; one full wave (median of m = {one[0][0]}..{one[-1][0]}): {ref*1e6:.0f} us')
print('| m | tiles | waves | measured | / one wave | whole waves |')
print('|---|---:|---:|---:|---:|---:|')
for t in sorted(groups):
    v = sorted(groups[t]); ss = sorted(s for _, s in v)
    if t < S // 2: continue
    print(f'| {v[0][0]}-{v[-1][0]} | {t} | {t/S:.2f} | {ss[0]*1e6:.0f}-{ss[-1]*1e6:.0f} us | {ss[0]/ref:.2f}-{ss[-1]/ref:.2f} | {cdiv(t, S)} |')
