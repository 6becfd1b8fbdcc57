//! Arch TOML: an xPU in a node, with `extends = "other.toml"` and overrides.
//!
//! [`ArchChain::read`] reads a file and the files it extends; then [`ArchChain::system`] checks
//! every value and builds the [`System`]. Values are looked up through the chain key by key:
//! the first file that sets a key wins. `[pim.tech]` is returned as the choice it states
//! ([`ArchChain::pim_tech`]); the tech model resolves it against a library the caller holds,
//! and `system` takes the values it gives for every `[pim]` key the arch leaves out.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use super::choice::TechOverride;
use super::error::ConfigError;
use super::presets;
use super::source::{Located, Source, kept};
use crate::hw::{
    ClassEfficiency, Cluster, Curve, Energy, Link, Memory, Node, Origin, Pim, PimKind, PimOrigin,
    System, Xpu,
};
use crate::tech::Layout;
use crate::tech::pim::{Explicit, MACS_PER_MODULE, PimTechValues};
use crate::units::{
    Area, Bytes, BytesPerSecond, FlopsPerSecond, Hertz, JoulesPerBit, JoulesPerFlop, Seconds, Watts,
};
use crate::work::Dtype;

mod raw;
mod streaming;
mod tiling;
use raw::{Points, RawArch, RawLink, class_of, energy, link, mem, pim, ptech, xpu, xtech};

/// An arch file and the files it extends, read and parsed, top file first; nothing checked yet.
pub struct ArchChain {
    layers: Vec<Layer>,
}

/// The technology an arch file names under `[xpu.tech]`, resolved through `extends`.
#[derive(Debug, Clone)]
pub struct ArchTech {
    /// The die file, relative to the file that named it.
    pub die: PathBuf,
    /// `node = "…"`, overriding the die file's.
    pub node: Option<Located<String>>,
    /// `device = "…"`, overriding the die file's.
    pub device: Option<Located<String>>,
    /// `[xpu.tech.layout]`, overriding the die file's.
    pub layout: Option<(Layout, Located<i64>)>,
    /// An explicit clock: it wins over the tech model.
    pub clock: Option<Hertz>,
    /// An explicit power: it wins over the tech model.
    pub power: Option<Watts>,
}

/// What an arch's `[pim.tech]` chooses, as written: the tech model resolves it
/// (`tech::pim::resolve`) once the die file is read.
#[derive(Debug, Clone)]
pub struct PimTechSpec {
    /// The logic-die file, relative to the file that named it.
    pub die: PathBuf,
    /// The node, device and layout the arch sets instead of the die file's.
    pub tech: TechOverride,
    /// `pim.tech.die_area`.
    pub die_area: Area,
    /// `pim.tech.power_budget`, when given.
    pub power_budget: Option<Watts>,
    /// The `[pim]` values the arch sets itself, which win over the model.
    pub explicit: Explicit,
}

impl ArchChain {
    /// Reads the arch at `path` (or a built-in preset such as `h100`), following `extends`; the
    /// top file reads `text` instead when given (an edited copy, as a sweep point makes), and
    /// `extends` still resolves relative to `path`.
    pub fn read(path: &Path, text: Option<Arc<str>>) -> Result<ArchChain, ConfigError> {
        let path = presets::resolve_arch(path);
        Ok(ArchChain {
            layers: load_layers(&path, text)?,
        })
    }

    /// The checked system. `pim_tech` is what the tech model made of [`Self::pim_tech`] (`None`
    /// when the chain has no `[pim.tech]`).
    pub fn system(&self, pim_tech: Option<&PimTechValues>) -> Result<System, ConfigError> {
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
        let d = self.req("node.devices", |r| r.node.as_ref()?.devices.as_ref())?;
        let devices = u32::try_from(*d.value)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                d.err(format!(
                    "`node.devices` must be at least 1, found {}",
                    d.value
                ))
            })?;
        let name = self
            .get(|r| r.name.as_ref())
            .map(|n| n.value.clone())
            .unwrap_or_else(|| self.top().path().display().to_string());
        Ok(System {
            name,
            pim: self.pim(pim_tech)?,
            xpu: self.xpu(peak)?,
            node: Node {
                devices,
                link: self.link("node.link", link)?,
            },
            cluster: self.cluster()?,
        })
    }

    /// `[xpu.tech]`; `None` when the arch names no technology.
    pub fn xpu_tech(&self) -> Result<Option<ArchTech>, ConfigError> {
        let Some(die) = self.tech_die(
            "xpu.tech",
            |a| xtech(a).is_some(),
            |a| xtech(a)?.die.as_ref(),
        )?
        else {
            return Ok(None);
        };
        let layout = self.tech_layout("xpu.tech", |a| xtech(a)?.layout.as_ref())?;
        Ok(Some(ArchTech {
            die,
            node: self.located(|a| xtech(a)?.node.as_ref()),
            device: self.located(|a| xtech(a)?.device.as_ref()),
            layout,
            clock: self.get(|a| xtech(a)?.clock.as_ref()).map(|v| *v.value),
            power: self.get(|a| xtech(a)?.power.as_ref()).map(|v| *v.value),
        }))
    }

    /// `[pim.tech]`: the logic die, the technology the arch sets, the budgets, and which
    /// `[pim]` values the arch sets itself; `None` when no file of the chain has the table.
    pub fn pim_tech(&self) -> Result<Option<PimTechSpec>, ConfigError> {
        let Some(die) = self.pim_die()? else {
            return Ok(None);
        };
        let tech = TechOverride {
            node: self.located(|a| ptech(a)?.node.as_ref()),
            device: self.located(|a| ptech(a)?.device.as_ref()),
            layout: self.tech_layout("pim.tech", |a| ptech(a)?.layout.as_ref())?,
        };
        let die_area = self.quantity("pim.tech.die_area", true, |r| ptech(r)?.die_area.as_ref())?;
        let power_budget = match self.get(|r| ptech(r)?.power_budget.as_ref()) {
            None => None,
            Some(_) => Some(self.quantity("pim.tech.power_budget", true, |r| {
                ptech(r)?.power_budget.as_ref()
            })?),
        };
        Ok(Some(PimTechSpec {
            die,
            tech,
            die_area,
            power_budget,
            explicit: Explicit {
                modules: self.get(|r| pim(r)?.modules.as_ref()).is_some(),
                frequency: self.get(|r| pim(r)?.frequency.as_ref()).is_some(),
                flop_energy: self
                    .get(|r| pim(r)?.energy.as_ref()?.flop.as_ref())
                    .is_some(),
            },
        }))
    }

    /// The plain TOML tables of the chain, top file first, each with its path.
    pub fn tables(&self) -> Result<Vec<(PathBuf, toml::Table)>, ConfigError> {
        self.layers
            .iter()
            .map(|l| Ok((l.src.path().to_path_buf(), l.src.parse()?)))
            .collect()
    }
}

// ---- reading the chain ----

/// One file of an `extends` chain.
struct Layer {
    src: Arc<Source>,
    raw: Arc<RawArch>,
}

const MAX_EXTENDS: usize = 16;

/// Where the last file read wrote its `extends` (the key that led to the next file).
fn extends_loc(layers: &[Layer]) -> Option<Located<&String>> {
    let layer = layers.last()?;
    Some(layer.src.locate_ref(layer.raw.extends.as_ref()?))
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
        let edited = first.is_some();
        let src = match first.take() {
            Some(text) => Source::new(&p, text),
            None => Source::read(&p).map_err(|e| {
                // Point at the `extends` that named the missing file, if any.
                match extends_loc(&layers) {
                    Some(loc) => loc.err(format!("cannot extend {}: {}", p.display(), e.message())),
                    None => e,
                }
            })?,
        };
        // A file read from disk is parsed once per text (a sweep's points read the same ones).
        let raw: Arc<RawArch> = match edited {
            true => Arc::new(src.parse()?),
            false => kept(&src, |s| s.parse().map(Arc::new))?,
        };
        if let Some(ext) = &raw.extends {
            next = Some(src.relative(ext.get_ref()));
        }
        layers.push(Layer { src, raw });
    }
    Ok(layers)
}

// ---- the rules: values looked up through the chain, checked ----

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

impl ArchChain {
    fn top(&self) -> &Source {
        &self.layers[0].src
    }

    /// The value the first file of the chain that sets it writes, with where.
    fn get<'a, T>(
        &'a self,
        f: impl Fn(&'a RawArch) -> Option<&'a Spanned<T>>,
    ) -> Option<Located<&'a T>> {
        self.layers
            .iter()
            .find_map(|layer| f(&layer.raw).map(|s| layer.src.locate_ref(s)))
    }

    /// Like [`Self::get`], owning the value.
    fn located<'a, T: Clone + 'a>(
        &'a self,
        f: impl Fn(&'a RawArch) -> Option<&'a Spanned<T>>,
    ) -> Option<Located<T>> {
        self.get(f).map(|l| l.map(T::clone))
    }

    /// A key every arch must set.
    fn req<'a, T>(
        &'a self,
        key: &str,
        f: impl Fn(&'a RawArch) -> Option<&'a Spanned<T>>,
    ) -> Result<Located<&'a T>, ConfigError> {
        self.get(f).ok_or_else(|| {
            let chain = if self.layers.len() > 1 {
                " nor in the files it extends"
            } else {
                ""
            };
            self.top()
                .whole(format!(
                    "missing key `{key}`: it is not set in this file{chain}"
                ))
                .with_help(format!(
                    "add `{key}` (every physical parameter must be given)"
                ))
        })
    }

    /// A quantity that must be > 0 (`strict`) or >= 0, finite, and not subnormal (a bandwidth
    /// of 1e-320 B/s would make op times infinite).
    fn quantity<'a, T: Si + Copy + std::fmt::Display + 'a>(
        &'a self,
        key: &str,
        strict: bool,
        f: impl Fn(&'a RawArch) -> Option<&'a Spanned<T>>,
    ) -> Result<T, ConfigError> {
        let v = self.req(key, f)?;
        let x = v.value.si();
        let ok = if strict {
            x > 0.0 && x.is_normal()
        } else {
            x == 0.0 || x > 0.0 && x.is_normal()
        };
        if !ok {
            let want = if strict {
                "a positive normal number"
            } else {
                "zero or a positive normal number"
            };
            return Err(v.err(format!("`{key}` must be {want}, found {}", v.value)));
        }
        Ok(*v.value)
    }

    fn curve<'a>(
        &'a self,
        key: &str,
        f: impl Fn(&'a RawArch) -> Option<&'a Spanned<Points>>,
    ) -> Result<Curve, ConfigError> {
        let points = self.req(key, f)?;
        Curve::new(points.value.clone()).map_err(|e| points.err(format!("`{key}`: {e}")))
    }

    /// A positive integer key.
    fn count<'a>(
        &'a self,
        key: &str,
        f: impl Fn(&'a RawArch) -> Option<&'a Spanned<i64>>,
    ) -> Result<u32, ConfigError> {
        let v = self.req(key, f)?;
        u32::try_from(*v.value)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                v.err(format!(
                    "`{key}` must be a positive integer, found {}",
                    v.value
                ))
            })
    }

    fn xpu(
        &self,
        peak: std::collections::BTreeMap<Dtype, FlopsPerSecond>,
    ) -> Result<Xpu, ConfigError> {
        Ok(Xpu {
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
            tiling: self.tiling()?,
            streaming: self.streaming()?,
        })
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

    /// The PIM units, if any file of the chain has a `[pim]` table; then every key is required
    /// but those `tech` (the values of `[pim.tech]`) gives.
    fn pim(&self, tech: Option<&PimTechValues>) -> Result<Option<Pim>, ConfigError> {
        if !self.layers.iter().any(|l| l.raw.pim.is_some()) {
            return Ok(None);
        }
        let k = self.req("pim.kind", |r| pim(r)?.kind.as_ref())?;
        let kind = match k.value.as_str() {
            "logic" => PimKind::Logic,
            "bankgroup" => PimKind::BankGroup,
            "bank" => PimKind::Bank,
            other => {
                return Err(k.err(format!(
                    "unknown PIM kind \"{other}\" (valid: {})",
                    PimKind::NAMES.join(", ")
                )));
            }
        };
        let mult = self.req("pim.bandwidth_multiplier", |r| {
            pim(r)?.bandwidth_multiplier.as_ref()
        })?;
        if !(*mult.value > 0.0 && mult.value.is_finite()) {
            return Err(mult.err(format!(
                "`pim.bandwidth_multiplier` must be positive, found {}",
                mult.value
            )));
        }
        if tech.is_some() {
            self.pim_tech_rules(kind, &k)?;
        } else {
            self.req("pim.macs", |r| pim(r)?.macs.as_ref())?;
        }
        let model = |v: Option<u64>| v.map(|m| u32::try_from(m).unwrap_or(u32::MAX));
        let modules = match tech.and_then(|t| model(t.modules)) {
            Some(m) => m,
            None => self.count("pim.modules", |r| pim(r)?.modules.as_ref())?,
        };
        if modules == 0 {
            return Err(self.top().whole(format!(
                "no Logic-PIM module fits on the logic die {} under `pim.tech.die_area` and `pim.tech.power_budget`",
                self.pim_die_name()
            )));
        }
        let frequency = match tech.and_then(|t| t.clock) {
            Some(c) => c,
            None => self.quantity("pim.frequency", true, |r| pim(r)?.frequency.as_ref())?,
        };
        let flop_energy = match tech.and_then(|t| t.flop_energy) {
            Some(e) => e,
            None => self.quantity("pim.energy.flop", true, |r| {
                pim(r)?.energy.as_ref()?.flop.as_ref()
            })?,
        };
        let origin = |v: bool| if v { Origin::Model } else { Origin::Arch };
        Ok(Some(Pim {
            kind,
            stacks: self.count("pim.stacks", |r| pim(r)?.stacks.as_ref())?,
            modules,
            macs: self.count("pim.macs", |r| pim(r)?.macs.as_ref())?,
            frequency,
            bandwidth_multiplier: *mult.value,
            compute: self.curve("pim.compute", |r| pim(r)?.compute.as_ref())?,
            memory: self.curve("pim.memory", |r| pim(r)?.memory.as_ref())?,
            overhead: self.quantity("pim.overhead", false, |r| pim(r)?.overhead.as_ref())?,
            flop_energy,
            dram_energy: self.quantity("pim.energy.dram", true, |r| {
                pim(r)?.energy.as_ref()?.dram.as_ref()
            })?,
            origin: tech.map(|t| PimOrigin {
                technology: t.fit.technology.clone(),
                modules: origin(t.modules.is_some()),
                frequency: origin(t.clock.is_some()),
                flop_energy: origin(t.flop_energy.is_some()),
            }),
        }))
    }

    /// What `[pim.tech]` requires of `[pim]`: Logic-PIM, with the die file's modules.
    fn pim_tech_rules(&self, kind: PimKind, k: &Located<&String>) -> Result<(), ConfigError> {
        if kind != PimKind::Logic {
            return Err(k.err(format!(
                "`pim.tech` sizes Logic-PIM modules on the HBM logic die, but `pim.kind` is \"{}\"",
                kind.name()
            )));
        }
        let macs = self.req("pim.macs", |r| pim(r)?.macs.as_ref())?;
        if *macs.value as f64 != MACS_PER_MODULE {
            return Err(macs
                .err(format!(
                    "`pim.macs` is {} but the logic die `pim.tech.die` describes modules of {} MACs",
                    macs.value, MACS_PER_MODULE
                ))
                .with_help(format!(
                    "set `pim.macs = {}` or describe another module in {}",
                    MACS_PER_MODULE,
                    self.pim_die_name()
                )));
        }
        Ok(())
    }

    /// The `[pim.tech]` die file.
    fn pim_die(&self) -> Result<Option<PathBuf>, ConfigError> {
        self.tech_die(
            "pim.tech",
            |a| ptech(a).is_some(),
            |a| ptech(a)?.die.as_ref(),
        )
    }

    /// The `[pim.tech]` die file for messages (empty when there is none).
    fn pim_die_name(&self) -> String {
        match self.pim_die() {
            Ok(Some(p)) => p.display().to_string(),
            _ => String::new(),
        }
    }

    /// The die file a technology table (`table`: `xpu.tech`, `pim.tech`) names, relative to the
    /// file that names it; `None` when no file of the chain has the table.
    fn tech_die<'a>(
        &'a self,
        table: &str,
        has: impl Fn(&'a RawArch) -> bool,
        die: impl Fn(&'a RawArch) -> Option<&'a Spanned<String>>,
    ) -> Result<Option<PathBuf>, ConfigError> {
        let Some(d) = self.get(die) else {
            return match self.layers.iter().find(|l| has(&l.raw)) {
                Some(l) => Err(l.src.whole(format!(
                    "missing key `{table}.die`: `[{table}]` needs the die file it describes"
                ))),
                None => Ok(None),
            };
        };
        let p = d.source().relative(d.value);
        if !(p.is_file() || presets::file(&p).is_some()) {
            return Err(d.err(format!("`{table}.die`: {} is not a file", p.display())));
        }
        Ok(Some(p))
    }

    /// The layout a technology table states, checked on its own.
    fn tech_layout<'a>(
        &'a self,
        table: &str,
        f: impl Fn(&'a RawArch) -> Option<&'a super::choice::RawLayout>,
    ) -> Result<Option<(Layout, Located<i64>)>, ConfigError> {
        match self.layers.iter().find_map(|l| f(&l.raw).map(|x| (l, x))) {
            Some((l, raw)) => Ok(Some(raw.resolve(&l.src, &format!("{table}.layout"))?)),
            None => Ok(None),
        }
    }
}
