//! The Flip FET calibration study: the block model against the published block-level PPA of a
//! 32-bit RISC-V core (Lu et al., "A Tale of Two Sides of Wafer", DATE 2025, arXiv 2501.15275).
//!
//! Comparisons the paper makes, and how the model makes them:
//! - FFET single-sided vs CFET single-sided, 12 routing layers, at the same utilization: area,
//!   frequency, and power at the same clock (the CFET's) — switched capacitance plus leakage.
//! - The same at the same core area: the FFET is placed in the CFET's core area.
//! - FFET dual-sided vs single-sided: the best of a sweep of layers per side and front pin share
//!   (the paper tuned both), among layouts that route; power at the single-sided clock.
//! - Dual-sided with 5 instead of 12 routing layers per side, at the tuned pin share, each at
//!   the highest utilization that routes. The paper says routability and power barely degrade
//!   and gives no figure; the model is held to 2 points of utilization and 2% of power. Its
//!   frequency change is reported, not compared (the paper makes no claim about it).

use super::block::{BlockPpa, BlockSpec, Placement, block};
use super::params::{Layout, Library, TechnologyError};

/// The study's block: a small 32-bit RISC-V core. The paper gives no cell count; a core of this
/// class has 10⁴–10⁵ cells, and the ratios change little across that range.
pub const CORE_TRANSISTORS: f64 = 120_000.0;
/// The utilization both designs are placed at (the paper does not state its value; 0.7 is a
/// common P&R target).
pub const UTILIZATION: f64 = 0.7;
/// The node of the study: the paper's flow uses a virtual 5 nm-class PDK.
pub const NODE: &str = "n5";
/// Activity for the power comparison (cancels in ratios of switched capacitance).
const ACTIVITY: f64 = 0.1;

/// One line of the calibration table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The comparison, in words.
    pub what: &'static str,
    /// The paper's figure, %.
    pub paper: f64,
    /// The model's figure, %.
    pub model: f64,
    /// Allowed distance in percentage points.
    pub tolerance: f64,
}

impl Row {
    /// Whether the model is within `tolerance` of the paper.
    pub fn within(&self) -> bool {
        (self.model - self.paper).abs() <= self.tolerance
    }
}

/// The study's designs, for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Study {
    /// The calibration table.
    pub rows: Vec<Row>,
    /// (label, block PPA) of each design compared.
    pub designs: Vec<(String, BlockPpa)>,
    /// The tuned dual-sided layout: layers per side and front pin share.
    pub tuned: (u32, f64),
    /// Frequency change from 12 to 5 layers per side, %, at the achievable utilization.
    pub five_layer_frequency: f64,
}

/// Why the study cannot run on a library.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StudyError {
    /// A technology the study compares is missing from the library or impossible.
    #[error(transparent)]
    Technology(#[from] TechnologyError),
    /// No dual-sided layout of the sweep routes, so there is no tuned design.
    #[error("no dual-sided layout routes")]
    NoDualSidedLayout,
}

fn pct(new: f64, old: f64) -> f64 {
    100.0 * (new / old - 1.0)
}

/// Runs the study on `lib`; an error says which technology is missing or impossible.
pub fn study(lib: &Library) -> Result<Study, StudyError> {
    let spec = |placement| BlockSpec {
        transistors: CORE_TRANSISTORS,
        activity: ACTIVITY,
        placement,
    };
    let at_u = spec(Placement::Utilization(UTILIZATION));
    let run = |dev: &str, layout: Layout, s: &BlockSpec| -> Result<BlockPpa, TechnologyError> {
        Ok(block(&lib.technology(NODE, dev, layout)?, s))
    };
    let cfet = run("cfet", Layout::single_sided(12), &at_u)?;
    let ffet = run("ffet", Layout::single_sided(12), &at_u)?;
    let ffet_area = run(
        "ffet",
        Layout::single_sided(12),
        &spec(Placement::Area(cfet.area)),
    )?;

    let inv = |p: &BlockPpa| 1.0 / p.stage_delay.value();
    // Tune layers per side and the front pin share for frequency, among layouts that route.
    let mut best: Option<(u32, f64, BlockPpa)> = None;
    // Frequency does not depend on the layer count while a layout routes: on a tie the layout
    // with more layers (the paper's 12) is kept.
    for layers in (2..=12u32).rev() {
        for step in 4..=16 {
            let share = f64::from(step) * 0.05;
            let p = run("ffet", Layout::dual_sided(layers, share), &at_u)?;
            let routes = p.congestion.iter().all(|c| *c <= 1.0);
            if routes && best.as_ref().is_none_or(|(_, _, b)| inv(&p) > inv(b)) {
                best = Some((layers, share, p));
            }
        }
    }
    let (layers, share, ds) = best.ok_or(StudyError::NoDualSidedLayout)?;
    let best_u = spec(Placement::Achievable);
    let ds12 = run("ffet", Layout::dual_sided(12, share), &best_u)?;
    let ds5 = run("ffet", Layout::dual_sided(5, share), &best_u)?;

    let rows = rows([&cfet, &ffet, &ffet_area], [&ds, &ds12, &ds5]);
    let designs = vec![
        ("CFET single-sided, 12 layers".to_string(), cfet),
        ("FFET single-sided, 12 layers".to_string(), ffet),
        ("FFET single-sided, CFET's core area".to_string(), ffet_area),
        (
            format!("FFET dual-sided, {layers}+{layers} layers, front pins {share:.2}"),
            ds,
        ),
        (
            format!("FFET dual-sided, 12+12 layers, front pins {share:.2}, achievable"),
            ds12,
        ),
        (
            format!("FFET dual-sided, 5+5 layers, front pins {share:.2}, achievable"),
            ds5,
        ),
    ];
    Ok(Study {
        rows,
        designs,
        tuned: (layers, share),
        five_layer_frequency: pct(inv(&ds5), inv(&ds12)),
    })
}

/// The calibration table: the single-sided designs (CFET, FFET, FFET in the CFET's area) and
/// the dual-sided ones (tuned, 12 and 5 layers per side at the achievable utilization) against
/// the paper's figures.
fn rows([cfet, ffet, ffet_area]: [&BlockPpa; 3], [ds, ds12, ds5]: [&BlockPpa; 3]) -> Vec<Row> {
    let inv = |p: &BlockPpa| 1.0 / p.stage_delay.value();
    let f_c = inv(cfet);
    let f_s = inv(ffet);
    vec![
        Row {
            what: "FFET vs CFET (single-sided, same utilization): core area",
            paper: -23.3,
            model: pct(ffet.area.value(), cfet.area.value()),
            tolerance: 2.0,
        },
        Row {
            what: "FFET vs CFET (single-sided, same utilization): frequency",
            paper: 25.0,
            model: pct(f_s, f_c),
            tolerance: 2.0,
        },
        Row {
            what: "FFET vs CFET (single-sided, same utilization): power",
            paper: -11.9,
            model: pct(ffet.power(f_c).value(), cfet.power(f_c).value()),
            tolerance: 2.0,
        },
        Row {
            what: "FFET vs CFET (single-sided, same core area): frequency",
            paper: 16.0,
            model: pct(inv(ffet_area), f_c),
            tolerance: 3.0,
        },
        Row {
            what: "FFET dual-sided vs single-sided (tuned): frequency",
            paper: 10.6,
            model: pct(inv(ds), f_s),
            tolerance: 2.0,
        },
        Row {
            what: "FFET dual-sided vs single-sided (tuned): power",
            paper: 0.0,
            model: pct(ds.power(f_s).value(), ffet.power(f_s).value()),
            tolerance: 2.0,
        },
        Row {
            what: "FFET dual-sided, 5 vs 12 layers per side: achievable utilization (points)",
            paper: 0.0,
            model: 100.0 * (ds5.utilization - ds12.utilization),
            tolerance: 2.0,
        },
        Row {
            what: "FFET dual-sided, 5 vs 12 layers per side: power at that utilization",
            paper: 0.0,
            model: pct(ds5.power(f_s).value(), ds12.power(f_s).value()),
            tolerance: 2.0,
        },
    ]
}
