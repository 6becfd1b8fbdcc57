//! Sweeps end to end: resume after a kill, shards merged, key paths and ranges that are wrong,
//! values that reach the model, and the `sweep`, `merge` and `compare` commands.

use std::path::{Path, PathBuf};

use dyad::sweep::{self, Record, RunOptions, Sweep};

use crate::util::{Run, dyad, dyad_in, small_scenario};

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

    emit_slurm_scripts_name_absolute_paths(f, &sh);

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

/// `--emit-slurm 4` from another working folder, with relative paths: every path in the
/// scripts is absolute, the array counts tasks 0 to 3, and each file ends with a newline.
fn emit_slurm_scripts_name_absolute_paths(sweep_file: &str, out: &Path) {
    let cwd = Path::new(sweep_file).parent().unwrap();
    let Run {
        status: st, stderr, ..
    } = dyad_in(
        cwd,
        &[
            "sweep",
            "sweep.toml",
            "--out",
            "rel-out",
            "--emit-slurm",
            "4",
            "--slurm-cpus",
            "3",
            "--sbatch=--partition=batch",
        ],
        None,
    );
    assert_eq!(st, 0, "{stderr}");
    let o = std::fs::canonicalize(cwd.join("rel-out")).unwrap();
    let f = std::fs::canonicalize(sweep_file).unwrap();
    let read = |n: &str| std::fs::read_to_string(o.join(n)).unwrap();
    let (array, merge, submit) = (read("sweep.slurm"), read("merge.slurm"), read("submit.sh"));
    assert!(array.contains("#SBATCH --array=0-3\n"), "{array}");
    assert!(array.contains("#SBATCH --cpus-per-task=3\n"), "{array}");
    assert!(array.contains("#SBATCH --partition=batch\n"), "{array}");
    assert!(array.contains(&format!(
        "#SBATCH --output={}/logs/shard-%A_%a.log\n",
        o.display()
    )));
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_dyad")).unwrap();
    assert!(
        array.contains(&format!(
            "exec '{}' sweep '{}' --out '{}' --shard \"$shard/4\" --resume",
            exe.display(),
            f.display(),
            o.display()
        )),
        "{array}"
    );
    assert!(
        merge.contains(&format!("merge '{}' --out", f.display())),
        "{merge}"
    );
    assert!(merge.contains("/shard-{1..4}-of-4.jsonl\n"), "{merge}");
    assert!(
        submit.contains("--dependency=\"afterok:$array\""),
        "{submit}"
    );
    for t in [&array, &merge, &submit] {
        assert!(t.ends_with('\n'));
    }
    assert!(
        o.join("logs").is_dir(),
        "the tasks' log folder exists before they start"
    );
    // The running binary, unless another is named.
    let Run { status: st, .. } = dyad(&[
        "sweep",
        sweep_file,
        "--out",
        out.to_str().unwrap(),
        "--emit-slurm",
        "2",
        "--slurm-dyad",
        "/opt/dyad/bin/dyad",
    ]);
    assert_eq!(st, 0);
    let a = std::fs::read_to_string(out.join("sweep.slurm")).unwrap();
    assert!(a.contains("exec '/opt/dyad/bin/dyad' sweep"), "{a}");
    assert!(a.contains("#SBATCH --array=0-1\n"), "{a}");
}

#[test]
fn status_counts_points_per_shard_and_in_all() {
    let d = tempfile::tempdir().unwrap();
    let s = Sweep::load(&files(d.path(), GRID)).unwrap();
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // Shard 1 of 3 done (4 points), shard 2 stopped after 1 with a line cut short, shard 3
    // not started.
    let run = |k: usize, stop: Option<usize>| {
        let mut o = opts(out.join(format!("shard-{k}-of-3.jsonl")));
        o.shard = Some((k, 3));
        o.stop_after = stop;
        o.jobs = Some(1);
        sweep::run(&s, &o).unwrap();
    };
    run(1, None);
    run(2, Some(1));
    let p2 = out.join("shard-2-of-3.jsonl");
    let mut text = std::fs::read_to_string(&p2).unwrap();
    text.push_str("{\"index\": 4, \"gri");
    std::fs::write(&p2, text).unwrap();
    let st = sweep::status::status(&out, Some(&s)).unwrap();
    let per: Vec<String> = st
        .files
        .iter()
        .map(|f| format!("{:?} {} {:?}", f.shard, f.done, f.total))
        .collect();
    assert_eq!(per, ["Some((1, 3)) 4 Some(4)", "Some((2, 3)) 1 Some(4)"]);
    assert_eq!(st.not_started, [(3, 3)]);
    assert_eq!((st.done, st.total), (5, Some(12)));

    let f = d.path().join("sweep.toml");
    let o = out.to_str().unwrap();
    let Run {
        status: code,
        stdout,
        stderr,
    } = dyad(&["sweep", "--status", o, f.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "shard 1/3: 4 of 4 points done\nshard 2/3: 1 of 4 points done\n\
         shard 3/3: not started (no shard-3-of-3.jsonl)\nall: 5 of 12 points done\n"
    );
    // Without the sweep file: what is done, not out of how many.
    let Run { stdout, .. } = dyad(&["sweep", "--status", o]);
    assert!(stdout.ends_with("all: 5 points done\n"), "{stdout}");
    let Run {
        status: code,
        stderr,
        ..
    } = dyad(&["sweep", "--status", d.path().join("nope").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("nope: cannot read"), "{stderr}");
}

/// A model file's field, read from the shipped JSON.
fn model_field(name: &str, key: &str) -> serde_json::Value {
    let p = crate::util::root(&format!("workloads/models/{name}.json"));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    v[key].clone()
}

#[test]
fn a_model_axis_runs_each_model_named() {
    let d = tempfile::tempdir().unwrap();
    // A file relative to the sweep file, beside two built-in names.
    let mut mine: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(crate::util::root("workloads/models/llama-3-8b.json")).unwrap(),
    )
    .unwrap();
    mine["num_hidden_layers"] = 4.into();
    std::fs::write(d.path().join("my-llama.json"), mine.to_string()).unwrap();
    let body = "[[axis]]\nkey = \"model\"\nvalues = [\"llama-3-8b\", \"mixtral-8x7b\", \"qwen3-30b-a3b\", \"my-llama.json\"]\n";
    let s = Sweep::load(&files(d.path(), body)).unwrap();
    let pts = s.points();
    assert_eq!(pts.len(), 4);
    for (p, name) in pts
        .iter()
        .zip(["llama-3-8b", "mixtral-8x7b", "qwen3-30b-a3b"])
    {
        let m = s.scenario(p).unwrap().model;
        assert_eq!(m.name, name);
        let layers = model_field(name, "num_hidden_layers").as_u64().unwrap();
        assert_eq!(m.plans.len() as u64, layers, "{name}");
        let experts = model_field(name, "num_local_experts")
            .as_u64()
            .or_else(|| model_field(name, "num_experts").as_u64());
        assert_eq!(m.moe.map(|e| e.experts), experts, "{name}");
    }
    let m = s.scenario(&pts[3]).unwrap().model;
    assert_eq!((m.name.as_str(), m.plans.len()), ("my-llama", 4));
    // Every point runs; the seed follows the value as written, not where the file lies.
    let out = d.path().join("p.jsonl");
    let sum = sweep::run(&s, &opts(out.clone())).unwrap();
    assert_eq!((sum.ran, sum.failed), (4, 0));
    let r = sorted(sweep::read_records(&out).unwrap());
    assert_eq!(r[2].values["model"], "qwen3-30b-a3b");
    // A dense 8B model decodes faster than Mixtral's 47B on the same devices.
    let tbt = |i: usize| r[i].metrics.as_ref().unwrap()["tbt_s.p50"];
    assert!(tbt(0) < tbt(1), "{} {}", tbt(0), tbt(1));
}

#[test]
fn an_axis_over_a_model_key_sets_it_in_the_model_file() {
    let d = tempfile::tempdir().unwrap();
    let body = "[[axis]]\nkey = \"model.num_hidden_layers\"\nvalues = [16, 32]\n";
    let s = Sweep::load(&files(d.path(), body)).unwrap();
    let pts = s.points();
    let layers: Vec<usize> = pts
        .iter()
        .map(|p| s.scenario(p).unwrap().model.plans.len())
        .collect();
    assert_eq!(layers, [16, 32]);
    let out = d.path().join("p.jsonl");
    sweep::run(&s, &opts(out.clone())).unwrap();
    let r = sorted(sweep::read_records(&out).unwrap());
    // Half the layers: a decode step a little over half as long (the LM head and the
    // embedding do not shrink).
    let t: Vec<f64> = r
        .iter()
        .map(|r| r.metrics.as_ref().unwrap()["tbt_s.p50"])
        .collect();
    let ratio = t[0] / t[1];
    assert!(ratio > 0.5 && ratio < 0.6, "{ratio}");

    // With a model axis, the key is set in each model.
    let body = "[[axis]]\nkey = \"model\"\nvalues = \"{llama-3-8b, qwen3-30b-a3b}\"\n[[axis]]\nkey = \"model.num_hidden_layers\"\nvalues = [2]\n";
    let s = Sweep::load(&files(d.path(), body)).unwrap();
    for p in s.points() {
        assert_eq!(s.scenario(&p).unwrap().model.plans.len(), 2);
    }
}

#[test]
fn bad_model_axes_name_the_line() {
    let e = load_err("[[axis]]\nkey = \"model.num_hidden_layer\"\nvalues = [1]\n");
    assert!(
        e.contains("sweep.toml:3:7: unknown key `model.num_hidden_layer`")
            && e.contains("mixtral-8x7b.json does not set it"),
        "{e}"
    );
    assert!(e.contains("model.num_hidden_layers"), "{e}");
    let e = load_err("[[axis]]\nkey = \"model\"\nvalues = [\"llama-9\"]\n");
    assert!(
        e.contains("sweep.toml:4:10:")
            && e.contains(
                "\"llama-9\" is neither a file (relative to the sweep file) nor a built-in model"
            )
            && e.contains("built-in models: ")
            && e.contains("qwen3-30b-a3b"),
        "{e}"
    );
    let e = load_err("[[axis]]\nkey = \"model\"\nvalues = [3]\n");
    assert!(e.contains("`model`: 3 is not a model file"), "{e}");
    // Llama is dense: it has no experts to sweep.
    let e = load_err(
        "[[axis]]\nkey = \"model\"\nvalues = [\"mixtral-8x7b\", \"llama-3-8b\"]\n[[axis]]\nkey = \"model.num_local_experts\"\nvalues = [4, 8]\n",
    );
    assert!(
        e.contains("sweep.toml:6:7:") && e.contains("llama-3-8b.json does not set it"),
        "{e}"
    );
    let e = load_err("[[axis]]\nkey = \"arch\"\nvalues = [\"h100\"]\n");
    assert!(e.contains("names a file"), "{e}");
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
