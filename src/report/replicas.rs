//! The replicas part of a serving report: R copies of the scenario's replica behind a router.
//! The report's `serving` figures are the replicas' run merged
//! (`sim::serving::merge_replicas`); this part names the router and gives each replica's share,
//! so the router's effect shows: how evenly requests and tokens spread, and how busy each
//! replica was over the makespan.

use std::fmt::Write;

use serde::Serialize;

use super::render::si;
use super::serving::Percentiles;
use crate::sim::serving::{Replicas, ServingResult};

/// The replicas and what each served.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicasMetrics {
    /// Replicas behind the router (R).
    pub count: u64,
    /// The router's policy: `round_robin` or `least_work`.
    pub router: &'static str,
    /// Devices of all replicas (R × tp × ep).
    pub devices: u64,
    /// Each replica's share, by index.
    pub per_replica: Vec<ReplicaShare>,
}

/// What one replica served.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaShare {
    /// Requests it completed.
    pub requests_completed: u64,
    /// Prompt tokens of those requests.
    pub prompt_tokens: u64,
    /// Output tokens it produced.
    pub output_tokens: u64,
    /// Iterations it ran.
    pub iterations: u64,
    /// Mean sequences per iteration.
    pub mean_batch: f64,
    /// Its last completion, s.
    pub duration_s: f64,
    /// Busy share of its device 0's xPU compute over the makespan of all replicas.
    pub xpu_utilization: f64,
    /// Busy share of its device 0's DRAM path over the makespan.
    pub dram_utilization: f64,
    /// Time to first token of its requests, s.
    pub ttft_s: Percentiles,
    /// End-to-end latency of its requests, s.
    pub e2e_s: Percentiles,
    /// Energy of its devices, J.
    pub energy_j: f64,
    /// What held its throughput back.
    pub limit: &'static str,
}

impl ReplicasMetrics {
    /// The replicas `r` of one replica of `devices` devices, run behind `rep.router`.
    pub fn of(rep: Replicas, devices: u64, r: &[ServingResult]) -> Self {
        let makespan = r
            .iter()
            .map(|x| x.duration)
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE);
        ReplicasMetrics {
            count: rep.count,
            router: rep.router.name(),
            devices: rep.count * devices,
            per_replica: r
                .iter()
                .map(|x| ReplicaShare {
                    requests_completed: x.requests_completed,
                    prompt_tokens: x.prompt_tokens,
                    output_tokens: x.output_tokens,
                    iterations: x.iterations,
                    mean_batch: x.mean_batch,
                    duration_s: x.duration,
                    xpu_utilization: x.busy[0] / makespan,
                    dram_utilization: x.busy[1] / makespan,
                    ttft_s: Percentiles::of_samples(&x.ttft),
                    e2e_s: Percentiles::of_samples(&x.e2e),
                    energy_j: x.energy,
                    limit: x.limit.name(),
                })
                .collect(),
        }
    }

    /// The report table's lines.
    pub fn write(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\nreplicas    {} behind {} ({} devices); figures above are all replicas merged \
             (utilization: the mean replica's device over the makespan)",
            self.count, self.router, self.devices
        );
        let _ = writeln!(
            s,
            "{:>7} {:>9} {:>11} {:>10} {:>6} {:>5} {:>5} {:>9} {:>9} {:>9} {:>10} limit",
            "replica",
            "requests",
            "out tokens",
            "iterations",
            "batch",
            "xpu",
            "dram",
            "TTFT p50",
            "E2E p50",
            "E2E p99",
            "energy",
        );
        for (i, x) in self.per_replica.iter().enumerate() {
            let _ = writeln!(
                s,
                "{i:>7} {:>9} {:>11} {:>10} {:>6.1} {:>4.0}% {:>4.0}% {:>9} {:>9} {:>9} {:>10} {}",
                x.requests_completed,
                x.output_tokens,
                x.iterations,
                x.mean_batch,
                100.0 * x.xpu_utilization,
                100.0 * x.dram_utilization,
                si(x.ttft_s.p50, "s"),
                si(x.e2e_s.p50, "s"),
                si(x.e2e_s.p99, "s"),
                si(x.energy_j, "J"),
                x.limit
            );
        }
    }
}
