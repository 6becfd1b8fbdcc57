//! The value grammar of a sweep axis, parsed with nom.
//!
//! ```text
//! values := set | range
//! set    := "{" item ("," item)* "}"          e.g. {dispatch, duplex}  {1, 2.5, "a b"}
//! range  := qty ("..=" | "..") qty step?      e.g. 1..=8   1024..=16384 x2   1 TB/s..=4 TB/s x2
//! step   := "x" number                        geometric: each value times the factor
//!         | "+" qty                           arithmetic (the default is +1)
//! qty    := number unit?                      a unit (TB/s, MHz) must be the same on every part
//! ```
//!
//! `..=` includes the end and must land on it exactly; `..` excludes it. Values without a unit
//! and with integer ends and step are integers; with a unit they are strings such as "2 TB/s",
//! which the arch loader reads as it reads its own files.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while1};
use nom::character::complete::{char, digit1, multispace0, one_of};
use nom::combinator::{all_consuming, opt, recognize, verify};
use nom::multi::separated_list1;
use nom::sequence::{delimited, preceded};
use nom::{IResult, Parser};

/// At most this many values per axis: a typo such as `1..=1e9` fails fast instead of filling
/// memory.
pub const MAX_VALUES: usize = 100_000;

/// A number as written, with its unit.
#[derive(Debug, Clone, PartialEq)]
struct Qty<'a> {
    text: &'a str,
    value: f64,
    unit: &'a str,
}

fn ws<'a, O>(
    p: impl Parser<&'a str, Output = O, Error = nom::error::Error<&'a str>>,
) -> impl Parser<&'a str, Output = O, Error = nom::error::Error<&'a str>> {
    delimited(multispace0, p, multispace0)
}

/// A unit such as `TB/s`; a lone `x` is the geometric step, not a unit.
fn unit(i: &str) -> IResult<&str, &str> {
    verify(
        take_while1(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '%'),
        |u: &str| u != "x",
    )
    .parse(i)
}

/// A decimal number; unlike nom's float parsers it leaves the `.` of `8..=64` alone.
fn number(i: &str) -> IResult<&str, &str> {
    recognize((
        opt(one_of("+-")),
        digit1,
        opt((char('.'), digit1)),
        opt((one_of("eE"), opt(one_of("+-")), digit1)),
    ))
    .parse(i)
}

fn qty(i: &str) -> IResult<&str, Qty<'_>> {
    let (rest, text) = number(i)?;
    let (rest, u) = opt(preceded(multispace0, unit)).parse(rest)?;
    let value = text
        .parse::<f64>()
        .map_err(|_| nom::Err::Error(nom::error::Error::new(i, nom::error::ErrorKind::Float)))?;
    Ok((
        rest,
        Qty {
            text,
            value,
            unit: u.unwrap_or(""),
        },
    ))
}

enum Step<'a> {
    Times(Qty<'a>),
    Plus(Qty<'a>),
}

struct RawRange<'a> {
    start: Qty<'a>,
    inclusive: bool,
    end: Qty<'a>,
    step: Option<Step<'a>>,
}

fn range(i: &str) -> IResult<&str, RawRange<'_>> {
    let (i, start) = ws(qty).parse(i)?;
    let (i, op) = alt((tag("..="), tag(".."))).parse(i)?;
    let (i, end) = ws(qty).parse(i)?;
    let (i, step) = opt(alt((
        preceded(ws(char('x')), ws(qty)).map(Step::Times),
        preceded(ws(char('+')), ws(qty)).map(Step::Plus),
    )))
    .parse(i)?;
    Ok((
        i,
        RawRange {
            start,
            inclusive: op == "..=",
            end,
            step,
        },
    ))
}

fn item(i: &str) -> IResult<&str, &str> {
    ws(alt((
        delimited(
            char('"'),
            recognize(opt(take_while1(|c| c != '"'))),
            char('"'),
        ),
        take_while1(|c: char| c != ',' && c != '}' && c != '{'),
    )))
    .parse(i)
}

fn set(i: &str) -> IResult<&str, Vec<&str>> {
    ws(delimited(
        char('{'),
        separated_list1(char(','), item),
        char('}'),
    ))
    .parse(i)
}

/// A set item as a TOML value: an integer, a float, or else a string.
fn scalar(s: &str) -> toml::Value {
    let t = s.trim();
    if let Ok(n) = t.parse::<i64>() {
        toml::Value::Integer(n)
    } else if let Ok(x) = t.parse::<f64>() {
        toml::Value::Float(x)
    } else {
        toml::Value::String(t.to_string())
    }
}

fn is_int(q: &Qty) -> bool {
    q.unit.is_empty() && q.text.parse::<i64>().is_ok()
}

fn value(x: f64, unit: &str, int: bool) -> toml::Value {
    if !unit.is_empty() {
        // Shortest form that reads back as the same number.
        toml::Value::String(format!("{x} {unit}"))
    } else if int {
        toml::Value::Integer(x as i64)
    } else {
        toml::Value::Float(x)
    }
}

/// What is wrong with an axis's values as written. Each variant carries the text it read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RangeError {
    /// A `{...}` set that does not parse.
    #[error("cannot read the set \"{text}\" (expected {{a, b, ...}})")]
    BadSet {
        /// The values as written.
        text: String,
    },
    /// Neither a range nor a set.
    #[error(
        "cannot read \"{text}\" as values: expected a range (1..=8, 1024..=16384 x2, \
         1 TB/s..=4 TB/s +1 TB/s) or a set ({{a, b}})"
    )]
    BadRange {
        /// The values as written.
        text: String,
    },
    /// The two ends of a range are in different units.
    #[error(
        "\"{text}\": mixed units: the range starts in \"{start}\" and ends in \"{end}\"; write both ends in one unit"
    )]
    MixedEnds {
        /// The values as written.
        text: String,
        /// The unit of the start.
        start: String,
        /// The unit of the end.
        end: String,
    },
    /// An end that is infinite or not a number.
    #[error("\"{text}\": the ends must be finite numbers")]
    NotFinite {
        /// The values as written.
        text: String,
    },
    /// A range that ends before it starts (or `a..a`).
    #[error(
        "\"{text}\": empty range: it ends before it starts (write start..=end with start <= end)"
    )]
    Empty {
        /// The values as written.
        text: String,
    },
    /// A geometric factor written with a unit.
    #[error("\"{text}\": a factor takes no unit (found \"{unit}\")")]
    FactorUnit {
        /// The values as written.
        text: String,
        /// The unit found on the factor.
        unit: String,
    },
    /// A geometric range whose factor is not above 1 or whose start is not above 0.
    #[error("\"{text}\": a geometric range needs a factor above 1 and a start above 0")]
    BadFactor {
        /// The values as written.
        text: String,
    },
    /// An arithmetic step in another unit than the range.
    #[error("\"{text}\": mixed units: the range is in \"{unit}\" but the step is in \"{step}\"")]
    MixedStep {
        /// The values as written.
        text: String,
        /// The unit of the ends.
        unit: String,
        /// The unit of the step.
        step: String,
    },
    /// An arithmetic step that is not above 0.
    #[error("\"{text}\": the step must be above 0")]
    BadStep {
        /// The values as written.
        text: String,
    },
    /// More than [`MAX_VALUES`] values.
    #[error("\"{text}\": more than {MAX_VALUES} values")]
    TooMany {
        /// The values as written.
        text: String,
    },
    /// An inclusive range whose step never lands on its end.
    #[error(
        "\"{text}\": the step never reaches the end {end}: the last value is {last}; \
         end the range on a value the step reaches, or write `..` to exclude the end"
    )]
    MissesEnd {
        /// The values as written.
        text: String,
        /// The end as written.
        end: f64,
        /// The last value the step reaches.
        last: f64,
    },
}

/// Expands one axis's values as written (`1..=8`, `{a, b}`) into TOML values, or says what is
/// wrong with them.
pub fn parse_values(text: &str) -> Result<Vec<toml::Value>, RangeError> {
    let text_of = || text.to_string();
    if text.trim_start().starts_with('{') {
        return match all_consuming(set).parse(text) {
            Ok((_, items)) => Ok(items.into_iter().map(scalar).collect()),
            Err(_) => Err(RangeError::BadSet { text: text_of() }),
        };
    }
    let r = match all_consuming(range).parse(text) {
        Ok((_, r)) => r,
        Err(_) => return Err(RangeError::BadRange { text: text_of() }),
    };
    expand(text, &r)
}

/// The values of a parsed range: its ends checked, stepped through, and the end reached.
fn expand(text: &str, r: &RawRange) -> Result<Vec<toml::Value>, RangeError> {
    check_ends(text, r)?;
    let ints = is_int(&r.start) && is_int(&r.end);
    let (out, int) = match &r.step {
        Some(Step::Times(f)) => (
            geometric(text, r, f)?,
            ints && f.text.parse::<i64>().is_ok(),
        ),
        Some(Step::Plus(d)) => {
            if d.unit != r.start.unit {
                return Err(RangeError::MixedStep {
                    text: text.to_string(),
                    unit: r.start.unit.to_string(),
                    step: d.unit.to_string(),
                });
            }
            (arithmetic(text, r, d.value)?, ints && is_int(d))
        }
        None => (arithmetic(text, r, 1.0)?, ints),
    };
    check_count_and_end(text, r, &out)?;
    Ok(out
        .into_iter()
        .map(|x| value(x, r.start.unit, int))
        .collect())
}

/// Both ends in one unit, finite, and in order.
fn check_ends(text: &str, r: &RawRange) -> Result<(), RangeError> {
    let text = text.to_string();
    if r.end.unit != r.start.unit {
        return Err(RangeError::MixedEnds {
            text,
            start: r.start.unit.to_string(),
            end: r.end.unit.to_string(),
        });
    }
    let (a, b) = (r.start.value, r.end.value);
    if !(a.is_finite() && b.is_finite()) {
        return Err(RangeError::NotFinite { text });
    }
    if b < a || (!r.inclusive && b == a) {
        return Err(RangeError::Empty { text });
    }
    Ok(())
}

/// Whether `x` is still inside the range (with a relative tolerance at the end).
fn within(r: &RawRange, x: f64) -> bool {
    let b = r.end.value;
    if r.inclusive {
        x <= b * (1.0 + 1e-12)
    } else {
        x < b * (1.0 - 1e-12)
    }
}

/// `start, start·f, start·f², …` while inside the range (one past [`MAX_VALUES`] at most).
fn geometric(text: &str, r: &RawRange, f: &Qty) -> Result<Vec<f64>, RangeError> {
    if !f.unit.is_empty() {
        return Err(RangeError::FactorUnit {
            text: text.to_string(),
            unit: f.unit.to_string(),
        });
    }
    let a = r.start.value;
    if !(f.value > 1.0 && f.value.is_finite() && a > 0.0) {
        return Err(RangeError::BadFactor {
            text: text.to_string(),
        });
    }
    let mut out = Vec::new();
    let mut x = a;
    while within(r, x) {
        out.push(x);
        x *= f.value;
        if out.len() > MAX_VALUES {
            break;
        }
    }
    Ok(out)
}

/// `start + k·d` for k = 0, 1, … while inside the range (one past [`MAX_VALUES`] at most).
fn arithmetic(text: &str, r: &RawRange, d: f64) -> Result<Vec<f64>, RangeError> {
    if !(d > 0.0 && d.is_finite()) {
        return Err(RangeError::BadStep {
            text: text.to_string(),
        });
    }
    let a = r.start.value;
    let mut out = Vec::new();
    let mut k = 0.0;
    loop {
        let x = a + k * d;
        if !within(r, x) || out.len() > MAX_VALUES {
            break;
        }
        out.push(x);
        k += 1.0;
    }
    Ok(out)
}

/// At most [`MAX_VALUES`] values, and an inclusive range's last value on its end.
fn check_count_and_end(text: &str, r: &RawRange, out: &[f64]) -> Result<(), RangeError> {
    if out.len() > MAX_VALUES {
        return Err(RangeError::TooMany {
            text: text.to_string(),
        });
    }
    let b = r.end.value;
    // A range narrower than the tolerance at its end holds no value at all.
    let Some(&last) = out.last() else {
        return Err(RangeError::Empty {
            text: text.to_string(),
        });
    };
    if r.inclusive && (last - b).abs() > 1e-9 * b.abs().max(1.0) {
        return Err(RangeError::MissesEnd {
            text: text.to_string(),
            end: b,
            last,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml::Value::{Float, Integer, String as S};

    fn ints(v: &[i64]) -> Vec<toml::Value> {
        v.iter().map(|&n| Integer(n)).collect()
    }

    #[test]
    fn inclusive_exclusive_and_steps() {
        assert_eq!(parse_values("1..=4").unwrap(), ints(&[1, 2, 3, 4]));
        assert_eq!(parse_values("1..4").unwrap(), ints(&[1, 2, 3]));
        assert_eq!(parse_values(" 2 ..= 8 +3 ").unwrap(), ints(&[2, 5, 8]));
        assert_eq!(
            parse_values("1024..=16384 x2").unwrap(),
            ints(&[1024, 2048, 4096, 8192, 16384])
        );
        assert_eq!(parse_values("1..10 x3").unwrap(), ints(&[1, 3, 9]));
        assert_eq!(
            parse_values("0.5..=1.5 +0.5").unwrap(),
            vec![Float(0.5), Float(1.0), Float(1.5)]
        );
        assert_eq!(parse_values("3..=3").unwrap(), ints(&[3]));
    }

    #[test]
    fn units_become_strings() {
        assert_eq!(
            parse_values("1 TB/s..=4 TB/s x2").unwrap(),
            vec![S("1 TB/s".into()), S("2 TB/s".into()), S("4 TB/s".into())]
        );
        assert_eq!(
            parse_values("500MHz..=700MHz +100MHz").unwrap(),
            vec![
                S("500 MHz".into()),
                S("600 MHz".into()),
                S("700 MHz".into())
            ]
        );
    }

    #[test]
    fn sets_keep_types_and_order() {
        assert_eq!(
            parse_values("{duplex, all-xpu}").unwrap(),
            vec![S("duplex".into()), S("all-xpu".into())]
        );
        assert_eq!(
            parse_values("{4, 1.5, \"a, b\"}").unwrap(),
            vec![Integer(4), Float(1.5), S("a, b".into())]
        );
    }

    #[test]
    fn edge_cases_say_what_is_wrong() {
        let e = |t: &str| parse_values(t).unwrap_err().to_string();
        assert!(e("8..=1").contains("empty range"), "{}", e("8..=1"));
        assert!(e("4..4").contains("empty range"));
        let never = e("1..=10 +4");
        assert!(never.contains("never reaches the end 10"), "{never}");
        assert!(never.contains("last value is 9"), "{never}");
        assert!(e("1024..=10000 x2").contains("never reaches"));
        let mixed = e("1 TB/s..=4 GB/s");
        assert!(mixed.contains("mixed units"), "{mixed}");
        assert!(e("1 GB/s..=4 GB/s +1 MB/s").contains("mixed units"));
        assert!(e("1..=4 x1").contains("factor above 1"));
        assert!(e("0..=4 x2").contains("start above 0"));
        assert!(e("1..=4 +0").contains("step must be above 0"));
        assert!(e("1..=4 x2 TB").contains("no unit"));
        assert!(e("1..=1e9").contains("more than"));
        assert!(e("1...4").contains("cannot read"));
        assert!(e("{}").contains("cannot read the set"));
        assert!(e("{1, 2").contains("cannot read the set"));
        assert!(e("").contains("cannot read"));
    }

    #[test]
    fn errors_name_the_case() {
        let e = |t: &str| parse_values(t).unwrap_err();
        assert!(matches!(e("8..=1"), RangeError::Empty { .. }));
        assert!(matches!(
            e("1..=10 +4"),
            RangeError::MissesEnd { end, last, .. } if end == 10.0 && last == 9.0
        ));
        assert!(matches!(e("1 TB/s..=4 GB/s"), RangeError::MixedEnds { .. }));
        assert!(matches!(
            e("1 GB/s..=4 GB/s +1 MB/s"),
            RangeError::MixedStep { .. }
        ));
        assert!(matches!(e("1..=4 x2 TB"), RangeError::FactorUnit { .. }));
        assert!(matches!(e("1..=1e9"), RangeError::TooMany { .. }));
        assert!(matches!(e("{1, 2"), RangeError::BadSet { .. }));
        assert!(matches!(e("1...4"), RangeError::BadRange { .. }));
        assert_eq!(
            e("1..=10 +4").to_string(),
            "\"1..=10 +4\": the step never reaches the end 10: the last value is 9; end the range \
             on a value the step reaches, or write `..` to exclude the end"
        );
    }

    #[test]
    fn a_range_narrower_than_the_tolerance_is_empty_not_a_panic() {
        let e = parse_values("1..1.0000000000001").unwrap_err();
        assert!(matches!(e, RangeError::Empty { .. }), "{e:?}");
    }
}
