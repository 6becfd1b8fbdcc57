//! Closed sets of names (phases, formats, clocks, policies): each set is one table of
//! (value, name, help) in the type that owns it; parsing a name and the CLI's possible values
//! read that table.

/// A name that is not in its set; the message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} \"{name}\" (valid: {})", valid.join(", "))]
pub struct UnknownName {
    /// What was being named (`phase`, `format`).
    pub what: &'static str,
    /// The name given.
    pub name: String,
    /// Every valid name, in table order.
    pub valid: Vec<&'static str>,
}

/// The value named `name` in `table`.
pub fn parse_name<T: Copy>(
    what: &'static str,
    table: &[(T, &'static str, &'static str)],
    name: &str,
) -> Result<T, UnknownName> {
    table
        .iter()
        .find(|(_, n, _)| *n == name)
        .map(|(v, ..)| *v)
        .ok_or_else(|| UnknownName {
            what,
            name: name.to_string(),
            valid: table.iter().map(|(_, n, _)| *n).collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: [(u8, &str, &str); 2] = [(1, "one", "the first"), (2, "two", "the second")];

    #[test]
    fn names_round_trip_and_unknown_names_list_the_valid_ones() {
        for (v, n, _) in TABLE {
            assert_eq!(parse_name("number", &TABLE, n), Ok(v));
        }
        let e = parse_name("number", &TABLE, "three").unwrap_err();
        assert_eq!(e.to_string(), "unknown number \"three\" (valid: one, two)");
    }
}
