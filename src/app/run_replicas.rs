//! `dyad run --serving` with replicas behind a router (a `[replicas]` table, or `--replicas`
//! and `--router`): the scenario's replica copied R times and run by
//! `sim::serving::simulate_replicas`, reported as one run (`merge_replicas`) with each
//! replica's share. Also the serving modes' dispatch and the report's last steps, which the
//! plain run shares.

use super::AppError;
use super::run::{ServeSpec, Served};
use crate::config;
use crate::report::replicas::ReplicasMetrics;
use crate::report::serving::ServingReport;
use crate::report::{self, Format};
use crate::sim::serving::{Replicas, Scenario, merge_replicas, simulate_replicas};

/// The run of `spec` when it is not the plain engine: replicas behind a router, or
/// disaggregated pools; `None` for a plain run.
pub(super) fn serve_modes(spec: &ServeSpec) -> Result<Option<Served>, AppError> {
    if let Some(r) = config::load_replicas(&spec.scenario, &spec.overrides)? {
        return serve_replicas(spec, r).map(Some);
    }
    match config::load_disagg(&spec.scenario, &spec.overrides)? {
        Some(d) => super::pools::serve_disagg(spec, &d).map(Some),
        None => Ok(None),
    }
}

/// Runs the scenario's replica `rep.count` times behind `rep.router`. `--trace` is refused:
/// the trace has one replica's tracks.
fn serve_replicas(spec: &ServeSpec, rep: Replicas) -> Result<Served, AppError> {
    if spec.trace.is_some() {
        return Err(AppError::Usage(
            "--trace is not written for replicas behind a router yet (no track per replica); \
             trace one replica by running the scenario without [replicas] and --replicas",
        ));
    }
    let sc = config::load_scenario_overridden(&spec.scenario, &spec.overrides)?;
    work_limit(spec, &sc)?;
    let runs = simulate_replicas(&sc, rep.count, rep.router)
        .map_err(|source| super::fit::serving_error(&sc, spec, source))?;
    let merged = merge_replicas(&runs, sc.max_batch);
    let mut r = ServingReport::new(&sc, &merged);
    r.replicas = Some(ReplicasMetrics::of(rep, sc.tp * sc.ep, &runs));
    written(spec, r, Vec::new())
}

/// Refuses `sc` when it is predicted to take more iterations than `--work-limit` allows
/// ([`crate::sim::serving::least_iterations`]: a lower bound for one replica, and for the sum
/// of the iterations of replicas that share its requests).
pub(super) fn work_limit(spec: &ServeSpec, sc: &Scenario) -> Result<(), AppError> {
    let least = crate::sim::serving::least_iterations(sc);
    match spec.work_limit {
        Some(limit) if least > limit as f64 => Err(AppError::WorkLimit {
            what: format!(
                "{}: the run takes at least {least:.3e} iterations",
                spec.scenario.display()
            ),
            limit,
            flag: "--work-limit",
        }),
        _ => Ok(()),
    }
}

/// The report `r` of `spec`, with the keys its flags replaced, checked by the guard and
/// written in its format.
pub(super) fn written(
    spec: &ServeSpec,
    mut r: ServingReport,
    warnings: Vec<String>,
) -> Result<Served, AppError> {
    r.inputs.overridden = spec
        .overrides
        .keys()
        .iter()
        .map(|k| k.to_string())
        .collect();
    report::guard::check("serving", &r)?;
    let text = match spec.format {
        Format::Json => serde_json::to_string_pretty(&r)? + "\n",
        _ => r.table(),
    };
    Ok(Served { text, warnings })
}
