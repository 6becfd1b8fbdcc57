//! Speculative decoding, resolved: who drafts (the target's first ℓ layers, LayerSkip / DEL
//! (arXiv 2504.05598), or a second model, GenZ's draft-model analysis (arXiv 2406.01698)), how
//! many tokens a round drafts, and how often a drafted token is accepted.
//!
//! A round of a decoding sequence is `d` draft passes and one verify pass of the target over
//! its `d + 1` positions; the tokens it emits are the accepted drafts plus the target's own
//! next token, `k + 1` with `k` the leading drafts accepted, each with probability α
//! independently, so E[k + 1] = (1 − α^(d+1)) / (1 − α) ([`expected_tokens`]).

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::model::ModelSpec;

/// The random stream of the accepted drafts (lengths are 1, arrivals 2, routing 3).
pub const ACCEPT_STREAM: u64 = 7;

/// Who drafts the tokens of a round.
#[derive(Debug, Clone)]
pub enum Drafter {
    /// Self-speculative early exit: the target's first `exit_layer` layers and its LM head;
    /// the verify pass reuses their KV cache (no memory beyond the target's).
    EarlyExit {
        /// Layers the draft runs (ℓ, 1 ≤ ℓ < L).
        exit_layer: u32,
    },
    /// A second model on the same devices, split as the target: its weights and KV cache take
    /// room beside the target's.
    Model(Box<ModelSpec>),
}

/// How often a drafted token is accepted.
#[derive(Debug, Clone, PartialEq)]
pub enum Acceptance {
    /// One rate α in [0, 1).
    Rate(f64),
    /// The rate of each exit layer 1 ..= L − 1 (early exit).
    ByLayer(Vec<f64>),
}

/// A scenario's `[speculative]` table, checked.
#[derive(Debug, Clone)]
pub struct Speculative {
    /// Who drafts.
    pub drafter: Drafter,
    /// Tokens drafted per round (d; under `dynamic`, the most DEL may choose).
    pub tokens: u64,
    /// The acceptance rate (of the exit layer, for early exit).
    pub acceptance: Acceptance,
    /// DEL's online choice of exit layer and tokens by tokens per layer (TPL).
    pub dynamic: bool,
}

/// The round a run uses: tokens drafted, the exit layer (early exit) and the acceptance rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundShape {
    /// Tokens drafted per round (0: plain decoding).
    pub tokens: u64,
    /// Layers the early-exit draft runs (`None` for a draft model).
    pub exit_layer: Option<u32>,
    /// The acceptance rate of a drafted token.
    pub alpha: f64,
}

/// Expected tokens one round emits with `d` drafts accepted at rate `alpha` each (the leading
/// accepted drafts and the target's own token): (1 − α^(d+1)) / (1 − α).
pub fn expected_tokens(alpha: f64, d: u64) -> f64 {
    if alpha >= 1.0 {
        return (d + 1) as f64;
    }
    (1.0 - alpha.powi(d as i32 + 1)) / (1.0 - alpha)
}

/// DEL's tokens per layer of exit layer ℓ and `d` drafts over `layers` layers: the expected
/// tokens of a round over the layers it loads, E / (d·ℓ + L) (arXiv 2504.05598, §TPL).
pub fn tokens_per_layer(alpha: f64, d: u64, exit: u32, layers: u32) -> f64 {
    expected_tokens(alpha, d) / (d as f64 * f64::from(exit) + f64::from(layers))
}

impl Speculative {
    /// The round a run of a model of `layers` layers uses: as configured, or under `dynamic`
    /// DEL's choice, the exit layer ℓ in 1 .. L and d in 0 ..= `tokens` of highest TPL (ties to
    /// the smaller ℓ, then d). DEL estimates each α_ℓ online from shadow tokens; the simulator
    /// knows the rates, so it applies the rule to them (the estimates' limit) once per run.
    pub fn shape(&self, layers: u32) -> RoundShape {
        let rate = |l: u32| match &self.acceptance {
            Acceptance::Rate(a) => *a,
            Acceptance::ByLayer(v) => v[l as usize - 1],
        };
        match (&self.drafter, self.dynamic) {
            (Drafter::EarlyExit { .. }, true) => {
                let mut best = (f64::MIN, 0, 1);
                for l in 1..layers {
                    for d in 0..=self.tokens {
                        let tpl = tokens_per_layer(rate(l), d, l, layers);
                        if tpl > best.0 {
                            best = (tpl, d, l);
                        }
                    }
                }
                RoundShape {
                    tokens: best.1,
                    exit_layer: Some(best.2),
                    alpha: rate(best.2),
                }
            }
            (Drafter::EarlyExit { exit_layer }, false) => RoundShape {
                tokens: self.tokens,
                exit_layer: Some(*exit_layer),
                alpha: rate(*exit_layer),
            },
            (Drafter::Model(_), _) => RoundShape {
                tokens: self.tokens,
                exit_layer: None,
                alpha: rate(1),
            },
        }
    }

    /// The draft model, when a second model drafts.
    pub fn draft_model(&self) -> Option<&ModelSpec> {
        match &self.drafter {
            Drafter::Model(m) => Some(m),
            Drafter::EarlyExit { .. } => None,
        }
    }
}

/// The drafts of one round a sequence keeps: the leading ones of `d` accepted, each with
/// probability `alpha`.
pub fn accepted(rng: &mut ChaCha8Rng, alpha: f64, d: u64) -> u64 {
    let mut k = 0;
    while k < d && rng.random::<f64>() < alpha {
        k += 1;
    }
    k
}

/// What the rounds of a run measured.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RoundStats {
    /// Rounds run (iterations with a draft).
    pub rounds: u64,
    /// Tokens drafted, over sequences.
    pub drafted: u64,
    /// Drafted tokens accepted.
    pub accepted: u64,
    /// Tokens the decoding sequences emitted in rounds (accepted plus the target's own).
    pub emitted: u64,
    /// Sequence-rounds (one per decoding sequence per round).
    pub sequence_rounds: u64,
    /// Time of the draft passes, s.
    pub draft_time: f64,
    /// Time of the verify passes, s.
    pub verify_time: f64,
    /// Op time of the verify passes on each unit (xPU, PIM), device 0, s.
    pub verify_unit_time: [f64; 2],
    /// Tokens drafted per round (d, as chosen).
    pub tokens: u64,
    /// The early-exit draft's layers (ℓ, as chosen).
    pub exit_layer: Option<u32>,
    /// The acceptance rate drawn from.
    pub alpha: f64,
}

impl RoundStats {
    /// Share of drafted tokens accepted.
    pub fn acceptance_rate(&self) -> f64 {
        self.accepted as f64 / self.drafted.max(1) as f64
    }

    /// Mean tokens a decoding sequence emitted per round.
    pub fn tokens_per_round(&self) -> f64 {
        self.emitted as f64 / self.sequence_rounds.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::workload::rng;

    #[test]
    fn expected_tokens_is_the_geometric_sum() {
        // 1 + α + α² + α³ at α = 0.5: 1.875.
        assert!((expected_tokens(0.5, 3) - 1.875).abs() < 1e-12);
        assert_eq!(expected_tokens(0.0, 5), 1.0);
        assert_eq!(expected_tokens(0.7, 0), 1.0);
    }

    #[test]
    fn accepted_drafts_average_the_closed_form() {
        let mut g = rng(1, ACCEPT_STREAM);
        let n = 200_000;
        let mean = (0..n).map(|_| accepted(&mut g, 0.8, 4) + 1).sum::<u64>() as f64 / n as f64;
        // Var(k + 1) < d²/4 + … ≤ 4 here; 4σ of the mean is under 0.02.
        assert!((mean - expected_tokens(0.8, 4)).abs() < 0.02, "{mean}");
    }

    #[test]
    fn tpl_picks_the_exit_layer_and_length_of_most_tokens_per_layer() {
        // Rates rising with depth; at 32 layers the best is where E / (dℓ + L) peaks.
        let rates: Vec<f64> = (1..32).map(|l| 0.3 + 0.6 * f64::from(l) / 31.0).collect();
        let s = Speculative {
            drafter: Drafter::EarlyExit { exit_layer: 1 },
            tokens: 8,
            acceptance: Acceptance::ByLayer(rates.clone()),
            dynamic: true,
        };
        let r = s.shape(32);
        let best = tokens_per_layer(r.alpha, r.tokens, r.exit_layer.unwrap(), 32);
        for l in 1..32 {
            for d in 0..=8 {
                assert!(tokens_per_layer(rates[l as usize - 1], d, l, 32) <= best);
            }
        }
        assert!(r.tokens > 0);
    }
}
