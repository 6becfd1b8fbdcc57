//! Sweeps end to end: resume after a kill, shards merged, key paths and ranges that are wrong,
//! values that reach the model, and the `sweep`, `merge` and `compare` commands.

use std::path::{Path, PathBuf};

use dyad::sweep::{self, Record, RunOptions, Sweep};

use crate::util::{Run, dyad, small_scenario};

/// A small Duplex scenario (few requests) and a sweep file over it, written into `dir`.
fn files(dir: &Path, sweep_body: &str) -> PathBuf {
    let scenario = small_scenario(
        "duplex",
        "seed = 3\npolicy = \"duplex\"",
        "mode = \"uniform\"",
    );
    std::fs::write(dir.join("base.toml"), scenario).unwrap();
    let p = dir.join("sweep.toml");
    std::fs::write(&p, format!("scenario = \"base.toml\"\n{sweep_body}")).unwrap();
    p
}

const GRID: &str = r#"objectives = ["max output_tokens_per_s", "min energy_per_output_token_j"]
[[axis]]
key = "arch.pim.modules"
values = "8..=32 x2"
[[axis]]
key = "arch.pim.bandwidth_multiplier"
values = [1, 4]
[[axis]]
key = "batching.max_batch"
values = "{2, 4}"
"#;

fn opts(jsonl: PathBuf) -> RunOptions {
    RunOptions {
        jsonl,
        jobs: Some(2),
        ..RunOptions::default()
    }
}

fn sorted(mut r: Vec<Record>) -> Vec<Record> {
    r.sort_by_key(|r| r.index);
    r
}

#[test]
fn grid_is_the_product_in_order_with_the_last_axis_fastest() {
    let d = tempfile::tempdir().unwrap();
    let s = Sweep::load(&files(d.path(), GRID)).unwrap();
    let g = s.grid();
    assert_eq!(g.len(), 3 * 2 * 2);
    let v = |i: usize| -> Vec<String> { g[i].values.iter().map(|(_, v)| v.to_string()).collect() };
    assert_eq!(v(0), ["8", "1", "2"]);
    assert_eq!(v(1), ["8", "1", "4"]);
    assert_eq!(v(2), ["8", "4", "2"]);
    assert_eq!(v(11), ["32", "4", "4"]);
}

#[test]
fn killed_and_resumed_equals_uninterrupted() {
    let d = tempfile::tempdir().unwrap();
    let s = Sweep::load(&files(d.path(), GRID)).unwrap();
    let full = d.path().join("full.jsonl");
    let sum = sweep::run(&s, &opts(full.clone())).unwrap();
    assert_eq!((sum.total, sum.ran, sum.failed), (12, 12, 0));
    let whole = sorted(sweep::read_records(&full).unwrap());
    assert_eq!(whole.len(), 12);
    assert!(whole.iter().all(|r| r.metrics.is_some()));

    // Killed after 5 points, with half of a sixth line written.
    let part = d.path().join("part.jsonl");
    let mut o = opts(part.clone());
    o.stop_after = Some(5);
    assert_eq!(sweep::run(&s, &o).unwrap().ran, 5);
    let mut text = std::fs::read_to_string(&part).unwrap();
    let line = serde_json::to_string(&whole[11]).unwrap();
    text.push_str(&line[..line.len() / 2]);
    std::fs::write(&part, text).unwrap();

    let mut o = opts(part.clone());
    o.resume = true;
    let sum = sweep::run(&s, &o).unwrap();
    assert_eq!((sum.kept, sum.ran), (5, 7), "nothing done is recomputed");
    assert_eq!(sorted(sweep::read_records(&part).unwrap()), whole);

    // Resuming a finished sweep runs nothing.
    assert_eq!(sweep::run(&s, &o).unwrap().ran, 0);
}

#[test]
fn resuming_another_sweeps_points_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let s = Sweep::load(&files(d.path(), GRID)).unwrap();
    let p = d.path().join("p.jsonl");
    let mut o = opts(p.clone());
    o.stop_after = Some(2);
    o.jobs = Some(1); // in order: points 0 and 1
    sweep::run(&s, &o).unwrap();
    // The same axes with other values: point 0 now means something else.
    let other = Sweep::load(&files(d.path(), &GRID.replace("8..=32 x2", "{4, 8, 16}"))).unwrap();
    let mut o = opts(p.clone());
    o.resume = true;
    let e = sweep::run(&other, &o).unwrap_err().to_string();
    assert!(
        e.contains("other values than this sweep file gives it"),
        "{e}"
    );
    // A shard's file is not another shard's.
    o.shard = Some((2, 2));
    let e = sweep::run(&s, &o).unwrap_err().to_string();
    assert!(e.contains("is not a point of this sweep shard"), "{e}");
}

#[test]
fn shards_merged_equal_the_unsharded_run() {
    let d = tempfile::tempdir().unwrap();
    let s = Sweep::load(&files(d.path(), GRID)).unwrap();
    let full = d.path().join("full.jsonl");
    sweep::run(&s, &opts(full.clone())).unwrap();
    let mut shards = Vec::new();
    for k in 1..=3 {
        let p = d.path().join(format!("shard-{k}.jsonl"));
        let mut o = opts(p.clone());
        o.shard = Some((k, 3));
        assert_eq!(sweep::run(&s, &o).unwrap().total, 4);
        shards.push(p);
    }
    let (merged, missing) = sweep::merge(&s, &shards).unwrap();
    assert!(missing.is_empty());
    assert_eq!(merged, sorted(sweep::read_records(&full).unwrap()));
    let (_, missing) = sweep::merge(&s, &shards[..2]).unwrap();
    assert_eq!(missing, [2, 5, 8, 11]);
}

#[test]
fn values_reach_the_model() {
    let d = tempfile::tempdir().unwrap();
    let body = r#"[[axis]]
key = "arch.pim.modules"
values = [8, 64]
[[axis]]
key = "requests.count"
values = [3, 5]
[[axis]]
key = "arch.xpu.memory.bandwidth"
values = "{2 TB/s}"
"#;
    let s = Sweep::load(&files(d.path(), body)).unwrap();
    let p = &s.grid()[3];
    let sc = s.scenario(p).unwrap();
    assert_eq!(sc.sys.pim.as_ref().unwrap().modules, 64);
    assert_eq!(sc.count, 5);
    assert_eq!(sc.sys.xpu.memory.bandwidth.value(), 2e12);
    // Inherited through `extends` (duplex.toml extends h100.toml) and left alone.
    assert_eq!(sc.sys.pim.as_ref().unwrap().stacks, 5);
    let r = sweep::runner::run_point(&s, p);
    assert_eq!(r.metrics.unwrap()["requests_completed"], 5.0);
    // Each point has its own seed, fixed by its values.
    assert_ne!(s.seed(&s.grid()[0]), s.seed(p));
    assert_eq!(s.seed(p), Sweep::load(&s.path).unwrap().seed(p));
}

#[test]
fn a_point_that_fails_is_recorded_and_the_rest_run() {
    let d = tempfile::tempdir().unwrap();
    let s = Sweep::load(&files(
        d.path(),
        "[[axis]]\nkey = \"tp\"\nvalues = [3, 4]\n",
    ))
    .unwrap();
    let p = d.path().join("p.jsonl");
    let sum = sweep::run(&s, &opts(p.clone())).unwrap();
    assert_eq!((sum.ran, sum.failed), (2, 1));
    let r = sorted(sweep::read_records(&p).unwrap());
    assert!(
        r[0].error.as_deref().unwrap().contains("tp"),
        "{:?}",
        r[0].error
    );
    assert!(r[1].metrics.is_some());
}

fn load_err(body: &str) -> String {
    let d = tempfile::tempdir().unwrap();
    let e = Sweep::load(&files(d.path(), body)).unwrap_err();
    let help = miette::Diagnostic::help(&e)
        .map(|h| h.to_string())
        .unwrap_or_default();
    format!("{e} | {help}")
}

#[test]
fn bad_keys_and_ranges_name_the_line_and_the_keys_nearby() {
    let e = load_err("[[axis]]\nkey = \"arch.pim.module\"\nvalues = [1]\n");
    assert!(
        e.contains("sweep.toml:3:7: unknown key `arch.pim.module`"),
        "{e}"
    );
    assert!(e.contains("arch.pim.modules"), "{e}");
    assert!(e.contains("arch.pim.bandwidth_multiplier"), "{e}");
    let e = load_err("[[axis]]\nkey = \"batching.max_bach\"\nvalues = [1]\n");
    assert!(
        e.contains("unknown key") && e.contains("batching.max_batch"),
        "{e}"
    );
    let e = load_err("[[axis]]\nkey = \"arch.pim\"\nvalues = [1]\n");
    assert!(e.contains("is a table"), "{e}");
    let e = load_err("[[axis]]\nkey = \"tp\"\nvalues = \"4..=1\"\n");
    assert!(
        e.contains("sweep.toml:4:10:") && e.contains("empty range"),
        "{e}"
    );
    let e = load_err("[[axis]]\nkey = \"tp\"\nvalues = \"1..=8 +3\"\n");
    assert!(e.contains("never reaches the end 8"), "{e}");
    let e =
        load_err("[[axis]]\nkey = \"arch.xpu.memory.bandwidth\"\nvalues = \"1 TB/s..=2 GB/s\"\n");
    assert!(e.contains("mixed units"), "{e}");
    let e = load_err("objectives = [\"max speed\"]\n[[axis]]\nkey = \"tp\"\nvalues = [4]\n");
    assert!(
        e.contains("sweep.toml:2:15:") && e.contains("output_tokens_per_s"),
        "{e}"
    );
    let e = load_err("constraints = [\"tp < foo\"]\n[[axis]]\nkey = \"tp\"\nvalues = [4]\n");
    assert!(e.contains("`foo` is neither"), "{e}");
    let e = load_err(
        "combine = \"zip\"\n[[axis]]\nkey = \"tp\"\nvalues = [1, 4]\n[[axis]]\nkey = \"seed\"\nvalues = [1]\n",
    );
    assert!(e.contains("zip needs axes of one length"), "{e}");
}

#[test]
fn constraints_drop_points_and_zip_pairs_axes() {
    let d = tempfile::tempdir().unwrap();
    let body = "combine = \"zip\"\nconstraints = [\"batching.max_batch >= 4\"]\n[[axis]]\nkey = \"batching.max_batch\"\nvalues = \"1..=8 x2\"\n[[axis]]\nkey = \"arrivals.closed\"\nvalues = [1, 2, 4, 8]\n";
    let s = Sweep::load(&files(d.path(), body)).unwrap();
    let pts = s.points();
    // Ids are dense over the points that run; the grid index is kept beside them.
    let idx: Vec<(usize, usize)> = pts.iter().map(|p| (p.index, p.grid)).collect();
    assert_eq!(idx, [(0, 2), (1, 3)]);
    assert_eq!(pts[1].values[1].1, toml::Value::Integer(8));
}

#[test]
fn cli_sweep_merge_and_compare() {
    let d = tempfile::tempdir().unwrap();
    let f = files(d.path(), GRID);
    let f = f.to_str().unwrap();
    let out = d.path().join("out");
    let o = out.to_str().unwrap();
    let Run {
        status: st,
        stdout,
        stderr,
    } = dyad(&["sweep", f, "--out", o, "--quiet"]);
    assert_eq!(st, 0, "{stderr}");
    assert!(stdout.starts_with("Pareto front"), "{stdout}");
    for name in [
        "points.jsonl",
        "points.csv",
        "pareto.md",
        "pareto.svg",
        "roofline.svg",
        "layers.svg",
    ] {
        assert!(out.join(name).exists(), "{name}");
    }
    let csv = std::fs::read_to_string(out.join("points.csv")).unwrap();
    assert_eq!(csv.lines().count(), 13);
    assert!(csv.starts_with("index,grid,seed,arch.pim.modules,arch.pim.bandwidth_multiplier,batching.max_batch,feasible,pareto,"));

    // Two shards through the CLI, merged, give the same CSV.
    let sh = d.path().join("sh");
    let s = sh.to_str().unwrap();
    for k in ["1/2", "2/2"] {
        assert_eq!(
            dyad(&["sweep", f, "--out", s, "--shard", k, "--quiet"]).status,
            0
        );
    }
    let a = format!("{s}/shard-1-of-2.jsonl");
    let b = format!("{s}/shard-2-of-2.jsonl");
    let m = d.path().join("m");
    let Run {
        status: st, stderr, ..
    } = dyad(&["merge", f, &a, &b, "--out", m.to_str().unwrap()]);
    assert_eq!(st, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(m.join("points.csv")).unwrap(), csv);
    let Run {
        status: st, stderr, ..
    } = dyad(&["merge", f, &a, "--out", m.to_str().unwrap()]);
    assert_eq!(st, 2, "{stderr}");
    assert!(stderr.contains("6 points are in no shard"), "{stderr}");

    let Run { status: st, .. } = dyad(&["sweep", f, "--out", s, "--emit-slurm", "4"]);
    assert_eq!(st, 0);
    let slurm = std::fs::read_to_string(sh.join("sweep.slurm")).unwrap();
    assert!(slurm.contains("#SBATCH --array=1-4"));
    assert!(slurm.contains("--shard \"${SLURM_ARRAY_TASK_ID}/4\" --resume"));

    // Points 0 and 11 differ in every axis.
    let jl = out.join("points.jsonl");
    let Run {
        status: st,
        stdout: cmp,
        stderr,
    } = dyad(&[
        "compare",
        &format!("{}#0", jl.display()),
        &format!("{}#11", jl.display()),
    ]);
    assert_eq!(st, 0, "{stderr}");
    assert!(
        cmp.contains("| values.arch.pim.modules | 8 | 32 | +300% |"),
        "{cmp}"
    );
    assert!(
        cmp.contains("| values.batching.max_batch | 2 | 4 | +100% |"),
        "{cmp}"
    );

    // Bad input ends with status 2 and names the place.
    std::fs::write(
        d.path().join("bad.toml"),
        "scenario = \"base.toml\"\n[[axis]]\nkey = \"tpp\"\nvalues = [1]\n",
    )
    .unwrap();
    let Run {
        status: st, stderr, ..
    } = dyad(&[
        "sweep",
        d.path().join("bad.toml").to_str().unwrap(),
        "--out",
        o,
    ]);
    assert_eq!(st, 2);
    assert!(
        stderr.contains("bad.toml:3:7") && stderr.contains("unknown key `tpp`"),
        "{stderr}"
    );
    let Run {
        status: st, stderr, ..
    } = dyad(&["sweep", f, "--shard", "3/2"]);
    assert_eq!(st, 2, "{stderr}");
    let Run {
        status: st, stderr, ..
    } = dyad(&["compare", f, "nope.json"]);
    assert_eq!(st, 2, "{stderr}");
}

/// Issue 18: axes whose product reaches 10^10 (and one that wraps a `u64`) are refused when the
/// sweep file is read, at the axis that passes the cap; a grid of exactly the cap loads.
#[test]
fn a_grid_past_the_point_cap_is_refused_at_the_axis_that_passes_it() {
    let axis = |key: &str, n: usize| format!("[[axis]]\nkey = \"{key}\"\nvalues = \"1..={n}\"\n");
    let cap = sweep::file::MAX_POINTS;
    let e = load_err(&(axis("seed", 100_000) + &axis("requests.count", 100_000)));
    assert!(e.contains("sweep.toml:7:10:"), "{e}");
    assert!(e.contains(&format!("passes {cap} points")), "{e}");
    assert!(e.contains("combine = \"zip\""), "{e}");
    // 100,000^4 = 10^20 wraps a u64 (about 1.8·10^19): refused at the second axis already
    // (line 7: the sweep file starts with its `scenario` line).
    let four = [
        "seed",
        "requests.count",
        "batching.max_batch",
        "arrivals.closed",
    ]
    .map(|k| axis(k, 100_000))
    .concat();
    assert!(load_err(&four).contains("sweep.toml:7:10:"));
    // 1000 × 1000 is the cap itself.
    let d = tempfile::tempdir().unwrap();
    let body = axis("seed", 1000) + &axis("requests.count", 1000);
    assert_eq!(
        Sweep::load(&files(d.path(), &body)).unwrap().grid().len(),
        cap
    );
    // Zipped, two axes of 100,000 are 100,000 points.
    let zipped = format!(
        "combine = \"zip\"\n{}{}",
        axis("seed", 100_000),
        axis("requests.count", 100_000)
    );
    assert!(Sweep::load(&files(d.path(), &zipped)).is_ok());
}

/// Issue 18: `-j 4294967296` started threads without end; the flag is bounded, and the library
/// starts no more threads than points whatever it is asked for.
#[test]
fn jobs_are_bounded() {
    let d = tempfile::tempdir().unwrap();
    let f = files(d.path(), GRID);
    let f = f.to_str().unwrap();
    let out = d.path().join("out");
    for j in ["4294967296", "1025", "0"] {
        let r = dyad(&["sweep", f, "--out", out.to_str().unwrap(), "-j", j]);
        crate::util::expect_input_error(&r, &["--jobs", "1..=1024"]);
        assert!(!out.exists(), "-j {j} ran");
    }
    let help = dyad(&["sweep", "--help"]).stdout;
    assert!(
        help.contains(&format!("1 to {}", sweep::MAX_JOBS)),
        "{help}"
    );
    let mut o = opts(d.path().join("p.jsonl"));
    o.jobs = Some(usize::MAX);
    let sum = sweep::run(&Sweep::load(&PathBuf::from(f)).unwrap(), &o).unwrap();
    assert_eq!((sum.ran, sum.failed), (12, 0));
}
