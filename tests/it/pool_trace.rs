//! The trace of a disaggregated run (issue 14): one process per pool, each pool's iterations
//! on its own track, and one KV-transfer span per request that took bytes ÷ bandwidth +
//! latency.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::util::{dyad, root};

/// An instant of the file in integer nanoseconds (its microseconds carry three decimals).
fn ns(us: &Value) -> i64 {
    (us.as_f64().unwrap() * 1e3).round() as i64
}

/// The study's disaggregated scenario cut to `count` requests, beside the original (so that
/// its relative paths resolve); the caller removes it.
fn scenario(count: u64) -> std::path::PathBuf {
    let dir = root("results/serving-modes/disagg");
    let text = std::fs::read_to_string(dir.join("disagg.toml")).unwrap();
    assert!(
        text.contains("count = 200"),
        "the study's request count moved"
    );
    let path = dir.join(format!("test-trace-{}.toml", std::process::id()));
    let text = text.replace("count = 200", &format!("count = {count}"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `dyad run --serving s --format json [--trace t]`: the report.
fn report(s: &std::path::Path, trace: Option<&std::path::Path>) -> String {
    let mut args = vec!["run", "--serving", s.to_str().unwrap(), "--format", "json"];
    if let Some(t) = trace {
        args.extend(["--trace", t.to_str().unwrap()]);
    }
    let r = dyad(&args);
    assert_eq!(r.status, 0, "{}", r.stderr);
    r.stdout
}

#[test]
fn a_disaggregated_trace_has_a_process_per_pool_and_a_kv_span_per_request() {
    let count = 24;
    let s = scenario(count);
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.json");
    let (plain, traced) = (report(&s, None), report(&s, Some(&t)));
    std::fs::remove_file(&s).unwrap();
    assert_eq!(plain, traced, "the trace moved the report");
    let rep: Value = serde_json::from_str(&plain).unwrap();
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&t).unwrap()).unwrap();
    let events = file["traceEvents"].as_array().unwrap();
    let names: BTreeMap<u64, &str> = (events.iter())
        .filter(|e| e["ph"] == "M" && e["name"] == "process_name")
        .map(|e| {
            (
                e["pid"].as_u64().unwrap(),
                e["args"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    // The processes with an iterations track are exactly the two pools.
    let mut pools: Vec<(u64, &str)> = (events.iter())
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .filter(|e| e["args"]["name"] == "iterations")
        .map(|e| e["pid"].as_u64().unwrap())
        .map(|p| (p, names[&p]))
        .collect();
    pools.sort();
    let pool_names: Vec<&str> = pools.iter().map(|p| p.1).collect();
    assert_eq!(pool_names, ["prefill pool", "decode pool"]);
    for (pid, name) in pools {
        let mut slices: Vec<(i64, i64)> = (events.iter())
            .filter(|e| e["ph"] == "X" && e["pid"] == pid && e["tid"] == 0)
            .map(|e| (ns(&e["ts"]), ns(&e["ts"]) + ns(&e["dur"])))
            .collect();
        let pool = name.trim_end_matches(" pool");
        assert_eq!(slices.len() as u64, rep[pool]["iterations"], "{name}");
        slices.sort();
        for w in slices.windows(2) {
            assert!(w[0].1 <= w[1].0, "{name}: iterations overlap: {w:?}");
        }
    }
    // Mixtral-8x7B's config.json: 32 layers, 8 KV heads of 4096 / 32 = 128, bf16 (2 bytes):
    // 131072 bytes per token of the 4096-token prompt; the link is 50 GB/s and 5 us.
    let bytes: f64 = 131072.0 * 4096.0;
    let want = ((bytes / 50e9 + 5e-6) * 1e9).round() as i64;
    let kv = |ph: &str| -> BTreeMap<u64, (i64, f64)> {
        (events.iter())
            .filter(|e| e["ph"] == ph && e["cat"] == "kv transfer")
            .map(|e| {
                let wait = e["args"]["wait_s"].as_f64().unwrap_or(0.0);
                (e["id"].as_u64().unwrap(), (ns(&e["ts"]), wait))
            })
            .collect()
    };
    let (starts, ends) = (kv("b"), kv("e"));
    assert_eq!((starts.len() as u64, ends.len() as u64), (count, count));
    assert_eq!(rep["requests"], count);
    // A prefill request's span ends at its first token: its KV goes on the link then, or
    // when the link frees.
    let at = |ph: &str, cat: &str| -> BTreeMap<u64, i64> {
        (events.iter())
            .filter(|e| e["ph"] == ph && e["cat"] == cat)
            .map(|e| (e["id"].as_u64().unwrap(), ns(&e["ts"])))
            .collect()
    };
    let first = at("e", "prefill request");
    for (id, (a, wait)) in &starts {
        let b = ends[id].0;
        assert!(
            (b - a - want).abs() <= 1,
            "request {id}: {} ns, want {want}",
            b - a
        );
        let done = first[id] + (wait * 1e9).round() as i64;
        assert!(
            (a - done).abs() <= 1,
            "request {id}: on the link at {a}, not {done}"
        );
    }
    let bytes_in = (events.iter())
        .filter(|e| e["ph"] == "b" && e["cat"] == "kv transfer")
        .all(|e| e["args"]["bytes"] == bytes);
    assert!(bytes_in, "a transfer's bytes are not the prompt's KV");
    assert_eq!(file["otherData"]["kv_transfers"], count);
    // A request has one id in both pools: its decode span starts at its arrival, as its prefill
    // span does, and marks its first token at the end of its prefill.
    assert_eq!(at("b", "decode request"), at("b", "prefill request"));
    assert_eq!(at("n", "decode request"), first);
}
