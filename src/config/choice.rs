//! A technology choice: node, device and layout, each with where it was written. Die files and
//! the `[xpu.tech]` and `[pim.tech]` tables of arch files all name one; the `[layout]` table
//! they share is read here, and a choice is checked against the library here.

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use super::source::{Located, Source};
use crate::tech::{Layout, Library, SignalSides, pim::TechName};

/// A technology choice with where each part was written.
#[derive(Debug, Clone)]
pub struct TechChoice {
    /// The process node (`n7`, `n2`, …).
    pub node: Located<String>,
    /// The transistor architecture (`finfet`, `gaa`, `cfet`, `ffet`).
    pub device: Located<String>,
    /// Signal sides, routing layers, pin split and power delivery.
    pub layout: Layout,
    /// Where the layout was written (for errors about the device it is used with).
    pub layout_at: Located<i64>,
}

/// What an arch's `[xpu.tech]` or `[pim.tech]` table changes in the technology of the die file
/// it names; `None` keeps the die file's part.
#[derive(Debug, Clone, Default)]
pub struct TechOverride {
    /// `node = "…"`.
    pub node: Option<Located<String>>,
    /// `device = "…"`.
    pub device: Option<Located<String>>,
    /// `[….layout]`, checked on its own, with where it was written.
    pub layout: Option<(Layout, Located<i64>)>,
}

impl TechChoice {
    /// The names and layout without their locations, as the tech model takes them.
    pub fn name(&self) -> TechName {
        TechName {
            node: self.node.value.clone(),
            device: self.device.value.clone(),
            layout: self.layout,
        }
    }

    /// Takes the parts `o` sets. With `table` (`pim.tech`), each name is first checked against
    /// `lib` and an unknown one is an error naming the key; without it, names are checked later
    /// by [`check_choice`].
    pub fn apply(
        &mut self,
        o: &TechOverride,
        table: Option<&str>,
        lib: &Library,
    ) -> Result<(), ConfigError> {
        if let Some(n) = &o.node {
            if let Some(t) = table.filter(|_| lib.node(&n.value).is_none()) {
                return Err(n.err(format!(
                    "`{t}.node`: unknown node `{}`; valid: {}",
                    n.value,
                    lib.node_names().join(", ")
                )));
            }
            self.node = n.clone();
        }
        if let Some(d) = &o.device {
            if let Some(t) = table.filter(|_| lib.device(&d.value).is_none()) {
                return Err(d.err(format!(
                    "`{t}.device`: unknown device `{}`; valid: {}",
                    d.value,
                    lib.device_names().join(", ")
                )));
            }
            self.device = d.clone();
        }
        if let Some((layout, at)) = &o.layout {
            self.layout = *layout;
            self.layout_at = at.clone();
        }
        Ok(())
    }
}

/// Checks the names and the layout of a choice against the library.
pub fn check_choice(lib: &Library, c: &TechChoice) -> Result<(), ConfigError> {
    if lib.node(&c.node.value).is_none() {
        return Err(c.node.err(format!(
            "unknown node `{}`; valid: {}",
            c.node.value,
            lib.node_names().join(", ")
        )));
    }
    let Some(dev) = lib.device(&c.device.value) else {
        return Err(c.device.err(format!(
            "unknown device `{}`; valid: {}",
            c.device.value,
            lib.device_names().join(", ")
        )));
    };
    c.layout
        .check(dev, lib.model.layer_pitch.len())
        .map_err(|e| c.layout_at.err(format!("impossible layout: {e}")))
}

/// `[layout]` as written in a die file or under `[xpu.tech]` / `[pim.tech]` in an arch file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLayout {
    signal_sides: Spanned<i64>,
    routing_layers: Spanned<i64>,
    front_pin_share: Option<Spanned<f64>>,
    backside_power: bool,
}

impl RawLayout {
    /// The layout, checked on its own (the device check comes with [`check_choice`]); `at` is
    /// the key path of the table (`layout`, `pim.tech.layout`) for messages.
    pub(super) fn resolve(
        &self,
        src: &std::sync::Arc<Source>,
        at: &str,
    ) -> Result<(Layout, Located<i64>), ConfigError> {
        let sides = match self.signal_sides.get_ref() {
            1 => SignalSides::Front,
            2 => SignalSides::Both,
            n => {
                return Err(src.err(
                    &self.signal_sides,
                    format!(
                        "`{at}.signal_sides` must be 1 (front) or 2 (front and back), found {n}"
                    ),
                ));
            }
        };
        let layers = *self.routing_layers.get_ref();
        if layers < 1 {
            return Err(src.err(
                &self.routing_layers,
                format!("`{at}.routing_layers` must be at least 1 per side, found {layers}"),
            ));
        }
        let layers = u32::try_from(layers).unwrap_or(u32::MAX);
        let share = self.front_pin_share(src, at, sides)?;
        let mut layout = match sides {
            SignalSides::Front => Layout::single_sided(layers),
            SignalSides::Both => Layout::dual_sided(layers, share),
        };
        layout.backside_power = self.backside_power;
        Ok((layout, src.locate(&self.signal_sides)))
    }

    /// The share of input pins on the front: given and in 0..=1 (and 1 when single-sided), or
    /// 1 by default with single-sided signals.
    fn front_pin_share(
        &self,
        src: &Source,
        at: &str,
        sides: SignalSides,
    ) -> Result<f64, ConfigError> {
        match (&self.front_pin_share, sides) {
            (Some(s), _) => {
                let v = *s.get_ref();
                if !(0.0..=1.0).contains(&v) {
                    return Err(src.err(
                        s,
                        format!("`{at}.front_pin_share` is a share of the input pins and must lie in 0..=1, found {v}"),
                    ));
                }
                if sides == SignalSides::Front && v < 1.0 {
                    return Err(src.err(
                        s,
                        format!("`{at}.front_pin_share` must be 1 with single-sided signals (every pin on the front), found {v}"),
                    ));
                }
                Ok(v)
            }
            (None, SignalSides::Front) => Ok(1.0),
            (None, SignalSides::Both) => Err(src.whole(format!(
                "missing key `{at}.front_pin_share`: dual-sided signals need the share of input pins on the front"
            ))),
        }
    }
}
