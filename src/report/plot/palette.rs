//! The one palette: the colour and marker of every unit, op class, system and series kind that a
//! plot draws. Every plot takes its looks from [`look`], so a colour means the same thing in every
//! figure dyad writes (the xPU is blue in a roofline and in a sweep's; GEMMs are green wherever
//! op classes are drawn; the Duplex study's systems keep their colours from plot to plot).

use plotters::style::RGBColor;

/// The shape of a point marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A filled circle.
    Circle,
    /// A filled triangle, point up.
    Triangle,
    /// A filled square.
    Square,
    /// A filled diamond.
    Diamond,
    /// An upright cross.
    Cross,
}

/// How one key is drawn wherever it appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    /// Its colour.
    pub color: RGBColor,
    /// Its marker, where it is drawn as points.
    pub marker: Marker,
}

/// (key, what the key names, colour, marker): the palette, one row per key. Keys are the names
/// reports use (`xpu`, `gemm`) and the Duplex study's system labels.
pub const PALETTE: [(&str, &str, RGBColor, Marker); 20] = [
    ("xpu", "unit", RGBColor(31, 119, 180), Marker::Circle),
    ("pim", "unit", RGBColor(255, 127, 14), Marker::Circle),
    ("gemm", "op class", RGBColor(44, 160, 44), Marker::Circle),
    (
        "attention",
        "op class",
        RGBColor(214, 39, 40),
        Marker::Triangle,
    ),
    (
        "elementwise",
        "op class",
        RGBColor(148, 103, 189),
        Marker::Square,
    ),
    (
        "collective",
        "op class",
        RGBColor(140, 86, 75),
        Marker::Diamond,
    ),
    ("GPU", "system", RGBColor(77, 77, 77), Marker::Circle),
    ("2xGPU", "system", RGBColor(23, 190, 207), Marker::Square),
    (
        "Bank-PIM",
        "system",
        RGBColor(188, 189, 34),
        Marker::Triangle,
    ),
    ("Duplex", "system", RGBColor(247, 182, 210), Marker::Diamond),
    (
        "Duplex+CoP",
        "system",
        RGBColor(231, 41, 138),
        Marker::Cross,
    ),
    (
        "Duplex+CoP+ET",
        "system",
        RGBColor(122, 1, 119),
        Marker::Circle,
    ),
    (
        "design points",
        "sweep",
        RGBColor(199, 199, 199),
        Marker::Circle,
    ),
    ("Pareto front", "sweep", RGBColor(0, 0, 0), Marker::Diamond),
    (
        "other",
        "layer group",
        RGBColor(127, 127, 127),
        Marker::Circle,
    ),
    (
        "worst seed",
        "capacity",
        RGBColor(0, 0, 139),
        Marker::Circle,
    ),
    (
        "each seed",
        "capacity",
        RGBColor(170, 170, 220),
        Marker::Circle,
    ),
    ("SLO limit", "capacity", RGBColor(200, 0, 0), Marker::Cross),
    (
        "capacity",
        "capacity",
        RGBColor(0, 150, 80),
        Marker::Diamond,
    ),
    (
        "absent",
        "missing data",
        RGBColor(150, 150, 150),
        Marker::Cross,
    ),
];

/// Colours for keys outside [`PALETTE`] (a study system of the user's own), chosen by a hash of
/// the key so that the same key has the same colour in every plot.
const SPARE: [RGBColor; 6] = [
    RGBColor(0, 92, 49),
    RGBColor(153, 63, 0),
    RGBColor(76, 0, 92),
    RGBColor(0, 51, 128),
    RGBColor(143, 124, 0),
    RGBColor(66, 102, 0),
];

/// The look of `key`: its palette row, or for a key outside the palette a spare colour picked
/// by the key's FNV-1a hash (stable from run to run and plot to plot).
pub fn look(key: &str) -> Look {
    if let Some((_, _, color, marker)) = PALETTE.iter().find(|r| r.0 == key) {
        return Look {
            color: *color,
            marker: *marker,
        };
    }
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Look {
        color: SPARE[(h % SPARE.len() as u64) as usize],
        marker: Marker::Circle,
    }
}

/// The colour as SVG writes it (`#1F77B4`), for finding a series in a written plot.
pub fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// The name a unit key is shown by (`xPU`, `PIM`).
pub fn unit_name(unit: &str) -> String {
    match unit {
        "xpu" => "xPU".into(),
        "pim" => "PIM".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_its_own_colour() {
        for (i, a) in PALETTE.iter().enumerate() {
            for b in &PALETTE[i + 1..] {
                assert_ne!(a.0, b.0, "key {} twice", a.0);
                assert_ne!(a.2, b.2, "{} and {} share a colour", a.0, b.0);
            }
            for s in SPARE {
                assert_ne!(a.2, s, "{} shares a spare colour", a.0);
            }
        }
    }

    #[test]
    fn a_key_outside_the_palette_keeps_one_colour() {
        assert_eq!(look("my-system"), look("my-system"));
        assert_eq!(look("xpu").color, RGBColor(31, 119, 180));
        assert_eq!(hex(look("xpu").color), "#1F77B4");
    }
}
