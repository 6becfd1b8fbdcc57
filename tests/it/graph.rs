//! `dyad graph`: the DOT it writes is the iteration `dyad run` costs (the same TP, each op on the
//! unit the policy places it on, at the same time), and every node says its time, bound and unit.

use dyad::report::render::si;
use serde_json::Value;

use crate::util::{dyad, expect_input_error};

/// The value of `key="…"` in a DOT line (up to the next unescaped quote).
fn attr<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = [' ', '[']
        .iter()
        .find_map(|c| line.find(&format!("{c}{key}=\"")))?;
    let rest = &line[start + key.len() + 3..];
    let mut prev = ' ';
    let end = rest.char_indices().find_map(|(i, c)| {
        let hit = c == '"' && prev != '\\';
        prev = c;
        hit.then_some(i)
    })?;
    Some(&rest[..end])
}

/// One node of a written graph: its label's lines and its tooltip's `key=value` pairs.
struct Node {
    label: Vec<String>,
    tip: Vec<(String, String)>,
}

impl Node {
    fn tip(&self, key: &str) -> &str {
        let hit = self.tip.iter().find(|(k, _)| k == key);
        &hit.unwrap_or_else(|| panic!("no {key} in {:?}", self.tip))
            .1
    }
    fn time(&self) -> f64 {
        self.tip("time_s").parse().unwrap()
    }
}

/// A written graph: its label's lines, its nodes in index order, and its edges. Panics unless
/// the text is a `digraph` whose node ids are n0, n1, … in order and whose edges join nodes it
/// declares.
struct Dot {
    label: Vec<String>,
    nodes: Vec<Node>,
    edges: Vec<(usize, usize)>,
}

fn parse(text: &str) -> Dot {
    assert!(text.starts_with("digraph iteration {\n"), "{text}");
    assert!(text.ends_with("}\n"));
    let mut dot = Dot {
        label: Vec::new(),
        nodes: Vec::new(),
        edges: Vec::new(),
    };
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with("graph [") {
            let label = attr(l, "label").unwrap().to_string();
            dot.label = label.split("\\l").map(str::to_string).collect();
        } else if l.starts_with("node [") {
            assert!(l.contains("style=filled"), "{l}");
        } else if let Some((a, b)) = l.strip_suffix(';').and_then(|e| e.split_once(" -> ")) {
            let id = |s: &str| s.strip_prefix('n').unwrap().parse::<usize>().unwrap();
            dot.edges.push((id(a), id(b)));
        } else if l.starts_with('n') {
            let id: usize = l[1..l.find(' ').unwrap()].parse().unwrap();
            assert_eq!(id, dot.nodes.len(), "node ids out of order at {l}");
            let label = attr(line, "label").unwrap_or_else(|| panic!("no label: {l}"));
            let tip = attr(line, "tooltip").unwrap_or_else(|| panic!("no tooltip: {l}"));
            dot.nodes.push(Node {
                label: label.split("\\n").map(str::to_string).collect(),
                tip: tip
                    .split(' ')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap();
                        (k.to_string(), v.to_string())
                    })
                    .collect(),
            });
        }
    }
    for &(a, b) in &dot.edges {
        assert!(a < b && b < dot.nodes.len(), "edge n{a} -> n{b}");
    }
    dot
}

/// `dyad graph args` and `dyad run args --format json`, both succeeding.
fn graph_and_run(args: &[&str]) -> (Dot, Value) {
    let g = dyad(&[&["graph"], args].concat());
    assert_eq!(g.status, 0, "{}", g.stderr);
    let r = dyad(&[&["run"], args, &["--format", "json"]].concat());
    assert_eq!(r.status, 0, "{}", r.stderr);
    (parse(&g.stdout), serde_json::from_str(&r.stdout).unwrap())
}

/// A time as the label writes it ("21.3 us") in seconds.
fn seconds(text: &str) -> f64 {
    let (v, unit) = text.split_once(' ').unwrap();
    let scale = match unit {
        "s" => 1.0,
        "ms" => 1e-3,
        "us" => 1e-6,
        "ns" => 1e-9,
        "ps" => 1e-12,
        _ => panic!("unit {unit:?}"),
    };
    v.parse::<f64>().unwrap() * scale
}

#[test]
fn graph_uses_the_tp_run_picks() {
    // Mixtral-8x7B's 46.7 G parameters in bf16 are 93 GB, more than one H100's 80 GB: run must
    // pick TP 2 or more, and the graph must be split the same way.
    let (g, run) = graph_and_run(&[]);
    let tp = run["inputs"]["tp"].as_u64().unwrap();
    assert!(tp >= 2, "run picked TP {tp}");
    let head = &g.label[0];
    assert!(head.contains(&format!("(TP {tp}, ")), "{head}");
    assert!(
        g.label
            .iter()
            .any(|l| l.starts_with("parallelism chosen by dyad: "))
    );
    // Split ops: two all-reduces per layer (after attention and after the FFN), and the
    // attention heads divided by TP (32 query heads, 8 KV heads).
    let allreduces = g
        .nodes
        .iter()
        .filter(|n| n.label[0].ends_with("_allreduce"));
    assert_eq!(allreduces.count(), 2 * 32);
    let decode = g
        .nodes
        .iter()
        .find(|n| n.label[0] == "L0 attn_decode")
        .unwrap();
    assert!(
        decode.label[1].contains(&format!("h{}/{}", 32 / tp, 8 / tp)),
        "{}",
        decode.label[1]
    );
    // The same TP given as a flag gives the same graph.
    let t = tp.to_string();
    let given = dyad(&["graph", "--tp", &t]);
    assert_eq!(parse(&given.stdout).nodes.len(), g.nodes.len());
}

#[test]
fn every_node_shows_its_time_bound_and_unit_as_run_costs_it() {
    for (arch, policy) in [
        ("h100", "all-xpu"),
        ("duplex", "dispatch"),
        ("duplex", "duplex"),
    ] {
        let args = [
            "--arch",
            arch,
            "--policy",
            policy,
            "--model",
            "mixtral-8x7b",
            "--batch",
            "4",
        ];
        let (g, run) = graph_and_run(&args);
        let ops = run["ops"].as_array().unwrap();
        assert_eq!(g.nodes.len(), ops.len(), "{arch} {policy}");
        let mut unit_time = [0.0; 2];
        for (n, o) in g.nodes.iter().zip(ops) {
            // The label: "[Ln ]name", shape, "time, bound, unit".
            assert_eq!(n.label.len(), 3, "{:?}", n.label);
            let layer = o["layer"]
                .as_u64()
                .map_or(String::new(), |l| format!("L{l} "));
            assert_eq!(
                n.label[0],
                format!("{layer}{}", o["name"].as_str().unwrap())
            );
            let cost: Vec<&str> = n.label[2].split(", ").collect();
            assert_eq!(cost.len(), 3, "{}", n.label[2]);
            let bound = o["bound"].as_str().unwrap();
            assert!(["compute", "memory", "overhead", "link"].contains(&cost[1]));
            assert_eq!(cost[1], bound);
            assert_eq!(n.tip("bound"), bound);
            let unit = o["unit"].as_str().unwrap();
            assert_eq!(n.tip("unit"), unit);
            assert_eq!(cost[2], if unit == "pim" { "PIM" } else { "xPU" });
            // The label's time is the op's to three significant digits; the tooltip's exact.
            let t = o["time_s"].as_f64().unwrap();
            assert!(
                (seconds(cost[0]) / t - 1.0).abs() < 5e-3,
                "{} vs {t}",
                cost[0]
            );
            assert!((n.time() / t - 1.0).abs() < 1e-12, "{} vs {t}", n.time());
            // An op's time is its roofline: the larger side plus its overhead.
            let side: f64 = ["compute_s", "memory_s"]
                .map(|k| n.tip(k).parse::<f64>().unwrap())
                .into_iter()
                .fold(0.0, f64::max);
            let over: f64 = n.tip("overhead_s").parse().unwrap();
            assert!(((side + over) / n.time() - 1.0).abs() < 1e-9, "{:?}", n.tip);
            unit_time[usize::from(unit == "pim")] += n.time();
        }
        // Ops run one at a time in a single iteration, so the nodes' times sum to run's
        // iteration time; and each unit's share is the sum of run's ops on it.
        let total = run["totals"]["iteration_s"].as_f64().unwrap();
        assert!(((unit_time[0] + unit_time[1]) / total - 1.0).abs() < 1e-9);
        let caption = g.label.iter().find(|l| l.starts_with("op time")).unwrap();
        assert!(
            caption.contains(&format!("total {}", si(total, "s"))),
            "{caption}"
        );
        if policy == "all-xpu" {
            assert_eq!(unit_time[1], 0.0);
        } else {
            // Decode at batch 4 has low Op/B: the policies put most ops on PIM, and the
            // collectives stay on the xPU side.
            assert!(unit_time[0] > 0.0 && unit_time[1] > 0.0, "{unit_time:?}");
        }
    }
}

#[test]
fn a_pim_policy_without_pim_is_the_error_run_gives() {
    for policy in ["dispatch", "duplex"] {
        let args = ["--arch", "h100", "--policy", policy];
        let g = dyad(&[&["graph"], &args[..]].concat());
        let r = dyad(&[&["run"], &args[..]].concat());
        expect_input_error(&g, &["--policy", policy, "needs an arch with PIM units"]);
        assert_eq!(g.status, r.status);
        assert_eq!(g.stderr, r.stderr);
        assert!(g.stdout.is_empty());
    }
}

#[test]
fn a_model_that_does_not_fit_is_drawn_and_labelled() {
    // TP 1 holds Mixtral's 93 GB of weights on one 80 GB H100: run refuses, graph draws it.
    let r = dyad(&["run", "--tp", "1"]);
    assert_eq!(r.status, 2, "{}", r.stderr);
    let g = dyad(&["graph", "--tp", "1"]);
    assert_eq!(g.status, 0, "{}", g.stderr);
    let dot = parse(&g.stdout);
    assert!(
        dot.label.iter().any(|l| l.contains("DOES NOT FIT")),
        "{:?}",
        dot.label
    );
    assert!(!dot.nodes.iter().any(|n| n.label[0].ends_with("_allreduce")));
}
