//! Prefill/decode disaggregation (Splitwise, arXiv 2311.18677; DistServe, arXiv 2401.09670):
//! a prefill pool and a decode pool, each a [`Bench`] of its own arch, devices and policy, driven
//! by one event loop.
//!
//! The prefill pool runs every request's prompt under continuous batching (chunks of prefill);
//! its first output token is produced at the end of its prefill, as Splitwise counts TTFT. The
//! request's KV (all layers, all heads: `kv_bytes_held(prompt)`) is then sent over one link
//! between the pools, first come first served: a transfer starts when the link is free and
//! takes bytes ÷ bandwidth, and arrives `latency` after it ends. The decode pool admits the
//! request when its KV has arrived (no prefill chunk: `Seq::kv_ready`) and decodes the rest of
//! its output. Each pool's devices draw static power for the whole run.
//!
//! The loop steps whichever pool's clock is behind (prefill on ties): an arrival at the decode
//! pool is produced by a prefill completion, no earlier than the prefill pool's clock, and
//! arrivals are in order (the link is FIFO), so neither pool ever misses an event before its
//! clock.

use std::collections::VecDeque;

use super::samples::Samples;
use super::schedule::Seq;
use super::setup::Bench;
use super::stats::{Clock, ServingResult};
use super::{Observer, Scenario, ServingError};
use crate::sim::workload::Arrivals;

/// The link that carries KV from the prefill pool to the decode pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KvLink {
    /// Bytes per second (`f64::INFINITY` for an unbounded link).
    pub bandwidth: f64,
    /// Seconds from the end of a transfer to its arrival.
    pub latency: f64,
    /// Joules per bit sent.
    pub energy_per_bit: f64,
}

impl KvLink {
    /// Seconds to send `bytes` over an idle link: bytes ÷ bandwidth + latency.
    pub fn transfer_time(&self, bytes: f64) -> f64 {
        bytes / self.bandwidth + self.latency
    }
}

/// A disaggregated serving run: the requests are `prefill`'s (count, lengths, arrivals, seed);
/// `decode` gives the decode pool's system, model layout, policy and limits (its requests and
/// arrivals are not used).
#[derive(Debug, Clone)]
pub struct Disagg {
    /// The prefill pool and the requests.
    pub prefill: Scenario,
    /// The decode pool.
    pub decode: Scenario,
    /// Between the pools.
    pub link: KvLink,
}

/// What a disaggregated run measured.
#[derive(Debug, Clone, Default)]
pub struct DisaggResult {
    /// The prefill pool's run: its TTFT is the system's; static energy over the whole run.
    pub prefill: ServingResult,
    /// The decode pool's run: its TBT is the system's (the first gap includes the transfer);
    /// its e2e covers the requests it decoded, from their arrival at the prefill pool.
    pub decode: ServingResult,
    /// Time on the link of each request's KV (bytes ÷ bandwidth + latency), s.
    pub kv_transfer: Samples,
    /// Time each request's KV waited for the link, s.
    pub kv_link_wait: Samples,
    /// KV bytes sent.
    pub kv_bytes: f64,
    /// Energy of the link, J.
    pub link_energy: f64,
    /// End-to-end latency of every request, s (the decode pool's, then those of one output
    /// token, whose samples a run keeps exactly below `EXACT`).
    pub e2e: Samples,
    /// From the first arrival to the last token, s.
    pub duration: f64,
    /// Both pools and the link, J.
    pub energy: f64,
    /// Output tokens of both pools.
    pub output_tokens: u64,
}

/// One request's KV on the link, as an [`Observer`] sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KvTransfer {
    /// The request's index in the run.
    pub id: usize,
    /// When its prefill finished, s.
    pub prefill_done: f64,
    /// When its KV went on the link (later than `prefill_done` if the link was busy), s.
    pub start: f64,
    /// Bytes ÷ bandwidth + latency: its KV reaches the decode pool at `start + time`, s.
    pub time: f64,
    /// KV bytes sent.
    pub bytes: f64,
}

/// A request whose KV is on its way to the decode pool.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    prompt: u64,
    output: u64,
    arrival: f64,
    first_token: f64,
    /// When its KV reaches the decode pool, s.
    at: f64,
}

/// Runs `d` to completion. A closed loop is refused: its concurrency would span both pools.
pub fn simulate_disagg(d: &Disagg) -> Result<DisaggResult, ServingError> {
    simulate_disagg_observed(d, None, None)
}

/// Runs `d` to completion, showing each pool's iterations and finished requests to its
/// observer (op spans are recorded only with one) and each KV transfer to the prefill pool's.
pub fn simulate_disagg_observed<'a>(
    d: &'a Disagg,
    prefill: Option<&'a mut dyn Observer>,
    decode: Option<&'a mut dyn Observer>,
) -> Result<DisaggResult, ServingError> {
    if matches!(d.prefill.arrivals, Arrivals::Closed { .. }) {
        return Err(ServingError::ClosedPools);
    }
    let dec_s = Scenario {
        arrivals: Arrivals::Poisson { rate: 1.0 },
        count: 1,
        ..d.decode.clone()
    };
    let mut pre = Bench::new(&d.prefill, prefill)?;
    // The decode pool's scenario lives here, shorter than the observer: reborrow it.
    let decode = decode.map(|o| -> &mut dyn Observer { o });
    let mut dec = Bench::new(&dec_s, decode)?;
    dec.specs.clear();
    let outputs: Vec<u64> = pre.specs.iter().map(|s| s.output).collect();
    for s in &mut pre.specs {
        s.output = 1;
    }
    let mut out = DisaggResult::default();
    let mut pending = VecDeque::new();
    let (mut link_free, mut pre_done) = (0.0_f64, false);
    loop {
        let dec_idle = dec.queues.in_system() == 0;
        if !pre_done && (pre.t <= dec.t || (dec_idle && pending.is_empty())) {
            match pre.plan()? {
                None => pre_done = true,
                Some(plan) => {
                    let c = pre.cost(&plan)?;
                    pre.advance(&plan, &c);
                    for &(r, _) in &plan.chunks {
                        if pre.queues.seqs[r].done() {
                            let f = send(d, &mut pre, r, outputs[r], &mut link_free, &mut out);
                            pending.extend(f);
                        }
                    }
                }
            }
            continue;
        }
        if dec_idle {
            match pending.front() {
                Some(f) => dec.t = dec.t.max(f.at),
                None => break,
            }
        }
        while pending.front().is_some_and(|f| f.at <= dec.t) {
            let f = pending.pop_front().expect("checked");
            dec.release_ready(&f);
        }
        let plan = dec.plan()?.expect("the decode pool has requests");
        let c = dec.cost(&plan)?;
        dec.advance(&plan, &c);
    }
    Ok(finish(pre, dec, out))
}

/// Request `r` has finished its prefill now: its KV goes on the link (FIFO); `None` if it
/// needs no decode (one output token).
fn send(
    d: &Disagg,
    pre: &mut Bench<'_>,
    r: usize,
    output: u64,
    link_free: &mut f64,
    out: &mut DisaggResult,
) -> Option<InFlight> {
    let (t, q, clock) = (pre.t, &pre.queues.seqs[r], &pre.clocks[r]);
    if output <= 1 {
        out.e2e.push(t - clock.arrival);
        return None;
    }
    let s = &d.prefill;
    let bytes = s.model.kv_bytes_held(q.prompt, s.precision.kv, 1);
    let start = link_free.max(t);
    *link_free = start + bytes / d.link.bandwidth;
    out.kv_transfer.push(d.link.transfer_time(bytes));
    out.kv_link_wait.push(start - t);
    out.kv_bytes += bytes;
    out.link_energy += bytes * 8.0 * d.link.energy_per_bit;
    let (prompt, arrival) = (q.prompt, clock.arrival);
    if let Some(o) = pre.observer.as_deref_mut() {
        o.kv_transfer(&KvTransfer {
            id: r,
            prefill_done: t,
            start,
            time: d.link.transfer_time(bytes),
            bytes,
        });
    }
    Some(InFlight {
        prompt,
        output,
        arrival,
        first_token: t,
        at: start + d.link.transfer_time(bytes),
    })
}

impl Bench<'_> {
    /// Releases a request whose KV has just arrived, its first token already produced.
    fn release_ready(&mut self, f: &InFlight) {
        let mut seq = Seq::new(f.prompt, f.output);
        (seq.generated, seq.kv_ready) = (1, true);
        self.queues.arrive(seq);
        self.clocks.push(Clock {
            arrival: f.arrival,
            first_token: Some(f.first_token),
            last_token: f.first_token,
        });
    }
}

/// Both pools' totals over the run's duration (each pool's devices idle to the end).
fn finish(pre: Bench<'_>, dec: Bench<'_>, mut out: DisaggResult) -> DisaggResult {
    let duration = pre.t.max(dec.t);
    let idle = |b: &Bench<'_>| {
        let devices = (b.s.tp * b.s.ep) as f64;
        b.s.sys.xpu.energy.static_power.value() * devices * (duration - b.t)
    };
    let (pre_idle, dec_idle) = (idle(&pre), idle(&dec));
    let (mut p, mut d) = (pre.finish(), dec.finish());
    for (r, extra) in [(&mut p, pre_idle), (&mut d, dec_idle)] {
        r.energy_static += extra;
        r.energy += extra;
    }
    let one_token = std::mem::replace(&mut out.e2e, d.e2e.clone());
    if let Some(e) = one_token.exact() {
        for &x in e {
            out.e2e.push(x);
        }
    }
    out.duration = duration;
    out.energy = p.energy + d.energy + out.link_energy;
    out.output_tokens = p.output_tokens + d.output_tokens;
    out.prefill = p;
    out.decode = d;
    out
}
