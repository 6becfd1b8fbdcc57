//! Serde for quantities: deserialized from a string through the grammar (a bare number is
//! refused, its unit would be a guess); serialized as the plain SI number (in `quantities.rs`).

use std::fmt;

use serde::Deserializer;
use serde::de::{self, Visitor};

use super::Dimension;
use super::grammar::parse_as;

/// Deserializes a quantity of dimension `dim` from a string with a unit; returns the SI value.
pub(super) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
    dim: Dimension,
) -> Result<f64, D::Error> {
    deserializer.deserialize_any(QuantityVisitor(dim))
}

/// Deserializes a quantity of one dimension from a string, and explains that
/// a unit is required when given a bare number.
struct QuantityVisitor(Dimension);

impl QuantityVisitor {
    fn bare_number<E: de::Error>(&self, number: impl fmt::Display) -> E {
        E::custom(format!(
            "expected {} such as \"{}\" (a number with a unit), found {number}",
            self.0.name(),
            self.0.example()
        ))
    }
}

impl Visitor<'_> for QuantityVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} such as \"{}\"", self.0.name(), self.0.example())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        parse_as(v, self.0).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Err(self.bare_number(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Err(self.bare_number(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Err(self.bare_number(v))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use crate::units::{
        Area, Bytes, BytesPerSecond, Flops, FlopsPerSecond, Hertz, Joules, JoulesPerBit,
        JoulesPerFlop, Seconds, Watts,
    };

    #[derive(Debug, Deserialize)]
    struct Chip {
        hbm: Bytes,
        hbm_bandwidth: BytesPerSecond,
        peak: FlopsPerSecond,
        work: Flops,
        clock: Hertz,
        tdp: Watts,
        die: Area,
        link_energy: JoulesPerBit,
        mac_energy: JoulesPerFlop,
        launch: Seconds,
        budget: Joules,
    }

    const CHIP: &str = r#"
        hbm = "80 GiB"
        hbm_bandwidth = "3.35 TB/s"
        peak = "989.4 TFLOPS"
        work = "1.2 TFLOP"
        clock = "650 MHz"
        tdp = "700 W"
        die = "826 mm^2"
        link_energy = "0.5 pJ/bit"
        mac_energy = "0.23 pJ/FLOP"
        launch = "2 us"
        budget = "0.9 nJ"
    "#;

    #[test]
    fn toml_reads_quantities_from_strings() {
        let chip: Chip = toml::from_str(CHIP).unwrap();
        assert_eq!(chip.hbm, Bytes(85_899_345_920.0));
        assert_eq!(chip.hbm_bandwidth, BytesPerSecond(3.35e12));
        assert_eq!(chip.peak, FlopsPerSecond(9.894e14));
        assert_eq!(chip.work, Flops(1.2e12));
        assert_eq!(chip.clock, Hertz(6.5e8));
        assert_eq!(chip.tdp, Watts(700.0));
        assert_eq!(chip.die, Area(8.26e-4));
        assert_eq!(chip.link_energy, JoulesPerBit(5e-13));
        assert_eq!(chip.mac_energy, JoulesPerFlop(2.3e-13));
        assert_eq!(chip.launch, Seconds(2e-6));
        assert_eq!(chip.budget, Joules(9e-10));
    }

    fn chip_error(field: &str, bad_value: &str) -> String {
        let text: String = CHIP
            .lines()
            .map(|line| {
                if line.trim_start().starts_with(&format!("{field} =")) {
                    format!("{field} = {bad_value}")
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        toml::from_str::<Chip>(&text).unwrap_err().to_string()
    }

    #[test]
    fn toml_wrong_unit_reports_the_unit_error() {
        let message = chip_error("hbm_bandwidth", "\"989 TFLOPS\"");
        assert!(
            message.contains(
                "expected a bandwidth such as \"3.35 TB/s\", found \"989 TFLOPS\", \
                 which is a compute rate"
            ),
            "{message}"
        );
        let message = chip_error("hbm", "\"80 GiHz\"");
        assert!(message.contains("binary prefix \"Gi\""), "{message}");
    }

    #[test]
    fn toml_bare_number_says_a_unit_is_required() {
        let message = chip_error("hbm_bandwidth", "3.35");
        assert!(
            message.contains(
                "expected a bandwidth such as \"3.35 TB/s\" (a number with a unit), found 3.35"
            ),
            "{message}"
        );
        let message = chip_error("hbm", "80");
        assert!(
            message.contains(
                "expected a byte size such as \"80 GiB\" (a number with a unit), found 80"
            ),
            "{message}"
        );
        let message = chip_error("tdp", "true");
        assert!(message.contains("a power such as \"700 W\""), "{message}");
    }

    #[test]
    fn serializes_as_the_plain_si_number() {
        assert_eq!(
            toml::Value::try_from(Bytes(85_899_345_920.0)).unwrap(),
            toml::Value::Float(85_899_345_920.0)
        );
        assert_eq!(
            toml::Value::try_from(Seconds(2e-6)).unwrap(),
            toml::Value::Float(2e-6)
        );
    }
}
