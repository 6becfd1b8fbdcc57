//! The reference GEMM path (load and convert operands, f32 multiply, round and store the result)
//! against matrixmultiply's own sgemm on the same shapes. Throughput is in FLOP/s (criterion's
//! "elem/s": one element = one FLOP, 2·m·n·k per product).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use half::bf16;

use dyad::kernels::gemm::gemm;
use dyad::kernels::{Count, Rng, to_elems};

fn gemms(c: &mut Criterion) {
    // A square tile, and a decode-like projection (64 tokens through a 1024x1024 weight).
    for (m, k, n) in [(256usize, 256usize, 256usize), (64, 1024, 1024)] {
        let mut rng = Rng::new(1);
        let a = rng.vec(m * k, 1.0);
        let b = rng.vec(k * n, 1.0);
        let (a16, b16) = (to_elems::<bf16>(&a), to_elems::<bf16>(&b));
        let mut g = c.benchmark_group(format!("gemm_{m}x{k}x{n}"));
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        g.bench_function("matrixmultiply_sgemm", |bench| {
            let mut out = vec![0f32; m * n];
            bench.iter(|| {
                // SAFETY: a, b and out hold m·k, k·n and m·n f32 values, row-major.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        k as isize,
                        1,
                        b.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        out.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
                black_box(&out);
            })
        });
        g.bench_function("reference_f32", |bench| {
            bench.iter(|| gemm(m, k, n, black_box(&a), black_box(&b), &mut Count::default()))
        });
        g.bench_function("reference_bf16", |bench| {
            bench.iter(|| {
                gemm(
                    m,
                    k,
                    n,
                    black_box(&a16),
                    black_box(&b16),
                    &mut Count::default(),
                )
            })
        });
        g.finish();
    }
}

criterion_group!(benches, gemms);
criterion_main!(benches);
