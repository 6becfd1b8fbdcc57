"""Fit of the software-stack profiles arch/software/splitwise-dgx-{a100,h100}.toml (issue 17).

Input: a CSV of every row of data/validation/splitwise_llama2-70b_e2e.csv beside dyad's kernel-only
prices (src/app/accuracy/e2e.rs, E2eCoster::point with one prompt per prefill iteration), columns
hw,tp,prompt,batch,output,prefill_ms,decode_ms,kp,kd,ops_p,ops_d,coll,floor (kp: one prompt's
prefill iteration, kd: the decode step at prompt + output/2, both kernel time, ms; coll: collectives
per iteration; floor: the batch's prefill FLOPs at the dense peak). Model, linear in the fitted
parameters: framework time = step + per_sequence*B + per_prompt_token*P + launch*ops +
sync*collectives*(TP-1) per iteration, the prefill of B prompts = B one-prompt iterations.
Least squares on the relative error, one fit per device; launch fixed at 4 us (not separable
from step: every iteration has the same 883 ops). Needs numpy. Usage, from the repository root:
cargo run --release --example e2e_points > points.csv && python3 results/validation/fit/e2e.py points.csv
"""
import csv, sys
import numpy as np
LAUNCH=0.004  # ms per op, fixed
R=list(csv.DictReader(open(sys.argv[1])))
for r in R:
    for k in r:
        if k!='hw': r[k]=float(r[k])
single={(r['hw'],r['tp'],r['prompt']):r['kp'] for r in R if r['batch']==1}
R=[r for r in R if r['prefill_ms']>=r['floor']]
def terms(r):
    tp=r['tp'];B=r['batch'];P=r['prompt'];c=r['coll'];ops=r['ops_d']
    yield r['prefill_ms'], B*(single[(r['hw'],tp,P)]+LAUNCH*ops), [B, B*P, B*c*(tp-1), B]
    yield r['decode_ms'], r['kd']+LAUNCH*ops, [1, 0, c*(tp-1), B]
for hw in ('a100-80gb','h100-80gb'):
    rows=[r for r in R if r['hw']==hw]
    A=[];b=[]
    for r in rows:
        for m,k,f in terms(r):
            A.append([x/m for x in f]); b.append((m-k)/m)
    x,*_=np.linalg.lstsq(np.array(A),np.array(b),rcond=None)
    print(hw,'step ms %.3f per_tok us %.2f sync us %.2f per_seq us %.1f'%(x[0],x[1]*1e3,x[2]*1e3,x[3]*1e3))
