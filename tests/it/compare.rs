//! `dyad compare` counts honestly: every per-op value is compared with ops lined up by name and
//! layer, one changed op time is reported by that name and layer with the rest counted equal,
//! and sweep points are addressed by dense ids.

use std::path::Path;

use serde_json::Value;

use crate::util::{ROOT, Run, dyad, expect_input_error};

/// `dyad run` of Llama-3-8B decode (`batch`, KV 512) on `arch`, as JSON in `out`.
fn run_report(arch: &str, batch: &str, out: &Path) -> Value {
    let Run { status, stderr, .. } = dyad(&[
        "run",
        "--model",
        "llama-3-8b",
        "--arch",
        arch,
        "--batch",
        batch,
        "--kv-len",
        "512",
        "--format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(status, 0, "{stderr}");
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

/// Numbers and booleans in `v`, less `schema_version` and the `layer` that names an op or a
/// layer entry (a key, not a value): what compare must count.
fn leaves(v: &Value, key: &str) -> usize {
    match v {
        Value::Number(_) | Value::Bool(_) => usize::from(key != "schema_version" && key != "layer"),
        Value::Object(m) => m.iter().map(|(k, x)| leaves(x, k)).sum(),
        Value::Array(xs) => xs.iter().map(|x| leaves(x, "")).sum(),
        Value::Null | Value::String(_) => 0,
    }
}

fn compare(args: &[&str]) -> String {
    let mut a = vec!["compare"];
    a.extend_from_slice(args);
    let Run {
        status,
        stdout,
        stderr,
    } = dyad(&a);
    assert_eq!(status, 0, "{stderr}");
    stdout
}

/// The rows of the section whose heading starts with `heading`.
fn section<'a>(t: &'a str, heading: &str) -> Vec<&'a str> {
    let Some(start) = t.find(heading) else {
        return Vec::new();
    };
    t[start..]
        .lines()
        .skip(4) // heading, blank, header, rule
        .take_while(|l| l.starts_with('|'))
        .collect()
}

#[test]
fn one_changed_op_time_is_reported_by_name_and_layer_and_the_rest_counted_equal() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.json"), d.path().join("b.json"));
    let mut v = run_report("h100", "8", &a);
    let n = leaves(&v, "");
    // Double the time of layer 3's decode attention, and nothing else.
    let op = v["ops"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|o| o["name"] == "attn_decode" && o["layer"] == 3)
        .unwrap();
    let t = op["time_s"].as_f64().unwrap();
    op["time_s"] = (2.0 * t).into();
    std::fs::write(&b, serde_json::to_string(&v).unwrap()).unwrap();
    let out = compare(&[a.to_str().unwrap(), b.to_str().unwrap()]);
    let counts = format!(
        "{n} values compared across 2 reports ({}, {}): {} equal, 1 changed, 0 changed from zero, \
         0 new, 0 missing, 0 not finite.",
        a.display(),
        b.display(),
        n - 1
    );
    assert!(out.starts_with(&counts), "want {counts}\n{out}");
    let rows = section(&out, "## Changed");
    assert_eq!(rows.len(), 1, "{out}");
    assert!(
        rows[0].starts_with("| ops[L3 attn_decode].time_s | ") && rows[0].ends_with(" | +100% |"),
        "{}",
        rows[0]
    );
}

#[test]
fn doubled_memory_bandwidth_halves_every_ops_memory_time_and_no_compute_time() {
    let d = tempfile::tempdir().unwrap();
    let arch = d.path().join("h100-2x-bw.toml");
    // Only the bandwidths differ, all doubled: DRAM's and the elementwise rates that do not
    // scale with it (L2, row kernels, gathers; the L2 holds the same bytes). The memory
    // efficiency curve is read by bytes, so each op's memory time (bytes / (bandwidth ×
    // efficiency)) halves exactly.
    let h = dyad::config::load_arch(&Path::new(ROOT).join("arch/h100.toml")).unwrap();
    let s = h.xpu.streaming.expect("h100 states its streaming rates");
    let twice = |r: dyad::units::BytesPerSecond| 2.0 * r.value();
    std::fs::write(
        &arch,
        format!(
            "extends = \"{ROOT}/arch/h100.toml\"\n[xpu.memory]\nbandwidth = \"6.7 TB/s\"\n\
             [xpu.streaming]\nl2_stream = \"{} B/s\"\nrow_rate = \"{} B/s\"\ngather = \"{} B/s\"\n\
             [xpu.tiling]\noverlap = 0\n",
            twice(s.l2_stream),
            twice(s.row_rate),
            twice(s.gather)
        ),
    )
    .unwrap();
    let (a, b) = (d.path().join("a.json"), d.path().join("b.json"));
    // Both with a GEMM's waves and DRAM stream overlapping perfectly (the longer of the two),
    // so that a compute-bound op carries no memory time.
    let base = d.path().join("h100-max.toml");
    std::fs::write(
        &base,
        format!("extends = \"{ROOT}/arch/h100.toml\"\n[xpu.tiling]\noverlap = 0\n"),
    )
    .unwrap();
    let va = run_report(base.to_str().unwrap(), "8", &a);
    run_report(arch.to_str().unwrap(), "8", &b);
    let out = compare(&[a.to_str().unwrap(), b.to_str().unwrap(), "--all"]);
    let changed = section(&out, "## Changed");
    let ops_with_memory = va["ops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["memory_s"].as_f64().unwrap() > 0.0)
        .count();
    let memory_rows: Vec<&&str> = changed
        .iter()
        .filter(|r| r.contains("].memory_s |"))
        .collect();
    assert_eq!(memory_rows.len(), ops_with_memory, "{out}");
    assert!(
        memory_rows.iter().all(|r| r.ends_with(" | -50% |")),
        "{out}"
    );
    assert!(
        memory_rows
            .iter()
            .any(|r| r.starts_with("| ops[L3 attn_decode].memory_s |")),
        "{out}"
    );
    assert!(
        !changed.iter().any(|r| r.contains("].compute_s |")),
        "{out}"
    );
    assert!(section(&out, "## New").is_empty() && section(&out, "## Missing").is_empty());
}

#[test]
fn sweep_point_ids_are_dense_over_the_points_that_run() {
    let d = tempfile::tempdir().unwrap();
    let base = format!(
        "arch = \"{ROOT}/arch/h100.toml\"\nmodel = \"{ROOT}/workloads/models/llama-3-8b.json\"\n\
         tp = 1\nseed = 1\n[precision]\nweights = \"bf16\"\nactivations = \"bf16\"\nkv = \"bf16\"\n\
         [requests]\ncount = 4\nprompt = {{ fixed = 32 }}\noutput = {{ fixed = 4 }}\n\
         [arrivals]\nclosed = 2\n[batching]\nmax_batch = 2\nmax_tokens = 512\nkv_block = 16\n\
         memory_utilization = 0.9\n"
    );
    std::fs::write(d.path().join("base.toml"), base).unwrap();
    // A 3 x 3 grid; the constraint keeps the 3 points on the diagonal: grid 0, 4 and 8.
    let sweep = d.path().join("sweep.toml");
    std::fs::write(
        &sweep,
        "scenario = \"base.toml\"\nconstraints = [\"arrivals.closed == batching.max_batch\"]\n\
         [[axis]]\nkey = \"batching.max_batch\"\nvalues = [1, 2, 4]\n\
         [[axis]]\nkey = \"arrivals.closed\"\nvalues = [1, 2, 4]\n",
    )
    .unwrap();
    let out = d.path().join("out");
    let Run { status, stderr, .. } = dyad(&[
        "sweep",
        sweep.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(status, 0, "{stderr}");
    let jl = out.join("points.jsonl");
    let ids: Vec<(u64, u64)> = std::fs::read_to_string(&jl)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["index"].as_u64().unwrap(), v["grid"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(ids, [(0, 0), (1, 4), (2, 8)]);
    let csv = std::fs::read_to_string(out.join("points.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).map(|l| &l[..4]).collect();
    assert_eq!(rows, ["0,0,", "1,4,", "2,8,"]);
    // #1 is the second point that ran (batch 2); #3 does not exist and says which do.
    let p = |n: u32| format!("{}#{n}", jl.display());
    let cmp = compare(&[&p(0), &p(1)]);
    assert!(
        cmp.contains("| values.batching.max_batch | 1 | 2 | +100% |"),
        "{cmp}"
    );
    expect_input_error(
        &dyad(&["compare", &p(0), &p(3)]),
        &["no point 3; it holds 3 points"],
    );
}

#[test]
fn run_reports_at_two_batches_show_exact_changes_and_layer_times() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.json"), d.path().join("b.json"));
    run_report("h100", "8", &a);
    run_report("h100", "32", &b);
    let cmp = compare(&[a.to_str().unwrap(), b.to_str().unwrap(), "--all"]);
    assert!(cmp.contains("| inputs.batch | 8 | 32 | +300% |"), "{cmp}");
    // Both reports' output token counts are their batch sizes: the change is exact.
    assert!(
        cmp.contains("| totals.output_tokens | 8 | 32 | +300% |"),
        "{cmp}"
    );
    // Llama-3-8B has 32 layers, each in the per-layer table.
    assert_eq!(section(&cmp, "## Per-layer time").len(), 32, "{cmp}");
}
