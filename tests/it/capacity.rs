//! The capacity search against a closed form (M/D/1) and its monotonicity invariants.

use dyad::sim::serving::{Scenario, simulate};
use dyad::sim::workload::Arrivals;
use dyad::sweep::capacity::{SearchOptions, Slo, search};

use crate::serving::scenario;
use crate::util::{dyad, dyad_with, expect_input_error, small_scenario};

/// P(W <= t) of the M/D/1 queue's waiting time (first come, first served) at arrival rate `l`
/// and service time `d` (Erlang's formula; e.g. Kleinrock, Queueing Systems vol. 1, or
/// Iversen, Teletraffic Engineering §10.4.2):
/// (1 − ρ) Σ_{k=0}^{⌊t/d⌋} (l(kd − t))^k / k! · e^{−l(kd − t)}, with ρ = l·d.
fn md1_wait_cdf(l: f64, d: f64, t: f64) -> f64 {
    let rho = l * d;
    let mut sum = 0.0;
    let mut fact = 1.0;
    for k in 0..=((t / d).floor() as i32) {
        if k > 0 {
            fact *= f64::from(k);
        }
        let x = l * (f64::from(k) * d - t);
        sum += x.powi(k) / fact * (-x).exp();
    }
    (1.0 - rho) * sum
}

/// The rate at which the M/D/1 waiting time's 99th percentile equals `w` (bisection on ρ).
fn md1_rate_for_p99_wait(d: f64, w: f64) -> f64 {
    let (mut lo, mut hi) = (1e-6 / d, (1.0 - 1e-9) / d);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if md1_wait_cdf(mid, d, w) >= 0.99 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// One request at a time (max_batch 1), each a fixed 512-token prompt and one output token: a
/// deterministic service of one prefill iteration, D. Under Poisson arrivals TTFT = W + D with
/// W the M/D/1 wait, so the capacity under a TTFT p99 limit of 7 D is the rate at which W's 99th
/// percentile is 6 D (ρ ≈ 0.7). 20,000 requests; the search's answer (one seed, to 0.5%) must
/// be within 5% of the closed form: the sampling error of a 99th percentile from 20,000
/// correlated waits.
#[test]
fn an_md1_server_has_the_capacity_of_its_closed_form() {
    let lone = scenario(
        "llama-3-8b",
        1,
        512,
        1,
        Arrivals::Closed { concurrency: 1 },
        1,
        1,
    );
    let d = simulate(&lone, None).unwrap().ttft[0];
    let mut s = scenario(
        "llama-3-8b",
        1,
        512,
        1,
        Arrivals::Poisson { rate: 1.0 },
        20_000,
        1,
    );
    s.seed = 11;
    let want = md1_rate_for_p99_wait(d, 6.0 * d);
    assert!((want * d - 0.7).abs() < 0.05, "rho* = {}", want * d);
    let slo = Slo {
        ttft_p99: Some(7.0 * d),
        tpot_p99: None,
    };
    let opt = SearchOptions {
        seeds: 1,
        start: 0.25 / d,
        rel_tol: 0.005,
        ..SearchOptions::default()
    };
    let c = search(&s, &slo, &opt).unwrap();
    let got = c.rate.unwrap();
    eprintln!("M/D/1: search {got:.3}/s, closed form {want:.3}/s, D = {d:.5} s");
    assert!(
        (got / want - 1.0).abs() < 0.05,
        "search {got:.3}/s, M/D/1 {want:.3}/s (D = {d:.5} s)"
    );
    // Above 1/D no finite run of this length keeps the wait bounded: the failing end is below it.
    assert!(c.failed_at.unwrap() < 1.0 / d);
    // The closed form itself: P(W = 0) = 1 − ρ, and the CDF rises to 1 (at ρ = 0.5 the tail
    // decays as e^{-1.26 t/D}, so P(W > 10 D) ≈ 3e-6). The series alternates: far out (t = 40 D)
    // its terms reach 1e16 and cancel to noise, so it is checked where it is stable.
    assert!((md1_wait_cdf(0.5 / d, d, 0.0) - 0.5).abs() < 1e-12);
    assert!((md1_wait_cdf(0.5 / d, d, 10.0 * d) - 1.0).abs() < 1e-4);
}

/// A small open loop: Llama-3-8B on one H100, (512, 64) requests, batch up to 32.
fn small() -> Scenario {
    scenario(
        "llama-3-8b",
        1,
        512,
        64,
        Arrivals::Poisson { rate: 1.0 },
        400,
        32,
    )
}

fn capacity(s: &Scenario, ttft: f64, tpot: f64) -> f64 {
    let slo = Slo {
        ttft_p99: Some(ttft),
        tpot_p99: Some(tpot),
    };
    let opt = SearchOptions {
        seeds: 2,
        start: 4.0,
        rel_tol: 0.02,
        ..SearchOptions::default()
    };
    search(s, &slo, &opt).unwrap().rate.unwrap()
}

#[test]
fn a_looser_slo_never_gives_a_lower_capacity() {
    let s = small();
    let c: Vec<f64> = [(0.1, 0.015), (0.2, 0.02), (0.5, 0.05), (2.0, 0.2)]
        .iter()
        .map(|&(t, p)| capacity(&s, t, p))
        .collect();
    assert!(c.windows(2).all(|w| w[1] >= w[0]), "{c:?}");
    assert!(c[3] > c[0], "the limits bind somewhere: {c:?}");
}

#[test]
fn more_bandwidth_or_more_devices_never_give_a_lower_capacity() {
    let s = small();
    let base = capacity(&s, 0.2, 0.02);
    let mut fast = s.clone();
    fast.sys.xpu.memory.bandwidth = fast.sys.xpu.memory.bandwidth * 2.0;
    let mut wide = s.clone();
    wide.tp = 2;
    let (f, w) = (capacity(&fast, 0.2, 0.02), capacity(&wide, 0.2, 0.02));
    assert!(f >= base, "2x bandwidth {f} < {base}");
    assert!(w >= base, "TP 2 {w} < TP 1 {base}");
}

/// The command on a small scenario: it writes the CSV (one row per rate and seed) and the SVG,
/// and its summary names the capacity and the die-model cost of a Duplex device (xPU die plus
/// five logic dies).
#[test]
fn the_command_writes_its_curve_and_prices_a_duplex_device_from_the_die_model() {
    let s = small_scenario("duplex", "policy = \"duplex\"", "mode = \"uniform\"");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let args = [
        "capacity",
        "s.toml",
        "--ttft-p99",
        "0.5",
        "--seeds",
        "2",
        "--tolerance",
        "0.1",
    ];
    let out = ["--out", dir.to_str().unwrap()];
    let r = dyad_with(&[("s.toml", &s)], &[&args[..], &out[..]].concat());
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.contains("capacity: "), "{}", r.stdout);
    assert!(r.stdout.contains("5 Logic-PIM logic dies"), "{}", r.stdout);
    let csv = std::fs::read_to_string(dir.join("capacity.csv")).unwrap();
    let rates = r
        .stdout
        .lines()
        .filter(|l| l.ends_with("yes") || l.ends_with("no"))
        .count();
    assert_eq!(csv.lines().count(), 1 + 2 * rates, "{csv}");
    assert!(
        std::fs::read_to_string(dir.join("curve.svg"))
            .unwrap()
            .contains("<svg")
    );
}

#[test]
fn bad_limits_and_a_missing_scenario_are_input_errors() {
    let r = dyad(&[
        "capacity",
        "workloads/serving/open-poisson.toml",
        "--ttft-p99=-1",
    ]);
    expect_input_error(&r, &["--ttft-p99", "positive"]);
    let r = dyad(&["capacity", "nonexistent.toml", "--ttft-p99", "2"]);
    expect_input_error(&r, &["nonexistent.toml"]);
}

/// A sweep with a `[capacity]` table runs the search on every point: a point with twice the
/// memory bandwidth never has a lower capacity, and the capacity can be an objective.
#[test]
fn a_sweep_finds_the_capacity_of_every_point() {
    let scenario = format!(
        r#"arch = "{root}/arch/h100.toml"
model = "{root}/workloads/models/llama-3-8b.json"
tp = 1
seed = 3
[precision]
weights = "bf16"
activations = "bf16"
kv = "bf16"
[requests]
count = 300
prompt = {{ fixed = 512 }}
output = {{ fixed = 64 }}
[arrivals]
poisson = 4.0
[batching]
max_batch = 32
max_tokens = 8192
kv_block = 16
memory_utilization = 0.9
"#,
        root = crate::util::root("").display()
    );
    let sweep = r#"scenario = "s.toml"
objectives = ["max capacity_rps", "min tbt_s.p50"]
[capacity]
ttft_p99 = 0.2
tpot_p99 = 0.02
seeds = 2
tolerance = 0.05
[[axis]]
key = "arch.xpu.memory.bandwidth"
values = ["3.35 TB/s", "6.7 TB/s"]
"#;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let r = dyad_with(
        &[("s.toml", &scenario), ("sweep.toml", sweep)],
        &[
            "sweep",
            "sweep.toml",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.status, 0, "{}", r.stderr);
    let csv = std::fs::read_to_string(out.join("points.csv")).unwrap();
    let head: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = head
        .iter()
        .position(|h| *h == "capacity_rps")
        .expect("a capacity column");
    let caps: Vec<f64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(col).unwrap().parse().unwrap())
        .collect();
    assert_eq!(caps.len(), 2);
    assert!(caps[0] > 0.0 && caps[1] >= caps[0], "{caps:?}");
    let bad = sweep.replace("seeds = 2", "seeds = 0");
    let r = dyad_with(
        &[("s.toml", &scenario), ("sweep.toml", &bad)],
        &["sweep", "sweep.toml"],
    );
    expect_input_error(&r, &["[capacity]", "seeds"]);
}
