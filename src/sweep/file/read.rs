//! The parts of a sweep file read after its axes: how the axes combine, the objectives and the
//! constraints.

use super::*;

/// Whether the axes are zipped (`combine = "zip"`, all of one length) rather than crossed
/// (at most [`MAX_POINTS`] points, the product checked axis by axis).
pub(super) fn read_combine(
    src: &SweepText,
    combine: Option<&Spanned<String>>,
    (axes, raw): (&[Axis], &[RawAxis]),
) -> Result<bool, ConfigError> {
    match combine.map(|c| (c.get_ref().as_str(), c.span())) {
        None | Some(("product", _)) => {
            let mut n: usize = 1;
            for (a, r) in axes.iter().zip(raw) {
                n = n.checked_mul(a.values.len()).filter(|&n| n <= MAX_POINTS).ok_or_else(|| {
                    let why = format!("`{}`: with the axes above, the grid passes {MAX_POINTS} points, the most a sweep runs", a.key);
                    src.at(r.values.span(), why).with_help("sweep fewer values, or pair the axes with combine = \"zip\"")
                })?;
            }
            Ok(false)
        }
        Some(("zip", span)) => {
            let n = axes[0].values.len();
            match axes.iter().find(|x| x.values.len() != n) {
                Some(b) => Err(src.at(
                    span,
                    format!(
                        "zip needs axes of one length: `{}` has {n} values, `{}` has {}",
                        axes[0].key,
                        b.key,
                        b.values.len()
                    ),
                )),
                None => Ok(true),
            }
        }
        Some((other, span)) => Err(src.at(
            span,
            format!("unknown combine \"{other}\" (valid: product, zip)"),
        )),
    }
}

/// The objectives, `max METRIC` or `min METRIC`, each a metric or an axis key.
pub(super) fn read_objectives(
    src: &SweepText,
    raw: &[Spanned<String>],
    axes: &[Axis],
    metrics: &[String],
) -> Result<Vec<Objective>, ConfigError> {
    raw.iter()
        .map(|o| {
            let (sense, metric) = match o.get_ref().trim().split_once(char::is_whitespace) {
                Some(("max", m)) => (Sense::Max, m.trim()),
                Some(("min", m)) => (Sense::Min, m.trim()),
                _ => {
                    return Err(src.at(
                        o.span(),
                        format!(
                            "objective \"{}\": write \"max METRIC\" or \"min METRIC\"",
                            o.get_ref()
                        ),
                    ));
                }
            };
            if !metrics.iter().any(|m| m == metric) && !axes.iter().any(|a| a.key == metric) {
                return Err(src
                    .at(
                        o.span(),
                        format!("`{metric}` is neither a metric nor an axis key"),
                    )
                    .with_help(format!("metrics: {}", metrics.join(", "))));
            }
            Ok(Objective {
                metric: metric.to_string(),
                sense,
            })
        })
        .collect()
}

/// The constraints, each over axis keys and metrics.
pub(super) fn read_constraints(
    src: &SweepText,
    raw: &[Spanned<String>],
    axes: &[Axis],
    metrics: &[String],
) -> Result<Vec<Constraint>, ConfigError> {
    let axis_keys: Vec<&str> = axes.iter().map(|a| a.key.as_str()).collect();
    raw.iter()
        .map(|c| {
            Constraint::parse(c.get_ref(), &axis_keys, metrics)
                .map_err(|m| src.at(c.span(), m.to_string()))
        })
        .collect()
}
