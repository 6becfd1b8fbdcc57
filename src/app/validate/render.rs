//! The text `dyad validate` prints: a header line, one row per check, a summary per layout.

use super::*;

/// The first line: the scaled model, its layers and their attention, and the element type.
fn header(v: &Validation) -> String {
    let m = &v.model;
    let windows: Vec<String> = m
        .plans
        .iter()
        .map(|p| match p.attention {
            Attention::Window { tokens } => format!("window {tokens}"),
            Attention::Chunk { tokens } => format!("chunk {tokens}"),
            Attention::Full => "full".to_string(),
        })
        .collect();
    format!(
        "model {} ({} layers: {}; hidden {}, heads {}/{}, head_dim {}, {}), {}\n",
        m.name,
        m.layers(),
        windows.join(", "),
        m.hidden,
        m.heads,
        m.kv_heads,
        m.head_dim,
        m.moe.map_or("dense".to_string(), |x| format!(
            "{} experts top-{}, inner {}",
            x.experts, x.top_k, x.intermediate
        )),
        v.dtype
    )
}

/// Text table: the layouts skipped (one line each), one line per op, then a summary line per
/// policy and layout.
pub fn render(v: &Validation) -> String {
    let mut s = header(v);
    for x in &v.skipped {
        let _ = writeln!(s, "skipped {}: {}", x.par, x.why);
    }
    let _ = writeln!(
        s,
        "{:<8} {:>4} {:>5} {:<16} {:<26} {:>9} {:>9} {:>12} {:>12}  result",
        "policy", "par", "layer", "op", "plan", "max err", "tol", "FLOPs charged", "FLOPs counted"
    );
    for r in &v.rows {
        let c = &r.check;
        let verdict = match (&c.unsupported, c.passed()) {
            (Some(why), _) => format!("FAIL ({why})"),
            (None, true) => "pass".to_string(),
            (None, false) => {
                let mut why: Vec<String> = Vec::new();
                if c.error > c.tolerance {
                    why.push("error over tolerance".into());
                }
                for p in c.parts.iter().filter(|p| !p.mismatches.is_empty()) {
                    why.push(format!("{}: {}", p.unit, p.mismatches.join("; ")));
                }
                format!("FAIL ({})", why.join(" | "))
            }
        };
        // An op no reference kernel runs has no error to show.
        let error = match c.unsupported {
            Some(_) => "-".to_string(),
            None => format!("{:.2e}", c.error),
        };
        let _ = writeln!(
            s,
            "{:<8} {:>4} {:>5} {:<16} {:<26} {error:>9} {:>9.1e} {:>12} {:>12}  {verdict}",
            r.policy,
            r.par,
            r.layer.map_or("-".to_string(), |l| l.to_string()),
            r.op,
            r.plan,
            c.tolerance,
            c.charged_flops(),
            c.counted_flops(),
        );
    }
    let mut groups: Vec<(&str, &str)> = v.rows.iter().map(|r| (r.policy, &*r.par)).collect();
    groups.dedup();
    for (policy, par) in groups {
        let rs: Vec<&Row> = v
            .rows
            .iter()
            .filter(|r| r.policy == policy && r.par == par)
            .collect();
        let failed = rs.iter().filter(|r| !r.check.passed()).count();
        let worst = rs
            .iter()
            .filter(|r| r.check.unsupported.is_none())
            .map(|r| r.check.error / r.check.tolerance)
            .fold(0.0, f64::max);
        let _ = writeln!(
            s,
            "{policy} {par}: {} ops, {} passed, {failed} failed; worst error {:.3} of tolerance",
            rs.len(),
            rs.len() - failed,
            worst
        );
    }
    s
}
