//! `dyad list`: the built-in presets and the technology library's names.

use crate::config::{ConfigError, presets};

/// The presets (`--arch`, `--model`) and the technology names of the shipped library.
pub fn list() -> Result<String, ConfigError> {
    let mut s = String::from("arch presets (--arch):\n");
    for n in presets::names("arch") {
        s += &format!("  {n}\n");
    }
    s += "model presets (--model):\n";
    for n in presets::names("workloads/models") {
        s += &format!("  {n}\n");
    }
    let lib = super::ppa::library(None)?;
    s += &format!(
        "technology nodes (node =): {}\ntransistor architectures (device =): {}\n",
        lib.node_names().join(", "),
        lib.device_names().join(", ")
    );
    Ok(s)
}
