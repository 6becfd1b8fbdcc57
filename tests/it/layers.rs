//! The layering rule: a top-level module of `src/` (`src/<m>.rs` or `src/<m>/…`) uses only the
//! modules its row of [`ALLOWED`] lists. Every `crate::X` path in code counts (in `use crate::…`,
//! grouped `use crate::{a, b::c}` and inline `crate::x::y` alike); comments, doc comments and
//! string literals do not.
//!
//! The binary (`src/cli`) reaches the library as `dyad::X`; its edges are printed, and for now
//! not checked (see [`LENIENT`]). `src/lib.rs` and `src/main.rs`, the crate roots, are exempt.

use std::collections::BTreeSet;
use std::path::Path;

use crate::util::root;

/// Each top-level module and the modules it may use. Written once, here; ARCHITECTURE.md copies
/// it. A module not listed may not exist in `src/`: add its row first.
const ALLOWED: &[(&str, &[&str])] = &[
    ("units", &[]),
    ("names", &[]),
    ("work", &["units", "names"]),
    ("model", &["units", "names", "work"]),
    ("hw", &["units", "names", "work"]),
    ("tech", &["units", "names"]),
    ("map", &["units", "names", "work", "model", "hw"]),
    ("kernels", &["units", "names", "work", "model", "map"]),
    ("sim", &["units", "names", "work", "model", "hw", "map"]),
    (
        "report",
        &[
            "units", "names", "work", "model", "hw", "map", "sim", "tech",
        ],
    ),
    (
        "config",
        &[
            "units", "names", "work", "model", "hw", "map", "sim", "tech",
        ],
    ),
    (
        "sweep",
        &[
            "units", "names", "work", "model", "hw", "map", "sim", "tech", "config", "report",
        ],
    ),
    (
        "app",
        &[
            "units", "names", "work", "model", "hw", "map", "sim", "tech", "config", "report",
            "sweep", "kernels",
        ],
    ),
    // The binary: `app`, plus any module whose types its arguments parse into.
    ("cli", &["app"]),
];

/// Modules whose edges outside [`ALLOWED`] are printed rather than failed: the binary, until its
/// argument types settle.
const LENIENT: &[&str] = &["cli"];

/// The crate roots: they declare the modules and belong to no layer.
const EXEMPT: &[&str] = &["lib.rs", "main.rs"];

/// One use of module `to` by module `from`, first seen at `file:line`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    file: String,
    line: usize,
    from: String,
    to: String,
}

/// The edges of `edges` that `table` does not allow, one message each, naming the file, line
/// and edge. Uses of a module by itself are always allowed.
fn violations(table: &[(&str, &[&str])], edges: &[Edge]) -> Vec<String> {
    let mut out = Vec::new();
    for e in edges.iter().filter(|e| e.from != e.to) {
        let at = format!("{}:{}", e.file, e.line);
        match table.iter().find(|(m, _)| *m == e.from) {
            None => out.push(format!(
                "{at}: module `{}` has no row in the layering table (uses `{}`)",
                e.from, e.to
            )),
            Some((_, allowed)) if !allowed.contains(&e.to.as_str()) => out.push(format!(
                "{at}: `{}` -> `{}` is not an allowed edge (`{}` may use: {})",
                e.from,
                e.to,
                e.from,
                if allowed.is_empty() {
                    "nothing".to_string()
                } else {
                    allowed.join(", ")
                }
            )),
            Some(_) => {}
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `src` with every comment, string literal and character literal blanked to spaces (newlines
/// kept, so offsets keep their line numbers).
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    // Blanks c[from..to], keeping newlines.
    let blank = |out: &mut String, from: usize, to: usize| {
        for &ch in &c[from..to.min(c.len())] {
            out.push(if ch == '\n' { '\n' } else { ' ' });
        }
    };
    while i < c.len() {
        // `r"…"`, `br"…"` and `cr"…"` open raw strings; `for"` or `xr"` do not.
        let raw_start = c[i] == 'r'
            && match i.checked_sub(1).map(|k| c[k]) {
                Some('b' | 'c') => i < 2 || !is_ident(c[i - 2]),
                Some(p) => !is_ident(p),
                None => true,
            };
        let end = if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            Some(line_comment_end(&c, i))
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            Some(block_comment_end(&c, i))
        } else if c[i] == '"' {
            Some(string_end(&c, i))
        } else if raw_start {
            raw_string_end(&c, i)
        } else if c[i] == '\'' {
            char_literal_end(&c, i)
        } else {
            None
        };
        match end {
            Some(j) => {
                blank(&mut out, i, j);
                i = j;
            }
            None => {
                out.push(c[i]);
                i += 1;
            }
        }
    }
    out
}

/// Just past the end of the `//` comment at `i` (its newline is kept).
fn line_comment_end(c: &[char], i: usize) -> usize {
    (i..c.len()).find(|&j| c[j] == '\n').unwrap_or(c.len())
}

/// Just past the `/* … */` comment at `i`, nested comments included.
fn block_comment_end(c: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i < c.len() {
        if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            depth += 1;
            i += 2;
        } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    c.len()
}

/// Just past the `"…"` string at `i`, escapes included.
fn string_end(c: &[char], mut i: usize) -> usize {
    i += 1;
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    c.len()
}

/// Just past the raw string `r#"…"#` at `i`, if one starts there.
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let hashes = c[i + 1..].iter().take_while(|&&x| x == '#').count();
    if c.get(i + 1 + hashes) != Some(&'"') {
        return None;
    }
    let mut j = i + 2 + hashes;
    while j < c.len() {
        if c[j] == '"'
            && c[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&x| x == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(c.len())
}

/// Just past the character literal at `i` (`'x'`, `'\n'`, `'\u{..}'`); `None` for a lifetime
/// or label.
fn char_literal_end(c: &[char], i: usize) -> Option<usize> {
    if c.get(i + 1) == Some(&'\\') {
        let close = (i + 3..c.len()).find(|&j| c[j] == '\'')?;
        Some(close + 1)
    } else if c.get(i + 2) == Some(&'\'') {
        Some(i + 3)
    } else {
        None
    }
}

/// The identifier starting at `i` (after any whitespace), and the index just past it.
fn ident_at(c: &[char], mut i: usize) -> (String, usize) {
    while i < c.len() && c[i].is_whitespace() {
        i += 1;
    }
    let start = i;
    while i < c.len() && is_ident(c[i]) {
        i += 1;
    }
    (c[start..i].iter().collect(), i)
}

/// Index just past `::` at `i` (after any whitespace), if it is there.
fn path_sep_at(c: &[char], mut i: usize) -> Option<usize> {
    while i < c.len() && c[i].is_whitespace() {
        i += 1;
    }
    (c.get(i) == Some(&':') && c.get(i + 1) == Some(&':')).then_some(i + 2)
}

/// The first segment of each path in the group whose `{` is at `open`: `{a, b::c, d::{e, f}}`
/// gives `a`, `b`, `d`. `self` names the parent and is skipped; a glob is `*`.
fn group_heads(c: &[char], open: usize) -> Vec<String> {
    let mut heads = Vec::new();
    let (mut depth, mut i, mut expect_head) = (0usize, open, true);
    while i < c.len() {
        match c[i] {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expect_head = true,
            '*' if depth == 1 && expect_head => {
                heads.push("*".to_string());
                expect_head = false;
            }
            ch if depth == 1 && expect_head && is_ident(ch) => {
                let (name, next) = ident_at(c, i);
                if name != "self" {
                    heads.push(name);
                }
                expect_head = false;
                i = next;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    heads
}

/// Every `prefix::X` in `code` (already [`code_only`]) as (line, X), grouped forms expanded.
fn paths_under(code: &str, prefix: &str) -> Vec<(usize, String)> {
    let c: Vec<char> = code.chars().collect();
    let p: Vec<char> = prefix.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    for i in 0..c.len() {
        if c[i] == '\n' {
            line += 1;
        }
        let starts = c[i..].starts_with(&p)
            && (i == 0 || !is_ident(c[i - 1]))
            && !c.get(i + p.len()).is_some_and(|&x| is_ident(x));
        let Some(after) = starts.then(|| path_sep_at(&c, i + p.len())).flatten() else {
            continue;
        };
        let (name, next) = ident_at(&c, after);
        if !name.is_empty() {
            out.push((line, name));
            continue;
        }
        match c[next..].iter().position(|x| !x.is_whitespace()) {
            Some(k) if c[next + k] == '{' => {
                out.extend(group_heads(&c, next + k).into_iter().map(|h| (line, h)));
            }
            Some(k) if c[next + k] == '*' => out.push((line, "*".to_string())),
            _ => {}
        }
    }
    out
}

/// The edges of one file of module `from`, given as `file` in messages: one per used module, at
/// its first use. `prefixes` name the library: `crate` inside it, `dyad` in the binary.
fn file_edges(file: &str, from: &str, text: &str, prefixes: &[&str]) -> Vec<Edge> {
    let code = code_only(text);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for prefix in prefixes {
        for (line, to) in paths_under(&code, prefix) {
            if seen.insert(to.clone()) {
                out.push(Edge {
                    file: file.to_string(),
                    line,
                    from: from.to_string(),
                    to,
                });
            }
        }
    }
    out.sort();
    out
}

/// Every `.rs` file under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The edges of every file under `src` but the crate roots.
fn source_edges(src: &Path) -> Vec<Edge> {
    let mut edges = Vec::new();
    for path in rust_files(src) {
        let rel = path.strip_prefix(src).unwrap();
        if EXEMPT.iter().any(|x| rel == Path::new(x)) {
            continue;
        }
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.strip_suffix(".rs").unwrap_or(&first).to_string();
        // The binary's `crate::` is its own modules (`cli` only); the library is `dyad::`.
        let prefixes: &[&str] = if module == "cli" {
            &["dyad", "crate"]
        } else {
            &["crate"]
        };
        let file = format!("src/{}", rel.display());
        let text = std::fs::read_to_string(&path).unwrap();
        edges.extend(file_edges(&file, &module, &text, prefixes));
    }
    edges
}

#[test]
fn every_module_uses_only_the_modules_its_layer_allows() {
    let edges = source_edges(&root("src"));
    assert!(
        edges.len() > 20,
        "too few edges ({}): is the scan broken?",
        edges.len()
    );
    let (lenient, strict): (Vec<Edge>, Vec<Edge>) = edges
        .into_iter()
        .partition(|e| LENIENT.contains(&e.from.as_str()));
    let mut shown = BTreeSet::new();
    for e in lenient.iter().filter(|e| e.from != e.to) {
        if shown.insert((&e.from, &e.to)) {
            println!("{} -> {} (first at {}:{})", e.from, e.to, e.file, e.line);
        }
    }
    for v in violations(ALLOWED, &lenient) {
        println!("not yet checked: {v}");
    }
    let v = violations(ALLOWED, &strict);
    assert!(
        v.is_empty(),
        "{} uses outside the layering table (ALLOWED in tests/it/layers.rs):\n{}",
        v.len(),
        v.join("\n")
    );
}

fn edge(from: &str, to: &str) -> Edge {
    Edge {
        file: format!("src/{from}/mod.rs"),
        line: 12,
        from: from.into(),
        to: to.into(),
    }
}

#[test]
fn an_edge_outside_the_table_is_reported_with_its_file_and_line() {
    let v = violations(ALLOWED, &[edge("map", "report")]);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].starts_with("src/map/mod.rs:12: `map` -> `report`"),
        "{v:?}"
    );
    let v = violations(ALLOWED, &[edge("units", "work")]);
    assert!(v[0].contains("`units` may use: nothing"), "{v:?}");
    let v = violations(ALLOWED, &[edge("gpu", "units")]);
    assert!(v[0].contains("module `gpu` has no row"), "{v:?}");
}

#[test]
fn edges_inside_the_table_and_self_uses_pass() {
    let ok = [
        edge("map", "hw"),
        edge("map", "map"),
        edge("app", "kernels"),
        edge("units", "units"),
    ];
    assert_eq!(violations(ALLOWED, &ok), Vec::<String>::new());
}

#[test]
fn the_table_is_layered_with_no_cycles_and_no_unknown_modules() {
    let mut placed: Vec<&str> = Vec::new();
    for (m, allowed) in ALLOWED {
        for a in *allowed {
            assert!(
                placed.contains(a),
                "`{m}` uses `{a}`, which is not listed above it"
            );
        }
        placed.push(m);
    }
}

/// The modules `text` uses, sorted.
fn heads(text: &str) -> Vec<String> {
    let mut v: Vec<String> = file_edges("x.rs", "x", text, &["crate"])
        .into_iter()
        .map(|e| e.to)
        .collect();
    v.sort();
    v
}

#[test]
fn grouped_and_inline_paths_are_found() {
    let text = "use crate::{units::Bytes, work::{Dtype, Work}, self, model};\n\
                pub(crate) fn f() { let s = crate::hw::System::default(); }\n\
                macro_rules! m { () => { $crate::tech::Node } }\n\
                use crate :: { sim :: engine };\nuse crate::*;\n";
    assert_eq!(
        heads(text),
        ["*", "hw", "model", "sim", "tech", "units", "work"]
    );
    // The line of the first use.
    let e = file_edges(
        "x.rs",
        "x",
        "\n\nfn f() { crate::map::place() }",
        &["crate"],
    );
    assert_eq!((e[0].line, e[0].to.as_str()), (3, "map"));
}

#[test]
fn comments_strings_and_char_literals_are_not_code() {
    let text = r####"
//! See [`crate::report`].
/// Uses crate::sim.
// use crate::config;
/* crate::app /* nested crate::sweep */ crate::kernels */
const A: &str = "crate::map \" crate::tech";
const B: &str = r#"crate::hw "still" crate::tech"#;
const E: &[u8] = br"crate::work\"; const F: &[u8] = b"crate::sim";
const C: char = '"'; const D: char = '\''; fn f<'a>(x: &'a u8) {}
use crate::units;
"####;
    assert_eq!(heads(text), ["units"]);
}
