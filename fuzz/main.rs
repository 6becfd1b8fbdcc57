//! `dyad-fuzz`: a mutation fuzzer for the `dyad` binary, on stable Rust and with no network.
//!
//! Each case takes one shipped input (an arch, a model config.json or TOML, a serving scenario,
//! a request or routing trace, a die or technology file, a sweep file, a cost CSV, a report for
//! `dyad compare`) or one numeric flag of a command, mutates it with a seeded generator, and runs
//! the `dyad` binary on it in a worker process with a time and an address-space bound. A case
//! fails on a signal (a crash), a timeout (a hang), an exit status outside {0, 1, 2} (3 is an
//! internal error: a caught panic or an output the report guard refused), a rejection whose
//! message names neither a line of the mutated file nor the mutated flag, or a report with a
//! figure that is not a number.
//!
//! ```text
//! cargo build --release
//! target/release/dyad-fuzz --seconds 240            # what CI runs
//! target/release/dyad-fuzz --cases 1000000 --out fuzz-out
//! ```
//!
//! Cases are numbered; case `i` of seed `s` is the same mutation on every machine, so a failure
//! is rerun with `--first i --cases 1`. Failing inputs are kept under `--out`.

mod cases;
mod mutate;
mod run;

/// Why the harness itself could not run (not a finding about dyad).
#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// No dyad binary where one was looked for.
    #[error("{}: no dyad binary (build it with `cargo build --release`, or pass --dyad)", .0.display())]
    NoBinary(PathBuf),
    /// A setup run of dyad (the reports `dyad compare` is fuzzed on) failed.
    #[error("dyad {command} failed: {status}")]
    Setup {
        /// Its arguments.
        command: String,
        /// How it ended.
        status: std::process::ExitStatus,
    },
    /// A worker thread panicked (a bug in the harness).
    #[error("a worker panicked")]
    Worker,
}

impl FuzzError {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> FuzzError + '_ {
        move |source| FuzzError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;

/// Mutation fuzzer for the dyad binary: every input kind and every numeric flag.
#[derive(Parser)]
#[command(name = "dyad-fuzz")]
struct Args {
    /// Cases to run (at most; `--seconds` may stop it first).
    #[arg(long, default_value_t = 1_000_000)]
    cases: u64,
    /// Stop starting new cases after this many seconds.
    #[arg(long)]
    seconds: Option<u64>,
    /// The first case number (rerun one failure with `--first N --cases 1`).
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Seed of the mutations.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker processes at once (default: one per core).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Seconds a case may run before it counts as a hang.
    #[arg(long, default_value_t = 20)]
    timeout: u64,
    /// Address-space limit of a case, in MiB.
    #[arg(long, default_value_t = 4096)]
    memory_mib: u64,
    /// The dyad binary (default: `dyad` beside this one).
    #[arg(long)]
    dyad: Option<PathBuf>,
    /// The repository root whose inputs are mutated (default: the current folder).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Folder for failing cases (their inputs and messages).
    #[arg(long, default_value = "fuzz-out")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match fuzz(&args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("dyad-fuzz: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the cases and prints the tally; returns the number of failures.
fn fuzz(args: &Args) -> Result<usize, FuzzError> {
    let dyad = match &args.dyad {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(FuzzError::io(Path::new("this binary")))?
            .with_file_name("dyad"),
    };
    if !dyad.is_file() {
        return Err(FuzzError::NoBinary(dyad));
    }
    let inputs = cases::Inputs::collect(&args.root, &dyad)?;
    std::fs::create_dir_all(&args.out).map_err(FuzzError::io(&args.out))?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let limits = run::Limits {
        timeout: Duration::from_secs(args.timeout),
        memory_mib: args.memory_mib,
    };
    let start = Instant::now();
    let deadline = args.seconds.map(|s| start + Duration::from_secs(s));
    let next = AtomicU64::new(args.first);
    let end = args.first.saturating_add(args.cases);
    let stop = AtomicBool::new(false);
    let tally = Mutex::new(Tally::default());
    let limits = &limits;
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..jobs)
            .map(|w| {
                let (inputs, dyad, next, stop, tally) = (&inputs, &dyad, &next, &stop, &tally);
                s.spawn(move || -> Result<(), FuzzError> {
                    let work = run::Workdir::new(&inputs.tree, w)?;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= end || stop.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            stop.store(true, Ordering::Relaxed);
                            return Ok(());
                        }
                        let case = inputs.case(args.seed, i);
                        let outcome = work.run(dyad, &case, limits)?;
                        let mut t = tally.lock().map_err(|_| FuzzError::Worker)?;
                        t.add(&case, &outcome);
                        if let Some(why) = outcome.failure() {
                            eprintln!("case {i} ({}): {why}\n  dyad {}", case.kind, case.shown());
                            work.keep(&args.out, i, &case, &outcome)?;
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().map_err(|_| FuzzError::Worker)?)
    })?;
    let t = tally.into_inner().map_err(|_| FuzzError::Worker)?;
    println!("{}", t.render(start.elapsed()));
    Ok(t.failed)
}

/// Cases and outcomes per input kind.
#[derive(Default)]
struct Tally {
    rows: std::collections::BTreeMap<&'static str, [u64; 4]>,
    failed: usize,
}

impl Tally {
    fn add(&mut self, case: &cases::Case, o: &run::Outcome) {
        let row = self.rows.entry(case.kind).or_default();
        row[0] += 1;
        match o.failure() {
            Some(_) => {
                row[3] += 1;
                self.failed += 1;
            }
            None if o.status == Some(0) || o.status == Some(1) => row[1] += 1,
            None => row[2] += 1,
        }
    }

    fn render(&self, took: Duration) -> String {
        let mut s = format!(
            "{:<16} {:>9} {:>9} {:>9} {:>7}\n",
            "input", "cases", "ran", "rejected", "failed"
        );
        let mut all = [0u64; 4];
        for (kind, r) in &self.rows {
            s += &format!(
                "{kind:<16} {:>9} {:>9} {:>9} {:>7}\n",
                r[0], r[1], r[2], r[3]
            );
            for (a, b) in all.iter_mut().zip(r) {
                *a += b;
            }
        }
        s += &format!(
            "{:<16} {:>9} {:>9} {:>9} {:>7}\n{} cases in {:.1} s ({:.1} per second)",
            "all",
            all[0],
            all[1],
            all[2],
            all[3],
            all[0],
            took.as_secs_f64(),
            all[0] as f64 / took.as_secs_f64().max(1e-9)
        );
        s
    }
}
