"""Device constants (peaks, SMs, kernel floors, the per-tile overhead te and whether the library
balances its tail waves by stream-K (from skmin full waves, at skeff of the data-parallel rate), the operand reuse at half rate rh (elements), the overlap exponent pm of the waves and the DRAM stream, the pre-issue-17 curves as starting points), the tile candidates,
and what every model variant shares: a tile's reuse factor, the per-row candidate table, and the
fit-then-cross-check harness (`run`)."""
import json
from common import rows_of, errs, fit
DEV={'h100':dict(P=989.4e12,BW=3.35e12,S=132,ov=2.01e-6,host=14.15e-6,te=1e-6,sk=True,skmin=1,skeff=0.9,rh=8.0,pm=3.0,
  ec=[[1.984e8, 0.071], [6.518e8, 0.108], [1.811e9, 0.198], [1.664e10, 0.518], [1.617e11, 0.715], [1.474e12, 0.750]],
  em=[[3.499e6, 0.513], [8.399e6, 0.625], [2.608e7, 0.625], [5.037e7, 0.747], [2.227e8, 0.817]]),
 'a100':dict(P=312e12,BW=2.039e12,S=108,ov=2.76e-6,host=23.46e-6,te=1e-6,sk=True,skmin=1,skeff=0.9,rh=8.0,pm=3.0,
  ec=[[3.766e8, 0.256], [3.911e10, 0.708], [4.477e11, 0.717], [5.003e12, 0.930]],
  em=[[1.572e6, 0.432], [1.35e7, 0.598], [4.511e7, 0.733], [3.756e8, 0.850], [9.583e8, 0.950]])}
TILES=[(16,128),(32,128),(64,128),(128,64),(128,128),(128,256),(256,128)]
SPLITS=[1,2,4,8]
# operand bandwidth (xpu.tiling.operand_bandwidth) as a fraction of the BF16 peak: 9 and 7 TB/s
BPF={'h100':9e12/989.4e12,'a100':7e12/312e12}
START_EC=(1e8,1e9,1e10,1e11,1e12,1e13)
def cdiv(a,b): return -(-a//b)
def reuse(tm,tn,rh):
    """A tm x tn tile's rate factor by its operand reuse I = tm*tn/(tm+tn): I/(I + rh)."""
    i=tm*tn/(tm+tn); return i/(i+rh)
def prep(dev,rl,cands):
    """Per row: (FLOPs, DRAM bytes, cands(m, n, k, b, SMs, dev), measured s, kernel floor, label)."""
    d=DEV[dev]; out=[]
    for m,n,k,b,s,host,lab in rl:
        F=2*m*n*k*b; B=(k*n+m*k+m*n)*2*b
        out.append((F,B,cands(m,n,k,b,d['S'],dev),s,d['ov']+(d['host'] if host else 0),lab))
    return out
def run(label,opt,ev,cands,bpf=None,passes=3,on_cross=None,curves=True):
    """Fit each device's curves with model ev on all its GEMM rows, then the step test (H100
    n = 4096, k = 11008, m = 512 -> 520, measured x1.483) and the cross-check (each device's
    rows with the other's curves and operand bandwidth per FLOP; on_cross(dev, other) is called
    before and on_cross(None, None) after). Prints one line of figures (and the curves)."""
    bpf=bpf or BPF; res={}
    for dev in ('h100','a100'):
        pre=prep(dev,rows_of(dev),cands); BL2=bpf[dev]*DEV[dev]['P']
        ec,em,l=fit(pre,dev,BL2,[[k,0.5] for k in START_EC],[list(x) for x in DEV[dev]['em']],ev,passes=passes)
        res[dev]=dict(ec=ec,em=em,bpf=bpf[dev],st=errs(ev(pre,ec,em,dev,BL2)),pre=pre)
    h=res['h100']; BL2=h['bpf']*DEV['h100']['P']
    st=ev(prep('h100',[(m,4096,11008,1,1.0,False,'') for m in (512,520)],cands),h['ec'],h['em'],'h100',BL2)
    step=st[1][0]/st[0][0]
    for dev,oth in (('h100','a100'),('a100','h100')):
        o=res[oth]
        if on_cross: on_cross(dev,oth)
        res[dev]['cross']=errs(ev(res[dev]['pre'],o['ec'],o['em'],dev,o['bpf']*DEV[dev]['P']))
        if on_cross: on_cross(None,None)
    print(label,json.dumps(opt),'| h100',res['h100']['st'],'x',res['h100']['cross'],'| a100',res['a100']['st'],'x',res['a100']['cross'],f'| step x{step:.3f}',flush=True)
    if curves:
        for dev in ('h100','a100'):
            print(' ',dev,'ec',[[x[0],round(x[1],3)] for x in res[dev]['ec']],'em',[[x[0],round(x[1],3)] for x in res[dev]['em']],flush=True)
    res['step']=step
    return res
def switches(opt,argv):
    """KEY=JSON arguments into opt (an unknown key is an error, not ignored)."""
    for a in argv:
        k,v=a.split('=',1)
        if k not in opt: raise SystemExit(f'unknown switch {k!r}; known: {", ".join(opt)}')
        opt[k]=json.loads(v)
def main(opt,ev,cands,on_cross=None,argv=None):
    """A variant script's entry: its switches from argv, `rh`/`te` (if set) on every device,
    `bw` (if set: H100 and A100 operand bandwidth) as bandwidth per FLOP, then run()."""
    import sys
    switches(opt,sys.argv[1:] if argv is None else argv)
    for key in ('rh','te'):
        if opt[key] is not None:
            for d in DEV.values(): d[key]=opt[key]
    bpf=dict(h100=opt['bw'][0]/DEV['h100']['P'],a100=opt['bw'][1]/DEV['a100']['P']) if opt['bw'] else BPF
    return run('variant',opt,ev,cands,bpf=bpf,on_cross=on_cross)
