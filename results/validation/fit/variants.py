"""Issue 17, third pass: the variants tried on the GEMM model (results/validation/issue17.md).
wave2's model (as src/hw/tiles.rs) plus switches, the curves refitted for each variant on every
GEMM row of each device, then the cross-check (each device's fit on the other's rows).
Switches (key=JSON value): skmin (full waves before stream-K, 2), h (reuse_half, elements, 0),
l2 (a wave whose A + B panels exceed L2 streams its unique panels from DRAM, false), dram (that
stream's fraction of DRAM bandwidth, 0.9), mc (H100 cluster multicast of the B panel, 1),
bw ([h100, a100] operand bandwidth in B/s), u (library picks the largest tile filling at least
this fraction of its waves, 0 = least time).
Usage: python3 results/validation/fit/variants.py h=8    (about a minute)"""
import sys, os, math, json
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import curve
from gemm import DEV, TILES, SPLITS, cdiv, run, switches, BPF
L2={'h100':50e6,'a100':40e6}
OPT=dict(skmin=2,h=0.0,l2=False,dram=0.9,tiles=None,mc=1,bw=None,u=0.0)
def cands(m,n,k,b,S,dev):
    out=[]
    tiles=OPT['tiles'] or TILES
    skinny=b*cdiv(m,16)*cdiv(n,128) < S
    for tm,tn in tiles:
        for s in SPLITS:
            if s>1 and (not skinny or s>k): continue
            kt=cdiv(k,s); T=b*cdiv(m,tm)*cdiv(n,tn)*s
            fl=2*tm*tn*kt; mc=OPT['mc'] if dev=='h100' else 1; by=(tm+tn/mc)*kt*2+(tm*tn*8 if s>1 else 0)
            w,r=divmod(T,S)
            eff=(1.0+OPT['h']*(1.0/128+1.0/256))/(1.0+OPT['h']*(1.0/tm+1.0/tn))
            dr=[0.0,0.0]
            if OPT['l2'] and (m*k+k*n)*2>L2[dev] and s==1:
                # DRAM bytes of a full wave and of the partial one: unique A rows and B columns
                # of the wave's tiles (output tiles in row-major order, n fastest)
                nt=cdiv(n,tn); mt=cdiv(m,tm)
                def uniq(cnt):
                    rows=min(mt,cdiv(cnt,nt)+ (1 if cnt%nt else 0)); cols=min(nt,cnt)
                    return (min(rows*tm,m)*k+min(cols*tn,n)*k)*2
                dr=[uniq(S) if w else 0.0, uniq(r) if r else 0.0]
            out.append((fl/eff,by,w,r,tm*tn if s==1 else 0,dr,T/(cdiv(T,S)*S)))
    return out
def tw(c,rate,S,BL2,te=0.0,sk=False,BW=1.0):
    best=None; skmin=OPT['skmin']; u=OPT['u']; pick=None
    for fl,by,w,r,area,dr,util in c:
        full=max(fl/rate,S*by/BL2,dr[0]/BW)+te
        t=w*full+(max(fl/rate,r*by/BL2,dr[1]/BW)+te if r else 0)
        if sk and area and r and w>=skmin:
            t=min(t,(w-1)*full+max((S+r)*fl/(S*rate),(S+r)*by/BL2,(dr[0]+dr[1])/BW)+2*te+area*8/(BL2/S))
        if best is None or t<best: best=t
        if u>0 and area and util>=u and (pick is None or (area,-t)>pick[0]): pick=((area,-t),t)
    return pick[1] if pick else best
def evalp(pre,ec,em,dev,BL2):
    d=DEV[dev]; ecf=curve(ec); emf=curve(em); S=d['S']; res=[]
    for F,B,c,s,ov,lab in pre:
        p=max(tw(c,d['P']/S*ecf(F),S,BL2,d['te'],d['sk'],d['BW']*OPT['dram']),B/(d['BW']*emf(B)))+ov
        res.append((p,s,lab))
    return res
if __name__=='__main__':
    switches(OPT,sys.argv[1:])
    bpf=dict(h100=OPT['bw'][0]/989.4e12,a100=OPT['bw'][1]/312e12) if OPT['bw'] else BPF
    run('variant',OPT,evalp,cands,bpf=bpf,curves=False)
