//! Elementwise ops by where their bytes come from (issue 17): the rate an elementwise kernel
//! streams at, from the cache its tensors sit in and how many bytes its kernel keeps in flight.
//!
//! - A **stream** (a vectorized grid-stride kernel: a residual add) runs at the L2's rate when
//!   every byte it touches fits in L2 (its input was just written there), else at DRAM's.
//! - A **row** kernel (one thread block per row: a norm, an activation, RoPE) pays a fixed
//!   latency per row (its loads' round trip, the block's reduction) beside the row's bytes, so by
//!   Little's law its rate is `row_rate · r ÷ (r + row_half)` for a row of `r` bytes, and never
//!   above the stream's.
//! - A **gather** (an embedding lookup) reads each row at an index it must load first: two
//!   dependent round trips per row, one rate whatever the size.

use serde::Serialize;

use crate::units::{Bytes, BytesPerSecond};
use crate::work::{Access, ElementwiseShape};

/// The streaming rates of an xPU's elementwise kernels (`[xpu.streaming]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Streaming {
    /// A stream whose bytes all fit in L2 (the L2's read and write rate to the SMs).
    pub l2_stream: BytesPerSecond,
    /// The fraction of DRAM bandwidth a stream from DRAM reaches.
    pub dram_efficiency: f64,
    /// The rate row kernels approach as rows grow long (their blocks' bytes in flight over the
    /// memory latency).
    pub row_rate: BytesPerSecond,
    /// The row length at which a row kernel reaches half of `row_rate`: the per-row latency
    /// times one row's share of that rate.
    pub row_half: Bytes,
    /// The shortest row the rates were fitted on: a shorter row is priced as one this long
    /// (its blocks are small and several share an SM, which the per-row law does not model).
    pub shortest_row: Bytes,
    /// The rate of a gather (rows at indices read first).
    pub gather: BytesPerSecond,
}

impl Streaming {
    /// The rate `shape` streams `total` bytes at, on an xPU whose L2 holds `l2` bytes and
    /// whose DRAM streams at `dram`.
    pub fn rate(
        &self,
        shape: &ElementwiseShape,
        total: Bytes,
        (l2, dram): (Bytes, BytesPerSecond),
    ) -> BytesPerSecond {
        let stream = if total <= l2 {
            self.l2_stream
        } else {
            dram * self.dram_efficiency
        };
        match shape.access {
            Access::Stream => stream,
            Access::Gather => min(stream, self.gather),
            Access::Rows(_) => {
                let r = shape.row_bytes(total).unwrap_or(total).value();
                let r = r.max(self.shortest_row.value());
                let rows = self.row_rate * (r / (r + self.row_half.value()));
                min(stream, rows)
            }
        }
    }
}

fn min(a: BytesPerSecond, b: BytesPerSecond) -> BytesPerSecond {
    if a <= b { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> Streaming {
        Streaming {
            l2_stream: BytesPerSecond(4e12),
            dram_efficiency: 0.75,
            row_rate: BytesPerSecond(2e12),
            row_half: Bytes(8e3),
            shortest_row: Bytes(4e3),
            gather: BytesPerSecond(0.6e12),
        }
    }

    /// An L2 of 50 MB beside a DRAM of 4 TB/s (3 TB/s streamed).
    const MEM: (Bytes, BytesPerSecond) = (Bytes(50e6), BytesPerSecond(4e12));

    fn shape(access: Access, elements: u64) -> ElementwiseShape {
        ElementwiseShape { access, elements }
    }

    #[test]
    fn a_stream_that_fits_in_l2_runs_at_the_l2_rate_and_one_that_does_not_at_dram() {
        let st = shape(Access::Stream, 1 << 20);
        assert_eq!(s().rate(&st, Bytes(50e6), MEM), BytesPerSecond(4e12));
        assert_eq!(s().rate(&st, Bytes(50.1e6), MEM), BytesPerSecond(3e12));
    }

    #[test]
    fn a_row_kernel_reaches_half_its_rate_at_the_half_row_and_never_passes_the_stream() {
        // 1000 rows of 8 kB each: the row is `row_half`, so half of 2 TB/s.
        let rows = shape(Access::Rows(1000), 1_000_000);
        let r = s().rate(&rows, Bytes(8e6), MEM);
        assert!((r.value() - 1e12).abs() < 1.0);
        // One very long row: the rate approaches row_rate, below the stream's.
        let long = shape(Access::Rows(1 << 30), 1 << 30);
        let r = s().rate(&long, Bytes(1e12), MEM);
        assert!(r.value() < 2e12 && r.value() > 1.99e12);
        // A row shorter than the shortest fitted one is priced as that one.
        let tiny = shape(Access::Rows(1), 1_000_000);
        let at = shape(Access::Rows(1000), 2_000_000);
        assert_eq!(
            s().rate(&tiny, Bytes(4e6), MEM),
            s().rate(&at, Bytes(8e6), MEM)
        );
        let slow = Streaming {
            dram_efficiency: 0.25,
            ..s()
        };
        assert_eq!(slow.rate(&long, Bytes(1e12), MEM), BytesPerSecond(1e12));
    }

    #[test]
    fn a_gather_runs_at_its_rate_whatever_its_size() {
        let g = shape(Access::Gather, 1 << 20);
        assert_eq!(s().rate(&g, Bytes(1e6), MEM), BytesPerSecond(0.6e12));
        assert_eq!(s().rate(&g, Bytes(1e9), MEM), BytesPerSecond(0.6e12));
    }
}
