//! Technology files: the library (`arch/tech/nodes.toml`, `devices.toml`, `model.toml`), die
//! descriptions (`arch/tech/dies/*.toml`), and the layouts both name. Unknown keys, unknown
//! technology names and impossible layouts are errors at the file, line and column, with the
//! valid names.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::arch::{parse_toml, read_source};
use super::error::ConfigError;
use crate::tech::{
    BlockKind, DieBlock, DieSpec, Layout, Library, ModelParams, Node, Role, SignalSides,
};
use crate::units::{Area, Bytes, Hertz, Watts};

/// The folder of the shipped technology files (also compiled into the binary).
pub const TECH_DIR: &str = "arch/tech";

/// A value with the file and span it was written at, for errors found after parsing.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub value: T,
    pub path: PathBuf,
    pub text: Arc<str>,
    pub span: Range<usize>,
}

impl<T> Located<T> {
    pub fn new(s: &Spanned<T>, path: &Path, text: &Arc<str>) -> Self
    where
        T: Clone,
    {
        Located {
            value: s.get_ref().clone(),
            path: path.to_path_buf(),
            text: text.clone(),
            span: s.span(),
        }
    }

    pub fn err(&self, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.path, &self.text, self.span.clone(), msg)
    }
}

/// A file's path and text, to turn spans into errors.
struct Src<'a> {
    path: &'a Path,
    text: &'a Arc<str>,
}

impl Src<'_> {
    fn at<T>(&self, s: &Spanned<T>, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(self.path, self.text, s.span(), msg)
    }

    /// A number that must be positive (and at most `max`, when given).
    fn num(&self, s: &Spanned<f64>, key: &str, max: Option<f64>) -> Result<f64, ConfigError> {
        let v = *s.get_ref();
        if !(v > 0.0 && v.is_finite()) {
            return Err(self.at(s, format!("`{key}` must be positive, found {v}")));
        }
        match max {
            Some(m) if v > m => Err(self.at(s, format!("`{key}` must be at most {m}, found {v}"))),
            _ => Ok(v),
        }
    }
}

fn read(path: &Path) -> Result<Arc<str>, ConfigError> {
    read_source(path)
}

// ---------------------------------------------------------------------------------------------
// Library
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNodes {
    node: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    #[allow(dead_code)]
    source: Spanned<String>,
    native_device: Spanned<String>,
    logic_density_mtr_per_mm2: Spanned<f64>,
    sram_bitcell_um2: Spanned<f64>,
    sram_array_efficiency: Spanned<f64>,
    metal_pitch_nm: Spanned<f64>,
    vdd_v: Spanned<f64>,
    fo4_ps: Spanned<f64>,
    gate_cap_ff: Spanned<f64>,
    wire_r_ohm_per_um: Spanned<f64>,
    wire_c_ff_per_um: Spanned<f64>,
    leakage_nw_per_transistor: Spanned<f64>,
    sram_read_fj_per_bit: Spanned<f64>,
    wafer_cost_usd: Spanned<f64>,
    defect_density_per_mm2: Spanned<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevices {
    device: Vec<RawDevice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    name: Spanned<String>,
    #[allow(dead_code)]
    source: Spanned<String>,
    tracks: Spanned<f64>,
    cell_area: Spanned<f64>,
    drive: Spanned<f64>,
    cap: Spanned<f64>,
    dual_sided_pins: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModelFile {
    model: RawModel,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    rent_exponent: Spanned<f64>,
    net_length_constant: Spanned<f64>,
    stage_wire_constant: Spanned<f64>,
    routing_efficiency: Spanned<f64>,
    pin_access_coefficient: Spanned<f64>,
    detour_coefficient: Spanned<f64>,
    cross_side_overhead: Spanned<f64>,
    partition_cells: Spanned<f64>,
    transistors_per_cell: Spanned<f64>,
    pins_per_cell: Spanned<f64>,
    fanout: Spanned<f64>,
    site_width_tracks: Spanned<f64>,
    max_utilization: Spanned<f64>,
    max_utilization_backside_power: Spanned<f64>,
    power_rail_track_share: Spanned<f64>,
    layer_pitch: Spanned<Vec<f64>>,
}

/// Loads the technology library from `dir` (`nodes.toml`, `devices.toml`, `model.toml`); a
/// file missing on disk is read from the copy built into the binary.
pub fn load_tech_library(dir: &Path) -> Result<Library, ConfigError> {
    let dp = dir.join("devices.toml");
    let dt = read(&dp)?;
    let raw: RawDevices = parse_toml(&dp, &dt)?;
    let src = Src {
        path: &dp,
        text: &dt,
    };
    let mut devices = Vec::new();
    for d in &raw.device {
        devices.push(crate::tech::Device {
            name: d.name.get_ref().clone(),
            tracks: src.num(&d.tracks, "tracks", None)?,
            cell_area: src.num(&d.cell_area, "cell_area", None)?,
            drive: src.num(&d.drive, "drive", None)?,
            cap: src.num(&d.cap, "cap", None)?,
            dual_sided_pins: d.dual_sided_pins,
        });
    }

    let np = dir.join("nodes.toml");
    let nt = read(&np)?;
    let raw: RawNodes = parse_toml(&np, &nt)?;
    let src = Src {
        path: &np,
        text: &nt,
    };
    let mut nodes = Vec::new();
    for n in &raw.node {
        let native = n.native_device.get_ref();
        if !devices.iter().any(|d| &d.name == native) {
            let valid: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
            return Err(src.at(
                &n.native_device,
                format!(
                    "unknown device `{native}` in `native_device`; valid: {}",
                    valid.join(", ")
                ),
            ));
        }
        nodes.push(Node {
            name: n.name.get_ref().clone(),
            native_device: native.clone(),
            logic_density: src.num(
                &n.logic_density_mtr_per_mm2,
                "logic_density_mtr_per_mm2",
                None,
            )?,
            sram_bitcell_um2: src.num(&n.sram_bitcell_um2, "sram_bitcell_um2", None)?,
            sram_array_efficiency: src.num(
                &n.sram_array_efficiency,
                "sram_array_efficiency",
                Some(1.0),
            )?,
            metal_pitch_um: src.num(&n.metal_pitch_nm, "metal_pitch_nm", None)? * 1e-3,
            vdd: src.num(&n.vdd_v, "vdd_v", None)?,
            fo4: src.num(&n.fo4_ps, "fo4_ps", None)? * 1e-12,
            gate_cap: src.num(&n.gate_cap_ff, "gate_cap_ff", None)? * 1e-15,
            wire_r_per_um: src.num(&n.wire_r_ohm_per_um, "wire_r_ohm_per_um", None)?,
            wire_c_per_um: src.num(&n.wire_c_ff_per_um, "wire_c_ff_per_um", None)? * 1e-15,
            leakage_per_transistor: src.num(
                &n.leakage_nw_per_transistor,
                "leakage_nw_per_transistor",
                None,
            )? * 1e-9,
            sram_read_energy_per_bit: src.num(
                &n.sram_read_fj_per_bit,
                "sram_read_fj_per_bit",
                None,
            )? * 1e-15,
            wafer_cost_usd: src.num(&n.wafer_cost_usd, "wafer_cost_usd", None)?,
            defect_density_per_mm2: src.num(
                &n.defect_density_per_mm2,
                "defect_density_per_mm2",
                None,
            )?,
        });
    }

    let mp = dir.join("model.toml");
    let mt = read(&mp)?;
    let raw: RawModelFile = parse_toml(&mp, &mt)?;
    let m = raw.model;
    let src = Src {
        path: &mp,
        text: &mt,
    };
    let pitches = m.layer_pitch.get_ref();
    if pitches.is_empty() || pitches.iter().any(|p| !(*p >= 1.0 && p.is_finite())) {
        return Err(src.at(
            &m.layer_pitch,
            "`layer_pitch` must list at least one pitch, each at least 1 (the minimum pitch)",
        ));
    }
    let model = ModelParams {
        rent_exponent: src.num(&m.rent_exponent, "rent_exponent", Some(1.0))?,
        net_length_constant: src.num(&m.net_length_constant, "net_length_constant", None)?,
        stage_wire_constant: src.num(&m.stage_wire_constant, "stage_wire_constant", None)?,
        routing_efficiency: src.num(&m.routing_efficiency, "routing_efficiency", Some(1.0))?,
        pin_access_coefficient: src.num(
            &m.pin_access_coefficient,
            "pin_access_coefficient",
            None,
        )?,
        detour_coefficient: src.num(&m.detour_coefficient, "detour_coefficient", None)?,
        cross_side_overhead: src.num(&m.cross_side_overhead, "cross_side_overhead", None)?,
        partition_cells: src.num(&m.partition_cells, "partition_cells", None)?,
        transistors_per_cell: src.num(&m.transistors_per_cell, "transistors_per_cell", None)?,
        pins_per_cell: src.num(&m.pins_per_cell, "pins_per_cell", None)?,
        fanout: src.num(&m.fanout, "fanout", None)?,
        site_width_tracks: src.num(&m.site_width_tracks, "site_width_tracks", None)?,
        max_utilization: src.num(&m.max_utilization, "max_utilization", Some(1.0))?,
        max_utilization_backside_power: src.num(
            &m.max_utilization_backside_power,
            "max_utilization_backside_power",
            Some(1.0),
        )?,
        power_rail_track_share: src.num(
            &m.power_rail_track_share,
            "power_rail_track_share",
            Some(0.9),
        )?,
        layer_pitch: pitches.clone(),
    };
    Ok(Library {
        nodes,
        devices,
        model,
    })
}

// ---------------------------------------------------------------------------------------------
// Layouts and technology names
// ---------------------------------------------------------------------------------------------

/// `[layout]` as written in a die file or under `[xpu.tech]` in an arch file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLayout {
    signal_sides: Spanned<i64>,
    routing_layers: Spanned<i64>,
    front_pin_share: Option<Spanned<f64>>,
    backside_power: bool,
}

/// A technology choice with where each part was written.
#[derive(Debug, Clone)]
pub struct TechChoice {
    pub node: Located<String>,
    pub device: Located<String>,
    pub layout: Layout,
    /// Where the layout was written (for errors about the device it is used with).
    pub layout_at: Located<i64>,
}

impl RawLayout {
    /// The layout, checked on its own (the device check comes with [`check_choice`]).
    pub(super) fn resolve(
        &self,
        path: &Path,
        text: &Arc<str>,
        at: &str,
    ) -> Result<(Layout, Located<i64>), ConfigError> {
        let src = Src { path, text };
        let sides = match self.signal_sides.get_ref() {
            1 => SignalSides::Front,
            2 => SignalSides::Both,
            n => {
                return Err(src.at(
                    &self.signal_sides,
                    format!(
                        "`{at}.signal_sides` must be 1 (front) or 2 (front and back), found {n}"
                    ),
                ));
            }
        };
        let layers = *self.routing_layers.get_ref();
        if layers < 1 {
            return Err(src.at(
                &self.routing_layers,
                format!("`{at}.routing_layers` must be at least 1 per side, found {layers}"),
            ));
        }
        let layers = u32::try_from(layers).unwrap_or(u32::MAX);
        let share = match (&self.front_pin_share, sides) {
            (Some(s), _) => {
                let v = *s.get_ref();
                if !(0.0..=1.0).contains(&v) {
                    return Err(src.at(
                        s,
                        format!("`{at}.front_pin_share` is a share of the input pins and must lie in 0..=1, found {v}"),
                    ));
                }
                if sides == SignalSides::Front && v < 1.0 {
                    return Err(src.at(
                        s,
                        format!("`{at}.front_pin_share` must be 1 with single-sided signals (every pin on the front), found {v}"),
                    ));
                }
                v
            }
            (None, SignalSides::Front) => 1.0,
            (None, SignalSides::Both) => {
                return Err(ConfigError::file(
                    path,
                    format!(
                        "missing key `{at}.front_pin_share`: dual-sided signals need the share of input pins on the front"
                    ),
                ));
            }
        };
        let mut layout = match sides {
            SignalSides::Front => Layout::single_sided(layers),
            SignalSides::Both => Layout::dual_sided(layers, share),
        };
        layout.backside_power = self.backside_power;
        Ok((layout, Located::new(&self.signal_sides, path, text)))
    }
}

/// Checks the names and the layout of a choice against the library.
pub fn check_choice(lib: &Library, c: &TechChoice) -> Result<(), ConfigError> {
    if lib.node(&c.node.value).is_none() {
        return Err(c.node.err(format!(
            "unknown node `{}`; valid: {}",
            c.node.value,
            lib.node_names().join(", ")
        )));
    }
    let Some(dev) = lib.device(&c.device.value) else {
        return Err(c.device.err(format!(
            "unknown device `{}`; valid: {}",
            c.device.value,
            lib.device_names().join(", ")
        )));
    };
    c.layout
        .check(dev, lib.model.layer_pitch.len())
        .map_err(|e| c.layout_at.err(format!("impossible layout: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Die files
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDie {
    name: Spanned<String>,
    #[allow(dead_code)]
    source: Option<Spanned<String>>,
    node: Spanned<String>,
    device: Spanned<String>,
    clock: Option<Spanned<Hertz>>,
    logic_depth: Option<Spanned<f64>>,
    layout: RawLayout,
    block: Vec<RawBlock>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlock {
    name: Spanned<String>,
    kind: Spanned<String>,
    count: Spanned<f64>,
    role: Option<Spanned<String>>,
    transistors: Option<Spanned<f64>>,
    activity: Option<Spanned<f64>>,
    capacity: Option<Spanned<Bytes>>,
    reads_per_cycle: Option<Spanned<Bytes>>,
    area: Option<Spanned<Area>>,
    power: Option<Spanned<Watts>>,
    #[allow(dead_code)]
    source: Option<Spanned<String>>,
}

/// A die file: the die and the technology it names.
#[derive(Debug, Clone)]
pub struct DieFile {
    pub spec: DieSpec,
    pub tech: TechChoice,
}

const KINDS: &str = "logic, sram, fixed";

fn block_of(src: &Src, b: &RawBlock) -> Result<DieBlock, ConfigError> {
    let name = b.name.get_ref();
    let kind = b.kind.get_ref().as_str();
    // A key the block's kind requires, or an error at its `kind`.
    fn need<'a, T>(
        src: &Src,
        b: &RawBlock,
        k: &str,
        v: &'a Option<T>,
    ) -> Result<&'a T, ConfigError> {
        v.as_ref().ok_or_else(|| {
            let (name, kind) = (b.name.get_ref(), b.kind.get_ref());
            src.at(
                &b.kind,
                format!("block `{name}` of kind `{kind}` needs `{k}`"),
            )
        })
    }
    // Keys that belong to another kind are errors, not silently ignored.
    let foreign: &[(&str, bool)] = match kind {
        "logic" => &[
            ("capacity", b.capacity.is_some()),
            ("reads_per_cycle", b.reads_per_cycle.is_some()),
            ("area", b.area.is_some()),
            ("power", b.power.is_some()),
        ],
        "sram" => &[
            ("transistors", b.transistors.is_some()),
            ("activity", b.activity.is_some()),
            ("area", b.area.is_some()),
            ("power", b.power.is_some()),
        ],
        "fixed" => &[
            ("transistors", b.transistors.is_some()),
            ("activity", b.activity.is_some()),
            ("capacity", b.capacity.is_some()),
            ("reads_per_cycle", b.reads_per_cycle.is_some()),
        ],
        _ => {
            return Err(src.at(
                &b.kind,
                format!("unknown block kind `{kind}`; valid: {KINDS}"),
            ));
        }
    };
    if let Some((k, _)) = foreign.iter().find(|(_, p)| *p) {
        return Err(src.at(
            &b.kind,
            format!("block `{name}` of kind `{kind}` cannot have `{k}`"),
        ));
    }
    let kind = match kind {
        "logic" => {
            let t = need(src, b, "transistors", &b.transistors)?;
            let a = need(src, b, "activity", &b.activity)?;
            BlockKind::Logic {
                transistors: src.num(t, "transistors", None)?,
                activity: src.num(a, "activity", Some(1.0))?,
            }
        }
        "sram" => {
            let c = need(src, b, "capacity", &b.capacity)?;
            let reads = need(src, b, "reads_per_cycle", &b.reads_per_cycle)?;
            if c.get_ref().value() <= 0.0 {
                return Err(src.at(c, "`capacity` must be positive"));
            }
            BlockKind::Sram {
                bits: c.get_ref().value() * 8.0,
                reads_per_cycle: reads.get_ref().value() * 8.0,
            }
        }
        _ => {
            let a = need(src, b, "area", &b.area)?;
            let power = need(src, b, "power", &b.power)?;
            if a.get_ref().value() <= 0.0 {
                return Err(src.at(a, "`area` must be positive"));
            }
            BlockKind::Fixed {
                area: *a.get_ref(),
                power: *power.get_ref(),
            }
        }
    };
    let role = match &b.role {
        None => Role::Base,
        Some(s) => match s.get_ref().as_str() {
            "base" => Role::Base,
            "pim_module" => Role::PimModule,
            "pim_shared" => Role::PimShared,
            r => {
                return Err(src.at(
                    s,
                    format!("unknown role `{r}`; valid: base, pim_module, pim_shared"),
                ));
            }
        },
    };
    Ok(DieBlock {
        name: name.clone(),
        count: src.num(&b.count, "count", None)?,
        kind,
        role,
    })
}

/// Loads a die file and checks the technology it names against `lib`.
pub fn load_die(path: &Path, lib: &Library) -> Result<DieFile, ConfigError> {
    let text = read(path)?;
    let raw: RawDie = parse_toml(path, &text)?;
    let src = Src { path, text: &text };
    let blocks = raw
        .block
        .iter()
        .map(|b| block_of(&src, b))
        .collect::<Result<Vec<_>, _>>()?;
    if blocks.is_empty() {
        return Err(ConfigError::file(
            path,
            "a die needs at least one `[[block]]`",
        ));
    }
    let (layout, layout_at) = raw.layout.resolve(path, &text, "layout")?;
    let tech = TechChoice {
        node: Located::new(&raw.node, path, &text),
        device: Located::new(&raw.device, path, &text),
        layout,
        layout_at,
    };
    check_choice(lib, &tech)?;
    let logic_depth = raw
        .logic_depth
        .as_ref()
        .map(|d| src.num(d, "logic_depth", None))
        .transpose()?;
    if raw.clock.is_none() && raw.logic_depth.is_none() {
        return Err(ConfigError::file(
            path,
            "a die needs `clock` (a datasheet value) or `logic_depth` (stages per cycle, for the model's clock)",
        ));
    }
    if let Some(c) = raw.clock.as_ref().filter(|c| c.get_ref().value() <= 0.0) {
        return Err(src.at(c, "`clock` must be positive"));
    }
    Ok(DieFile {
        spec: DieSpec {
            name: raw.name.get_ref().clone(),
            blocks,
            clock: raw.clock.as_ref().map(|c| *c.get_ref()),
            logic_depth,
        },
        tech,
    })
}
