//! `dyad ppa`: an arch file's die in its technology, from files to report (the library side of
//! the command), and the two technology studies.

use std::fmt::Write as _;
use std::path::Path;

use super::AppError;
use super::reproduce::DuplexServing;
use crate::config::{
    self, ConfigError, DieFile, TECH_DIR, TechChoice, check_choice, load_arch_tech, load_die,
};
use crate::tech::{self, DieReport, Library, Technology};
use crate::units::Watts;
use crate::work::Dtype;

/// The PPA of one arch's xPU die, with where its clock and power came from.
#[derive(Debug, Clone)]
pub struct ArchPpa {
    /// The arch's name.
    pub arch: String,
    /// The die model's report.
    pub die: DieReport,
    /// The power the arch file states, which wins over the model's in `power`.
    pub power: Watts,
    /// Whether the power is the arch file's rather than the model's.
    pub power_from_arch: bool,
    /// Whether the clock is the arch file's rather than the model's.
    pub clock_from_arch: bool,
    /// Energy per FLOP all-in: power ÷ dense BF16 peak.
    pub joules_per_flop: Option<f64>,
    /// The arch's `[xpu.energy]`: what `dyad run` and the simulator use, beside the model's.
    pub arch_energy: crate::hw::Energy,
    /// The arch's PIM units, with where their values came from when `[pim.tech]` is set.
    pub pim: Option<crate::hw::Pim>,
}

/// Loads the technology library (from `dir`, or the built-in copy of `arch/tech`).
pub fn library(dir: Option<&Path>) -> Result<Library, ConfigError> {
    config::load_tech_library(dir.unwrap_or(Path::new(TECH_DIR)))
}

fn technology<'a>(lib: &'a Library, c: &TechChoice) -> Result<Technology<'a>, ConfigError> {
    check_choice(lib, c)?;
    lib.technology(&c.node.value, &c.device.value, c.layout)
        .map_err(|e| c.node.err(e.to_string()))
}

/// The die of `arch` (its `[xpu.tech]`) in the technology the arch and die files name.
pub fn arch_ppa(arch: &Path, lib: &Library) -> Result<ArchPpa, ConfigError> {
    let system = config::load_arch_in(arch, None, Some(lib))?;
    let at = load_arch_tech(arch)?.ok_or_else(|| {
        ConfigError::file(arch, "the arch names no technology")
            .with_help("add `[xpu.tech]` with `die = \"tech/dies/<die>.toml\"`")
    })?;
    let DieFile { mut spec, mut tech } = load_die(&at.die, lib)?;
    if let Some(n) = at.node {
        tech.node = n;
    }
    if let Some(d) = at.device {
        tech.device = d;
    }
    if let Some((l, loc)) = at.layout {
        tech.layout = l;
        tech.layout_at = loc;
    }
    if let Some(c) = at.clock {
        spec.clock = Some(c);
    }
    let t = technology(lib, &tech)?;
    let die = buildable(&at.die, tech::die(&t, &spec))?;
    let power = at.power.unwrap_or(die.power);
    let peak = system.xpu.peak.get(&Dtype::Bf16).map(|p| p.value());
    Ok(ArchPpa {
        arch: system.name,
        power,
        power_from_arch: at.power.is_some(),
        clock_from_arch: at.clock.is_some(),
        joules_per_flop: peak.map(|p| power.value() / p),
        arch_energy: system.xpu.energy,
        pim: system.pim,
        die,
    })
}

/// A die file evaluated in the technology it names, or in `retarget` (node, device, layout).
pub fn die_ppa(path: &Path, lib: &Library) -> Result<(DieFile, DieReport), ConfigError> {
    let f = load_die(path, lib)?;
    let t = technology(lib, &f.tech)?;
    let r = buildable(path, tech::die(&t, &f.spec))?;
    Ok((f, r))
}

/// `r`, if its die can be built: a finite area and power, and a good die on a wafer. Inputs each
/// within their bounds can still multiply past these (a block count times its transistors over
/// a density); the error names the keys that set them.
fn buildable(path: &Path, r: DieReport) -> Result<DieReport, ConfigError> {
    let (area, power) = (r.area.value() * 1e6, r.power.value());
    if !(area.is_finite() && power.is_finite() && r.cost_per_good_die_usd.is_finite()) {
        return Err(ConfigError::file(
            path,
            format!(
                "the die cannot be built: {area:.3e} mm², {power:.3e} W, {:.3e} dies per 300 mm \
                 wafer at a yield of {:.3e}",
                r.dies_per_wafer, r.yield_fraction
            ),
        )
        .with_help(
            "check the blocks' `count` and `transistors`, and the node's \
             `logic_density_mtr_per_mm2` and `defect_density_per_mm2`",
        ));
    }
    Ok(r)
}

/// Renders `dyad ppa` for several arches: the per-block table, then one line per arch.
pub fn render(ppas: &[ArchPpa]) -> String {
    let dies: Vec<(String, DieReport)> = ppas
        .iter()
        .map(|p| (p.arch.clone(), p.die.clone()))
        .collect();
    let mut s = tech::ppa_table(&dies);
    s += "arch                       die mm²   clock GHz   power W   $/good die   die pJ/FLOP\n";
    for p in ppas {
        let tag = |arch: bool| if arch { " (arch)" } else { "" };
        s += &format!(
            "{:<26} {:>8.1} {:>8.3}{:<6} {:>6.0}{:<6} {:>10.0} {:>9}\n",
            p.arch,
            p.die.area.value() * 1e6,
            p.die.clock.value() / 1e9,
            tag(p.clock_from_arch),
            p.power.value(),
            tag(p.power_from_arch),
            p.die.cost_per_good_die_usd,
            p.joules_per_flop
                .map_or("-".into(), |j| format!("{:.3}", j * 1e12)),
        );
    }
    s += "(arch): the arch file's explicit value, which wins over the tech model.\n\n";
    s += "energy: the tech model beside the arch's [xpu.energy] (the arch's values are what \
          `dyad run` and serving use)\n";
    for p in ppas {
        let e = &p.arch_energy;
        let dynamic = p.joules_per_flop.map_or("-".into(), |j| {
            let leak = p.die.leakage.value() / p.power.value();
            format!("{:.3}", j * (1.0 - leak) * 1e12)
        });
        s += &format!(
            "{:<26} die dynamic {dynamic} pJ/FLOP, static {:.0} W (model); flop {:.3} pJ/FLOP, \
             static_power {:.0} W (arch)\n",
            p.arch,
            p.die.leakage.value(),
            e.flop.value() * 1e12,
            e.static_power.value()
        );
    }
    for p in ppas {
        let Some(pim) = &p.pim else { continue };
        let o = pim.origin.as_ref();
        let tag =
            |f: fn(&crate::hw::PimOrigin) -> crate::hw::Origin| o.map_or("arch", |o| f(o).name());
        s += &format!(
            "{:<26} {}-PIM: {} stacks × {} modules ({}) × {} MACs at {:.0} MHz ({}), {:.3} pJ/FLOP \
             ({}): {:.1} TFLOPS{}\n",
            p.arch,
            pim.kind.name(),
            pim.stacks,
            pim.modules,
            tag(|o| o.modules),
            pim.macs,
            pim.frequency.value() / 1e6,
            tag(|o| o.frequency),
            pim.flop_energy.value() * 1e12,
            tag(|o| o.flop_energy),
            pim.peak().value() / 1e12,
            o.map_or(String::new(), |o| format!("; logic die {}", o.technology)),
        );
    }
    s
}

/// The technologies of the Logic-PIM study, the first being the reference (Duplex at 7 nm).
pub const PIM_TECHS: &[(&str, &str, u32, Option<f64>)] = &[
    ("n7", "finfet", 12, None),
    ("n2", "finfet", 12, None),
    ("n2", "gaa", 12, None),
    ("n2", "cfet", 12, None),
    ("n2", "ffet", 12, None),
    ("n2", "ffet", 12, Some(0.5)),
];

/// The Logic-PIM study on the logic-die file `path`: Markdown.
pub fn pim_study(path: &Path, lib: &Library) -> Result<String, AppError> {
    let f = load_die(path, lib)?;
    let tech_of = |(node, dev, layers, share): &(&str, &str, u32, Option<f64>)| {
        let layout = match share {
            None => tech::Layout::single_sided(*layers),
            Some(s) => tech::Layout::dual_sided(*layers, *s),
        };
        lib.technology(node, dev, layout)
            .map_err(|e| ConfigError::file(path, e.to_string()))
    };
    let reference = tech_of(&PIM_TECHS[0])?;
    let budget = tech::pim::budget(&reference, &f.spec, tech::pim::LOGIC_DIE_AREA);
    let mut fits = Vec::new();
    for t in PIM_TECHS {
        fits.push(tech::pim::fit(&tech_of(t)?, &f.spec, &budget));
    }
    let mut md = tech::pim_markdown(&budget, &fits);
    md += &pim_serving(&fits)?;
    Ok(md)
}

/// The serving runs of the Logic-PIM study: batches (requests in flight), and the prompt and
/// output length; each run serves 3 × batch requests (as `dyad reproduce duplex` does).
pub const PIM_SERVING: (&[u64], u64) = (&[64, 128], 1024);

/// One serving run per technology of `fits` and batch, the Duplex device taking its module
/// count, clock and energy per FLOP from each fit (as `[pim.tech]` does), beside Duplex as the
/// arch file states it: Markdown.
pub fn pim_serving(fits: &[tech::pim::Fit]) -> Result<String, AppError> {
    use crate::hw::{Origin, PimOrigin};
    let base = config::load_arch(Path::new("arch/duplex.toml"))?;
    let (batches, len) = PIM_SERVING;
    let serving = DuplexServing::load()?;
    let runs = |sys: &crate::hw::System| {
        batches
            .iter()
            .map(|&b| serving.run(sys, b, len, 3 * b))
            .collect::<Result<Vec<_>, _>>()
    };
    let mut rows = vec![("Duplex as in arch/duplex.toml".to_string(), runs(&base)?)];
    for f in fits {
        let mut sys = base.clone();
        if let Some(p) = sys.pim.as_mut() {
            p.modules = u32::try_from(f.modules).unwrap_or(u32::MAX).max(1);
            p.frequency = f.clock;
            p.flop_energy = f.flop_energy;
            p.origin = Some(PimOrigin {
                technology: f.technology.clone(),
                modules: Origin::Model,
                frequency: Origin::Model,
                flop_energy: Origin::Model,
            });
        }
        sys.name = format!("Duplex, logic die {}", f.technology);
        rows.push((f.technology.clone(), runs(&sys)?));
    }
    Ok(serving_markdown(batches, len, &rows))
}

fn serving_markdown(
    batches: &[u64],
    len: u64,
    rows: &[(String, Vec<crate::report::serving::ServingReport>)],
) -> String {
    let mut s = format!(
        "\n## Serving: Mixtral-8x7B on 4 Duplex devices per technology\n\nClosed loop, {len}-token \
         prompts and {len} output tokens, 3 × batch requests, `duplex` policy (dispatch and expert \
         co-processing, whole experts per device), FP16. Each row but the first is the Duplex \
         device with the logic die's module count, clock and PIM energy per FLOP from the tech \
         model (what `[pim.tech]` gives; `model` in the serving report); everything else, \
         including the 4× internal bandwidth, is `arch/duplex.toml`'s. In brackets: against the \
         first row.\n\n| logic die | modules per stack | PIM clock MHz | PIM pJ/FLOP | PIM TFLOPS \
         per device |"
    );
    for b in batches {
        let _ = write!(
            s,
            " batch {b}: tokens/s | batch {b}: J/token | batch {b}: PIM time |"
        );
    }
    s += "\n|---|---|---|---|---|";
    s += &"---|---|---|".repeat(batches.len());
    s += "\n";
    let rel = |x: f64, b: f64, first: bool| {
        if first || b <= 0.0 {
            String::new()
        } else {
            format!(" ({:+.1}%)", 100.0 * (x / b - 1.0))
        }
    };
    for (i, (label, runs)) in rows.iter().enumerate() {
        let Some(p) = runs.first().and_then(|r| r.inputs.pim.as_ref()) else {
            continue;
        };
        let tflops =
            2.0 * f64::from(p.stacks) * f64::from(p.modules) * f64::from(p.macs) * p.frequency_hz
                / 1e12;
        let _ = write!(
            s,
            "| {label} | {} | {:.0} | {:.3} | {:.0} |",
            p.modules,
            p.frequency_hz / 1e6,
            p.flop_energy_j * 1e12,
            tflops,
        );
        for (j, r) in runs.iter().enumerate() {
            let (m, b) = (&r.serving, &rows[0].1[j].serving);
            let _ = write!(
                s,
                " {:.0}{} | {:.4}{} | {:.0}% |",
                m.output_tokens_per_s,
                rel(m.output_tokens_per_s, b.output_tokens_per_s, i == 0),
                m.energy_per_output_token_j,
                rel(
                    m.energy_per_output_token_j,
                    b.energy_per_output_token_j,
                    i == 0
                ),
                100.0 * m.pim_time_share,
            );
        }
        s += "\n";
    }
    s
}

/// The Flip FET calibration table: Markdown.
pub fn ffet_study(lib: &Library) -> Result<String, ConfigError> {
    let s = tech::ffet::study(lib)
        .map_err(|e| ConfigError::file(Path::new(TECH_DIR), e.to_string()))?;
    Ok(tech::ffet_markdown(&s, &lib.model))
}

/// What `dyad ppa` shows.
pub struct PpaSpec {
    /// Arch files or presets whose `[xpu.tech]` names a die file, side by side.
    pub archs: Vec<std::path::PathBuf>,
    /// The Flip FET calibration table.
    pub ffet_study: bool,
    /// The Logic-PIM study on this HBM logic die file.
    pub pim_study: Option<std::path::PathBuf>,
    /// Die files, each in the technology it names.
    pub dies: Vec<std::path::PathBuf>,
    /// The technology library's folder.
    pub tech: std::path::PathBuf,
}

/// `dyad ppa`: the studies asked for, then the dies, then the archs, as text.
pub fn ppa(spec: &PpaSpec) -> Result<String, super::AppError> {
    if spec.archs.is_empty() && spec.dies.is_empty() && !spec.ffet_study && spec.pim_study.is_none()
    {
        return Err(super::AppError::Usage(
            "dyad ppa needs an arch file, --die, --ffet-study or --pim-study (see --help)",
        ));
    }
    let lib = library(Some(&spec.tech))?;
    let mut out = String::new();
    if spec.ffet_study {
        out += &ffet_study(&lib)?;
    }
    if let Some(d) = &spec.pim_study {
        out += &pim_study(d, &lib)?;
    }
    let mut dies = Vec::new();
    for d in &spec.dies {
        let (_, r) = die_ppa(d, &lib)?;
        dies.push((d.display().to_string(), r));
    }
    out += &tech::ppa_table(&dies);
    let archs = spec
        .archs
        .iter()
        .map(|p| arch_ppa(p, &lib))
        .collect::<Result<Vec<_>, _>>()?;
    if !archs.is_empty() {
        out += &render(&archs);
    }
    crate::report::guard::check_text("ppa", &out)?;
    Ok(out)
}
