//! Build and cost one decode iteration (batch 64, KV 1024) on H100: Mixtral-8x7B, and the
//! per-layer-plan models DeepSeek-V2-Lite and DeepSeek-V3 (latent attention, shared experts,
//! dense first layers) and Qwen3-30B-A3B (128 fine-grained experts per layer).

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

criterion_group!(benches, iteration);
criterion_main!(benches);
