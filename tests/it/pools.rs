//! Prefill/decode disaggregation against closed forms: the KV transfer, the TTFT of an ideal
//! link, conservation of tokens, determinism.

use dyad::config::load_arch;
use dyad::sim::serving::{Disagg, KvLink, ServingError, simulate, simulate_disagg};
use dyad::sim::workload::{Arrivals, LengthDist, Lengths};

use crate::serving::scenario;

/// Mixtral-8x7B on a prefill pool of 2 H100s and a decode pool of 2 H100s, `count` requests of
/// `prompt` and `output` tokens arriving as Poisson at `rate`.
fn disagg(prompt: u64, output: u64, count: u64, rate: f64, link: KvLink) -> Disagg {
    let s = scenario(
        "mixtral-8x7b",
        2,
        prompt,
        output,
        Arrivals::Poisson { rate },
        count,
        32,
    );
    Disagg {
        prefill: s.clone(),
        decode: s,
        link,
    }
}

const IDEAL: KvLink = KvLink {
    bandwidth: f64::INFINITY,
    latency: 0.0,
    energy_per_bit: 0.0,
};

#[test]
fn a_transfer_takes_kv_bytes_over_bandwidth_plus_latency() {
    // Mixtral-8x7B's config.json: 32 layers, 8 KV heads of 4096 / 32 = 128, bf16 (2 bytes):
    // K and V are 2 · 32 · 8 · 128 · 2 = 131072 bytes per token.
    let (prompt, bw, lat, e) = (1000, 50e9, 5e-6, 10e-12);
    let link = KvLink {
        bandwidth: bw,
        latency: lat,
        energy_per_bit: e,
    };
    let r = simulate_disagg(&disagg(prompt, 8, 1, 1.0, link)).unwrap();
    let bytes = 131072.0 * prompt as f64;
    assert_eq!(r.kv_bytes, bytes);
    let t = r.kv_transfer.exact().unwrap();
    assert!((t[0] - (bytes / bw + lat)).abs() < 1e-15, "{t:?}");
    assert_eq!(r.kv_link_wait.exact().unwrap(), &[0.0]);
    assert!((r.link_energy - bytes * 8.0 * e).abs() < 1e-12 * r.link_energy);
    // The first gap after the first token holds the transfer and one decode iteration.
    assert!(r.decode.tbt.exact().unwrap()[0] > bytes / bw + lat);
    // The link is FIFO: over a link slower than the prefill (131 ms a transfer at 1 GB/s),
    // the second of two requests arriving together waits for the first's transfer, less the
    // time between their first tokens.
    let slow = KvLink {
        bandwidth: 1e9,
        ..link
    };
    let two = simulate_disagg(&disagg(prompt, 8, 2, 1e9, slow)).unwrap();
    let wait = two.kv_link_wait.exact().unwrap();
    let ttft = two.prefill.ttft.exact().unwrap();
    assert_eq!(wait[0], 0.0);
    let gap = ttft[1] - ttft[0];
    assert!(
        (wait[1] - (bytes / 1e9 - gap)).abs() < 1e-6,
        "{wait:?} {ttft:?}"
    );
}

#[test]
fn over_an_ideal_link_ttft_is_the_prefill_pools_own() {
    let d = disagg(512, 16, 40, 8.0, IDEAL);
    let r = simulate_disagg(&d).unwrap();
    let mut alone = d.prefill.clone();
    alone.lengths = Lengths::Drawn {
        prompt: LengthDist::Fixed(512),
        output: LengthDist::Fixed(1),
    };
    let p = simulate(&alone, None).unwrap();
    assert_eq!(r.prefill.ttft.exact().unwrap(), p.ttft.exact().unwrap());
    assert_eq!(r.kv_transfer.exact().unwrap(), &[0.0; 40]);
}

#[test]
fn every_token_is_produced_once_and_a_seed_repeats_the_run() {
    let link = KvLink {
        bandwidth: 25e9,
        latency: 2e-6,
        energy_per_bit: 5e-12,
    };
    let mut d = disagg(300, 20, 30, 20.0, link);
    d.decode.sys = load_arch("duplex".as_ref()).unwrap();
    d.decode.policy = dyad::map::Policy::Duplex;
    let a = simulate_disagg(&d).unwrap();
    assert_eq!(a.output_tokens, 30 * 20);
    assert_eq!(a.prefill.output_tokens, 30);
    assert_eq!(a.decode.requests_completed, 30);
    assert_eq!(a.decode.tbt.len(), 30 * 19);
    assert_eq!(a.e2e.len(), 30);
    let b = simulate_disagg(&d).unwrap();
    assert_eq!(a.e2e.exact(), b.e2e.exact());
    assert_eq!(a.decode.tbt.exact(), b.decode.tbt.exact());
    assert_eq!(a.energy, b.energy);
    // Static energy of each pool covers the whole run.
    let devices = 2.0;
    let h100 = &d.prefill.sys.xpu.energy.static_power;
    assert!((a.prefill.energy_static - h100.value() * devices * a.duration).abs() < 1e-9);
}

#[test]
fn a_closed_loop_is_refused() {
    let mut d = disagg(100, 4, 4, 1.0, IDEAL);
    d.prefill.arrivals = Arrivals::Closed { concurrency: 2 };
    assert!(matches!(
        simulate_disagg(&d),
        Err(ServingError::ClosedPools)
    ));
}

/// The study's disaggregated scenario with `edit` applied to its text, written to a file of
/// its own beside the original (so that its relative paths resolve).
fn edited(name: &str, edit: impl Fn(String) -> String) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/serving-modes/disagg");
    let text = std::fs::read_to_string(dir.join("disagg.toml")).unwrap();
    let path = dir.join(format!("test-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, edit(text)).unwrap();
    path
}

#[test]
fn a_flag_on_a_disaggregated_scenario_is_refused_and_the_link_has_no_silent_default() {
    use dyad::config::{ScenarioOverrides, load_disagg};
    let path = edited("flag", |t| t);
    let o = ScenarioOverrides {
        tp: Some(4),
        ..ScenarioOverrides::default()
    };
    let e = load_disagg(&path, &o).unwrap_err().to_string();
    let d = load_disagg(&path, &ScenarioOverrides::default())
        .unwrap()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(e.contains("`tp`") && e.contains("which pool"), "{e}");
    assert_eq!((d.prefill.tp, d.decode.tp), (2, 2));
    assert_eq!(d.decode.policy, dyad::map::Policy::Duplex);
    assert_eq!((d.link.bandwidth, d.link.latency), (50e9, 5e-6));
    // Without link keys an arch with no [cluster.link] gives no bandwidth: an error, at the file.
    let path = edited("link", |t| {
        t.lines()
            .filter(|l| !l.starts_with("link_"))
            .collect::<Vec<_>>()
            .join("\n")
    });
    let e = load_disagg(&path, &ScenarioOverrides::default())
        .unwrap_err()
        .to_string();
    std::fs::remove_file(&path).unwrap();
    assert!(e.contains("disaggregation.link_bandwidth"), "{e}");
}

/// `count` requests of (`prompt`, `output`) tokens arriving every `gap` seconds from 0.
fn evenly(prompt: u64, output: u64, count: u64, gap: f64) -> dyad::sim::serving::Scenario {
    let mut s = scenario(
        "mixtral-8x7b",
        2,
        prompt,
        output,
        Arrivals::Trace,
        count,
        32,
    );
    s.lengths = Lengths::Trace(
        (0..count)
            .map(|i| (prompt, output, Some(i as f64 * gap)))
            .collect(),
    );
    s
}

#[test]
fn one_replica_behind_either_router_is_the_plain_engine() {
    use dyad::sim::serving::{RouterPolicy, simulate_replicas};
    let s = disagg(700, 30, 50, 6.0, IDEAL).prefill;
    let plain = format!("{:?}", simulate(&s, None).unwrap());
    for router in [RouterPolicy::RoundRobin, RouterPolicy::LeastWork] {
        let one = simulate_replicas(&s, 1, router).unwrap();
        assert_eq!(format!("{:?}", one[0]), plain);
    }
}

#[test]
fn r_round_robin_replicas_at_r_times_the_rate_repeat_one_replicas_latencies() {
    // Exact (to rounding) with fixed lengths and evenly spaced arrivals: replica j meets the
    // arrivals of the single replica shifted by j · gap / R.
    use dyad::sim::serving::{RouterPolicy, simulate_replicas};
    let (gap, r, n) = (0.05, 3, 20);
    let one = simulate(&evenly(500, 40, n, gap), None).unwrap();
    let many = simulate_replicas(
        &evenly(500, 40, n * r, gap / r as f64),
        r,
        RouterPolicy::RoundRobin,
    )
    .unwrap();
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let want = sorted(
        (0..r)
            .flat_map(|_| one.e2e.exact().unwrap().to_vec())
            .collect(),
    );
    let got = sorted(
        many.iter()
            .flat_map(|x| x.e2e.exact().unwrap().to_vec())
            .collect(),
    );
    assert_eq!(want.len(), got.len());
    for (a, b) in want.iter().zip(&got) {
        assert!((a - b).abs() <= 1e-9 * a, "{a} {b}");
    }
    // Least work spreads the same requests: every replica serves some, none is idle.
    let lw = simulate_replicas(
        &evenly(500, 40, n * r, gap / r as f64),
        r,
        RouterPolicy::LeastWork,
    )
    .unwrap();
    let served: Vec<u64> = lw.iter().map(|x| x.requests_completed).collect();
    assert_eq!(served.iter().sum::<u64>(), n * r);
    assert!(served.iter().all(|&x| x > 0), "{served:?}");
}
