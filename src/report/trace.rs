//! Chrome / Perfetto trace (Trace Event Format JSON): one track per resource with ops as slices,
//! requests as async spans with their first token marked.

use std::io::{self, Write};

use crate::sim::iteration::{OpSpan, RESOURCES};
use crate::sim::serving::RequestLife;

/// Most op slices written; later ones are dropped (the trace says so in its metadata).
pub const MAX_SLICES: usize = 1_000_000;

fn us(t: f64) -> f64 {
    t * 1e6
}

/// Writes the trace of a serving run.
pub fn write_trace(mut w: impl Write, spans: &[OpSpan], lives: &[RequestLife]) -> io::Result<()> {
    writeln!(
        w,
        "{{\"displayTimeUnit\": \"ns\", \"otherData\": {{\"op_slices\": {}, \"op_slices_written\": {}}},",
        spans.len(),
        spans.len().min(MAX_SLICES)
    )?;
    writeln!(w, "\"traceEvents\": [")?;
    writeln!(
        w,
        "{{\"ph\": \"M\", \"name\": \"process_name\", \"pid\": 0, \"args\": {{\"name\": \"devices\"}}}}"
    )?;
    let tracks = spans.iter().map(|s| s.resource + 1).max().unwrap_or(0);
    for i in 0..tracks.max(RESOURCES.len()) {
        let (d, r) = (i / RESOURCES.len(), RESOURCES[i % RESOURCES.len()]);
        writeln!(
            w,
            ",{{\"ph\": \"M\", \"name\": \"thread_name\", \"pid\": 0, \"tid\": {i}, \"args\": {{\"name\": \"device {d} {r}\"}}}}"
        )?;
    }
    writeln!(
        w,
        ",{{\"ph\": \"M\", \"name\": \"process_name\", \"pid\": 1, \"args\": {{\"name\": \"requests\"}}}}"
    )?;
    for s in spans.iter().take(MAX_SLICES) {
        let layer = s.layer.map_or(String::new(), |l| format!("L{l} "));
        writeln!(
            w,
            ",{{\"ph\": \"X\", \"name\": \"{layer}{}\", \"pid\": 0, \"tid\": {}, \"ts\": {:.3}, \"dur\": {:.3}}}",
            s.name,
            s.resource,
            us(s.start),
            us(s.end - s.start)
        )?;
    }
    for (id, r) in lives.iter().enumerate() {
        let common = format!(
            "\"cat\": \"request\", \"name\": \"request {id}\", \"id\": {id}, \"pid\": 1, \"tid\": 0"
        );
        writeln!(
            w,
            ",{{\"ph\": \"b\", {common}, \"ts\": {:.3}}}",
            us(r.arrival)
        )?;
        writeln!(
            w,
            ",{{\"ph\": \"n\", {common}, \"ts\": {:.3}, \"args\": {{\"event\": \"first token\"}}}}",
            us(r.first_token)
        )?;
        writeln!(
            w,
            ",{{\"ph\": \"e\", {common}, \"ts\": {:.3}}}",
            us(r.finish)
        )?;
    }
    writeln!(w, "]}}")
}
