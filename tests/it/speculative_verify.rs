//! The speculative round's costing in closed form: the verify pass's LM head has a row per
//! verified position, B·(d + 1); an early-exit verify pass runs its first ℓ layers on the last
//! draft's position only (LayerSkip's reuse, REFERENCE.md §Speculative decoding); the draft
//! passes route tokens to experts as the scenario's routing does; an MoE draft model under
//! skewed routing is refused at its key.

use dyad::config::{load_arch, load_model, load_scenario};
use dyad::hw::Timing;
use dyad::map::Policy;
use dyad::model::{Batch, Parallelism, Precision, PrefillChunk};
use dyad::sim::iteration::{Coster, IterCost, OpSpan, VerifyPass};
use dyad::sim::serving::{IterationRecord, Observer, RequestLife, simulate};

use crate::util::{ROOT, dyad_with, expect_input_error, line_of, small_scenario};

/// Llama-2-7B's linear weights per layer: QKV 4096 × (3 · 4096), output 4096 × 4096, gate and
/// up 4096 × (2 · 11008), down 11008 × 4096 (its HF config: MHA, 32 heads of 128).
const LINEAR: f64 = 4096.0 * (3.0 * 4096.0 + 4096.0 + 2.0 * 11008.0 + 11008.0);
/// Its vocabulary and width: the LM head is a [rows, 4096] × [4096, 32000] GEMM.
const HEAD: f64 = 4096.0 * 32000.0;

/// B = 3 sequences with 100 tokens cached, d = 4 drafts.
const B: u64 = 3;
const D: u64 = 4;
const CTX: u64 = 100;

/// The verify pass of B sequences (`early`: the first `early` layers reuse the drafting),
/// priced with its op spans.
fn verify(early: Option<usize>) -> IterCost {
    let sys = load_arch("h100".as_ref()).unwrap();
    let m = load_model("llama-2-7b".as_ref()).unwrap();
    let par = Parallelism { tp: 1, ep: 1 };
    let p = Precision::uniform(m.dtype);
    let mut c = Coster::new(&sys, &m, par, p, Timing::Kernel, Policy::AllXpu);
    let chunk = PrefillChunk {
        q_len: D + 1,
        ctx: CTX,
        last: true,
    };
    let batch = Batch {
        decode_kv: Vec::new(),
        prefill: vec![chunk; B as usize],
    };
    let last = Batch::decode(B, CTX + D + 1);
    let head = Batch::decode(B * (D + 1), CTX + 1);
    let v = VerifyPass {
        batch: &batch,
        early: early.map(|l| (l, &last)),
        head: &head,
    };
    c.verify(&v, &[], &[], true).unwrap()
}

/// FLOPs of the linear ops (the four projections) of layer `l` in `c`'s spans.
fn linear_flops(c: &IterCost, l: u32) -> f64 {
    let linear = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"];
    (c.spans.iter())
        .filter(|s| s.layer == Some(l) && linear.contains(&s.name.as_str()))
        .map(|s| s.flops)
        .sum()
}

fn span<'c>(c: &'c IterCost, name: &str) -> &'c OpSpan {
    c.spans.iter().find(|s| s.name == name).unwrap()
}

#[test]
fn the_verify_head_has_a_row_per_verified_position() {
    let c = verify(None);
    let head = span(&c, "lm_head");
    assert_eq!(head.tokens, Some(B * (D + 1)));
    let flops = 2.0 * (B * (D + 1)) as f64 * HEAD;
    assert!((head.flops / flops - 1.0).abs() < 1e-12, "{}", head.flops);
    // Every layer runs the d + 1 positions of each sequence.
    for l in [0, 31] {
        let f = 2.0 * (B * (D + 1)) as f64 * LINEAR;
        assert!((linear_flops(&c, l) / f - 1.0).abs() < 1e-12);
    }
}

#[test]
fn an_early_exit_verify_pass_runs_its_first_layers_on_the_last_draft_only() {
    let (ell, full, reused) = (8, verify(None), verify(Some(8)));
    for l in 0..32 {
        // The first ℓ layers: one position per sequence (the d drafted ones ran there while
        // drafting); the rest: all d + 1.
        let rows = if l < ell { B } else { B * (D + 1) };
        let f = 2.0 * rows as f64 * LINEAR;
        let got = linear_flops(&reused, l);
        assert!(
            (got / f - 1.0).abs() < 1e-12,
            "layer {l}: {got} against {f}"
        );
    }
    // What the reuse saves of the linear ops: ℓ layers × B sequences × d positions.
    let saved: f64 = (0..32)
        .map(|l| linear_flops(&full, l) - linear_flops(&reused, l))
        .sum();
    let closed = 2.0 * f64::from(ell) * (B * D) as f64 * LINEAR;
    assert!(
        (saved / closed - 1.0).abs() < 1e-12,
        "{saved} against {closed}"
    );
    // The head and the weights read are the pass's all the same; the time cannot grow.
    assert_eq!(span(&reused, "lm_head").tokens, Some(B * (D + 1)));
    assert!(reused.time <= full.time);
}

/// The tokens of each expert op of each draft pass's layers, a list per layer and pass, in
/// the first decode-only round of 4 sequences.
#[derive(Default)]
struct DraftExperts(Vec<Vec<u64>>);

impl Observer for DraftExperts {
    fn iteration(&mut self, it: &IterationRecord<'_>) {
        if it.prefill > 0 || it.decode != 4 || !self.0.is_empty() {
            return;
        }
        // A layer's expert ops are consecutive: a new layer starts a new group.
        let mut last = None;
        for s in it.cost.spans.iter().filter(|s| s.resource < 5) {
            if !s.name.starts_with("draft expert_") {
                continue;
            }
            if last != Some(s.layer) {
                self.0.push(Vec::new());
                last = Some(s.layer);
            }
            self.0.last_mut().unwrap().push(s.tokens.unwrap());
        }
    }
    fn request(&mut self, _: &RequestLife) {}
}

#[test]
fn draft_passes_route_tokens_as_the_scenarios_routing_does() {
    let dir = tempfile::tempdir().unwrap();
    let table =
        "[speculative]\nmode = \"early_exit\"\ntokens = 2\nexit_layer = 8\nacceptance = 0.5\n";
    let s = small_scenario("h100", "seed = 3", "mode = \"zipf\"\ns = 1.2") + table;
    let path = dir.path().join("s.toml");
    std::fs::write(&path, s).unwrap();
    let s = load_scenario(&path).unwrap();
    let mut seen = DraftExperts::default();
    simulate(&s, Some(&mut seen)).unwrap();
    // 2 passes × 8 layers, each routing 4 tokens to 2 of 8 experts: 8 expert slots a layer.
    assert_eq!(seen.0.len(), 2 * 8);
    for tokens in &seen.0 {
        assert_eq!(tokens.iter().sum::<u64>(), 4 * 2, "{tokens:?}");
    }
    // Balanced routing would give every expert one token in every layer; Zipf's does not.
    assert!(
        seen.0
            .iter()
            .any(|t| t.len() < 8 || t.iter().any(|&n| n != 1)),
        "{:?}",
        seen.0
    );
}

#[test]
fn a_draft_model_of_experts_under_skewed_routing_is_refused_at_its_key() {
    let table = format!(
        "[speculative]\nmode = \"draft\"\ntokens = 2\ndraft_model = \"{ROOT}/workloads/models/mixtral-8x7b.json\"\nacceptance = 0.5\n"
    );
    let s = small_scenario("h100", "", "mode = \"zipf\"\ns = 1.2") + &table;
    let r = dyad_with(&[("s.toml", &s)], &["run", "--serving", "s.toml"]);
    let at = format!("s.toml:{}", line_of(&s, "draft_model = "));
    expect_input_error(&r, &[&at, "speculative.draft_model", "uniform"]);
}
