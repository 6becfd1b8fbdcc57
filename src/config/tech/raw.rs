//! Technology and die files exactly as written (serde), every value with its span.

use serde::Deserialize;
use toml::Spanned;

use crate::config::choice::RawLayout;
use crate::units::{Area, Bytes, Hertz, Watts};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNodes {
    pub(super) node: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub(super) name: Spanned<String>,
    #[allow(dead_code)]
    pub(super) source: Spanned<String>,
    pub(super) native_device: Spanned<String>,
    pub(super) logic_density_mtr_per_mm2: Spanned<f64>,
    pub(super) sram_bitcell_um2: Spanned<f64>,
    pub(super) sram_array_efficiency: Spanned<f64>,
    pub(super) metal_pitch_nm: Spanned<f64>,
    pub(super) vdd_v: Spanned<f64>,
    pub(super) fo4_ps: Spanned<f64>,
    pub(super) gate_cap_ff: Spanned<f64>,
    pub(super) wire_r_ohm_per_um: Spanned<f64>,
    pub(super) wire_c_ff_per_um: Spanned<f64>,
    pub(super) leakage_nw_per_transistor: Spanned<f64>,
    pub(super) sram_read_fj_per_bit: Spanned<f64>,
    pub(super) wafer_cost_usd: Spanned<f64>,
    pub(super) defect_density_per_mm2: Spanned<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDevices {
    pub(super) device: Vec<RawDevice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDevice {
    pub(super) name: Spanned<String>,
    #[allow(dead_code)]
    pub(super) source: Spanned<String>,
    pub(super) tracks: Spanned<f64>,
    pub(super) cell_area: Spanned<f64>,
    pub(super) drive: Spanned<f64>,
    pub(super) cap: Spanned<f64>,
    pub(super) dual_sided_pins: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModelFile {
    pub(super) model: RawModel,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    pub(super) rent_exponent: Spanned<f64>,
    pub(super) net_length_constant: Spanned<f64>,
    pub(super) stage_wire_constant: Spanned<f64>,
    pub(super) routing_efficiency: Spanned<f64>,
    pub(super) pin_access_coefficient: Spanned<f64>,
    pub(super) detour_coefficient: Spanned<f64>,
    pub(super) cross_side_overhead: Spanned<f64>,
    pub(super) partition_cells: Spanned<f64>,
    pub(super) transistors_per_cell: Spanned<f64>,
    pub(super) pins_per_cell: Spanned<f64>,
    pub(super) fanout: Spanned<f64>,
    pub(super) site_width_tracks: Spanned<f64>,
    pub(super) max_utilization: Spanned<f64>,
    pub(super) max_utilization_backside_power: Spanned<f64>,
    pub(super) power_rail_track_share: Spanned<f64>,
    pub(super) layer_pitch: Spanned<Vec<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDie {
    pub(super) name: Spanned<String>,
    #[allow(dead_code)]
    pub(super) source: Option<Spanned<String>>,
    pub(super) node: Spanned<String>,
    pub(super) device: Spanned<String>,
    pub(super) clock: Option<Spanned<Hertz>>,
    pub(super) logic_depth: Option<Spanned<f64>>,
    pub(super) layout: RawLayout,
    pub(super) block: Vec<RawBlock>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBlock {
    pub(super) name: Spanned<String>,
    pub(super) kind: Spanned<String>,
    pub(super) count: Spanned<f64>,
    pub(super) role: Option<Spanned<String>>,
    pub(super) transistors: Option<Spanned<f64>>,
    pub(super) activity: Option<Spanned<f64>>,
    pub(super) capacity: Option<Spanned<Bytes>>,
    pub(super) reads_per_cycle: Option<Spanned<Bytes>>,
    pub(super) area: Option<Spanned<Area>>,
    pub(super) power: Option<Spanned<Watts>>,
    #[allow(dead_code)]
    pub(super) source: Option<Spanned<String>>,
}
