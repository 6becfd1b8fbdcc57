"""The shipped model (as src/hw/tiles.rs): tiles and waves with the efficiency curve on the
arithmetic only, a per-tile overhead, the stream-K tail (from xpu.tiling.stream_k_from full waves at stream_k_efficiency) and each tile's rate by its operand reuse
I = tm*tn/(tm+tn), as I/(I + rh) relative to the set's tile of most reuse (rh: xpu.tiling.reuse_half),
the waves and the DRAM stream overlapping as (tw^pm + tm^pm)^(1/pm) (pm: xpu.tiling.overlap; 0: the longer).
Usage: python3 results/validation/fit/wave2.py h100 9e12   (a device, operand bandwidths in B/s)"""
import sys, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import curve, errs, rows_of, fit
from gemm import DEV, TILES, SPLITS, cdiv, reuse, prep
def cands(m,n,k,b,S,dev):
    """Per candidate: (flops at the reuse-scaled rate, operand bytes, full waves, rest,
    stream-K area (0: split), tile label)."""
    rh=DEV[dev]['rh']; out=[]
    skinny=b*cdiv(m,16)*cdiv(n,128) < S
    most=max(reuse(a,c,rh) for a,c in TILES)
    for tm,tn in TILES:
        eff=reuse(tm,tn,rh)/most
        for s in SPLITS:
            if s>1 and (not skinny or s>k): continue
            kt=cdiv(k,s); T=b*cdiv(m,tm)*cdiv(n,tn)*s
            fl=2*tm*tn*kt/eff; by=(tm+tn)*kt*2+(tm*tn*8 if s>1 else 0)
            w,r=divmod(T,S); out.append((fl,by,w,r,tm*tn if s==1 else 0,(tm,tn,s,T)))
    return out
def cand_time(c,rate,S,BL2,te=0.0,sk=False,skmin=2,skeff=1.0):
    """One candidate's time: whole waves (each pays one tile's overhead te) and, with sk, the
    stream-K hybrid when there are at least skmin full waves: the last full wave and the partial
    one are split evenly across the SMs at skeff of the data-parallel rate (each SM spans up to two tiles: 2 te), plus the fixup (one
    tile of fp32 partials written and read back at one SM's share of the operand bandwidth).
    Returns (time, whether stream-K, whether the feed bounds a full wave)."""
    fl,by,w,r,area=c[:5]
    full=max(fl/rate,S*by/BL2)+te
    t=w*full+(max(fl/rate,r*by/BL2)+te if r else 0); hyb=False
    if sk and area and r and w>=skmin:
        h=(w-1)*full+max((S+r)*fl/(S*rate),(S+r)*by/BL2)/skeff+2*te+area*8/(BL2/S)
        if h<t: t,hyb=h,True
    return t,hyb,S*by/BL2>fl/rate
def tw(c,rate,S,BL2,te=0.0,sk=False,skmin=2,skeff=1.0):
    """Least time over the candidates."""
    return min(cand_time(x,rate,S,BL2,te,sk,skmin,skeff)[0] for x in c)
def evalp(pre,ec,em,dev,BL2):
    d=DEV[dev]; ecf=curve(ec); emf=curve(em); S=d['S']; res=[]
    for F,B,c,s,ov,lab in pre:
        a,m=tw(c,d['P']/S*ecf(F),S,BL2,d['te'],d['sk'],d['skmin'],d['skeff']),B/(d['BW']*emf(B))
        p=(max(a,m) if not d['pm'] else (a**d['pm']+m**d['pm'])**(1/d['pm']))+ov
        res.append((p,s,lab))
    return res
if __name__=='__main__':
    dev=sys.argv[1]
    pre=prep(dev,rows_of(dev),cands)
    for BL2 in [float(x) for x in sys.argv[2:]]:
        ec,em,l=fit(pre,dev,BL2,[[k,0.5] for k in (1e8,1e9,1e10,1e11,1e12,1e13)],[list(x) for x in DEV[dev]['em']],evalp)
        print(dev,BL2,round(l,4),errs(evalp(pre,ec,em,dev,BL2)),[[x[0],round(x[1],3)] for x in ec],[[x[0],round(x[1],3)] for x in em],flush=True)
