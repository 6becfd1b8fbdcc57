//! Built-in arch and model files, so that `dyad run` works from any directory.
//!
//! A path that names no file on disk but ends like a shipped file (`arch/h100.toml`,
//! `workloads/models/mixtral-8x7b.json`) reads the copy compiled into the binary.

use std::path::{Path, PathBuf};

/// (path relative to the repository root, contents)
pub const FILES: &[(&str, &str)] = &[
    ("arch/a100.toml", include_str!("../../arch/a100.toml")),
    ("arch/h100.toml", include_str!("../../arch/h100.toml")),
    ("arch/h200.toml", include_str!("../../arch/h200.toml")),
    ("arch/b200.toml", include_str!("../../arch/b200.toml")),
    ("arch/mi300x.toml", include_str!("../../arch/mi300x.toml")),
    ("arch/duplex.toml", include_str!("../../arch/duplex.toml")),
    (
        "arch/duplex-h200.toml",
        include_str!("../../arch/duplex-h200.toml"),
    ),
    (
        "arch/software/splitwise-dgx-a100.toml",
        include_str!("../../arch/software/splitwise-dgx-a100.toml"),
    ),
    (
        "arch/software/splitwise-dgx-h100.toml",
        include_str!("../../arch/software/splitwise-dgx-h100.toml"),
    ),
    (
        "arch/h100-2node.toml",
        include_str!("../../arch/h100-2node.toml"),
    ),
    (
        "arch/duplex-2node.toml",
        include_str!("../../arch/duplex-2node.toml"),
    ),
    (
        "arch/bank-pim-2node.toml",
        include_str!("../../arch/bank-pim-2node.toml"),
    ),
    (
        "arch/duplex-n2-ffet.toml",
        include_str!("../../arch/duplex-n2-ffet.toml"),
    ),
    (
        "arch/bank-pim.toml",
        include_str!("../../arch/bank-pim.toml"),
    ),
    (
        "arch/bankgroup-pim.toml",
        include_str!("../../arch/bankgroup-pim.toml"),
    ),
    (
        "arch/tech/nodes.toml",
        include_str!("../../arch/tech/nodes.toml"),
    ),
    (
        "arch/tech/devices.toml",
        include_str!("../../arch/tech/devices.toml"),
    ),
    (
        "arch/tech/model.toml",
        include_str!("../../arch/tech/model.toml"),
    ),
    (
        "arch/tech/dies/a100.toml",
        include_str!("../../arch/tech/dies/a100.toml"),
    ),
    (
        "arch/tech/dies/h100.toml",
        include_str!("../../arch/tech/dies/h100.toml"),
    ),
    (
        "arch/tech/dies/hbm3-logic-die.toml",
        include_str!("../../arch/tech/dies/hbm3-logic-die.toml"),
    ),
    (
        "workloads/models/llama-2-7b.json",
        include_str!("../../workloads/models/llama-2-7b.json"),
    ),
    (
        "workloads/models/llama-3-8b.json",
        include_str!("../../workloads/models/llama-3-8b.json"),
    ),
    (
        "workloads/models/llama-2-70b.json",
        include_str!("../../workloads/models/llama-2-70b.json"),
    ),
    (
        "workloads/models/llama-3-70b.json",
        include_str!("../../workloads/models/llama-3-70b.json"),
    ),
    (
        "workloads/models/mistral-7b-v0.1.json",
        include_str!("../../workloads/models/mistral-7b-v0.1.json"),
    ),
    (
        "workloads/models/mixtral-8x7b.json",
        include_str!("../../workloads/models/mixtral-8x7b.json"),
    ),
    (
        "workloads/models/gemma-2-9b.json",
        include_str!("../../workloads/models/gemma-2-9b.json"),
    ),
    (
        "workloads/models/deepseek-v3.json",
        include_str!("../../workloads/models/deepseek-v3.json"),
    ),
    (
        "workloads/models/deepseek-v2-lite.json",
        include_str!("../../workloads/models/deepseek-v2-lite.json"),
    ),
    (
        "workloads/models/qwen3-30b-a3b.json",
        include_str!("../../workloads/models/qwen3-30b-a3b.json"),
    ),
    (
        "workloads/models/mixtral-8x22b.json",
        include_str!("../../workloads/models/mixtral-8x22b.json"),
    ),
    (
        "workloads/models/llama-3.1-8b.json",
        include_str!("../../workloads/models/llama-3.1-8b.json"),
    ),
    (
        "workloads/models/llama-3.2-1b.json",
        include_str!("../../workloads/models/llama-3.2-1b.json"),
    ),
    (
        "workloads/models/llama-3.1-70b.json",
        include_str!("../../workloads/models/llama-3.1-70b.json"),
    ),
    (
        "workloads/models/qwen2-7b.json",
        include_str!("../../workloads/models/qwen2-7b.json"),
    ),
    (
        "workloads/models/qwen2-57b-a14b.json",
        include_str!("../../workloads/models/qwen2-57b-a14b.json"),
    ),
    (
        "workloads/models/qwen1.5-moe-a2.7b.json",
        include_str!("../../workloads/models/qwen1.5-moe-a2.7b.json"),
    ),
    (
        "workloads/models/olmoe-1b-7b.json",
        include_str!("../../workloads/models/olmoe-1b-7b.json"),
    ),
    (
        "workloads/models/phi-3.5-moe.json",
        include_str!("../../workloads/models/phi-3.5-moe.json"),
    ),
    (
        "workloads/models/gpt-oss-20b.json",
        include_str!("../../workloads/models/gpt-oss-20b.json"),
    ),
    (
        "workloads/models/gpt-oss-120b.json",
        include_str!("../../workloads/models/gpt-oss-120b.json"),
    ),
    (
        "workloads/models/llama-4-scout-17b-16e.json",
        include_str!("../../workloads/models/llama-4-scout-17b-16e.json"),
    ),
    (
        "workloads/models/opt-66b.json",
        include_str!("../../workloads/models/opt-66b.json"),
    ),
    (
        "workloads/models/glam.toml",
        include_str!("../../workloads/models/glam.toml"),
    ),
    (
        "workloads/models/grok-1.toml",
        include_str!("../../workloads/models/grok-1.toml"),
    ),
];

/// The built-in contents for `path`, a file that is not on disk: the preset whose path `path`
/// names once `.` and `..` are folded (`arch/h100.toml`, `scenarios/../arch/h100.toml`), or else
/// the one `path` ends with (`/tmp/study/../../arch/h100.toml`, a shipped scenario copied away
/// from the repository). [`read`] notes the second kind.
pub fn file(path: &Path) -> Option<&'static str> {
    exact(path).or_else(|| ending(path)).map(|(_, text)| text)
}

/// The preset a relative `path` names once `.` and `..` are folded.
fn exact(path: &Path) -> Option<(&'static str, &'static str)> {
    use std::path::Component;
    let mut norm = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => norm.push(s),
            Component::CurDir => {}
            Component::ParentDir => {
                norm.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    FILES.iter().copied().find(|(p, _)| {
        p.split('/')
            .map(std::ffi::OsStr::new)
            .eq(norm.iter().copied())
    })
}

/// The preset whose path `path` ends with, on its normal components (`.` and `..` dropped).
fn ending(path: &Path) -> Option<(&'static str, &'static str)> {
    let norm: Vec<_> = path
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    FILES
        .iter()
        .copied()
        .find(|(p, _)| norm.ends_with(&Path::new(p).components().collect::<Vec<_>>()))
}

/// Missing paths that a built-in file other than their own name stood in for, with the preset,
/// in the order first read, each once.
static STOOD_IN: std::sync::Mutex<Vec<(PathBuf, &'static str)>> = std::sync::Mutex::new(Vec::new());

/// The built-in text for a missing `path`, as [`file`], noting the stand-in when the preset is
/// not the path's own name: a typo in a folder does not silently become the built-in.
pub fn read(path: &Path) -> Option<&'static str> {
    if let Some((_, text)) = exact(path) {
        return Some(text);
    }
    let (preset, text) = ending(path)?;
    if let Ok(mut v) = STOOD_IN.lock() {
        if !v.iter().any(|(p, _)| p == path) {
            v.push((path.to_path_buf(), preset));
        }
    }
    Some(text)
}

/// One line per stand-in [`read`] noted since the last call, for standard error.
pub fn take_notes() -> Vec<String> {
    let v = STOOD_IN
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    v.into_iter()
        .map(|(p, preset)| {
            format!(
                "note: {} is not a file; the built-in `{preset}` was read in its place",
                p.display()
            )
        })
        .collect()
}

/// Names of the built-in presets of one folder (`arch` or `workloads/models`).
pub fn names(folder: &str) -> Vec<&'static str> {
    FILES
        .iter()
        .filter_map(|(p, _)| p.strip_prefix(folder)?.strip_prefix('/'))
        .filter(|f| !f.contains('/'))
        .map(|f| f.rsplit_once('.').map_or(f, |(stem, _)| stem))
        .collect()
}

/// The path of the preset of `folder` (`arch`, `workloads/models`) whose bare name is `name`
/// (`h100` is `arch/h100.toml`).
pub fn named(name: &str, folder: &str) -> Option<&'static str> {
    FILES.iter().map(|(p, _)| *p).find(|p| {
        p.strip_prefix(folder)
            .and_then(|f| f.strip_prefix('/'))
            .and_then(|f| f.rsplit_once('.'))
            .is_some_and(|(stem, _)| stem == name)
    })
}

/// A bare preset name (`h100`, `mistral-7b-v0.1`) becomes its path (`arch/h100.toml`); anything
/// else is kept, as is a name that is also a file in the working folder.
fn resolve(path: &Path, folder: &str) -> PathBuf {
    let bare = path.components().count() == 1 && !path.is_file();
    match named(&path.to_string_lossy(), folder) {
        Some(p) if bare => PathBuf::from(p),
        _ => path.to_path_buf(),
    }
}

/// A bare arch name (`h100`) becomes its preset path (`arch/h100.toml`); other paths are kept.
pub fn resolve_arch(path: &Path) -> PathBuf {
    resolve(path, "arch")
}

/// A bare model name (`mixtral-8x7b`) becomes its preset path
/// (`workloads/models/mixtral-8x7b.json`); other paths are kept.
pub fn resolve_model(path: &Path) -> PathBuf {
    resolve(path, "workloads/models")
}
