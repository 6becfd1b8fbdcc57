//! The dimensions and their newtypes. Each dimension is one entry of the table below: its
//! newtype (also its [`Dimension`] variant), its name in words, an example, and how its unit is
//! spelled. Everything else — the enum, the newtype, parsing, display, serde and the arithmetic
//! every quantity shares — is generated from that entry. Products and quotients of different
//! dimensions are declared one per line at the end.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, Mul, Sub, SubAssign};
use std::str::FromStr;

use ::serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::UnitError;

dimensions! {
    /// A byte size in bytes; displayed with decimal prefixes ("80 GB").
    Bytes: "a byte size", "80 GiB",
        UnitSpec::data(&["B", "byte", "bytes"], &["b", "bit", "bits"]);
    /// A count of floating-point operations ("1.2 TFLOP").
    Flops: "a FLOP count", "1.2 TFLOP", UnitSpec::si(&["FLOP", "FLOPs"]);
    /// A time in seconds ("2 us").
    Seconds: "a time", "2 us", UnitSpec::si(&["s"]).shown_up_to_base();
    /// A frequency in hertz ("650 MHz").
    Hertz: "a frequency", "650 MHz", UnitSpec::si(&["Hz"]);
    /// An energy in joules ("0.9 nJ").
    Joules: "an energy", "0.9 nJ", UnitSpec::si(&["J"]);
    /// A power in watts ("700 W").
    Watts: "a power", "700 W", UnitSpec::si(&["W"]);
    /// A bandwidth in bytes per second ("3.35 TB/s").
    BytesPerSecond: "a bandwidth", "3.35 TB/s",
        UnitSpec::data(&["B/s", "byte/s", "bytes/s"], &["b/s", "bit/s", "bits/s"]);
    /// A compute rate in FLOPs per second ("989.4 TFLOPS").
    FlopsPerSecond: "a compute rate", "989.4 TFLOPS",
        UnitSpec::si(&["FLOPS", "FLOP/s", "FLOPs/s"]);
    /// An energy per bit moved, in joules per bit ("0.5 pJ/bit").
    JoulesPerBit: "an energy per bit", "0.5 pJ/bit", UnitSpec::si(&["J/bit", "J/b"]);
    /// An energy per floating-point operation, in joules per FLOP ("0.23 pJ/FLOP").
    JoulesPerFlop: "an energy per FLOP", "0.23 pJ/FLOP", UnitSpec::si(&["J/FLOP"]);
    /// An area in square metres ("826 mm^2").
    Area: "an area", "826 mm^2", UnitSpec::squared(&["m^2", "m2"]);
}

derived!(Bytes / BytesPerSecond = Seconds);
derived!(Flops / FlopsPerSecond = Seconds);
derived!(Bytes / Seconds = BytesPerSecond);
derived!(Flops / Seconds = FlopsPerSecond);
derived!(BytesPerSecond * Seconds = Bytes);
derived!(FlopsPerSecond * Seconds = Flops);
derived!(Bytes * JoulesPerBit = Joules, scale BITS_PER_BYTE);
derived!(Flops * JoulesPerFlop = Joules);
derived!(Watts * Seconds = Joules);
derived!(Joules / Seconds = Watts);
derived!(Joules / Flops = JoulesPerFlop);

/// Bits in one byte: bit units are converted to bytes with it.
pub(super) const BITS_PER_BYTE: f64 = 8.0;

/// SI prefixes used for display, in increasing order.
const DISPLAY_PREFIXES: &[(&str, i32)] = &[
    ("p", -12),
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

/// How a dimension's unit is read and written: the last column of the table.
#[derive(Debug)]
pub(super) struct UnitSpec {
    /// Spellings of one SI base unit, without prefix; `Display` writes the first.
    pub(super) spellings: &'static [&'static str],
    /// Spellings of one bit, an eighth of the base unit (data dimensions only).
    pub(super) bit_spellings: &'static [&'static str],
    /// Whether binary prefixes (`Ki`, `Mi`, …) apply.
    pub(super) binary: bool,
    /// The power the prefix is raised to: 2 for areas (`mm^2` is (10^-3 m)^2).
    pub(super) power: i32,
    /// The SI prefixes `Display` may use, in increasing order.
    pub(super) shown_prefixes: &'static [(&'static str, i32)],
}

impl UnitSpec {
    /// A unit with SI prefixes only, shown with any prefix from pico to exa.
    const fn si(spellings: &'static [&'static str]) -> Self {
        UnitSpec {
            spellings,
            bit_spellings: &[],
            binary: false,
            power: 1,
            shown_prefixes: DISPLAY_PREFIXES,
        }
    }

    /// A data unit: bytes or bits, with SI or binary prefixes.
    const fn data(spellings: &'static [&'static str], bits: &'static [&'static str]) -> Self {
        UnitSpec {
            bit_spellings: bits,
            binary: true,
            ..UnitSpec::si(spellings)
        }
    }

    /// A squared unit, whose prefix scales the metre: shown from nm^2 to km^2.
    const fn squared(spellings: &'static [&'static str]) -> Self {
        UnitSpec {
            power: 2,
            shown_prefixes: &[("n", -9), ("u", -6), ("m", -3), ("", 0), ("k", 3)],
            ..UnitSpec::si(spellings)
        }
    }

    /// Shown with prefixes up to none: "3600 s" reads better than "3.6 ks".
    const fn shown_up_to_base(self) -> Self {
        UnitSpec {
            shown_prefixes: &[("p", -12), ("n", -9), ("u", -6), ("m", -3), ("", 0)],
            ..self
        }
    }

    /// The symbol `Display` writes after the prefix.
    pub(super) fn symbol(&self) -> &'static str {
        self.spellings.first().copied().unwrap_or("")
    }
}

/// Declares [`Dimension`] and one newtype per table entry.
macro_rules! dimensions {
    ($($(#[$doc:meta])* $name:ident: $words:literal, $example:literal, $unit:expr;)+) => {
        /// Physical dimension of a quantity.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Dimension {
            $($(#[$doc])* $name,)+
        }

        impl Dimension {
            /// Every dimension, in the order of the table.
            pub(super) const ALL: &'static [Dimension] = &[$(Dimension::$name),+];

            /// The dimension in words with its article, for messages: "a bandwidth".
            pub fn name(self) -> &'static str {
                match self {
                    $(Dimension::$name => $words,)+
                }
            }

            /// A typical value of this dimension as it would be written in a config.
            pub fn example(self) -> &'static str {
                match self {
                    $(Dimension::$name => $example,)+
                }
            }

            /// How this dimension's unit is read and written.
            pub(super) fn unit(self) -> &'static UnitSpec {
                match self {
                    $(Dimension::$name => {
                        const UNIT: UnitSpec = $unit;
                        &UNIT
                    })+
                }
            }
        }

        $(quantity!($(#[$doc])* $name);)+
    };
}
use dimensions;

/// Declares one newtype with parsing, display, serde and the arithmetic that every quantity
/// shares.
macro_rules! quantity {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
        pub struct $name(pub f64);

        impl $name {
            /// The physical dimension of this type.
            pub const DIM: Dimension = Dimension::$name;

            /// The value in SI base units.
            pub fn value(self) -> f64 {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = UnitError;

            /// Parses text such as the dimension's [`Dimension::example`];
            /// a unit of another dimension is a [`UnitError::WrongDimension`].
            fn from_str(s: &str) -> Result<Self, UnitError> {
                super::grammar::parse_as(s, Self::DIM).map($name)
            }
        }

        impl fmt::Display for $name {
            /// SI-prefixed with 4 significant digits, e.g. "3.35 TB/s".
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(&super::display::format_si(self.0, Self::DIM.unit()))
            }
        }

        impl Serialize for $name {
            /// Serializes the plain SI number.
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_f64(self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            /// Deserializes a string with a unit through [`parse_quantity`](super::parse_quantity);
            /// a bare number is refused because its unit would be a guess.
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                super::serde::deserialize(deserializer, Self::DIM).map($name)
            }
        }

        impl Add for $name {
            type Output = $name;
            fn add(self, rhs: $name) -> $name {
                $name(self.0 + rhs.0)
            }
        }

        impl Sub for $name {
            type Output = $name;
            fn sub(self, rhs: $name) -> $name {
                $name(self.0 - rhs.0)
            }
        }

        impl AddAssign for $name {
            fn add_assign(&mut self, rhs: $name) {
                self.0 += rhs.0;
            }
        }

        impl SubAssign for $name {
            fn sub_assign(&mut self, rhs: $name) {
                self.0 -= rhs.0;
            }
        }

        impl Mul<f64> for $name {
            type Output = $name;
            fn mul(self, rhs: f64) -> $name {
                $name(self.0 * rhs)
            }
        }

        impl Mul<$name> for f64 {
            type Output = $name;
            fn mul(self, rhs: $name) -> $name {
                $name(self * rhs.0)
            }
        }

        impl Div<f64> for $name {
            type Output = $name;
            fn div(self, rhs: f64) -> $name {
                $name(self.0 / rhs)
            }
        }

        /// The ratio of two quantities of the same dimension.
        impl Div for $name {
            type Output = f64;
            fn div(self, rhs: $name) -> f64 {
                self.0 / rhs.0
            }
        }

        impl Sum for $name {
            fn sum<I: Iterator<Item = $name>>(iter: I) -> $name {
                $name(iter.map(|q| q.0).sum())
            }
        }

        impl<'a> Sum<&'a $name> for $name {
            fn sum<I: Iterator<Item = &'a $name>>(iter: I) -> $name {
                $name(iter.map(|q| q.0).sum())
            }
        }
    };
}
use quantity;

/// Declares a product or quotient of two different dimensions. Products are
/// declared in both operand orders; `scale` is an exact conversion factor.
macro_rules! derived {
    ($lhs:ident * $rhs:ident = $out:ident $(, scale $k:expr)?) => {
        impl Mul<$rhs> for $lhs {
            type Output = $out;
            fn mul(self, rhs: $rhs) -> $out {
                $out(self.0 * rhs.0 $(* $k)?)
            }
        }

        impl Mul<$lhs> for $rhs {
            type Output = $out;
            fn mul(self, rhs: $lhs) -> $out {
                $out(self.0 * rhs.0 $(* $k)?)
            }
        }
    };
    ($lhs:ident / $rhs:ident = $out:ident) => {
        impl Div<$rhs> for $lhs {
            type Output = $out;
            fn div(self, rhs: $rhs) -> $out {
                $out(self.0 / rhs.0)
            }
        }
    };
}
use derived;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensional_arithmetic() {
        let weights: Bytes = "80 GiB".parse().unwrap();
        let bandwidth: BytesPerSecond = "3.35 TB/s".parse().unwrap();
        let time: Seconds = weights / bandwidth;
        assert!((time.value() - 85_899_345_920.0 / 3.35e12).abs() < 1e-15);
        assert!((time.value() - 0.025_641_6).abs() < 1e-7);
        assert_eq!(bandwidth * time, Bytes(3.35e12 * time.0));
        assert_eq!(time * bandwidth, bandwidth * time);

        assert_eq!(Flops(2e12) / FlopsPerSecond(1e12), Seconds(2.0));
        assert_eq!(Bytes(10.0) / Seconds(2.0), BytesPerSecond(5.0));
        assert_eq!(Flops(10.0) / Seconds(2.0), FlopsPerSecond(5.0));
        assert_eq!(FlopsPerSecond(3.0) * Seconds(2.0), Flops(6.0));
        assert_eq!(Bytes(1.0) * JoulesPerBit(1e-12), Joules(8e-12));
        assert_eq!(JoulesPerBit(1e-12) * Bytes(1.0), Joules(8e-12));
        assert_eq!(Flops(4.0) * JoulesPerFlop(0.5), Joules(2.0));
        assert_eq!(Watts(700.0) * Seconds(2.0), Joules(1400.0));
        assert_eq!(Joules(1400.0) / Seconds(2.0), Watts(700.0));
        assert_eq!(Joules(2.0) / Flops(4.0), JoulesPerFlop(0.5));
    }

    #[test]
    fn same_dimension_arithmetic() {
        let mut total = Bytes(1.0) + Bytes(2.0) - Bytes(0.5);
        assert_eq!(total, Bytes(2.5));
        total += Bytes(0.5);
        assert_eq!(total, Bytes(3.0));
        total -= Bytes(1.0);
        assert_eq!(total, Bytes(2.0));
        assert_eq!(total * 3.0, Bytes(6.0));
        assert_eq!(3.0 * total, Bytes(6.0));
        assert_eq!(total / 4.0, Bytes(0.5));
        assert_eq!(Bytes(6.0) / Bytes(3.0), 2.0);
        let sizes = [Bytes(1.0), Bytes(2.0), Bytes(3.0)];
        assert_eq!(sizes.iter().sum::<Bytes>(), Bytes(6.0));
        assert_eq!(sizes.into_iter().sum::<Bytes>(), Bytes(6.0));
        assert_eq!(Vec::<Watts>::new().into_iter().sum::<Watts>(), Watts(0.0));
        assert!(Seconds(1.0) < Seconds(2.0));
        assert_eq!(Hertz::default(), Hertz(0.0));
        assert_eq!(Area::DIM, Dimension::Area);
        assert_eq!(Watts(3.0).value(), 3.0);
    }

    #[test]
    fn wrong_dimension_names_both_dimensions() {
        let err = "989 TFLOPS".parse::<BytesPerSecond>().unwrap_err();
        assert_eq!(
            err,
            UnitError::WrongDimension {
                input: "989 TFLOPS".to_owned(),
                expected: Dimension::BytesPerSecond,
                found: Dimension::FlopsPerSecond,
            }
        );
        assert_eq!(
            err.to_string(),
            "expected a bandwidth such as \"3.35 TB/s\", found \"989 TFLOPS\", \
             which is a compute rate"
        );
        let err = "1.2 TFLOPs".parse::<FlopsPerSecond>().unwrap_err();
        assert!(err.to_string().contains("a compute rate"), "{err}");
        assert!(err.to_string().contains("a FLOP count"), "{err}");
        let err = "80 GiB".parse::<Seconds>().unwrap_err();
        assert!(err.to_string().contains("a time"), "{err}");
        assert!(err.to_string().contains("a byte size"), "{err}");
    }

    #[test]
    fn from_str_reads_each_type() {
        assert_eq!("80 GiB".parse(), Ok(Bytes(85_899_345_920.0)));
        assert_eq!("8 FLOP".parse(), Ok(Flops(8.0)));
        assert_eq!("2 s".parse(), Ok(Seconds(2.0)));
        assert_eq!("650 MHz".parse(), Ok(Hertz(6.5e8)));
        assert_eq!("3 J".parse(), Ok(Joules(3.0)));
        assert_eq!("700 W".parse(), Ok(Watts(700.0)));
        assert_eq!("3 B/s".parse(), Ok(BytesPerSecond(3.0)));
        assert_eq!("3 FLOPS".parse(), Ok(FlopsPerSecond(3.0)));
        assert_eq!("1 J/bit".parse(), Ok(JoulesPerBit(1.0)));
        assert_eq!("1 J/FLOP".parse(), Ok(JoulesPerFlop(1.0)));
        assert_eq!("826 mm^2".parse(), Ok(Area(8.26e-4)));
    }
}
