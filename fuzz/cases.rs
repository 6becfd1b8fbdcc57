//! What is fuzzed: the shipped inputs, the command each is run through, and the numeric flags.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::FuzzError;
use crate::mutate::{self, Rng};

/// The folders of the repository whose files the workers copy (relative to the root).
const TREE: [&str; 5] = [
    "arch",
    "data/validation",
    "workloads/models",
    "workloads/serving",
    "tests/fuzz",
];

/// The small closed-loop scenario, and the one that reads both kinds of trace.
const SCENARIO: &str = "tests/fuzz/scenario.toml";
const TRACE_SCENARIO: &str = "tests/fuzz/trace-scenario.toml";

/// The work limit of the fuzzed serving runs: their lower bound on iterations, so that a run
/// the time limit stops is a hang and not a long run.
const WORK_LIMIT: &str = "--work-limit=20000";
/// The work limit of the fuzzed `dyad validate` runs (FLOP-equivalents): a few seconds.
const VALIDATE_LIMIT: &str = "--work-limit=1e10";

/// One input file and the command line that reads it (`{F}` stands for the file).
struct Target {
    kind: &'static str,
    file: PathBuf,
    args: Vec<String>,
}

/// A command line with one numeric flag whose value is mutated.
struct FlagTarget {
    args: Vec<&'static str>,
    flag: &'static str,
}

/// Values tried for numeric flags: edges of every integer type, non-numbers, and the limits the
/// help texts state.
const FLAG_VALUES: [&str; 24] = [
    "0",
    "1",
    "-1",
    "2",
    "3",
    "7",
    "1023",
    "1025",
    "16385",
    "65537",
    "1048577",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "1e3",
    "0.5",
    "nan",
    "inf",
    "",
    "x",
    "1/0",
    "all",
];

/// Everything the cases are drawn from.
pub struct Inputs {
    /// Every file the workers copy: its path under the root and its bytes.
    pub tree: Vec<(PathBuf, Vec<u8>)>,
    targets: Vec<Target>,
    flags: Vec<FlagTarget>,
}

/// One case: the command line, and the mutated file or flag it tests.
pub struct Case {
    /// The input kind, for the tally.
    pub kind: &'static str,
    /// Arguments of `dyad`.
    pub args: Vec<String>,
    /// The file replaced for this case (its path under the root) and its mutated bytes.
    pub file: Option<(PathBuf, Vec<u8>)>,
    /// The flag whose value was mutated.
    pub flag: Option<&'static str>,
}

impl Case {
    /// The command line, shell-quoted enough to paste.
    pub fn shown(&self) -> String {
        self.args
            .iter()
            .map(|a| {
                if a.is_empty() || a.contains(|c: char| !c.is_ascii_graphic()) {
                    format!("'{a}'")
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Inputs {
    /// Reads the tree under `root`, and writes the reports `dyad compare` is fuzzed on with
    /// `dyad` (they are inputs too).
    pub fn collect(root: &Path, dyad: &Path) -> Result<Inputs, FuzzError> {
        let mut tree = Vec::new();
        for dir in TREE {
            read_tree(root, Path::new(dir), &mut tree)?;
        }
        let reports = [
            ("tests/fuzz/run.json", vec!["run", "--format", "json"]),
            (
                "tests/fuzz/serving.json",
                vec!["run", "--serving", SCENARIO, "--format", "json"],
            ),
        ];
        for (name, args) in &reports {
            let out = Command::new(dyad)
                .args(args)
                .current_dir(root)
                .output()
                .map_err(FuzzError::io(dyad))?;
            if !out.status.success() {
                return Err(FuzzError::Setup {
                    command: args.join(" "),
                    status: out.status,
                });
            }
            tree.push((PathBuf::from(name), out.stdout));
        }
        let targets = targets(&tree);
        debug_assert!(
            targets
                .iter()
                .all(|t| tree.iter().any(|(p, _)| *p == t.file))
        );
        Ok(Inputs {
            tree,
            targets,
            flags: flag_targets(),
        })
    }

    /// Case `i` of `seed`: a file mutation for three cases in four, a flag otherwise.
    pub fn case(&self, seed: u64, i: u64) -> Case {
        let mut rng = Rng::new(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        if rng.below(4) < 3 {
            let t = &self.targets[rng.below(self.targets.len() as u64) as usize];
            let text = self
                .tree
                .iter()
                .find(|(p, _)| *p == t.file)
                .map(|(_, b)| b.as_slice())
                .unwrap_or_default();
            Case {
                kind: t.kind,
                args: t.args.clone(),
                file: Some((t.file.clone(), mutate::mutate(text, &mut rng))),
                flag: None,
            }
        } else {
            let t = &self.flags[rng.below(self.flags.len() as u64) as usize];
            let value = if rng.below(4) == 0 {
                mutate::number(&mut rng)
            } else {
                FLAG_VALUES[rng.below(FLAG_VALUES.len() as u64) as usize].to_string()
            };
            let mut args: Vec<String> = t.args.iter().map(|a| a.to_string()).collect();
            // `--flag=VALUE`, so that a value such as -1 is not read as a flag.
            args.push(format!("{}={value}", t.flag));
            Case {
                kind: "flag",
                args,
                file: None,
                flag: Some(t.flag),
            }
        }
    }
}

impl Target {
    fn new(kind: &'static str, file: &Path, args: &[&str]) -> Target {
        let f = file.display().to_string();
        Target {
            kind,
            file: file.to_path_buf(),
            args: args
                .iter()
                .map(|a| {
                    if *a == "{F}" {
                        f.clone()
                    } else {
                        a.to_string()
                    }
                })
                .collect(),
        }
    }
}

/// Each input file with the command line that reads it.
fn targets(tree: &[(PathBuf, Vec<u8>)]) -> Vec<Target> {
    let mut targets = Vec::new();
    let files = |prefix: &str| -> Vec<PathBuf> {
        tree.iter()
            .map(|(p, _)| p.clone())
            .filter(|p| p.starts_with(prefix))
            .collect()
    };
    for p in files("arch") {
        let text = tree_text(tree, &p);
        let ext = p.extension().and_then(|e| e.to_str());
        let args: &[&str] = if p.starts_with("arch/tech/dies") {
            &["ppa", "--die", "{F}"]
        } else if p.starts_with("arch/tech") {
            &["ppa", "arch/h100.toml", "arch/duplex.toml"]
        } else if text.contains("\ndie =") {
            &["ppa", "{F}"]
        } else {
            &["run", "--arch", "{F}", "--batch", "8", "--kv-len", "512"]
        };
        if ext == Some("toml") {
            let kind = if p.starts_with("arch/tech") {
                "die/tech"
            } else {
                "arch"
            };
            targets.push(Target::new(kind, &p, args));
            if kind == "arch" && args[0] == "ppa" {
                let run = ["run", "--arch", "{F}", "--batch", "8", "--kv-len", "512"];
                targets.push(Target::new(kind, &p, &run));
            }
        }
    }
    for p in files("workloads/models") {
        let run = [
            "run", "--model", "{F}", "--arch", "h100", "--batch", "4", "--kv-len", "256",
        ];
        targets.push(Target::new("model", &p, &run));
        let validate = [
            "validate",
            "--model",
            "{F}",
            "--layers",
            "2",
            "--tp",
            "1",
            "--ep",
            "1",
            VALIDATE_LIMIT,
        ];
        targets.push(Target::new("model", &p, &validate));
    }
    for s in [SCENARIO, TRACE_SCENARIO] {
        targets.push(Target::new(
            "scenario",
            Path::new(s),
            &["run", "--serving", "{F}"],
        ));
    }
    let trace_run = ["run", "--serving", TRACE_SCENARIO, WORK_LIMIT];
    for (kind, file) in [
        ("request trace", "tests/fuzz/requests.csv"),
        ("routing trace", "tests/fuzz/routing.csv"),
    ] {
        targets.push(Target::new(kind, Path::new(file), &trace_run));
    }
    let sweep = ["sweep", "{F}", "--out", "sweep-out", "-q", "-j", "1"];
    targets.push(Target::new(
        "sweep",
        Path::new("tests/fuzz/sweep.toml"),
        &sweep,
    ));
    targets.push(Target::new(
        "cost csv",
        Path::new("tests/fuzz/ops.csv"),
        &["cost", "{F}"],
    ));
    for (base, other) in [("run.json", "serving.json"), ("serving.json", "run.json")] {
        let file = format!("tests/fuzz/{base}");
        let args = ["compare", &format!("tests/fuzz/{other}"), &file].map(String::from);
        targets.push(Target {
            kind: "report",
            file: PathBuf::from(file),
            args: args.to_vec(),
        });
    }
    targets
}

/// Every command's numeric flags, each on a command line that runs quickly with its default.
fn flag_targets() -> Vec<FlagTarget> {
    let t = |args: &[&'static str], flag| FlagTarget {
        args: args.to_vec(),
        flag,
    };
    let serve = ["run", "--serving", SCENARIO, WORK_LIMIT];
    let validate = [
        "validate",
        "--model",
        "workloads/models/llama-3-8b.json",
        "--ep",
        "1",
        VALIDATE_LIMIT,
    ];
    let sweep = ["sweep", "tests/fuzz/sweep.toml", "--out", "sweep-out", "-q"];
    let mut v = Vec::new();
    for flag in ["--batch", "--kv-len", "--tp", "--ep", "--seed"] {
        v.push(t(&["run"], flag));
    }
    v.push(t(&["run", "--phase", "prefill"], "--prompt-len"));
    for flag in ["--tp", "--ep", "--seed", "--pp"] {
        v.push(t(&serve, flag));
    }
    v.push(t(
        &["run", "--serving", SCENARIO, "--trace", "t.json"],
        "--trace-limit",
    ));
    for flag in [
        "--layers",
        "--scale",
        "--batch",
        "--kv-len",
        "--prompt-len",
        "--tp",
        "--seed",
    ] {
        v.push(t(&validate, flag));
    }
    for flag in ["-j", "--shard", "--emit-slurm", "--slurm-cpus"] {
        v.push(t(&sweep, flag));
    }
    v.push(t(
        &["compare", "tests/fuzz/run.json", "tests/fuzz/run.json"],
        "--top",
    ));
    v.push(t(&["accuracy"], "--worst"));
    v
}

fn read_tree(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) -> Result<(), FuzzError> {
    let full = root.join(dir);
    let mut entries: Vec<_> = std::fs::read_dir(&full)
        .map_err(FuzzError::io(&full))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        let rel = dir.join(p.file_name().unwrap_or_default());
        if p.is_dir() {
            read_tree(root, &rel, out)?;
        } else {
            let bytes = std::fs::read(&p).map_err(FuzzError::io(&p))?;
            out.push((rel, bytes));
        }
    }
    Ok(())
}

fn tree_text(tree: &[(PathBuf, Vec<u8>)], p: &Path) -> String {
    tree.iter()
        .find(|(q, _)| q == p)
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}
