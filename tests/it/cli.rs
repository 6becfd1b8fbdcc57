//! The binary end to end: the default run, each command, and bad input ending with status 2 and
//! a message that names the place.

use crate::util::{dyad, dyad_in, dyad_stdin, dyad_with, expect_input_error};

/// A complete arch file, to be broken one key at a time.
const ARCH: &str = include_str!("../../arch/h100.toml");

#[test]
fn default_run_prints_the_mixtral_table() {
    for r in [dyad(&[]), dyad_in(&std::env::temp_dir(), &["run"], None)] {
        assert_eq!(r.status, 0, "{}", r.stderr);
        for n in [
            "mixtral-8x7b",
            "H100",
            "decode batch 64",
            "KV 1024",
            "expert_7",
            "attn_decode",
            "tokens/s",
        ] {
            assert!(r.stdout.contains(n), "missing {n:?} in\n{}", r.stdout);
        }
    }
}

#[test]
fn run_writes_json_with_a_schema_version() {
    let r = dyad(&[
        "run",
        "--model",
        "llama-3-8b",
        "--batch",
        "4",
        "--format",
        "json",
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["layers"].as_array().unwrap().len(), 32);
    let t = v["totals"]["iteration_s"].as_f64().unwrap();
    let sum: f64 = v["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["time_s"].as_f64().unwrap())
        .sum();
    assert!((sum / t - 1.0).abs() < 1e-9);
}

#[test]
fn run_csv_and_md_formats() {
    let r = dyad(&[
        "run",
        "--model",
        "llama-2-7b",
        "--phase",
        "prefill",
        "--batch",
        "2",
        "--format",
        "csv",
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("layer,op,shape"));
    assert!(r.stdout.contains("attn_prefill"));
    let r = dyad(&["run", "--model", "llama-2-7b", "--format", "md"]);
    assert!(r.stdout.contains("| op "), "{}", r.stdout);
}

#[test]
fn graph_prints_dot() {
    let r = dyad(&["graph", "--model", "mixtral-8x7b", "--batch", "4"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("digraph iteration {"));
    assert!(r.stdout.contains("expert_3"));
    assert!(r.stdout.contains("->"));
}

#[test]
fn cost_appends_columns_and_passes_others_through() {
    let csv = "kind,dtype,m,n,k,tag\ngemm,fp16,4096,4096,4096,big\n";
    let r = dyad_stdin(&["cost", "--arch", "a100"], csv);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let mut lines = r.stdout.lines();
    assert_eq!(
        lines.next().unwrap(),
        "kind,dtype,m,n,k,tag,time_s,flops,dram_bytes,op_b,bound"
    );
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(row[5], "big");
    assert_eq!(row[7].parse::<f64>().unwrap(), 2.0 * 4096f64.powi(3));
    assert_eq!(row[8].parse::<f64>().unwrap(), 3.0 * 4096.0 * 4096.0 * 2.0);
    assert_eq!(row[10], "compute");
}

#[test]
fn cost_names_the_line_it_cannot_cost() {
    let csv = "kind,dtype,m,n,k\ngemm,fp16,1,2,3\ngemm,fp16,1,,3\n";
    let r = dyad_stdin(&["cost"], csv);
    expect_input_error(&r, &["line 3", "`n`"]);
    let r = dyad_stdin(&["cost"], "kind,dtype\nconv,fp16\n");
    expect_input_error(&r, &["line 2", "unknown kind \"conv\""]);
}

#[test]
fn missing_file_is_an_input_error() {
    let r = dyad(&["run", "--arch", "no/such.toml"]);
    expect_input_error(&r, &["no/such.toml", "cannot read"]);
}

#[test]
fn a_builtin_standing_in_for_a_missing_file_is_named_on_stderr() {
    // The default run away from the repository reads the presets by their own names: no note.
    let r = dyad_in(&std::env::temp_dir(), &["run"], None);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("note:"), "{}", r.stderr);
    // A scenario away from the repository that names `../../arch/h100.toml`, which is not
    // there: the built-in is read in its place, and standard error says so for each file.
    let shipped = include_str!("../../workloads/serving/closed-b32-256-256.toml");
    let away = shipped.replace("\"../models/", "\"../../workloads/models/");
    let r = dyad_with(&[("s.toml", &away)], &["run", "--serving", "s.toml"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    for preset in ["arch/h100.toml", "workloads/models/mixtral-8x7b.json"] {
        let note = format!("is not a file; the built-in `{preset}` was read in its place");
        assert_eq!(r.stderr.matches(&note).count(), 1, "{}", r.stderr);
    }
}

#[test]
fn a_scenario_names_built_in_arch_and_model_wherever_it_is_run_from() {
    // `arch = "h100"` and `model = "mixtral-8x7b"` are the presets whether the scenario is
    // named relative to the working folder or by an absolute path (it used to read the second
    // as the missing file DIR/h100).
    let shipped = include_str!("../../workloads/serving/closed-b32-256-256.toml");
    let named = shipped
        .replace("\"../../arch/h100.toml\"", "\"h100\"")
        .replace("\"../models/mixtral-8x7b.json\"", "\"mixtral-8x7b\"");
    assert_ne!(named, shipped);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(&path, &named).unwrap();
    let here = dyad_in(dir.path(), &["run", "--serving", "s.toml"], None);
    let away = dyad(&["run", "--serving", path.to_str().unwrap()]);
    for r in [&here, &away] {
        assert_eq!(r.status, 0, "{}", r.stderr);
        assert!(r.stdout.contains("mixtral-8x7b on H100"), "{}", r.stdout);
        assert!(!r.stderr.contains("note:"), "{}", r.stderr);
    }
    assert_eq!(here.stdout, away.stdout);
}

#[test]
fn malformed_toml_names_line_and_column() {
    let broken = ARCH.replacen("devices = 8", "devices = = 8", 1);
    let line = broken
        .lines()
        .position(|l| l.contains("devices = = 8"))
        .unwrap()
        + 1;
    let r = dyad_with(&[("a.toml", &broken)], &["run", "--arch", "a.toml"]);
    expect_input_error(&r, &[&format!("a.toml:{line}:")]);
}

#[test]
fn unknown_key_is_an_error_naming_it() {
    let broken = ARCH.replacen("bandwidth = \"3.35 TB/s\"", "bandwith = \"3.35 TB/s\"", 1);
    let line = broken
        .lines()
        .position(|l| l.starts_with("bandwith"))
        .unwrap()
        + 1;
    let r = dyad_with(&[("a.toml", &broken)], &["run", "--arch", "a.toml"]);
    expect_input_error(&r, &[&format!("a.toml:{line}:1"), "bandwith"]);
}

#[test]
fn wrong_unit_says_what_was_expected() {
    let broken = ARCH.replacen(
        "bandwidth = \"3.35 TB/s\"",
        "bandwidth = \"3.35 TFLOPS\"",
        1,
    );
    let r = dyad_with(&[("a.toml", &broken)], &["run", "--arch", "a.toml"]);
    expect_input_error(&r, &["a.toml:", "bandwidth", "TFLOPS"]);
}

#[test]
fn zero_or_negative_bandwidth_is_rejected_where_written() {
    for bad in ["0 TB/s", "-3 TB/s"] {
        let broken = ARCH.replacen("\"3.35 TB/s\"", &format!("\"{bad}\""), 1);
        let line = broken.lines().position(|l| l.contains(bad)).unwrap() + 1;
        let r = dyad_with(&[("a.toml", &broken)], &["run", "--arch", "a.toml"]);
        expect_input_error(
            &r,
            &[
                &format!("a.toml:{line}:"),
                "xpu.memory.bandwidth",
                "positive",
            ],
        );
    }
}

#[test]
fn missing_key_is_named() {
    let broken = ARCH.replacen("capacity = \"80 GB\"", "", 1);
    let r = dyad_with(&[("a.toml", &broken)], &["run", "--arch", "a.toml"]);
    expect_input_error(&r, &["a.toml", "xpu.memory.capacity"]);
}

#[test]
fn extends_overrides_and_reports_errors_in_the_right_file() {
    let child = "extends = \"base.toml\"\n[xpu.memory]\nbandwidth = \"0 B/s\"\n";
    let r = dyad_with(
        &[("base.toml", ARCH), ("child.toml", child)],
        &["run", "--arch", "child.toml"],
    );
    expect_input_error(&r, &["child.toml:3:"]);
    let child = "extends = \"nowhere.toml\"\n";
    let r = dyad_with(&[("child.toml", child)], &["run", "--arch", "child.toml"]);
    expect_input_error(&r, &["child.toml:1:", "nowhere.toml"]);
    let cyc = "extends = \"child.toml\"\n";
    let r = dyad_with(&[("child.toml", cyc)], &["run", "--arch", "child.toml"]);
    expect_input_error(&r, &["cycle"]);
}

#[test]
fn unsupported_model_family_is_named() {
    // Qwen3-Next's linear-attention layers: both of its fields are named.
    let next = r#"{"model_type": "qwen3_next", "linear_num_value_heads": 32, "full_attention_interval": 4}"#;
    let r = dyad_with(&[("config.json", next)], &["run", "--model", "config.json"]);
    expect_input_error(
        &r,
        &[
            "config.json:1:",
            "not yet supported: linear_num_value_heads",
            "full_attention_interval",
        ],
    );
    let gpt2 = "{\n  \"model_type\": \"gpt2\"\n}";
    let r = dyad_with(&[("config.json", gpt2)], &["run", "--model", "config.json"]);
    expect_input_error(
        &r,
        &["config.json:2:3", "not yet supported: model_type \"gpt2\""],
    );
}

#[test]
fn malformed_json_and_bad_model_toml() {
    let r = dyad_with(
        &[("config.json", "{\n \"hidden_size\": ,\n}")],
        &["run", "--model", "config.json"],
    );
    expect_input_error(&r, &["config.json:2:", "invalid JSON"]);
    let toml = "model_type = \"llama\"\nhiden_size = 4096\n";
    let r = dyad_with(&[("m.toml", toml)], &["run", "--model", "m.toml"]);
    expect_input_error(&r, &["m.toml:2:1", "unknown key `hiden_size`"]);
}

#[test]
fn model_toml_equivalent_of_config_json_runs() {
    let toml = "name = \"tiny\"\nmodel_type = \"llama\"\nhidden_size = 1024\nnum_hidden_layers = 2\n\
                num_attention_heads = 8\nnum_key_value_heads = 2\nintermediate_size = 4096\n\
                vocab_size = 1000\ntorch_dtype = \"bfloat16\"\n";
    let r = dyad_with(
        &[("m.toml", toml)],
        &["run", "--model", "m.toml", "--tp", "1"],
    );
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.contains("tiny"));
}

#[test]
fn bad_arguments_exit_2() {
    expect_input_error(&dyad(&["run", "--batch", "0"]), &["batch"]);
    expect_input_error(&dyad(&["run", "--tp", "3"]), &["tensor-parallel degree 3"]);
    assert_eq!(dyad(&["run", "--phase", "sideways"]).status, 2);
}

#[test]
fn list_names_the_presets() {
    let r = dyad(&["list"]);
    assert_eq!(r.status, 0);
    for n in ["h100", "a100", "h200", "mixtral-8x7b", "llama-3-70b"] {
        assert!(r.stdout.contains(n));
    }
}

/// The first cells of the README's `dyad list` tables, by the flag their header names:
/// (`--arch` presets, `--model` presets), in the README's order.
fn readme_presets() -> (Vec<String>, Vec<String>) {
    let readme = std::fs::read_to_string(crate::util::root("README.md")).unwrap();
    let start = readme
        .find("### `dyad list`")
        .expect("README has a `dyad list` section");
    let section = &readme[start..];
    let end = section[3..].find("\n#").map_or(section.len(), |i| i + 3);
    let (mut arch, mut model) = (Vec::new(), Vec::new());
    let mut table: Option<&mut Vec<String>> = None;
    for line in section[..end].lines() {
        if line.starts_with("| `--arch` preset") {
            table = Some(&mut arch);
        } else if line.starts_with("| `--model` preset") {
            table = Some(&mut model);
        } else if !line.starts_with('|') {
            table = None;
        } else if let (Some(t), Some(cell)) = (table.as_mut(), line.split('|').nth(1)) {
            if let Some(name) = cell
                .trim()
                .strip_prefix('`')
                .and_then(|c| c.strip_suffix('`'))
            {
                t.push(name.to_string());
            }
        }
    }
    (arch, model)
}

#[test]
fn readme_dyad_list_and_the_compiled_in_presets_are_one_table() {
    use dyad::config::presets;
    let (arch, model) = readme_presets();
    assert_eq!(arch, presets::names("arch"), "README's --arch presets");
    assert_eq!(
        model,
        presets::names("workloads/models"),
        "README's --model presets"
    );
    // `dyad list` prints the same names, in the same order.
    let r = dyad(&["list"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let listed: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .collect();
    let all: Vec<&str> = arch.iter().chain(&model).map(String::as_str).collect();
    assert_eq!(listed, all);
    // Every shipped arch, technology and model file is compiled in, so a preset name works
    // from any directory.
    let mut shipped = Vec::new();
    let mut dirs = vec![
        ("arch".to_string(), true),
        ("workloads/models".to_string(), false),
    ];
    while let Some((dir, deep)) = dirs.pop() {
        for e in std::fs::read_dir(crate::util::root(&dir)).unwrap() {
            let e = e.unwrap();
            let name = format!("{dir}/{}", e.file_name().to_string_lossy());
            if e.file_type().unwrap().is_dir() {
                if deep {
                    dirs.push((name, true));
                }
            } else if name.ends_with(".toml") || name.ends_with(".json") {
                shipped.push(name);
            }
        }
    }
    assert!(shipped.len() >= arch.len() + model.len(), "{shipped:?}");
    for f in &shipped {
        assert!(
            presets::FILES.iter().any(|(p, _)| p == f),
            "{f} is not in config::presets::FILES"
        );
    }
}

/// The op rows of `dyad validate` output under `policy`: (layout, op, plan, FLOPs charged,
/// FLOPs counted, result).
fn validate_rows(stdout: &str, policy: &str) -> Vec<(String, String, String, f64, f64, String)> {
    stdout
        .lines()
        .filter(|l| l.starts_with(&format!("{policy} ")) && !l.contains(" ops, "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n = f.len();
            (
                f[1].to_string(),
                f[3].to_string(),
                f[4..n - 5].join(" "),
                f[n - 3].parse().unwrap(),
                f[n - 2].parse().unwrap(),
                f[n - 1].to_string(),
            )
        })
        .collect()
}

#[test]
fn validate_passes_on_mixtral_and_llama3_at_every_tp_degree() {
    for (model, moe) in [("mixtral-8x7b", true), ("llama-3-8b", false)] {
        let r = dyad(&["validate", "--model", model, "--tp", "1,2,4,8", "--ep", "1"]);
        assert_eq!(r.status, 0, "{model}:\n{}\n{}", r.stdout, r.stderr);
        let rows = validate_rows(&r.stdout, "all-xpu");
        assert!(
            rows.iter().all(|x| x.0.starts_with("tp")),
            "{model}: --ep 1 adds none"
        );
        for tp in [1, 2, 4, 8] {
            let par = format!("tp{tp}");
            let at: Vec<_> = rows.iter().filter(|x| x.0 == par).collect();
            // Both attention ops run (the batch mixes decode and prefill); experts only in MoE.
            for op in [
                "qkv_proj",
                "attn_prefill",
                "attn_decode",
                "o_proj",
                "lm_head",
            ] {
                assert!(at.iter().any(|x| x.1 == op), "{model} {par} lacks {op}");
            }
            assert_eq!(at.iter().any(|x| x.1.starts_with("expert_")), moe);
            // An all-reduce after attention and after the FFN, only when split.
            let ar = at.iter().filter(|x| x.1.ends_with("_allreduce")).count();
            assert_eq!(ar, if tp > 1 { 2 } else { 0 });
            for x in &at {
                assert_eq!(x.5, "pass", "{model} {par} {}", x.1);
                assert_eq!(x.3, x.4, "{model} {par} {}: charged vs counted", x.1);
            }
            let attn = at.iter().find(|x| x.1 == "attn_decode").unwrap();
            let want = if tp == 1 {
                "whole on xpu0".to_string()
            } else {
                format!("heads x{tp}")
            };
            assert_eq!(attn.2, want);
            assert!(r.stdout.contains(&format!("all-xpu {par}: ")));
        }
        // Splitting conserves GEMM FLOPs: qkv_proj charges the same in total at every degree
        // (8 KV heads: no replication up to tp 8).
        let qkv: Vec<f64> = rows
            .iter()
            .filter(|x| x.1 == "qkv_proj")
            .map(|x| x.3)
            .collect();
        assert!(
            qkv.len() == 4 && qkv.iter().all(|&f| f == qkv[0]),
            "{qkv:?}"
        );
    }
}

#[test]
fn validate_places_whole_experts_under_expert_parallelism() {
    let r = dyad(&[
        "validate",
        "--model",
        "mixtral-8x7b",
        "--tp",
        "1",
        "--ep",
        "2,4,8",
    ]);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
    let rows = validate_rows(&r.stdout, "all-xpu");
    for ep in [2usize, 4, 8] {
        let par = format!("ep{ep}");
        let at: Vec<_> = rows.iter().filter(|x| x.0 == par).collect();
        for x in at.iter().filter(|x| x.1.starts_with("expert_")) {
            let e: usize = x.1["expert_".len()..].parse().unwrap();
            assert_eq!(x.2, format!("whole on xpu{}", e % ep), "{par} {}", x.1);
        }
        // Dispatch and combine: an all-to-all over the group each; no all-reduce.
        let a2a: Vec<_> = at
            .iter()
            .filter(|x| x.2 == format!("collective x{ep}"))
            .collect();
        assert_eq!(a2a.len(), 2, "{par}");
        assert!(at.iter().all(|x| x.5 == "pass"));
    }
    // llama-3-8b is dense: expert parallelism does not apply and adds nothing.
    let r = dyad(&[
        "validate",
        "--model",
        "llama-3-8b",
        "--tp",
        "1",
        "--ep",
        "2",
    ]);
    assert_eq!(r.status, 0);
    assert!(
        validate_rows(&r.stdout, "all-xpu")
            .iter()
            .all(|x| x.0 == "tp1")
    );
}

#[test]
fn validate_fails_with_status_1_when_no_kernel_runs_the_element_type() {
    let json = include_str!("../../workloads/models/llama-3-8b.json")
        .replace("\"bfloat16\"", "\"float8_e4m3fn\"");
    let r = dyad_with(
        &[("m.json", &json)],
        &["validate", "--model", "m.json", "--tp", "1"],
    );
    assert_eq!(r.status, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("FAIL (no reference kernel computes in fp8)")
    );
    assert!(r.stderr.contains("checks failed"), "{}", r.stderr);
}

#[test]
fn validate_bad_arguments_exit_2() {
    expect_input_error(
        &dyad(&["validate", "--scale", "3"]),
        &["--scale 3 must divide head_dim (128)"],
    );
    // Mixtral's 32 heads and 8 experts split over no layout asked for: nothing to check.
    expect_input_error(
        &dyad(&["validate", "--tp", "3", "--ep", "3"]),
        &[
            "any layout --tp and --ep ask for",
            "tensor-parallel degree 3",
            "expert-parallel degree 3",
        ],
    );
    expect_input_error(&dyad(&["validate", "--prompt-len", "1"]), &["--prompt-len"]);
    expect_input_error(&dyad(&["validate", "--model", "nope.json"]), &["nope.json"]);
    assert_eq!(dyad(&["validate", "--policy", "pim"]).status, 2);
}

#[test]
fn serving_run_writes_report_and_a_trace_perfetto_can_load() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.json");
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/workloads/serving/closed-b32-256-256.toml"
    );
    let r = dyad(&[
        "run",
        "--serving",
        scenario,
        "--format",
        "json",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["kind"], "serving");
    let s = &v["serving"];
    assert_eq!(s["requests_completed"], 512);
    for k in ["ttft_s", "tbt_s", "e2e_s"] {
        assert!(s[k]["p99"].as_f64().unwrap() >= s[k]["p50"].as_f64().unwrap());
    }
    assert!(s["output_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(s["energy_per_output_token_j"].as_f64().unwrap() > 0.0);
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let events = t["traceEvents"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["ph"] == "X" && e["name"].as_str().unwrap().contains("attn_decode"))
    );
    assert_eq!(events.iter().filter(|e| e["ph"] == "b").count(), 512);
}

#[test]
fn bad_serving_scenarios_name_the_key() {
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/workloads/serving/closed-b32-256-256.toml"
    ))
    .unwrap()
    .replace("../../arch/h100.toml", "h100")
    .replace("../models/mixtral-8x7b.json", "mixtral-8x7b");
    let cases = [
        (
            "mode = \"uniform\"",
            "mode = \"sideways\"",
            "unknown routing mode",
        ),
        ("max_batch = 32", "max_batch = 0", "batching.max_batch"),
        ("tp = 4", "tp = 3", "tensor-parallel degree 3"),
        ("kv = \"bf16\"", "kv = \"fp7\"", "unknown element type"),
        ("closed = 32", "clozed = 32", "clozed"),
    ];
    for (from, to, needle) in cases {
        let text = base.replacen(from, to, 1);
        let line = text.lines().position(|l| l.contains(to)).unwrap() + 1;
        let r = dyad_with(&[("s.toml", &text)], &["run", "--serving", "s.toml"]);
        expect_input_error(&r, &[&format!("s.toml:{line}:"), needle]);
    }
}

#[test]
fn validate_passes_under_every_policy_and_layout_by_default() {
    for (model, layouts) in [
        (
            "mixtral-8x7b",
            &["tp1", "tp2", "tp4", "tp8", "ep2", "ep4", "ep8"][..],
        ),
        ("llama-3-8b", &["tp1", "tp2", "tp4", "tp8"][..]),
        // Sandwich norms and soft-capped logits.
        ("gemma-2-9b", &["tp1", "tp2", "tp4", "tp8"][..]),
        // Fine-grained experts and QK-norm.
        (
            "qwen3-30b-a3b",
            &["tp1", "tp2", "tp4", "tp8", "ep2", "ep4", "ep8"][..],
        ),
        // Latent attention (expanded prefill, absorbed decode), shared experts, a dense first
        // layer.
        (
            "deepseek-v2-lite",
            &["tp1", "tp2", "tp4", "tp8", "ep2", "ep4", "ep8"][..],
        ),
        // A sliding window in every layer.
        ("mistral-7b-v0.1", &["tp1", "tp2", "tp4", "tp8"][..]),
    ] {
        let r = dyad(&["validate", "--model", model]);
        assert_eq!(r.status, 0, "{model}:\n{}\n{}", r.stdout, r.stderr);
        for policy in ["all-xpu", "dispatch", "duplex"] {
            for par in layouts {
                let line = r
                    .stdout
                    .lines()
                    .find(|l| l.starts_with(&format!("{policy} {par}: ")))
                    .unwrap_or_else(|| panic!("{model}: no summary for {policy} {par}"));
                assert!(line.contains(" 0 failed"), "{line}");
            }
        }
    }
}

#[test]
fn validate_exercises_the_window_and_every_layer_kind() {
    // Mistral's window narrowed to half the 12-token prompt: the 4 decode sequences (KV 24, 27,
    // 30, 33) attend 6 keys each, 4·heads·d FLOPs per key: 4 · 32 · 8 · 24 at the 16th scale.
    let r = dyad(&[
        "validate",
        "--model",
        "mistral-7b-v0.1",
        "--tp",
        "1",
        "--ep",
        "1",
    ]);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("1 layers: window 6;"), "{}", r.stdout);
    let rows = validate_rows(&r.stdout, "all-xpu");
    let decode = rows.iter().find(|x| x.1 == "attn_decode").unwrap();
    assert_eq!((decode.3, decode.4), (24576.0, 24576.0));
    // Gemma-2 alternates local and global layers, DeepSeek-V2-Lite has a dense layer before
    // its MoE layers: both are checked, with --layers 1.
    let r = dyad(&[
        "validate",
        "--model",
        "gemma-2-9b",
        "--tp",
        "1",
        "--ep",
        "1",
    ]);
    assert!(
        r.stdout.contains("2 layers: window 6, full;"),
        "{}",
        r.stdout
    );
    let r = dyad(&[
        "validate",
        "--model",
        "deepseek-v2-lite",
        "--tp",
        "2",
        "--ep",
        "1",
    ]);
    let rows = validate_rows(&r.stdout, "all-xpu");
    for op in ["kv_b_proj", "q_absorb", "v_up", "shared_expert", "expert_0"] {
        assert!(rows.iter().any(|x| x.1 == op && x.5 == "pass"), "{op}");
    }
    // Llama-4's chunks narrowed to 7 (half the prompt, plus one): a decode query at position p
    // sees p mod 7 + 1 keys, 3 + 6 + 2 + 5 = 16 for positions 23, 26, 29, 32; the 12-token
    // prompt attends 28 + 15 pairs, the half after a cached half 7 + 15 (its first query
    // closes chunk 0): 4 · 40 heads · 8 per key or pair.
    let r = dyad(&[
        "validate",
        "--model",
        "llama-4-scout-17b-16e",
        "--tp",
        "1,8",
        "--ep",
        "1",
    ]);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("4 layers: chunk 7, chunk 7, chunk 7, full;")
    );
    let lines: Vec<&str> = r.stdout.lines().collect();
    let at = |op: &str| {
        let l = lines
            .iter()
            .find(|l| l.starts_with("all-xpu   tp1     0 ") && l.contains(op))
            .unwrap();
        let f: Vec<&str> = l.split_whitespace().collect();
        (
            f[f.len() - 3].parse::<f64>().unwrap(),
            f[f.len() - 2].parse().unwrap(),
        )
    };
    let per = 4.0 * 40.0 * 8.0;
    assert_eq!(at("attn_decode"), (per * 16.0, per * 16.0));
    assert_eq!(at("attn_prefill"), (per * 65.0, per * 65.0));
    let rows = validate_rows(&r.stdout, "all-xpu");
    assert!(rows.iter().all(|x| x.5 == "pass"));
}

/// `dyad validate` exits 0 on every model shipped in `workloads/models/` (those the tests above
/// check layout by layout excepted), run side by side, at the smallest and largest degrees
/// (TP 1 and 8, EP 8) to keep the test short: a plan that replicates what it charges split
/// fails at every degree above 1.
#[test]
fn validate_exits_0_on_every_shipped_model() {
    let covered = [
        "mixtral-8x7b",
        "llama-3-8b",
        "gemma-2-9b",
        "qwen3-30b-a3b",
        "deepseek-v2-lite",
        "mistral-7b-v0.1",
    ];
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/workloads/models");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "toml"))
        .filter(|p| !covered.iter().any(|c| p.file_stem().unwrap() == *c))
        .collect();
    files.sort();
    // OPT-66B and GLaM (ungated FFNs), DeepSeek-V3 (MLA at the 16th scale) among them.
    assert!(files.len() >= 7, "{files:?}");
    std::thread::scope(|s| {
        let runs: Vec<_> = files
            .iter()
            .map(|f| {
                let args = ["--tp", "1,8", "--ep", "8"];
                s.spawn(move || {
                    (
                        f,
                        dyad(&[&["validate", "--model", f.to_str().unwrap()][..], &args].concat()),
                    )
                })
            })
            .collect();
        for run in runs {
            let (f, r) = run.join().unwrap();
            assert_eq!(r.status, 0, "{}:\n{}", f.display(), r.stderr);
            // Qwen2's 28 heads do not split 8 ways, Qwen1.5-MoE's 60 experts not over 8
            // devices: those layouts are skipped and named, the others run.
            let name = f.file_stem().unwrap().to_str().unwrap();
            let skipped: Vec<&str> = r
                .stdout
                .lines()
                .filter_map(|l| l.strip_prefix("skipped "))
                .map(|l| l.split(':').next().unwrap())
                .collect();
            let want: &[&str] = match name {
                "qwen2-7b" | "qwen2-57b-a14b" => &["tp8"],
                "qwen1.5-moe-a2.7b" => &["ep8"],
                _ => &[],
            };
            assert_eq!(skipped, want, "{name}");
            assert!(r.stdout.contains("all-xpu tp1: "), "{name}");
        }
    });
}

#[test]
fn validate_skips_the_degrees_a_model_does_not_split_over_and_names_them() {
    // Qwen1.5-MoE: 16 heads split 1, 2, 4 and 8 ways; its 60 experts over 2 and 4 devices, not 8.
    let r = dyad(&[
        "validate",
        "--model",
        "qwen1.5-moe-a2.7b",
        "--policy",
        "all-xpu",
    ]);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(
            "skipped ep8: expert-parallel degree 8 with tensor-parallel degree 1: expert \
             parallelism needs tp = 1 and a degree that divides the routed experts (60)"
        ),
        "{}",
        r.stdout
    );
    for par in ["tp1", "tp2", "tp4", "tp8", "ep2", "ep4"] {
        let line = format!("all-xpu {par}: ");
        let summary = r.stdout.lines().find(|l| l.starts_with(&line));
        assert!(summary.is_some_and(|l| l.contains(" 0 failed")), "{par}");
    }
    assert!(!r.stdout.contains("all-xpu ep8: "));
}

#[test]
fn duplex_co_processes_experts_on_logic_pim_and_the_xpu() {
    // 48 decode sequences and a 96-token prompt (plus its 48-token second chunk): Duplex puts the
    // experts with fewest tokens on Logic-PIM and the rest on the xPU; both halves must compute
    // what one unit would.
    let args = [
        "--policy", "duplex", "--tp", "1", "--ep", "1", "--batch", "48",
    ];
    let r = dyad(&[&["validate", "--prompt-len", "96"][..], &args].concat());
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
    let experts: Vec<_> = validate_rows(&r.stdout, "duplex")
        .into_iter()
        .filter(|x| x.1.starts_with("expert_"))
        .collect();
    assert_eq!(experts.len(), 8);
    let on_pim = experts
        .iter()
        .filter(|x| x.2 == "whole on logic-pim0")
        .count();
    let on_xpu = experts.iter().filter(|x| x.2 == "whole on xpu0").count();
    assert!(
        on_pim > 0 && on_xpu > 0 && on_pim + on_xpu == 8,
        "{experts:?}"
    );
    assert!(experts.iter().all(|x| x.5 == "pass" && x.3 == x.4));
}

/// Exit status 3 is a bug in dyad, not the user's input: the hidden command that fails as a bug
/// would ends with 3 and says so.
#[test]
fn an_internal_error_exits_3() {
    let r = dyad(&["internal-error"]);
    assert_eq!(r.status, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("internal error (a bug in dyad)"),
        "{}",
        r.stderr
    );
}

/// `dyad run | head -1`: standard output closed after the first line ends the run quietly with
/// status 0, not with "Broken pipe" and status 2.
#[test]
fn a_closed_standard_output_ends_quietly_with_0() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    // The serving report of the default comparison is long; the first line comes early.
    let mut child = Command::new(env!("CARGO_BIN_EXE_dyad"))
        .args(["run", "--format", "json"])
        .current_dir(crate::util::ROOT)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first.trim(), "{");
    // The reader is dropped here: the pipe is closed with most of the report unwritten.
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The JSON report of `dyad run args...`.
fn run_json(args: &[&str]) -> serde_json::Value {
    let mut a = vec!["run", "--format", "json"];
    a.extend_from_slice(args);
    let r = dyad(&a);
    assert_eq!(r.status, 0, "{a:?}: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

#[test]
fn a_model_that_does_not_fit_exits_2_naming_the_smallest_tp() {
    // Llama-3-70B decode, batch 64 at KV 1024: its KV cache is 80 layers x 8 KV heads x 128 x
    // (K and V) x 2 bytes = 327,680 B per token, 21.5 GB for 65,536 tokens. With bf16 weights
    // (2 bytes per parameter) the device share is (weights + KV) / TP against 80 GB.
    let m = dyad::config::load_model("llama-3-70b".as_ref()).unwrap();
    let total = m.params() as f64 * 2.0 + 327_680.0 * 64.0 * 1024.0;
    let smallest = [1u64, 2, 4, 8]
        .into_iter()
        .find(|&tp| total / tp as f64 <= 80e9)
        .unwrap();
    assert_eq!(
        smallest, 4,
        "the closed form itself: (141 + 21.5) GB / 2 > 80 GB"
    );
    let r = dyad(&["run", "--model", "llama-3-70b", "--tp", "1"]);
    let want = format!("--tp {smallest}");
    let want = format!("({want})");
    expect_input_error(
        &r,
        &[
            "does not fit",
            "141 GB",
            "21.5 GB",
            "80.0 GB",
            &want,
            "--allow-oversize",
        ],
    );
    assert!(r.stdout.is_empty());
    // Asked for, it is costed anyway and still says it does not fit.
    let r = dyad(&[
        "run",
        "--model",
        "llama-3-70b",
        "--tp",
        "1",
        "--allow-oversize",
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.contains("DOES NOT FIT"), "{}", r.stdout);
    let v = run_json(&["--model", "llama-3-70b", "--tp", "1", "--allow-oversize"]);
    assert_eq!(v["memory"]["fits"], false);
    // Left to choose, dyad picks that TP and says why.
    let v = run_json(&["--model", "llama-3-70b"]);
    assert_eq!(v["inputs"]["tp"], smallest);
    let why = v["inputs"]["tp_reason"].as_str().unwrap();
    assert!(why.starts_with("TP 4: smallest power of two"), "{why}");
}

#[test]
fn the_header_and_inputs_state_devices_tp_ep_and_attention_parallelism() {
    let r = dyad(&["run"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let head: Vec<&str> = r.stdout.lines().take(3).collect();
    assert!(
        head[0].contains("x2 (TP 2, EP 1, attention data-parallel 1)"),
        "{head:?}"
    );
    assert!(
        head[2].contains("parallelism chosen by dyad: TP 2"),
        "{head:?}"
    );
    let v = run_json(&[]);
    let i = &v["inputs"];
    assert_eq!(
        (&i["tp"], &i["ep"], &i["devices"], &i["attention_dp"]),
        (&2.into(), &1.into(), &2.into(), &1.into())
    );
    // Given, the TP needs no reason.
    let v = run_json(&["--tp", "4"]);
    assert!(v["inputs"].get("tp_reason").is_none());
    assert_eq!(v["inputs"]["devices"], 4);
}

#[test]
fn precision_flags_set_the_bytes_a_single_iteration_moves() {
    let m = dyad::config::load_model("llama-3-8b".as_ref()).unwrap();
    let base = ["--model", "llama-3-8b", "--batch", "8", "--tp", "1"];
    let bf16 = run_json(&base);
    let q: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--weights", "int4", "--kv", "fp8"])
        .collect();
    let q = run_json(&q);
    assert_eq!(
        q["inputs"]["precision"],
        serde_json::json!({"weights": "int4", "activations": "bf16", "kv": "fp8"})
    );
    assert_eq!(bf16["inputs"]["precision"]["weights"], "bf16");
    // int4 packs two weights per byte; fp8 holds the KV cache in one byte per element.
    let w = q["memory"]["weights_bytes"].as_f64().unwrap();
    assert!((w / (m.params() as f64 * 0.5) - 1.0).abs() < 1e-12, "{w}");
    let kv = |v: &serde_json::Value| v["memory"]["kv_bytes"].as_f64().unwrap();
    assert!((kv(&q) / kv(&bf16) - 0.5).abs() < 1e-12);
    let stream = |v: &serde_json::Value, s: &str| -> f64 {
        v["ops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["streams"][s].as_f64().unwrap())
            .sum()
    };
    assert!((stream(&q, "weights") / stream(&bf16, "weights") - 0.25).abs() < 1e-9);
    let t = |v: &serde_json::Value| v["totals"]["iteration_s"].as_f64().unwrap();
    assert!(
        t(&q) < t(&bf16),
        "a memory-bound decode moving fewer bytes is faster"
    );
    expect_input_error(&dyad(&["run", "--weights", "int3"]), &["int3", "--weights"]);
}

#[test]
fn serving_only_flags_without_serving_exit_2() {
    expect_input_error(&dyad(&["run", "--ep", "2"]), &["--ep", "--serving"]);
    expect_input_error(&dyad(&["run", "--seed", "2"]), &["--seed", "--serving"]);
}
