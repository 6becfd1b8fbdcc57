//! Technology files: the library (`arch/tech/nodes.toml`, `devices.toml`, `model.toml`), die
//! descriptions (`arch/tech/dies/*.toml`) with the technology each names (`choice`). Unknown
//! keys, unknown technology names and impossible layouts are errors at the file, line and
//! column, with the valid names.

use std::path::Path;
use std::sync::Arc;

use toml::Spanned;

use super::choice::{TechChoice, check_choice};
use super::error::ConfigError;
use super::source::{Source, kept};
use crate::tech::{BlockKind, DieBlock, DieSpec, Library, ModelParams, Node, Role};

/// The folder of the shipped technology files (also compiled into the binary).
pub const TECH_DIR: &str = "arch/tech";

mod raw;
use raw::{RawBlock, RawDevices, RawDie, RawModelFile, RawNodes};

/// A die file: the die and the technology it names.
#[derive(Debug, Clone)]
pub struct DieFile {
    /// The die's blocks and clock.
    pub spec: DieSpec,
    /// The technology the file names, with where.
    pub tech: TechChoice,
}

/// Loads the technology library from `dir` (`nodes.toml`, `devices.toml`, `model.toml`); a
/// file missing on disk is read from the copy built into the binary.
pub fn load_tech_library(dir: &Path) -> Result<Library, ConfigError> {
    let devices = load_devices(&dir.join("devices.toml"))?;
    let nodes = load_nodes(&dir.join("nodes.toml"), &devices)?;
    let model = load_model_params(&dir.join("model.toml"))?;
    Ok(Library {
        nodes,
        devices,
        model,
    })
}

/// Loads a die file and checks the technology it names against `lib`.
pub fn load_die(path: &Path, lib: &Library) -> Result<DieFile, ConfigError> {
    let src = Source::read(path)?;
    let raw: Arc<RawDie> = kept(&src, |s| s.parse().map(Arc::new))?;
    let blocks = raw
        .block
        .iter()
        .map(|b| block_of(&src, b))
        .collect::<Result<Vec<_>, _>>()?;
    if blocks.is_empty() {
        return Err(src.whole("a die needs at least one `[[block]]`"));
    }
    let (layout, layout_at) = raw.layout.resolve(&src, "layout")?;
    let tech = TechChoice {
        node: src.locate(&raw.node),
        device: src.locate(&raw.device),
        layout,
        layout_at,
    };
    check_choice(lib, &tech)?;
    let logic_depth = raw
        .logic_depth
        .as_ref()
        .map(|d| num(&src, d, "logic_depth", None))
        .transpose()?;
    if raw.clock.is_none() && raw.logic_depth.is_none() {
        return Err(src.whole(
            "a die needs `clock` (a datasheet value) or `logic_depth` (stages per cycle, for the model's clock)",
        ));
    }
    if let Some(c) = raw.clock.as_ref().filter(|c| c.get_ref().value() <= 0.0) {
        return Err(src.err(c, "`clock` must be positive"));
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

// ---- the library files ----

fn load_devices(path: &Path) -> Result<Vec<crate::tech::Device>, ConfigError> {
    let src = Source::read(path)?;
    let raw: Arc<RawDevices> = kept(&src, |s| s.parse().map(Arc::new))?;
    let mut devices = Vec::new();
    for d in &raw.device {
        devices.push(crate::tech::Device {
            name: d.name.get_ref().clone(),
            tracks: num(&src, &d.tracks, "tracks", None)?,
            cell_area: num(&src, &d.cell_area, "cell_area", None)?,
            drive: num(&src, &d.drive, "drive", None)?,
            cap: num(&src, &d.cap, "cap", None)?,
            dual_sided_pins: d.dual_sided_pins,
        });
    }
    Ok(devices)
}

fn load_nodes(path: &Path, devices: &[crate::tech::Device]) -> Result<Vec<Node>, ConfigError> {
    let src = Source::read(path)?;
    let raw: Arc<RawNodes> = kept(&src, |s| s.parse().map(Arc::new))?;
    let mut nodes = Vec::new();
    for n in &raw.node {
        let native = n.native_device.get_ref();
        if !devices.iter().any(|d| &d.name == native) {
            let valid: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
            return Err(src.err(
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
            logic_density: num(
                &src,
                &n.logic_density_mtr_per_mm2,
                "logic_density_mtr_per_mm2",
                None,
            )?,
            sram_bitcell_um2: num(&src, &n.sram_bitcell_um2, "sram_bitcell_um2", None)?,
            sram_array_efficiency: num(
                &src,
                &n.sram_array_efficiency,
                "sram_array_efficiency",
                Some(1.0),
            )?,
            metal_pitch_um: num(&src, &n.metal_pitch_nm, "metal_pitch_nm", None)? * 1e-3,
            vdd: num(&src, &n.vdd_v, "vdd_v", None)?,
            fo4: num(&src, &n.fo4_ps, "fo4_ps", None)? * 1e-12,
            gate_cap: num(&src, &n.gate_cap_ff, "gate_cap_ff", None)? * 1e-15,
            wire_r_per_um: num(&src, &n.wire_r_ohm_per_um, "wire_r_ohm_per_um", None)?,
            wire_c_per_um: num(&src, &n.wire_c_ff_per_um, "wire_c_ff_per_um", None)? * 1e-15,
            leakage_per_transistor: num(
                &src,
                &n.leakage_nw_per_transistor,
                "leakage_nw_per_transistor",
                None,
            )? * 1e-9,
            sram_read_energy_per_bit: num(
                &src,
                &n.sram_read_fj_per_bit,
                "sram_read_fj_per_bit",
                None,
            )? * 1e-15,
            wafer_cost_usd: num(&src, &n.wafer_cost_usd, "wafer_cost_usd", None)?,
            defect_density_per_mm2: num(
                &src,
                &n.defect_density_per_mm2,
                "defect_density_per_mm2",
                None,
            )?,
        });
    }
    Ok(nodes)
}

fn load_model_params(path: &Path) -> Result<ModelParams, ConfigError> {
    let src = Source::read(path)?;
    let raw: Arc<RawModelFile> = kept(&src, |s| s.parse().map(Arc::new))?;
    let m = &raw.model;
    let pitches = m.layer_pitch.get_ref();
    if pitches.is_empty() || pitches.iter().any(|p| !(*p >= 1.0 && p.is_finite())) {
        return Err(src.err(
            &m.layer_pitch,
            "`layer_pitch` must list at least one pitch, each at least 1 (the minimum pitch)",
        ));
    }
    Ok(ModelParams {
        rent_exponent: num(&src, &m.rent_exponent, "rent_exponent", Some(1.0))?,
        net_length_constant: num(&src, &m.net_length_constant, "net_length_constant", None)?,
        stage_wire_constant: num(&src, &m.stage_wire_constant, "stage_wire_constant", None)?,
        routing_efficiency: num(&src, &m.routing_efficiency, "routing_efficiency", Some(1.0))?,
        pin_access_coefficient: num(
            &src,
            &m.pin_access_coefficient,
            "pin_access_coefficient",
            None,
        )?,
        detour_coefficient: num(&src, &m.detour_coefficient, "detour_coefficient", None)?,
        cross_side_overhead: num(&src, &m.cross_side_overhead, "cross_side_overhead", None)?,
        partition_cells: num(&src, &m.partition_cells, "partition_cells", None)?,
        transistors_per_cell: num(&src, &m.transistors_per_cell, "transistors_per_cell", None)?,
        pins_per_cell: num(&src, &m.pins_per_cell, "pins_per_cell", None)?,
        fanout: num(&src, &m.fanout, "fanout", None)?,
        site_width_tracks: num(&src, &m.site_width_tracks, "site_width_tracks", None)?,
        max_utilization: num(&src, &m.max_utilization, "max_utilization", Some(1.0))?,
        max_utilization_backside_power: num(
            &src,
            &m.max_utilization_backside_power,
            "max_utilization_backside_power",
            Some(1.0),
        )?,
        power_rail_track_share: num(
            &src,
            &m.power_rail_track_share,
            "power_rail_track_share",
            Some(0.9),
        )?,
        layer_pitch: pitches.clone(),
    })
}

// ---- die blocks ----

/// A number that must be positive (and at most `max`, when given).
fn num(src: &Source, s: &Spanned<f64>, key: &str, max: Option<f64>) -> Result<f64, ConfigError> {
    let v = *s.get_ref();
    // Normal: positive, finite and not subnormal (5e-324 transistors gave NaN watts).
    if !(v > 0.0 && v.is_normal()) {
        return Err(src.err(
            s,
            format!("`{key}` must be a positive normal number, found {v:e}"),
        ));
    }
    match max {
        Some(m) if v > m => Err(src.err(s, format!("`{key}` must be at most {m}, found {v}"))),
        _ => Ok(v),
    }
}

const KINDS: &str = "logic, sram, fixed";

fn block_of(src: &Source, b: &RawBlock) -> Result<DieBlock, ConfigError> {
    check_kind_keys(src, b)?;
    Ok(DieBlock {
        name: b.name.get_ref().clone(),
        count: num(src, &b.count, "count", None)?,
        kind: kind_of(src, b)?,
        role: role_of(src, b)?,
    })
}

/// A known kind, and no key that belongs to another kind (an error, not silently ignored).
fn check_kind_keys(src: &Source, b: &RawBlock) -> Result<(), ConfigError> {
    let (name, kind) = (b.name.get_ref(), b.kind.get_ref().as_str());
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
            return Err(src.err(
                &b.kind,
                format!("unknown block kind `{kind}`; valid: {KINDS}"),
            ));
        }
    };
    match foreign.iter().find(|(_, p)| *p) {
        Some((k, _)) => Err(src.err(
            &b.kind,
            format!("block `{name}` of kind `{kind}` cannot have `{k}`"),
        )),
        None => Ok(()),
    }
}

/// A key the block's kind requires, or an error at its `kind`.
fn need<'a, T>(
    src: &Source,
    b: &RawBlock,
    k: &str,
    v: &'a Option<T>,
) -> Result<&'a T, ConfigError> {
    v.as_ref().ok_or_else(|| {
        let (name, kind) = (b.name.get_ref(), b.kind.get_ref());
        src.err(
            &b.kind,
            format!("block `{name}` of kind `{kind}` needs `{k}`"),
        )
    })
}

/// The block's kind with the values it needs (the kind already checked).
fn kind_of(src: &Source, b: &RawBlock) -> Result<BlockKind, ConfigError> {
    Ok(match b.kind.get_ref().as_str() {
        "logic" => {
            let t = need(src, b, "transistors", &b.transistors)?;
            let a = need(src, b, "activity", &b.activity)?;
            BlockKind::Logic {
                transistors: num(src, t, "transistors", None)?,
                activity: num(src, a, "activity", Some(1.0))?,
            }
        }
        "sram" => {
            let c = need(src, b, "capacity", &b.capacity)?;
            let reads = need(src, b, "reads_per_cycle", &b.reads_per_cycle)?;
            if !(c.get_ref().value() > 0.0 && c.get_ref().value().is_normal()) {
                return Err(src.err(c, "`capacity` must be positive"));
            }
            if !(reads.get_ref().value() > 0.0 && reads.get_ref().value().is_normal()) {
                return Err(src.err(reads, "`reads_per_cycle` must be positive"));
            }
            BlockKind::Sram {
                bits: c.get_ref().value() * 8.0,
                reads_per_cycle: reads.get_ref().value() * 8.0,
            }
        }
        _ => {
            let a = need(src, b, "area", &b.area)?;
            let power = need(src, b, "power", &b.power)?;
            if !(a.get_ref().value() > 0.0 && a.get_ref().value().is_normal()) {
                return Err(src.err(a, "`area` must be positive"));
            }
            let w = power.get_ref().value();
            if !(w == 0.0 || w > 0.0 && w.is_normal()) {
                return Err(src.err(power, "`power` must be zero or positive"));
            }
            BlockKind::Fixed {
                area: *a.get_ref(),
                power: *power.get_ref(),
            }
        }
    })
}

/// The block's role on the die: base (the default), a PIM module, or shared by the modules.
fn role_of(src: &Source, b: &RawBlock) -> Result<Role, ConfigError> {
    let Some(s) = &b.role else {
        return Ok(Role::Base);
    };
    match s.get_ref().as_str() {
        "base" => Ok(Role::Base),
        "pim_module" => Ok(Role::PimModule),
        "pim_shared" => Ok(Role::PimShared),
        r => Err(src.err(
            s,
            format!("unknown role `{r}`; valid: base, pim_module, pim_shared"),
        )),
    }
}
