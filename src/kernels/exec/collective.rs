//! The collectives' reference kernels: ring all-reduce and all-to-all, one vector per device.

use super::super::{Count, Elem, to_elems, to_f32s};

/// Ring all-reduce (reduce-scatter then all-gather) of one vector per device: device i adds the
/// n−1 chunks it receives, so each does (n−1)/n of an add per element. Returns every device's
/// result and work.
pub fn ring_allreduce<E: Elem>(inputs: &[Vec<E>]) -> (Vec<Vec<E>>, Vec<Count>) {
    let n = inputs.len();
    let len = inputs.first().map_or(0, Vec::len);
    let chunk = |j: usize| j * len / n..(j + 1) * len / n;
    let mut buf: Vec<Vec<f32>> = inputs.iter().map(|v| to_f32s(v)).collect();
    let mut counts = vec![Count::default(); n];
    for c in &mut counts {
        c.message = len as u64 * E::BYTES;
    }
    for step in 0..n.saturating_sub(1) {
        let sent: Vec<(usize, Vec<f32>)> = (0..n)
            .map(|i| {
                let j = (i + n - step) % n;
                (j, buf[i][chunk(j)].to_vec())
            })
            .collect();
        for (i, (j, data)) in sent.into_iter().enumerate() {
            let to = (i + 1) % n;
            for (x, y) in buf[to][chunk(j)].iter_mut().zip(&data) {
                *x = E::from_f32(*x + y).to_f32();
            }
            counts[to].flops += data.len() as u64;
        }
    }
    // After n−1 steps device i holds the full sum of chunk i+1; gather every chunk from its owner.
    let mut out = vec![vec![0f32; len]; n];
    for j in 0..n {
        let owner = (j + n - 1) % n;
        let done = buf[owner][chunk(j)].to_vec();
        for o in &mut out {
            o[chunk(j)].copy_from_slice(&done);
        }
    }
    (out.iter().map(|o| to_elems(o)).collect(), counts)
}

/// All-to-all: device i's message is cut into p chunks and chunk j goes to device j, which
/// receives one chunk from every device in sender order. Moves data and does no arithmetic.
pub fn all_to_all<E: Elem>(inputs: &[Vec<E>]) -> (Vec<Vec<E>>, Vec<Count>) {
    let p = inputs.len();
    let len = inputs.first().map_or(0, Vec::len);
    let chunk = |j: usize| j * len / p..(j + 1) * len / p;
    let outs = (0..p)
        .map(|j| inputs.iter().flat_map(|v| v[chunk(j)].to_vec()).collect())
        .collect();
    let counts = (0..p)
        .map(|_| Count {
            message: len as u64 * E::BYTES,
            ..Count::default()
        })
        .collect();
    (outs, counts)
}
