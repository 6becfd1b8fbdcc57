//! `dyad run --pp S --micro-batches M`: pipeline stages over micro-batches.

use dyad::app::run::{RunSpec, run};
use dyad::app::run_pp::pipeline;

use crate::util::{dyad, expect_input_error};

fn spec(batch: u64) -> RunSpec {
    RunSpec {
        model: "workloads/models/llama-3-8b.json".into(),
        batch,
        kv_len: 2048,
        tp: Some(1),
        ..RunSpec::default()
    }
}

#[test]
fn one_stage_is_the_plain_iteration() {
    let s = spec(32);
    let plain = run(&s).unwrap().totals.iteration_s;
    let p = pipeline(&s, 1, 1).unwrap();
    assert!((p.pipeline.makespan / plain - 1.0).abs() < 1e-12, "{plain}");
    assert_eq!(p.pipeline.bubble(), 0.0);
}

#[test]
fn the_stages_together_do_each_micro_batch_once() {
    // 4 stages over Llama-3-8B's 32 layers, 8 micro-batches of 4 sequences: the stages' busy
    // time is 8 times one plain iteration of 4 sequences; the makespan is at least the fill
    // plus the drain, (m + S − 1) times the shortest stage, plus 3 sends.
    let (stages, m) = (4, 8);
    let one = run(&spec(4)).unwrap().totals.iteration_s;
    let p = pipeline(&spec(32), stages, m).unwrap();
    let busy: f64 = p.pipeline.busy.iter().sum();
    assert!((busy / (m as f64 * one) - 1.0).abs() < 1e-9, "{busy} {one}");
    assert_eq!(p.layers, vec![(0, 8), (8, 16), (16, 24), (24, 32)]);
    let shortest = p.pipeline.busy.iter().cloned().fold(f64::MAX, f64::min) / m as f64;
    let floor = (m + stages - 1) as f64 * shortest + 3.0 * p.send.time();
    assert!(p.pipeline.makespan >= floor * (1.0 - 1e-12));
    let bubble = (stages - 1) as f64 / (m + stages - 1) as f64;
    // Equal stages idle (S−1)/(m+S−1) of the time; unequal ones (the last holds the LM head)
    // more, since the makespan is at least Σ t_s + (m−1)·max t_s.
    assert!(
        p.pipeline.bubble() >= bubble - 1e-12,
        "{}",
        p.pipeline.bubble()
    );
}

#[test]
fn micro_batches_that_do_not_divide_the_batch_are_bad_input() {
    let r = dyad(&[
        "run",
        "--batch",
        "6",
        "--tp",
        "1",
        "--pp",
        "2",
        "--micro-batches",
        "4",
    ]);
    expect_input_error(&r, &["--pp 2", "--micro-batches 4"]);
    let r = dyad(&["run", "--pp", "2", "--format", "json"]);
    assert_eq!(r.status, 2);
}
