//! A serving scenario's `[speculative]` table: speculative decoding by early exit (LayerSkip /
//! DEL, arXiv 2504.05598) or by a draft model (GenZ's analysis, arXiv 2406.01698).
//!
//! ```toml
//! [speculative]
//! mode = "early_exit"          # or "draft" (with draft_model = "…")
//! tokens = 4                   # d, tokens drafted per round (under dynamic: the most)
//! exit_layer = 8               # ℓ, early exit only (1 ≤ ℓ < L)
//! acceptance = 0.8             # α in [0, 1), or acceptance_by_layer = [α_1, …, α_{L−1}]
//! dynamic = "tpl"              # early exit: DEL's choice of ℓ and d by tokens per layer
//! ```

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use super::source::Source;
use crate::model::ModelSpec;
use crate::sim::routing::RoutingSpec;
use crate::sim::serving::Scenario;
use crate::sim::serving::speculative::{Acceptance, Drafter, Speculative};

/// Most tokens a round drafts: past it more drafts add less than 4e-5 of a token to a round at
/// any α ≤ 0.99 (E's tail is α^(d+1) / (1 − α), and 0.99^1024 < 4e-5).
const MAX_DRAFT: u64 = 1024;

/// The table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpeculative {
    mode: Spanned<String>,
    tokens: Spanned<u64>,
    exit_layer: Option<Spanned<u64>>,
    /// The draft model's file, relative to the scenario.
    pub(super) draft_model: Option<Spanned<String>>,
    acceptance: Option<Spanned<f64>>,
    acceptance_by_layer: Option<Spanned<Vec<f64>>>,
    dynamic: Option<Spanned<String>>,
}

/// The checked table of scenario `t` (whose model, tp and token budget bound it), or `None`
/// without one; `draft` is the model `draft_model` names, loaded.
pub(super) fn speculative(
    src: &Source,
    raw: Option<&RawSpeculative>,
    t: &Scenario,
    draft: Option<ModelSpec>,
) -> Result<Option<Speculative>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let layers = u64::from(t.model.layers());
    let d = *raw.tokens.get_ref();
    if d > MAX_DRAFT {
        return Err(src.err(
            &raw.tokens,
            format!("`speculative.tokens` = {d} is more than {MAX_DRAFT}"),
        ));
    }
    if d + 1 > t.max_tokens {
        return Err(src.err(
            &raw.tokens,
            format!(
                "`speculative.tokens` = {d}: a verify pass of d + 1 = {} tokens per sequence exceeds `batching.max_tokens` = {}",
                d + 1,
                t.max_tokens
            ),
        ));
    }
    let drafter = drafter(src, raw, t, draft, layers)?;
    let acceptance = acceptance(
        src,
        raw,
        layers,
        matches!(drafter, Drafter::EarlyExit { .. }),
    )?;
    let dynamic = match &raw.dynamic {
        None => false,
        Some(v) if v.get_ref() == "tpl" && matches!(drafter, Drafter::EarlyExit { .. }) => {
            if !matches!(acceptance, Acceptance::ByLayer(_)) {
                return Err(src.err(
                    v,
                    "`speculative.dynamic` = \"tpl\" chooses the exit layer by each layer's rate: give `acceptance_by_layer`",
                ));
            }
            true
        }
        Some(v) => {
            return Err(src.err(
                v,
                format!(
                    "`speculative.dynamic` = \"{}\": the one choice is \"tpl\" (DEL's tokens per layer), with mode = \"early_exit\"",
                    v.get_ref()
                ),
            ));
        }
    };
    Ok(Some(Speculative {
        drafter,
        tokens: d,
        acceptance,
        dynamic,
    }))
}

/// Who drafts: the first `exit_layer` layers, or the draft model (same vocabulary, splits over
/// the target's tp).
fn drafter(
    src: &Source,
    raw: &RawSpeculative,
    t: &Scenario,
    draft: Option<ModelSpec>,
    layers: u64,
) -> Result<Drafter, ConfigError> {
    match raw.mode.get_ref().as_str() {
        "early_exit" => {
            if let Some(k) = &raw.draft_model {
                return Err(src.err(k, "`speculative.draft_model` is for mode = \"draft\""));
            }
            let l = match (&raw.exit_layer, &raw.dynamic) {
                (Some(l), None) => l,
                // DEL chooses the exit layer; 1 stands until it does.
                (None, Some(_)) => return Ok(Drafter::EarlyExit { exit_layer: 1 }),
                (Some(l), Some(_)) => {
                    return Err(src.err(
                        l,
                        "`speculative.exit_layer` with `dynamic`: DEL's rule chooses the exit layer",
                    ));
                }
                (None, None) => {
                    return Err(src.err(&raw.mode, "mode = \"early_exit\" needs `exit_layer`"));
                }
            };
            match *l.get_ref() {
                n if n == 0 || n >= layers => Err(src.err(
                    l,
                    format!(
                        "`speculative.exit_layer` = {n}: the draft exits after 1 to {} of the model's {layers} layers",
                        layers - 1
                    ),
                )),
                n => Ok(Drafter::EarlyExit {
                    exit_layer: n as u32,
                }),
            }
        }
        "draft" => {
            if let Some(l) = &raw.exit_layer {
                return Err(src.err(l, "`speculative.exit_layer` is for mode = \"early_exit\""));
            }
            let (Some(key), Some(m)) = (&raw.draft_model, draft) else {
                return Err(src.err(&raw.mode, "mode = \"draft\" needs `draft_model`"));
            };
            if m.vocab != t.model.vocab {
                return Err(src.err(
                    key,
                    format!(
                        "`speculative.draft_model`: its vocabulary of {} tokens is not the target's {}",
                        m.vocab, t.model.vocab
                    ),
                ));
            }
            m.check_tp(t.tp).map_err(|e| {
                src.err(
                    key,
                    format!(
                        "`speculative.draft_model` runs on the target's devices, split over tp = {}: {e}",
                        t.tp
                    ),
                )
            })?;
            if m.moe.is_some() && t.routing != RoutingSpec::Uniform {
                return Err(src.err(
                    key,
                    "`speculative.draft_model` has experts, but the scenario's `[routing]` routes the target's: a draft of experts routes balanced, so it needs `[routing]` mode = \"uniform\" (or a dense draft)",
                ));
            }
            Ok(Drafter::Model(Box::new(m)))
        }
        other => Err(src.err(
            &raw.mode,
            format!("unknown `speculative.mode` \"{other}\" (valid: early_exit, draft)"),
        )),
    }
}

/// The acceptance rate, one or per exit layer (early exit only), each in [0, 1).
fn acceptance(
    src: &Source,
    raw: &RawSpeculative,
    layers: u64,
    early_exit: bool,
) -> Result<Acceptance, ConfigError> {
    let bad = |a: f64| !(0.0..1.0).contains(&a);
    match (&raw.acceptance, &raw.acceptance_by_layer) {
        (Some(a), None) if bad(*a.get_ref()) => Err(src.err(
            a,
            format!(
                "`speculative.acceptance` = {}: a rate in [0, 1) (at 1 every draft is accepted and a round never ends)",
                a.get_ref()
            ),
        )),
        (Some(a), None) => Ok(Acceptance::Rate(*a.get_ref())),
        (None, Some(v)) if !early_exit => Err(src.err(
            v,
            "`speculative.acceptance_by_layer` is for mode = \"early_exit\"",
        )),
        (None, Some(v)) if v.get_ref().len() as u64 != layers - 1 => Err(src.err(
            v,
            format!(
                "`speculative.acceptance_by_layer` has {} rates; the model's exit layers 1 to {} need {}",
                v.get_ref().len(),
                layers - 1,
                layers - 1
            ),
        )),
        (None, Some(v)) if v.get_ref().iter().any(|&a| bad(a)) => Err(src.err(
            v,
            "`speculative.acceptance_by_layer`: every rate must be in [0, 1)",
        )),
        (None, Some(v)) => Ok(Acceptance::ByLayer(v.get_ref().clone())),
        _ => Err(src.err(
            &raw.mode,
            "[speculative] needs exactly one of `acceptance` and `acceptance_by_layer`",
        )),
    }
}
