//! The expert-parallel part of a serving report: the options run (two-batch overlap, EPLB's
//! redundant experts) and their effect: the most loaded device's tokens over the mean device's
//! under the plain layout and under the placement run, the weight bytes the copies add, and
//! the all-to-all time the overlap hid.

use std::fmt::Write;

use serde::Serialize;

use super::render::si;
use crate::sim::expert_parallel::EpStats;

/// What a run's expert-parallel options did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpMetrics {
    /// Whether each MoE layer ran as two overlapped halves.
    pub two_batch_overlap: bool,
    /// EPLB's redundant expert copies (absent without EPLB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redundant_experts: Option<u64>,
    /// Σ max-device tokens ÷ Σ mean-device tokens over MoE layers and iterations, expert e
    /// on device e mod ep.
    pub load_max_mean_plain: f64,
    /// The same under the placement run (EPLB's, or the plain layout without it).
    pub load_max_mean: f64,
    /// Weight bytes per device of the redundant copies.
    pub replica_weight_bytes: f64,
    /// MoE layers priced as two halves (over iterations).
    pub overlap_layers: u64,
    /// Their all-to-all time, s.
    pub overlap_comm_s: f64,
    /// Their time with the halves one after another, s.
    pub overlap_serial_s: f64,
    /// Their time overlapped, s.
    pub overlap_s: f64,
    /// All-to-all time hidden behind the other half's compute, s.
    pub comm_hidden_s: f64,
}

impl EpMetrics {
    /// The figures of `e`.
    pub fn of(e: &EpStats) -> Self {
        let (plain, placed) = e.loads.ratios();
        let o = &e.overlap;
        EpMetrics {
            two_batch_overlap: e.options.two_batch_overlap,
            redundant_experts: e.options.redundant_experts,
            load_max_mean_plain: plain,
            load_max_mean: placed,
            replica_weight_bytes: e.replica_bytes,
            overlap_layers: o.layers,
            overlap_comm_s: o.comm,
            overlap_serial_s: o.serial,
            overlap_s: o.overlapped,
            comm_hidden_s: o.hidden(),
        }
    }

    /// The report table's lines.
    pub fn write(&self, s: &mut String) {
        let eplb = match self.redundant_experts {
            Some(n) => format!(
                "EPLB with {n} redundant experts (+{} weights per device)",
                si(self.replica_weight_bytes, "B")
            ),
            None => "no EPLB".into(),
        };
        let _ = writeln!(
            s,
            "expert parallel: {eplb}; device load max/mean {:.3} (plain layout {:.3})",
            self.load_max_mean, self.load_max_mean_plain,
        );
        if self.two_batch_overlap {
            let share = self.comm_hidden_s / self.overlap_comm_s.max(f64::MIN_POSITIVE);
            let _ = writeln!(
                s,
                "two-batch overlap over {} MoE layers: all-to-all {}, {} of it hidden ({:.0}%); layers {} against {} with the halves one after another",
                self.overlap_layers,
                si(self.overlap_comm_s, "s"),
                si(self.comm_hidden_s, "s"),
                100.0 * share,
                si(self.overlap_s, "s"),
                si(self.overlap_serial_s, "s"),
            );
        }
    }
}
