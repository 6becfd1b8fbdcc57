//! Expert parallelism's options (issue 14, item 5): the two-batch overlap of the all-to-all
//! with compute and EPLB's redundant experts, on a short DeepSeek-V3 EP 8 run on H200.

use serde_json::Value;

use super::util::{ROOT, dyad_with, expect_input_error};

/// A short DeepSeek-V3 run on 8 × H200 at EP 8 (16 requests of 256 + 8 tokens, all in flight),
/// with `routing` as its `[routing]` body and `extra` appended (an `[expert_parallel]` table).
fn scenario(arch: &str, routing: &str, extra: &str) -> String {
    format!(
        r#"arch = "{arch}"
model = "{ROOT}/workloads/models/deepseek-v3.json"
tp = 1
ep = 8
seed = 1
[precision]
weights = "fp8"
activations = "fp8"
kv = "bf16"
[requests]
count = 16
prompt = {{ fixed = 256 }}
output = {{ fixed = 8 }}
[arrivals]
closed = 16
[batching]
max_batch = 16
max_tokens = 8192
kv_block = 16
memory_utilization = 0.9
[routing]
{routing}
{extra}"#
    )
}

const ZIPF: &str = "mode = \"zipf\"\ns = 1.2";

/// The JSON report of `text` run as a serving scenario (with `files` beside it and `flags`).
fn report(text: &str, files: &[(&str, &str)], flags: &[&str]) -> Value {
    let mut all = vec![("s.toml", text)];
    all.extend_from_slice(files);
    let mut args = vec!["run", "--serving", "s.toml", "--format", "json"];
    args.extend_from_slice(flags);
    let r = dyad_with(&all, &args);
    assert_eq!(r.status, 0, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

fn h200() -> String {
    format!("{ROOT}/arch/h200.toml")
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"))
}

#[test]
fn options_off_leave_the_report_as_it_was() {
    // A table that turns nothing on, and no table, give the same bytes (and no section).
    let plain = report(&scenario(&h200(), ZIPF, ""), &[], &[]);
    let off = "[expert_parallel]\ntwo_batch_overlap = false";
    assert_eq!(report(&scenario(&h200(), ZIPF, off), &[], &[]), plain);
    assert!(plain.get("expert_parallel").is_none());
}

#[test]
fn eplb_under_zipf_lowers_the_most_loaded_device_and_its_copies_take_kv_room() {
    let base = report(&scenario(&h200(), ZIPF, ""), &[], &[]);
    let eplb = report(
        &scenario(&h200(), ZIPF, ""),
        &[],
        &["--redundant-experts", "32"],
    );
    let ep = &eplb["expert_parallel"];
    let (plain, placed) = (f(ep, "load_max_mean_plain"), f(ep, "load_max_mean"));
    // Zipf s = 1.2 over 256 experts, 8 per token: the plain layout's busiest device carries
    // well over the mean; EPLB's 32 copies (4 per device) bring it near the mean.
    assert!(plain > 1.3 && (1.0..1.15).contains(&placed), "{ep}");
    // The copies' weights: 32 / 8 = 4 experts per device, each 58 MoE layers × 3 matrices of
    // 7168 × 2048 fp8 weights (1 byte; the 128 × 128 block scales add 4 / 16384 = 0.02%).
    let copies = 4.0 * 58.0 * 3.0 * 7168.0 * 2048.0;
    let bytes = f(ep, "replica_weight_bytes");
    assert!(
        (bytes / copies - 1.0).abs() < 1e-3,
        "{bytes} against {copies}"
    );
    // They come out of the KV cache: MLA's 512 + 64 bf16 elements per token and layer, 61
    // layers, pooled over 8 devices (8784 B per token per device), in blocks of 16 tokens.
    let cap = |v: &Value| f(&v["serving"], "kv_capacity_tokens");
    let lost = (cap(&base) - cap(&eplb)) * (512.0 + 64.0) * 61.0 * 2.0 / 8.0;
    assert!(
        (lost - bytes).abs() <= 16.0 * 8784.0,
        "{lost} against {bytes}"
    );
    // Every request still finishes with every token.
    let out = |v: &Value| f(&v["serving"], "output_tokens");
    assert_eq!(out(&base), out(&eplb));
}

#[test]
fn eplb_under_balanced_routing_changes_no_device_load() {
    let v = report(
        &scenario(&h200(), "mode = \"uniform\"", ""),
        &[],
        &["--redundant-experts", "32"],
    );
    let ep = &v["expert_parallel"];
    // Balanced counts (± 1 token per expert): both layouts give each device the mean.
    let (plain, placed) = (f(ep, "load_max_mean_plain"), f(ep, "load_max_mean"));
    assert!(
        (plain - 1.0).abs() < 0.01 && (placed - plain).abs() < 0.01,
        "{ep}"
    );
}

#[test]
fn overlap_is_never_slower_than_its_halves_in_turn_nor_faster_than_its_busier_stream() {
    let v = report(&scenario(&h200(), ZIPF, ""), &[], &["--two-batch-overlap"]);
    let ep = &v["expert_parallel"];
    let (serial, over, comm) = (
        f(ep, "overlap_serial_s"),
        f(ep, "overlap_s"),
        f(ep, "overlap_comm_s"),
    );
    // The halves' kernels at half the tokens may cost more than the whole batch's (each reads
    // the weights again), so the bound is the halves one after another: overlap never exceeds
    // it, never beats the busier of compute and link, and hides some of the all-to-all here.
    assert!(over <= serial * (1.0 + 1e-12), "{ep}");
    assert!(over >= (serial - comm).max(comm) * (1.0 - 1e-12), "{ep}");
    assert!(f(ep, "comm_hidden_s") > 0.0, "{ep}");
    assert!((f(ep, "comm_hidden_s") - (serial - over)).abs() < 1e-12 * serial);
}

#[test]
fn overlap_without_link_time_costs_only_the_halves_compute() {
    // A link of unbounded bandwidth and no latency or overhead: the all-to-alls take no time,
    // and the overlapped layers cost their halves' compute, one after another.
    let arch = format!(
        "extends = \"{ROOT}/arch/h200.toml\"\n[node.link]\nbandwidth = \"1e12 TB/s\"\nlatency = \"0 us\"\noverhead = \"0 us\"\n"
    );
    let v = report(
        &scenario("free.toml", ZIPF, ""),
        &[("free.toml", &arch)],
        &["--two-batch-overlap"],
    );
    let ep = &v["expert_parallel"];
    let (serial, over) = (f(ep, "overlap_serial_s"), f(ep, "overlap_s"));
    assert!(f(ep, "overlap_comm_s") < 1e-9 * serial, "{ep}");
    assert!((over - serial).abs() < 1e-9 * serial, "{ep}");
}

#[test]
fn options_a_layout_cannot_take_are_input_errors() {
    let ep1 = scenario(&h200(), ZIPF, "[expert_parallel]\nredundant_experts = 32")
        .replace("ep = 8", "ep = 1");
    let r = dyad_with(&[("s.toml", &ep1)], &["run", "--serving", "s.toml"]);
    expect_input_error(&r, &["expert_parallel", "ep > 1"]);
    let odd = scenario(&h200(), ZIPF, "[expert_parallel]\nredundant_experts = 30");
    let r = dyad_with(&[("s.toml", &odd)], &["run", "--serving", "s.toml"]);
    expect_input_error(&r, &["redundant_experts` = 30", "multiple of ep"]);
    let r = dyad_with(&[], &["run", "--two-batch-overlap"]);
    expect_input_error(&r, &["--two-batch-overlap needs --serving"]);
}
