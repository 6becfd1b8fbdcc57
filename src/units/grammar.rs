//! The nom grammar of quantities as written: a number, optional whitespace, a unit (see the
//! [module documentation](super) for what is accepted). Unit spellings come from the dimension
//! table in `quantities.rs`; this file knows numbers and prefixes.

use nom::branch::alt;
use nom::bytes::complete::tag_no_case;
use nom::character::complete::{char, digit0, digit1, multispace0, one_of};
use nom::combinator::{all_consuming, map, opt, recognize, rest, value};
use nom::error::{Error as NomError, ErrorKind};
use nom::sequence::preceded;
use nom::{IResult, Parser};

use super::quantities::BITS_PER_BYTE;
use super::{Dimension, Quantity, UnitError};

/// Reads a number followed by a unit, such as `"3.35 TB/s"`, into SI base units.
///
/// See the [module documentation](super) for the accepted grammar. Fails with
/// [`UnitError::Syntax`] for text that is not a number and a known unit, and
/// with [`UnitError::NotFinite`] for NaN, infinity or an overflowing value.
pub fn parse_quantity(s: &str) -> Result<Quantity, UnitError> {
    let syntax = |reason: SyntaxReason| UnitError::Syntax {
        input: s.to_owned(),
        reason: reason.to_string(),
    };
    let not_finite = || UnitError::NotFinite {
        input: s.to_owned(),
    };

    let text = s.trim();
    if text.is_empty() {
        return Err(syntax(SyntaxReason::Empty));
    }
    let (number, unit_text) =
        split_number_and_unit(text).map_err(|_| syntax(SyntaxReason::NoNumber))?;
    let Number::Decimal {
        significand,
        exponent,
    } = number
    else {
        return Err(not_finite());
    };
    if unit_text.is_empty() {
        return Err(syntax(SyntaxReason::NoUnit));
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
pub(super) fn parse_as(s: &str, expected: Dimension) -> Result<f64, UnitError> {
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

/// What is wrong with text that is not a number and a known unit: the `reason` of a
/// [`UnitError::Syntax`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum SyntaxReason {
    /// Nothing but whitespace.
    #[error("the text is empty")]
    Empty,
    /// The text does not open with a decimal number.
    #[error("it does not start with a number")]
    NoNumber,
    /// A number with nothing after it.
    #[error("the unit is missing")]
    NoUnit,
    /// The text after the number is no known unit.
    #[error("unknown unit \"{0}\"")]
    UnknownUnit(String),
    /// A binary prefix on a unit that is not bytes or bits.
    #[error("binary prefix \"{prefix}\" in \"{unit}\" applies only to bytes and bits")]
    BinaryPrefix {
        /// The prefix as written ("Gi").
        prefix: &'static str,
        /// The whole unit as written ("GiHz").
        unit: String,
    },
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

/// A unit without its prefix: its dimension and its size in SI base units
/// (1, or 1/8 for a bit).
#[derive(Debug, Clone, Copy, PartialEq)]
struct BaseUnit {
    dim: Dimension,
    size: f64,
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

/// Parses a complete unit such as `"TB/s"` or `"mm^2"`.
fn parse_unit(text: &str) -> Result<Unit, SyntaxReason> {
    match unit(text) {
        Ok((_, (prefix, base))) => resolve(prefix, base, text),
        Err(_) => Err(SyntaxReason::UnknownUnit(text.to_owned())),
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

/// Every spelling in the dimension table with the unit it names.
fn spellings() -> impl Iterator<Item = (&'static str, BaseUnit)> {
    Dimension::ALL.iter().flat_map(|&dim| {
        let spec = dim.unit();
        let whole = spec.spellings.iter().map(move |&s| (s, 1.0));
        let bits = spec.bit_spellings.iter().map(|&s| (s, 1.0 / BITS_PER_BYTE));
        whole
            .chain(bits)
            .map(move |(s, size)| (s, BaseUnit { dim, size }))
    })
}

/// A unit without prefix: the longest spelling that begins the input, so that `FLOPs/s` wins
/// over `FLOPs` and `FLOP`.
fn base_unit(input: &str) -> IResult<&str, BaseUnit> {
    spellings()
        .filter(|(s, _)| input.starts_with(s))
        .max_by_key(|(s, _)| s.len())
        .map(|(s, base)| (&input[s.len()..], base))
        .ok_or(nom::Err::Error(NomError::new(input, ErrorKind::Tag)))
}

/// Combines a prefix and a base unit, rejecting binary prefixes outside data
/// units. `text` is the whole unit, for the error message.
fn resolve(prefix: Option<Prefix>, base: BaseUnit, text: &str) -> Result<Unit, SyntaxReason> {
    let prefix = prefix.unwrap_or(NO_PREFIX);
    let spec = base.dim.unit();
    if prefix.binary && !spec.binary {
        return Err(SyntaxReason::BinaryPrefix {
            prefix: prefix.symbol,
            unit: text.to_owned(),
        });
    }
    Ok(if prefix.binary {
        Unit {
            dim: base.dim,
            multiplier: base.size * 2f64.powi(prefix.exponent),
            pow10: 0,
        }
    } else {
        Unit {
            dim: base.dim,
            multiplier: base.size,
            // The prefix of an area scales the metre, so it counts twice.
            pow10: prefix.exponent * spec.power,
        }
    })
}

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
    fn every_dimension_example_parses_to_its_own_dimension() {
        assert_eq!(Dimension::ALL.len(), 11);
        for &dim in Dimension::ALL {
            assert_eq!(parse_quantity(dim.example()).map(|q| q.dim), Ok(dim));
        }
    }

    #[test]
    fn every_spelling_is_unique_and_reads_as_its_dimension() {
        let all: Vec<_> = spellings().collect();
        for (i, (s, base)) in all.iter().enumerate() {
            assert!(
                all[i + 1..].iter().all(|(t, _)| t != s),
                "\"{s}\" is spelled twice"
            );
            let q = parse_quantity(&format!("2 {s}")).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(q.dim, base.dim, "{s}");
            assert_eq!(q.value, 2.0 * base.size, "{s}");
            let milli = parse_quantity(&format!("2 m{s}")).unwrap_or_else(|e| panic!("{s}: {e}"));
            let expected = 2.0 * base.size * 1e-3f64.powi(base.dim.unit().power);
            assert!((milli.value - expected).abs() <= 1e-15 * expected, "m{s}");
        }
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

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in unit_like_text()) {
            let _ = parse_quantity(&text);
        }
    }
}
