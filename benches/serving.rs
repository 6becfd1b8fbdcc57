//! Mixtral-8x7B on 4 x H100 (tensor parallel 4): 1,000 requests of (1024, 1024), closed loop with
//! batch 128, simulated end to end, without and with a trace of every op (written to a sink, so
//! the figure is serialization, not disk).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use dyad::config::{load_arch, load_model};
use dyad::hw::Timing;
use dyad::model::Precision;
use dyad::report::trace::TraceWriter;
use dyad::sim::routing::RoutingSpec;
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
    let z = mixtral(RoutingSpec::Zipf { s: 1.0 });
    g.bench_function("mixtral_tp4_1000x1024x1024_b128_zipf", |b| {
        b.iter(|| simulate(black_box(&z), None).unwrap())
    });
    g.finish();
}

criterion_group!(benches, serving);
criterion_main!(benches);
