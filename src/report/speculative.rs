//! The speculative-decoding part of a serving report: rounds, drafted and accepted tokens, the
//! acceptance rate, tokens per round, and where the round's time went (draft and verify passes,
//! the verify pass's op time on the xPU and on PIM).

use std::fmt::Write;

use serde::Serialize;

use super::render::si;
use crate::sim::serving::speculative::RoundStats;

/// What a run's speculative rounds measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeculativeMetrics {
    /// Tokens drafted per round (d).
    pub tokens: u64,
    /// The early-exit draft's layers (ℓ); absent for a draft model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_layer: Option<u32>,
    /// The acceptance rate the drafts were drawn with.
    pub alpha: f64,
    /// Rounds run.
    pub rounds: u64,
    /// Tokens drafted, over sequences.
    pub drafted: u64,
    /// Drafted tokens accepted.
    pub accepted: u64,
    /// Share of drafted tokens accepted.
    pub acceptance_rate: f64,
    /// Mean tokens a decoding sequence emitted per round.
    pub tokens_per_round: f64,
    /// Time of the draft passes, s.
    pub draft_s: f64,
    /// Time of the verify passes, s.
    pub verify_s: f64,
    /// Share of the verify passes' op time on PIM (device 0).
    pub verify_pim_share: f64,
}

impl SpeculativeMetrics {
    /// The figures of `r`.
    pub fn of(r: &RoundStats) -> Self {
        let [x, p] = r.verify_unit_time;
        SpeculativeMetrics {
            tokens: r.tokens,
            exit_layer: r.exit_layer,
            alpha: r.alpha,
            rounds: r.rounds,
            drafted: r.drafted,
            accepted: r.accepted,
            acceptance_rate: r.acceptance_rate(),
            tokens_per_round: r.tokens_per_round(),
            draft_s: r.draft_time,
            verify_s: r.verify_time,
            verify_pim_share: p / (x + p).max(f64::MIN_POSITIVE),
        }
    }

    /// The report table's lines.
    pub fn write(&self, s: &mut String) {
        let by = match self.exit_layer {
            Some(l) => format!("early exit after layer {l}"),
            None => "draft model".into(),
        };
        let _ = writeln!(
            s,
            "speculative {by}, d = {}, α = {}: {} rounds, {} drafted, {} accepted ({:.1}%), {:.2} tokens per round\n            draft {}, verify {} ({:.0}% of verify op time on PIM)",
            self.tokens,
            self.alpha,
            self.rounds,
            self.drafted,
            self.accepted,
            100.0 * self.acceptance_rate,
            self.tokens_per_round,
            si(self.draft_s, "s"),
            si(self.verify_s, "s"),
            100.0 * self.verify_pim_share,
        );
    }
}
