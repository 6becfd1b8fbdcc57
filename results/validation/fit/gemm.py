"""Device constants (peaks, SMs, kernel floors, the per-tile overhead te and whether the library
balances its tail waves by stream-K, the operand reuse at half rate rh (elements), the overlap exponent pm of the waves and the DRAM stream, the pre-issue-17 curves as starting points) and the tile candidates."""
DEV={'h100':dict(P=989.4e12,BW=3.35e12,S=132,ov=2.01e-6,host=14.15e-6,te=1e-6,sk=True,rh=8.0,pm=3.0,
  ec=[[1.984e8, 0.071], [6.518e8, 0.108], [1.811e9, 0.198], [1.664e10, 0.518], [1.617e11, 0.715], [1.474e12, 0.750]],
  em=[[3.499e6, 0.513], [8.399e6, 0.625], [2.608e7, 0.625], [5.037e7, 0.747], [2.227e8, 0.817]]),
 'a100':dict(P=312e12,BW=2.039e12,S=108,ov=2.76e-6,host=23.46e-6,te=1e-6,sk=True,rh=8.0,pm=3.0,
  ec=[[3.766e8, 0.256], [3.911e10, 0.708], [4.477e11, 0.717], [5.003e12, 0.930]],
  em=[[1.572e6, 0.432], [1.35e7, 0.598], [4.511e7, 0.733], [3.756e8, 0.850], [9.583e8, 0.950]])}
TILES=[(16,128),(32,128),(64,128),(128,64),(128,128),(128,256),(256,128)]
SPLITS=[1,2,4,8]
def cdiv(a,b): return -(-a//b)
