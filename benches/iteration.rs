//! Build and cost one decode iteration (batch 64, KV 1024) on H100: Mixtral-8x7B, and the
//! per-layer-plan models DeepSeek-V2-Lite and DeepSeek-V3 (latent attention, shared experts,
//! dense first layers) and Qwen3-30B-A3B (128 fine-grained experts per layer); and 1,024 decode
//! iterations of Mixtral-8x7B on 4 x H100 at batch 128 through the serving coster, balanced and
//! Zipf-routed (issue 16's target: 10 ms; 8.3 ms balanced after the `speed` branch, 20.4 before).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use dyad::config::{load_arch, load_model};
use dyad::hw::Timing;
use dyad::map::{self, Policy};
use dyad::model::{Batch, Precision, Routing, build_iteration};

fn iteration(c: &mut Criterion) {
    let sys = load_arch("h100".as_ref()).unwrap();
    let model = load_model("mixtral-8x7b".as_ref()).unwrap();
    let batch = Batch::decode(64, 1024);
    let p = Precision::uniform(model.dtype);
    c.bench_function("mixtral_decode_build_and_cost", |b| {
        b.iter(|| {
            let g = build_iteration(&model, black_box(&batch), 1, p, &Routing::Uniform).unwrap();
            let ops = map::cost_iteration(&g, &sys, Policy::AllXpu, Timing::Kernel).unwrap();
            black_box(ops.len())
        })
    });
    c.bench_function("mixtral_decode_build_graph", |b| {
        b.iter(|| build_iteration(&model, black_box(&batch), 1, p, &Routing::Uniform).unwrap())
    });
    for name in ["deepseek-v2-lite", "deepseek-v3", "qwen3-30b-a3b"] {
        let m = load_model(name.as_ref()).unwrap();
        let p = Precision::uniform(m.dtype);
        c.bench_function(&format!("{name}_decode_build_and_cost"), |b| {
            b.iter(|| {
                let g = build_iteration(&m, black_box(&batch), 1, p, &Routing::Uniform).unwrap();
                let ops = map::cost_iteration(&g, &sys, Policy::AllXpu, Timing::Kernel).unwrap();
                black_box(ops.len())
            })
        });
    }
}

/// 1,024 decode iterations (batch 128, KV 1024 + i at iteration i) priced through one coster.
fn decode_run(c: &mut Criterion) {
    use dyad::model::Parallelism;
    use dyad::sim::iteration::Coster;
    use dyad::sim::routing::{RouteRng, Router, RoutingSpec};
    use dyad::sim::workload::rng;
    let sys = load_arch("h100".as_ref()).unwrap();
    let m = load_model("mixtral-8x7b".as_ref()).unwrap();
    let moe = m.moe.unwrap();
    let p = Precision::uniform(m.dtype);
    let par = Parallelism { tp: 4, ep: 1 };
    let mut g = c.benchmark_group("decode_1024_iterations");
    g.sample_size(10);
    for spec in [RoutingSpec::Uniform, RoutingSpec::Zipf { s: 1.2 }] {
        let name = format!(
            "mixtral_tp4_b128_{}",
            spec.describe().replace([' ', '='], "_")
        );
        g.bench_function(&name, |b| {
            b.iter(|| {
                let mut r = rng(1, 3);
                let router = Router::new(spec.clone(), m.layers(), moe.experts, moe.top_k, &mut r);
                let mut r: RouteRng = rand::SeedableRng::from_rng(&mut r);
                let mut coster = Coster::new(&sys, &m, par, p, Timing::Kernel, Policy::AllXpu);
                let mut time = 0.0;
                for i in 0..1024 {
                    let batch = Batch::decode(128, 1024 + i);
                    let layers = if router.is_uniform() { 1 } else { m.layers() };
                    let counts: Vec<Vec<u64>> = (0..layers as usize)
                        .map(|l| router.counts(l, 128, moe.top_k, &mut r))
                        .collect();
                    time += coster.iteration(&batch, &counts, false).unwrap().time;
                }
                black_box(time)
            })
        });
    }
    g.finish();
}

/// One layer's tokens per expert under Zipf s = 1.2, by the count sampler (`sim::counts`) on
/// the serving runs' routing stream, either side of each threshold between drawing token by
/// token and the tree of a binomial per set. Mixtral's 2 of 8: 16 and 128 tokens (a decode
/// batch) and 2,520 (`PACKED_DRAWS`' 45 draws a pair), drawn two tokens a draw from the pairs'
/// table, and 2,521, 4,096 and 8,192 (prefill chunks) by the tree. 2 of 16 (120 sets, past the
/// lanes): 960 and 2,880 tokens (`PER_TOKEN`'s 24 a set) token by token, 2,881 and 4,000 by
/// the tree.
fn counts(c: &mut Criterion) {
    counts_group(
        c,
        "counts_mixtral_zipf",
        8,
        &[16, 128, 2520, 2521, 4096, 8192],
    );
    // 2 of 16 experts: 120 sets, past the lanes (a count per set, then added to its members).
    counts_group(c, "counts_2_of_16_zipf", 16, &[960, 2880, 2881, 4000]);
}

/// The group `name`: 2 of `experts` experts of Zipf s = 1.2 weights, at each of `tokens`.
fn counts_group(c: &mut Criterion, name: &str, experts: usize, tokens: &[u64]) {
    use dyad::sim::counts::Counts;
    use dyad::sim::routing::RouteRng;
    use rand::SeedableRng;
    let w: Vec<f64> = (1..=experts).map(|r| (r as f64).powf(-1.2)).collect();
    let sampler = Counts::new(&w, 2);
    let mut g = c.benchmark_group(name);
    for &tokens in tokens {
        let (mut r, mut out) = (RouteRng::seed_from_u64(1), Vec::new());
        g.bench_function(format!("{tokens}_tokens"), |b| {
            b.iter(|| {
                sampler.draw_into(experts, black_box(tokens), &mut r, &mut out);
                black_box(out[0])
            })
        });
    }
    g.finish();
}

criterion_group!(benches, iteration, decode_run, counts);
criterion_main!(benches);
