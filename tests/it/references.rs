//! The project's own references file (`REFERENCE.md` at the repository root): it exists, its
//! `##` headings are distinct, and every citation `REFERENCE.md §Section` in `src/`, `arch/` and
//! `workloads/` names one of them. A section is named by its heading as written; the citation
//! may go on after it (`REFERENCE.md §GPU idle power).`), so a heading must start the text after
//! `§` and end at a word boundary there.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `##` headings of `text`.
fn headings(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_string())
        .collect()
}

/// Every file under `dir` (text files; others are skipped).
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("the directory is readable") {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// (file:line, the text after `§`) of every `REFERENCE.md §` citation in `text`.
fn citations(name: &str, text: &str) -> Vec<(String, String)> {
    const KEY: &str = "REFERENCE.md §";
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find(KEY) {
            rest = &rest[at + KEY.len()..];
            out.push((format!("{name}:{}", i + 1), rest.to_string()));
        }
    }
    out
}

/// Whether `cited` (the text after `§`) begins with `heading` and ends it at a word boundary.
fn names(cited: &str, heading: &str) -> bool {
    cited
        .strip_prefix(heading)
        .is_some_and(|after| !after.starts_with(|c: char| c.is_alphanumeric()))
}

/// The citations of `cited` that name no heading of `heads`.
fn unknown(heads: &[String], cited: &[(String, String)]) -> Vec<String> {
    cited
        .iter()
        .filter(|(_, c)| !heads.iter().any(|h| names(c, h)))
        .map(|(at, c)| format!("{at}: §{}", c.chars().take(40).collect::<String>()))
        .collect()
}

#[test]
fn every_reference_citation_names_a_section_of_the_references_file() {
    let text = std::fs::read_to_string(root().join("REFERENCE.md"))
        .expect("REFERENCE.md exists at the repository root");
    let heads = headings(&text);
    assert!(heads.len() >= 5, "REFERENCE.md has its sections: {heads:?}");
    let mut sorted = heads.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        heads.len(),
        "headings are distinct: {heads:?}"
    );
    let mut all = Vec::new();
    for dir in ["src", "arch", "workloads"] {
        let mut fs = Vec::new();
        files(&root().join(dir), &mut fs);
        for f in fs {
            let Ok(t) = std::fs::read_to_string(&f) else {
                continue;
            };
            let name = f.strip_prefix(root()).unwrap_or(&f).display().to_string();
            all.extend(citations(&name, &t));
        }
    }
    assert!(
        all.len() >= 10,
        "the sources cite sections: {} found",
        all.len()
    );
    let bad = unknown(&heads, &all);
    assert!(
        bad.is_empty(),
        "citations of no section of REFERENCE.md:\n{}",
        bad.join("\n")
    );
}

#[test]
fn a_citation_of_a_missing_section_is_reported_with_its_file_and_line() {
    let heads = headings("# R\n\n## GPU idle power\n\n## GPUs\n");
    let cited = citations(
        "arch/x.toml",
        "# 140 W (REFERENCE.md §GPU idle power).\n# REFERENCE.md §GPUs; REFERENCE.md §GPU idlers\n",
    );
    assert_eq!(cited.len(), 3);
    assert_eq!(unknown(&heads, &cited), ["arch/x.toml:2: §GPU idlers"]);
}
