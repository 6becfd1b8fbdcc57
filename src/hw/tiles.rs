//! Tiles and waves: how a GEMM library splits a product into output tiles, one per SM at a
//! time, and how long the waves of tiles take.
//!
//! A product `C[m,n] = A[m,k]·B[k,n]` is cut into `⌈m/tm⌉·⌈n/tn⌉` output tiles (times the
//! split of k, when the library splits it). The SMs take the tiles in waves of at most one tile
//! each; the last wave may be partly empty, which is the step a size-only curve cannot show.
//! A wave takes the longer of one tile's arithmetic at one SM's share of peak and the feed of
//! every tile's operand panels (`(tm + tn)·k` elements each) through the on-chip operand
//! bandwidth that the wave's SMs share, plus one tile's fixed overhead (its pipeline fill and
//! epilogue). A library that balances its tail by stream-K also has the hybrid candidate: when
//! there are at least `stream_k_from` full waves, the last full wave and the partial one are
//! split evenly over the SMs along k (each SM spans up to two tiles, so two overheads), at
//! `stream_k_efficiency` of the data-parallel rate, plus the fixup of one tile's fp32 partial
//! sums. The library's choice is the candidate with the least time.
//!
//! A tile's arithmetic reaches less of its SM's rate the less each operand element it loads is
//! reused: per k-step a `tm × tn` tile loads `tm + tn` elements for `tm·tn` MACs, its reuse
//! `I = tm·tn / (tm + tn)`, and the rate goes as `I / (I + reuse_half)` (Little's law on the
//! SM's operand pipe: a fixed latency per element loaded, hidden in proportion to the work per
//! element), relative to the set's tile of most reuse, whose rate the GEMM curve gives.
//!
//! A GEMM's waves and its DRAM stream overlap imperfectly: together they take
//! `(c^p + m^p)^(1/p)` (`p` = `overlap`), the longer of the two far from the ridge and `2^(1/p)`
//! of either at it (the loads a wave waits on are not all in flight while it computes).

use std::collections::BTreeMap;

use serde::Serialize;

use super::roofline::{Bound, OpCost};
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
    /// Fixed time of one tile on its SM beside its arithmetic: filling the operand pipeline
    /// and writing the tile out (the epilogue).
    pub tile_overhead: Seconds,
    /// Whether the library balances its tail waves by stream-K (the hybrid candidate above).
    pub stream_k: bool,
    /// Full waves from which the stream-K hybrid is a candidate (at least 1).
    pub stream_k_from: u32,
    /// Fraction of the data-parallel rate the stream-K part runs at (the fixup traffic and the
    /// waits on partial sums); 1: none lost.
    pub stream_k_efficiency: f64,
    /// Operand reuse (output elements per operand element per k-step, `tm·tn / (tm + tn)`) at
    /// which a tile reaches half its SM's arithmetic rate; 0: every tile reaches it.
    pub reuse_half: f64,
    /// Exponent `p` of the overlap of a GEMM's waves and its DRAM stream, `(c^p + m^p)^(1/p)`;
    /// 0: a perfect overlap (the longer of the two).
    pub overlap: f64,
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
    /// Whether the tail waves are balanced by stream-K.
    pub stream_k: bool,
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
        let smallest = shapes.iter().min_by_key(|(a, b)| a * b)?;
        let skinny =
            g.batch * g.m.div_ceil(smallest.0) * g.n.div_ceil(smallest.1) < u64::from(self.sms);
        let per_sm = peak.value() / f64::from(self.sms);
        let most = shapes.iter().map(|&s| self.reuse(s)).fold(0.0, f64::max);
        let mut best: Option<Waves> = None;
        for &(tm, tn) in shapes {
            let rate = per_sm * self.reuse((tm, tn)) / most;
            for split in SPLITS {
                if split > 1 && (!skinny || split > g.k) {
                    continue;
                }
                let w = self.candidate(g, dtype, (tm, tn), split, rate);
                if best.is_none_or(|b| w.time.value() < b.time.value()) {
                    best = Some(w);
                }
            }
        }
        best
    }

    /// The fraction of its SM's arithmetic rate a `tm × tn` tile reaches, by its operand reuse.
    fn reuse(&self, (tm, tn): (u64, u64)) -> f64 {
        let i = (tm * tn) as f64 / (tm + tn) as f64;
        i / (i + self.reuse_half)
    }

    /// The time of one candidate: tile `(tm, tn)`, k split `split` ways, each SM at `per_sm`.
    fn candidate(
        &self,
        g: &GemmShape,
        dtype: Dtype,
        (tm, tn): (u64, u64),
        split: u64,
        per_sm: f64,
    ) -> Waves {
        let sms = u64::from(self.sms);
        let e = dtype.bytes();
        let kt = g.k.div_ceil(split) as f64;
        let tiles = g.batch * g.m.div_ceil(tm) * g.n.div_ceil(tn) * split;
        let flops = 2.0 * (tm * tn) as f64 * kt;
        let partial = if split > 1 { PARTIAL_BYTES } else { 0.0 };
        let bytes = (tm + tn) as f64 * kt * e + (tm * tn) as f64 * partial;
        let bandwidth = self.operand_bandwidth.value();
        // `n` tiles' worth of work per SM (fractional under stream-K), `n · sms` tiles in all.
        let work = |n: f64| (n * flops / per_sm).max(n * sms as f64 * bytes / bandwidth);
        let overhead = self.tile_overhead.value();
        let (full, rest) = (tiles / sms, tiles % sms);
        let whole = work(1.0) + overhead;
        let mut t = full as f64 * whole;
        if rest > 0 {
            // A partial wave: each of its SMs runs one tile; the feed is shared by `rest`.
            t += (flops / per_sm).max(rest as f64 * bytes / bandwidth) + overhead;
        }
        let mut stream_k = false;
        if self.stream_k && split == 1 && rest > 0 && full >= u64::from(self.stream_k_from.max(1)) {
            let tail = (sms + rest) as f64 / sms as f64;
            let fixup = (tm * tn) as f64 * PARTIAL_BYTES / (bandwidth / sms as f64);
            let part = work(tail) / self.stream_k_efficiency;
            let hybrid = (full - 1) as f64 * whole + part + 2.0 * overhead + fixup;
            if hybrid < t {
                (t, stream_k) = (hybrid, true);
            }
        }
        Waves {
            tile_m: tm,
            tile_n: tn,
            split,
            tiles,
            waves: tiles.div_ceil(sms),
            stream_k,
            time: Seconds(t),
        }
    }

    /// A GEMM's `cost` with its compute (the waves) and memory (the DRAM stream) times
    /// overlapping as `(c^p + m^p)^(1/p)`. The side that bounds the op carries the part of the
    /// other it does not hide, so the bound is the longer side and the time without the
    /// overhead stays the longer of the two sides.
    pub fn overlap(&self, cost: OpCost) -> OpCost {
        let p = self.overlap;
        if p <= 0.0 {
            return cost;
        }
        let (c, m) = (cost.compute.value(), cost.memory.value());
        let both = Seconds((c.powf(p) + m.powf(p)).powf(1.0 / p));
        let mut out = cost;
        if c >= m {
            out.compute = both;
        } else {
            out.memory = both;
        }
        out.time = both + cost.overhead;
        if cost.bound == Bound::Overhead && both > cost.overhead {
            out.bound = if c >= m {
                Bound::Compute
            } else {
                Bound::Memory
            };
        }
        out
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
            tile_overhead: Seconds(0.0),
            stream_k: false,
            stream_k_from: 2,
            stream_k_efficiency: 1.0,
            reuse_half: 0.0,
            overlap: 0.0,
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

    #[test]
    fn each_wave_pays_one_tile_overhead() {
        let mut t = tiling(4);
        t.tile_overhead = Seconds(1e-6);
        let peak = FlopsPerSecond(4e12);
        let tile = 2.0 * 128.0 * 128.0 * 1024.0 / 1e12;
        // Six tiles on four SMs: a full wave and a partial one, each one tile plus its overhead.
        let w = t.waves(&g(384, 256, 1024), Dtype::Bf16, peak).unwrap();
        assert!((w.time.value() - 2.0 * (tile + 1e-6)).abs() < 1e-15);
    }

    #[test]
    fn stream_k_balances_the_tail_only_past_two_full_waves() {
        let mut t = tiling(4);
        t.stream_k = true;
        let peak = FlopsPerSecond(4e12);
        let tile = 2.0 * 128.0 * 128.0 * 1024.0 / 1e12;
        // Nine tiles on four SMs: one data-parallel wave, then the last full wave and the one
        // tile left (five tiles) split evenly over four SMs: 1 + 5/4 tiles, no fixup cost at an
        // unbounded operand feed, against three whole waves without stream-K.
        let w = t.waves(&g(384, 384, 1024), Dtype::Bf16, peak).unwrap();
        assert!(w.stream_k);
        assert!((w.time.value() - 2.25 * tile).abs() < 1e-15);
        // Five tiles (one full wave and one tile): whole waves, the step stays.
        let w = t.waves(&g(640, 128, 1024), Dtype::Bf16, peak).unwrap();
        assert!(!w.stream_k);
        assert!((w.time.value() - 2.0 * tile).abs() < 1e-15);
        // The fixup: one tile of fp32 partials written and read back at one SM's share of the
        // operand bandwidth, with two tile overheads for the SMs that span two tiles.
        t.operand_bandwidth = BytesPerSecond(4e12);
        t.tile_overhead = Seconds(1e-7);
        let w = t.waves(&g(384, 384, 1024), Dtype::Bf16, peak).unwrap();
        let feed = 4.0 * 256.0 * 1024.0 * 2.0 / 4e12;
        let fixup = 128.0 * 128.0 * 8.0 / 1e12;
        let whole = tile.max(feed) + 1e-7;
        let tail = (1.25 * tile).max(1.25 * feed) + 2e-7 + fixup;
        assert!(w.stream_k);
        assert!((w.time.value() - (whole + tail)).abs() < 1e-15);
    }

    #[test]
    fn stream_k_from_one_wave_runs_its_part_at_the_stream_k_efficiency() {
        let mut t = tiling(4);
        t.stream_k = true;
        t.stream_k_from = 1;
        t.stream_k_efficiency = 0.8;
        let peak = FlopsPerSecond(4e12);
        let tile = 2.0 * 128.0 * 128.0 * 1024.0 / 1e12;
        // Five tiles on four SMs (one full wave, one tile left): the five split evenly over the
        // four SMs, 5/4 of a tile at 0.8 of the rate, 1.5625 tiles, against two whole waves.
        let w = t.waves(&g(640, 128, 1024), Dtype::Bf16, peak).unwrap();
        assert!(w.stream_k);
        assert!((w.time.value() - 1.5625 * tile).abs() < 1e-15);
        // At 0.6 the part takes 5/4 / 0.6 = 2.083 tiles: the two whole waves are faster.
        t.stream_k_efficiency = 0.6;
        let w = t.waves(&g(640, 128, 1024), Dtype::Bf16, peak).unwrap();
        assert!(!w.stream_k);
        assert!((w.time.value() - 2.0 * tile).abs() < 1e-15);
        // From two full waves (the second pass's rule) one full wave keeps whole waves.
        t.stream_k_efficiency = 1.0;
        t.stream_k_from = 2;
        let w = t.waves(&g(640, 128, 1024), Dtype::Bf16, peak).unwrap();
        assert!(!w.stream_k);
    }

    #[test]
    fn waves_and_the_dram_stream_overlap_by_the_exponent() {
        let mut t = tiling(4);
        let cost = |c: f64, m: f64, o: f64| OpCost {
            time: Seconds(c.max(m) + o),
            compute: Seconds(c),
            memory: Seconds(m),
            overhead: Seconds(o),
            bound: if o > c.max(m) {
                Bound::Overhead
            } else if c >= m {
                Bound::Compute
            } else {
                Bound::Memory
            },
        };
        // Exponent 0: the longer side, unchanged.
        assert_eq!(t.overlap(cost(3e-6, 4e-6, 1e-6)), cost(3e-6, 4e-6, 1e-6));
        // Exponent 2: 3 and 4 µs take 5 µs; the memory side (the longer) carries it.
        t.overlap = 2.0;
        let o = t.overlap(cost(3e-6, 4e-6, 1e-6));
        assert!((o.memory.value() - 5e-6).abs() < 1e-18);
        assert!((o.time.value() - 6e-6).abs() < 1e-18);
        assert_eq!((o.compute, o.bound), (Seconds(3e-6), Bound::Memory));
        // Exponent 3 at the ridge: 2^(1/3) of either side.
        t.overlap = 3.0;
        let o = t.overlap(cost(2e-6, 2e-6, 0.0));
        assert!((o.compute.value() - 2e-6 * 2f64.cbrt()).abs() < 1e-18);
        assert_eq!(o.bound, Bound::Compute);
        // An overhead that the overlapped time passes no longer bounds the op.
        let o = t.overlap(cost(2e-6, 2e-6, 2.2e-6));
        assert_eq!(o.bound, Bound::Compute);
    }

    #[test]
    fn a_tile_of_less_operand_reuse_runs_slower_by_its_reuse() {
        let mut t = tiling(4);
        t.tiles = BTreeMap::from([(Dtype::Bf16, vec![(128, 128), (64, 64)])]);
        t.reuse_half = 32.0;
        let peak = FlopsPerSecond(4e12);
        // Reuse 64 (128 × 128) and 32 (64 × 64): rates 64/96 and 32/64 of the SM's, so the
        // 64 × 64 tile runs at 0.75 of the 128 × 128 tile's, which the curve prices at 1e12: four
        // 64 × 64 tiles fill the four SMs in one wave.
        let w = t.waves(&g(128, 128, 1024), Dtype::Bf16, peak).unwrap();
        assert_eq!((w.tile_m, w.tile_n), (64, 64));
        let small = 2.0 * 64.0 * 64.0 * 1024.0;
        assert!((w.time.value() - small / 0.75e12).abs() < 1e-15);
        // Without the reuse term every tile reaches the SM's rate.
        t.reuse_half = 0.0;
        let w = t.waves(&g(128, 128, 1024), Dtype::Bf16, peak).unwrap();
        assert!((w.time.value() - small / 1e12).abs() < 1e-15);
    }
}
