//! Arch files exactly as written (serde), every value with its span; and the paths from a file
//! to each table, which the resolver in `arch.rs` reads through the `extends` chain.

use serde::Deserialize;
use toml::Spanned;

use crate::config::choice::RawLayout;
use crate::units::{
    Area, Bytes, BytesPerSecond, FlopsPerSecond, Hertz, JoulesPerBit, JoulesPerFlop, Seconds, Watts,
};
use crate::work::Dtype;

pub(super) type Points = Vec<(f64, f64)>;

/// Tile shapes `[rows, columns]` by element type name, as written.
pub(super) type TileTable = std::collections::BTreeMap<String, Spanned<Vec<(i64, i64)>>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArch {
    pub(super) extends: Option<Spanned<String>>,
    pub(super) name: Option<Spanned<String>>,
    /// Where the numbers come from (free text).
    #[allow(dead_code)]
    pub(super) source: Option<Spanned<String>>,
    pub(super) xpu: Option<RawXpu>,
    pub(super) pim: Option<RawPim>,
    pub(super) node: Option<RawNode>,
    pub(super) cluster: Option<RawCluster>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPim {
    pub(super) kind: Option<Spanned<String>>,
    pub(super) stacks: Option<Spanned<i64>>,
    pub(super) modules: Option<Spanned<i64>>,
    pub(super) macs: Option<Spanned<i64>>,
    pub(super) frequency: Option<Spanned<Hertz>>,
    pub(super) bandwidth_multiplier: Option<Spanned<f64>>,
    pub(super) overhead: Option<Spanned<Seconds>>,
    pub(super) compute: Option<Spanned<Points>>,
    pub(super) memory: Option<Spanned<Points>>,
    pub(super) energy: Option<RawPimEnergy>,
    pub(super) tech: Option<RawPimTech>,
}

/// `[pim.tech]`: the HBM logic die the Logic-PIM modules are built on, and its budgets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPimTech {
    pub(super) die: Option<Spanned<String>>,
    pub(super) node: Option<Spanned<String>>,
    pub(super) device: Option<Spanned<String>>,
    pub(super) layout: Option<RawLayout>,
    pub(super) die_area: Option<Spanned<Area>>,
    pub(super) power_budget: Option<Spanned<Watts>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPimEnergy {
    pub(super) flop: Option<Spanned<JoulesPerFlop>>,
    pub(super) dram: Option<Spanned<JoulesPerBit>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawXpu {
    pub(super) peak_flops: Option<RawPeak>,
    pub(super) sram: Option<Spanned<Bytes>>,
    pub(super) host_overhead: Option<Spanned<Seconds>>,
    pub(super) memory: Option<RawMemory>,
    pub(super) efficiency: Option<RawEfficiency>,
    pub(super) tech: Option<RawXpuTech>,
    pub(super) energy: Option<RawEnergy>,
    pub(super) tiling: Option<RawTiling>,
    pub(super) streaming: Option<RawStreaming>,
}

/// `[xpu.streaming]`: elementwise rates by where the bytes come from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStreaming {
    pub(super) l2_stream: Option<Spanned<BytesPerSecond>>,
    pub(super) dram_efficiency: Option<Spanned<f64>>,
    pub(super) row_rate: Option<Spanned<BytesPerSecond>>,
    pub(super) row_half: Option<Spanned<Bytes>>,
    pub(super) shortest_row: Option<Spanned<Bytes>>,
    pub(super) gather: Option<Spanned<BytesPerSecond>>,
}

/// `[xpu.tiling]`: SMs, the operand feed, and the GEMM library's tile shapes per element type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTiling {
    pub(super) sms: Option<Spanned<i64>>,
    pub(super) operand_bandwidth: Option<Spanned<BytesPerSecond>>,
    pub(super) tile_overhead: Option<Spanned<Seconds>>,
    pub(super) stream_k: Option<Spanned<bool>>,
    pub(super) stream_k_from: Option<Spanned<i64>>,
    pub(super) stream_k_efficiency: Option<Spanned<f64>>,
    pub(super) reuse_half: Option<Spanned<f64>>,
    pub(super) overlap: Option<Spanned<f64>>,
    pub(super) tiles: Option<TileTable>,
}

/// `[xpu.tech]`: the die the xPU is built as, and the technology overrides the arch makes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawXpuTech {
    pub(super) die: Option<Spanned<String>>,
    pub(super) node: Option<Spanned<String>>,
    pub(super) device: Option<Spanned<String>>,
    pub(super) layout: Option<RawLayout>,
    pub(super) clock: Option<Spanned<Hertz>>,
    pub(super) power: Option<Spanned<Watts>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnergy {
    pub(super) flop: Option<Spanned<JoulesPerFlop>>,
    pub(super) dram: Option<Spanned<JoulesPerBit>>,
    pub(super) static_power: Option<Spanned<Watts>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeak {
    pub(super) fp32: Option<Spanned<FlopsPerSecond>>,
    pub(super) bf16: Option<Spanned<FlopsPerSecond>>,
    pub(super) fp16: Option<Spanned<FlopsPerSecond>>,
    pub(super) fp8: Option<Spanned<FlopsPerSecond>>,
    pub(super) int8: Option<Spanned<FlopsPerSecond>>,
    pub(super) int4: Option<Spanned<FlopsPerSecond>>,
}

impl RawPeak {
    pub(super) fn get(&self, d: Dtype) -> Option<&Spanned<FlopsPerSecond>> {
        match d {
            Dtype::Fp32 => self.fp32.as_ref(),
            Dtype::Bf16 => self.bf16.as_ref(),
            Dtype::Fp16 => self.fp16.as_ref(),
            Dtype::Fp8 => self.fp8.as_ref(),
            Dtype::Int8 => self.int8.as_ref(),
            Dtype::Int4 => self.int4.as_ref(),
            // A storage type, not an arithmetic one: no arch states a peak for it.
            Dtype::Mxfp4 => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMemory {
    pub(super) capacity: Option<Spanned<Bytes>>,
    pub(super) bandwidth: Option<Spanned<BytesPerSecond>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEfficiency {
    pub(super) gemm: Option<RawClass>,
    pub(super) attention: Option<RawClass>,
    pub(super) elementwise: Option<RawClass>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClass {
    pub(super) overhead: Option<Spanned<Seconds>>,
    pub(super) compute: Option<Spanned<Points>>,
    pub(super) memory: Option<Spanned<Points>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub(super) devices: Option<Spanned<i64>>,
    pub(super) link: Option<RawLink>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) nodes: Option<Spanned<i64>>,
    pub(super) link: Option<RawLink>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLink {
    pub(super) bandwidth: Option<Spanned<BytesPerSecond>>,
    pub(super) latency: Option<Spanned<Seconds>>,
    pub(super) overhead: Option<Spanned<Seconds>>,
    pub(super) efficiency: Option<Spanned<Points>>,
    pub(super) energy: Option<Spanned<JoulesPerBit>>,
}

// ---- paths into a file ----

pub(super) fn xpu(r: &RawArch) -> Option<&RawXpu> {
    r.xpu.as_ref()
}

pub(super) fn mem(r: &RawArch) -> Option<&RawMemory> {
    xpu(r)?.memory.as_ref()
}

pub(super) fn pim(r: &RawArch) -> Option<&RawPim> {
    r.pim.as_ref()
}

pub(super) fn ptech(r: &RawArch) -> Option<&RawPimTech> {
    pim(r)?.tech.as_ref()
}

pub(super) fn energy(r: &RawArch) -> Option<&RawEnergy> {
    xpu(r)?.energy.as_ref()
}

pub(super) fn link(r: &RawArch) -> Option<&RawLink> {
    r.node.as_ref()?.link.as_ref()
}

pub(super) fn class_of<'a>(r: &'a RawArch, name: &str) -> Option<&'a RawClass> {
    let e = xpu(r)?.efficiency.as_ref()?;
    match name {
        "gemm" => e.gemm.as_ref(),
        "attention" => e.attention.as_ref(),
        _ => e.elementwise.as_ref(),
    }
}

pub(super) fn tiling(r: &RawArch) -> Option<&RawTiling> {
    xpu(r)?.tiling.as_ref()
}

pub(super) fn streaming(r: &RawArch) -> Option<&RawStreaming> {
    xpu(r)?.streaming.as_ref()
}

pub(super) fn xtech(r: &RawArch) -> Option<&RawXpuTech> {
    xpu(r)?.tech.as_ref()
}
