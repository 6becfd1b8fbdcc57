//! The Chrome / Perfetto trace of a disaggregated serving run: both pools in one file.
//!
//! Each pool is traced by its own [`TraceWriter`] (as a run of its own would be, with its
//! process names prefixed by the pool's: `prefill pool`, `prefill pool device 0`, `prefill pool
//! requests`, then the decode pool's), both writing through one shared sink. A `KV link`
//! process holds one async span per request whose KV went to the decode pool: from when its KV
//! went on the link (the end of its prefill unless the link was busy) to its arrival, bytes ÷
//! bandwidth + latency later. A request has one id throughout (the run's index): the decode
//! pool's spans are renumbered from the order it received them. `otherData` gives each pool's
//! counts and the transfers.

use std::cell::RefCell;
use std::io::{self, Write};
use std::rc::Rc;

use serde::Serialize;

use super::trace::{Event, Named, Pool, SortIndex, TraceSummary, TraceWriter, ns};
use crate::sim::serving::{Disagg, IterationRecord, KvTransfer, Observer, RequestLife};

/// One file written by both pools' writers.
pub struct Shared<W: Write>(Rc<RefCell<W>>);

impl<W: Write> Clone for Shared<W> {
    fn clone(&self) -> Self {
        Shared(Rc::clone(&self.0))
    }
}

impl<W: Write> Write for Shared<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

#[derive(Serialize)]
struct KvArgs {
    bytes: f64,
    /// From the end of its prefill to its start on the link, s.
    wait_s: f64,
}

/// What a disaggregated trace holds, in its `otherData` and for the caller.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolTraceSummary {
    /// The prefill pool's counts.
    pub prefill: TraceSummary,
    /// The decode pool's counts.
    pub decode: TraceSummary,
    /// KV-transfer spans written (one per request decoded on the decode pool).
    pub kv_transfers: u64,
}

impl PoolTraceSummary {
    /// Each pool's warning when the limit (per pool) left op slices out.
    pub fn warnings(&self) -> Vec<String> {
        [("prefill", &self.prefill), ("decode", &self.decode)]
            .into_iter()
            .filter_map(|(name, s)| s.warning().map(|w| format!("{name} pool: {w}")))
            .collect()
    }
}

/// The prefill pool's writer, which also sees the KV transfers and writes them on the link's
/// process.
pub struct PrefillTrace<W: Write> {
    pool: TraceWriter<Shared<W>>,
    sink: Shared<W>,
    kv_pid: u64,
    kv_transfers: u64,
    error: Option<io::Error>,
    /// The run's index of each request sent, in the order sent (the decode pool's order).
    sent: Rc<RefCell<Vec<usize>>>,
}

/// The decode pool's writer: its requests carry the run's index (the decode pool numbers them
/// as their KV arrives, the order they were sent in).
pub struct DecodeTrace<W: Write> {
    pool: TraceWriter<Shared<W>>,
    sent: Rc<RefCell<Vec<usize>>>,
}

impl<W: Write> Observer for DecodeTrace<W> {
    fn iteration(&mut self, it: &IterationRecord<'_>) {
        self.pool.iteration(it);
    }

    fn request(&mut self, life: &RequestLife) {
        let id = self.sent.borrow().get(life.id).copied();
        let life = RequestLife {
            id: id.unwrap_or(life.id),
            ..*life
        };
        self.pool.request(&life);
    }
}

impl<W: Write> PrefillTrace<W> {
    fn write_kv(&mut self, kv: &KvTransfer) -> io::Result<()> {
        self.kv_transfers += 1;
        let name = format!("request {}", kv.id);
        let (a, b) = (ns(kv.start), ns(kv.start + kv.time));
        let args = KvArgs {
            bytes: kv.bytes,
            wait_s: kv.start - kv.prefill_done,
        };
        let mut s = Event::new("b", &name, self.kv_pid, a, args);
        (s.cat, s.id, s.tid) = (Some("kv transfer"), Some(kv.id), Some(0));
        write_event(&mut self.sink, &s)?;
        let mut e = Event::<()>::new("e", &name, self.kv_pid, b, ());
        (e.cat, e.id, e.tid, e.args) = (Some("kv transfer"), Some(kv.id), Some(0), None);
        write_event(&mut self.sink, &e)
    }
}

impl<W: Write> Observer for PrefillTrace<W> {
    fn iteration(&mut self, it: &IterationRecord<'_>) {
        self.pool.iteration(it);
    }

    fn request(&mut self, life: &RequestLife) {
        self.pool.request(life);
    }

    fn kv_transfer(&mut self, kv: &KvTransfer) {
        self.sent.borrow_mut().push(kv.id);
        if self.error.is_none() {
            self.error = self.write_kv(kv).err();
        }
    }
}

/// An event after the first: a comma, then its JSON.
fn write_event<W: Write, A: Serialize>(w: &mut W, e: &Event<'_, A>) -> io::Result<()> {
    w.write_all(b",\n")?;
    Ok(serde_json::to_writer(w, e)?)
}

/// Writes a disaggregated run's trace as it goes: [`prefill`](Self::prefill) and
/// [`decode`](Self::decode) are the pools' observers.
pub struct PoolTrace<W: Write> {
    /// The prefill pool's observer (it also writes the KV transfers).
    pub prefill: PrefillTrace<W>,
    /// The decode pool's observer.
    pub decode: DecodeTrace<W>,
    sink: Shared<W>,
}

impl<W: Write> PoolTrace<W> {
    /// Starts the trace of `d`: the header, the link's process, and each pool's processes. At
    /// most `op_limit` op slices are written per pool (`None`: all).
    pub fn new(w: W, d: &Disagg, op_limit: Option<u64>) -> io::Result<Self> {
        let mut sink = Shared(Rc::new(RefCell::new(w)));
        sink.write_all(b"{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n")?;
        let pre_pids = TraceWriter::<Shared<W>>::pids(&d.prefill);
        let kv_pid = pre_pids + TraceWriter::<Shared<W>>::pids(&d.decode);
        let name = Named { name: "KV link" };
        serde_json::to_writer(&mut sink, &Event::new("M", "process_name", kv_pid, 0, name))?;
        let sort = SortIndex { sort_index: kv_pid };
        write_event(
            &mut sink,
            &Event::new("M", "process_sort_index", kv_pid, 0, sort),
        )?;
        let (pre, dec) = (
            Pool {
                base: 0,
                name: "prefill pool",
                cat: "prefill request",
            },
            Pool {
                base: pre_pids,
                name: "decode pool",
                cat: "decode request",
            },
        );
        let pool = TraceWriter::pool(sink.clone(), &d.prefill, op_limit, pre)?;
        let sent = Rc::new(RefCell::new(Vec::new()));
        let decode = DecodeTrace {
            pool: TraceWriter::pool(sink.clone(), &d.decode, op_limit, dec)?,
            sent: Rc::clone(&sent),
        };
        Ok(PoolTrace {
            prefill: PrefillTrace {
                pool,
                sink: sink.clone(),
                kv_pid,
                kv_transfers: 0,
                error: None,
                sent,
            },
            decode,
            sink,
        })
    }

    /// Ends the trace: each pool's counters fall to zero, and `otherData` gives the counts.
    /// Returns them, or the first write error.
    pub fn finish(self) -> io::Result<PoolTraceSummary> {
        let PoolTrace {
            prefill,
            decode,
            mut sink,
        } = self;
        if let Some(e) = prefill.error {
            return Err(e);
        }
        let summary = PoolTraceSummary {
            prefill: prefill.pool.finish_pool()?,
            decode: decode.pool.finish_pool()?,
            kv_transfers: prefill.kv_transfers,
        };
        sink.write_all(b"\n],\"otherData\":")?;
        serde_json::to_writer(&mut sink, &summary)?;
        sink.write_all(b"}\n")?;
        sink.flush()?;
        Ok(summary)
    }
}
