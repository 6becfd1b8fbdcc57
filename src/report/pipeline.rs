//! The pipeline part of a serving report: the stages and micro-batches run, each stage's
//! layers and utilization, the bubble, and the activations sent between stages.

use std::fmt::Write;

use serde::Serialize;

use super::render::si;
use crate::sim::serving::pipeline::PipelineStats;

/// One stage of the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageMetrics {
    /// Its first layer.
    pub first_layer: u32,
    /// Its last layer.
    pub last_layer: u32,
    /// Time it computed, s.
    pub busy_s: f64,
    /// Its busy time over the iterations' makespans.
    pub utilization: f64,
}

/// What a run's pipeline stages did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineMetrics {
    /// Stages.
    pub stages: u64,
    /// Micro-batches per iteration asked for.
    pub micro_batches: u64,
    /// Micro-batches run per iteration, on average (fewer when an iteration had fewer
    /// sequences).
    pub micro_batches_mean: f64,
    /// Share of stage-time idle within the iterations' makespans: 1 − Σ busy ÷ (stages ×
    /// Σ makespan). Each iteration fills and drains the pipe.
    pub bubble_share: f64,
    /// The iterations' makespans summed, s.
    pub pipeline_time_s: f64,
    /// Activation bytes sent over the stage boundaries, per device of a stage.
    pub activation_bytes: f64,
    /// Time of those sends, every boundary counted, s.
    pub send_time_s: f64,
    /// Each stage.
    pub per_stage: Vec<StageMetrics>,
}

impl PipelineMetrics {
    /// The figures of `p`.
    pub fn of(p: &PipelineStats) -> Self {
        let u = p.utilization();
        PipelineMetrics {
            stages: p.stages,
            micro_batches: p.micro_batches,
            micro_batches_mean: p.micro_batches_run as f64 / p.iterations.max(1) as f64,
            bubble_share: p.bubble(),
            pipeline_time_s: p.span,
            activation_bytes: p.activation_bytes,
            send_time_s: p.send_time,
            per_stage: p
                .layers
                .iter()
                .zip(&p.busy)
                .zip(u)
                .map(|((&(a, b), &busy), u)| StageMetrics {
                    first_layer: a,
                    last_layer: b.saturating_sub(1),
                    busy_s: busy,
                    utilization: u,
                })
                .collect(),
        }
    }

    /// The report table's lines.
    pub fn write(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\npipeline    {} stages, {} micro-batches per iteration ({:.2} run on average); bubble {:.1}% of stage-time; {} of activations sent in {}",
            self.stages,
            self.micro_batches,
            self.micro_batches_mean,
            100.0 * self.bubble_share,
            si(self.activation_bytes, "B"),
            si(self.send_time_s, "s"),
        );
        for (i, x) in self.per_stage.iter().enumerate() {
            let _ = writeln!(
                s,
                "  stage {i:<3} layers {:>3}-{:<4} busy {:>10}  utilization {:.1}%",
                x.first_layer,
                x.last_layer,
                si(x.busy_s, "s"),
                100.0 * x.utilization
            );
        }
    }
}

/// The trace's name for the process of pipeline stage `d` (its device 0, of `tp`), with its
/// layers of a model of `layers` layers.
pub fn stage_process(
    p: crate::sim::serving::pipeline::Pipelining,
    d: u64,
    tp: u64,
    layers: u32,
) -> String {
    let (a, b) = p.bounds(layers)[d as usize];
    let ranks = match tp {
        1 => String::new(),
        _ => format!("; TP rank 0 of {tp}, the other ranks run alike"),
    };
    format!("stage {d}: layers {a}-{} (device {}{ranks})", b - 1, d * tp)
}
