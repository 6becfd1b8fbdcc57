//! The op graph of one iteration as Graphviz DOT, each node labelled with its cost.
//!
//! A node's label is its layer and name, its shape, then its time (SI prefix), what bounds it
//! and the unit it is placed on: `L0 qkv_proj\n64x3072x4096\n21.3 us, memory, xPU`. Its tooltip
//! (shown by SVG viewers) carries the same values unrounded, for scripts: `time_s=2.13e-5
//! bound=memory unit=xpu …`. Nodes are outlined and tinted in their unit's colour from the one
//! plot [`palette`](super::plot::palette).

use std::fmt::Write as _;

use super::plot::palette::{hex, look, unit_name};
use super::render::si;
use crate::hw::Unit;
use crate::map::PlacedOp;
use crate::model::IterationGraph;

/// `g` in DOT, node `i` labelled with the cost of `placed[i]` (the ops of `g` placed and costed
/// in its node order, as [`crate::map::cost_iteration`] returns them), under a graph label of
/// `title` lines followed by each unit's op time and their sum.
pub fn dot(g: &IterationGraph, placed: &[PlacedOp<'_>], title: &[String]) -> String {
    let mut unit_time = [0.0; 2];
    for p in placed {
        unit_time[usize::from(p.unit == Unit::Pim)] += p.cost.time.value();
    }
    let mut caption: Vec<String> = title.to_vec();
    caption.push(format!(
        "op time (ops one at a time): xPU {}, PIM {}, total {}; node colour: unit (xPU blue, PIM orange)",
        si(unit_time[0], "s"),
        si(unit_time[1], "s"),
        si(unit_time[0] + unit_time[1], "s")
    ));
    let mut s = String::from("digraph iteration {\n");
    let _ = writeln!(
        s,
        "  graph [label=\"{}\", labelloc=t, labeljust=l];",
        caption
            .iter()
            .map(|l| esc(l))
            .collect::<Vec<_>>()
            .join("\\l")
            + "\\l"
    );
    s.push_str("  node [shape=box, style=filled, fontname=monospace];\n");
    for (i, p) in g.graph.node_indices().zip(placed) {
        let op = &g.graph[i];
        let layer = op.layer.map_or(String::new(), |l| format!("L{l} "));
        let (c, unit) = (&p.cost, p.unit.name());
        let colour = hex(look(unit).color);
        let _ = writeln!(
            s,
            "  n{} [label=\"{layer}{}\\n{}\\n{}, {}, {}\", tooltip=\"time_s={:e} bound={} unit={unit} compute_s={:e} memory_s={:e} overhead_s={:e} flops={:e} bytes={:e}\", color=\"{colour}\", fillcolor=\"{colour}33\"];",
            i.index(),
            esc(&op.name),
            esc(&op.shape()),
            si(c.time.value(), "s"),
            c.bound.name(),
            unit_name(unit),
            c.time.value(),
            c.bound.name(),
            c.compute.value(),
            c.memory.value(),
            c.overhead.value(),
            p.work.flops.value(),
            p.work.bytes.total().value(),
        );
    }
    for e in g.graph.raw_edges() {
        let _ = writeln!(s, "  n{} -> n{};", e.source().index(), e.target().index());
    }
    s.push_str("}\n");
    s
}

/// `text` inside a DOT double-quoted string: backslashes and quotes escaped.
fn esc(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}
