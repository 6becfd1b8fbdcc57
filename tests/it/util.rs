//! The one harness for running the `dyad` binary: every test that runs it goes through here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The repository root, where the shipped arch, model and scenario files live.
pub(crate) const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `p` under the repository root.
pub(crate) fn root(p: &str) -> PathBuf {
    Path::new(ROOT).join(p)
}

/// How one run of the binary ended.
pub(crate) struct Run {
    /// The exit status (-1 when killed by a signal).
    pub(crate) status: i32,
    /// Standard output, lossily decoded.
    pub(crate) stdout: String,
    /// Standard error, lossily decoded.
    pub(crate) stderr: String,
}

/// Runs `dyad args` in `dir`, feeding it `stdin` when given, with colour off.
pub(crate) fn dyad_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dyad"));
    c.args(args).current_dir(dir).env("NO_COLOR", "1");
    let out = match stdin {
        None => c.output().unwrap(),
        Some(text) => {
            c.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = c.spawn().unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        }
    };
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `dyad args` in the repository root.
pub(crate) fn dyad(args: &[&str]) -> Run {
    dyad_in(Path::new(ROOT), args, None)
}

/// Runs `dyad args` in the repository root with `stdin` as its standard input.
pub(crate) fn dyad_stdin(args: &[&str], stdin: &str) -> Run {
    dyad_in(Path::new(ROOT), args, Some(stdin))
}

/// Writes `files` (relative names, folders created as needed) into a fresh temporary folder and
/// runs `dyad args` there.
pub(crate) fn dyad_with(files: &[(&str, &str)], args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dyad_in(dir.path(), args, None)
}

/// A small Mixtral-8x7B serving scenario on 4 devices of the preset `arch` (TP 4; 8 requests of
/// 64 + 8 tokens, 4 in flight), with the lines `extra` (a `seed`, a `policy`) and `routing` as
/// the body of its `[routing]` table; its paths are absolute, so it runs from any folder.
pub(crate) fn small_scenario(arch: &str, extra: &str, routing: &str) -> String {
    format!(
        r#"arch = "{ROOT}/arch/{arch}.toml"
model = "{ROOT}/workloads/models/mixtral-8x7b.json"
tp = 4
{extra}
[precision]
weights = "bf16"
activations = "bf16"
kv = "bf16"
[requests]
count = 8
prompt = {{ fixed = 64 }}
output = {{ fixed = 8 }}
[arrivals]
closed = 4
[batching]
max_batch = 4
max_tokens = 2048
kv_block = 16
memory_utilization = 0.9
[routing]
{routing}
"#
    )
}

/// `text` with miette's box drawing removed and its wrapped lines joined, so that a needle
/// does not depend on where the terminal width (or a path's length) broke the message.
fn unwrapped(text: &str) -> String {
    text.replace(['│', '×', '╰', '─', '▶', '╭', '·', '┬', '├'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The line (1-based) of `text` that contains `needle`.
pub(crate) fn line_of(text: &str, needle: &str) -> usize {
    1 + text.lines().position(|l| l.contains(needle)).unwrap()
}

/// Checks that `r` ended with status 2 (bad input), without a panic, and that its standard error
/// contains every one of `needles` (wherever the message wrapped).
#[track_caller]
pub(crate) fn expect_input_error(r: &Run, needles: &[&str]) {
    assert_eq!(r.status, 2, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    let text = unwrapped(&r.stderr);
    for n in needles {
        assert!(
            r.stderr.contains(n) || text.contains(&unwrapped(n)),
            "stderr lacks {n:?}:\n{}",
            r.stderr
        );
    }
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}
