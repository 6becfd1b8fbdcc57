//! Tiles and waves: how a GEMM library splits a product into output tiles, one per SM at a
//! time, and how long the waves of tiles take.
//!
//! A product `C[m,n] = A[m,k]·B[k,n]` is cut into `⌈m/tm⌉·⌈n/tn⌉` output tiles (times the
//! split of k, when the library splits it). The SMs take the tiles in waves of at most one tile
//! each; the last wave may be partly empty, which is the step a size-only curve cannot show.
//! A wave takes the longer of one tile's arithmetic at one SM's share of peak and the feed of
//! every tile's operand panels (`(tm + tn)·k` elements each) through the on-chip operand
//! bandwidth that the wave's SMs share. The library's choice is the candidate with the least
//! time.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::units::{BytesPerSecond, FlopsPerSecond, Seconds};
use crate::work::{Dtype, GemmShape};

/// The splits of k a library tries when the output tiles alone cannot fill one wave.
const SPLITS: [u64; 4] = [1, 2, 4, 8];

/// Bytes of one fp32 partial sum, written and read back once per split-k slice.
const PARTIAL_BYTES: f64 = 8.0;

/// A device's SMs and the tile shapes its GEMM library picks from, per element type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tiling {
    /// Streaming multiprocessors (compute units), each running one tile at a time.
    pub sms: u32,
    /// Bandwidth at which L2 feeds operand panels to the SMs, shared by a wave's tiles.
    pub operand_bandwidth: BytesPerSecond,
    /// Output tile shapes `(rows, columns)` the library chooses among, per element type.
    pub tiles: BTreeMap<Dtype, Vec<(u64, u64)>>,
}

/// The tiling a library would choose for one GEMM, and its time at peak.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Waves {
    /// Output tile rows.
    pub tile_m: u64,
    /// Output tile columns.
    pub tile_n: u64,
    /// Slices of k (1: no split).
    pub split: u64,
    /// Tiles in all.
    pub tiles: u64,
    /// Waves of tiles (the last possibly partial).
    pub waves: u64,
    /// Time of every wave, at full per-SM peak and full operand bandwidth.
    pub time: Seconds,
}

impl Tiling {
    /// The least-time tiling of `g` in `dtype` with the device computing at `peak` (the peak
    /// times the efficiency the arithmetic reaches), or `None` when no tile shapes are given
    /// for `dtype` or the product is empty.
    pub fn waves(&self, g: &GemmShape, dtype: Dtype, peak: FlopsPerSecond) -> Option<Waves> {
        let shapes = self.tiles.get(&dtype)?;
        if g.m == 0 || g.n == 0 || g.k == 0 || g.batch == 0 || self.sms == 0 {
            return None;
        }
        let sms = u64::from(self.sms);
        let smallest = shapes.iter().min_by_key(|(a, b)| a * b)?;
        let skinny = g.batch * g.m.div_ceil(smallest.0) * g.n.div_ceil(smallest.1) < sms;
        let per_sm = peak.value() / f64::from(self.sms);
        let e = dtype.bytes();
        let mut best: Option<Waves> = None;
        for &(tm, tn) in shapes {
            for split in SPLITS {
                if split > 1 && (!skinny || split > g.k) {
                    continue;
                }
                let kt = g.k.div_ceil(split) as f64;
                let tiles = g.batch * g.m.div_ceil(tm) * g.n.div_ceil(tn) * split;
                let flops = 2.0 * (tm * tn) as f64 * kt;
                let partial = if split > 1 { PARTIAL_BYTES } else { 0.0 };
                let bytes = (tm + tn) as f64 * kt * e + (tm * tn) as f64 * partial;
                let wave = |n: u64| {
                    let feed = n as f64 * bytes / self.operand_bandwidth.value();
                    (flops / per_sm).max(feed)
                };
                let (full, rest) = (tiles / sms, tiles % sms);
                let mut t = full as f64 * wave(sms);
                if rest > 0 {
                    t += wave(rest);
                }
                if best.is_none_or(|b| t < b.time.value()) {
                    best = Some(Waves {
                        tile_m: tm,
                        tile_n: tn,
                        split,
                        tiles,
                        waves: tiles.div_ceil(sms),
                        time: Seconds(t),
                    });
                }
            }
        }
        best
    }

    /// How much longer `g`'s waves take than its FLOPs at `peak` (1 when no tiling applies):
    /// the factor on the roofline's compute time, whose rate is `peak`.
    pub fn scale(&self, g: &GemmShape, dtype: Dtype, peak: FlopsPerSecond) -> f64 {
        let ideal = 2.0 * (g.batch * g.m * g.n) as f64 * g.k as f64 / peak.value();
        match self.waves(g, dtype, peak) {
            Some(w) if ideal > 0.0 => w.time.value() / ideal,
            _ => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiling(sms: u32) -> Tiling {
        Tiling {
            sms,
            operand_bandwidth: BytesPerSecond(f64::INFINITY),
            tiles: BTreeMap::from([(Dtype::Bf16, vec![(128, 128)])]),
        }
    }

    fn g(m: u64, n: u64, k: u64) -> GemmShape {
        GemmShape { m, n, k, batch: 1 }
    }

    #[test]
    fn one_more_tile_than_sms_takes_a_second_wave() {
        let t = tiling(4);
        let peak = FlopsPerSecond(4e12);
        // 2 × 2 tiles fill 4 SMs in one wave; a third row of tiles needs a second wave.
        let one = t.waves(&g(256, 256, 1024), Dtype::Bf16, peak).unwrap();
        let two = t.waves(&g(257, 256, 1024), Dtype::Bf16, peak).unwrap();
        assert_eq!((one.tiles, one.waves), (4, 1));
        assert_eq!((two.tiles, two.waves), (6, 2));
        // A wave is one tile's FLOPs at one SM's peak: 2·128·128·1024 / 1e12.
        let tile = 2.0 * 128.0 * 128.0 * 1024.0 / 1e12;
        assert!((one.time.value() - tile).abs() < 1e-15);
        assert!((two.time.value() - 2.0 * tile).abs() < 1e-15);
        // A full wave is exactly the ideal time; no tiling for a type without tiles.
        assert!((t.scale(&g(256, 256, 1024), Dtype::Bf16, peak) - 1.0).abs() < 1e-12);
        assert_eq!(t.scale(&g(256, 256, 1024), Dtype::Fp8, peak), 1.0);
    }

    #[test]
    fn a_shared_operand_feed_bounds_a_full_wave() {
        let mut t = tiling(2);
        t.operand_bandwidth = BytesPerSecond(1e9);
        let w = t
            .waves(&g(256, 128, 64), Dtype::Bf16, FlopsPerSecond(1e15))
            .unwrap();
        // Two tiles, each (128 + 128) · 64 elements of 2 bytes, through 1 GB/s.
        assert!((w.time.value() - 2.0 * 256.0 * 64.0 * 2.0 / 1e9).abs() < 1e-15);
    }

    #[test]
    fn a_skinny_product_splits_k_to_fill_the_device() {
        let t = tiling(8);
        let w = t
            .waves(&g(128, 256, 4096), Dtype::Bf16, FlopsPerSecond(8e12))
            .unwrap();
        // Two output tiles on 8 SMs: split 4 ways, 8 tiles in one wave.
        assert_eq!((w.split, w.tiles, w.waves), (4, 8, 1));
    }
}
