//! Headed CSV files (request traces, calibration data): rows as maps from column name to
//! value, each with its line, and the request-trace row checked at its line.

use std::collections::HashMap;
use std::path::Path;

use super::ConfigError;
use super::serving::MAX_LEN;

/// A row: column name to value.
pub(crate) type Row = HashMap<String, String>;

/// Rows of a headed CSV file (lines starting with `#` are comments), as maps from column name
/// to value; errors name the file.
pub(crate) fn rows(path: &Path) -> Result<Vec<HashMap<String, String>>, ConfigError> {
    Ok(lines(path)?.into_iter().map(|(_, r)| r).collect())
}

/// [`rows`] with the line of the file each row is on.
pub(super) fn lines(path: &Path) -> Result<Vec<(usize, Row)>, ConfigError> {
    let fail = |e: csv::Error| ConfigError::file(path, format!("cannot read: {e}"));
    let mut rd = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_path(path)
        .map_err(fail)?;
    let headers = rd.headers().map_err(fail)?.clone();
    rd.records()
        .map(|r| {
            let r = r.map_err(fail)?;
            let line = r.position().map_or(0, |p| p.line() as usize);
            let row = headers
                .iter()
                .map(String::from)
                .zip(r.iter().map(String::from))
                .collect();
            Ok((line, row))
        })
        .collect()
}

fn field<T: std::str::FromStr>(
    path: &Path,
    line: usize,
    row: &HashMap<String, String>,
    col: &str,
) -> Result<T, ConfigError> {
    let v = row
        .get(col)
        .ok_or_else(|| ConfigError::file(path, format!("no column `{col}`")))?;
    v.trim().parse().map_err(|_| {
        ConfigError::file(
            path,
            format!("line {line}: column `{col}`: cannot read \"{v}\""),
        )
    })
}

/// One row of a request trace (at `line`): lengths in `1..=MAX_LEN`, an arrival time finite and
/// not negative.
pub(super) fn trace_row(
    p: &Path,
    line: usize,
    row: &HashMap<String, String>,
) -> Result<(u64, u64, Option<f64>), ConfigError> {
    let bad = |msg: String| ConfigError::file(p, format!("line {line}: {msg}"));
    let len = |col: &str| -> Result<u64, ConfigError> {
        match field::<u64>(p, line, row, col)? {
            n @ 1..=MAX_LEN => Ok(n),
            n => Err(bad(format!("column `{col}`: {n} is outside 1..={MAX_LEN}"))),
        }
    };
    let arrival = match row.get("arrival_s") {
        Some(_) => match field::<f64>(p, line, row, "arrival_s")? {
            t if (0.0..=MAX_ARRIVAL_S).contains(&t) => Some(t),
            t => {
                return Err(bad(format!(
                    "column `arrival_s`: {t} is not a time in [0, {MAX_ARRIVAL_S:e}] s"
                )));
            }
        },
        None => None,
    };
    Ok((len("prompt_len")?, len("output_len")?, arrival))
}

/// Latest arrival a request trace may give: a year, in seconds (far past any served trace,
/// and far from where f64 seconds lose their nanoseconds).
const MAX_ARRIVAL_S: f64 = 3.2e7;
