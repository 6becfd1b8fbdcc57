//! The serving trace, parsed back: one slice per simulated op with its arguments, one per
//! iteration, slices on a track that nest or are disjoint in integer nanoseconds, counters,
//! requests, every device, and a limit that drops whole iterations and says so.

use std::collections::BTreeMap;

use serde_json::Value;

use dyad::config::load_arch;
use dyad::map::Policy;
use dyad::report::trace::{TraceSummary, TraceWriter};
use dyad::sim::serving::{Scenario, ServingResult, simulate};
use dyad::sim::workload::Arrivals;

use crate::serving::scenario;
use crate::util::{dyad, root};

/// A short closed-loop Mixtral run: 12 requests of (200, 24) tokens, 6 at a time.
fn short(tp: u64) -> Scenario {
    scenario(
        "mixtral-8x7b",
        tp,
        200,
        24,
        Arrivals::Closed { concurrency: 6 },
        12,
        6,
    )
}

/// Runs `s` with a trace of at most `limit` op slices; the result, the summary and the events.
fn traced(s: &Scenario, limit: Option<u64>) -> (ServingResult, TraceSummary, Vec<Value>) {
    let mut buf = Vec::new();
    let mut w = TraceWriter::new(&mut buf, s, limit).unwrap();
    let r = simulate(s, Some(&mut w)).unwrap();
    let summary = w.finish().unwrap();
    let v: Value = serde_json::from_slice(&buf).unwrap();
    assert_eq!(v["otherData"]["ops_simulated"], summary.ops_simulated);
    let events = v["traceEvents"].as_array().unwrap().clone();
    (r, summary, events)
}

/// An instant of the file in integer nanoseconds (its microseconds carry three decimals).
fn ns(us: &Value) -> i64 {
    (us.as_f64().unwrap() * 1e3).round() as i64
}

/// The process id named `name`.
fn pid(events: &[Value], name: &str) -> u64 {
    events
        .iter()
        .find(|e| e["ph"] == "M" && e["name"] == "process_name" && e["args"]["name"] == name)
        .unwrap_or_else(|| panic!("no process {name}"))["pid"]
        .as_u64()
        .unwrap()
}

/// Complete slices (`X`) as (start, end) in ns, by (pid, tid).
fn tracks(events: &[Value]) -> BTreeMap<(u64, u64), Vec<(i64, i64)>> {
    let mut t: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["ph"] == "X") {
        let (a, d) = (ns(&e["ts"]), ns(&e["dur"]));
        assert!(d >= 0, "{e}");
        let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
        t.entry(key).or_default().push((a, a + d));
    }
    t
}

/// Every pair of slices on each track either nests or is disjoint (touching counts as disjoint).
fn assert_nest_or_disjoint(events: &[Value]) {
    for (track, mut s) in tracks(events) {
        // Sorted by start, longest first: each slice must lie inside or after every open one.
        s.sort_by_key(|&(a, b)| (a, std::cmp::Reverse(b)));
        let mut open: Vec<(i64, i64)> = Vec::new();
        for (a, b) in s {
            while open.last().is_some_and(|&(_, e)| e <= a) {
                open.pop();
            }
            if let Some(&(pa, pb)) = open.last() {
                assert!(
                    b <= pb,
                    "track {track:?}: [{a}, {b}] overlaps [{pa}, {pb}] without nesting"
                );
            }
            open.push((a, b));
        }
    }
}

fn op_slices(events: &[Value], serving: u64) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["ph"] == "X" && e["pid"] != serving)
        .collect()
}

#[test]
fn every_simulated_op_is_one_slice_with_its_arguments() {
    let s = short(2);
    let (r, summary, events) = traced(&s, None);
    let serving = pid(&events, "serving");
    let ops = op_slices(&events, serving);
    assert_eq!(ops.len() as u64, r.ops_simulated);
    assert_eq!(summary.op_slices, r.ops_simulated);
    assert_eq!(summary.ops_stop_at_iteration, None);
    assert_eq!(summary.warning(), None);
    for e in &ops {
        let a = &e["args"];
        for k in ["op", "layer", "unit", "bound", "flops", "bytes", "tokens"] {
            assert!(a.get(k).is_some(), "{k} missing from {e}");
        }
        assert!(a["flops"].as_f64().unwrap() >= 0.0 && a["bytes"].as_f64().unwrap() >= 0.0);
        assert!(["compute", "memory", "overhead", "link"].contains(&a["bound"].as_str().unwrap()));
    }
    // Every prompt token is prefilled once and every output token but each request's first
    // (which its last prefill chunk yields) is decoded once.
    let iterations: Vec<&Value> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["pid"] == serving)
        .collect();
    assert_eq!(iterations.len() as u64, r.iterations);
    let tokens: u64 = iterations
        .iter()
        .map(|e| e["args"]["tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(
        tokens,
        r.prompt_tokens + r.output_tokens - r.requests_completed
    );
    assert_nest_or_disjoint(&events);
}

#[test]
fn ops_lie_inside_their_iteration_and_counters_stay_in_range() {
    let s = short(2);
    let (r, _, events) = traced(&s, None);
    let serving = pid(&events, "serving");
    let spans: Vec<(i64, i64)> = tracks(&events)[&(serving, 0)].clone();
    let (start, end) = (spans[0].0, spans.last().unwrap().1);
    assert!(
        (end as f64 - r.duration * 1e9).abs() <= 1.0,
        "{end} vs {}",
        r.duration
    );
    for e in op_slices(&events, serving) {
        let (a, b) = (ns(&e["ts"]), ns(&e["ts"]) + ns(&e["dur"]));
        assert!(a >= start && b <= end);
        // Each op lies within one iteration.
        let i = spans.partition_point(|&(_, e)| e <= a);
        assert!(
            a >= spans[i].0 && b <= spans[i].1,
            "{e} crosses iteration {i}"
        );
    }
    let static_w = s.sys.xpu.energy.static_power.value() * s.tp as f64;
    let counters = |name: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["ph"] == "C" && e["name"] == name)
            .collect()
    };
    for name in ["batch", "tokens", "kv used", "requests", "power"] {
        assert!(counters(name).len() as u64 >= r.iterations, "{name}");
    }
    for c in counters("kv used") {
        let v = c["args"]["value"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{c}");
    }
    for c in counters("requests") {
        let running = c["args"]["running"].as_u64().unwrap();
        assert!(running <= 6, "{c}");
    }
    let power = counters("power");
    for c in &power[..power.len() - 1] {
        assert!(c["args"]["value"].as_f64().unwrap() > static_w, "{c}");
    }
    for c in counters("busy") {
        for (k, v) in c["args"].as_object().unwrap() {
            let v = v.as_f64().unwrap();
            assert!((0.0..=1.0 + 1e-9).contains(&v), "busy {k} = {v}");
        }
    }
    // Requests: one async span each, its first token inside it.
    let req = pid(&events, "requests");
    let mut lives: BTreeMap<u64, Vec<(String, i64)>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["pid"] == req && e["ph"] != "M") {
        let id = e["id"].as_u64().unwrap();
        lives
            .entry(id)
            .or_default()
            .push((e["ph"].as_str().unwrap().to_string(), ns(&e["ts"])));
    }
    assert_eq!(lives.len() as u64, r.requests_completed);
    for (id, l) in lives {
        let at = |ph: &str| l.iter().find(|(p, _)| p == ph).unwrap().1;
        assert!(
            at("b") <= at("n") && at("n") <= at("e"),
            "request {id}: {l:?}"
        );
    }
}

#[test]
fn every_device_of_an_expert_parallel_run_has_its_experts_and_pim_has_its_track() {
    let mut s = short(1);
    s.ep = 4;
    let (r, _, events) = traced(&s, None);
    for d in 0..4 {
        let name = events
            .iter()
            .find(|e| {
                e["ph"] == "M"
                    && e["name"] == "process_name"
                    && e["args"]["name"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("device {d} "))
            })
            .unwrap_or_else(|| panic!("no process for device {d}"));
        let p = name["pid"].as_u64().unwrap();
        assert!(
            events.iter().any(|e| e["ph"] == "X"
                && e["pid"] == p
                && e["args"]["op"].as_str().unwrap().starts_with("expert_")),
            "device {d} ran no expert"
        );
    }
    assert_eq!(
        op_slices(&events, pid(&events, "serving")).len() as u64,
        r.ops_simulated
    );
    assert_nest_or_disjoint(&events);

    let mut s = short(2);
    s.sys = load_arch("duplex".as_ref()).unwrap();
    s.policy = Policy::Duplex;
    let (_, _, events) = traced(&s, None);
    let pim = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["args"]["unit"] == "pim")
        .collect::<Vec<_>>();
    assert!(!pim.is_empty());
    assert!(pim.iter().all(|e| e["tid"] == 3));
    assert_nest_or_disjoint(&events);
}

#[test]
fn a_limit_keeps_whole_iterations_of_ops_and_says_where_they_stop() {
    let s = short(2);
    let (r, all, _) = traced(&s, None);
    let limit = all.op_slices / 3;
    let (_, cut, events) = traced(&s, Some(limit));
    let serving = pid(&events, "serving");
    let kept = op_slices(&events, serving).len() as u64;
    assert_eq!(kept, cut.op_slices);
    assert!(kept <= limit);
    let stop = cut.ops_stop_at_iteration.unwrap();
    // The kept slices are exactly the ops of the iterations before the stop.
    let iterations: Vec<&Value> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["pid"] == serving)
        .collect();
    assert_eq!(iterations.len() as u64, r.iterations);
    let before: u64 = iterations[..stop as usize]
        .iter()
        .map(|e| e["args"]["ops"].as_u64().unwrap())
        .sum();
    assert_eq!(kept, before);
    let next = iterations[stop as usize]["args"]["ops"].as_u64().unwrap();
    assert!(kept + next > limit);
    let w = cut.warning().unwrap();
    assert!(
        w.contains(&format!("{kept} of the run's {}", r.ops_simulated)),
        "{w}"
    );
}

#[test]
fn the_cli_warns_on_standard_error_when_the_limit_cuts_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.json");
    let scenario = root("workloads/serving/closed-b32-256-256.toml");
    let args = [
        "run",
        "--serving",
        scenario.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--trace-limit",
        "10000",
    ];
    let r = dyad(&args);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("warning: the trace holds"),
        "{}",
        r.stderr
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    assert!(v["otherData"]["op_slices"].as_u64().unwrap() <= 10000);
    assert_eq!(v["otherData"]["op_limit"], 10000);

    let r = dyad(&[
        "run",
        "--serving",
        scenario.to_str().unwrap(),
        "--trace-limit",
        "5",
    ]);
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--trace"), "{}", r.stderr);
}
