//! Speculative decoding in the serving engine against plain serving and closed forms: d = 0
//! is plain serving; at batch 1, where a pass costs its layers' weight reads, early exit speeds
//! decode up by E·W(L)/(d·W(ℓ) + W(L)) and a draft model by E/(d·c + 1) (Leviathan et al.,
//! arXiv 2211.17192, as GenZ, arXiv 2406.01698, applies it), E = (1 − α^(d+1))/(1 − α);
//! bad `[speculative]` tables are input errors at their key's line.

use dyad::config::load_model;
use dyad::hw::Timing;
use dyad::map::Policy;
use dyad::model::{Batch, ModelSpec, Parallelism};
use dyad::sim::iteration::Coster;
use dyad::sim::serving::speculative::{Acceptance, Drafter, Speculative, expected_tokens};
use dyad::sim::serving::{Scenario, ServingResult, simulate};
use dyad::sim::workload::Arrivals;

use crate::serving::scenario;
use crate::util::{ROOT, dyad_in, dyad_with, expect_input_error};

/// Llama-3-8B on one H100 at batch 1: 2 requests of a 16-token prompt and 2048 output tokens,
/// so decode is nearly all of the run and its KV reads (2 k tokens × 128 KiB) stay ~2% of the
/// 16 GB of weights a pass reads.
fn batch_one(speculative: Option<Speculative>) -> Scenario {
    let mut s = scenario(
        "llama-3-8b",
        1,
        16,
        2048,
        Arrivals::Closed { concurrency: 1 },
        2,
        1,
    );
    s.speculative = speculative;
    s
}

fn early_exit(d: u64, exit_layer: u32, alpha: f64) -> Speculative {
    Speculative {
        drafter: Drafter::EarlyExit { exit_layer },
        tokens: d,
        acceptance: Acceptance::Rate(alpha),
        dynamic: false,
    }
}

fn run(s: &Scenario) -> ServingResult {
    simulate(s, None).unwrap()
}

/// Weight bytes a pass of the first `layers` layers and the LM head reads (bf16): the memory-
/// bound cost of the pass, up to the bandwidth. The embedding is a gather of one row per token.
fn pass_bytes(m: &ModelSpec, layers: u32) -> f64 {
    let body: u64 = (0..layers).map(|l| m.layer_params(l)).sum();
    2.0 * (body + m.vocab * m.hidden) as f64
}

/// One decode pass of `m` at batch 1 against 1040 cached tokens (the run's mean), s.
fn pass_time(m: &ModelSpec) -> f64 {
    let s = batch_one(None);
    let par = Parallelism { tp: 1, ep: 1 };
    let mut c = Coster::new(&s.sys, m, par, s.precision, Timing::Kernel, Policy::AllXpu);
    c.iteration(&Batch::decode(1, 1040), &[], false)
        .unwrap()
        .time
}

#[test]
fn zero_draft_tokens_is_plain_serving() {
    let plain = run(&batch_one(None));
    let zero = run(&batch_one(Some(early_exit(0, 8, 0.8))));
    assert_eq!(format!("{plain:?}"), format!("{zero:?}"));
    assert!(zero.speculative.is_none());
}

#[test]
fn early_exit_speeds_batch_one_decode_up_by_the_closed_form() {
    let plain = run(&batch_one(None));
    let m = load_model("llama-3-8b".as_ref()).unwrap();
    let l = m.layers();
    for (d, ell, alpha) in [(3, 8, 0.6), (4, 12, 0.8), (2, 4, 0.5)] {
        let r = run(&batch_one(Some(early_exit(d, ell, alpha))));
        let e = expected_tokens(alpha, d);
        let closed = e * pass_bytes(&m, l) / (d as f64 * pass_bytes(&m, ell) + pass_bytes(&m, l));
        let speedup = plain.duration / r.duration;
        assert!(
            (speedup / closed - 1.0).abs() < 0.05,
            "d {d}, ℓ {ell}, α {alpha}: {speedup} against {closed}"
        );
        // The same within 5% with the head left out has no chance here: Llama-3's head is
        // 2.4 layers' weights, so E·L/(dℓ + L) is off by more.
        let bare = e * f64::from(l) / (d as f64 * f64::from(ell) + f64::from(l));
        assert!((speedup / bare - 1.0).abs() > 0.05);
        let st = r.speculative.unwrap();
        // Tokens per round: E, but for the last round of each request, cut at its output.
        assert!((st.tokens_per_round() / e - 1.0).abs() < 0.03);
        assert_eq!(st.drafted, d * st.sequence_rounds);
        assert_eq!(r.output_tokens, 2 * 2048);
    }
}

#[test]
fn a_draft_model_speeds_decode_up_by_its_cost_ratio() {
    let plain = run(&batch_one(None));
    let target = batch_one(None).model;
    let draft = load_model(format!("{ROOT}/workloads/models/llama-3.2-1b.json").as_ref()).unwrap();
    let (d, alpha) = (4, 0.7);
    let sp = Speculative {
        drafter: Drafter::Model(Box::new(draft.clone())),
        tokens: d,
        acceptance: Acceptance::Rate(alpha),
        dynamic: false,
    };
    let r = run(&batch_one(Some(sp)));
    // c: the time of a draft pass against a target pass at the run's mean context (a pass of
    // the 1B draft is not its weight reads alone: its small GEMMs are nearer their launch cost).
    let c = pass_time(&draft) / pass_time(&target);
    let closed = expected_tokens(alpha, d) / (d as f64 * c + 1.0);
    let speedup = plain.duration / r.duration;
    assert!(
        (speedup / closed - 1.0).abs() < 0.05,
        "{speedup} against {closed}"
    );
    // Its weights and KV cache share the device: the cache holds fewer tokens.
    assert!(r.kv_capacity_tokens < plain.kv_capacity_tokens);
}

#[test]
fn the_tpl_choice_is_at_least_every_fixed_exit_layer_it_considers() {
    // Rates rising with depth; DEL's choice by tokens per layer beats fixed choices at batch 1
    // by at most the closed form's error and loses to none of them by more.
    let rates: Vec<f64> = (1..32).map(|l| 0.2 + 0.75 * f64::from(l) / 31.0).collect();
    let sp = |dynamic, ell| Speculative {
        drafter: Drafter::EarlyExit { exit_layer: ell },
        tokens: 6,
        acceptance: Acceptance::ByLayer(rates.clone()),
        dynamic,
    };
    let tpl = run(&batch_one(Some(sp(true, 1)))).duration;
    for ell in [4, 8, 16, 24] {
        let fixed = run(&batch_one(Some(sp(false, ell)))).duration;
        assert!(tpl <= fixed * 1.02, "ℓ {ell}: {tpl} against {fixed}");
    }
}

/// A small Llama-3-8B scenario (32 layers, vocabulary 128256) with `table` as its
/// `[speculative]` table (its `mode` at line 20, then `table` from line 21).
fn with_table(table: &str, tp: u64) -> String {
    format!(
        r#"arch = "{ROOT}/arch/h100.toml"
model = "{ROOT}/workloads/models/llama-3-8b.json"
tp = {tp}
[precision]
weights = "bf16"
activations = "bf16"
kv = "bf16"
[requests]
count = 2
prompt = {{ fixed = 16 }}
output = {{ fixed = 8 }}
[arrivals]
closed = 1
[batching]
max_batch = 1
max_tokens = 64
kv_block = 16
memory_utilization = 0.9
[speculative]
mode = "{mode}"
{table}
"#,
        mode = if table.contains("draft_model") {
            "draft"
        } else {
            "early_exit"
        }
    )
}

#[test]
fn bad_speculative_tables_are_input_errors_at_their_key() {
    let cases: [(&str, u64, &[&str]); 5] = [
        (
            "tokens = 4\nexit_layer = 32\nacceptance = 0.8",
            1,
            &["s.toml:22", "speculative.exit_layer", "1 to 31"],
        ),
        (
            "tokens = 64\nexit_layer = 8\nacceptance = 0.8",
            1,
            &["s.toml:21", "speculative.tokens", "max_tokens"],
        ),
        (
            "tokens = 4\nexit_layer = 8\nacceptance = 1.0",
            1,
            &["s.toml:23", "speculative.acceptance", "[0, 1)"],
        ),
        (
            &format!(
                "tokens = 4\ndraft_model = \"{ROOT}/workloads/models/mixtral-8x7b.json\"\nacceptance = 0.8"
            ),
            1,
            &["s.toml:22", "vocabulary of 32000"],
        ),
        (
            "tokens = 4\ndraft_model = \"d.json\"\nacceptance = 0.8",
            8,
            &["s.toml:22", "tp = 8", "num_attention_heads"],
        ),
    ];
    // A draft of Llama-3's vocabulary whose 12 heads do not split over 8 devices.
    let d = std::fs::read_to_string(format!("{ROOT}/workloads/models/llama-3.2-1b.json"))
        .unwrap()
        .replace("\"num_attention_heads\": 32", "\"num_attention_heads\": 12")
        .replace("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 4")
        .replace("\"hidden_size\": 2048", "\"hidden_size\": 768");
    for (table, tp, needles) in cases {
        let s = with_table(table, tp);
        let r = dyad_with(
            &[("s.toml", &s), ("d.json", &d)],
            &["run", "--serving", "s.toml"],
        );
        expect_input_error(&r, needles);
    }
}

#[test]
fn a_speculative_run_reports_and_traces_its_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_table("tokens = 3\nexit_layer = 8\nacceptance = 0.7", 1);
    std::fs::write(dir.path().join("s.toml"), s).unwrap();
    let args = [
        "run",
        "--serving",
        "s.toml",
        "--trace",
        "t.json",
        "--format",
        "json",
    ];
    let r = dyad_in(dir.path(), &args, None);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let sp = &j["speculative"];
    assert_eq!(
        (sp["tokens"].as_u64(), sp["exit_layer"].as_u64()),
        (Some(3), Some(8))
    );
    let (drafted, rounds) = (
        sp["drafted"].as_u64().unwrap(),
        sp["rounds"].as_u64().unwrap(),
    );
    // Batch 1: one sequence per round, 3 drafts each.
    assert_eq!(drafted, 3 * rounds);
    assert!(sp["accepted"].as_u64().unwrap() <= drafted);
    assert!(sp["draft_s"].as_f64().unwrap() > 0.0 && sp["verify_s"].as_f64().unwrap() > 0.0);
    // Every round's iteration slice carries its drafts, and they sum to the report's.
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("t.json")).unwrap()).unwrap();
    let events = t["traceEvents"].as_array().unwrap();
    let traced: u64 = events
        .iter()
        .filter_map(|e| e["args"]["drafted"].as_u64())
        .sum();
    assert_eq!(traced, drafted);
    // The `speculation` counter track has each round's drafts and accepted drafts.
    let counter = |key: &str| -> u64 {
        (events.iter())
            .filter(|e| e["ph"] == "C" && e["name"] == "speculation")
            .filter_map(|e| e["args"][key].as_u64())
            .sum()
    };
    assert_eq!(counter("drafts"), drafted);
    assert_eq!(counter("accepted_drafts"), sp["accepted"].as_u64().unwrap());
    assert!(
        events
            .iter()
            .any(|e| e["name"].as_str().is_some_and(|n| n.contains("draft ")))
    );
}
