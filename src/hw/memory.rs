//! Device memory: the HBM an xPU reads, and the banks that PIM units read from inside it.

use serde::Serialize;

use crate::units::{Bytes, BytesPerSecond};

/// Device memory (HBM).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Memory {
    /// Capacity of one device's memory.
    pub capacity: Bytes,
    /// External bandwidth: what the xPU reads through its PHYs.
    pub bandwidth: BytesPerSecond,
}
