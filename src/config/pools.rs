//! A scenario's `[disaggregation]` table: the decode pool (its arch, devices and policy) and the
//! link that carries KV to it from the prefill pool (the scenario's own arch, `tp`, `policy`).

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use super::source::Source;
use super::{ScenarioOverrides, load_arch, load_scenario_overridden, source_text};
use crate::map::Policy;
use crate::sim::serving::{Disagg, KvLink};
use crate::units::{BytesPerSecond, Seconds};

#[derive(Debug, Deserialize)]
struct RawFile {
    disaggregation: Option<RawDisagg>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisagg {
    /// The decode pool's arch, relative to the scenario.
    decode_arch: Spanned<String>,
    /// The decode pool's tensor-parallel degree.
    decode_tp: Spanned<u64>,
    /// The decode pool's policy (all-xpu, dispatch, duplex); the prefill pool's is `policy`.
    decode_policy: Option<Spanned<String>>,
    /// Bytes per second between the pools ("50 GB/s"); else the prefill arch's cluster link.
    link_bandwidth: Option<Spanned<String>>,
    /// Seconds from the end of a transfer to its arrival ("5 us"); else the cluster link's.
    link_latency: Option<Spanned<String>>,
}

/// The disaggregated run `path` describes, `None` without a `[disaggregation]` table. Flags
/// would not say which pool they target, so any override is refused with one.
pub fn load_disagg(path: &Path, o: &ScenarioOverrides) -> Result<Option<Disagg>, ConfigError> {
    let src = Source::new(path, source_text(path)?);
    let Some(raw) = src.parse::<RawFile>()?.disaggregation else {
        return Ok(None);
    };
    if let Some(k) = o.keys().first() {
        return Err(src
            .whole(format!(
                "a flag replaces `{k}`, but the scenario is disaggregated and a flag does not say which pool it targets"
            ))
            .with_help("edit the top-level keys (the prefill pool) or [disaggregation] (the decode pool)"));
    }
    let prefill = load_scenario_overridden(path, o)?;
    let sys = load_arch(&src.relative_or_preset(raw.decode_arch.get_ref(), "arch"))?;
    let tp = *raw.decode_tp.get_ref();
    if tp == 0 || tp > u64::from(sys.devices()) {
        return Err(src.err(
            &raw.decode_tp,
            format!(
                "`disaggregation.decode_tp` must be in 1..={} (the devices of a node)",
                sys.devices()
            ),
        ));
    }
    prefill
        .model
        .check_tp(tp)
        .map_err(|e| src.err(&raw.decode_tp, e.to_string()))?;
    let policy = match &raw.decode_policy {
        None => Policy::AllXpu,
        Some(p) => p
            .get_ref()
            .parse::<Policy>()
            .map_err(|e| src.err(p, e.to_string()))?,
    };
    if let (Some(p), true) = (
        &raw.decode_policy,
        policy != Policy::AllXpu && sys.pim.is_none(),
    ) {
        return Err(src.err(
            p,
            format!(
                "policy {} needs an arch with a [pim] table ({} has none)",
                policy.name(),
                sys.name
            ),
        ));
    }
    let link = link(&src, &raw, &prefill.sys)?;
    let decode = crate::sim::serving::Scenario {
        sys,
        tp,
        ep: 1,
        policy,
        ..prefill.clone()
    };
    Ok(Some(Disagg {
        prefill,
        decode,
        link,
    }))
}

/// The link between the pools: the keys given, else the prefill arch's cluster link (per
/// device); its energy per bit is the cluster link's, else the node link's.
fn link(src: &Source, raw: &RawDisagg, sys: &crate::hw::System) -> Result<KvLink, ConfigError> {
    let cl = sys.cluster.as_ref().map(|c| &c.link);
    let missing = |key: &str| {
        src.whole(format!(
            "`disaggregation.{key}` is needed: the prefill arch {} has no [cluster.link] to take it from",
            sys.name
        ))
    };
    let given = |v: &Spanned<String>, x: Result<f64, crate::units::UnitError>, ok: bool, must| {
        x.map_err(|e| src.err(v, e.to_string()))
            .and_then(|x| if ok { Ok(x) } else { Err(src.err(v, must)) })
    };
    let bandwidth = match &raw.link_bandwidth {
        Some(v) => {
            let b = v.get_ref().parse::<BytesPerSecond>().map(|b| b.value());
            let ok = b.as_ref().is_ok_and(|&b| b > 0.0);
            given(v, b, ok, "`disaggregation.link_bandwidth` must be positive")?
        }
        None => cl
            .ok_or_else(|| missing("link_bandwidth"))?
            .bandwidth
            .value(),
    };
    let latency = match &raw.link_latency {
        Some(v) => {
            let t = v.get_ref().parse::<Seconds>().map(|t| t.value());
            let ok = t.as_ref().is_ok_and(|&t| t.is_finite() && t >= 0.0);
            given(v, t, ok, "`disaggregation.link_latency` must be at least 0")?
        }
        None => cl.ok_or_else(|| missing("link_latency"))?.latency.value(),
    };
    let energy = cl.unwrap_or(&sys.node.link).energy.value();
    Ok(KvLink {
        bandwidth,
        latency,
        energy_per_bit: energy,
    })
}
