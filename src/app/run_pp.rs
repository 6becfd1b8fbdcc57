//! `dyad run --pp S --micro-batches M`: one iteration's batch as M micro-batches through S
//! pipeline stages, each stage a group of consecutive layers (as even as the layer count
//! allows; the embedding on the first, the final norm and LM head on the last) on its own
//! `tp`-way group of devices. A micro-batch's stage time is the sum of its layers' op times (as
//! `dyad run` prices them at batch/M sequences); at each stage boundary its activations
//! ([tokens, hidden] at the activation type) cross the node's link (bytes ÷ bandwidth + one
//! step's latency), or the network between nodes when the stages span more than one node. [`sim::pipeline::schedule`] runs the forward schedule.

use std::fmt::Write;

use super::run::{RunError, RunSpec, resolve};
use crate::map;
use crate::model::{Batch, Routing, build_iteration};
use crate::sim::pipeline::{Pipeline, Send, schedule};

/// A pipelined iteration: the schedule, and its stages' layer ranges.
pub struct Pipelined {
    /// The schedule.
    pub pipeline: Pipeline,
    /// First and one-past-last layer of each stage.
    pub layers: Vec<(u32, u32)>,
    /// Each boundary send: its transfer over the link, then the link's latency.
    pub send: Send,
}

/// Prices `spec`'s iteration as `micro` micro-batches through `stages` stages.
pub fn pipeline(spec: &RunSpec, stages: u64, micro: u64) -> Result<Pipelined, RunError> {
    let r = resolve(spec)?;
    let err = |why: String| Err(RunError::Pp { pp: stages, why });
    let layers = r.model.layers();
    if stages == 0 || stages > u64::from(layers) {
        return err(format!("needs 1 to {layers} stages (the model's layers)"));
    }
    if stages * r.tp > u64::from(r.sys.devices()) {
        return err(format!(
            "{stages} stages × TP {} exceed the {} devices",
            r.tp,
            r.sys.devices()
        ));
    }
    let seqs = r.batch.decode_kv.len() + r.batch.prefill.len();
    if micro == 0 || seqs as u64 % micro != 0 {
        return err(format!(
            "--micro-batches {micro} must divide the batch ({seqs})"
        ));
    }
    let per = seqs / micro as usize;
    let mb = Batch {
        decode_kv: r.batch.decode_kv[..r.batch.decode_kv.len() / micro as usize].to_vec(),
        prefill: r.batch.prefill[..r.batch.prefill.len().min(per)].to_vec(),
    };
    let g = build_iteration(&r.model, &mb, r.tp, r.precision, &Routing::Uniform)?;
    let placed = map::cost_iteration(&g, &r.sys, spec.policy, spec.timing)?;
    let bounds: Vec<(u32, u32)> = (0..stages)
        .map(|s| {
            let at = |s: u64| (s * u64::from(layers) / stages) as u32;
            (at(s), at(s + 1))
        })
        .collect();
    let mut t = vec![0.0; stages as usize];
    for p in &placed {
        let s = match p.op.layer {
            Some(l) => bounds.iter().position(|b| l >= b.0 && l < b.1).unwrap_or(0),
            None if p.op.name == "embedding" => 0,
            None => stages as usize - 1,
        };
        t[s] += p.cost.time.value();
    }
    // A pipeline past one node sends over the network between nodes; every boundary is charged
    // that slower link then (the schedule takes one send per micro-batch).
    let link = match &r.sys.cluster {
        Some(c) if stages * r.tp > u64::from(r.sys.node.devices) => &c.link,
        _ => &r.sys.node.link,
    };
    let bytes = g.tokens as f64 * r.model.hidden as f64 * r.precision.activations.bytes();
    let send = if stages > 1 {
        Send {
            transfer: bytes / link.bandwidth.value(),
            latency: link.latency.value(),
        }
    } else {
        Send::default()
    };
    let times: Vec<Vec<f64>> = t.iter().map(|&x| vec![x; micro as usize]).collect();
    Ok(Pipelined {
        pipeline: schedule(&times, send),
        layers: bounds,
        send,
    })
}

/// The schedule as text: makespan, bubble, each stage's layers and utilization, and a row per
/// (stage, micro-batch) span.
pub fn render(p: &Pipelined) -> String {
    let q = &p.pipeline;
    let mut s = format!(
        "pipeline: {} stages, {} micro-batches, send {:.3e} s per boundary\nmakespan {:.6e} s, bubble {:.4} of stage-time\n\nstage  layers   busy_s        utilization\n",
        q.busy.len(),
        q.spans.len() / q.busy.len().max(1),
        p.send.time(),
        q.makespan,
        q.bubble()
    );
    for (i, (b, u)) in q.busy.iter().zip(q.utilization()).enumerate() {
        let (a, z) = p.layers[i];
        let _ = writeln!(s, "{i:<6} {a:>3}-{:<4} {b:<13.6e} {u:.4}", z - 1);
    }
    s.push_str("\nstage  micro_batch  start_s       end_s\n");
    for x in &q.spans {
        let _ = writeln!(
            s,
            "{:<6} {:<12} {:<13.6e} {:.6e}",
            x.stage, x.micro_batch, x.start, x.end
        );
    }
    s
}

/// The schedule as a Chrome/Perfetto trace (Trace Event Format): one track per stage, one
/// slice per micro-batch; the gaps are the bubbles.
pub fn trace(p: &Pipelined) -> String {
    let events: Vec<serde_json::Value> = p
        .pipeline
        .spans
        .iter()
        .map(|x| {
            serde_json::json!({
                "name": format!("micro-batch {}", x.micro_batch),
                "ph": "X", "pid": 0, "tid": x.stage,
                "ts": x.start * 1e6, "dur": (x.end - x.start) * 1e6,
            })
        })
        .chain((0..p.pipeline.busy.len()).map(|s| {
            serde_json::json!({"name": "thread_name", "ph": "M", "pid": 0, "tid": s,
                "args": {"name": format!("stage {s}")}})
        }))
        .collect();
    serde_json::json!({ "traceEvents": events }).to_string()
}
