//! The calibrated cost model against measured GPU data (`data/validation/`), at the tolerances
//! the foundation issue sets: GEMMs median ≤ 12 % and p90 ≤ 25 %, decode attention median ≤ 15 %,
//! the GPT-3 layer total within 10 % for prefill and for decode.

use std::path::Path;

use dyad::app::accuracy::{Sample, Stats, load_samples};

fn samples() -> Vec<Sample> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    load_samples(&root.join("data/validation"), root).expect("calibration data loads")
}

fn stats(s: &[Sample], keep: impl Fn(&Sample) -> bool) -> Stats {
    Stats::of(s.iter().filter(|x| keep(x)).map(Sample::error)).expect("samples in group")
}

#[test]
fn every_calibration_row_is_costed() {
    let s = samples();
    // 20 matmuls; 1036 vidur rows × 10 ops per device (a few zero-time rows skipped);
    // 750 all-reduces; 258 decode-attention rows; 2 × (12 GPT-3 ops + 1 total).
    assert!(s.len() > 20 + 2 * 10_000 + 750 + 258 + 26, "{}", s.len());
    assert!(
        s.iter()
            .all(|x| x.predicted_s > 0.0 && x.predicted_s.is_finite())
    );
}

#[test]
fn gemm_error_within_target_on_each_device_and_pooled() {
    let s = samples();
    for group in ["a100 gemm", "h100 gemm"] {
        let st = stats(&s, |x| x.group == group);
        assert!(st.median <= 0.12 && st.p90 <= 0.25, "{group}: {st:?}");
    }
    let st = stats(&s, |x| x.group.ends_with(" gemm"));
    assert!(st.median <= 0.12 && st.p90 <= 0.25, "pooled: {st:?}");
}

#[test]
fn decode_attention_error_within_target() {
    let st = stats(&samples(), |x| x.group == "h100 decode attention");
    assert!(st.median <= 0.15, "{st:?}");
}

#[test]
fn gpt3_layer_totals_within_ten_percent() {
    let s = samples();
    for phase in ["prefill", "decode"] {
        let group = format!("a100 gpt3 {phase} layer total");
        let st = stats(&s, |x| x.group == group);
        assert!(st.max <= 0.10, "{phase}: {st:?}");
    }
}

/// Issue 17: the wave step of the Llama-2-7B down projection on H100 (n = 4096, k = 11008):
/// m = 512 takes 75.5 µs and m = 520 takes 112 µs in the vidur data (1.6 % more work, a second
/// wave of tiles). The model's ratio is within 15 % of the measured one.
#[test]
fn the_h100_wave_step_at_m_512_to_520_is_within_15_percent_of_the_measured_ratio() {
    use dyad::config::load_arch;
    use dyad::hw::Timing;
    use dyad::model::{Op, OpKind, Precision};
    use dyad::work::Dtype;
    let sys = load_arch(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("arch/h100.toml")
            .as_path(),
    )
    .expect("h100 arch");
    let t = |m| {
        let kind = OpKind::Gemm {
            m,
            n: 4096,
            k: 11008,
            batch: 1,
        };
        let op = Op::new("down", None, kind, Precision::uniform(Dtype::Fp16));
        sys.cost(&op.work(), Timing::Kernel).unwrap().time.value()
    };
    let measured = 112.0 / 75.5;
    let model = t(520) / t(512);
    assert!(
        (model / measured - 1.0).abs() <= 0.15,
        "model {model:.3} against measured {measured:.3}"
    );
    // The step is a step: 8 more rows cost far more than their share of the work.
    assert!(model > 1.0 + 2.0 * 8.0 / 512.0);
}

/// Issue 17, elementwise by where the bytes come from: on the rows the data resolve (10 µs or
/// more), the median error is at most 10 % on each device.
#[test]
fn elementwise_rows_of_10_us_or_more_within_ten_percent_median_on_each_device() {
    let s = samples();
    for dev in ["a100", "h100"] {
        let group = format!("{dev} elementwise (10 us or more)");
        let st = stats(&s, |x| x.group == group);
        assert!(st.median <= 0.10, "{group}: {st:?}");
    }
}

/// Where the bytes come from, on the H100 arch: a residual add of 40 MB (fits the 50 MB L2)
/// streams faster per byte than one of 60 MB (DRAM), no stream beats the L2 rate nor a DRAM
/// stream DRAM's bandwidth, a norm over short rows streams slower than over long rows, and an
/// embedding gather is slower per byte than any stream.
#[test]
fn elementwise_rates_follow_the_cache_the_row_and_the_gather() {
    use dyad::config::load_arch;
    use dyad::hw::Timing;
    use dyad::model::{Op, OpKind, Precision};
    use dyad::work::{Access, Dtype};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sys = load_arch(&root.join("arch/h100.toml")).expect("h100 arch");
    let s = sys.xpu.streaming.expect("h100 states its streaming rates");
    let rate = |elements: u64, reads, writes, access| {
        let kind = OpKind::Elementwise {
            elements,
            reads,
            writes,
            flops_per_element: 1,
            access: Some(access),
        };
        let w = Op::new("e", None, kind, Precision::uniform(Dtype::Fp16)).work();
        let t = sys.cost(&w, Timing::Kernel).unwrap();
        w.bytes.total().value() / (t.time - t.overhead).value()
    };
    // 3 tensors of 2-byte elements: 40 MB and 60 MB.
    let (small, large) = (40_000_000 / 6, 60_000_000 / 6);
    let l2 = rate(small, 2, 1, Access::Stream);
    let dram = rate(large, 2, 1, Access::Stream);
    assert!(l2 > dram, "{l2} {dram}");
    assert!(l2 <= s.l2_stream.value() * (1.0 + 1e-9));
    assert!(dram <= sys.xpu.memory.bandwidth.value());
    let short = rate(large, 1, 1, Access::Rows(128));
    let long = rate(large, 1, 1, Access::Rows(8192));
    assert!(
        short < long && long <= dram * (1.0 + 1e-9),
        "{short} {long} {dram}"
    );
    let gather = rate(large, 1, 1, Access::Gather);
    assert!(gather < short.max(long) && gather < dram);
}
