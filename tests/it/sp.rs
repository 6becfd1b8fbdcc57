//! `dyad run --sp P` (DeepSpeed-Ulysses sequence parallelism) from the command line.

use crate::util::{dyad, expect_input_error};

fn prefill(extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "run",
        "--arch",
        "h100",
        "--model",
        "workloads/models/llama-2-7b.json",
        "--phase",
        "prefill",
        "--batch",
        "1",
        "--prompt-len",
        "32768",
        "--format",
        "json",
    ]
    .map(String::from)
    .to_vec();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn run(extra: &[&str]) -> crate::util::Run {
    let a = prefill(extra);
    dyad(&a.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn sp_reports_its_degree_and_sends_4nh_over_p_per_layer() {
    let r = run(&["--sp", "8"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["inputs"]["sp"], 8);
    assert_eq!(v["inputs"]["devices"], 8);
    // Llama-2-7B: multi-head, hidden 4096 (Meta's config.json); 4·N·h/P bf16 bytes per layer.
    let want = 4.0 * 32768.0 * 4096.0 / 8.0 * 2.0;
    let layer0: f64 = v["ops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["layer"] == 0 && o["name"].as_str().unwrap().starts_with("sp_"))
        .map(|o| {
            let shape = o["shape"].as_str().unwrap();
            shape.split(' ').next().unwrap().parse::<f64>().unwrap()
        })
        .sum();
    assert_eq!(layer0, want);
    // The group's tokens, as under TP.
    assert_eq!(v["totals"]["tokens"], 32768);
}

#[test]
fn without_sp_the_report_has_no_sp_key() {
    let r = run(&["--tp", "8"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["inputs"].get("sp").is_none());
}

#[test]
fn a_degree_the_run_cannot_take_is_bad_input() {
    // Llama-2-7B's 32 heads do not split 3 ways; 16 devices exceed the node's 8; TP with SP
    // is not modelled.
    let a = prefill(&["--sp", "3"]);
    let r = dyad(&a.iter().map(String::as_str).collect::<Vec<_>>());
    expect_input_error(&r, &["--sp 3", "num_attention_heads (32)"]);
    expect_input_error(&run(&["--sp", "2", "--tp", "2"]), &["--sp 2", "--tp 1"]);
    expect_input_error(&run(&["--sp", "16"]), &["--sp 16", "devices"]);
    let serving = dyad(&[
        "run",
        "--serving",
        "workloads/serving/closed-b32-256-256.toml",
        "--sp",
        "2",
    ]);
    expect_input_error(&serving, &["--sp has no meaning with --serving"]);
}
