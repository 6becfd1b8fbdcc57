"""Tiles and waves with the efficiency curve on the arithmetic only, a per-tile overhead, the
stream-K tail and each tile's rate by its operand reuse I = tm*tn/(tm+tn), as I/(I + rh) relative
to the set's tile of most reuse (as src/hw/tiles.rs; rh: xpu.tiling.reuse_half), the waves and the DRAM
stream overlapping as (tw^pm + tm^pm)^(1/pm) (pm: xpu.tiling.overlap; 0: the longer)."""
import sys, os, math
sys.path.insert(0, os.path.dirname(__file__))
from common import curve, stats, vidur_gemms, llmc, setk
from gemm import DEV, TILES, SPLITS, cdiv
def reuse(tm,tn,rh):
    i=tm*tn/(tm+tn); return i/(i+rh)
def cands(m,n,k,b,S,rh=0.0):
    out=[]
    skinny=b*cdiv(m,16)*cdiv(n,128) < S
    most=max(reuse(a,c,rh) for a,c in TILES)
    for tm,tn in TILES:
        eff=reuse(tm,tn,rh)/most
        for s in SPLITS:
            if s>1 and (not skinny or s>k): continue
            kt=cdiv(k,s); T=b*cdiv(m,tm)*cdiv(n,tn)*s
            fl=2*tm*tn*kt/eff; by=(tm+tn)*kt*2+(tm*tn*8 if s>1 else 0)
            w,r=divmod(T,S); out.append((fl,by,w,r,tm*tn if s==1 else 0))
    return out
def prep(dev,rl):
    d=DEV[dev]; out=[]
    for m,n,k,b,s,host,lab in rl:
        F=2*m*n*k*b; B=(k*n+m*k+m*n)*2*b
        out.append((F,B,cands(m,n,k,b,d['S'],d['rh']),s,d['ov']+(d['host'] if host else 0),lab))
    return out
def tw(c,rate,S,BL2,te=0.0,sk=False):
    """Least time over the candidates: whole waves (each pays one tile's overhead te) and, with sk,
    the stream-K hybrid when there are at least two full waves: the last full wave and the partial
    one are split evenly across the SMs (each SM spans up to two tiles: 2 te), plus the fixup (one
    tile of fp32 partials written and read back at one SM's share of the operand bandwidth)."""
    best=None
    for fl,by,w,r,area in c:
        full=max(fl/rate,S*by/BL2)+te
        t=w*full+(max(fl/rate,r*by/BL2)+te if r else 0)
        if sk and area and r and w>=2:
            t=min(t,(w-1)*full+max((S+r)*fl/(S*rate),(S+r)*by/BL2)+2*te+area*8/(BL2/S))
        if best is None or t<best: best=t
    return best
def evalp(pre,ec,em,dev,BL2):
    d=DEV[dev]; ecf=curve(ec); emf=curve(em); S=d['S']; res=[]
    for F,B,c,s,ov,lab in pre:
        a,m=tw(c,d['P']/S*ecf(F),S,BL2,d['te'],d['sk']),B/(d['BW']*emf(B))
        p=(max(a,m) if not d['pm'] else (a**d['pm']+m**d['pm'])**(1/d['pm']))+ov
        res.append((p,s,lab))
    return res
def loss(r): return sum(abs(math.log(p/s)) for p,s,_ in r)/len(r)
def fit(pre,dev,BL2,ec,em,passes=5,hi=(0.93,0.95)):
    best=loss(evalp(pre,ec,em,dev,BL2))
    for it in range(passes):
        for w in (0,1):
            for i in range((len(ec),len(em))[w]):
                for step in (0.1,0.03,0.01):
                    for sg in (1,-1):
                        while True:
                            cur=(ec,em)[w]; old=cur[i][1]; nv=min(hi[w],max(0.02,old+sg*step))
                            if nv==old: break
                            c=setk(cur,i,nv); t=(c,em) if w==0 else (ec,c)
                            l=loss(evalp(pre,t[0],t[1],dev,BL2))
                            if l<best-1e-9: best=l; ec,em=t
                            else: break
    return ec,em,best
if __name__=='__main__':
    dev=sys.argv[1]
    rl=vidur_gemms(dev)+(llmc() if dev=='a100' else [])
    pre=prep(dev,rl)
    for BL2 in [float(x) for x in sys.argv[2:]]:
        ec,em,l=fit(pre,dev,BL2,[[k,0.5] for k in (1e8,1e9,1e10,1e11,1e12,1e13)],[list(x) for x in DEV[dev]['em']])
        r=evalp(pre,ec,em,dev,BL2)
        print(dev,BL2,round(l,4),stats([abs(p-s)/s for p,s,_ in r]),[[x[0],round(x[1],3)] for x in ec],[[x[0],round(x[1],3)] for x in em],flush=True)
