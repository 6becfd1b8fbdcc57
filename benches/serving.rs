//! Mixtral-8x7B on 4 x H100 (tensor parallel 4): 1,000 requests of (1024, 1024), closed loop with
//! batch 128, simulated end to end, without and with a trace of every op (written to a sink, so
//! the figure is serialization, not disk), under balanced, Zipf (s = 1.2) and trace routing
//! (issue 16's targets: 50 ms balanced, 100 ms Zipf), and balanced with speculative decoding by
//! early exit (issue 14); and the shipped DeepSeek-V3 scenario
//! (`workloads/serving/deepseek-v3-ep8-zipf.toml`: 8 x H200, EP 8, batch 256, 1,000 requests
//! of (1024, 1024), Zipf routing; target 5 s), and the same with balanced routing.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use dyad::config::{load_arch, load_model, load_scenario};
use dyad::hw::Timing;
use dyad::model::Precision;
use dyad::report::trace::TraceWriter;
use dyad::sim::routing::RoutingSpec;
use dyad::sim::serving::speculative::{Acceptance, Drafter, Speculative};
use dyad::sim::serving::{Scenario, simulate};
use dyad::sim::workload::{Arrivals, LengthDist, Lengths};

fn mixtral(routing: RoutingSpec) -> Scenario {
    let model = load_model("mixtral-8x7b".as_ref()).unwrap();
    Scenario {
        name: "bench".into(),
        sys: load_arch("h100".as_ref()).unwrap(),
        precision: Precision::uniform(model.dtype),
        model,
        tp: 4,
        ep: 1,
        count: 1000,
        lengths: Lengths::Drawn {
            prompt: LengthDist::Fixed(1024),
            output: LengthDist::Fixed(1024),
        },
        arrivals: Arrivals::Closed { concurrency: 128 },
        max_batch: 128,
        max_tokens: 8192,
        kv_block: 16,
        memory_utilization: 0.9,
        routing,
        policy: dyad::map::Policy::AllXpu,
        seed: 1,
        timing: Timing::Kernel,
        software: None,
        speculative: None,
        expert_parallel: Default::default(),
        pipeline: None,
    }
}

fn serving(c: &mut Criterion) {
    let mut g = c.benchmark_group("serving");
    g.sample_size(10);
    let s = mixtral(RoutingSpec::Uniform);
    let ops = simulate(&s, None).unwrap().ops_simulated;
    println!("uniform routing: {ops} ops simulated per run");
    g.bench_function("mixtral_tp4_1000x1024x1024_b128_uniform", |b| {
        b.iter(|| simulate(black_box(&s), None).unwrap())
    });
    g.bench_function("mixtral_tp4_1000x1024x1024_b128_uniform_traced", |b| {
        b.iter(|| {
            let mut w = TraceWriter::new(std::io::sink(), &s, None).unwrap();
            simulate(black_box(&s), Some(&mut w)).unwrap();
            w.finish().unwrap()
        })
    });
    let z = mixtral(RoutingSpec::Zipf { s: 1.2 });
    g.bench_function("mixtral_tp4_1000x1024x1024_b128_zipf", |b| {
        b.iter(|| simulate(black_box(&z), None).unwrap())
    });
    // A routing trace: each layer's own skew, from nearly flat to steep (weights 1/(e+1)^s).
    let probs = (0..32)
        .map(|l| {
            let s = 0.2 + 0.05 * l as f64;
            (0..8).map(|e| ((e + 1) as f64).powf(-s)).collect()
        })
        .collect();
    let t = mixtral(RoutingSpec::Trace { probs });
    g.bench_function("mixtral_tp4_1000x1024x1024_b128_trace", |b| {
        b.iter(|| simulate(black_box(&t), None).unwrap())
    });
    // Speculative decoding by early exit (d = 4, exit after layer 8, α = 0.8): each round is four
    // draft passes and a verify pass over 5 positions per sequence.
    let mut sp = mixtral(RoutingSpec::Uniform);
    sp.speculative = Some(Speculative {
        drafter: Drafter::EarlyExit { exit_layer: 8 },
        tokens: 4,
        acceptance: Acceptance::Rate(0.8),
        dynamic: false,
    });
    g.bench_function("mixtral_tp4_1000x1024x1024_b128_uniform_speculative", |b| {
        b.iter(|| simulate(black_box(&sp), None).unwrap())
    });
    g.finish();
    let mut g = c.benchmark_group("serving_large");
    g.sample_size(10);
    let root = env!("CARGO_MANIFEST_DIR");
    let path = format!("{root}/workloads/serving/deepseek-v3-ep8-zipf.toml");
    let d = load_scenario(path.as_ref()).unwrap();
    g.bench_function("deepseek_v3_ep8_1000x1024x1024_b256_zipf", |b| {
        b.iter(|| simulate(black_box(&d), None).unwrap())
    });
    // The same scenario with balanced routing: what "Zipf within 2x of balanced" compares with.
    let u = Scenario {
        routing: RoutingSpec::Uniform,
        ..d.clone()
    };
    g.bench_function("deepseek_v3_ep8_1000x1024x1024_b256_uniform", |b| {
        b.iter(|| simulate(black_box(&u), None).unwrap())
    });
    g.finish();
}

criterion_group!(benches, serving);
criterion_main!(benches);
