//! Chrome / Perfetto trace of a serving run (Trace Event Format JSON), written as the run goes.
//!
//! [`TraceWriter`] is the run's [`Observer`]: each iteration and each finished request is
//! serialized (serde) and written when the run reports it, so the trace holds no more than one
//! iteration in memory. The file has
//! - a `serving` process: an `iterations` track with one slice per iteration, and counter tracks
//!   `batch` (decode and prefill sequences), `tokens`, `kv used` (share of blocks), `requests`
//!   (waiting and running) and `power` (the replica's devices, dynamic and static, W), and in a
//!   speculative run `speculation` (each round's drafts and accepted drafts);
//! - a process per simulated device: a track per unit an op ran on (`xpu`, `link`, `pim`), one
//!   slice per op with its arguments (op, layer, unit, FLOPs, bytes, bound, tokens), and on
//!   device 0 a `busy` counter (the share of each iteration each resource, DRAM and banks
//!   included, was busy);
//! - under a pipeline, a process per stage (its device 0) with the same unit tracks and a
//!   `micro-batches` track: one slice per micro-batch on the stage, the gaps its bubble;
//! - a `requests` process: one async span per request, its first token marked.
//!
//! In a disaggregated run each pool has a writer of its own ([`TraceWriter::pool`]): its
//! processes' ids start at its [`Pool`]'s base and their names with the pool's (see
//! `pool_trace`).
//!
//! Times are integer nanoseconds: each instant is rounded once and a slice's duration is the
//! difference of its rounded end and start, so slices that nest or touch in the simulation nest
//! or touch in the file.
//!
//! A trace may hold at most a set number of op slices ([`DEFAULT_OP_LIMIT`] unless the caller
//! sets another, or none): once the next iteration's ops would pass it, op slices stop (whole
//! iterations, never part of one) while iterations, counters and requests go on. The file's
//! `otherData` gives the counts and where the ops stop, and [`TraceSummary::warning`] says it.

use std::io::{self, Write};

use serde::Serialize;

use crate::hw::{Bound, Unit};
use crate::map::Policy;
use crate::sim::iteration::RESOURCES;
use crate::sim::serving::{IterationRecord, Observer, RequestLife, Scenario};

/// Op slices a trace holds unless told otherwise: about 300 MB of JSON, which the Perfetto UI
/// still opens in a browser tab.
pub const DEFAULT_OP_LIMIT: u64 = 1_000_000;

/// Process ids: the serving process, then one per device, then the requests.
const SERVING_PID: u64 = 0;

/// Tracks of the serving process.
const ITERATIONS_TID: u64 = 0;

/// The track of a pipeline stage's micro-batches, beside its device's unit tracks.
const STAGE_TID: u64 = 5;

#[derive(Serialize)]
struct StageArgs {
    iteration: u64,
}

/// An instant in integer nanoseconds (rounded once).
pub(super) fn ns(t: f64) -> i64 {
    (t * 1e9).round() as i64
}

/// Trace Event Format times are microseconds.
pub(super) fn us(ns: i64) -> f64 {
    ns as f64 / 1e3
}

/// One trace event; fields a phase does not use are left out.
#[derive(Serialize)]
pub(super) struct Event<'a, A: Serialize> {
    ph: &'static str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) cat: Option<&'static str>,
    pid: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tid: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<usize>,
    ts: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) args: Option<A>,
}

impl<'a, A: Serialize> Event<'a, A> {
    pub(super) fn new(ph: &'static str, name: &'a str, pid: u64, ts_ns: i64, args: A) -> Self {
        Event {
            ph,
            name,
            cat: None,
            pid,
            tid: None,
            id: None,
            ts: us(ts_ns),
            dur: None,
            args: Some(args),
        }
    }
}

#[derive(Serialize)]
pub(super) struct Named<'a> {
    pub(super) name: &'a str,
}

#[derive(Serialize)]
pub(super) struct SortIndex {
    pub(super) sort_index: u64,
}

#[derive(Serialize)]
struct OpArgs<'a> {
    op: &'a str,
    layer: Option<u32>,
    unit: Unit,
    bound: Bound,
    flops: f64,
    bytes: f64,
    tokens: Option<u64>,
}

#[derive(Serialize)]
struct IterationArgs {
    index: u64,
    decode: u64,
    prefill: u64,
    tokens: u64,
    ops: u64,
    energy_dynamic_j: f64,
    /// A speculative round's figures (absent from plain iterations).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    round: Option<RoundArgs>,
}

/// A speculative round in the trace: tokens drafted and accepted, and its draft and verify time.
#[derive(Serialize)]
struct RoundArgs {
    drafted: u64,
    accepted: u64,
    draft_s: f64,
    verify_s: f64,
}

/// A speculative round's counter: its drafts and the accepted ones, over its sequences.
#[derive(Serialize)]
struct Speculation {
    drafts: u64,
    accepted_drafts: u64,
}

#[derive(Serialize)]
struct Batch {
    decode: u64,
    prefill: u64,
}

#[derive(Serialize)]
struct Value {
    value: f64,
}

#[derive(Serialize)]
struct Requests {
    waiting: u64,
    running: u64,
}

#[derive(Serialize)]
struct Busy {
    xpu: f64,
    dram: f64,
    link: f64,
    pim: f64,
    banks: f64,
}

#[derive(Serialize)]
struct RequestArgs {
    prompt: u64,
    output: u64,
}

#[derive(Serialize)]
struct FirstToken {
    ttft_s: f64,
}

/// What the trace holds, in its `otherData` and for the caller.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceSummary {
    /// Ops the run simulated.
    pub ops_simulated: u64,
    /// Op slices written (all of them unless a limit cut them).
    pub op_slices: u64,
    /// The most op slices the trace may hold (`None`: no limit).
    pub op_limit: Option<u64>,
    /// The first iteration whose op slices were left out, if any.
    pub ops_stop_at_iteration: Option<u64>,
    /// When that iteration started, s.
    pub ops_stop_at_s: Option<f64>,
    /// Iteration slices written (every iteration).
    pub iterations: u64,
    /// Request spans written (every request).
    pub requests: u64,
}

impl TraceSummary {
    /// The warning to print when the limit left op slices out.
    pub fn warning(&self) -> Option<String> {
        let (i, t) = (self.ops_stop_at_iteration?, self.ops_stop_at_s?);
        Some(format!(
            "the trace holds {} of the run's {} op slices (limit {}): ops stop at iteration {i} (t = {t:.3} s); iterations, counters and requests are complete. Raise the limit with --trace-limit N or --trace-limit all",
            self.op_slices,
            self.ops_simulated,
            self.op_limit.unwrap_or(self.op_slices),
        ))
    }
}

/// Writes a serving run's trace as the run goes (see the module's docs for the layout).
pub struct TraceWriter<W: Write> {
    w: W,
    /// The first write error; once set, nothing more is written and [`finish`](Self::finish)
    /// returns it.
    error: Option<io::Error>,
    summary: TraceSummary,
    /// Devices with a process of their own.
    devices: u64,
    /// The end of the latest iteration, ns.
    end: i64,
    /// Whether an event has been written (the next needs a comma before it).
    started: bool,
    /// The pool this writer traces in a disaggregated run (`None`: the whole run).
    pool: Option<Pool>,
}

/// One pool of a disaggregated run in a shared trace: its processes' ids start at `base`, and
/// their names and its requests' category start with `name`.
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    /// The first process id.
    pub base: u64,
    /// The pool's process name (`prefill pool`, `decode pool`).
    pub name: &'static str,
    /// Its requests' async category, distinct per pool so the pools' spans do not merge.
    pub cat: &'static str,
}

impl<W: Write> TraceWriter<W> {
    /// Starts the trace of `s`: the header, and the names of its processes and tracks. At most
    /// `op_limit` op slices are written (`None`: all).
    pub fn new(mut w: W, s: &Scenario, op_limit: Option<u64>) -> io::Result<Self> {
        w.write_all(b"{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n")?;
        Self::start(w, s, op_limit, None)
    }

    /// Starts one pool's part of a shared trace whose header and first event the caller has
    /// written: its processes named, no header (see [`finish_pool`](Self::finish_pool)).
    pub fn pool(w: W, s: &Scenario, op_limit: Option<u64>, pool: Pool) -> io::Result<Self> {
        Self::start(w, s, op_limit, Some(pool))
    }

    /// Process ids a writer of `s` uses: its serving process, its devices and its requests.
    pub fn pids(s: &Scenario) -> u64 {
        2 + s.ep * s.stages()
    }

    fn start(w: W, s: &Scenario, op_limit: Option<u64>, pool: Option<Pool>) -> io::Result<Self> {
        let mut t = TraceWriter {
            w,
            error: None,
            summary: TraceSummary {
                ops_simulated: 0,
                op_slices: 0,
                op_limit,
                ops_stop_at_iteration: None,
                ops_stop_at_s: None,
                iterations: 0,
                requests: 0,
            },
            devices: s.ep * s.stages(),
            end: 0,
            started: pool.is_some(),
            pool,
        };
        t.names(s)?;
        Ok(t)
    }

    fn event<A: Serialize>(&mut self, e: &Event<'_, A>) -> io::Result<()> {
        if self.started {
            self.w.write_all(b",\n")?;
        }
        self.started = true;
        Ok(serde_json::to_writer(&mut self.w, e)?)
    }

    /// The first process id (the serving process's; 0 unless a pool's).
    fn base(&self) -> u64 {
        self.pool.map_or(SERVING_PID, |p| p.base)
    }

    fn requests_pid(&self) -> u64 {
        self.base() + 1 + self.devices
    }

    fn process(&mut self, pid: u64, name: &str) -> io::Result<()> {
        let prefixed;
        let name = match self.pool {
            Some(p) if pid == p.base => p.name,
            Some(p) => {
                prefixed = format!("{} {name}", p.name);
                &prefixed
            }
            None => name,
        };
        self.event(&Event::new("M", "process_name", pid, 0, Named { name }))?;
        let sort = SortIndex { sort_index: pid };
        self.event(&Event::new("M", "process_sort_index", pid, 0, sort))
    }

    fn thread(&mut self, pid: u64, tid: u64, name: &str) -> io::Result<()> {
        let mut e = Event::new("M", "thread_name", pid, 0, Named { name });
        e.tid = Some(tid);
        self.event(&e)
    }

    /// Names every process and slice track.
    fn names(&mut self, s: &Scenario) -> io::Result<()> {
        let base = self.base();
        self.process(base, "serving")?;
        self.thread(base, ITERATIONS_TID, "iterations")?;
        let uses_pim = s.sys.pim.is_some() && s.policy != Policy::AllXpu;
        let links = s.tp * s.ep > 1;
        for d in 0..self.devices {
            let name = if s.ep > 1 {
                let also = match d {
                    0 => {
                        "; the ops outside the experts run alike on every device and are shown here"
                    }
                    _ => "; its ops outside the experts run as device 0's",
                };
                format!("device {d} (EP rank {d} of {}{also})", s.ep)
            } else if let Some(p) = s.pipeline {
                super::pipeline::stage_process(p, d, s.tp, s.model.layers())
            } else if s.tp > 1 {
                format!(
                    "device 0 (TP rank 0 of {}; the other ranks run alike)",
                    s.tp
                )
            } else {
                "device 0".to_string()
            };
            let pid = base + 1 + d;
            self.process(pid, &name)?;
            for (which, shown) in [(0, true), (2, links), (3, uses_pim)] {
                if shown {
                    self.thread(pid, which, RESOURCES[which as usize])?;
                }
            }
            if s.pipeline.is_some() {
                self.thread(pid, STAGE_TID, "micro-batches")?;
            }
        }
        self.process(self.requests_pid(), "requests")
    }

    fn write_iteration(&mut self, it: &IterationRecord<'_>) -> io::Result<()> {
        let c = it.cost;
        let (start, end) = (ns(it.start), ns(it.start + c.time));
        self.end = end;
        let s = &mut self.summary;
        s.iterations += 1;
        s.ops_simulated += c.ops;
        let slices = (c.spans.len() + it.stages.len()) as u64;
        let room = s.op_limit.is_none_or(|l| s.op_slices + slices <= l);
        if room && s.ops_stop_at_iteration.is_none() {
            s.op_slices += slices;
            self.write_stages(it)?;
            for x in &c.spans {
                let name = match x.layer {
                    Some(l) => format!("L{l} {}", x.name),
                    None => x.name.clone(),
                };
                let (a, b) = (ns(it.start + x.start), ns(it.start + x.end));
                let args = OpArgs {
                    op: &x.name,
                    layer: x.layer,
                    unit: x.unit,
                    bound: x.bound,
                    flops: x.flops,
                    bytes: x.bytes,
                    tokens: x.tokens,
                };
                let mut e = Event::new(
                    "X",
                    &name,
                    self.base() + 1 + (x.resource / RESOURCES.len()) as u64,
                    a,
                    args,
                );
                e.tid = Some((x.resource % RESOURCES.len()) as u64);
                e.dur = Some(us(b - a));
                self.event(&e)?;
            }
        } else if s.ops_stop_at_iteration.is_none() {
            s.ops_stop_at_iteration = Some(it.index);
            s.ops_stop_at_s = Some(it.start);
        }
        let args = IterationArgs {
            index: it.index,
            decode: it.decode,
            prefill: it.prefill,
            tokens: it.tokens,
            ops: c.ops,
            energy_dynamic_j: c.energy,
            round: (it.drafted > 0).then_some(RoundArgs {
                drafted: it.drafted,
                accepted: it.accepted,
                draft_s: it.draft_time,
                verify_s: c.time - it.draft_time,
            }),
        };
        let name = format!("iteration {}", it.index);
        let mut e = Event::new("X", &name, self.base(), start, args);
        e.tid = Some(ITERATIONS_TID);
        e.dur = Some(us(end - start));
        self.event(&e)?;
        self.counters(it, start)?;
        let t = c.time.max(f64::MIN_POSITIVE);
        let b = c.busy.map(|x| x / t);
        let busy = Busy {
            xpu: b[0],
            dram: b[1],
            link: b[2],
            pim: b[3],
            banks: b[4],
        };
        self.event(&Event::new("C", "busy", self.base() + 1, start, busy))
    }

    /// A pipelined iteration's micro-batch slices, one per (stage, micro-batch), on each
    /// stage's `micro-batches` track.
    fn write_stages(&mut self, it: &IterationRecord<'_>) -> io::Result<()> {
        for x in it.stages {
            let name = format!("micro-batch {}", x.micro_batch);
            let (a, b) = (ns(it.start + x.start), ns(it.start + x.end));
            let args = StageArgs {
                iteration: it.index,
            };
            let mut e = Event::new("X", &name, self.base() + 1 + x.stage as u64, a, args);
            e.tid = Some(STAGE_TID);
            e.dur = Some(us(b - a));
            self.event(&e)?;
        }
        Ok(())
    }

    /// The serving process's counters at `at`: batch, tokens, KV used, requests, power.
    fn counters(&mut self, it: &IterationRecord<'_>, at: i64) -> io::Result<()> {
        let pid = self.base();
        let batch = Batch {
            decode: it.decode,
            prefill: it.prefill,
        };
        self.event(&Event::new("C", "batch", pid, at, batch))?;
        let tokens = Value {
            value: it.tokens as f64,
        };
        self.event(&Event::new("C", "tokens", pid, at, tokens))?;
        let kv = Value { value: it.kv_used };
        self.event(&Event::new("C", "kv used", pid, at, kv))?;
        let requests = Requests {
            waiting: it.waiting,
            running: it.in_system - it.waiting,
        };
        self.event(&Event::new("C", "requests", pid, at, requests))?;
        let power = Value { value: it.power };
        self.event(&Event::new("C", "power", pid, at, power))?;
        if it.drafted == 0 {
            return Ok(());
        }
        let round = Speculation {
            drafts: it.drafted,
            accepted_drafts: it.accepted,
        };
        self.event(&Event::new("C", "speculation", pid, at, round))
    }

    fn write_request(&mut self, r: &RequestLife) -> io::Result<()> {
        self.summary.requests += 1;
        let name = format!("request {}", r.id);
        let pid = self.requests_pid();
        let args = RequestArgs {
            prompt: r.prompt,
            output: r.output,
        };
        let cat = Some(self.pool.map_or("request", |p| p.cat));
        let mut b = Event::new("b", &name, pid, ns(r.arrival), args);
        (b.cat, b.id, b.tid) = (cat, Some(r.id), Some(0));
        self.event(&b)?;
        let first = FirstToken {
            ttft_s: r.first_token - r.arrival,
        };
        let mut n = Event::new("n", &name, pid, ns(r.first_token), first);
        (n.cat, n.id, n.tid) = (cat, Some(r.id), Some(0));
        self.event(&n)?;
        let mut e = Event::<()>::new("e", &name, pid, ns(r.finish), ());
        (e.cat, e.id, e.tid, e.args) = (cat, Some(r.id), Some(0), None);
        self.event(&e)
    }

    /// Ends the trace: the counters fall to zero at the run's end, and `otherData` gives the
    /// counts. Returns them, or the first write error.
    pub fn finish(mut self) -> io::Result<TraceSummary> {
        self.close()?;
        self.w.write_all(b"\n],\"otherData\":")?;
        serde_json::to_writer(&mut self.w, &self.summary)?;
        self.w.write_all(b"}\n")?;
        self.w.flush()?;
        Ok(self.summary)
    }

    /// Ends one pool's part of a shared trace (its counters fall to zero at its end) and
    /// returns its counts; the caller ends the file.
    pub fn finish_pool(mut self) -> io::Result<TraceSummary> {
        self.close()?;
        Ok(self.summary)
    }

    /// The first write error, or the counters' fall to zero at the run's end.
    fn close(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let (pid, end) = (self.base(), self.end);
        let zero = Batch {
            decode: 0,
            prefill: 0,
        };
        self.event(&Event::new("C", "batch", pid, end, zero))?;
        for name in ["tokens", "power"] {
            self.event(&Event::new("C", name, pid, end, Value { value: 0.0 }))?;
        }
        Ok(())
    }
}

impl<W: Write> Observer for TraceWriter<W> {
    fn iteration(&mut self, it: &IterationRecord<'_>) {
        if self.error.is_none() {
            self.error = self.write_iteration(it).err();
        }
    }

    fn request(&mut self, life: &RequestLife) {
        if self.error.is_none() {
            self.error = self.write_request(life).err();
        }
    }
}
