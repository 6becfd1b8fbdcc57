//! The binary end to end: the default run, each command, and bad input ending with status 2 and
//! a message that names the place.

use std::path::Path;
use std::process::{Command, Output};

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

/// Runs `dyad` in `dir` (the repository root when `None`).
fn dyad_in(dir: Option<&Path>, args: &[&str], stdin: Option<&str>) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dyad"));
    c.args(args)
        .current_dir(dir.unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR"))));
    c.env("NO_COLOR", "1");
    let out: Output = match stdin {
        None => c.output().unwrap(),
        Some(text) => {
            use std::io::Write;
            c.stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut child = c.spawn().unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        }
    };
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn dyad(args: &[&str]) -> Run {
    dyad_in(None, args, None)
}

/// Writes `files` into a fresh temporary folder and runs `dyad` there.
fn dyad_with(files: &[(&str, &str)], args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dyad_in(Some(dir.path()), args, None)
}

/// A complete arch file, to be broken one key at a time.
const ARCH: &str = include_str!("../arch/h100.toml");

fn expect_input_error(r: &Run, needles: &[&str]) {
    assert_eq!(r.status, 2, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    for n in needles {
        assert!(r.stderr.contains(n), "stderr lacks {n:?}:\n{}", r.stderr);
    }
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

#[test]
fn default_run_prints_the_mixtral_table() {
    for r in [
        dyad(&[]),
        dyad_in(Some(&std::env::temp_dir()), &["run"], None),
    ] {
        assert_eq!(r.status, 0, "{}", r.stderr);
        for n in [
            "mixtral-8x7b",
            "H100",
            "decode batch 64",
            "KV 1024",
            "expert_7",
            "attn_decode",
            "tokens/s",
        ] {
            assert!(r.stdout.contains(n), "missing {n:?} in\n{}", r.stdout);
        }
    }
}

#[test]
fn run_writes_json_with_a_schema_version() {
    let r = dyad(&[
        "run",
        "--model",
        "llama-3-8b",
        "--batch",
        "4",
        "--format",
        "json",
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["layers"].as_array().unwrap().len(), 32);
    let t = v["totals"]["iteration_s"].as_f64().unwrap();
    let sum: f64 = v["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["time_s"].as_f64().unwrap())
        .sum();
    assert!((sum / t - 1.0).abs() < 1e-9);
}

#[test]
fn run_csv_and_md_formats() {
    let r = dyad(&[
        "run",
        "--model",
        "llama-2-7b",
        "--phase",
        "prefill",
        "--batch",
        "2",
        "--format",
        "csv",
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("layer,op,shape"));
    assert!(r.stdout.contains("attn_prefill"));
    let r = dyad(&["run", "--model", "llama-2-7b", "--format", "md"]);
    assert!(r.stdout.contains("| op "), "{}", r.stdout);
}

#[test]
fn graph_prints_dot() {
    let r = dyad(&["graph", "--model", "mixtral-8x7b", "--batch", "4"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("digraph iteration {"));
    assert!(r.stdout.contains("expert_3"));
    assert!(r.stdout.contains("->"));
}

#[test]
fn cost_appends_columns_and_passes_others_through() {
    let csv = "kind,dtype,m,n,k,tag\ngemm,fp16,4096,4096,4096,big\n";
    let r = dyad_in(None, &["cost", "--arch", "a100"], Some(csv));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let mut lines = r.stdout.lines();
    assert_eq!(
        lines.next().unwrap(),
        "kind,dtype,m,n,k,tag,time_s,flops,dram_bytes,op_b,bound"
    );
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(row[5], "big");
    assert_eq!(row[7].parse::<f64>().unwrap(), 2.0 * 4096f64.powi(3));
    assert_eq!(row[8].parse::<f64>().unwrap(), 3.0 * 4096.0 * 4096.0 * 2.0);
    assert_eq!(row[10], "compute");
}

#[test]
fn cost_names_the_line_it_cannot_cost() {
    let csv = "kind,dtype,m,n,k\ngemm,fp16,1,2,3\ngemm,fp16,1,,3\n";
    let r = dyad_in(None, &["cost"], Some(csv));
    expect_input_error(&r, &["line 3", "`n`"]);
    let r = dyad_in(None, &["cost"], Some("kind,dtype\nconv,fp16\n"));
    expect_input_error(&r, &["line 2", "unknown kind \"conv\""]);
}

#[test]
fn missing_file_is_an_input_error() {
    let r = dyad(&["run", "--arch", "no/such.toml"]);
    expect_input_error(&r, &["no/such.toml", "cannot read"]);
}

#[test]
fn malformed_toml_names_line_and_column() {
    let broken = ARCH.replacen("devices = 8", "devices = = 8", 1);
    let line = broken
        .lines()
        .position(|l| l.contains("devices = = 8"))
        .unwrap()
        + 1;
    let r = dyad_with(&[("a.toml", &broken)], &["run", "--arch", "a.toml"]);
    expect_input_error(&r, &[&format!("a.toml:{line}:")]);
}

#[test]
fn unknown_key_is_an_error_naming_it() {
    let broken = ARCH.replacen("bandwidth = \"3.35 TB/s\"", "bandwith = \"3.35 TB/s\"", 1);
    let line = broken
        .lines()
        .position(|l| l.starts_with("bandwith"))
        .unwrap()
        + 1;
    let r = dyad_with(&[("a.toml", &broken)], &["run", "--arch", "a.toml"]);
    expect_input_error(&r, &[&format!("a.toml:{line}:1"), "bandwith"]);
}

#[test]
fn wrong_unit_says_what_was_expected() {
    let broken = ARCH.replacen(
        "bandwidth = \"3.35 TB/s\"",
        "bandwidth = \"3.35 TFLOPS\"",
        1,
    );
    let r = dyad_with(&[("a.toml", &broken)], &["run", "--arch", "a.toml"]);
    expect_input_error(&r, &["a.toml:", "bandwidth", "TFLOPS"]);
}

#[test]
fn zero_or_negative_bandwidth_is_rejected_where_written() {
    for bad in ["0 TB/s", "-3 TB/s"] {
        let broken = ARCH.replacen("\"3.35 TB/s\"", &format!("\"{bad}\""), 1);
        let line = broken.lines().position(|l| l.contains(bad)).unwrap() + 1;
        let r = dyad_with(&[("a.toml", &broken)], &["run", "--arch", "a.toml"]);
        expect_input_error(
            &r,
            &[
                &format!("a.toml:{line}:"),
                "xpu.memory.bandwidth",
                "positive",
            ],
        );
    }
}

#[test]
fn missing_key_is_named() {
    let broken = ARCH.replacen("capacity = \"80 GB\"", "", 1);
    let r = dyad_with(&[("a.toml", &broken)], &["run", "--arch", "a.toml"]);
    expect_input_error(&r, &["a.toml", "xpu.memory.capacity"]);
}

#[test]
fn extends_overrides_and_reports_errors_in_the_right_file() {
    let child = "extends = \"base.toml\"\n[xpu.memory]\nbandwidth = \"0 B/s\"\n";
    let r = dyad_with(
        &[("base.toml", ARCH), ("child.toml", child)],
        &["run", "--arch", "child.toml"],
    );
    expect_input_error(&r, &["child.toml:3:"]);
    let child = "extends = \"nowhere.toml\"\n";
    let r = dyad_with(&[("child.toml", child)], &["run", "--arch", "child.toml"]);
    expect_input_error(&r, &["child.toml:1:", "nowhere.toml"]);
    let cyc = "extends = \"child.toml\"\n";
    let r = dyad_with(&[("child.toml", cyc)], &["run", "--arch", "child.toml"]);
    expect_input_error(&r, &["cycle"]);
}

#[test]
fn unsupported_model_family_is_named() {
    let deepseek = r#"{"model_type": "deepseek_v2", "hidden_size": 5120, "n_routed_experts": 160}"#;
    let r = dyad_with(
        &[("config.json", deepseek)],
        &["run", "--model", "config.json"],
    );
    expect_input_error(
        &r,
        &["config.json:1:", "not yet supported: n_routed_experts"],
    );
    let gpt2 = "{\n  \"model_type\": \"gpt2\"\n}";
    let r = dyad_with(&[("config.json", gpt2)], &["run", "--model", "config.json"]);
    expect_input_error(
        &r,
        &["config.json:2:3", "not yet supported: model_type \"gpt2\""],
    );
}

#[test]
fn malformed_json_and_bad_model_toml() {
    let r = dyad_with(
        &[("config.json", "{\n \"hidden_size\": ,\n}")],
        &["run", "--model", "config.json"],
    );
    expect_input_error(&r, &["config.json:2:", "invalid JSON"]);
    let toml = "model_type = \"llama\"\nhiden_size = 4096\n";
    let r = dyad_with(&[("m.toml", toml)], &["run", "--model", "m.toml"]);
    expect_input_error(&r, &["m.toml:2:1", "unknown key `hiden_size`"]);
}

#[test]
fn model_toml_equivalent_of_config_json_runs() {
    let toml = "name = \"tiny\"\nmodel_type = \"llama\"\nhidden_size = 1024\nnum_hidden_layers = 2\n\
                num_attention_heads = 8\nnum_key_value_heads = 2\nintermediate_size = 4096\n\
                vocab_size = 1000\ntorch_dtype = \"bfloat16\"\n";
    let r = dyad_with(
        &[("m.toml", toml)],
        &["run", "--model", "m.toml", "--tp", "1"],
    );
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.contains("tiny"));
}

#[test]
fn bad_arguments_exit_2() {
    expect_input_error(&dyad(&["run", "--batch", "0"]), &["batch"]);
    expect_input_error(&dyad(&["run", "--tp", "3"]), &["tensor-parallel degree 3"]);
    assert_eq!(dyad(&["run", "--phase", "sideways"]).status, 2);
}

#[test]
fn list_names_the_presets() {
    let r = dyad(&["list"]);
    assert_eq!(r.status, 0);
    for n in ["h100", "a100", "h200", "mixtral-8x7b", "llama-3-70b"] {
        assert!(r.stdout.contains(n));
    }
}

#[test]
fn serving_run_writes_report_and_a_trace_perfetto_can_load() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.json");
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/workloads/serving/closed-b32-256-256.toml"
    );
    let r = dyad(&[
        "run",
        "--serving",
        scenario,
        "--format",
        "json",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["kind"], "serving");
    let s = &v["serving"];
    assert_eq!(s["requests_completed"], 512);
    for k in ["ttft_s", "tbt_s", "e2e_s"] {
        assert!(s[k]["p99"].as_f64().unwrap() >= s[k]["p50"].as_f64().unwrap());
    }
    assert!(s["output_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(s["energy_per_output_token_j"].as_f64().unwrap() > 0.0);
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let events = t["traceEvents"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["ph"] == "X" && e["name"].as_str().unwrap().contains("attn_decode"))
    );
    assert_eq!(events.iter().filter(|e| e["ph"] == "b").count(), 512);
}

#[test]
fn bad_serving_scenarios_name_the_key() {
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/workloads/serving/closed-b32-256-256.toml"
    ))
    .unwrap()
    .replace("../../arch/h100.toml", "h100")
    .replace("../models/mixtral-8x7b.json", "mixtral-8x7b");
    let cases = [
        (
            "mode = \"uniform\"",
            "mode = \"sideways\"",
            "unknown routing mode",
        ),
        ("max_batch = 32", "max_batch = 0", "batching.max_batch"),
        ("tp = 4", "tp = 3", "tensor-parallel degree 3"),
        ("kv = \"bf16\"", "kv = \"fp7\"", "unknown element type"),
        ("closed = 32", "clozed = 32", "clozed"),
    ];
    for (from, to, needle) in cases {
        let text = base.replacen(from, to, 1);
        let line = text.lines().position(|l| l.contains(to)).unwrap() + 1;
        let r = dyad_with(&[("s.toml", &text)], &["run", "--serving", "s.toml"]);
        expect_input_error(&r, &[&format!("s.toml:{line}:"), needle]);
    }
}
