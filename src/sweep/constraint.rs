//! Constraints that drop points: `LHS OP RHS`, each side a number, an axis key or a metric.
//!
//! A constraint over axis keys only drops points before they run; one that names a metric
//! keeps the point in the outputs but out of the Pareto front.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while1};
use nom::character::complete::multispace0;
use nom::combinator::all_consuming;
use nom::number::complete::double;
use nom::sequence::delimited;
use nom::{IResult, Parser};

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A number as written.
    Number(f64),
    /// An axis key or a metric.
    Name(String),
}

/// A comparison between two operands.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    /// The constraint as written.
    pub text: String,
    /// The left side.
    pub lhs: Operand,
    /// The comparison: one of `<=`, `>=`, `==`, `!=`, `<`, `>`.
    pub op: &'static str,
    /// The right side.
    pub rhs: Operand,
    /// Names a metric, so it can only be judged after the point runs.
    pub needs_metrics: bool,
}

fn operand(i: &str) -> IResult<&str, Operand> {
    delimited(
        multispace0,
        alt((
            double.map(Operand::Number),
            take_while1(|c: char| c.is_ascii_alphanumeric() || "._-[]".contains(c))
                .map(|s: &str| Operand::Name(s.to_string())),
        )),
        multispace0,
    )
    .parse(i)
}

fn op(i: &str) -> IResult<&str, &str> {
    alt((
        tag("<="),
        tag(">="),
        tag("=="),
        tag("!="),
        tag("<"),
        tag(">"),
    ))
    .parse(i)
}

/// Why a constraint cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConstraintError {
    /// Not of the form `A OP B`.
    #[error(
        "constraint \"{text}\": expected `A OP B` with OP one of <= >= < > == != \
         and A, B numbers, axis keys or metrics"
    )]
    Syntax {
        /// The constraint as written.
        text: String,
    },
    /// A name that is neither an axis key nor a metric.
    #[error(
        "constraint \"{text}\": `{name}` is neither an axis key ({}) nor a metric",
        axes.join(", ")
    )]
    UnknownName {
        /// The constraint as written.
        text: String,
        /// The name it uses.
        name: String,
        /// The sweep's axis keys.
        axes: Vec<String>,
    },
}

impl Constraint {
    /// Reads `text`; every name must be one of `axes` or `metrics`.
    pub fn parse(
        text: &str,
        axes: &[&str],
        metrics: &[String],
    ) -> Result<Constraint, ConstraintError> {
        let (_, (lhs, op, rhs)) =
            all_consuming((operand, op, operand))
                .parse(text)
                .map_err(|_| ConstraintError::Syntax {
                    text: text.to_string(),
                })?;
        let mut needs_metrics = false;
        for o in [&lhs, &rhs] {
            if let Operand::Name(n) = o {
                if metrics.iter().any(|m| m == n) {
                    needs_metrics = true;
                } else if !axes.contains(&n.as_str()) {
                    return Err(ConstraintError::UnknownName {
                        text: text.to_string(),
                        name: n.clone(),
                        axes: axes.iter().map(|a| (*a).to_string()).collect(),
                    });
                }
            }
        }
        let op = ["<=", ">=", "==", "!=", "<", ">"]
            .into_iter()
            .find(|o| *o == op)
            .expect("the parser accepts only these");
        Ok(Constraint {
            text: text.to_string(),
            lhs,
            op,
            rhs,
            needs_metrics,
        })
    }

    /// Whether the point passes, or `None` when a name has no value (a metric before the run).
    pub fn check(&self, get: &dyn Fn(&str) -> Option<f64>) -> Option<bool> {
        let v = |o: &Operand| match o {
            Operand::Number(x) => Some(*x),
            Operand::Name(n) => get(n),
        };
        let (a, b) = (v(&self.lhs)?, v(&self.rhs)?);
        Some(match self.op {
            "<=" => a <= b,
            ">=" => a >= b,
            "<" => a < b,
            ">" => a > b,
            "==" => a == b,
            _ => a != b,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_judges() {
        let m = vec!["ttft_s.p90".to_string()];
        let c = Constraint::parse("batching.max_batch <= 2 ", &["batching.max_batch"], &m).unwrap();
        assert!(!c.needs_metrics);
        assert_eq!(c.check(&|_| Some(2.0)), Some(true));
        assert_eq!(c.check(&|_| Some(3.0)), Some(false));
        let c = Constraint::parse("ttft_s.p90<1.5", &[], &m).unwrap();
        assert!(c.needs_metrics);
        assert_eq!(c.check(&|_| None), None);
        assert_eq!(c.check(&|_| Some(1.5)), Some(false));
        let e = Constraint::parse("tpp < 3", &["tp"], &m).unwrap_err();
        assert!(
            matches!(&e, ConstraintError::UnknownName { name, .. } if name == "tpp"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "constraint \"tpp < 3\": `tpp` is neither an axis key (tp) nor a metric"
        );
        let e = Constraint::parse("tp <> 3", &["tp"], &m).unwrap_err();
        assert!(matches!(e, ConstraintError::Syntax { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "constraint \"tp <> 3\": expected `A OP B` with OP one of <= >= < > == != and A, B \
             numbers, axis keys or metrics"
        );
    }
}
