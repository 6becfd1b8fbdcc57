//! Running one case in a worker's own copy of the inputs, under a time and memory bound.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::FuzzError;
use crate::cases::Case;

/// The bounds on one case.
pub struct Limits {
    /// Wall time before the case counts as a hang.
    pub timeout: Duration,
    /// Address-space limit (`ulimit -v`), MiB.
    pub memory_mib: u64,
}

/// How a case ended.
pub struct Outcome {
    /// The exit status, if the process exited.
    pub status: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// Killed at the time limit.
    pub timed_out: bool,
    /// Its standard output and error.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// The mutated file's name, or the mutated flag: what a rejection must name.
    pub subject: Option<String>,
}

impl Outcome {
    /// Why the case failed, or `None` when dyad behaved.
    pub fn failure(&self) -> Option<String> {
        if self.timed_out {
            return Some("no answer within the time limit (a hang)".into());
        }
        if let Some(s) = self.signal {
            return Some(format!(
                "killed by signal {s} (a crash or an allocation abort)"
            ));
        }
        match self.status {
            Some(0) | Some(1) => dyad::report::guard::non_number(&self.stdout)
                .map(|w| format!("exit 0/1 with \"{w}\" in the output (not a number)")),
            Some(2) => match &self.subject {
                Some(s) if !located(&self.stderr, s) => {
                    Some(format!("rejected without naming a line of {s}"))
                }
                _ => None,
            },
            Some(s) => Some(format!("exit status {s}: {}", first_line(&self.stderr))),
            None => Some("no exit status".into()),
        }
    }
}

/// A worker's folder: a copy of the input tree in which each case replaces one file.
pub struct Workdir {
    dir: PathBuf,
    tree: Vec<(PathBuf, Vec<u8>)>,
}

impl Workdir {
    /// A fresh copy of `tree` in a temporary folder for worker `w`.
    pub fn new(tree: &[(PathBuf, Vec<u8>)], w: usize) -> Result<Workdir, FuzzError> {
        let dir = std::env::temp_dir().join(format!("dyad-fuzz-{}-{w}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (p, bytes) in tree {
            write(&dir.join(p), bytes)?;
        }
        Ok(Workdir {
            dir,
            tree: tree.to_vec(),
        })
    }

    /// Runs `case` with `dyad` and puts the file it replaced back.
    pub fn run(&self, dyad: &Path, case: &Case, limits: &Limits) -> Result<Outcome, FuzzError> {
        let _ = std::fs::remove_dir_all(self.dir.join("sweep-out"));
        if let Some((p, bytes)) = &case.file {
            write(&self.dir.join(p), bytes)?;
        }
        let (out, err) = (self.dir.join(".stdout"), self.dir.join(".stderr"));
        let file = |p: &Path| std::fs::File::create(p).map_err(FuzzError::io(p));
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -v {} && exec \"$0\" \"$@\"",
                limits.memory_mib * 1024
            ))
            .arg(dyad)
            .args(&case.args)
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(file(&out)?)
            .stderr(file(&err)?)
            .spawn()
            .map_err(FuzzError::io(dyad))?;
        let start = Instant::now();
        let (status, timed_out) = loop {
            match child.try_wait().map_err(FuzzError::io(dyad))? {
                Some(s) => break (Some(s), false),
                None if start.elapsed() > limits.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break (None, true);
                }
                None => std::thread::sleep(Duration::from_millis(2)),
            }
        };
        if let Some((p, _)) = &case.file {
            let original = self.tree.iter().find(|(q, _)| q == p).map(|(_, b)| b);
            write(&self.dir.join(p), original.map_or(&[][..], |b| b))?;
        }
        let read =
            |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
        let subject = match (&case.file, case.flag) {
            (Some((p, _)), _) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
            (None, Some(f)) => Some(f.to_string()),
            (None, None) => None,
        };
        Ok(Outcome {
            status: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            timed_out,
            stdout: read(&out),
            stderr: read(&err),
            subject,
        })
    }

    /// Keeps a failing case under `out/case-I/`: its input, command line and messages.
    pub fn keep(&self, out: &Path, i: u64, case: &Case, o: &Outcome) -> Result<(), FuzzError> {
        let d = out.join(format!("case-{i}"));
        if let Some((p, bytes)) = &case.file {
            write(&d.join(p), bytes)?;
        }
        write(
            &d.join("command"),
            format!("dyad {}\n", case.shown()).as_bytes(),
        )?;
        write(&d.join("stderr"), o.stderr.as_bytes())?;
        write(&d.join("stdout"), o.stdout.as_bytes())
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write(p: &Path, bytes: &[u8]) -> Result<(), FuzzError> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(FuzzError::io(d))?;
    }
    std::fs::write(p, bytes).map_err(FuzzError::io(p))
}

/// Whether a rejection names `subject` with a place in it: `NAME:LINE`, `line N`, `byte N`, a
/// key in backquotes (a missing key has no line), or the flag itself; or points at a line of
/// another file (the scenario line that names a trace), or names the flag that lifts the limit
/// it reports (`--allow-oversize`).
fn located(stderr: &str, subject: &str) -> bool {
    // miette wraps messages in a box: join its lines back into one text.
    let stderr = &(" ".to_string()
        + &stderr
            .replace(['│', '×', '╰', '─', '▶', '╭', '·', '┬'], " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "));
    let names_flag = stderr.match_indices(" --").any(|(i, _)| {
        stderr[i + 3..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase())
    });
    if subject.starts_with('-') {
        return names_flag || stderr.contains(subject);
    }
    let after_digit = |pat: &str| {
        stderr.match_indices(pat).any(|(i, _)| {
            stderr[i + pat.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
    };
    let at_a_line = [".toml:", ".json:", ".csv:", ".jsonl:"]
        .iter()
        .any(|ext| after_digit(ext));
    names_flag
        || at_a_line
        || stderr.contains(subject)
            && (after_digit(&format!("{subject}:"))
                || after_digit("line ")
                || after_digit("line: ")
                || after_digit("byte ")
                || after_digit("row "))
        // A key in backquotes places the fault even when another file's keys set it.
        || stderr.matches('`').count() >= 2
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_is_a_line_of_the_file_or_the_flag() {
        assert!(located("[a.toml:3:5]", "a.toml"));
        assert!(located("a.csv: line 4: bad", "a.csv"));
        assert!(!located("a.toml: no room for a KV cache", "a.toml"));
        assert!(located(
            "s.toml:17:9: the request trace has no rows",
            "a.csv"
        ));
        assert!(!located("a.toml: head_dim must be positive", "a.toml"));
        assert!(located("a.toml: missing key `x.y`", "a.toml"));
        assert!(located("--batch: too large", "--batch"));
        assert!(located(
            "× a.csv: record 165 (line\n  │ 167, field 2)",
            "a.csv"
        ));
    }
}
