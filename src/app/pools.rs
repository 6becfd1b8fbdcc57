//! `dyad run --serving` on a scenario with a `[disaggregation]` table: the prefill and decode
//! pools run by `sim::serving::simulate_disagg`, reported per pool with the KV transfers.

use serde::Serialize;

use super::AppError;
use super::run::{ServeSpec, Served};
use crate::sim::serving::{Disagg, DisaggResult, Samples, ServingResult};

/// p50 and p99 of `s`, ms.
fn p50_p99(s: &Samples) -> [f64; 2] {
    [s.quantile(0.5) * 1e3, s.quantile(0.99) * 1e3]
}

/// One pool in the report.
#[derive(Debug, Serialize)]
struct PoolReport {
    arch: String,
    tp: u64,
    policy: &'static str,
    iterations: u64,
    mean_batch: f64,
    /// Dynamic and static, J.
    energy_j: f64,
}

impl PoolReport {
    fn new(d: &crate::sim::serving::Scenario, r: &ServingResult) -> Self {
        PoolReport {
            arch: d.sys.name.clone(),
            tp: d.tp,
            policy: d.policy.name(),
            iterations: r.iterations,
            mean_batch: r.mean_batch,
            energy_j: r.energy,
        }
    }
}

/// The disaggregated run's report.
#[derive(Debug, Serialize)]
struct DisaggReport {
    scenario: String,
    prefill: PoolReport,
    decode: PoolReport,
    requests: u64,
    duration_s: f64,
    output_tokens_per_s: f64,
    /// At the end of prefill (Splitwise's TTFT), ms.
    ttft_ms_p50_p99: [f64; 2],
    /// Between tokens on the decode pool (the first gap holds the transfer), ms.
    tbt_ms_p50_p99: [f64; 2],
    e2e_ms_p50_p99: [f64; 2],
    kv_bytes: f64,
    kv_transfer_ms_mean: f64,
    kv_transfer_ms_p99: f64,
    kv_link_wait_ms_mean: f64,
    link_energy_j: f64,
    energy_j: f64,
    energy_per_output_token_j: f64,
}

/// Runs `d` and writes its report, and its trace (a process per pool and the KV link) as the
/// run goes if asked for.
pub(super) fn serve_disagg(spec: &ServeSpec, d: &Disagg) -> Result<Served, AppError> {
    let (r, warnings) = run_traced(spec, d)?;
    let rep = DisaggReport {
        scenario: d.prefill.name.clone(),
        prefill: PoolReport::new(&d.prefill, &r.prefill),
        decode: PoolReport::new(&d.decode, &r.decode),
        requests: r.prefill.requests_completed,
        duration_s: r.duration,
        output_tokens_per_s: r.output_tokens as f64 / r.duration.max(f64::MIN_POSITIVE),
        ttft_ms_p50_p99: p50_p99(&r.prefill.ttft),
        tbt_ms_p50_p99: p50_p99(&r.decode.tbt),
        e2e_ms_p50_p99: p50_p99(&r.e2e),
        kv_bytes: r.kv_bytes,
        kv_transfer_ms_mean: r.kv_transfer.mean() * 1e3,
        kv_transfer_ms_p99: r.kv_transfer.quantile(0.99) * 1e3,
        kv_link_wait_ms_mean: r.kv_link_wait.mean() * 1e3,
        link_energy_j: r.link_energy,
        energy_j: r.energy,
        energy_per_output_token_j: r.energy / r.output_tokens.max(1) as f64,
    };
    let text = match spec.format {
        crate::report::Format::Json => serde_json::to_string_pretty(&rep)? + "\n",
        _ => table(&rep),
    };
    Ok(Served { text, warnings })
}

/// Runs `d`, writing its trace to `spec.trace` if set; returns the run and the trace's
/// warnings.
fn run_traced(spec: &ServeSpec, d: &Disagg) -> Result<(DisaggResult, Vec<String>), AppError> {
    use crate::report::pool_trace::PoolTrace;
    use crate::sim::serving::{Observer, simulate_disagg_observed};
    let fail = |source| super::fit::serving_error(&d.prefill, spec, source);
    let Some(t) = &spec.trace else {
        return Ok((
            simulate_disagg_observed(d, None, None).map_err(fail)?,
            Vec::new(),
        ));
    };
    let cannot = |e| AppError::cannot_write(t, e);
    let f = std::io::BufWriter::new(std::fs::File::create(t).map_err(cannot)?);
    let mut trace = PoolTrace::new(f, d, spec.trace_limit).map_err(cannot)?;
    let pre: &mut dyn Observer = &mut trace.prefill;
    let dec: &mut dyn Observer = &mut trace.decode;
    let r = simulate_disagg_observed(d, Some(pre), Some(dec)).map_err(fail)?;
    let summary = trace.finish().map_err(cannot)?;
    Ok((r, summary.warnings()))
}

fn table(r: &DisaggReport) -> String {
    let pool = |name: &str, p: &PoolReport| {
        format!(
            "{name:<8} {} tp {} {}: {} iterations, mean batch {:.1}, {:.1} J\n",
            p.arch, p.tp, p.policy, p.iterations, p.mean_batch, p.energy_j
        )
    };
    let [t50, t99] = r.ttft_ms_p50_p99;
    let [b50, b99] = r.tbt_ms_p50_p99;
    let [e50, e99] = r.e2e_ms_p50_p99;
    format!(
        "serving (disaggregated) {}\n{}{}requests {}, {:.3} s, {:.1} output tok/s\n\
         TTFT p50 {t50:.3} ms p99 {t99:.3} ms (prefill pool)\n\
         TBT  p50 {b50:.3} ms p99 {b99:.3} ms (decode pool)\n\
         e2e  p50 {e50:.3} ms p99 {e99:.3} ms\n\
         KV transfer: {:.3e} B, mean {:.3} ms, p99 {:.3} ms, link wait mean {:.3} ms, {:.3} J\n\
         energy {:.1} J, {:.4} J per output token\n",
        r.scenario,
        pool("prefill", &r.prefill),
        pool("decode", &r.decode),
        r.requests,
        r.duration_s,
        r.output_tokens_per_s,
        r.kv_bytes,
        r.kv_transfer_ms_mean,
        r.kv_transfer_ms_p99,
        r.kv_link_wait_ms_mean,
        r.link_energy_j,
        r.energy_j,
        r.energy_per_output_token_j,
    )
}
