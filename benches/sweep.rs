//! Sweep throughput, in design points per second (criterion reports elements/s), through the
//! whole runner: load the point's files, simulate, append to the JSONL.
//!
//! - single-iteration points: one request of one prompt token and one output token, so each
//!   point is one serving iteration (Mixtral-8x7B, Duplex policy), 64 points;
//! - full serving points: the committed Logic-PIM study (`results/sweep-logic-pim`), 48 points
//!   of 64 requests each.

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use dyad::sweep::{self, RunOptions, Sweep};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn single_iteration_sweep(dir: &Path) -> Sweep {
    let base = std::fs::read_to_string(format!("{ROOT}/results/sweep-logic-pim/scenario.toml"))
        .unwrap()
        .replace("../../", &format!("{ROOT}/"))
        .replace("count = 64", "count = 1")
        .replace("fixed = 512", "fixed = 1")
        .replace("fixed = 128", "fixed = 1");
    std::fs::write(dir.join("base.toml"), base).unwrap();
    let f = dir.join("sweep.toml");
    std::fs::write(
        &f,
        "scenario = \"base.toml\"\n\
         [[axis]]\nkey = \"arch.pim.modules\"\nvalues = \"1..=128 x2\"\n\
         [[axis]]\nkey = \"arch.pim.bandwidth_multiplier\"\nvalues = \"1..=8 x2\"\n\
         [[axis]]\nkey = \"batching.max_batch\"\nvalues = \"{1, 2}\"\n",
    )
    .unwrap();
    Sweep::load(&f).unwrap()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("points.jsonl");
    let mut g = c.benchmark_group("sweep");
    g.sample_size(10);
    let cases = [
        (
            "single_iteration_points",
            single_iteration_sweep(dir.path()),
        ),
        (
            "serving_points",
            Sweep::load(Path::new(&format!(
                "{ROOT}/results/sweep-logic-pim/sweep.toml"
            )))
            .unwrap(),
        ),
    ];
    for (name, s) in &cases {
        let n = s.points().len();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(*name, |b| {
            b.iter(|| {
                let opt = RunOptions {
                    jsonl: jsonl.clone(),
                    ..RunOptions::default()
                };
                let sum = sweep::run(s, &opt).unwrap();
                assert_eq!((sum.ran, sum.failed), (n, 0));
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
