"""Each device's shipped curves (arch files) and operand bandwidth scored on its own rows and on
the other device's (operand bandwidth scaled by the BF16 peak). Usage: python3 cross.py"""
import sys, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wave2 import evalp, cands
from common import rows_of, errs
from gemm import DEV, prep
H=dict(ec=[[1e8,0.24],[1e9,0.37],[1e10,0.80],[1e11,0.93],[1e13,0.93]],em=[[3.499e6,0.473],[8.399e6,0.473],[2.608e7,0.723],[5.037e7,0.833],[2.227e8,0.833]],bpf=9e12/989.4e12)
A=dict(ec=[[1e8,0.79],[1e12,0.79],[1e13,0.93]],em=[[1.572e6,0.502],[1.35e7,0.608],[4.511e7,0.763],[3.756e8,0.86],[9.583e8,0.95]],bpf=7e12/312e12)
if __name__=='__main__':
  for dev,own,other,name in [('h100',H,A,'a100-fit on h100'),('a100',A,H,'h100-fit on a100')]:
      pre=prep(dev,rows_of(dev),cands)
      for lab,p in (('in-sample',own),(name,other)):
          print(dev,lab,errs(evalp(pre,p['ec'],p['em'],dev,p['bpf']*DEV[dev]['P'])))
