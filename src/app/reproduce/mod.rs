//! Reproduction studies: grids of serving runs set beside a paper's figures.
//!
//! `duplex` reruns the Duplex paper's evaluation grid (REFERENCE.md §Duplex workloads) on the systems it compares.
//! The grid — models and their devices, batches, lengths, systems — is data:
//! `workloads/studies/duplex.toml`, compiled into the binary.

mod energy;
mod report;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{self, ConfigError};
use crate::hw::System;
use crate::map::Policy;
use crate::model::ModelSpec;
use crate::report::serving::ServingReport;
use crate::sim::serving::{Scenario, ServingError, simulate};
use crate::sim::workload::{Arrivals, LengthDist, Lengths};

pub use report::{duplex_markdown, duplex_plots, ratios};

use super::Status;

/// The Duplex study file, as shipped.
const DUPLEX_STUDY: &str = include_str!("../../../workloads/studies/duplex.toml");

/// Why a study could not run or be written.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ReproduceError {
    /// An arch or model the study names.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] ConfigError),
    /// The shipped study file does not parse (a bug in the shipped data).
    #[error("workloads/studies/duplex.toml: {0}")]
    Study(#[from] toml::de::Error),
    /// The study names a system label it does not define (a bug in the shipped data).
    #[error("workloads/studies/duplex.toml: no system labelled \"{0}\"")]
    NoSystem(String),
    /// A point's serving run.
    #[error("{scenario}: {source}")]
    Serving {
        /// The point's name.
        scenario: String,
        /// Why it could not run.
        source: ServingError,
    },
    /// An output file.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's or the CSV writer's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A plot (the error names its file).
    #[error(transparent)]
    Plot(#[from] crate::report::plot::PlotError),
}

impl ReproduceError {
    /// Shipped data that does not hold together is a bug; the rest is the user's input.
    pub fn status(&self) -> Status {
        match self {
            ReproduceError::Study(_) | ReproduceError::NoSystem(_) => Status::Internal,
            ReproduceError::Serving { source, .. } => super::serving_status(source),
            _ => Status::BadInput,
        }
    }
}

/// A study: the grid of points and the open-loop runs (`workloads/studies/*.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Study {
    /// Batches, lengths and limits of the closed-loop grid.
    pub grid: Grid,
    /// The models, each with its device count.
    pub model: Vec<StudyModel>,
    /// The systems compared.
    pub system: Vec<SystemSpec>,
    /// Settings every point's scenario shares.
    pub scenario: Shared,
    /// The open-loop saturation runs.
    pub saturation: Saturation,
}

/// The closed-loop grid.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Requests in flight (and the batch limit).
    pub batches: Vec<u64>,
    /// Prompt and output length L of (L, L).
    pub lengths: Vec<u64>,
    /// Requests per point as a multiple of the batch.
    pub requests_per_batch: u64,
    /// Systems needing more devices than this are skipped.
    pub max_devices: u64,
}

/// A model of the study and its base device count.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyModel {
    /// A model preset or file.
    pub name: String,
    /// Devices of one replica on the base system.
    pub devices: u64,
}

/// A system of the comparison: an arch, a policy and how a model is spread over its devices.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemSpec {
    /// The name in the report (`GPU`, `Duplex+CoP`).
    pub label: String,
    /// An arch preset; past 8 devices, its `-2node` variant.
    pub arch: String,
    /// The mapping policy.
    #[serde(deserialize_with = "policy")]
    pub policy: Policy,
    /// Devices per model replica, relative to the model's base count (2 for "2xGPU").
    pub scale: u64,
    /// Experts whole per device (expert parallelism) rather than sliced (tensor parallelism,
    /// "+ET"); dense models always use tensor parallelism.
    pub whole_experts: bool,
}

/// Scenario settings every point shares.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shared {
    /// Token budget per iteration.
    pub max_tokens: u64,
    /// Tokens per KV block.
    pub kv_block: u64,
    /// Share of device memory the server may use.
    pub memory_utilization: f64,
    /// Seed of the runs.
    pub seed: u64,
}

/// The open-loop runs: the highest Poisson rate each system sustains.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saturation {
    /// The model.
    pub model: String,
    /// Its devices.
    pub devices: u64,
    /// Labels of the systems run.
    pub systems: Vec<String>,
    /// Batch limit.
    pub batch: u64,
    /// Prompt tokens per request.
    pub prompt: u64,
    /// Output tokens per request.
    pub output: u64,
    /// Requests per run.
    pub requests: u64,
    /// Lowest and highest rate tried, requests/s.
    pub rates: [u32; 2],
    /// The queue counts as bounded while the 90th-percentile TTFT stays under this.
    pub ttft_p90_limit_s: f64,
}

impl SystemSpec {
    /// The arch preset a replica of `devices` devices runs on: the system's own, or past one
    /// 8-device node its `-2node` variant (InfiniBand between the nodes).
    pub fn arch_for(&self, devices: u64) -> String {
        if devices > 8 {
            format!("{}-2node", self.arch)
        } else {
            self.arch.clone()
        }
    }
}

impl Grid {
    /// The grid's (batch, length) cells, batch-major: the order of the points.
    pub fn cells(&self) -> Vec<(u64, u64)> {
        self.batches
            .iter()
            .flat_map(|&b| self.lengths.iter().map(move |&l| (b, l)))
            .collect()
    }
}

fn policy<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Policy, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

impl Study {
    /// The shipped Duplex study.
    pub fn duplex() -> Result<Study, ReproduceError> {
        Ok(toml::from_str(DUPLEX_STUDY)?)
    }

    /// The system labelled `label`.
    pub fn system(&self, label: &str) -> Result<&SystemSpec, ReproduceError> {
        self.system
            .iter()
            .find(|s| s.label == label)
            .ok_or_else(|| ReproduceError::NoSystem(label.to_string()))
    }
}

/// What `dyad reproduce duplex` wrote.
pub struct Written {
    /// The report (also written to `README.md`).
    pub markdown: String,
}

/// Runs the Duplex study and writes `README.md`, `points.csv` and the plots into `out`.
pub fn duplex(out: &Path) -> Result<Written, ReproduceError> {
    let study = Study::duplex()?;
    let points = duplex_grid(&study)?;
    let mut sat = Vec::new();
    for label in &study.saturation.systems {
        let sys = study.system(label)?;
        sat.push((label.clone(), saturation_rate(&study, sys)?));
    }
    let cannot = |path: &Path| {
        let path = path.to_path_buf();
        move |e: Box<dyn std::error::Error + Send + Sync>| ReproduceError::Write { path, source: e }
    };
    std::fs::create_dir_all(out).map_err(|e| cannot(out)(e.into()))?;
    let csv_path = out.join("points.csv");
    write_points(&csv_path, &points).map_err(cannot(&csv_path))?;
    duplex_plots(&study, &points, out)?;
    let markdown = duplex_markdown(&points, &sat);
    let readme = out.join("README.md");
    std::fs::write(&readme, &markdown).map_err(|e| cannot(&readme)(e.into()))?;
    Ok(Written { markdown })
}

/// The points as CSV, one row each.
fn write_points(
    path: &Path,
    points: &[Point],
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut w = csv::Writer::from_path(path)?;
    for p in points {
        w.serialize(p)?;
    }
    w.flush()?;
    Ok(())
}

/// One point of the grid.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Point {
    /// The model.
    pub model: String,
    /// The system's label.
    pub system: String,
    /// Requests in flight.
    pub batch: u64,
    /// Prompt and output length.
    pub len: u64,
    /// Devices of the replica.
    pub devices: u64,
    /// Output tokens per second.
    pub output_tokens_per_s: f64,
    /// Median end-to-end latency, s.
    pub e2e_p50_s: f64,
    /// Median time between tokens, s.
    pub tbt_p50_s: f64,
    /// Energy per output token, dynamic plus static, J.
    pub energy_per_output_token_j: f64,
    /// Dynamic energy per output token (MACs, DRAM and link bits), J: what the paper counts.
    pub energy_per_output_token_dynamic_j: f64,
    /// Static energy per output token (static power × devices × time), J.
    pub energy_per_output_token_static_j: f64,
    /// Share of op time on PIM.
    pub pim_time_share: f64,
}

/// One system of the study serving one model: its files loaded once, however many points it
/// runs.
struct Replica<'a> {
    model_name: &'a str,
    model: ModelSpec,
    spec: &'a SystemSpec,
    sys: System,
    /// Tensor- and expert-parallel degrees.
    tp: u64,
    ep: u64,
}

impl<'a> Replica<'a> {
    /// `model` on `devices × spec.scale` devices of `spec`'s arch (its `-2node` variant past one
    /// 8-device node: InfiniBand between nodes).
    fn load(
        model_name: &'a str,
        model: &ModelSpec,
        devices: u64,
        spec: &'a SystemSpec,
    ) -> Result<Replica<'a>, ReproduceError> {
        let sys = config::load_arch(spec.arch_for(devices * spec.scale).as_ref())?;
        Ok(Replica::on(model_name, model, devices, spec, sys))
    }

    /// `model` on `devices × spec.scale` devices that are `sys`.
    fn on(
        model_name: &'a str,
        model: &ModelSpec,
        devices: u64,
        spec: &'a SystemSpec,
        sys: System,
    ) -> Replica<'a> {
        let n = devices * spec.scale;
        let ep = if spec.whole_experts && model.moe.is_some_and(|x| x.experts % n == 0) {
            n
        } else {
            1
        };
        Replica {
            model_name,
            model: model.clone(),
            spec,
            sys,
            tp: n / ep,
            ep,
        }
    }

    /// The closed-loop scenario of `batch` requests in flight, (`len`, `len`) tokens each,
    /// `requests` in all.
    fn scenario(&self, study: &Study, batch: u64, len: u64, requests: u64) -> Scenario {
        let sh = &study.scenario;
        Scenario {
            name: format!(
                "{} {} b{batch} {len}/{len}",
                self.model_name, self.spec.label
            ),
            sys: self.sys.clone(),
            precision: crate::model::Precision::uniform(crate::work::Dtype::Fp16),
            model: self.model.clone(),
            tp: self.tp,
            ep: self.ep,
            count: requests,
            lengths: Lengths::Drawn {
                prompt: LengthDist::Fixed(len),
                output: LengthDist::Fixed(len),
            },
            arrivals: Arrivals::Closed { concurrency: batch },
            max_batch: batch,
            max_tokens: sh.max_tokens,
            kv_block: sh.kv_block,
            memory_utilization: sh.memory_utilization,
            routing: crate::sim::routing::RoutingSpec::Uniform,
            policy: self.spec.policy,
            seed: sh.seed,
            timing: crate::hw::Timing::Kernel,
            software: None,
            speculative: None,
            expert_parallel: Default::default(),
            pipeline: None,
        }
    }
}

/// Runs `s` and reports it.
fn serve(s: &Scenario) -> Result<ServingReport, ReproduceError> {
    let r = simulate(s, None).map_err(|source| ReproduceError::Serving {
        scenario: s.name.clone(),
        source,
    })?;
    Ok(ServingReport::new(s, &r))
}

/// The Logic-PIM technology study's runs: Mixtral-8x7B on 4 devices as the Duplex study's
/// `Duplex+CoP` system (the `duplex` policy, whole experts per device), each device being the
/// system given to [`DuplexServing::run`]. The study and model are read once.
pub struct DuplexServing {
    study: Study,
    model: ModelSpec,
}

impl DuplexServing {
    /// Reads the shipped study and the Mixtral model.
    pub fn load() -> Result<DuplexServing, ReproduceError> {
        Ok(DuplexServing {
            study: Study::duplex()?,
            model: config::load_model("mixtral-8x7b".as_ref())?,
        })
    }

    /// One closed-loop run on devices `sys`: `batch` requests in flight, `len` prompt and `len`
    /// output tokens, `requests` in all.
    pub fn run(
        &self,
        sys: &System,
        batch: u64,
        len: u64,
        requests: u64,
    ) -> Result<ServingReport, ReproduceError> {
        let spec = self.study.system("Duplex+CoP")?;
        let r = Replica::on("mixtral-8x7b", &self.model, 4, spec, sys.clone());
        let mut s = r.scenario(&self.study, batch, len, requests);
        s.name = format!("mixtral-8x7b {} b{batch} {len}/{len}", sys.name);
        serve(&s)
    }
}

/// Runs the closed-loop grid: each model on its device count, batches × lengths × systems.
pub fn duplex_grid(study: &Study) -> Result<Vec<Point>, ReproduceError> {
    let g = &study.grid;
    let mut out = Vec::new();
    for sm in &study.model {
        let model = config::load_model(sm.name.as_ref())?;
        let replicas = study
            .system
            .iter()
            .filter(|sys| sm.devices * sys.scale <= g.max_devices)
            .map(|sys| Replica::load(&sm.name, &model, sm.devices, sys))
            .collect::<Result<Vec<_>, _>>()?;
        for &batch in &g.batches {
            for &len in &g.lengths {
                for r in &replicas {
                    let s = r.scenario(study, batch, len, g.requests_per_batch * batch);
                    let m = serve(&s)?.serving;
                    out.push(Point {
                        model: sm.name.clone(),
                        system: r.spec.label.clone(),
                        batch,
                        len,
                        devices: s.tp * s.ep,
                        output_tokens_per_s: m.output_tokens_per_s,
                        e2e_p50_s: m.e2e_s.p50,
                        tbt_p50_s: m.tbt_s.p50,
                        energy_per_output_token_j: m.energy_per_output_token_j,
                        energy_per_output_token_dynamic_j: m.energy_per_output_token_dynamic_j,
                        energy_per_output_token_static_j: m.energy_per_output_token_static_j,
                        pim_time_share: m.pim_time_share,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Highest Poisson rate (requests/s, on a grid of 1/s) that `sys` sustains: the queue stays
/// bounded, judged by the 90th-percentile time to first token staying under the study's limit
/// (past saturation it grows with the length of the run).
pub fn saturation_rate(study: &Study, sys: &SystemSpec) -> Result<f64, ReproduceError> {
    let sat = &study.saturation;
    let model = config::load_model(sat.model.as_ref())?;
    let replica = Replica::load(&sat.model, &model, sat.devices, sys)?;
    let mut best = 0.0;
    for rate in sat.rates[0]..=sat.rates[1] {
        let mut s = replica.scenario(study, sat.batch, sat.prompt, sat.requests);
        s.lengths = Lengths::Drawn {
            prompt: LengthDist::Fixed(sat.prompt),
            output: LengthDist::Fixed(sat.output),
        };
        s.arrivals = Arrivals::Poisson {
            rate: f64::from(rate),
        };
        let m = serve(&s)?.serving;
        if m.ttft_s.p90 >= sat.ttft_p90_limit_s {
            break;
        }
        best = f64::from(rate);
    }
    Ok(best)
}
