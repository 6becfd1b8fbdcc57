//! Display of quantities: an SI prefix and 4 significant digits, with the symbol and the
//! prefixes the dimension table gives each unit.

use super::quantities::UnitSpec;

/// Significant digits shown by `Display`.
const SIGNIFICANT_DIGITS: usize = 4;

/// Writes `value` (in SI base units) with an SI prefix and 4 significant
/// digits, trailing zeros trimmed: `3.35e12` in B/s is "3.35 TB/s".
pub(super) fn format_si(value: f64, unit: &UnitSpec) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value} {}", unit.symbol());
    }
    let rounded = round_significant(value);
    let (symbol, pow10) = pick_prefix(rounded.abs(), unit);
    let mantissa = scale_by_pow10(rounded, -pow10);
    format!("{} {symbol}{}", format_mantissa(mantissa), unit.symbol())
}

/// Multiplies `x` by 10^`pow10`, dividing for negative powers so that the
/// power of ten is an exact integer rather than a rounded fraction.
fn scale_by_pow10(x: f64, pow10: i32) -> f64 {
    let magnitude = 10f64.powi(pow10.abs());
    if pow10 >= 0 {
        x * magnitude
    } else {
        x / magnitude
    }
}

/// Rounds to [`SIGNIFICANT_DIGITS`] so that the prefix is chosen after
/// rounding (999.96 W is "1 kW", not "1000 W").
fn round_significant(value: f64) -> f64 {
    let text = format!("{value:.prec$e}", prec = SIGNIFICANT_DIGITS - 1);
    text.parse().unwrap_or(value)
}

/// The largest prefix not above `magnitude` (the smallest one if all are),
/// with its power of ten already raised to the unit's power (2 for areas: `mm^2`).
fn pick_prefix(magnitude: f64, unit: &UnitSpec) -> (&'static str, i32) {
    let scaled = |&(symbol, exponent): &(&'static str, i32)| (symbol, exponent * unit.power);
    unit.shown_prefixes
        .iter()
        .map(scaled)
        .rev()
        .find(|&(_, pow10)| magnitude >= scale_by_pow10(1.0, pow10))
        .or_else(|| unit.shown_prefixes.first().map(scaled))
        .unwrap_or(("", 0))
}

/// Writes a mantissa with [`SIGNIFICANT_DIGITS`], trailing zeros trimmed;
/// values out of the prefixes' reach use an exponent ("1.5e18").
fn format_mantissa(mantissa: f64) -> String {
    let magnitude = mantissa.abs();
    if !(1e-3..1e6).contains(&magnitude) {
        let text = format!("{mantissa:.prec$e}", prec = SIGNIFICANT_DIGITS - 1);
        return match text.split_once('e') {
            Some((digits, exponent)) => format!("{}e{exponent}", trim_zeros(digits)),
            None => text,
        };
    }
    let integer_digits = magnitude.log10().floor() as i64 + 1;
    let decimals = (SIGNIFICANT_DIGITS as i64 - integer_digits).max(0) as usize;
    trim_zeros(&format!("{mantissa:.decimals$}")).to_owned()
}

/// Drops trailing zeros after a decimal point, and the point if bare.
fn trim_zeros(digits: &str) -> &str {
    if digits.contains('.') {
        digits.trim_end_matches('0').trim_end_matches('.')
    } else {
        digits
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;
    use std::str::FromStr;

    use crate::units::{
        Area, Bytes, BytesPerSecond, Flops, FlopsPerSecond, Hertz, Joules, JoulesPerBit,
        JoulesPerFlop, Seconds, UnitError, Watts,
    };
    use proptest::prelude::*;

    #[test]
    fn display_uses_si_prefixes_and_four_significant_digits() {
        assert_eq!(BytesPerSecond(3.35e12).to_string(), "3.35 TB/s");
        assert_eq!(FlopsPerSecond(9.894e14).to_string(), "989.4 TFLOPS");
        assert_eq!(Bytes(80e9).to_string(), "80 GB");
        assert_eq!(Bytes(85_899_345_920.0).to_string(), "85.9 GB");
        assert_eq!(Hertz(6.5e8).to_string(), "650 MHz");
        assert_eq!(Seconds(2e-6).to_string(), "2 us");
        assert_eq!(JoulesPerBit(5e-13).to_string(), "0.5 pJ/bit");
        assert_eq!(JoulesPerFlop(2.3e-13).to_string(), "0.23 pJ/FLOP");
        assert_eq!(Watts(700.0).to_string(), "700 W");
        assert_eq!(Area(8.26e-4).to_string(), "826 mm^2");
        assert_eq!(Flops(1.2e12).to_string(), "1.2 TFLOP");
        assert_eq!(Joules(9e-10).to_string(), "900 pJ");
        assert_eq!(Seconds(3600.0).to_string(), "3600 s");
        assert_eq!(Seconds(1.5e18).to_string(), "1.5e18 s");
        assert_eq!(Watts(999.96).to_string(), "1 kW");
        assert_eq!(Watts(-1234.6).to_string(), "-1.235 kW");
        assert_eq!(Watts(0.0).to_string(), "0 W");
        assert_eq!(Bytes(1.0).to_string(), "1 B");
        assert_eq!(Hertz(123_456.0).to_string(), "123.5 kHz");
    }

    /// Checks that `value` displays as text that parses back within 1e-3.
    fn assert_round_trip<T>(
        make: fn(f64) -> T,
        value_of: fn(T) -> f64,
        value: f64,
    ) -> Result<(), TestCaseError>
    where
        T: fmt::Display + FromStr<Err = UnitError>,
    {
        let shown = make(value).to_string();
        let back = shown
            .parse()
            .map(value_of)
            .map_err(|e| TestCaseError::fail(format!("{value:e} -> {shown}: {e}")))?;
        let error = ((back - value) / value).abs();
        prop_assert!(error <= 1e-3, "{value:e} -> {shown} -> {back:e}");
        Ok(())
    }

    /// Magnitudes from 1e-15 to 1e18, of either sign.
    fn magnitude() -> impl Strategy<Value = f64> {
        (-15.0f64..18.0, any::<bool>()).prop_map(|(exponent, negative)| {
            let magnitude = 10f64.powf(exponent);
            if negative { -magnitude } else { magnitude }
        })
    }

    proptest! {
        #[test]
        fn display_round_trips_through_from_str(value in magnitude()) {
            assert_round_trip(Bytes, Bytes::value, value)?;
            assert_round_trip(Flops, Flops::value, value)?;
            assert_round_trip(Seconds, Seconds::value, value)?;
            assert_round_trip(Hertz, Hertz::value, value)?;
            assert_round_trip(Joules, Joules::value, value)?;
            assert_round_trip(Watts, Watts::value, value)?;
            assert_round_trip(BytesPerSecond, BytesPerSecond::value, value)?;
            assert_round_trip(FlopsPerSecond, FlopsPerSecond::value, value)?;
            assert_round_trip(JoulesPerBit, JoulesPerBit::value, value)?;
            assert_round_trip(JoulesPerFlop, JoulesPerFlop::value, value)?;
            assert_round_trip(Area, Area::value, value)?;
        }

    }
}
