//! The GPU presets against the references file: every datasheet figure an arch file states is the
//! one `REFERENCE.md` lists (parsed from its tables, not retyped here), the B200 and MI300X
//! presets carry the H100's curves, and more bandwidth makes a memory-bound decode faster.

use std::collections::HashMap;

use dyad::config::{load_arch, load_model};
use dyad::hw::{System, Timing};
use dyad::map::Policy;
use dyad::model::{Batch, Footprint, Parallelism, Precision};
use dyad::sim::iteration::Coster;
use dyad::units::{Bytes, BytesPerSecond, Seconds};
use dyad::work::Dtype;

use crate::util::{dyad, root};

/// The rows of the first table under `## {section}` of `REFERENCE.md`, each a map from column
/// heading to cell.
fn table(section: &str) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(root("REFERENCE.md")).unwrap();
    let head = format!("## {section}\n");
    let at = text
        .find(&head)
        .unwrap_or_else(|| panic!("REFERENCE.md has §{section}"));
    let body = &text[at + head.len()..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    let cells = |l: &str| -> Vec<String> {
        l.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let mut rows = body
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'));
    let heads = cells(rows.next().unwrap());
    rows.skip(1)
        .map(|l| heads.iter().cloned().zip(cells(l)).collect())
        .collect()
}

/// The arch preset a table row names (its first cell starts with the GPU's name).
fn preset(gpu: &str) -> &'static str {
    const NAMES: [(&str, &str); 5] = [
        ("A100", "a100"),
        ("H100", "h100"),
        ("H200", "h200"),
        ("B200", "b200"),
        ("MI300X", "mi300x"),
    ];
    NAMES
        .iter()
        .find(|(p, _)| gpu.starts_with(p))
        .unwrap_or_else(|| panic!("no arch preset for the REFERENCE.md row {gpu:?}"))
        .1
}

/// The number a cell starts with, thousands separators dropped (`"1,978.9"`, `"2,250 TFLOPS"`);
/// `None` for "–" (the device has no such rate).
fn number(cell: &str) -> Option<f64> {
    let first = cell.split_whitespace().next()?.replace(',', "");
    (first != "–").then(|| {
        first
            .parse()
            .unwrap_or_else(|_| panic!("a number: {cell:?}"))
    })
}

/// The quantity a cell starts with: its first two words (`"180 GB HBM3e"` → `180 GB`).
fn quantity<T: std::str::FromStr>(cell: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    let words: Vec<&str> = cell.split_whitespace().take(2).collect();
    words.join(" ").replace(',', "").parse().unwrap()
}

#[track_caller]
fn close(a: f64, b: f64, rel: f64) {
    assert!((a - b).abs() <= rel * a.abs().max(b.abs()), "{a} vs {b}");
}

fn arch(name: &str) -> System {
    load_arch(name.as_ref()).unwrap()
}

fn peak(s: &System, d: Dtype) -> Option<f64> {
    s.xpu.peak.get(&d).map(|p| p.value())
}

#[test]
fn every_gpu_preset_states_the_datasheet_figures_of_the_references_file() {
    let rows = table("GPUs");
    assert!(rows.len() >= 5, "{rows:?}");
    let tera = |c: &str| number(c).map(|v| v * 1e12);
    for row in &rows {
        let gpu = &row["GPU"];
        let s = arch(preset(gpu));
        let at = |d| (gpu, d, peak(&s, d));
        assert_eq!(at(Dtype::Bf16), (gpu, Dtype::Bf16, tera(&row["BF16/FP16"])));
        assert_eq!(at(Dtype::Fp16), (gpu, Dtype::Fp16, tera(&row["BF16/FP16"])));
        assert_eq!(at(Dtype::Fp8), (gpu, Dtype::Fp8, tera(&row["FP8"])));
        assert_eq!(at(Dtype::Int8), (gpu, Dtype::Int8, tera(&row["INT8"])));
        assert_eq!(at(Dtype::Fp32), (gpu, Dtype::Fp32, tera(&row["TF32"])));
        let cap: Bytes = quantity(&row["memory"]);
        assert_eq!(s.xpu.memory.capacity, cap, "{gpu}");
        let bw: BytesPerSecond = quantity(&row["bandwidth"]);
        assert_eq!(s.xpu.memory.bandwidth, bw, "{gpu}");
    }
    // FP4 is listed where the device has it, but dyad has no 4-bit float to put it under.
    let b200 = rows.iter().find(|r| r["GPU"].starts_with("B200")).unwrap();
    assert_eq!(number(&b200["FP4"]), Some(9000.0));
    assert!(Dtype::ALL.iter().all(|d| d.name() != "fp4"));
}

#[test]
fn every_gpu_presets_static_power_is_its_idle_reading_in_the_references_file() {
    let rows = table("GPU idle power");
    assert!(rows.len() >= 5, "{rows:?}");
    for row in &rows {
        let gpu = &row["GPU"];
        let want = number(&row["static power in dyad"]).unwrap();
        let s = arch(preset(gpu));
        assert_eq!(s.xpu.energy.static_power.value(), want, "{gpu}");
    }
}

#[test]
fn blackwell_and_cdna3_peaks_keep_their_published_ratios() {
    // REFERENCE.md §GPUs: NVIDIA lists the B200 with sparsity; the dense rates are half, so
    // FP8 = INT8 = 2 × BF16 = 4 × TF32 (TF32: 2.2 PFLOPS sparse, rounded by NVIDIA).
    let b = arch("b200");
    let bf16 = peak(&b, Dtype::Bf16).unwrap();
    assert_eq!(peak(&b, Dtype::Fp8), Some(2.0 * bf16));
    assert_eq!(peak(&b, Dtype::Int8), Some(2.0 * bf16));
    close(peak(&b, Dtype::Fp32).unwrap(), 2.2e15 / 2.0, 1e-12);
    assert_eq!(
        peak(&b, Dtype::Int4),
        None,
        "no INT4 rate is published for Blackwell"
    );
    // MI300X: 2,048 FLOPs per clock per CU at 2.1 GHz over 304 CUs; FP8 and INT8 4,096.
    let m = arch("mi300x");
    let cu_clock = 304.0 * 2.1e9;
    close(peak(&m, Dtype::Bf16).unwrap(), 2048.0 * cu_clock, 1e-4);
    close(peak(&m, Dtype::Fp8).unwrap(), 4096.0 * cu_clock, 1e-4);
    close(peak(&m, Dtype::Fp32).unwrap(), 1024.0 * cu_clock, 1e-4);
    assert_eq!(peak(&m, Dtype::Int8), peak(&m, Dtype::Fp8));
    assert_eq!(peak(&m, Dtype::Int4), None);
    // On-chip SRAM: the B200's L2 from the CUDA device query; the MI300X's 8 × 4 MB.
    assert_eq!(b.xpu.sram, Bytes(126.5e6));
    assert_eq!(m.xpu.sram, Bytes(8.0 * 4e6));
}

#[test]
fn blackwell_and_cdna3_links_are_their_published_rates() {
    // B200: NVLink 5, 1.8 TB/s per GPU both ways together.
    let b = arch("b200");
    assert_eq!(b.node.devices, 8);
    assert_eq!(b.node.link.bandwidth.value(), 1.8e12 / 2.0);
    // Its HBM: the driver's 7,680-bit bus at 3,996 MHz (double data rate) agrees with the
    // 7.7 TB/s of NVIDIA's table within 0.5%.
    close(
        b.xpu.memory.bandwidth.value(),
        7680.0 / 8.0 * 3.996e9 * 2.0,
        5e-3,
    );
    // MI300X: 7 Infinity Fabric links of 16 lanes at 32 Gb/s, one to each other GPU, all used by
    // a collective over the 8.
    let m = arch("mi300x");
    assert_eq!(m.node.devices, 8);
    let per_link_per_direction = 16.0 * 32e9 / 8.0;
    assert_eq!(per_link_per_direction, 128e9 / 2.0);
    assert_eq!(
        m.node.link.bandwidth.value(),
        f64::from(m.node.devices - 1) * per_link_per_direction
    );
}

#[test]
fn blackwell_and_cdna3_presets_carry_the_h100_curves_and_overheads() {
    let h = arch("h100");
    for s in [arch("b200"), arch("mi300x")] {
        assert_eq!(s.xpu.gemm, h.xpu.gemm, "{}", s.name);
        assert_eq!(s.xpu.attention, h.xpu.attention, "{}", s.name);
        assert_eq!(s.xpu.elementwise, h.xpu.elementwise, "{}", s.name);
        assert_eq!(s.xpu.host_overhead, h.xpu.host_overhead, "{}", s.name);
        assert_eq!(s.node.link.efficiency, h.node.link.efficiency, "{}", s.name);
        assert_eq!(s.node.link.latency, h.node.link.latency, "{}", s.name);
        assert_eq!(s.node.link.overhead, h.node.link.overhead, "{}", s.name);
        assert_eq!(s.xpu.energy.flop, h.xpu.energy.flop, "{}", s.name);
        assert_eq!(s.xpu.energy.dram, h.xpu.energy.dram, "{}", s.name);
    }
}

/// One decode iteration of Llama-3-8B on one device of `sys`: 4 sequences at 2,048 tokens of KV
/// (memory-bound: every op's FLOPs per byte is far below the ridge).
fn decode_time(sys: &System) -> f64 {
    let m = load_model("llama-3-8b".as_ref()).unwrap();
    let mut c = Coster::new(
        sys,
        &m,
        Parallelism { tp: 1, ep: 1 },
        Precision::uniform(m.dtype),
        Timing::Kernel,
        Policy::AllXpu,
    );
    c.iteration(&Batch::decode(4, 2048), &[], false)
        .unwrap()
        .time
}

/// `sys` without kernel floors and with a GEMM's waves and DRAM stream overlapping perfectly:
/// each op's time is its roofline's, compute or memory.
fn no_floors(mut sys: System) -> System {
    if let Some(t) = sys.xpu.tiling.as_mut() {
        t.overlap = 0.0;
    }
    for class in [
        &mut sys.xpu.gemm,
        &mut sys.xpu.attention,
        &mut sys.xpu.elementwise,
    ] {
        class.overhead = Seconds(0.0);
    }
    sys
}

#[test]
fn a_memory_bound_decode_is_faster_on_b200_by_about_its_bandwidth_ratio() {
    // B200 and MI300X state no elementwise streaming rates (nothing measured on them): the H100
    // is priced here by the same elementwise curve as they are.
    let mut h = arch("h100");
    h.xpu.streaming = None;
    let b = arch("b200");
    let bw = b.xpu.memory.bandwidth.value() / h.xpu.memory.bandwidth.value();
    let pk = peak(&b, Dtype::Bf16).unwrap() / peak(&h, Dtype::Bf16).unwrap();
    // The same curves on both: without kernel floors each op's time shrinks by the bandwidth
    // ratio (memory-bound) or the peak ratio (compute-bound), so the iteration's by a ratio
    // between the two; this decode is memory-bound, so by the bandwidth ratio.
    let r0 = decode_time(&no_floors(h.clone())) / decode_time(&no_floors(b.clone()));
    assert!(r0 >= bw.min(pk) * (1.0 - 1e-9) && r0 <= bw.max(pk) * (1.0 + 1e-9));
    close(r0, bw, 1e-9);
    // With the (equal) kernel floors the speed-up is smaller than the bandwidth ratio, and
    // still most of it.
    let r = decode_time(&h) / decode_time(&b);
    assert!(
        r < bw && r > 0.8 * bw,
        "speed-up {r} against a bandwidth ratio {bw}"
    );
    // The MI300X too, by its own bandwidth ratio.
    let m = arch("mi300x");
    let bw_m = m.xpu.memory.bandwidth.value() / h.xpu.memory.bandwidth.value();
    let r_m = decode_time(&no_floors(h.clone())) / decode_time(&no_floors(m));
    close(r_m, bw_m, 1e-9);
}

#[test]
fn more_bandwidth_never_makes_a_decode_slower() {
    let h = arch("h100");
    let mut last = f64::INFINITY;
    for tb_s in [3.35, 4.8, 5.3, 7.7, 16.0] {
        let mut s = h.clone();
        s.xpu.memory.bandwidth = BytesPerSecond(tb_s * 1e12);
        let t = decode_time(&s);
        assert!(t <= last, "{tb_s} TB/s: {t} s after {last} s");
        last = t;
    }
    // The shipped B200 and MI300X are faster than the H100 and H200 on it.
    let times: Vec<f64> = ["h100", "h200", "mi300x", "b200"]
        .iter()
        .map(|n| decode_time(&arch(n)))
        .collect();
    assert!(times.windows(2).all(|w| w[1] < w[0]), "{times:?}");
}

#[test]
fn dyad_runs_on_the_b200_and_mi300x_presets() {
    let run = |a: &str| {
        let line = format!("run --arch {a} --model llama-3-8b --batch 4 --format json");
        let r = dyad(&line.split(' ').collect::<Vec<_>>());
        assert_eq!(r.status, 0, "--arch {a}: {}", r.stderr);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        v["totals"].clone()
    };
    let h = run("h100")["iteration_s"].as_f64().unwrap();
    for a in ["b200", "mi300x"] {
        let t = run(a);
        let p = arch(a).xpu.energy.static_power.value();
        assert_eq!(t["static_power_w"].as_f64(), Some(p), "{a}: {t}");
        let it = t["iteration_s"].as_f64().unwrap();
        assert!(it > 0.0 && it < h, "{a}: {it} s against the H100's {h} s");
    }
    let r = dyad(&["list"]);
    assert_eq!(r.status, 0);
    for a in ["b200", "mi300x"] {
        assert!(r.stdout.lines().any(|l| l.trim() == a), "{}", r.stdout);
    }
}

/// The Duplex-H200 preset (`arch/duplex-h200.toml`, the modern-MoE study's device): the H200's
/// memory, Duplex's Logic-PIM per stack on six stacks, and room for DeepSeek-V3's fp8 weights
/// under expert parallelism 8, which eight 80 GB Duplex devices do not have.
#[test]
fn duplex_h200_is_an_h200_with_duplex_logic_pim_on_six_stacks() {
    let (d, h, duplex) = (arch("duplex-h200"), arch("h200"), arch("duplex"));
    assert_eq!(d.xpu.memory.capacity, h.xpu.memory.capacity);
    assert_eq!(d.xpu.memory.bandwidth, h.xpu.memory.bandwidth);
    assert_eq!(peak(&d, Dtype::Fp8), peak(&h, Dtype::Fp8));
    let (pim, per_duplex) = (d.pim.as_ref().unwrap(), duplex.pim.as_ref().unwrap());
    assert_eq!(pim.stacks, 6);
    // 4.8 TB/s over six stacks: 800 GB/s each (REFERENCE.md, H200 HBM3e stacks).
    close(d.xpu.memory.bandwidth.value() / 6.0, 800e9, 1e-12);
    // 6 stacks x 32 modules x 512 MACs x 2 FLOPs x 650 MHz = 127.8 TFLOPS; per stack Duplex's.
    close(pim.peak().value(), 6.0 * 32.0 * 512.0 * 2.0 * 650e6, 1e-12);
    close(
        pim.peak().value() / 6.0,
        per_duplex.peak().value() / f64::from(per_duplex.stacks),
        1e-12,
    );
    // 4 x the external 4.8 TB/s reaches the logic dies: 19.2 TB/s.
    close(
        pim.bandwidth(d.xpu.memory.bandwidth).value(),
        19.2e12,
        1e-12,
    );
    // DeepSeek-V3 at one byte per weight: more than 8 x 80 GB in all, and under EP 8 (32 routed
    // experts per device, the rest replicated) less than 90% of one 141 GB device.
    let m = load_model("deepseek-v3".as_ref()).unwrap();
    let fp8 = Precision::uniform(Dtype::Fp8);
    let whole = Footprint::new(&m, Parallelism { tp: 1, ep: 1 }, fp8).weights;
    assert!(
        whole.value() > 8.0 * duplex.xpu.memory.capacity.value(),
        "{whole:?}"
    );
    let share = Footprint::new(&m, Parallelism { tp: 1, ep: 8 }, fp8).weights;
    assert!(
        share.value() < 0.9 * d.xpu.memory.capacity.value(),
        "{share:?}"
    );
}
