//! A serving scenario's `[expert_parallel]` table: the options of an expert-parallel layout
//! (`sim::expert_parallel`), each off by default.
//!
//! ```toml
//! [expert_parallel]
//! two_batch_overlap = true   # halves of the batch, all-to-all of one beside compute of the other
//! redundant_experts = 32     # EPLB: 32 extra copies of the hottest experts (DeepSeek-V3's count)
//! ```

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use super::source::Source;
use crate::sim::expert_parallel::EpOptions;
use crate::sim::serving::Scenario;

/// The table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExpertParallel {
    two_batch_overlap: Option<Spanned<bool>>,
    redundant_experts: Option<Spanned<u64>>,
}

/// The options of `raw` (the file's table, `None` without one), with the flags' `overlap`
/// (`--two-batch-overlap`, when set) and `redundant` (`--redundant-experts`) over the file's,
/// checked against scenario `t`: expert parallelism on (ep > 1), a policy that does not
/// overlap units, and (experts + redundant) copies that fill every device's slots alike.
pub(super) fn expert_parallel(
    src: &Source,
    raw: Option<&RawExpertParallel>,
    (overlap, redundant): (bool, Option<u64>),
    t: &Scenario,
) -> Result<EpOptions, ConfigError> {
    let file_overlap = raw.and_then(|r| r.two_batch_overlap.as_ref());
    let file_redundant = raw.and_then(|r| r.redundant_experts.as_ref());
    let o = EpOptions {
        two_batch_overlap: overlap || file_overlap.is_some_and(|v| *v.get_ref()),
        redundant_experts: redundant.or(file_redundant.map(|v| *v.get_ref())),
    };
    if !o.any() {
        return Ok(o);
    }
    // Where an error points: the key that asked for an option, or the whole file for a flag.
    let key = file_redundant
        .map(Spanned::span)
        .or(file_overlap.map(Spanned::span));
    let at = |msg: String| match key.clone() {
        Some(s) => src.at(s, msg),
        None => src.whole(msg),
    };
    if t.ep <= 1 {
        return Err(at(format!(
            "`expert_parallel` options need expert parallelism (ep > 1; ep = {})",
            t.ep
        )));
    }
    if t.policy.overlaps() {
        return Err(at(format!(
            "`expert_parallel` options are priced with one in-order stream per device: policy \"{}\" overlaps units (use all-xpu or dispatch)",
            t.policy.name()
        )));
    }
    if let Some(n) = o.redundant_experts {
        let e = t.model.moe.map_or(0, |m| m.experts);
        if n > e || (e + n) % t.ep != 0 {
            return Err(at(format!(
                "`expert_parallel.redundant_experts` = {n}: the {e} experts and their copies must fill the {} devices alike ((experts + redundant) a multiple of ep, redundant at most the experts)",
                t.ep
            )));
        }
    }
    Ok(o)
}
