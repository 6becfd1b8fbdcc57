//! Collectives over N nodes × d devices against their closed forms (full link efficiency).

use super::*;
use crate::units::Bytes;
use crate::work::OpClass;

/// A link of `gbs` GB/s per device and direction, `us` µs per step, 10 µs per kernel.
fn link(gbs: f64, us: f64) -> Link {
    Link {
        bandwidth: BytesPerSecond(gbs * 1e9),
        latency: Seconds(us * 1e-6),
        overhead: Seconds(10e-6),
        efficiency: Curve::full(),
        energy: JoulesPerBit(0.0),
    }
}

fn work(kind: CollectiveKind, bytes: f64, p: u32) -> Work {
    Work {
        class: OpClass::Collective,
        compute: crate::work::Dtype::Bf16,
        flops: crate::units::Flops(0.0),
        bytes: crate::work::Streams::default(),
        collective: Some(CollectiveWork {
            kind,
            message: Bytes(bytes),
            participants: p,
        }),
        gemm: None,
        elementwise: None,
    }
}

/// 4 nodes of 8 devices: 450 GB/s NVLink inside (1 µs a step), 50 GB/s between (5 µs a step).
fn cluster() -> (Node, Cluster) {
    let node = Node {
        devices: 8,
        link: link(450.0, 1.0),
    };
    (
        node,
        Cluster {
            nodes: 4,
            link: link(50.0, 5.0),
        },
    )
}

#[test]
fn a_hierarchical_all_reduce_is_an_inner_ring_and_an_outer_ring_on_an_eighth() {
    let (node, cl) = cluster();
    let s = 256e6;
    let c = collective(&node, Some(&cl), &work(CollectiveKind::AllReduce, s, 32)).unwrap();
    // Reduce-scatter and all-gather inside the node: 2·(d−1)/d·S at 450 GB/s, 2(d−1) steps;
    // all-reduce of S/d across the n nodes: 2·(n−1)/n·S/d at 50 GB/s, 2(n−1) steps.
    let (d, n) = (8.0, 4.0);
    let inner = 2.0 * (d - 1.0) / d * s / 450e9;
    let outer = 2.0 * (n - 1.0) / n * (s / d) / 50e9;
    let fixed = 10e-6 + 2.0 * (d - 1.0) * 1e-6 + 10e-6 + 2.0 * (n - 1.0) * 5e-6;
    let want = inner + outer + fixed;
    assert!(
        (c.time.value() / want - 1.0).abs() < 1e-12,
        "{} {want}",
        c.time.value()
    );
    assert!((c.memory.value() / (inner + outer) - 1.0).abs() < 1e-12);
}

#[test]
fn a_hierarchical_all_to_all_overlaps_the_node_and_network_phases() {
    let (node, cl) = cluster();
    let s = 256e6;
    let c = collective(&node, Some(&cl), &work(CollectiveKind::AllToAll, s, 32)).unwrap();
    // Two-phase (pipelined): (d−1)/d·S inside the node, (p−d)/p·S = (n−1)/n·S over the
    // network, the slower of the two; and the longer of the two phases' fixed times.
    let (d, n, p) = (8.0, 4.0, 32.0);
    let inside = (d - 1.0) / d * s / 450e9;
    let between = (p - d) / p * s / 50e9;
    let fixed = f64::max(10e-6 + (d - 1.0) * 1e-6, 10e-6 + (n - 1.0) * 5e-6);
    let want = inside.max(between) + fixed;
    assert!(
        (c.time.value() / want - 1.0).abs() < 1e-12,
        "{} {want}",
        c.time.value()
    );
}

#[test]
fn inside_one_node_a_collective_is_a_plain_ring_and_past_the_cluster_an_error() {
    let (node, cl) = cluster();
    let s = 64e6;
    let c = collective(&node, Some(&cl), &work(CollectiveKind::AllReduce, s, 8)).unwrap();
    let want = 2.0 * 7.0 / 8.0 * s / 450e9 + 10e-6 + 14.0 * 1e-6;
    assert!((c.time.value() / want - 1.0).abs() < 1e-12);
    for p in [40, 12] {
        let r = collective(&node, Some(&cl), &work(CollectiveKind::AllToAll, s, p));
        assert!(matches!(r, Err(CostError::TooManyDevices { .. })), "{p}");
    }
}
