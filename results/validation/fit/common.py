import csv, math, bisect
D=__import__('os').path.join(__import__('os').path.dirname(__file__),'../../../data/validation/')
def rows(f):
    with open(D+f) as fh:
        lines=[l for l in fh if not l.startswith('#')]
    return list(csv.DictReader(lines))
def curve(points):
    xs=[math.log10(p[0]) for p in points]; ys=[p[1] for p in points]
    def at(s):
        if s<=0: return ys[0]
        l=math.log10(s)
        if l<=xs[0]: return ys[0]
        if l>=xs[-1]: return ys[-1]
        i=bisect.bisect_right(xs,l)
        f=(l-xs[i-1])/(xs[i]-xs[i-1]); return ys[i-1]+f*(ys[i]-ys[i-1])
    return at
def stats(errs):
    v=sorted(errs); n=len(v)
    if not n: return None
    pr=lambda q: v[min(n,max(1,math.ceil(q*n)))-1]
    return (n, round(pr(.5)*100,1), round(pr(.9)*100,1), round(v[-1]*100,1))
def vidur_gemms(dev):
    out=[]
    for r in rows(f'vidur_{dev}_Llama-2-7b-hf_mlp.csv'):
        t=int(float(r['num_tokens'])); tp=int(float(r['tp']))
        i=11008//tp; qkv=(32+64)*128//tp
        for col,(m,n,k) in [('attn_pre_proj',(t,qkv,4096)),('attn_post_proj',(t,4096,4096//tp)),('mlp_up_proj',(t,2*i,4096)),('mlp_down_proj',(t,4096,i))]:
            s=float(r[col+'_ms'])*1e-3
            if s>0: out.append((m,n,k,1,s,False,f'{col} t={t} tp={tp}'))
    return out
def llmc():
    return [(int(r['M']),int(r['N']),int(r['K']),1,float(r['latency_ms'])*1e-3,True,'llmc') for r in rows('llmcompass_a100_matmul.csv')]
def setk(cur,i,nv):
    """Knot i set to nv, the knots after it raised and those before it lowered to keep the curve monotone."""
    c=[list(x) for x in cur]; c[i][1]=nv
    for j in range(i+1,len(c)): c[j][1]=max(c[j][1],nv)
    for j in range(i): c[j][1]=min(c[j][1],nv)
    return c
def rows_of(dev):
    """Every GEMM row of a device: vidur's (both devices) and LLMCompass's (A100)."""
    return vidur_gemms(dev)+(llmc() if dev=='a100' else [])
def errs(res):
    """(rows, median %, p90 %, max %) of a list of (predicted, measured, label)."""
    return stats([abs(p-s)/s for p,s,_ in res])
def loss(r): return sum(abs(math.log(p/s)) for p,s,_ in r)/len(r)
def fit(pre,dev,BL2,ec,em,ev,passes=5,hi=(0.93,0.95)):
    """Coordinate descent of the compute (ec) and memory (em) curves' knots on the mean
    |log(predicted/measured)| of ev(pre, ec, em, dev, BL2); monotone curves, capped at hi."""
    best=loss(ev(pre,ec,em,dev,BL2))
    for it in range(passes):
        for w in (0,1):
            for i in range((len(ec),len(em))[w]):
                for step in (0.1,0.03,0.01):
                    for sg in (1,-1):
                        while True:
                            cur=(ec,em)[w]; old=cur[i][1]; nv=min(hi[w],max(0.02,old+sg*step))
                            if nv==old: break
                            c=setk(cur,i,nv); t=(c,em) if w==0 else (ec,c)
                            l=loss(ev(pre,t[0],t[1],dev,BL2))
                            if l<best-1e-9: best=l; ec,em=t
                            else: break
    return ec,em,best
