//! Typed physical quantities for hardware descriptions.
//!
//! Config files state quantities as text with a unit, such as `"3.35 TB/s"`,
//! `"989.4 TFLOPS"`, `"80 GiB"`, `"650 MHz"`, `"0.5 pJ/bit"`, `"2 us"`,
//! `"0.23 pJ/FLOP"`, `"700 W"` or `"826 mm^2"`. [`parse_quantity`] reads such
//! text into a [`Quantity`] in SI base units, and one newtype per
//! [`Dimension`] ([`Bytes`], [`Seconds`], [`BytesPerSecond`], ...) keeps
//! quantities of different dimensions apart at compile time. Each newtype
//! parses with [`FromStr`], deserializes from a string through the same parser,
//! serializes as its plain SI number, and displays with an SI prefix.
//!
//! ```
//! use dyad::units::{Bytes, BytesPerSecond, Seconds};
//!
//! let weights: Bytes = "80 GiB".parse()?;
//! let bandwidth: BytesPerSecond = "3.35 TB/s".parse()?;
//! let time: Seconds = weights / bandwidth;
//! assert_eq!(time.to_string(), "25.64 ms");
//! assert_eq!(weights + Bytes(1.0e9), Bytes(85_899_345_920.0 + 1.0e9));
//! # Ok::<(), dyad::units::UnitError>(())
//! ```
//!
//! Only arithmetic that makes physical sense is provided, so adding a size to
//! a time does not compile:
//!
//! ```compile_fail,E0308
//! use dyad::units::{Bytes, Seconds};
//! let nonsense = Bytes(1.0) + Seconds(1.0);
//! ```
//!
//! and neither does dividing FLOPs by bytes: arithmetic intensity is a plain
//! ratio that callers compute explicitly from [`Flops::value`] and
//! [`Bytes::value`].
//!
//! ```compile_fail,E0277
//! use dyad::units::{Bytes, Flops};
//! let intensity = Flops(1.0) / Bytes(1.0);
//! ```
//!
//! # Grammar
//!
//! A quantity is a number, optional whitespace, then a unit; surrounding
//! whitespace is ignored and anything after the unit is an error.
//!
//! * The number has an optional sign, a decimal part and an optional exponent
//!   (`1.5e9`). Negative numbers are accepted (range checks are the caller's
//!   job); NaN and infinity never are, nor is a value that overflows.
//! * Units are case-sensitive (`m` is milli, `M` is mega). SI prefixes are
//!   `p n u µ m k M G T P E`, with `K` also read as kilo and both the micro
//!   sign `µ` and the Greek letter `μ` read as micro. Binary prefixes
//!   `Ki Mi Gi Ti Pi` apply to bytes and bits only (`"1 GiHz"` is an error).
//! * Bytes: `B`, `byte`, `bytes`. Bits: `b`, `bit`, `bits` (a bit is 1/8 byte).
//!   Bandwidth: any of these followed by `/s` (`"100 Gb/s"` is 12.5e9 B/s).
//! * FLOPs: `FLOP` and `FLOPs` are a **count**, while `FLOPS`, `FLOP/s` and
//!   `FLOPs/s` are a **rate**. Note that `"1 TFLOPs"` (a count) and
//!   `"1 TFLOPS"` (a rate) differ only in the case of their last letter.
//! * Time `s`, frequency `Hz`, energy `J`, power `W`, energy per bit `J/bit`
//!   or `J/b`, energy per FLOP `J/FLOP`.
//! * Area: `m^2` or `m2` with an optional SI prefix on the metre, which is
//!   squared (`"826 mm^2"` is 8.26e-4 m^2).

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, Mul, Sub, SubAssign};
use std::str::FromStr;

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case};
use nom::character::complete::{char, digit0, digit1, multispace0, one_of};
use nom::combinator::{all_consuming, map, opt, recognize, rest, value};
use nom::error::{Error as NomError, ErrorKind};
use nom::sequence::{preceded, terminated};
use nom::{IResult, Parser};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Bits in one byte: bit units are converted to bytes with it.
const BITS_PER_BYTE: f64 = 8.0;

/// The example shown in syntax errors, where the wanted dimension is unknown.
const SYNTAX_EXAMPLE: &str = "3.35 TB/s";

/// Physical dimension of a quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// A byte size, in bytes.
    Bytes,
    /// A count of floating-point operations.
    Flops,
    /// A time, in seconds.
    Seconds,
    /// A frequency, in hertz.
    Hertz,
    /// An energy, in joules.
    Joules,
    /// A power, in watts.
    Watts,
    /// A bandwidth, in bytes per second.
    BytesPerSecond,
    /// A compute rate, in FLOPs per second.
    FlopsPerSecond,
    /// An energy per bit moved, in joules per bit.
    JoulesPerBit,
    /// An energy per floating-point operation, in joules per FLOP.
    JoulesPerFlop,
    /// An area, in square metres.
    Area,
}

impl Dimension {
    /// The dimension in words with its article, for messages: "a bandwidth".
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Bytes => "a byte size",
            Dimension::Flops => "a FLOP count",
            Dimension::Seconds => "a time",
            Dimension::Hertz => "a frequency",
            Dimension::Joules => "an energy",
            Dimension::Watts => "a power",
            Dimension::BytesPerSecond => "a bandwidth",
            Dimension::FlopsPerSecond => "a compute rate",
            Dimension::JoulesPerBit => "an energy per bit",
            Dimension::JoulesPerFlop => "an energy per FLOP",
            Dimension::Area => "an area",
        }
    }

    /// A typical value of this dimension as it would be written in a config.
    pub fn example(self) -> &'static str {
        match self {
            Dimension::Bytes => "80 GiB",
            Dimension::Flops => "1.2 TFLOP",
            Dimension::Seconds => "2 us",
            Dimension::Hertz => "650 MHz",
            Dimension::Joules => "0.9 nJ",
            Dimension::Watts => "700 W",
            Dimension::BytesPerSecond => "3.35 TB/s",
            Dimension::FlopsPerSecond => "989.4 TFLOPS",
            Dimension::JoulesPerBit => "0.5 pJ/bit",
            Dimension::JoulesPerFlop => "0.23 pJ/FLOP",
            Dimension::Area => "826 mm^2",
        }
    }
}

/// A parsed quantity in SI base units (bytes, FLOPs, seconds, hertz, joules,
/// watts, B/s, FLOP/s, J/bit, J/FLOP, m^2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantity {
    /// The value in the SI base unit of `dim`.
    pub value: f64,
    /// The physical dimension of the value.
    pub dim: Dimension,
}

/// Why a text could not be read as the wanted quantity.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UnitError {
    /// The text is not a number followed by a known unit.
    #[error(
        "cannot read \"{input}\" as a quantity: {reason} \
         (expected a number then a unit, e.g. \"{SYNTAX_EXAMPLE}\")"
    )]
    Syntax {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The text is a valid quantity, but of another dimension than wanted.
    #[error(
        "expected {} such as \"{}\", found \"{input}\", which is {}",
        .expected.name(),
        .expected.example(),
        .found.name()
    )]
    WrongDimension {
        /// The text as given.
        input: String,
        /// The dimension that was wanted.
        expected: Dimension,
        /// The dimension of the text's unit.
        found: Dimension,
    },
    /// The number is NaN or infinite, or overflows once its prefix is applied.
    #[error("cannot read \"{input}\" as a quantity: its value is not a finite number")]
    NotFinite {
        /// The text as given.
        input: String,
    },
}

/// Reads a number followed by a unit, such as `"3.35 TB/s"`, into SI base units.
///
/// See the [module documentation](self) for the accepted grammar. Fails with
/// [`UnitError::Syntax`] for text that is not a number and a known unit, and
/// with [`UnitError::NotFinite`] for NaN, infinity or an overflowing value.
pub fn parse_quantity(s: &str) -> Result<Quantity, UnitError> {
    let syntax = |reason: String| UnitError::Syntax {
        input: s.to_owned(),
        reason,
    };
    let not_finite = || UnitError::NotFinite {
        input: s.to_owned(),
    };

    let text = s.trim();
    if text.is_empty() {
        return Err(syntax("the text is empty".to_owned()));
    }
    let (number, unit_text) = split_number_and_unit(text)
        .map_err(|_| syntax("it does not start with a number".to_owned()))?;
    let Number::Decimal {
        significand,
        exponent,
    } = number
    else {
        return Err(not_finite());
    };
    if unit_text.is_empty() {
        return Err(syntax("the unit is missing".to_owned()));
    }
    let unit = parse_unit(unit_text).map_err(syntax)?;
    let value = unit.apply(significand, exponent);
    if !value.is_finite() {
        return Err(not_finite());
    }
    Ok(Quantity {
        value,
        dim: unit.dim,
    })
}

/// Parses `s` and checks that it has dimension `expected`; returns the SI value.
fn parse_as(s: &str, expected: Dimension) -> Result<f64, UnitError> {
    let quantity = parse_quantity(s)?;
    if quantity.dim == expected {
        Ok(quantity.value)
    } else {
        Err(UnitError::WrongDimension {
            input: s.to_owned(),
            expected,
            found: quantity.dim,
        })
    }
}

// ---------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------

/// A number as written. Decimals are kept as text so that a unit prefix can
/// shift the exponent before the single rounding to `f64`: `"0.23 pJ"` then
/// gives exactly the literal `2.3e-13`, not `0.23 * 1e-12`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Number<'a> {
    /// Digits with an optional sign and point, times ten to `exponent`.
    Decimal { significand: &'a str, exponent: i32 },
    /// A spelling of NaN or infinity, which is never accepted.
    NonFinite,
}

/// Exponents beyond this are clamped: they overflow or underflow `f64` anyway.
const MAX_EXPONENT: i32 = 100_000;

/// Splits trimmed text into its leading number and the unit text after it.
fn split_number_and_unit(text: &str) -> Result<(Number<'_>, &str), nom::Err<NomError<&str>>> {
    let (_, (number, _, unit)) = (number, multispace0, rest).parse(text)?;
    Ok((number, unit))
}

/// A decimal literal, or a spelling of NaN or infinity.
fn number(input: &str) -> IResult<&str, Number<'_>> {
    alt((decimal, value(Number::NonFinite, non_finite))).parse(input)
}

/// An optionally signed decimal with an optional exponent: `-1.5e9`, `.5`, `80`.
fn decimal(input: &str) -> IResult<&str, Number<'_>> {
    let significand = recognize((
        opt(one_of("+-")),
        alt((
            recognize((digit1, opt((char('.'), digit0)))),
            recognize((char('.'), digit1)),
        )),
    ));
    let exponent = opt(preceded(
        one_of("eE"),
        recognize((opt(one_of("+-")), digit1)),
    ));
    map((significand, exponent), |(significand, exponent)| {
        Number::Decimal {
            significand,
            exponent: exponent.map_or(0, parse_exponent),
        }
    })
    .parse(input)
}

/// Reads signed exponent digits, clamping ones too long for `i32`.
fn parse_exponent(digits: &str) -> i32 {
    let saturated = if digits.starts_with('-') {
        -MAX_EXPONENT
    } else {
        MAX_EXPONENT
    };
    digits
        .parse::<i32>()
        .unwrap_or(saturated)
        .clamp(-MAX_EXPONENT, MAX_EXPONENT)
}

/// `nan`, `inf` or `infinity` in any case, with an optional sign.
fn non_finite(input: &str) -> IResult<&str, &str> {
    recognize((
        opt(one_of("+-")),
        alt((
            tag_no_case("nan"),
            tag_no_case("infinity"),
            tag_no_case("inf"),
        )),
    ))
    .parse(input)
}

/// The value of `significand` times 10^`exponent`, correctly rounded.
fn decimal_to_f64(significand: &str, exponent: i32) -> f64 {
    // The significand was recognized as digits with an optional sign and
    // point, so this always parses; NaN would be reported as not finite.
    format!("{significand}e{exponent}")
        .parse()
        .unwrap_or(f64::NAN)
}

// ---------------------------------------------------------------------------
// Units
// ---------------------------------------------------------------------------

/// A unit prefix as written in a config.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Prefix {
    symbol: &'static str,
    /// Power of ten for SI prefixes, power of two for binary ones.
    exponent: i32,
    binary: bool,
}

impl Prefix {
    const fn si(symbol: &'static str, exponent: i32) -> Self {
        Prefix {
            symbol,
            exponent,
            binary: false,
        }
    }

    const fn binary(symbol: &'static str, exponent: i32) -> Self {
        Prefix {
            symbol,
            exponent,
            binary: true,
        }
    }
}

/// The absence of a prefix: a factor of one.
const NO_PREFIX: Prefix = Prefix::si("", 0);

/// Prefixes accepted by the parser, binary first so that `Ki` wins over `K`.
const PARSE_PREFIXES: [Prefix; 18] = [
    Prefix::binary("Ki", 10),
    Prefix::binary("Mi", 20),
    Prefix::binary("Gi", 30),
    Prefix::binary("Ti", 40),
    Prefix::binary("Pi", 50),
    Prefix::si("p", -12),
    Prefix::si("n", -9),
    Prefix::si("u", -6),
    Prefix::si("\u{b5}", -6),  // µ, the micro sign
    Prefix::si("\u{3bc}", -6), // μ, the Greek letter mu
    Prefix::si("m", -3),
    Prefix::si("k", 3),
    Prefix::si("K", 3),
    Prefix::si("M", 6),
    Prefix::si("G", 9),
    Prefix::si("T", 12),
    Prefix::si("P", 15),
    Prefix::si("E", 18),
];

/// A unit without its prefix, as the grammar knows it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum BaseUnit {
    /// A data size (`per_second == false`) or rate; `bytes` is the unit's
    /// size in bytes (1 for a byte, 1/8 for a bit).
    Data {
        bytes: f64,
        per_second: bool,
    },
    FlopCount,
    FlopRate,
    Second,
    Hertz,
    Joule,
    Watt,
    JoulePerBit,
    JoulePerFlop,
    SquareMetre,
}

/// A fully resolved unit: its dimension and how to scale a number into SI.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Unit {
    dim: Dimension,
    /// An exactly representable factor (a power of two, or 1/8 for bits).
    multiplier: f64,
    /// A power of ten, added to the number's decimal exponent.
    pow10: i32,
}

impl Unit {
    /// Converts a decimal written in this unit into SI base units.
    fn apply(self, significand: &str, exponent: i32) -> f64 {
        decimal_to_f64(significand, exponent + self.pow10) * self.multiplier
    }
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

/// Parses a complete unit such as `"TB/s"` or `"mm^2"`; the error is the
/// reason to report in a [`UnitError::Syntax`].
fn parse_unit(text: &str) -> Result<Unit, String> {
    match unit(text) {
        Ok((_, (prefix, base))) => resolve(prefix, base, text),
        Err(_) => Err(format!("unknown unit \"{text}\"")),
    }
}

/// A prefixed or bare unit spanning the whole input. Trying the prefixed form
/// first lets `"mm^2"` be milli-(m^2) while `"m^2"` is still plain m^2.
fn unit(input: &str) -> IResult<&str, (Option<Prefix>, BaseUnit)> {
    alt((
        all_consuming((map(prefix, Some), base_unit)),
        all_consuming(map(base_unit, |base| (None, base))),
    ))
    .parse(input)
}

/// One of [`PARSE_PREFIXES`].
fn prefix(input: &str) -> IResult<&str, Prefix> {
    PARSE_PREFIXES
        .iter()
        .find_map(|p| input.strip_prefix(p.symbol).map(|rest| (rest, *p)))
        .ok_or(nom::Err::Error(NomError::new(input, ErrorKind::Tag)))
}

/// A unit without prefix. Each spelling is tried before any shorter spelling
/// that begins it (`FLOPs/s` before `FLOPs` before `FLOP`).
fn base_unit(input: &str) -> IResult<&str, BaseUnit> {
    alt((
        map(terminated(data_unit, tag("/s")), |bytes| BaseUnit::Data {
            bytes,
            per_second: true,
        }),
        map(data_unit, |bytes| BaseUnit::Data {
            bytes,
            per_second: false,
        }),
        value(
            BaseUnit::FlopRate,
            alt((tag("FLOPs/s"), tag("FLOP/s"), tag("FLOPS"))),
        ),
        value(BaseUnit::FlopCount, alt((tag("FLOPs"), tag("FLOP")))),
        value(BaseUnit::JoulePerBit, alt((tag("J/bit"), tag("J/b")))),
        value(BaseUnit::JoulePerFlop, tag("J/FLOP")),
        value(BaseUnit::Joule, tag("J")),
        value(BaseUnit::Second, tag("s")),
        value(BaseUnit::Hertz, tag("Hz")),
        value(BaseUnit::Watt, tag("W")),
        value(BaseUnit::SquareMetre, alt((tag("m^2"), tag("m2")))),
    ))
    .parse(input)
}

/// A byte or bit unit; the value is its size in bytes.
fn data_unit(input: &str) -> IResult<&str, f64> {
    alt((
        value(1.0, alt((tag("bytes"), tag("byte"), tag("B")))),
        value(
            1.0 / BITS_PER_BYTE,
            alt((tag("bits"), tag("bit"), tag("b"))),
        ),
    ))
    .parse(input)
}

/// Combines a prefix and a base unit, rejecting binary prefixes outside data
/// units. `text` is the whole unit, for the error message.
fn resolve(prefix: Option<Prefix>, base: BaseUnit, text: &str) -> Result<Unit, String> {
    let prefix = prefix.unwrap_or(NO_PREFIX);
    let is_data = matches!(base, BaseUnit::Data { .. });
    if prefix.binary && !is_data {
        return Err(format!(
            "binary prefix \"{}\" in \"{text}\" applies only to bytes and bits",
            prefix.symbol
        ));
    }
    let (dim, multiplier) = match base {
        BaseUnit::Data {
            bytes,
            per_second: false,
        } => (Dimension::Bytes, bytes),
        BaseUnit::Data {
            bytes,
            per_second: true,
        } => (Dimension::BytesPerSecond, bytes),
        BaseUnit::FlopCount => (Dimension::Flops, 1.0),
        BaseUnit::FlopRate => (Dimension::FlopsPerSecond, 1.0),
        BaseUnit::Second => (Dimension::Seconds, 1.0),
        BaseUnit::Hertz => (Dimension::Hertz, 1.0),
        BaseUnit::Joule => (Dimension::Joules, 1.0),
        BaseUnit::Watt => (Dimension::Watts, 1.0),
        BaseUnit::JoulePerBit => (Dimension::JoulesPerBit, 1.0),
        BaseUnit::JoulePerFlop => (Dimension::JoulesPerFlop, 1.0),
        BaseUnit::SquareMetre => (Dimension::Area, 1.0),
    };
    // The prefix of an area scales the metre, so it counts twice.
    let power = if base == BaseUnit::SquareMetre { 2 } else { 1 };
    Ok(if prefix.binary {
        Unit {
            dim,
            multiplier: multiplier * 2f64.powi(prefix.exponent),
            pow10: 0,
        }
    } else {
        Unit {
            dim,
            multiplier,
            pow10: prefix.exponent * power,
        }
    })
}

// ---------------------------------------------------------------------------
// Display
// ---------------------------------------------------------------------------

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

/// Significant digits shown by `Display`.
const SIGNIFICANT_DIGITS: usize = 4;

/// How a newtype writes itself: its unit symbol, the prefixes it may use and
/// the power that the prefix is raised to (2 for areas: `mm^2`).
struct DisplayStyle {
    unit: &'static str,
    prefixes: &'static [(&'static str, i32)],
    power: i32,
}

impl DisplayStyle {
    /// Every prefix from pico to exa.
    const fn all(unit: &'static str) -> Self {
        DisplayStyle {
            unit,
            prefixes: DISPLAY_PREFIXES,
            power: 1,
        }
    }
}

/// Times go up to plain seconds: "3600 s" reads better than "3.6 ks".
const TIME_STYLE: DisplayStyle = DisplayStyle {
    unit: "s",
    prefixes: &[("p", -12), ("n", -9), ("u", -6), ("m", -3), ("", 0)],
    power: 1,
};

/// Areas from nm^2 to km^2.
const AREA_STYLE: DisplayStyle = DisplayStyle {
    unit: "m^2",
    prefixes: &[("n", -9), ("u", -6), ("m", -3), ("", 0), ("k", 3)],
    power: 2,
};

/// Writes `value` (in SI base units) with an SI prefix and 4 significant
/// digits, trailing zeros trimmed: `3.35e12` in B/s is "3.35 TB/s".
fn format_si(value: f64, style: &DisplayStyle) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value} {}", style.unit);
    }
    let rounded = round_significant(value);
    let (symbol, pow10) = pick_prefix(rounded.abs(), style);
    let mantissa = scale_by_pow10(rounded, -pow10);
    format!("{} {symbol}{}", format_mantissa(mantissa), style.unit)
}

/// Rounds to [`SIGNIFICANT_DIGITS`] so that the prefix is chosen after
/// rounding (999.96 W is "1 kW", not "1000 W").
fn round_significant(value: f64) -> f64 {
    let text = format!("{value:.prec$e}", prec = SIGNIFICANT_DIGITS - 1);
    text.parse().unwrap_or(value)
}

/// The largest prefix not above `magnitude` (the smallest one if all are),
/// with its power of ten already raised to the style's power.
fn pick_prefix(magnitude: f64, style: &DisplayStyle) -> (&'static str, i32) {
    let scaled = |&(symbol, exponent): &(&'static str, i32)| (symbol, exponent * style.power);
    style
        .prefixes
        .iter()
        .map(scaled)
        .rev()
        .find(|&(_, pow10)| magnitude >= scale_by_pow10(1.0, pow10))
        .or_else(|| style.prefixes.first().map(scaled))
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

// ---------------------------------------------------------------------------
// Serde
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Newtypes
// ---------------------------------------------------------------------------

/// Declares one newtype per dimension with parsing, display, serde and the
/// arithmetic that every quantity shares.
macro_rules! quantity {
    ($(#[$doc:meta])* $name:ident, $dim:ident, $style:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
        pub struct $name(pub f64);

        impl $name {
            /// The physical dimension of this type.
            pub const DIM: Dimension = Dimension::$dim;

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
                parse_as(s, Self::DIM).map($name)
            }
        }

        impl fmt::Display for $name {
            /// SI-prefixed with 4 significant digits, e.g. "3.35 TB/s".
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(&format_si(self.0, &$style))
            }
        }

        impl Serialize for $name {
            /// Serializes the plain SI number.
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_f64(self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            /// Deserializes a string with a unit through [`parse_quantity`];
            /// a bare number is refused because its unit would be a guess.
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer
                    .deserialize_any(QuantityVisitor(Self::DIM))
                    .map($name)
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

quantity!(
    /// A byte size in bytes; displayed with decimal prefixes ("80 GB").
    Bytes,
    Bytes,
    DisplayStyle::all("B")
);
quantity!(
    /// A count of floating-point operations ("1.2 TFLOP").
    Flops,
    Flops,
    DisplayStyle::all("FLOP")
);
quantity!(
    /// A time in seconds ("2 us").
    Seconds,
    Seconds,
    TIME_STYLE
);
quantity!(
    /// A frequency in hertz ("650 MHz").
    Hertz,
    Hertz,
    DisplayStyle::all("Hz")
);
quantity!(
    /// An energy in joules ("0.9 nJ").
    Joules,
    Joules,
    DisplayStyle::all("J")
);
quantity!(
    /// A power in watts ("700 W").
    Watts,
    Watts,
    DisplayStyle::all("W")
);
quantity!(
    /// A bandwidth in bytes per second ("3.35 TB/s").
    BytesPerSecond,
    BytesPerSecond,
    DisplayStyle::all("B/s")
);
quantity!(
    /// A compute rate in FLOPs per second ("989.4 TFLOPS").
    FlopsPerSecond,
    FlopsPerSecond,
    DisplayStyle::all("FLOPS")
);
quantity!(
    /// An energy per bit moved, in joules per bit ("0.5 pJ/bit").
    JoulesPerBit,
    JoulesPerBit,
    DisplayStyle::all("J/bit")
);
quantity!(
    /// An energy per floating-point operation, in joules per FLOP ("0.23 pJ/FLOP").
    JoulesPerFlop,
    JoulesPerFlop,
    DisplayStyle::all("J/FLOP")
);
quantity!(
    /// An area in square metres ("826 mm^2").
    Area,
    Area,
    AREA_STYLE
);

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Asserts that `text` parses to `expected` SI units of `dim`, to within
    /// a few ulps (decimal fractions such as 3.35 are not exact in binary).
    fn assert_si(text: &str, dim: Dimension, expected: f64) {
        let q = parse_quantity(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(q.dim, dim, "{text}");
        let tolerance = 4.0 * f64::EPSILON * expected.abs();
        assert!(
            (q.value - expected).abs() <= tolerance,
            "{text}: got {:e}, expected {expected:e}",
            q.value
        );
    }

    fn syntax_reason(text: &str) -> String {
        match parse_quantity(text) {
            Err(UnitError::Syntax { input, reason }) => {
                assert_eq!(input, text);
                reason
            }
            other => panic!("{text}: expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_spec_examples_to_si_values() {
        use Dimension::*;
        assert_si("3.35 TB/s", BytesPerSecond, 3.35e12);
        assert_si("989.4 TFLOPS", FlopsPerSecond, 9.894e14);
        assert_si("80 GiB", Bytes, 85_899_345_920.0);
        assert_si("650 MHz", Hertz, 6.5e8);
        assert_si("0.5 pJ/bit", JoulesPerBit, 5e-13);
        assert_si("2 us", Seconds, 2e-6);
        assert_si("0.23 pJ/FLOP", JoulesPerFlop, 2.3e-13);
        assert_si("700 W", Watts, 700.0);
        assert_si("826 mm^2", Area, 8.26e-4);
        assert_si("1.2 TFLOP", Flops, 1.2e12);
        assert_si("0.9 nJ", Joules, 9e-10);
    }

    #[test]
    fn binary_prefixes_are_exact_powers_of_two() {
        assert_eq!(
            parse_quantity("80 GiB").map(|q| q.value),
            Ok(80.0 * 1024f64.powi(3))
        );
        assert_si("1 KiB", Dimension::Bytes, 1024.0);
        assert_si("1 MiB", Dimension::Bytes, 1_048_576.0);
        assert_si("2 TiB", Dimension::Bytes, 2.0 * 2f64.powi(40));
        assert_si("1 PiB", Dimension::Bytes, 2f64.powi(50));
        assert_si("1 GiB/s", Dimension::BytesPerSecond, 2f64.powi(30));
        assert_si("8 Kibit", Dimension::Bytes, 1024.0);
    }

    #[test]
    fn bits_are_an_eighth_of_a_byte() {
        assert_si("100 Gb/s", Dimension::BytesPerSecond, 12.5e9);
        assert_si("8 bit", Dimension::Bytes, 1.0);
        assert_si("16 bits", Dimension::Bytes, 2.0);
        assert_si("800 Gbit/s", Dimension::BytesPerSecond, 1e11);
        assert_si("64 bits/s", Dimension::BytesPerSecond, 8.0);
    }

    #[test]
    fn byte_spellings_and_kilo_variants() {
        assert_si("1 byte", Dimension::Bytes, 1.0);
        assert_si("3 bytes", Dimension::Bytes, 3.0);
        assert_si("1 kB", Dimension::Bytes, 1e3);
        assert_si("1 KB", Dimension::Bytes, 1e3);
        assert_si("2 PB", Dimension::Bytes, 2e15);
        assert_si("1 EB", Dimension::Bytes, 1e18);
        assert_si("5 B/s", Dimension::BytesPerSecond, 5.0);
        assert_si("5 bytes/s", Dimension::BytesPerSecond, 5.0);
    }

    #[test]
    fn flop_count_and_rate_spellings() {
        use Dimension::*;
        assert_si("1.2 TFLOPs", Flops, 1.2e12);
        assert_si("3 FLOP", Flops, 3.0);
        assert_si("1 PFLOPS", FlopsPerSecond, 1e15);
        assert_si("2 GFLOP/s", FlopsPerSecond, 2e9);
        assert_si("2 GFLOPs/s", FlopsPerSecond, 2e9);
        assert!(parse_quantity("1 TOPS").is_err());
        assert!(parse_quantity("1 TOP/s").is_err());
        assert!(parse_quantity("1 Tflops").is_err());
    }

    #[test]
    fn time_frequency_energy_power_and_area_units() {
        use Dimension::*;
        assert_si("1 s", Seconds, 1.0);
        assert_si("5 ms", Seconds, 5e-3);
        assert_si("2 \u{b5}s", Seconds, 2e-6);
        assert_si("2 \u{3bc}s", Seconds, 2e-6);
        assert_si("7 ns", Seconds, 7e-9);
        assert_si("3 ps", Seconds, 3e-12);
        assert_si("1 kHz", Hertz, 1e3);
        assert_si("1.98 GHz", Hertz, 1.98e9);
        assert_si("4 pJ", Joules, 4e-12);
        assert_si("1 J", Joules, 1.0);
        assert_si("1 mW", Watts, 1e-3);
        assert_si("1 MW", Watts, 1e6);
        assert_si("0.5 pJ/b", JoulesPerBit, 5e-13);
        assert_si("826 mm2", Area, 8.26e-4);
        assert_si("1 m^2", Area, 1.0);
        assert_si("3 m2", Area, 3.0);
        assert_si("4 um^2", Area, 4e-12);
        assert_si("4 \u{b5}m^2", Area, 4e-12);
    }

    #[test]
    fn number_forms() {
        use Dimension::*;
        assert_si("1.5e9 Hz", Hertz, 1.5e9);
        assert_si("1.5E9 Hz", Hertz, 1.5e9);
        assert_si("2.5e-3 s", Seconds, 2.5e-3);
        assert_si("+3 W", Watts, 3.0);
        assert_si("-5 W", Watts, -5.0);
        assert_si(".5 W", Watts, 0.5);
        assert_si("5. W", Watts, 5.0);
        assert_si("80GiB", Bytes, 85_899_345_920.0);
        assert_si("  80 GiB \n", Bytes, 85_899_345_920.0);
        assert_si("1EB", Bytes, 1e18);
        assert_si("1e3EB", Bytes, 1e21);
    }

    #[test]
    fn syntax_errors_say_what_is_wrong() {
        let err = parse_quantity("3.35 TBs").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read \"3.35 TBs\" as a quantity: unknown unit \"TBs\" \
             (expected a number then a unit, e.g. \"3.35 TB/s\")"
        );
        assert_eq!(syntax_reason("3.35"), "the unit is missing");
        assert_eq!(syntax_reason(""), "the text is empty");
        assert_eq!(syntax_reason("TB/s"), "it does not start with a number");
        assert_eq!(syntax_reason("e9 B"), "it does not start with a number");
        assert_eq!(
            syntax_reason("3.35 TB/s extra"),
            "unknown unit \"TB/s extra\""
        );
        assert_eq!(syntax_reason("1 m"), "unknown unit \"m\"");
        assert_eq!(syntax_reason("1 Bytes"), "unknown unit \"Bytes\"");
        assert_eq!(syntax_reason("1 J/B"), "unknown unit \"J/B\"");
        assert_eq!(syntax_reason("1 GB / s"), "unknown unit \"GB / s\"");
        assert_eq!(syntax_reason("1 fJ"), "unknown unit \"fJ\"");
    }

    #[test]
    fn units_are_case_sensitive() {
        assert_si("1 mHz", Dimension::Hertz, 1e-3);
        assert_si("1 MHz", Dimension::Hertz, 1e6);
        assert_si("1 Mb", Dimension::Bytes, 1.25e5);
        assert_si("1 MB", Dimension::Bytes, 1e6);
        assert_eq!(syntax_reason("1 mhz"), "unknown unit \"mhz\"");
        assert_eq!(syntax_reason("1 w"), "unknown unit \"w\"");
    }

    #[test]
    fn binary_prefixes_only_apply_to_data() {
        for text in ["1 GiHz", "1 MiW", "1 KiJ", "1 TiFLOPS", "1 Gis", "1 Mim^2"] {
            let reason = syntax_reason(text);
            assert!(reason.contains("binary prefix"), "{text}: {reason}");
            assert!(reason.contains("bytes and bits"), "{text}: {reason}");
        }
        assert_eq!(
            syntax_reason("1 GiHz"),
            "binary prefix \"Gi\" in \"GiHz\" applies only to bytes and bits"
        );
    }

    #[test]
    fn non_finite_values_are_rejected() {
        for text in [
            "NaN GB",
            "nan W",
            "inf W",
            "-inf s",
            "Infinity Hz",
            "1e400 B",
            "1e308 EB",
        ] {
            assert_eq!(
                parse_quantity(text),
                Err(UnitError::NotFinite {
                    input: text.to_owned()
                }),
                "{text}"
            );
        }
        assert_eq!(
            parse_quantity("inf W").unwrap_err().to_string(),
            "cannot read \"inf W\" as a quantity: its value is not a finite number"
        );
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

    #[test]
    fn every_dimension_example_parses_to_its_own_dimension() {
        use Dimension::*;
        let all = [
            Bytes,
            Flops,
            Seconds,
            Hertz,
            Joules,
            Watts,
            BytesPerSecond,
            FlopsPerSecond,
            JoulesPerBit,
            JoulesPerFlop,
            Area,
        ];
        for dim in all {
            assert_eq!(parse_quantity(dim.example()).map(|q| q.dim), Ok(dim));
        }
    }

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

    /// Text made of characters that the grammar cares about, plus any others.
    fn unit_like_text() -> impl Strategy<Value = String> {
        let interesting: Vec<char> = "0123456789.+-eE /^2pnuµμmkKMGTPEiBbytesFLOPSJWHzt"
            .chars()
            .collect();
        let character = prop_oneof![
            4 => prop::sample::select(interesting),
            1 => any::<char>(),
        ];
        prop::collection::vec(character, 0..16).prop_map(|chars| chars.into_iter().collect())
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

        #[test]
        fn parsing_arbitrary_text_never_panics(text in unit_like_text()) {
            let _ = parse_quantity(&text);
        }
    }
}
