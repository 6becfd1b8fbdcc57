//! Issue 18's reproducers for sizes and routing: flags past their limits exit 2 naming the flag
//! (never a segfault, an allocation abort or a panic), routing traces that cannot give each
//! token its top-k experts are refused at their line, and skewed routings that hung the old
//! rejection sampler run.

use crate::util::{Run, dyad, dyad_with, expect_input_error, small_scenario};

/// 2^32, 2^62 and 2^64 − 1 as flag values.
const HUGE: [&str; 3] = ["4294967296", "4611686018427387904", "18446744073709551615"];

/// `dyad validate` on one layout and policy (TP 1, no EP, all-xPU) with `args`.
fn validate(args: &[&str]) -> Run {
    let mut all = vec!["validate", "--tp", "1", "--ep", "1", "--policy", "all-xpu"];
    all.extend_from_slice(args);
    dyad(&all)
}

#[test]
fn validate_prompt_len_of_2_to_the_62_exits_2_naming_the_flag() {
    // Was SIGSEGV: `m * k` wrapped in gemm.rs and the unsafe sgemm read past its operands.
    let r = validate(&["--prompt-len", "4611686018427387904"]);
    expect_input_error(&r, &["--prompt-len 4611686018427387904", "at most 16384"]);
    for flag in ["--kv-len", "--batch", "--layers"] {
        let value = if flag == "--layers" {
            "4294967295"
        } else {
            HUGE[1]
        };
        let r = validate(&[flag, value]);
        expect_input_error(&r, &[&format!("{flag} {value}")]);
    }
}

#[test]
fn a_batch_of_2_to_the_32_or_more_exits_2_in_run_graph_and_validate() {
    // Was an abort: a 32 GiB vector of KV lengths.
    for cmd in ["run", "graph", "validate"] {
        for b in HUGE.iter().chain(&["4294967295"]) {
            let r = dyad(&[cmd, "--batch", b]);
            expect_input_error(&r, &[&format!("--batch {b}"), "at most"]);
        }
    }
}

#[test]
fn run_limits_sit_where_the_help_says() {
    use dyad::app::run::{MAX_BATCH, MAX_LEN, MAX_TOKENS};
    let help = dyad(&["run", "--help"]).stdout;
    for n in [MAX_BATCH, MAX_LEN, MAX_TOKENS] {
        assert!(help.contains(&n.to_string()), "{n}: {help}");
    }
    let s = |n: u64| n.to_string();
    let ok = dyad(&["graph", "--batch", &s(MAX_BATCH), "--kv-len", "1"]);
    assert_eq!(ok.status, 0, "{}", ok.stderr);
    let r = dyad(&["graph", "--batch", &s(MAX_BATCH + 1), "--kv-len", "1"]);
    expect_input_error(&r, &[&format!("--batch {}", MAX_BATCH + 1)]);
    let r = dyad(&[
        "graph",
        "--phase",
        "prefill",
        "--prompt-len",
        &s(MAX_LEN + 1),
    ]);
    expect_input_error(&r, &[&format!("--prompt-len {}", MAX_LEN + 1)]);
    // Was "the batch must be positive": 64 × 2^62 wrapped to zero.
    let r = dyad(&["run", "--phase", "prefill", "--prompt-len", HUGE[1]]);
    expect_input_error(&r, &["--prompt-len"]);
    // Each within its limit, their product past MAX_TOKENS.
    let r = dyad(&["graph", "--batch", &s(MAX_BATCH), "--kv-len", &s(MAX_LEN)]);
    expect_input_error(&r, &["--batch × --kv-len", &s(MAX_BATCH * MAX_LEN)]);
}

#[test]
fn validate_limits_sit_where_the_help_says() {
    use dyad::app::validate::{MAX_BATCH, MAX_KV_LEN, MAX_LAYERS, MAX_PROMPT_LEN};
    let help = dyad(&["validate", "--help"]).stdout;
    let limits = [
        ("--batch", MAX_BATCH),
        ("--kv-len", MAX_KV_LEN),
        ("--prompt-len", MAX_PROMPT_LEN),
        ("--layers", u64::from(MAX_LAYERS)),
    ];
    for (flag, n) in limits {
        assert!(help.contains(&format!("at most {n}")), "{flag}: {help}");
        let r = validate(&[flag, &(n + 1).to_string()]);
        expect_input_error(
            &r,
            &[&format!("{flag} {}", n + 1), &format!("at most {n})")],
        );
    }
    // At the KV limit it runs (decode attention is linear in the KV length).
    let r = validate(&["--kv-len", &MAX_KV_LEN.to_string()]);
    assert_eq!(r.status, 0, "{}", r.stderr);
}

/// The small Mixtral scenario (8 experts, top-2, 32 layers) on H100s with `routing` as its
/// `[routing]` body.
fn scenario(routing: &str) -> String {
    small_scenario("h100", "seed = 1", routing)
}

/// Runs the scenario with trace routing from `rows` (after the CSV header).
fn with_trace(rows: &str) -> Run {
    let s = scenario("mode = \"trace\"\nfile = \"t.csv\"");
    let csv = format!("layer,expert,probability\n{rows}");
    dyad_with(
        &[("s.toml", &s), ("t.csv", &csv)],
        &["run", "--serving", "s.toml", "--format", "json"],
    )
}

/// The serving figures of a report are finite and positive.
#[track_caller]
fn ran(r: &Run) {
    assert_eq!(r.status, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let tps = v["serving"]["output_tokens_per_s"].as_f64().unwrap();
    assert!(tps.is_finite() && tps > 0.0, "{tps}");
}

#[test]
fn routings_that_hung_the_rejection_sampler_run() {
    // Expert 1's 1e-300 must be drawn for every token's second pick.
    ran(&with_trace("0,0,0\n0,1,1e-300\n0,2,1\n"));
    // Beside 1e30 the others' share rounds to nothing in a cumulative sum.
    ran(&with_trace("0,0,1e30\n0,1,1\n0,2,1\n"));
    let zipf = scenario("mode = \"zipf\"\ns = 60");
    ran(&dyad_with(
        &[("s.toml", &zipf)],
        &["run", "--serving", "s.toml", "--format", "json"],
    ));
}

#[test]
fn zipf_too_skewed_for_f64_is_refused_at_its_line() {
    // 2^-2000 underflows to zero: rank 2 could never be drawn.
    let s = scenario("mode = \"zipf\"\ns = 2000");
    let r = dyad_with(&[("s.toml", &s)], &["run", "--serving", "s.toml"]);
    let most = format!("s <= {:.1}", -f64::MIN_POSITIVE.ln() / 2f64.ln());
    expect_input_error(&r, &["s.toml:22:", "routing.s", "top-2", &most]);
}

#[test]
fn routing_traces_that_cannot_give_top_k_are_refused_at_their_line() {
    let cases: &[(&str, &[&str])] = &[
        // A layer of 2^32, 2^63, 2^64 − 1 (once a resize to it), and 2^64.
        (
            "0,0,1\n4294967296,1,1\n",
            &["line 3", "layer \"4294967296\" out of range", "32 layers"],
        ),
        (
            "0,0,1\n9223372036854775808,1,1\n",
            &["line 3", "out of range"],
        ),
        (
            "0,0,1\n18446744073709551615,1,1\n",
            &["line 3", "out of range"],
        ),
        (
            "0,0,1\n18446744073709551616,1,1\n",
            &["line 3", "out of range"],
        ),
        ("0,0,1\n32,1,1\n", &["line 3", "layer \"32\"", "0 to 31"]),
        ("0,8,1\n", &["line 2", "expert \"8\"", "8 experts"]),
        (
            "0,0,1\n0,1,-0.5\n",
            &["line 3", "probability -0.5", "not negative"],
        ),
        ("0,0,1\n0,1,NaN\n", &["line 3", "probability NaN", "finite"]),
        ("0,0,1\n0,1,inf\n", &["line 3", "probability inf", "finite"]),
        ("0,0,1\n0,1,x\n", &["line 3", "\"x\" is not a number"]),
        (
            "0,0,1\n0,0,2\n",
            &["line 3", "layer 0, expert 0 again", "line 2"],
        ),
        // Too few experts a token can go to.
        (
            "0,0,1\n0,1,0\n",
            &["layer 0 (last row at line 3)", "1 of 8 experts", "top-2"],
        ),
        (
            "0,0,1\n0,1,1\n2,0,1\n2,1,1\n",
            &["layer 1 has no rows", "top-2"],
        ),
        ("0,0,1.7e308\n0,1,1.7e308\n", &["layer 0", "sum past the"]),
        ("", &["no rows"]),
        // A comment line counts: the bad row is on line 4.
        ("# from a profile\n0,0,1\n0,1,-1\n", &["line 4"]),
    ];
    for (rows, needles) in cases {
        let r = with_trace(rows);
        let mut all = vec!["t.csv"];
        all.extend_from_slice(needles);
        expect_input_error(&r, &all);
    }
    // The same trace, well formed, runs.
    ran(&with_trace(
        "# from a profile\n0,0,1\n0,1,1\n2,0,1\n2,1,1\n1,3,0.5\n1,4,0.5\n",
    ));
}
