//! Options of expert parallelism beyond the plain layout (expert e on device e mod ep):
//! EPLB's replication of hot experts, placed so that the most loaded device carries as little
//! as the greedy packing finds, and the two-micro-batch overlap of the all-to-all with compute
//! (priced by `sim::overlap`).
//!
//! **EPLB** (DeepSeek-V3, arXiv 2412.19437 §3.4; the algorithm of github.com/deepseek-ai/EPLB;
//! REFERENCE.md §Expert-parallel load balancing): from each layer's expected load per expert,
//! `redundant` extra copies are given one at a time to the expert whose load per copy is the
//! highest (the N hottest experts, a very hot one taking more than one); then every copy, each
//! carrying an equal share of its expert's tokens, is placed heaviest first onto the least
//! loaded device that has a slot left, every device holding (experts + redundant) / ep copies.

use crate::model::{ModelSpec, Parallelism, Precision};
use crate::units::Bytes;

/// The expert-parallel options of a scenario; the default is the plain layout, run whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EpOptions {
    /// Each MoE layer's batch split into two halves, one half's dispatch and combine
    /// all-to-all overlapping the other half's compute (DeepSeek's and SGLang's two-batch
    /// overlap).
    pub two_batch_overlap: bool,
    /// EPLB with this many redundant expert copies (`None`: expert e on device e mod ep).
    pub redundant_experts: Option<u64>,
}

impl EpOptions {
    /// Whether any option is on.
    pub fn any(&self) -> bool {
        self.two_batch_overlap || self.redundant_experts.is_some()
    }

    /// Weight bytes per device the redundant copies add to `m` split as `par`: the routed
    /// experts' bytes times redundant / (experts · ep).
    pub fn replica_bytes(&self, m: &ModelSpec, par: Parallelism, p: Precision) -> Bytes {
        let (Some(n), Some(moe)) = (self.redundant_experts, m.moe) else {
            return Bytes(0.0);
        };
        let experts = m.weight_bytes(p.weights).1;
        Bytes(experts * n as f64 / (moe.experts * par.ep.max(1)) as f64)
    }
}

/// Where each copy of each expert of one layer runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// The device of each copy of expert e, `devices[e]` (one entry in the plain layout).
    pub devices: Vec<Vec<u32>>,
    /// Devices of the group.
    pub ep: usize,
}

impl Placement {
    /// The plain layout: expert e alone on device e mod ep.
    pub fn plain(experts: usize, ep: usize) -> Placement {
        Placement {
            devices: (0..experts).map(|e| vec![(e % ep) as u32]).collect(),
            ep,
        }
    }

    /// EPLB's placement of experts with expected loads `load` over `ep` devices with
    /// `redundant` extra copies ((experts + redundant) must be a multiple of ep, as the
    /// scenario loader checks).
    pub fn eplb(load: &[f64], ep: usize, redundant: usize) -> Placement {
        let n = load.len();
        let mut copies = vec![1usize; n];
        for _ in 0..redundant {
            // The expert with the highest load per copy (the lowest index on ties).
            let per = |e: usize| load[e] / copies[e] as f64;
            let hot = (0..n).fold(0, |b, e| if per(e) > per(b) { e } else { b });
            copies[hot] += 1;
        }
        // Every copy with its share, heaviest first (by expert on ties).
        let mut items: Vec<(f64, usize)> = (0..n)
            .flat_map(|e| std::iter::repeat_n((load[e] / copies[e] as f64, e), copies[e]))
            .collect();
        items.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let slots = (n + redundant).div_ceil(ep);
        let (mut held, mut sum) = (vec![0usize; ep], vec![0.0f64; ep]);
        let mut devices = vec![Vec::new(); n];
        for (share, e) in items {
            // The least loaded device with a slot left (the lowest index on ties).
            let open = (0..ep).filter(|&d| held[d] < slots);
            let d = open
                .reduce(|b, d| if sum[d] < sum[b] { d } else { b })
                .unwrap_or(0);
            held[d] += 1;
            sum[d] += share;
            devices[e].push(d as u32);
        }
        Placement { devices, ep }
    }

    /// Each copy's tokens, as (device, tokens), for `counts[e]` tokens per expert: an expert's
    /// c tokens split over its r copies as c / r each, the first c mod r copies one more (so
    /// tokens are conserved). Copies without tokens are left out.
    pub fn shares<'a>(&'a self, counts: &'a [u64]) -> impl Iterator<Item = (u32, u64)> + 'a {
        counts.iter().enumerate().flat_map(move |(e, &c)| {
            let ds = &self.devices[e];
            let r = ds.len() as u64;
            ds.iter()
                .enumerate()
                .map(move |(i, &d)| (d, c / r + u64::from((i as u64) < c % r)))
                .filter(|&(_, n)| n > 0)
        })
    }

    /// Tokens on each device for `counts[e]` tokens per expert.
    pub fn device_tokens(&self, counts: &[u64]) -> Vec<u64> {
        let mut t = vec![0u64; self.ep];
        for (d, n) in self.shares(counts) {
            t[d as usize] += n;
        }
        t
    }
}

/// Device loads summed over MoE layers and iterations: the most loaded device's tokens and the
/// mean device's, under the plain layout and under the placement run.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LoadStats {
    /// Σ max-device tokens, plain layout.
    pub plain_max: f64,
    /// Σ max-device tokens, the placement run (equal to `plain_max` without EPLB).
    pub placed_max: f64,
    /// Σ mean-device tokens (the same under every placement: tokens are conserved).
    pub mean: f64,
}

impl LoadStats {
    /// Adds one layer's counts under `plain` and `placed`.
    pub fn add(&mut self, counts: &[u64], plain: &Placement, placed: &Placement) {
        let max = |p: &Placement| p.device_tokens(counts).into_iter().max().unwrap_or(0) as f64;
        let total: u64 = counts.iter().sum();
        self.plain_max += max(plain);
        self.placed_max += max(placed);
        self.mean += total as f64 / plain.ep as f64;
    }

    /// Max/mean device load under the plain layout and under the placement run (1 without
    /// tokens).
    pub fn ratios(&self) -> (f64, f64) {
        if self.mean <= 0.0 {
            return (1.0, 1.0);
        }
        (self.plain_max / self.mean, self.placed_max / self.mean)
    }
}

/// What the overlap schedule did, summed over the MoE layers it priced.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OverlapStats {
    /// Layers priced as two halves.
    pub layers: u64,
    /// Their all-to-alls' time, both halves, s.
    pub comm: f64,
    /// Their time with the halves one after another (every segment's time summed), s.
    pub serial: f64,
    /// Their time under the overlap schedule, s.
    pub overlapped: f64,
}

impl OverlapStats {
    /// All-to-all time the other half's compute hid, s.
    pub fn hidden(&self) -> f64 {
        (self.serial - self.overlapped).max(0.0)
    }
}

/// What a run's expert-parallel options did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EpStats {
    /// The options.
    pub options: EpOptions,
    /// Device loads under the plain layout and the placement run.
    pub loads: LoadStats,
    /// The overlap schedule's figures (zero without it).
    pub overlap: OverlapStats,
    /// Weight bytes per device the redundant copies add.
    pub replica_bytes: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eplb_replicates_the_two_hot_experts_and_balances_two_devices() {
        // Loads 3, 1, 3, 1 on 2 devices: the plain layout puts both hot experts on device 0
        // (6 against 2, max/mean 1.5). Two copies go to experts 0 and 2 (3 per copy, then 1.5
        // each); packing 1.5, 1.5, 1.5, 1.5, 1, 1 heaviest first leaves 4 and 4 (max/mean 1).
        let load = [3.0, 1.0, 3.0, 1.0];
        let p = Placement::eplb(&load, 2, 2);
        assert_eq!(
            p.devices.iter().map(Vec::len).collect::<Vec<_>>(),
            [2, 1, 2, 1]
        );
        let counts = [300, 100, 300, 100];
        assert_eq!(Placement::plain(4, 2).device_tokens(&counts), [600, 200]);
        assert_eq!(p.device_tokens(&counts), [400, 400]);
        let mut s = LoadStats::default();
        s.add(&counts, &Placement::plain(4, 2), &p);
        assert_eq!(s.ratios(), (1.5, 1.0));
    }

    #[test]
    fn every_device_holds_the_same_number_of_copies_and_tokens_are_conserved() {
        // DeepSeek-V3's shape: 256 experts and 32 redundant copies over 8 devices, 36 each.
        let load: Vec<f64> = (1..=256).map(|r| f64::from(r).powf(-1.2)).collect();
        let p = Placement::eplb(&load, 8, 32);
        let mut held = [0; 8];
        p.devices
            .iter()
            .flatten()
            .for_each(|&d| held[d as usize] += 1);
        assert_eq!(held, [36; 8]);
        let counts: Vec<u64> = (0..256u64).map(|e| (e * 37) % 101).collect();
        let t = p.device_tokens(&counts);
        assert_eq!(t.iter().sum::<u64>(), counts.iter().sum::<u64>());
    }

    #[test]
    fn under_equal_loads_every_device_carries_the_same_tokens() {
        // 8 experts of 4 tokens, 4 copies over 4 devices: 4 experts keep one copy (4 tokens),
        // 4 have two (2 each): each device holds 3 copies and 8 tokens, as the plain layout.
        let p = Placement::eplb(&[1.0; 8], 4, 4);
        assert_eq!(p.device_tokens(&[4; 8]), [8; 4]);
        assert_eq!(Placement::plain(8, 4).device_tokens(&[4; 8]), [8; 4]);
    }
}
