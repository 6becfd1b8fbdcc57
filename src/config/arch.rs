//! Arch TOML: an xPU in a node, with `extends = "other.toml"` and overrides.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use super::presets;
use super::tech::{Located, RawLayout};
use crate::hw::{
    ClassEfficiency, Cluster, Curve, Energy, Link, Memory, Node, Origin, Pim, PimKind, PimOrigin,
    System, Xpu,
};
use crate::tech::Layout;
use crate::units::{
    Area, Bytes, BytesPerSecond, FlopsPerSecond, Hertz, JoulesPerBit, JoulesPerFlop, Seconds, Watts,
};
use crate::work::Dtype;

type Points = Vec<(f64, f64)>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArch {
    extends: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
    /// Where the numbers come from (free text).
    #[allow(dead_code)]
    source: Option<Spanned<String>>,
    xpu: Option<RawXpu>,
    pim: Option<RawPim>,
    node: Option<RawNode>,
    cluster: Option<RawCluster>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPim {
    kind: Option<Spanned<String>>,
    stacks: Option<Spanned<i64>>,
    modules: Option<Spanned<i64>>,
    macs: Option<Spanned<i64>>,
    frequency: Option<Spanned<Hertz>>,
    bandwidth_multiplier: Option<Spanned<f64>>,
    overhead: Option<Spanned<Seconds>>,
    compute: Option<Spanned<Points>>,
    memory: Option<Spanned<Points>>,
    energy: Option<RawPimEnergy>,
    tech: Option<RawPimTech>,
}

/// `[pim.tech]`: the HBM logic die the Logic-PIM modules are built on, and its budgets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPimTech {
    die: Option<Spanned<String>>,
    node: Option<Spanned<String>>,
    device: Option<Spanned<String>>,
    layout: Option<RawLayout>,
    die_area: Option<Spanned<Area>>,
    power_budget: Option<Spanned<Watts>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPimEnergy {
    flop: Option<Spanned<JoulesPerFlop>>,
    dram: Option<Spanned<JoulesPerBit>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawXpu {
    peak_flops: Option<RawPeak>,
    sram: Option<Spanned<Bytes>>,
    host_overhead: Option<Spanned<Seconds>>,
    memory: Option<RawMemory>,
    efficiency: Option<RawEfficiency>,
    tech: Option<RawXpuTech>,
    energy: Option<RawEnergy>,
}

/// `[xpu.tech]`: the die the xPU is built as, and the technology overrides the arch makes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawXpuTech {
    die: Option<Spanned<String>>,
    node: Option<Spanned<String>>,
    device: Option<Spanned<String>>,
    layout: Option<RawLayout>,
    clock: Option<Spanned<Hertz>>,
    power: Option<Spanned<Watts>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnergy {
    flop: Option<Spanned<JoulesPerFlop>>,
    dram: Option<Spanned<JoulesPerBit>>,
    static_power: Option<Spanned<Watts>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeak {
    fp32: Option<Spanned<FlopsPerSecond>>,
    bf16: Option<Spanned<FlopsPerSecond>>,
    fp16: Option<Spanned<FlopsPerSecond>>,
    fp8: Option<Spanned<FlopsPerSecond>>,
    int8: Option<Spanned<FlopsPerSecond>>,
    int4: Option<Spanned<FlopsPerSecond>>,
}

impl RawPeak {
    fn get(&self, d: Dtype) -> Option<&Spanned<FlopsPerSecond>> {
        match d {
            Dtype::Fp32 => self.fp32.as_ref(),
            Dtype::Bf16 => self.bf16.as_ref(),
            Dtype::Fp16 => self.fp16.as_ref(),
            Dtype::Fp8 => self.fp8.as_ref(),
            Dtype::Int8 => self.int8.as_ref(),
            Dtype::Int4 => self.int4.as_ref(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMemory {
    capacity: Option<Spanned<Bytes>>,
    bandwidth: Option<Spanned<BytesPerSecond>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEfficiency {
    gemm: Option<RawClass>,
    attention: Option<RawClass>,
    elementwise: Option<RawClass>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClass {
    overhead: Option<Spanned<Seconds>>,
    compute: Option<Spanned<Points>>,
    memory: Option<Spanned<Points>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    devices: Option<Spanned<i64>>,
    link: Option<RawLink>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    nodes: Option<Spanned<i64>>,
    link: Option<RawLink>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    bandwidth: Option<Spanned<BytesPerSecond>>,
    latency: Option<Spanned<Seconds>>,
    overhead: Option<Spanned<Seconds>>,
    efficiency: Option<Spanned<Points>>,
    energy: Option<Spanned<JoulesPerBit>>,
}

/// One file of an `extends` chain.
struct Layer {
    path: PathBuf,
    text: Arc<str>,
    raw: RawArch,
}

/// Where a resolved value was written.
#[derive(Clone, Copy)]
struct Loc<'a> {
    layer: &'a Layer,
    span: (usize, usize),
}

impl Loc<'_> {
    fn err(&self, msg: impl Into<String>) -> ConfigError {
        let l = self.layer;
        ConfigError::at(&l.path, &l.text, self.span.0..self.span.1, msg)
    }
}

/// Reads a file from disk, or from the built-in presets when no such file exists.
pub(super) fn read_source(path: &Path) -> Result<Arc<str>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t.into()),
        Err(e) => presets::file(path)
            .map(Arc::from)
            .ok_or_else(|| ConfigError::file(path, format!("cannot read the file: {e}"))),
    }
}

/// Parses one TOML file into `T`, mapping TOML and serde errors to the file, line and column.
pub(super) fn parse_toml<T: for<'de> Deserialize<'de>>(
    path: &Path,
    text: &Arc<str>,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().to_string();
        match e.span() {
            Some(s) => ConfigError::at(path, text, s, msg),
            None => ConfigError::file(path, msg),
        }
    })
}

const MAX_EXTENDS: usize = 16;

/// Where the last file read wrote its `extends` (the key that led to the next file).
fn extends_loc(layers: &[Layer]) -> Option<Loc<'_>> {
    let layer = layers.last()?;
    let s = layer.raw.extends.as_ref()?.span();
    Some(Loc {
        layer,
        span: (s.start, s.end),
    })
}

fn load_layers(path: &Path, first: Option<Arc<str>>) -> Result<Vec<Layer>, ConfigError> {
    let mut first = first;
    let mut layers: Vec<Layer> = Vec::new();
    let mut seen = HashSet::new();
    let mut next = Some(path.to_path_buf());
    while let Some(p) = next.take() {
        let key = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
        if !seen.insert(key) || layers.len() >= MAX_EXTENDS {
            let msg = format!("`extends` forms a cycle or a chain deeper than {MAX_EXTENDS} files");
            return Err(match extends_loc(&layers) {
                Some(loc) => loc.err(msg),
                None => ConfigError::file(&p, msg),
            });
        }
        let text = match first.take().map_or_else(|| read_source(&p), Ok) {
            Ok(t) => t,
            Err(e) => {
                // Point at the `extends` that named the missing file, if any.
                return Err(match extends_loc(&layers) {
                    Some(loc) => loc.err(format!("cannot extend {}: {}", p.display(), e.message())),
                    None => e,
                });
            }
        };
        let raw: RawArch = parse_toml(&p, &text)?;
        if let Some(ext) = &raw.extends {
            let dir = p.parent().unwrap_or(Path::new(""));
            next = Some(dir.join(ext.get_ref()));
        }
        layers.push(Layer { path: p, text, raw });
    }
    Ok(layers)
}

/// Values looked up through the `extends` chain: the first file that sets a key wins.
struct Resolver {
    layers: Vec<Layer>,
}

/// Numbers that must be positive (bandwidths, capacities, peaks) or non-negative (overheads).
trait Si {
    fn si(&self) -> f64;
}

macro_rules! si {
    ($($t:ty),*) => {$(impl Si for $t { fn si(&self) -> f64 { self.value() } })*};
}
si!(
    Area,
    Bytes,
    Hertz,
    BytesPerSecond,
    FlopsPerSecond,
    Seconds,
    JoulesPerFlop,
    JoulesPerBit,
    Watts
);

impl Resolver {
    fn top(&self) -> &Layer {
        &self.layers[0]
    }

    fn get<'a, T>(
        &'a self,
        f: impl Fn(&'a RawArch) -> Option<&'a Spanned<T>>,
    ) -> Option<(&'a T, Loc<'a>)> {
        self.layers.iter().find_map(|layer| {
            f(&layer.raw).map(|s| {
                let span = (s.span().start, s.span().end);
                (s.get_ref(), Loc { layer, span })
            })
        })
    }

    fn req<'a, T>(
        &'a self,
        key: &str,
        f: impl Fn(&'a RawArch) -> Option<&'a Spanned<T>>,
    ) -> Result<(&'a T, Loc<'a>), ConfigError> {
        self.get(f).ok_or_else(|| {
            let top = self.top();
            let chain = if self.layers.len() > 1 {
                " nor in the files it extends"
            } else {
                ""
            };
            ConfigError::file(
                &top.path,
                format!("missing key `{key}`: it is not set in this file{chain}"),
            )
            .with_help(format!(
                "add `{key}` (every physical parameter must be given)"
            ))
        })
    }

    /// A quantity that must be > 0 (`strict`) or >= 0.
    fn quantity<'a, T: Si + Copy + std::fmt::Display + 'a>(
        &'a self,
        key: &str,
        strict: bool,
        f: impl Fn(&'a RawArch) -> Option<&'a Spanned<T>>,
    ) -> Result<T, ConfigError> {
        let (v, loc) = self.req(key, f)?;
        let ok = if strict { v.si() > 0.0 } else { v.si() >= 0.0 };
        if !ok {
            let want = if strict {
                "positive"
            } else {
                "zero or positive"
            };
            return Err(loc.err(format!("`{key}` must be {want}, found {v}")));
        }
        Ok(*v)
    }

    fn curve<'a>(
        &'a self,
        key: &str,
        f: impl Fn(&'a RawArch) -> Option<&'a Spanned<Points>>,
    ) -> Result<Curve, ConfigError> {
        let (points, loc) = self.req(key, f)?;
        Curve::new(points.clone()).map_err(|e| loc.err(format!("`{key}`: {e}")))
    }

    fn class(&self, name: &str) -> Result<ClassEfficiency, ConfigError> {
        let key = |k: &str| format!("xpu.efficiency.{name}.{k}");
        Ok(ClassEfficiency {
            compute: self.curve(&key("compute"), |r| class_of(r, name)?.compute.as_ref())?,
            memory: self.curve(&key("memory"), |r| class_of(r, name)?.memory.as_ref())?,
            overhead: self.quantity(&key("overhead"), false, |r| {
                class_of(r, name)?.overhead.as_ref()
            })?,
        })
    }

    /// A positive integer key.
    fn count<'a>(
        &'a self,
        key: &str,
        f: impl Fn(&'a RawArch) -> Option<&'a Spanned<i64>>,
    ) -> Result<u32, ConfigError> {
        let (v, loc) = self.req(key, f)?;
        u32::try_from(*v)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| loc.err(format!("`{key}` must be a positive integer, found {v}")))
    }

    /// The PIM units, if any file of the chain has a `[pim]` table; then every key is required.
    fn pim(&self) -> Result<Option<Pim>, ConfigError> {
        if !self.layers.iter().any(|l| l.raw.pim.is_some()) {
            return Ok(None);
        }
        let (kind, kloc) = self.req("pim.kind", |r| pim(r)?.kind.as_ref())?;
        let kind = match kind.as_str() {
            "logic" => PimKind::Logic,
            "bankgroup" => PimKind::BankGroup,
            "bank" => PimKind::Bank,
            other => {
                return Err(kloc.err(format!(
                    "unknown PIM kind \"{other}\" (valid: {})",
                    PimKind::NAMES.join(", ")
                )));
            }
        };
        let (mult, mloc) = self.req("pim.bandwidth_multiplier", |r| {
            pim(r)?.bandwidth_multiplier.as_ref()
        })?;
        if !(*mult > 0.0 && mult.is_finite()) {
            return Err(mloc.err(format!(
                "`pim.bandwidth_multiplier` must be positive, found {mult}"
            )));
        }
        let coupled = self.pim_tech()?;
        if coupled.is_some() && kind != PimKind::Logic {
            return Err(kloc.err(format!(
                "`pim.tech` sizes Logic-PIM modules on the HBM logic die, but `pim.kind` is \"{}\"",
                kind.name()
            )));
        }
        let (macs, mloc) = self.req("pim.macs", |r| pim(r)?.macs.as_ref())?;
        if let Some(c) = &coupled
            && *macs as f64 != crate::tech::pim::MACS_PER_MODULE
        {
            return Err(mloc.err(format!(
                "`pim.macs` is {macs} but the logic die `pim.tech.die` describes modules of {} MACs",
                crate::tech::pim::MACS_PER_MODULE
            ))
            .with_help(format!("set `pim.macs = {}` or describe another module in {}", crate::tech::pim::MACS_PER_MODULE, c.die.display())));
        }
        let fit = coupled.as_ref().map(|c| &c.fit);
        let has = |set: bool| if set { Origin::Arch } else { Origin::Model };
        let modules_set = self.get(|r| pim(r)?.modules.as_ref()).is_some();
        let freq_set = self.get(|r| pim(r)?.frequency.as_ref()).is_some();
        let flop_set = self
            .get(|r| pim(r)?.energy.as_ref()?.flop.as_ref())
            .is_some();
        let modules = match fit {
            Some(f) if !modules_set => u32::try_from(f.modules).unwrap_or(u32::MAX),
            _ => self.count("pim.modules", |r| pim(r)?.modules.as_ref())?,
        };
        if modules == 0 {
            let c = coupled
                .as_ref()
                .map(|c| c.die.display().to_string())
                .unwrap_or_default();
            return Err(ConfigError::file(
                &self.top().path,
                format!(
                    "no Logic-PIM module fits on the logic die {c} under `pim.tech.die_area` and `pim.tech.power_budget`"
                ),
            ));
        }
        let frequency = match fit {
            Some(f) if !freq_set => f.clock,
            _ => self.quantity("pim.frequency", true, |r| pim(r)?.frequency.as_ref())?,
        };
        let flop_energy = match fit {
            Some(f) if !flop_set => f.flop_energy,
            _ => self.quantity("pim.energy.flop", true, |r| {
                pim(r)?.energy.as_ref()?.flop.as_ref()
            })?,
        };
        Ok(Some(Pim {
            kind,
            stacks: self.count("pim.stacks", |r| pim(r)?.stacks.as_ref())?,
            modules,
            macs: self.count("pim.macs", |r| pim(r)?.macs.as_ref())?,
            frequency,
            bandwidth_multiplier: *mult,
            compute: self.curve("pim.compute", |r| pim(r)?.compute.as_ref())?,
            memory: self.curve("pim.memory", |r| pim(r)?.memory.as_ref())?,
            overhead: self.quantity("pim.overhead", false, |r| pim(r)?.overhead.as_ref())?,
            flop_energy,
            dram_energy: self.quantity("pim.energy.dram", true, |r| {
                pim(r)?.energy.as_ref()?.dram.as_ref()
            })?,
            origin: coupled.map(|c| PimOrigin {
                technology: c.fit.technology.clone(),
                modules: has(modules_set),
                frequency: has(freq_set),
                flop_energy: has(flop_set),
            }),
        }))
    }

    /// A string value with where it was written (the first file of the chain that sets it).
    fn located<'a>(
        &'a self,
        f: impl Fn(&'a RawArch) -> Option<&'a Spanned<String>>,
    ) -> Option<Located<String>> {
        self.layers
            .iter()
            .find_map(|l| f(&l.raw).map(|s| Located::new(s, &l.path, &l.text)))
    }

    /// The die file a technology table (`table`: `xpu.tech`, `pim.tech`) names, relative to the
    /// file that names it; `None` when no file of the chain has the table.
    fn tech_die<'a>(
        &'a self,
        table: &str,
        has: impl Fn(&'a RawArch) -> bool,
        die: impl Fn(&'a RawArch) -> Option<&'a Spanned<String>>,
    ) -> Result<Option<PathBuf>, ConfigError> {
        let Some(d) = self.located(die) else {
            return match self.layers.iter().find(|l| has(&l.raw)) {
                Some(l) => Err(ConfigError::file(
                    &l.path,
                    format!(
                        "missing key `{table}.die`: `[{table}]` needs the die file it describes"
                    ),
                )),
                None => Ok(None),
            };
        };
        Ok(Some(
            d.path.parent().unwrap_or(Path::new("")).join(&d.value),
        ))
    }

    /// The layout a technology table states, checked on its own.
    fn tech_layout<'a>(
        &'a self,
        table: &str,
        f: impl Fn(&'a RawArch) -> Option<&'a RawLayout>,
    ) -> Result<Option<(Layout, Located<i64>)>, ConfigError> {
        match self.layers.iter().find_map(|l| f(&l.raw).map(|x| (l, x))) {
            Some((l, raw)) => Ok(Some(raw.resolve(
                &l.path,
                &l.text,
                &format!("{table}.layout"),
            )?)),
            None => Ok(None),
        }
    }

    /// `[pim.tech]`: the logic die in its technology and how many modules fit under its budgets.
    fn pim_tech(&self) -> Result<Option<PimCoupling>, ConfigError> {
        let Some(path) = self.tech_die(
            "pim.tech",
            |a| ptech(a).is_some(),
            |a| ptech(a)?.die.as_ref(),
        )?
        else {
            return Ok(None);
        };
        let lib = super::tech::load_tech_library(Path::new(super::tech::TECH_DIR))?;
        let f = super::tech::load_die(&path, &lib)?;
        let reference = lib
            .technology(&f.tech.node.value, &f.tech.device.value, f.tech.layout)
            .map_err(|e| f.tech.node.err(e))?;
        let mut choice = f.tech.clone();
        if let Some(n) = self.located(|a| ptech(a)?.node.as_ref()) {
            if lib.node(&n.value).is_none() {
                return Err(n.err(format!(
                    "`pim.tech.node`: unknown node `{}`; valid: {}",
                    n.value,
                    lib.node_names().join(", ")
                )));
            }
            choice.node = n;
        }
        if let Some(d) = self.located(|a| ptech(a)?.device.as_ref()) {
            if lib.device(&d.value).is_none() {
                return Err(d.err(format!(
                    "`pim.tech.device`: unknown device `{}`; valid: {}",
                    d.value,
                    lib.device_names().join(", ")
                )));
            }
            choice.device = d;
        }
        if let Some((layout, at)) = self.tech_layout("pim.tech", |a| ptech(a)?.layout.as_ref())? {
            choice.layout = layout;
            choice.layout_at = at;
        }
        super::tech::check_choice(&lib, &choice)?;
        let t = lib
            .technology(&choice.node.value, &choice.device.value, choice.layout)
            .map_err(|e| choice.node.err(e))?;
        let die_area = self.quantity("pim.tech.die_area", true, |r| ptech(r)?.die_area.as_ref())?;
        let mut budget = crate::tech::pim::budget(&reference, &f.spec, die_area);
        if self.get(|r| ptech(r)?.power_budget.as_ref()).is_some() {
            budget.pim_power = self.quantity("pim.tech.power_budget", true, |r| {
                ptech(r)?.power_budget.as_ref()
            })?;
        }
        Ok(Some(PimCoupling {
            fit: crate::tech::pim::fit(&t, &f.spec, &budget),
            die: path,
        }))
    }

    fn system(&self) -> Result<System, ConfigError> {
        let mut peak = std::collections::BTreeMap::new();
        for d in Dtype::ALL {
            let key = format!("xpu.peak_flops.{d}");
            if self.get(|r| xpu(r)?.peak_flops.as_ref()?.get(d)).is_some() {
                let v = self.quantity(&key, true, |r| xpu(r)?.peak_flops.as_ref()?.get(d))?;
                peak.insert(d, v);
            }
        }
        if peak.is_empty() {
            self.req("xpu.peak_flops.bf16", |r| {
                xpu(r)?.peak_flops.as_ref()?.get(Dtype::Bf16)
            })?;
        }
        let (devices, dloc) = self.req("node.devices", |r| r.node.as_ref()?.devices.as_ref())?;
        let devices = u32::try_from(*devices)
            .ok()
            .filter(|d| *d >= 1)
            .ok_or_else(|| {
                dloc.err(format!(
                    "`node.devices` must be at least 1, found {devices}"
                ))
            })?;
        let name = self
            .get(|r| r.name.as_ref())
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| self.top().path.display().to_string());
        Ok(System {
            name,
            pim: self.pim()?,
            xpu: Xpu {
                peak,
                sram: self.quantity("xpu.sram", true, |r| xpu(r)?.sram.as_ref())?,
                memory: Memory {
                    capacity: self
                        .quantity("xpu.memory.capacity", true, |r| mem(r)?.capacity.as_ref())?,
                    bandwidth: self
                        .quantity("xpu.memory.bandwidth", true, |r| mem(r)?.bandwidth.as_ref())?,
                },
                gemm: self.class("gemm")?,
                attention: self.class("attention")?,
                elementwise: self.class("elementwise")?,
                energy: Energy {
                    flop: self.quantity("xpu.energy.flop", true, |r| energy(r)?.flop.as_ref())?,
                    dram: self.quantity("xpu.energy.dram", true, |r| energy(r)?.dram.as_ref())?,
                    static_power: self.quantity("xpu.energy.static_power", false, |r| {
                        energy(r)?.static_power.as_ref()
                    })?,
                },
                host_overhead: self.quantity("xpu.host_overhead", false, |r| {
                    xpu(r)?.host_overhead.as_ref()
                })?,
            },
            node: Node {
                devices,
                link: self.link("node.link", link)?,
            },
            cluster: self.cluster()?,
        })
    }

    /// A link table at `key` (`node.link`, `cluster.link`), reached through `at`.
    fn link(&self, key: &str, at: fn(&RawArch) -> Option<&RawLink>) -> Result<Link, ConfigError> {
        let k = |f: &str| format!("{key}.{f}");
        Ok(Link {
            bandwidth: self.quantity(&k("bandwidth"), true, |r| at(r)?.bandwidth.as_ref())?,
            latency: self.quantity(&k("latency"), false, |r| at(r)?.latency.as_ref())?,
            overhead: self.quantity(&k("overhead"), false, |r| at(r)?.overhead.as_ref())?,
            efficiency: self.curve(&k("efficiency"), |r| at(r)?.efficiency.as_ref())?,
            energy: self.quantity(&k("energy"), false, |r| at(r)?.energy.as_ref())?,
        })
    }

    /// The scale-out network, if any file of the chain has a `[cluster]` table.
    fn cluster(&self) -> Result<Option<Cluster>, ConfigError> {
        if !self.layers.iter().any(|l| l.raw.cluster.is_some()) {
            return Ok(None);
        }
        Ok(Some(Cluster {
            nodes: self.count("cluster.nodes", |r| r.cluster.as_ref()?.nodes.as_ref())?,
            link: self.link("cluster.link", |r| r.cluster.as_ref()?.link.as_ref())?,
        }))
    }
}

fn xpu(r: &RawArch) -> Option<&RawXpu> {
    r.xpu.as_ref()
}

fn mem(r: &RawArch) -> Option<&RawMemory> {
    xpu(r)?.memory.as_ref()
}

fn pim(r: &RawArch) -> Option<&RawPim> {
    r.pim.as_ref()
}

fn ptech(r: &RawArch) -> Option<&RawPimTech> {
    pim(r)?.tech.as_ref()
}

/// What `[pim.tech]` gives: the fit of the logic die's technology and the die file it read.
struct PimCoupling {
    fit: crate::tech::pim::Fit,
    die: PathBuf,
}

fn energy(r: &RawArch) -> Option<&RawEnergy> {
    xpu(r)?.energy.as_ref()
}

fn link(r: &RawArch) -> Option<&RawLink> {
    r.node.as_ref()?.link.as_ref()
}

fn class_of<'a>(r: &'a RawArch, name: &str) -> Option<&'a RawClass> {
    let e = xpu(r)?.efficiency.as_ref()?;
    match name {
        "gemm" => e.gemm.as_ref(),
        "attention" => e.attention.as_ref(),
        _ => e.elementwise.as_ref(),
    }
}

/// The technology an arch file names under `[xpu.tech]`, resolved through `extends`.
#[derive(Debug, Clone)]
pub struct ArchTech {
    /// The die file, relative to the file that named it.
    pub die: PathBuf,
    pub node: Option<Located<String>>,
    pub device: Option<Located<String>>,
    pub layout: Option<(Layout, Located<i64>)>,
    /// Explicit values: they win over the tech model.
    pub clock: Option<Hertz>,
    pub power: Option<Watts>,
}

fn xtech(r: &RawArch) -> Option<&RawXpuTech> {
    xpu(r)?.tech.as_ref()
}

/// Reads `[xpu.tech]` of an arch file; `None` when the arch names no technology.
pub fn load_arch_tech(path: &Path) -> Result<Option<ArchTech>, ConfigError> {
    let path = presets::resolve_arch(path);
    let r = Resolver {
        layers: load_layers(&path, None)?,
    };
    let Some(die) = r.tech_die(
        "xpu.tech",
        |a| xtech(a).is_some(),
        |a| xtech(a)?.die.as_ref(),
    )?
    else {
        return Ok(None);
    };
    let layout = r.tech_layout("xpu.tech", |a| xtech(a)?.layout.as_ref())?;
    Ok(Some(ArchTech {
        die,
        node: r.located(|a| xtech(a)?.node.as_ref()),
        device: r.located(|a| xtech(a)?.device.as_ref()),
        layout,
        clock: r.get(|a| xtech(a)?.clock.as_ref()).map(|(v, _)| *v),
        power: r.get(|a| xtech(a)?.power.as_ref()).map(|(v, _)| *v),
    }))
}

/// Loads an arch file (or a built-in preset path such as `arch/h100.toml`), following `extends`.
pub fn load_arch(path: &Path) -> Result<System, ConfigError> {
    load_arch_with(path, None)
}

/// Loads an arch whose top file reads `text` (an edited copy, as a sweep point makes) instead of
/// the file at `path`; `extends` still resolves relative to `path`.
pub fn load_arch_with(path: &Path, text: Option<Arc<str>>) -> Result<System, ConfigError> {
    let path = presets::resolve_arch(path);
    let layers = load_layers(&path, text)?;
    Resolver { layers }.system()
}

/// The plain TOML tables of an arch's `extends` chain, top file first, each with its path.
pub fn arch_tables(path: &Path) -> Result<Vec<(PathBuf, toml::Table)>, ConfigError> {
    let path = presets::resolve_arch(path);
    load_layers(&path, None)?
        .into_iter()
        .map(|l| {
            let t: toml::Table = parse_toml(&l.path, &l.text)?;
            Ok((l.path, t))
        })
        .collect()
}

/// The text of an input file (from disk, or the built-in presets), for callers that edit it.
pub fn source_text(path: &Path) -> Result<Arc<str>, ConfigError> {
    read_source(path)
}
