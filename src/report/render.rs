//! Renderings of a [`RunReport`]: terminal table, Markdown, CSV, JSON.

use std::fmt::Write as _;

use super::{OpResult, RunReport};

/// Output format of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned text for a terminal.
    Table,
    /// Pretty-printed JSON of the whole report.
    Json,
    /// One CSV row per op.
    Csv,
    /// Markdown tables.
    Md,
}

impl Format {
    /// Each format with its name in flags and a line of help: the only list.
    pub const TABLE: [(Format, &'static str, &'static str); 4] = [
        (Format::Table, "table", "aligned text for a terminal"),
        (
            Format::Json,
            "json",
            "pretty-printed JSON of the whole report",
        ),
        (
            Format::Csv,
            "csv",
            "one CSV row per op (single iterations only)",
        ),
        (Format::Md, "md", "Markdown tables"),
    ];
}

/// Renders `r` in `format`.
pub fn render(r: &RunReport, format: Format) -> String {
    match format {
        Format::Table => table(r, false),
        Format::Md => table(r, true),
        Format::Csv => csv(r),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(r)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
            s.push('\n');
            s
        }
    }
}

/// SI prefixes, largest first; the first six are those at or above one.
const PREFIX: [(f64, &str); 9] = [
    (1e15, "P"),
    (1e12, "T"),
    (1e9, "G"),
    (1e6, "M"),
    (1e3, "k"),
    (1.0, ""),
    (1e-3, "m"),
    (1e-6, "u"),
    (1e-9, "n"),
];

/// `x` over the largest of `prefixes` it reaches (rounding included), and that prefix; the
/// smallest prefix below them all.
fn prefixed(x: f64, prefixes: &[(f64, &'static str)]) -> (f64, &'static str) {
    let (scale, p) = prefixes
        .iter()
        .find(|(s, _)| x.abs() >= *s * 0.9995)
        .or(prefixes.last())
        .copied()
        .unwrap_or((1.0, ""));
    (x / scale, p)
}

/// A number with an SI prefix and 3 significant digits: `si(1.5e9, "FLOP")` = "1.50 GFLOP".
pub fn si(x: f64, unit: &str) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x} {unit}");
    }
    let (v, p) = prefixed(x, &PREFIX);
    let digits = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$} {p}{unit}")
}

/// A positive value as an axis or roof label: an SI prefix at or above one and at most one
/// decimal (`3.35e12`, `B/s` → "3.4 TB/s"; `3e14`, "" → "300 T").
pub fn si_label(x: f64, unit: &str) -> String {
    if !x.is_finite() || x <= 0.0 {
        return format!("{x} {unit}").trim_end().to_string();
    }
    let (m, p) = prefixed(x, &PREFIX[..6]);
    let digits = if m >= 10.0 || (m - m.round()).abs() < 1e-9 {
        0
    } else {
        1
    };
    format!("{m:.digits$} {p}{unit}").trim_end().to_string()
}

fn header(r: &RunReport) -> String {
    let i = &r.inputs;
    let shape = match i.phase.as_str() {
        "prefill" => format!("prompt {}", i.prompt_len),
        _ => format!("KV {}", i.kv_len),
    };
    let note = if i.policy == "duplex" {
        " (op times summed one by one here; serving runs simulate the xPU and PIM overlapping)"
    } else {
        ""
    };
    let mut s = format!(
        "{}: {} batch {}, {shape}, policy {}{note}\nprecision {}",
        super::placement_words(&i.model, &i.arch, i.devices, i.tp, i.ep, i.attention_dp),
        i.phase,
        i.batch,
        i.policy,
        super::precision_words(&i.precision)
    );
    if i.sp > 1 {
        s.push_str(&format!(
            "\nsequence-parallel (Ulysses) over {} devices: tokens split, heads split in attention",
            i.sp
        ));
    }
    if let Some(why) = &i.tp_reason {
        let _ = write!(s, "\nparallelism chosen by dyad: {why}");
    }
    for n in &i.model_notes {
        let _ = write!(s, "\nmodel: {n}");
    }
    s
}

const COLS: [&str; 9] = [
    "op", "shape", "unit", "FLOPs", "bytes", "Op/B", "bound", "time", "share",
];

fn row(o: &OpResult, of: f64) -> [String; 9] {
    [
        o.name.clone(),
        o.shape.clone(),
        o.unit.to_string(),
        si(o.flops, "FLOP"),
        si(o.bytes, "B"),
        format!("{:.1}", o.op_b),
        o.bound.name().to_string(),
        si(o.time_s, "s"),
        format!("{:.1}%", 100.0 * o.time_s / of),
    ]
}

/// Lays out rows as aligned text, or as a Markdown table.
fn grid(rows: &[[String; 9]], md: bool) -> String {
    let mut w = COLS.map(str::len);
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i] - c.chars().count();
            let cell = if i >= 3 {
                format!("{}{c}", " ".repeat(pad))
            } else {
                format!("{c}{}", " ".repeat(pad))
            };
            if md {
                let _ = write!(s, "| {cell} ");
            } else {
                let _ = write!(s, "{cell}  ");
            }
        }
        if md {
            s.push('|');
        }
        s.trim_end().to_string() + "\n"
    };
    let mut s = line(&COLS.map(String::from));
    if md {
        let sep: Vec<String> = w
            .iter()
            .enumerate()
            .map(|(i, n)| {
                if i >= 3 {
                    format!("{}:", "-".repeat(*n - 1))
                } else {
                    "-".repeat(*n)
                }
            })
            .collect();
        s += &line(&sep);
    }
    for r in rows {
        s += &line(r);
    }
    s
}

fn table(r: &RunReport, md: bool) -> String {
    let mut s = String::new();
    let h = if md { "## " } else { "" };
    let _ = writeln!(s, "{h}{}", header(r));
    let m = &r.memory;
    let _ = writeln!(
        s,
        "\nmemory per device: weights {} ({:.2} bits per weight) + KV cache {} of {}{}",
        si(m.weights_bytes, "B"),
        m.bits_per_weight,
        si(m.kv_bytes, "B"),
        si(m.capacity_bytes, "B"),
        if m.fits {
            ""
        } else {
            "  (DOES NOT FIT: costed anyway, as --allow-oversize asked; raise --tp)"
        }
    );
    if let Some(first) = r.layers.first() {
        let n = r.layers.len();
        let alike = r
            .layers
            .iter()
            .all(|l| (l.time_s - first.time_s).abs() <= 1e-12 * first.time_s.abs());
        let note = if alike { ", all layers alike" } else { "" };
        let _ = writeln!(s, "\n{h}layer {} of {n}{note}\n", first.layer);
        let rows: Vec<_> = r
            .ops
            .iter()
            .filter(|o| o.layer == Some(first.layer))
            .map(|o| row(o, first.time_s))
            .collect();
        s += &grid(&rows, md);
        let _ = writeln!(
            s,
            "\nlayer total {}, {} on this device",
            si(first.time_s, "s"),
            si(first.energy_j, "J")
        );
    }
    let other: Vec<_> = r.ops.iter().filter(|o| o.layer.is_none()).collect();
    let other_t: f64 = other.iter().map(|o| o.time_s).sum();
    if !other.is_empty() {
        let _ = writeln!(s, "\n{h}outside the layers (share of their sum)\n");
        let rows: Vec<_> = other.iter().map(|o| row(o, other_t)).collect();
        s += &grid(&rows, md);
    }
    let t = &r.totals;
    let layers_t: f64 = r.layers.iter().map(|l| l.time_s).sum();
    let _ = writeln!(
        s,
        "\n{h}totals\n\niteration {} per device ({} layers {} + other {})\n{}, {} moved, {} tokens, {:.0} tokens/s",
        si(t.iteration_s, "s"),
        r.layers.len(),
        si(layers_t, "s"),
        si(other_t, "s"),
        si(t.flops, "FLOP"),
        si(t.bytes, "B"),
        t.tokens,
        t.tokens_per_s,
    );
    energy_lines(&mut s, r);
    if t.output_tokens != t.tokens {
        let _ = writeln!(
            s,
            "{} output tokens, {:.0} output tokens/s",
            t.output_tokens, t.output_tokens_per_s
        );
    }
    s
}

/// The iteration's energy on all devices, dynamic by component and static (static power ×
/// devices × iteration time) apart, then the same per token.
fn energy_lines(s: &mut String, r: &RunReport) {
    let (t, e) = (&r.totals, &r.totals.energy_j);
    let _ = writeln!(
        s,
        "energy per iteration {} over {} devices = {} dynamic (MAC {}, DRAM xPU path {}, DRAM PIM path {}, links {}) + {} static ({} per device × {} devices × {})",
        si(t.energy_total_j, "J"),
        r.inputs.tp,
        si(t.energy_dynamic_j, "J"),
        si(e.mac, "J"),
        si(e.dram_xpu, "J"),
        si(e.dram_pim, "J"),
        si(e.link, "J"),
        si(t.energy_static_j, "J"),
        si(t.static_power_w, "W"),
        r.inputs.tp,
        si(t.iteration_s, "s"),
    );
    let _ = writeln!(
        s,
        "energy per token {} = {} dynamic + {} static (over {} tokens)",
        si(t.energy_per_token_j, "J"),
        si(t.energy_per_token_dynamic_j, "J"),
        si(t.energy_per_token_static_j, "J"),
        t.tokens,
    );
}

fn csv(r: &RunReport) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "layer", "op", "shape", "class", "unit", "flops", "bytes", "op_b", "bound", "time_s",
        "share",
    ]);
    for o in &r.ops {
        let of = match o.layer {
            Some(l) => r
                .layers
                .iter()
                .find(|x| x.layer == l)
                .map_or(o.time_s, |x| x.time_s),
            None => r
                .ops
                .iter()
                .filter(|x| x.layer.is_none())
                .map(|x| x.time_s)
                .sum(),
        };
        let _ = w.write_record([
            o.layer.map_or(String::new(), |l| l.to_string()),
            o.name.clone(),
            o.shape.clone(),
            o.class.to_string(),
            o.unit.to_string(),
            o.flops.to_string(),
            o.bytes.to_string(),
            o.op_b.to_string(),
            o.bound.name().to_string(),
            o.time_s.to_string(),
            (o.time_s / of).to_string(),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::si;

    #[test]
    fn si_prefixes() {
        assert_eq!(si(1.5e9, "FLOP"), "1.50 GFLOP");
        assert_eq!(si(2.5e-5, "s"), "25.0 us");
        assert_eq!(si(999.96e6, "B"), "1.00 GB");
    }
}
