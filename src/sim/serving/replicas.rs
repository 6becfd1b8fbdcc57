//! Replicas behind a router: `R` copies of one scenario's replica, each a [`Bench`], driven by
//! one event loop; the requests are the scenario's, and the router sends each to a replica when
//! it arrives.
//!
//! A request arriving at `a` is routed once every replica's clock has reached `a` or the
//! replica is idle (nothing in its system, nothing routed to it that has not been released, or
//! only requests arriving at `a` too); until then the replica furthest behind steps. A routed
//! request joins its replica's own arrivals, released by the replica's `plan` as in a plain
//! run, so one replica is the plain engine step for step.

use super::setup::Bench;
use super::stats::ServingResult;
use super::{Scenario, ServingError};
use crate::sim::workload::{Arrivals, RequestSpec};

/// How the router picks a replica for an arriving request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouterPolicy {
    /// Replica `i mod R` for the `i`-th request.
    RoundRobin,
    /// The replica with the fewest outstanding tokens (prompt tokens not yet in its KV cache and
    /// output tokens not yet produced, of every request routed to it and not finished); the
    /// lowest index on ties.
    LeastWork,
}

impl RouterPolicy {
    /// The name in scenarios and reports: `round_robin`, `least_work`.
    pub fn name(self) -> &'static str {
        match self {
            RouterPolicy::RoundRobin => "round_robin",
            RouterPolicy::LeastWork => "least_work",
        }
    }
}

/// Runs `replicas` copies of `s` behind `router` to completion; returns each replica's result.
/// A closed loop with more than one replica is refused (its concurrency would span them).
pub fn simulate_replicas(
    s: &Scenario,
    replicas: u64,
    router: RouterPolicy,
) -> Result<Vec<ServingResult>, ServingError> {
    if replicas == 0 {
        return Err(ServingError::NotPositive);
    }
    if replicas == 1 && matches!(s.arrivals, Arrivals::Closed { .. }) {
        return Ok(vec![super::simulate(s, None)?]);
    }
    if matches!(s.arrivals, Arrivals::Closed { .. }) {
        return Err(ServingError::ClosedPools);
    }
    let mut benches = Vec::new();
    for _ in 0..replicas {
        benches.push(Bench::new(s, None)?);
    }
    let specs = std::mem::take(&mut benches[0].specs);
    for b in &mut benches {
        b.specs.clear();
    }
    let mut k = 0;
    loop {
        if let Some(spec) = specs.get(k) {
            let a = spec.arrival.unwrap_or(0.0);
            if benches.iter().all(|b| ready(b, a)) {
                let r = route(&benches, router, k);
                benches[r].specs.push(*spec);
                k += 1;
                continue;
            }
        }
        let next = specs.get(k).and_then(|x| x.arrival);
        let behind = benches
            .iter_mut()
            .filter(|b| has_work(b) && next.is_none_or(|a| !ready(b, a)))
            .min_by(|x, y| x.t.total_cmp(&y.t));
        let Some(b) = behind else { break };
        if let Some(plan) = b.plan()? {
            let c = b.cost(&plan)?;
            b.advance(&plan, &c);
        }
    }
    Ok(benches.into_iter().map(Bench::finish).collect())
}

/// Whether `b`'s state is the one a request arriving at `a` meets.
fn ready(b: &Bench<'_>, a: f64) -> bool {
    let idle = b.queues.in_system() == 0
        && b.specs[b.released..]
            .iter()
            .all(|x| x.arrival.unwrap_or(0.0) == a);
    b.t >= a || idle
}

/// Whether `b` has requests to run.
fn has_work(b: &Bench<'_>) -> bool {
    b.queues.in_system() > 0 || b.released < b.specs.len()
}

/// The replica request `k` goes to.
fn route(benches: &[Bench<'_>], router: RouterPolicy, k: usize) -> usize {
    match router {
        RouterPolicy::RoundRobin => k % benches.len(),
        RouterPolicy::LeastWork => {
            let mut best = (0, u64::MAX);
            for (i, b) in benches.iter().enumerate() {
                let w = outstanding(b);
                if w < best.1 {
                    best = (i, w);
                }
            }
            best.0
        }
    }
}

/// Tokens `b` has yet to run: prompts not in its cache and outputs not produced.
fn outstanding(b: &Bench<'_>) -> u64 {
    let q = &b.queues;
    let held = q.running.iter().chain(q.waiting.iter()).map(|&r| {
        let s = &q.seqs[r];
        s.target.saturating_sub(s.in_kv) + s.output.saturating_sub(s.generated)
    });
    let unreleased = b.specs[b.released..]
        .iter()
        .map(|x: &RequestSpec| x.prompt + x.output);
    held.sum::<u64>() + unreleased.sum::<u64>()
}
