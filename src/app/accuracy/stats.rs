//! Error statistics and the accuracy report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::files::Sample;
use crate::report::render::si;

/// Absolute relative error statistics over a group of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Samples in the group.
    pub count: usize,
    /// Median absolute relative error.
    pub median: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// Largest.
    pub max: f64,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

impl Stats {
    /// The statistics of `errors`; `None` when there are none.
    pub fn of(errors: impl Iterator<Item = f64>) -> Option<Stats> {
        let mut v: Vec<f64> = errors.collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Stats {
            count: v.len(),
            median: percentile(&v, 0.5),
            p90: percentile(&v, 0.9),
            max: v[v.len() - 1],
        })
    }
}

/// Statistics by group name (e.g. `a100 gemm`), in name order.
pub fn group_stats(samples: &[Sample]) -> BTreeMap<String, Stats> {
    let mut groups: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for s in samples {
        groups.entry(s.group.clone()).or_default().push(s.error());
    }
    groups
        .into_iter()
        .filter_map(|(g, e)| Some((g, Stats::of(e.into_iter())?)))
        .collect()
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// The accuracy report: statistics per group and per file, then the worst rows of each file.
pub fn accuracy_markdown(samples: &[Sample], worst: usize) -> String {
    let mut s = String::from(
        "# dyad accuracy against measured GPU data\n\n\
         Error = |predicted − measured| / measured, for every row of every file in \
         `data/validation/` (see each file's header for what was measured). \
         Regenerate with `cargo run --release -- accuracy > results/validation/README.md`. \
         Every fitted parameter, its physical meaning and value, the fit scripts and the \
         before/after figures of issue 17 are in `results/validation/issue17.md`; groups \
         marked with another device's name are the cross-check (parameters fitted on that \
         device).\n\n\
         ## By group\n\n| group | rows | median | p90 | max |\n|---|---:|---:|---:|---:|\n",
    );
    for (g, st) in group_stats(samples) {
        let _ = writeln!(
            s,
            "| {g} | {} | {} | {} | {} |",
            st.count,
            pct(st.median),
            pct(st.p90),
            pct(st.max)
        );
    }
    let mut files: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for x in samples.iter().filter(|x| !x.aside) {
        files.entry(x.file.as_str()).or_default().push(x);
    }
    s += "\n## By file\n\n| file | rows | median | p90 | max |\n|---|---:|---:|---:|---:|\n";
    for (f, v) in &files {
        if let Some(st) = Stats::of(v.iter().map(|x| x.error())) {
            let _ = writeln!(
                s,
                "| {f} | {} | {} | {} | {} |",
                st.count,
                pct(st.median),
                pct(st.p90),
                pct(st.max)
            );
        }
    }
    let _ = writeln!(s, "\n## Worst rows\n");
    for (f, v) in &files {
        let mut v = v.clone();
        v.sort_by(|a, b| b.error().total_cmp(&a.error()));
        let _ = writeln!(
            s,
            "### {f}\n\n| row | measured | predicted | error |\n|---|---:|---:|---:|"
        );
        for x in v.iter().take(worst) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                x.label,
                si(x.measured_s, "s"),
                si(x.predicted_s, "s"),
                pct(x.error())
            );
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let st = Stats::of((1..=10).map(f64::from)).unwrap();
        assert_eq!((st.median, st.p90, st.max), (5.0, 9.0, 10.0));
    }
}
