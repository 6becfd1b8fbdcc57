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
