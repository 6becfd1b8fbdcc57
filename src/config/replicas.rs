//! A scenario's `[replicas]` table: copies of the scenario's replica behind a router
//! (`sim::serving::simulate_replicas`), and the `--replicas` / `--router` flags that replace it.
//!
//! ```toml
//! [replicas]
//! count = 4                  # R copies, each of the scenario's tp × ep devices
//! router = "least_work"      # or "round_robin" (the default)
//! ```

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use super::source::Source;
use super::{ScenarioOverrides, source_text};
use crate::sim::serving::{Replicas, RouterPolicy};

/// Most replicas behind one router: each is a bench of its own (KV pool, queues, cost cache)
/// and the event loop looks at every one per step, so memory and time grow with R; 1024 bounds
/// both while staying past the fleets the serving papers route over.
pub const MAX_REPLICAS: u64 = 1024;

/// The error of a `[replicas]` table in a scenario that a command runs as one replica (a
/// sweep, the built-in comparison): it would drop the table.
pub(super) const ONE_REPLICA: &str = "[replicas]: replicas behind a router are run by `dyad run --serving` only (this command runs one replica)";

#[derive(Debug, Deserialize)]
struct RawFile {
    replicas: Option<RawReplicas>,
    arrivals: Option<toml::Table>,
    disaggregation: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplicas {
    count: Spanned<u64>,
    router: Option<Spanned<String>>,
}

/// The replicas the scenario at `path` asks for, with `--replicas` and `--router` (in `o`) in
/// place of its `[replicas]` keys; `None` when neither the file nor a flag gives a count (one
/// replica, the plain engine). A count outside `1..=`[`MAX_REPLICAS`], an unknown router, more
/// than one replica of a closed loop (its concurrency would span them) and replicas of a
/// disaggregated scenario are errors at the key or flag that gave them.
pub fn load_replicas(path: &Path, o: &ScenarioOverrides) -> Result<Option<Replicas>, ConfigError> {
    let src = Source::new(path, source_text(path)?);
    let raw: RawFile = src.parse()?;
    let table = raw.replicas.as_ref();
    let flag =
        |f: &str, v: &dyn std::fmt::Display, msg: &str| src.whole(format!("--{f} {v}: {msg}"));
    let count = match (o.replicas, table) {
        (Some(n), _) => match n {
            0 => return Err(flag("replicas", &n, "must be at least 1")),
            n if n > MAX_REPLICAS => {
                return Err(flag(
                    "replicas",
                    &n,
                    &format!("is more than {MAX_REPLICAS}"),
                ));
            }
            n => n,
        },
        (None, Some(t)) => bounded(&src, &t.count)?,
        (None, None) => {
            return match o.router {
                Some(r) => Err(flag(
                    "router",
                    &r.name(),
                    "needs --replicas or a [replicas] table in the scenario",
                )),
                None => Ok(None),
            };
        }
    };
    let router = match (o.router, table.and_then(|t| t.router.as_ref())) {
        (Some(r), _) => r,
        (None, Some(v)) => v
            .get_ref()
            .parse::<RouterPolicy>()
            .map_err(|e| src.err(v, format!("`replicas.router`: {e}")))?,
        (None, None) => RouterPolicy::RoundRobin,
    };
    // Where a conflict is said: at the flag that gave the count, else at the file's key.
    let conflict = |msg: String| match (o.replicas, table) {
        (None, Some(t)) => src.err(&t.count, format!("`replicas.count` = {count}: {msg}")),
        _ => flag("replicas", &count, &msg),
    };
    if raw.disaggregation.is_some() {
        return Err(conflict(
            "replicas of a disaggregated scenario are not simulated (a router in front of \
             prefill and decode pools); remove [replicas] or [disaggregation]"
                .into(),
        ));
    }
    let closed = raw
        .arrivals
        .as_ref()
        .is_some_and(|a| a.contains_key("closed"));
    if closed && count > 1 {
        return Err(conflict(
            "a closed loop's concurrency would span the replicas; give open-loop arrivals \
             (`arrivals.poisson` or a trace)"
                .into(),
        ));
    }
    Ok(Some(Replicas { count, router }))
}

/// `replicas.count` in `1..=`[`MAX_REPLICAS`].
fn bounded(src: &Source, v: &Spanned<u64>) -> Result<u64, ConfigError> {
    match *v.get_ref() {
        0 => Err(src.err(v, "`replicas.count` must be at least 1")),
        n if n > MAX_REPLICAS => Err(src.err(
            v,
            format!("`replicas.count` = {n} is more than {MAX_REPLICAS}"),
        )),
        n => Ok(n),
    }
}
