//! Issue 18's remaining reproducers, each a test: every one ends in status 2 with a message that
//! places the fault (a line of the file, a key, or the flag), where it once crashed, hung, or
//! printed a number that is not one with status 0.

use crate::util::{ROOT, Run, dyad, dyad_with, expect_input_error, line_of, small_scenario};

/// The small Mixtral scenario with `from` replaced by `to`, run.
fn scenario_with(from: &str, to: &str) -> Run {
    let s = small_scenario("h100", "seed = 1", "mode = \"uniform\"");
    assert!(s.contains(from), "{from}");
    let s = s.replacen(from, to, 1);
    dyad_with(&[("s.toml", &s)], &["run", "--serving", "s.toml"])
}

#[test]
fn a_request_count_of_2_to_the_32_is_refused_at_its_line() {
    // Was an allocation abort: a vector of 2^32 request records.
    let r = scenario_with("count = 8", "count = 4294967296");
    let s = small_scenario("h100", "seed = 1", "mode = \"uniform\"");
    let at = format!("s.toml:{}:9", line_of(&s, "count = 8"));
    expect_input_error(&r, &[&at, "`requests.count` = 4294967296"]);
}

#[test]
fn lengths_past_the_limit_are_refused_and_long_runs_need_the_work_flag() {
    let r = scenario_with(
        "output = { fixed = 8 }",
        "output = { fixed = 18014398509481984 }",
    );
    let s = small_scenario("h100", "seed = 1", "mode = \"uniform\"");
    let at = format!("s.toml:{}:10", line_of(&s, "output = { fixed = 8 }"));
    expect_input_error(&r, &[&at, "longer than"]);
    // Within every bound, 10^6 requests of 2^20 output tokens at batch 4 would take at least
    // 2.6e11 iterations: refused before it starts, with the flag that lifts it.
    let s = small_scenario("h100", "seed = 1", "mode = \"uniform\"")
        .replacen("count = 8", "count = 1000000", 1)
        .replacen("output = { fixed = 8 }", "output = { fixed = 1048576 }", 1);
    let r = dyad_with(&[("s.toml", &s)], &["run", "--serving", "s.toml"]);
    expect_input_error(&r, &["at least 2.621e11 iterations", "--work-limit"]);
}

#[test]
fn one_long_request_sets_the_least_iterations_the_work_flag_weighs() {
    // Seven short requests and one of 65,536 output tokens: however wide the batch, the long
    // one decodes one token per iteration, so the run takes at least 65,536 (the batch's share,
    // 65,592 / 4 = 16,398, would pass a limit of 20,000; the fuzzer found the run it let by).
    let rows = "64,8,0.0\n".repeat(7) + "64,65536,0.0\n";
    let s = small_scenario("h100", "seed = 1", "mode = \"uniform\"")
        .replacen("count = 8", "count = 8\ntrace = \"r.csv\"", 1)
        .replacen("prompt = { fixed = 64 }\n", "", 1)
        .replacen("output = { fixed = 8 }\n", "", 1)
        .replacen("closed = 4", "trace = true", 1);
    let csv = format!("prompt_len,output_len,arrival_s\n{rows}");
    let r = dyad_with(
        &[("s.toml", &s), ("r.csv", &csv)],
        &["run", "--serving", "s.toml", "--work-limit", "20000"],
    );
    expect_input_error(&r, &["at least 6.554e4 iterations", "--work-limit"]);
}

/// A request trace with `rows` after its header, its arrivals taken from it.
fn trace_run(rows: &str, count: u64) -> Run {
    let s = small_scenario("h100", "seed = 1", "mode = \"uniform\"")
        .replacen(
            "count = 8",
            &format!("count = {count}\ntrace = \"r.csv\""),
            1,
        )
        .replacen("prompt = { fixed = 64 }\n", "", 1)
        .replacen("output = { fixed = 8 }\n", "", 1)
        .replacen("closed = 4", "trace = true", 1);
    let csv = format!("# arrivals in seconds\nprompt_len,output_len,arrival_s\n{rows}");
    dyad_with(
        &[("s.toml", &s), ("r.csv", &csv)],
        &["run", "--serving", "s.toml"],
    )
}

#[test]
fn trace_arrivals_must_be_finite_times_and_cover_the_count() {
    // NaN hung the engine; ±inf and 1e308 gave null TTFTs with status 0; -1 was accepted.
    for bad in ["NaN", "inf", "-inf", "1e308", "-1"] {
        let r = trace_run(&format!("64,8,0.0\n64,8,{bad}\n"), 2);
        // Line 4: the comment and the header come first.
        expect_input_error(&r, &["r.csv", "line 4", "`arrival_s`"]);
    }
    let r = trace_run("64,8,0.0\n64,8,0.5\n", 2);
    assert_eq!(r.status, 0, "{}", r.stderr);
    // More requests than rows would repeat the trace's arrival times.
    let r = trace_run("64,8,0.0\n64,8,0.5\n", 3);
    expect_input_error(&r, &["s.toml", "more than the trace's 2 rows"]);
}

/// `dyad run --model` on the Mixtral config with `from` replaced by `to`.
fn model_with(from: &str, to: &str) -> Run {
    let text =
        std::fs::read_to_string(format!("{ROOT}/workloads/models/mixtral-8x7b.json")).unwrap();
    assert!(text.contains(from), "{from}");
    let m = text.replacen(from, to, 1);
    dyad_with(&[("m.json", &m)], &["run", "--model", "m.json"])
}

#[test]
fn model_sizes_past_their_bounds_are_refused_at_their_keys() {
    let text =
        std::fs::read_to_string(format!("{ROOT}/workloads/models/mixtral-8x7b.json")).unwrap();
    let at = |key: &str| format!("m.json:{}:3", line_of(&text, key));
    // Was a panic (2^63 − 1 experts) and an allocation of 10^7 layer plans.
    let r = model_with(
        "\"num_local_experts\": 8",
        "\"num_local_experts\": 9223372036854775807",
    );
    expect_input_error(&r, &[&at("num_local_experts"), "is more than 4096"]);
    let r = model_with(
        "\"num_hidden_layers\": 32",
        "\"num_hidden_layers\": 10000000",
    );
    expect_input_error(&r, &[&at("num_hidden_layers"), "more than 1024"]);
    // A shape error is placed at the key it names, not at the file.
    let r = model_with("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 7");
    expect_input_error(&r, &[&at("num_key_value_heads"), "not divisible"]);
}

#[test]
fn validate_past_its_work_limit_is_refused_with_the_flag() {
    // --scale 1 ran the full Mixtral on reference kernels without bound.
    let r = dyad(&["validate", "--scale", "1"]);
    expect_input_error(&r, &["FLOP-equivalents", "--work-limit"]);
}

/// `dyad ppa` on the H100 with one line of its die file (or the node library) replaced.
fn ppa_with(file: &str, from: &str, to: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let copy = |rel: &str| {
        let to_path = dir.path().join(rel);
        std::fs::create_dir_all(to_path.parent().unwrap()).unwrap();
        std::fs::copy(format!("{ROOT}/{rel}"), to_path).unwrap();
    };
    for f in [
        "arch/h100.toml",
        "arch/tech/dies/h100.toml",
        "arch/tech/nodes.toml",
        "arch/tech/devices.toml",
        "arch/tech/model.toml",
    ] {
        copy(f);
    }
    let p = dir.path().join(file);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{from}");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
    crate::util::dyad_in(dir.path(), &["ppa", "arch/h100.toml"], None)
}

#[test]
fn dies_that_cannot_be_built_are_refused_not_priced_at_infinity() {
    // 5e-324 transistors gave NaN watts; 2^48 blocks gave $inf per good die.
    let r = ppa_with(
        "arch/tech/dies/h100.toml",
        "transistors = 1.1878e8",
        "transistors = 5e-324",
    );
    expect_input_error(&r, &["h100.toml:18:15", "found 5e-324"]);
    let r = ppa_with(
        "arch/tech/dies/h100.toml",
        "count = 144",
        "count = 281474976710656",
    );
    expect_input_error(&r, &["the die cannot be built", "`count`"]);
}

#[test]
fn a_subnormal_bandwidth_is_refused_at_its_line() {
    // 1e-320 TB/s gave infinite op times with status 0.
    let text = std::fs::read_to_string(format!("{ROOT}/arch/h100.toml")).unwrap();
    let a = text.replacen(
        "bandwidth = \"3.35 TB/s\"",
        "bandwidth = \"1e-320 TB/s\"",
        1,
    );
    let r = dyad_with(&[("a.toml", &a)], &["run", "--arch", "a.toml"]);
    let at = format!("a.toml:{}:13", line_of(&text, "bandwidth = \"3.35 TB/s\""));
    expect_input_error(&r, &[&at, "positive normal number"]);
}

#[test]
fn located_errors_for_paths_tp_and_bytes_that_are_not_text() {
    // A scenario's missing arch is reported at the scenario's `arch` line.
    let r = scenario_with("/arch/h100.toml", "/arch/nope.toml");
    expect_input_error(&r, &["s.toml:1:8", "`arch`", "nope.toml"]);
    // --tp 3 names the flag, not `model:`.
    expect_input_error(&dyad(&["run", "--tp", "3"]), &["--tp 3", "does not divide"]);
    // Invalid UTF-8 gives its line, column and byte.
    let bad = b"name = \"x\"\narch = \"\xff\"\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), bad).unwrap();
    let r = crate::util::dyad_in(dir.path(), &["run", "--serving", "s.toml"], None);
    expect_input_error(&r, &["s.toml", "line 2, column 9 (byte 19)"]);
    // Too little memory for a KV cache names the key that sets the budget.
    let r = scenario_with("memory_utilization = 0.9", "memory_utilization = 1e-10");
    expect_input_error(&r, &["`batching.memory_utilization`"]);
}

#[test]
fn compare_refuses_files_that_are_not_reports() {
    let report = dyad(&["run", "--format", "json"]);
    assert_eq!(report.status, 0, "{}", report.stderr);
    let negative = report.stdout.replacen("\"time_s\": ", "\"time_s\": -", 1);
    let files = [
        ("a.json", report.stdout.as_str()),
        ("b.json", "{\"anything\": 1}"),
        ("c.json", negative.as_str()),
    ];
    let r = dyad_with(&files, &["compare", "a.json", "b.json"]);
    expect_input_error(&r, &["b.json: not a dyad report", "`schema_version`"]);
    let r = dyad_with(&files, &["compare", "a.json", "c.json"]);
    expect_input_error(&r, &["c.json: not a dyad report", "`ops[0].time_s`"]);
}
