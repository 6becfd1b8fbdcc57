//! Pipeline parallelism in the serving engine (`[pipeline]`, `--serving F --pp S`): one stage is
//! the plain engine, an iteration takes the forward schedule's closed form, micro-batches
//! conserve the work, and bad input names its key or flag.

use dyad::config::{ScenarioOverrides, load_scenario_overridden};
use dyad::model::{Batch, Parallelism, PrefillChunk};
use dyad::sim::iteration::{Coster, IterCost};
use dyad::sim::serving::pipeline::Pipelining;
use dyad::sim::serving::{IterationRecord, Observer, RequestLife, Scenario, simulate};
use dyad::sim::workload::Arrivals;
use dyad::units::{BytesPerSecond, Seconds};

use crate::serving::scenario;
use crate::util::{dyad, dyad_in, dyad_with, expect_input_error, small_scenario};

/// What a run's iterations were: time, op FLOPs, and micro-batch spans per stage.
#[derive(Default)]
struct Seen {
    times: Vec<f64>,
    flops: Vec<f64>,
    stage_spans: Vec<usize>,
}

impl Observer for Seen {
    fn iteration(&mut self, it: &IterationRecord<'_>) {
        self.times.push(it.cost.time);
        self.flops.push(it.cost.spans.iter().map(|s| s.flops).sum());
        self.stage_spans.push(it.stages.len());
    }
    fn request(&mut self, _: &RequestLife) {}
}

fn piped(mut s: Scenario, stages: u64, micro_batches: u64) -> Scenario {
    s.pipeline = Some(Pipelining {
        stages,
        micro_batches,
    });
    s
}

/// Llama-3-8B (32 layers) at tp 1, `count` requests of (128, 6) all at once.
fn lockstep(count: u64) -> Scenario {
    let closed = Arrivals::Closed { concurrency: count };
    scenario("llama-3-8b", 1, 128, 6, closed, count, count)
}

#[test]
fn one_stage_of_one_micro_batch_is_the_plain_engine() {
    let zipf = dyad::sim::routing::RoutingSpec::Zipf { s: 1.2 };
    let moe = Scenario {
        routing: zipf,
        ..scenario(
            "mixtral-8x7b",
            2,
            300,
            20,
            Arrivals::Poisson { rate: 20.0 },
            60,
            16,
        )
    };
    for s in [lockstep(8), moe] {
        let plain = simulate(&s, None).unwrap();
        let mut one = simulate(&piped(s.clone(), 1, 1), None).unwrap();
        let p = one.pipeline.take().unwrap();
        assert_eq!(format!("{one:?}"), format!("{plain:?}"));
        assert_eq!((p.stages, p.iterations), (1, plain.iterations));
        assert_eq!(p.bubble(), 0.0);
    }
    // Through the command: the report's figures are the plain run's, and a scenario without
    // `[pipeline]` has no `pipeline` part.
    let path = "workloads/serving/open-poisson.toml";
    let json = |extra: &[&str]| {
        let r = dyad(&[&["run", "--serving", path, "--format", "json"], extra].concat());
        assert_eq!(r.status, 0, "{}", r.stderr);
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()
    };
    let (plain, one) = (json(&[]), json(&["--pp", "1", "--micro-batches", "1"]));
    for key in ["serving", "timeline"] {
        assert_eq!(plain[key], one[key], "{key}");
    }
    assert!(plain.get("pipeline").is_none());
    assert_eq!(one["pipeline"]["stages"], 1);
    assert_eq!(
        one["inputs"]["overridden"],
        serde_json::json!(["pipeline.stages", "pipeline.micro_batches"])
    );
}

/// Stage `i` of 4 of Llama-3-8B priced alone on micro-batch `b`.
fn stage_time(s: &Scenario, i: u32, b: &Batch) -> f64 {
    let m = dyad::model::ModelSpec {
        plans: s.model.plans[(8 * i) as usize..(8 * i + 8) as usize].to_vec(),
        ..s.model.clone()
    };
    let par = Parallelism { tp: 1, ep: 1 };
    let mut c = Coster::new(&s.sys, &m, par, s.precision, s.timing, s.policy).stage(i == 0, i == 3);
    let cost: IterCost = c.iteration(b, &[], false).unwrap();
    cost.time
}

#[test]
fn an_iteration_of_equal_micro_batches_takes_the_forward_schedules_closed_form() {
    // 8 requests in lockstep as 4 micro-batches of 2 through 4 stages of 8 layers: the prefill
    // iteration (2 prompts of 128 per micro-batch), then decode at KV 129, 130, … Every
    // micro-batch of an iteration is alike, so with stage times t_s and a send c per boundary
    // the makespan is Σ t_s + (M − 1)·max t_s + (S − 1)·c (every path of the schedule crosses
    // each boundary once); equal stages t give (M + S − 1)·t.
    let (stages, m) = (4u64, 4u64);
    for free in [true, false] {
        let mut s = piped(lockstep(8), stages, m);
        if free {
            s.sys.node.link.bandwidth = BytesPerSecond(f64::INFINITY);
            s.sys.node.link.latency = Seconds(0.0);
        }
        let mut seen = Seen::default();
        let r = simulate(&s, Some(&mut seen)).unwrap();
        let link = &s.sys.node.link;
        let send = |tokens: u64| match free {
            true => 0.0,
            false => tokens as f64 * 4096.0 * 2.0 / link.bandwidth.value() + link.latency.value(),
        };
        assert_eq!(seen.times.len(), 6, "one prefill and 5 decode iterations");
        let mut busy = 0.0;
        for (k, &t) in seen.times.iter().enumerate() {
            let b = match k {
                0 => Batch {
                    decode_kv: vec![],
                    prefill: vec![
                        PrefillChunk {
                            q_len: 128,
                            ctx: 0,
                            last: true
                        };
                        2
                    ],
                },
                k => Batch::decode(2, 128 + k as u64),
            };
            let ts: Vec<f64> = (0..4).map(|i| stage_time(&s, i, &b)).collect();
            let max = ts.iter().cloned().fold(0.0, f64::max);
            let want = ts.iter().sum::<f64>() + (m - 1) as f64 * max + 3.0 * send(b.tokens());
            assert!(
                (t / want - 1.0).abs() < 1e-12,
                "iteration {k}: {t} against {want}"
            );
            assert_eq!(seen.stage_spans[k], 16);
            busy += m as f64 * ts.iter().sum::<f64>();
        }
        let p = r.pipeline.unwrap();
        let total: f64 = seen.times.iter().sum();
        assert!((p.span / total - 1.0).abs() < 1e-12);
        let bubble = 1.0 - busy / (stages as f64 * total);
        assert!(
            (p.bubble() - bubble).abs() < 1e-12,
            "{} {bubble}",
            p.bubble()
        );
        // Unequal ends (embedding, LM head) only add idle time: the bubble is at least
        // (S − 1)/(M + S − 1), equal stages' share.
        assert!(p.bubble() >= 3.0 / 7.0 - 1e-12, "{}", p.bubble());
        assert_eq!(p.micro_batches_run, 6 * m);
        // 8 prompts of 128 and 5 decode steps of 8 tokens, each across 3 boundaries.
        assert_eq!(
            p.activation_bytes,
            (8 * 128 + 5 * 8) as f64 * 4096.0 * 2.0 * 3.0
        );
    }
}

#[test]
fn micro_batches_conserve_tokens_flops_and_mac_energy() {
    // A closed loop schedules by its queues alone, so the pipelined run has the plain run's
    // batches; split into micro-batches, each iteration's op FLOPs and MAC energy are the same.
    let base = scenario(
        "llama-3-8b",
        1,
        700,
        9,
        Arrivals::Closed { concurrency: 6 },
        12,
        6,
    );
    let base = Scenario {
        max_tokens: 1024,
        ..base
    };
    let (mut a, mut b) = (Seen::default(), Seen::default());
    let plain = simulate(&base, Some(&mut a)).unwrap();
    let piped = simulate(&piped(base.clone(), 2, 3), Some(&mut b)).unwrap();
    assert_eq!(plain.output_tokens, piped.output_tokens);
    assert_eq!(plain.prompt_tokens, piped.prompt_tokens);
    assert_eq!(plain.iterations, piped.iterations);
    for (x, y) in a.flops.iter().zip(&b.flops) {
        assert!((x / y - 1.0).abs() < 1e-9, "{x} {y}");
    }
    let mac = |r: &dyad::sim::serving::ServingResult| r.energy_parts.mac;
    assert!((mac(&plain) / mac(&piped) - 1.0).abs() < 1e-9);
    // The sends' energy is the link's: bytes × 8 × J/bit, one copy per boundary.
    let p = piped.pipeline.unwrap();
    let j = p.activation_bytes * 8.0 * base.sys.node.link.energy.value();
    assert!((piped.energy_parts.link / j - 1.0).abs() < 1e-9);
    // Every iteration token crossed the one boundary: tokens × hidden × 2 bytes.
    let tokens = (plain.prompt_tokens + plain.output_tokens - 12) as f64;
    assert!((p.activation_bytes / (tokens * 4096.0 * 2.0) - 1.0).abs() < 1e-12);
}

#[test]
fn a_stage_holds_its_layers_and_so_a_pipeline_caches_more() {
    // Llama-3-8B over 2 stages of tp 1 against one device: each stage's weights are about
    // half, its KV per token exactly half, so the cache holds more than twice the tokens.
    let one = simulate(&lockstep(4), None).unwrap().kv_capacity_tokens;
    let two = simulate(&piped(lockstep(4), 2, 1), None)
        .unwrap()
        .kv_capacity_tokens;
    assert!(two > 2 * one, "{two} {one}");
}

#[test]
fn the_engine_refuses_a_pipeline_it_cannot_run_and_a_stage_without_kv_room() {
    // Built in code, past the loader's checks: 3 stages of 32 layers, or no micro-batch.
    for (stages, m) in [(3, 1), (0, 1), (2, 0)] {
        let e = simulate(&piped(lockstep(4), stages, m), None).unwrap_err();
        assert!(
            matches!(e, dyad::sim::serving::ServingError::PipelineLayout { .. }),
            "{e}"
        );
    }
    // Llama-2-70B over 2 stages of one H100: 40 layers' weights (~69 GB) leave no KV room in
    // 80% of 80 GB; the error gives the stage's weights, not the whole model's (138 GB).
    let closed = Arrivals::Closed { concurrency: 4 };
    let s = Scenario {
        memory_utilization: 0.8,
        ..scenario("llama-2-70b", 1, 128, 4, closed, 4, 4)
    };
    let e = simulate(&piped(s, 2, 1), None).unwrap_err().to_string();
    assert!(
        e.contains("leave no room for a KV cache") && e.contains("(69."),
        "{e}"
    );
}

/// A small Mixtral scenario (32 layers, tp 4 on 8 H100s) with `extra` top-level lines and
/// `tail` tables.
fn file(extra: &str, tail: &str) -> String {
    format!(
        "{}{tail}",
        small_scenario("h100", extra, "mode = \"uniform\"")
    )
}

const SPECULATIVE: &str =
    "[speculative]\nmode = \"early_exit\"\nexit_layer = 8\ntokens = 2\nacceptance = 0.8\n";

#[test]
fn pipeline_errors_name_their_key_or_flag() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.toml");
    let table = |s: u64, m: u64| format!("[pipeline]\nstages = {s}\nmicro_batches = {m}\n");
    let flags = |pp, micro_batches| ScenarioOverrides {
        pp,
        micro_batches,
        ..ScenarioOverrides::default()
    };
    let none = flags(None, None);
    let err = |text: String, o: &ScenarioOverrides| {
        std::fs::write(&p, text).unwrap();
        let e = load_scenario_overridden(&p, o).unwrap_err();
        assert_eq!(e.path(), p);
        (e.to_string(), e.line_col())
    };
    for (text, needle) in [
        (
            file("", &table(0, 1)),
            "`pipeline.stages` = 0: must be at least 1",
        ),
        (
            file("", &table(3, 1)),
            "`pipeline.stages` = 3: must divide the model's 32 layers",
        ),
        (
            file("", &table(4, 1)),
            "4 stages × tp 4 = 16 devices, more than the arch's 8",
        ),
        (
            file("", &table(2, 0)),
            "`pipeline.micro_batches` = 0: must be at least 1",
        ),
        (file("", &table(2, 5)), "the 4 sequences an iteration holds"),
        (file("ep = 1", "[pipeline]\nstages = 2\n"), "micro_batches"),
        (
            file("", &format!("{}{}", SPECULATIVE, table(2, 1))),
            "speculative decoding",
        ),
    ] {
        let (e, at) = err(text, &none);
        assert!(e.contains(needle), "{e}\nwants {needle}");
        assert!(at.is_some(), "{e}: no line");
    }
    let (e, at) = err(file("", ""), &flags(Some(3), None));
    assert!(e.contains("--pp 3: must divide"), "{e}");
    assert!(at.is_none());
    let (e, _) = err(file("", &table(2, 2)), &flags(None, Some(9)));
    assert!(e.contains("--micro-batches 9: more micro-batches"), "{e}");
    let (e, _) = err(file("", ""), &flags(None, Some(2)));
    assert!(
        e.contains("--micro-batches 2: needs --pp or a [pipeline] table"),
        "{e}"
    );
    let replicas = ScenarioOverrides {
        replicas: Some(2),
        ..flags(Some(2), None)
    };
    let (e, _) = err(file("", ""), &replicas);
    assert!(
        e.contains("--pp 2") && e.contains("replicas behind a router"),
        "{e}"
    );
    let ep = ScenarioOverrides {
        tp: Some(1),
        ep: Some(2),
        ..flags(Some(2), None)
    };
    let (e, _) = err(file("", ""), &ep);
    assert!(
        e.contains("--pp 2") && e.contains("expert parallelism (ep = 2)"),
        "{e}"
    );
    let disagg = "[disaggregation]\ndecode_arch = \"h100\"\ndecode_tp = 4\n";
    let (e, at) = err(file("", &format!("{disagg}{}", table(2, 1))), &none);
    assert!(
        e.contains("`pipeline.stages` = 2") && e.contains("disaggregation"),
        "{e}"
    );
    assert!(at.is_some());
    // A flag gives the stages, the table the micro-batches.
    std::fs::write(&p, file("", &table(4, 3))).unwrap();
    let s = load_scenario_overridden(&p, &flags(Some(2), None)).unwrap();
    let want = Pipelining {
        stages: 2,
        micro_batches: 3,
    };
    assert_eq!(s.pipeline, Some(want));
    assert_eq!(s.devices(), 8);
}

#[test]
fn the_command_reports_stages_and_traces_their_micro_batches() {
    let text = file("", "[pipeline]\nstages = 2\nmicro_batches = 2\n");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), &text).unwrap();
    let args: Vec<&str> = "run --serving s.toml --trace t.json --format json"
        .split(' ')
        .collect();
    let r = dyad_in(dir.path(), &args, None);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let trace = std::fs::read_to_string(dir.path().join("t.json")).unwrap();
    let trace: serde_json::Value = serde_json::from_str(&trace).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let named = |pid: u64| {
        events.iter().any(|e| {
            e["name"] == "process_name"
                && e["pid"] == pid
                && e["args"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("stage {}", pid - 1))
        })
    };
    assert!(named(1) && named(2));
    let slices = |pid: u64| {
        events
            .iter()
            .filter(|e| e["pid"] == pid && e["tid"] == 5 && e["ph"] == "X")
            .count() as f64
    };
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let p = &v["pipeline"];
    assert_eq!(
        (p["stages"].as_u64(), p["micro_batches"].as_u64()),
        (Some(2), Some(2))
    );
    let b = p["bubble_share"].as_f64().unwrap();
    assert!(b > 0.0 && b < 1.0, "{b}");
    assert_eq!(p["per_stage"][1]["first_layer"], 16);
    assert_eq!(v["inputs"]["devices"], 8);
    // One slice per micro-batch run on each stage's track.
    let run =
        p["micro_batches_mean"].as_f64().unwrap() * v["serving"]["iterations"].as_f64().unwrap();
    assert!(
        (slices(1) - run).abs() < 1e-6 && (slices(2) - run).abs() < 1e-6,
        "{run}"
    );
    let table = dyad_with(&[("s.toml", &text)], &["run", "--serving", "s.toml"]);
    assert!(
        table
            .stdout
            .contains("pipeline    2 stages, 2 micro-batches"),
        "{}",
        table.stdout
    );
    // Refused: a software profile, --pipeline-trace with --serving, --micro-batches alone.
    let sw = format!(
        "software = \"{}/arch/software/splitwise-dgx-h100.toml\"",
        crate::util::ROOT
    );
    let r = dyad_with(
        &[(
            "s.toml",
            &file(&sw, "[pipeline]\nstages = 2\nmicro_batches = 2\n"),
        )],
        &["run", "--serving", "s.toml"],
    );
    expect_input_error(&r, &["software profile", "2 pipeline stages"]);
    let r = dyad_with(
        &[("s.toml", &text)],
        &[
            "run",
            "--serving",
            "s.toml",
            "--pipeline-trace",
            "x.json",
            "--pp",
            "2",
        ],
    );
    expect_input_error(&r, &["--pipeline-trace has no meaning with --serving"]);
    let r = dyad_with(
        &[("s.toml", &text)],
        &["run", "--serving", "s.toml", "--micro-batches", "2"],
    );
    assert_eq!(r.status, 2, "{}", r.stderr);
}
