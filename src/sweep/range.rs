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

/// Expands one axis's values as written (`1..=8`, `{a, b}`) into TOML values, or says what is
/// wrong with them.
pub fn parse_values(text: &str) -> Result<Vec<toml::Value>, String> {
    if text.trim_start().starts_with('{') {
        return match all_consuming(set).parse(text) {
            Ok((_, items)) => Ok(items.into_iter().map(scalar).collect()),
            Err(_) => Err(format!(
                "cannot read the set \"{text}\" (expected {{a, b, ...}})"
            )),
        };
    }
    let r = match all_consuming(range).parse(text) {
        Ok((_, r)) => r,
        Err(_) => {
            return Err(format!(
                "cannot read \"{text}\" as values: expected a range (1..=8, 1024..=16384 x2, \
                 1 TB/s..=4 TB/s +1 TB/s) or a set ({{a, b}})"
            ));
        }
    };
    expand(text, &r)
}

fn expand(text: &str, r: &RawRange) -> Result<Vec<toml::Value>, String> {
    let unit = r.start.unit;
    let mixed = |q: &Qty| q.unit != unit;
    if mixed(&r.end) {
        return Err(format!(
            "\"{text}\": mixed units: the range starts in \"{}\" and ends in \"{}\"; write both ends in one unit",
            r.start.unit, r.end.unit
        ));
    }
    let (a, b) = (r.start.value, r.end.value);
    if !(a.is_finite() && b.is_finite()) {
        return Err(format!("\"{text}\": the ends must be finite numbers"));
    }
    if b < a || (!r.inclusive && b == a) {
        return Err(format!(
            "\"{text}\": empty range: it ends before it starts (write start..=end with start <= end)"
        ));
    }
    let mut int = is_int(&r.start) && is_int(&r.end);
    let mut out = Vec::new();
    let within = |x: f64| {
        if r.inclusive {
            x <= b * (1.0 + 1e-12)
        } else {
            x < b * (1.0 - 1e-12)
        }
    };
    match &r.step {
        Some(Step::Times(f)) => {
            if !f.unit.is_empty() {
                return Err(format!(
                    "\"{text}\": a factor takes no unit (found \"{}\")",
                    f.unit
                ));
            }
            if !(f.value > 1.0 && f.value.is_finite() && a > 0.0) {
                return Err(format!(
                    "\"{text}\": a geometric range needs a factor above 1 and a start above 0"
                ));
            }
            int &= f.text.parse::<i64>().is_ok();
            let mut x = a;
            while within(x) {
                out.push(x);
                x *= f.value;
                if out.len() > MAX_VALUES {
                    break;
                }
            }
        }
        step => {
            let d = match step {
                Some(Step::Plus(d)) => {
                    if mixed(d) {
                        return Err(format!(
                            "\"{text}\": mixed units: the range is in \"{unit}\" but the step is in \"{}\"",
                            d.unit
                        ));
                    }
                    int &= is_int(d);
                    d.value
                }
                _ => 1.0,
            };
            if !(d > 0.0 && d.is_finite()) {
                return Err(format!("\"{text}\": the step must be above 0"));
            }
            let mut k = 0.0;
            loop {
                let x = a + k * d;
                if !within(x) || out.len() > MAX_VALUES {
                    break;
                }
                out.push(x);
                k += 1.0;
            }
        }
    }
    if out.len() > MAX_VALUES {
        return Err(format!("\"{text}\": more than {MAX_VALUES} values"));
    }
    let last = *out.last().expect("a non-empty range has a first value");
    if r.inclusive && (last - b).abs() > 1e-9 * b.abs().max(1.0) {
        return Err(format!(
            "\"{text}\": the step never reaches the end {b}: the last value is {last}; \
             end the range on a value the step reaches, or write `..` to exclude the end"
        ));
    }
    Ok(out.into_iter().map(|x| value(x, unit, int)).collect())
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
        let e = |t: &str| parse_values(t).unwrap_err();
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
}
