//! Links between devices: the node's device-to-device links and the scale-out network between
//! nodes, and the time of a collective over them (ring all-reduce, all-to-all).

use serde::Serialize;

use super::curve::Curve;
use super::roofline::{Bound, OpCost, longer};
use super::system::CostError;
use crate::units::{BytesPerSecond, JoulesPerBit, Seconds};
use crate::work::{CollectiveKind, CollectiveWork, Work};

/// Device-to-device link within a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    /// Per device, per direction.
    pub bandwidth: BytesPerSecond,
    /// Per ring step.
    pub latency: Seconds,
    /// Fixed time per collective kernel.
    pub overhead: Seconds,
    /// Fraction of link bandwidth, as a function of the message size in bytes.
    pub efficiency: Curve,
    /// Per bit sent over the link.
    pub energy: JoulesPerBit,
}

/// Devices in a node and the link between them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// Devices in one node.
    pub devices: u32,
    /// The link each device has to the others of its node.
    pub link: Link,
}

/// Several nodes joined by a scale-out network (InfiniBand).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cluster {
    /// Nodes in the cluster, the first included.
    pub nodes: u32,
    /// Per device, between nodes.
    pub link: Link,
}

/// A collective over the node's links: a ring all-reduce (a reduce-scatter and an all-gather,
/// 2(p−1) steps of S/p bytes each) or an all-to-all ((p−1) exchanges of S/p bytes); beyond one
/// node, hierarchical over `cluster`'s network.
pub(super) fn collective(
    node: &Node,
    cluster: Option<&Cluster>,
    w: &Work,
) -> Result<OpCost, CostError> {
    let c = w.collective.ok_or(CostError::NoMessage)?;
    let (p, d) = (c.participants, node.devices);
    let across = p.div_ceil(d);
    let nodes = cluster.map_or(1, |x| x.nodes);
    if p > d && (across > nodes || p % d != 0) {
        return Err(CostError::TooManyDevices {
            participants: p,
            devices: d * nodes,
        });
    }
    let (transfer, overhead) = match (cluster, across) {
        (Some(cl), n) if n > 1 => hierarchical(c, d, n, &node.link, &cl.link),
        _ => ring(c, &node.link),
    };
    Ok(OpCost {
        time: transfer + overhead,
        compute: Seconds(0.0),
        memory: transfer,
        overhead,
        bound: if transfer.value() > 0.0 {
            Bound::Link
        } else {
            Bound::Overhead
        },
    })
}

/// (transfer, overhead) of `c` in one ring over `link`.
fn ring(c: CollectiveWork, link: &Link) -> (Seconds, Seconds) {
    if c.participants <= 1 {
        return (Seconds(0.0), Seconds(0.0));
    }
    let transfer = c.sent() / (link.bandwidth * link.efficiency.at(c.message.value()));
    (transfer, link.overhead + link.latency * c.steps())
}

/// (transfer, overhead) of `c` over `n` nodes of `d` devices: within each node over its links,
/// then across nodes over the scale-out network. An all-reduce reduce-scatters inside the node,
/// all-reduces 1/d of the message across nodes, and all-gathers inside; an all-to-all sends the
/// share bound for other nodes over the network while the rest moves inside.
fn hierarchical(
    c: CollectiveWork,
    d: u32,
    n: u32,
    inside: &Link,
    between: &Link,
) -> (Seconds, Seconds) {
    let p = c.participants;
    let inner = CollectiveWork {
        participants: d,
        ..c
    };
    let (ti, oi) = ring(inner, inside);
    match c.kind {
        CollectiveKind::AllReduce => {
            let outer = CollectiveWork {
                participants: n,
                message: c.message * (1.0 / f64::from(d)),
                ..c
            };
            let (to, oo) = ring(outer, between);
            (ti + to, oi + oo)
        }
        CollectiveKind::AllToAll => {
            let off = c.message * (f64::from(p - d) / f64::from(p));
            let to = off / (between.bandwidth * between.efficiency.at(off.value()));
            let oo = between.overhead + between.latency * f64::from(n - 1);
            (longer(ti, to), longer(oi, oo))
        }
    }
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
