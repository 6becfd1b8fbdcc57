//! Typed physical quantities for hardware descriptions.
//!
//! Config files state quantities as text with a unit, such as `"3.35 TB/s"`,
//! `"989.4 TFLOPS"`, `"80 GiB"`, `"650 MHz"`, `"0.5 pJ/bit"`, `"2 us"`,
//! `"0.23 pJ/FLOP"`, `"700 W"` or `"826 mm^2"`. [`parse_quantity`] reads such
//! text into a [`Quantity`] in SI base units, and one newtype per
//! [`Dimension`] ([`Bytes`], [`Seconds`], [`BytesPerSecond`], ...) keeps
//! quantities of different dimensions apart at compile time. Each newtype
//! parses with [`FromStr`](std::str::FromStr), deserializes from a string through the same parser,
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
//!
//! # Layout
//!
//! Each dimension is declared once, in the table at the top of `quantities.rs`: its name in
//! words, an example, the spellings the grammar reads and the symbol it is shown with. The enum
//! [`Dimension`], its newtype, and the newtype's parsing, display and serde all come from that
//! line. `grammar.rs` reads text (nom), `display.rs` writes it, `serde.rs` adapts both to serde.

mod display;
mod grammar;
mod quantities;
mod serde;

pub use grammar::parse_quantity;
pub use quantities::{
    Area, Bytes, BytesPerSecond, Dimension, Flops, FlopsPerSecond, Hertz, Joules, JoulesPerBit,
    JoulesPerFlop, Seconds, Watts,
};

/// The example shown in syntax errors, where the wanted dimension is unknown.
const SYNTAX_EXAMPLE: &str = "3.35 TB/s";

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
