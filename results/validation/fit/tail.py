"""Issue 17, third pass: the GEMM tail. For each device, the worst rows of the shipped model (the
curves and operand bandwidth of cross.py, the model of wave2.py), with the tiling it chooses, and
each row's cause by what the measured rows of the same (n, k) show along m:
  bump: a larger m of the same shape (m < m' <= 2m) ran more than 10% faster, so the library's
        kernel here is slower than one it runs for a bigger product (no least-time rule, whose
        time never falls as m grows, can reach both);
  dip:  a smaller m of the same shape (m/2 <= m' < m) ran more than 10% slower (the same, seen
        from the other side);
  smooth: neither (the model's waves or efficiency miss a smooth trend).
It also prints the floor of any model monotone in m: an isotonic fit of log(measured) along m per
(n, k) series, free per series (so an optimistic bound, not a model).
Usage: python3 results/validation/fit/tail.py [rows per device, default 20] [--before]
(--before: the second pass's model, without the operand-reuse term and the overlap, and its curves;
without it: the shipped model, as cross.py)"""
import sys, os, math
from collections import defaultdict
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import curve, stats, vidur_gemms
from gemm import DEV
import wave2
from cross import H as H_NOW, A as A_NOW
H=dict(ec=[[1e8,0.12],[1e9,0.23],[1e10,0.75],[1e11,0.93],[1e13,0.93]],em=[[3.499e6,0.603],[8.399e6,0.625],[2.608e7,0.625],[5.037e7,0.747],[2.227e8,0.817]],bpf=9e12/989.4e12)
A=dict(ec=[[1e8,0.30],[1e9,0.63],[1e10,0.74],[1e12,0.74],[1e13,0.93]],em=[[1.572e6,0.482],[1.35e7,0.558],[4.511e7,0.723],[3.756e8,0.83],[9.583e8,0.95]],bpf=7e12/312e12)
BEFORE='--before' in sys.argv
P={'h100':H,'a100':A} if BEFORE else {'h100':H_NOW,'a100':A_NOW}
if BEFORE:
    for d in DEV.values(): d['rh']=0.0
def choice(m,n,k,d,dev,rate,BL2):
    """The least-time candidate, as wave2.tw, with its tiling: (time, label, tiles, waves, feed
    or math bound of a full wave)."""
    best=None
    for c in wave2.cands(m,n,k,1,d['S'],dev):
        t,sk,feed=wave2.cand_time(c,rate,d['S'],BL2,d['te'],d['sk'],*(((2,1.0)) if BEFORE else (d['skmin'],d['skeff'])))
        tm,tn,s,T=c[5]
        if best is None or t<best[0]:
            best=(t,f'{tm}x{tn}'+(f' split {s}' if s>1 else '')+(' stream-K' if sk else ''),T,T/d['S'],'feed' if feed else 'math')
    return best
def pav(y):
    b=[]
    for v in y:
        b.append([v,1])
        while len(b)>1 and b[-2][0]/b[-2][1]>b[-1][0]/b[-1][1]:
            s,c=b.pop(); b[-1][0]+=s; b[-1][1]+=c
    return [s/c for s,c in b for _ in range(c)]
def analyse(dev,top):
    d=DEV[dev]; p=P[dev]; ecf=curve(p['ec']); emf=curve(p['em']); S=d['S']; BL2=p['bpf']*d['P']
    ser=defaultdict(list)
    for m,n,k,b,s,host,lab in vidur_gemms(dev): ser[(n,k)].append((m,s))
    out=[]
    for m,n,k,b,s,host,lab in vidur_gemms(dev):
        F=2*m*n*k; B=(k*n+m*k+m*n)*2
        t,tile,T,W,bd=choice(m,n,k,d,dev,d['P']/S*ecf(F),BL2)
        mem=B/(d['BW']*emf(B)); pm=0 if BEFORE else d['pm']
        pr=(max(t,mem) if not pm else (t**pm+mem**pm)**(1/pm))+d['ov']
        later=min([x for m2,x in ser[(n,k)] if m<m2<=2*m] or [math.inf])
        earlier=max([x for m2,x in ser[(n,k)] if m/2<=m2<m] or [0])
        cause='bump' if s>1.1*later else 'dip' if s<earlier/1.1 else 'smooth'
        out.append(((pr-s)/s,m,n,k,s,pr,tile,T,W,'memory' if mem>t else bd,cause,lab.split()[0]))
    out.sort(key=lambda o:-abs(o[0]))
    print(f'\n### {dev}: the {top} worst rows\n')
    print('| m | n | k | op | measured | predicted | error | tile | tiles | waves | bound | cause |')
    print('|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---|---|')
    for e,m,n,k,s,pr,tile,T,W,bd,c,op in out[:top]:
        print(f'| {m} | {n} | {k} | {op} | {s*1e6:.1f} us | {pr*1e6:.1f} us | {e*100:+.1f}% | {tile} | {T} | {W:.2f} | {bd} | {c} |')
    tail=out[:len(out)//10]
    cnt=lambda f,v: sum(1 for o in v if f(o))
    print(f'\n{dev}: worst 10% = {len(tail)} rows: under-predicted {cnt(lambda o:o[0]<0,tail)}, '
          f'bump {cnt(lambda o:o[10]=="bump",tail)}, dip {cnt(lambda o:o[10]=="dip",tail)}, '
          f'smooth {cnt(lambda o:o[10]=="smooth",tail)}; m < 640: {cnt(lambda o:o[1]<640,tail)}; '
          f'measured < 10 us: {cnt(lambda o:o[4]<10e-6,tail)}')
    iso=[]
    for key,v in ser.items():
        v=sorted(v); f=pav([math.log(x) for _,x in v]); iso+=[abs(math.exp(a)-x)/x for a,(_,x) in zip(f,v)]
    print(f'{dev}: all rows {stats([abs(o[0]) for o in out])}; floor of a monotone-in-m fit, free per series: {stats(iso)}')
if __name__=='__main__':
    args=[a for a in sys.argv[1:] if a!='--before']
    top=int(args[0]) if args else 20
    for dev in ('h100','a100'): analyse(dev,top)
