//! A scenario's request lengths as written (`fixed`, `uniform`, `normal`), checked into a
//! [`LengthDist`].

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use super::serving::MAX_LEN;
use super::source::Source;
use crate::sim::workload::LengthDist;

/// A length distribution as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub(super) enum RawDist {
    Fixed(u64),
    Uniform([u64; 2]),
    Normal {
        mean: f64,
        std: f64,
        min: u64,
        max: u64,
    },
}

/// The checked distribution of `d`, written at scenario key `key`.
pub(super) fn dist(
    src: &Source,
    d: &Spanned<RawDist>,
    key: &str,
) -> Result<LengthDist, ConfigError> {
    let most = match *d.get_ref() {
        RawDist::Fixed(n) => n,
        RawDist::Uniform([_, max]) | RawDist::Normal { max, .. } => max,
    };
    if most > MAX_LEN {
        return Err(src.err(
            d,
            format!("`{key}`: {most} tokens is longer than the limit of {MAX_LEN}"),
        ));
    }
    Ok(match *d.get_ref() {
        RawDist::Fixed(0) => {
            return Err(src.err(d, format!("`{key}`: a length must be at least 1")));
        }
        RawDist::Fixed(n) => LengthDist::Fixed(n),
        RawDist::Uniform([min, max]) if min == 0 || min > max => {
            return Err(src.err(d, format!("`{key}`: uniform needs 1 <= min <= max")));
        }
        RawDist::Uniform([min, max]) => LengthDist::Uniform { min, max },
        RawDist::Normal {
            mean,
            std,
            min,
            max,
        } => {
            if !(std >= 0.0 && mean.is_finite() && min >= 1 && min <= max) {
                return Err(src.err(
                    d,
                    format!("`{key}`: normal needs std >= 0 and 1 <= min <= max"),
                ));
            }
            LengthDist::Normal {
                mean,
                std,
                min,
                max,
            }
        }
    })
}
