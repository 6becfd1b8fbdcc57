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
use super::stats::{ServingResult, add};
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
    /// (policy, name in scenarios, flags and reports, help): the only list, in declaration
    /// order, so that a policy's row is `TABLE[policy as usize]`.
    pub const TABLE: [(RouterPolicy, &'static str, &'static str); 2] = [
        (
            RouterPolicy::RoundRobin,
            "round_robin",
            "request i to replica i mod R",
        ),
        (
            RouterPolicy::LeastWork,
            "least_work",
            "each request to the replica with the fewest outstanding tokens",
        ),
    ];

    /// The name in scenarios and reports: `round_robin`, `least_work`.
    pub fn name(self) -> &'static str {
        Self::TABLE[self as usize].1
    }
}

impl std::str::FromStr for RouterPolicy {
    type Err = crate::names::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::names::parse_name("router", &Self::TABLE, s)
    }
}

/// Replicas behind a router, as a scenario's `[replicas]` table or `--replicas`/`--router` give
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replicas {
    /// Copies of the scenario's replica (its `tp` × `ep` devices each).
    pub count: u64,
    /// How arriving requests are sent to them.
    pub router: RouterPolicy,
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
        return Err(ServingError::ClosedReplicas);
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

/// The run of all `replicas` as one: counts, tokens, energy, iterations and op time summed;
/// latency samples merged (every request's, so percentiles are over all requests); the
/// duration the makespan (the last completion of any replica); the mean batch weighted by
/// iterations; busy seconds the mean replica's (so that busy ÷ duration is the mean device's
/// utilization over the makespan); the KV capacity the replicas' together; the limit decided
/// on the sums under `max_batch`. One replica's run is returned as it is. The timeline is
/// left empty past one replica: each replica's clock runs its own iterations.
pub fn merge_replicas(replicas: &[ServingResult], max_batch: u64) -> ServingResult {
    let Some((first, rest)) = replicas.split_first() else {
        return ServingResult::default();
    };
    if rest.is_empty() {
        return first.clone();
    }
    let mut m = ServingResult {
        timeline: Default::default(),
        ..first.clone()
    };
    let batch_sum = |r: &ServingResult| r.mean_batch * r.iterations as f64;
    let mut batches = batch_sum(first);
    for r in rest {
        m.requests_completed += r.requests_completed;
        m.prompt_tokens += r.prompt_tokens;
        m.output_tokens += r.output_tokens;
        m.duration = m.duration.max(r.duration);
        m.ttft.merge(&r.ttft);
        m.tbt.merge(&r.tbt);
        m.e2e.merge(&r.e2e);
        m.tpot.merge(&r.tpot);
        m.energy += r.energy;
        m.energy_parts.add(r.energy_parts);
        m.energy_static += r.energy_static;
        add(&mut m.unit_time, &r.unit_time);
        m.iterations += r.iterations;
        m.preemptions += r.preemptions;
        m.kv_capacity_tokens += r.kv_capacity_tokens;
        add(&mut m.busy, &r.busy);
        add(&mut m.by_bound, &r.by_bound);
        m.waited_kv += r.waited_kv;
        m.waited_batch += r.waited_batch;
        m.waited_budget += r.waited_budget;
        m.ops_simulated += r.ops_simulated;
        m.cache_hits += r.cache_hits;
        m.cache_misses += r.cache_misses;
        batches += batch_sum(r);
        if let (Some(a), Some(b)) = (&mut m.speculative, &r.speculative) {
            a.rounds += b.rounds;
            a.drafted += b.drafted;
            a.accepted += b.accepted;
            a.emitted += b.emitted;
            a.sequence_rounds += b.sequence_rounds;
            a.draft_time += b.draft_time;
            a.verify_time += b.verify_time;
            add(&mut a.verify_unit_time, &b.verify_unit_time);
        }
    }
    let n = replicas.len() as f64;
    m.busy = m.busy.map(|b| b / n);
    m.mean_batch = batches / m.iterations.max(1) as f64;
    m.limit = super::ServingLimit::of(&m, max_batch);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_router_sits_at_its_own_row_and_its_name_parses_back() {
        for (i, (p, n, _)) in RouterPolicy::TABLE.iter().enumerate() {
            assert_eq!(*p as usize, i, "{n} is out of declaration order");
            assert_eq!(p.name(), *n);
            assert_eq!(n.parse::<RouterPolicy>(), Ok(*p));
        }
        let e = "least-work"
            .parse::<RouterPolicy>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("round_robin, least_work"), "{e}");
    }
}
