//! Size limits that keep the code readable, checked on the source (ARCHITECTURE.md,
//! "Invariants"): no source file over 600 lines; no function in `src/cli` over 40 lines (the
//! binary is glue); no other function over 80 lines.

use std::path::{Path, PathBuf};

const FILE_LINES: usize = 600;
const CLI_FN_LINES: usize = 40;
const LIB_FN_LINES: usize = 80;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src/ is readable") {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// (name, first line, line count) of every `fn` with a body in `text`. A function runs from its
/// `fn` line to the line that closes the brace opened after it, counted by brace depth with
/// string, char and comment contents skipped.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let Some(pos) = t.find("fn ") else { continue };
        let head = &t[..pos];
        let is_fn = head.split_whitespace().all(|w| {
            matches!(
                w,
                "pub" | "pub(crate)" | "pub(super)" | "const" | "unsafe" | "async"
            )
        });
        if !is_fn || t.starts_with("//") {
            continue;
        }
        let name: String = t[pos + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if let Some(end) = body_end(&lines, i) {
            out.push((name, i + 1, end - i + 1));
        }
    }
    out
}

/// The line on which the body opened after line `start` closes; `None` for a declaration.
fn body_end(lines: &[&str], start: usize) -> Option<usize> {
    let mut depth = 0i64;
    let mut opened = false;
    let mut in_str = false; // strings may span lines
    for (j, line) in lines.iter().enumerate().skip(start) {
        let chars: Vec<char> = line.chars().collect();
        let mut k = 0;
        while k < chars.len() {
            let c = chars[k];
            match c {
                '\\' if in_str => k += 1,
                '"' => in_str = !in_str,
                '/' if !in_str && chars.get(k + 1) == Some(&'/') => break,
                // A char literal ('{', '\''), not a lifetime: skip its contents.
                '\'' if !in_str && chars.get(k + 2) == Some(&'\'') => k += 2,
                '\'' if !in_str && chars.get(k + 1) == Some(&'\\') => k += 3,
                '{' if !in_str => {
                    depth += 1;
                    opened = true;
                }
                '}' if !in_str => depth -= 1,
                ';' if !in_str && !opened && depth == 0 => return None,
                _ => {}
            }
            k += 1;
        }
        if opened && depth == 0 {
            return Some(j);
        }
    }
    None
}

#[test]
fn no_file_or_function_is_too_long() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files.sort();
    let mut over = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("a source file is readable");
        let rel = f
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(f)
            .display()
            .to_string();
        let n = text.lines().count();
        if n > FILE_LINES {
            over.push(format!("{rel}: {n} lines (at most {FILE_LINES})"));
        }
        let limit = if rel.contains("/cli/") {
            CLI_FN_LINES
        } else {
            LIB_FN_LINES
        };
        for (name, line, len) in functions(&text) {
            if len > limit {
                over.push(format!(
                    "{rel}:{line}: fn {name} has {len} lines (at most {limit})"
                ));
            }
        }
    }
    assert!(over.is_empty(), "too long:\n{}", over.join("\n"));
}

#[test]
fn the_counter_measures_bodies_and_skips_declarations() {
    let text = "fn a() {\n    let s = \"}\\\"\";\n    let c = '{';\n}\ntrait T {\n    fn b(&self);\n}\npub(crate) fn c() { }\n";
    let f = functions(text);
    assert_eq!(
        f,
        vec![("a".to_string(), 1, 4), ("c".to_string(), 8, 1)],
        "a spans its four lines despite the braces in a string and a char; b has no body"
    );
}
