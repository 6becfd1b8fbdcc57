//! `[xpu.streaming]`: the rates of elementwise kernels by where their bytes come from.

use super::ArchChain;
use super::raw::streaming;
use crate::config::error::ConfigError;
use crate::hw::Streaming;

impl ArchChain {
    /// `[xpu.streaming]`, if any file of the chain has one: then every one of its rates (the
    /// first file that sets each key gives it).
    pub(super) fn streaming(&self) -> Result<Option<Streaming>, ConfigError> {
        if !self.layers.iter().any(|l| streaming(&l.raw).is_some()) {
            return Ok(None);
        }
        let key = |k: &str| format!("xpu.streaming.{k}");
        let dram_efficiency = self.fraction(&key("dram_efficiency"), |r| {
            streaming(r)?.dram_efficiency.as_ref()
        })?;
        Ok(Some(Streaming {
            l2_stream: self.quantity(&key("l2_stream"), true, |r| {
                streaming(r)?.l2_stream.as_ref()
            })?,
            dram_efficiency,
            row_rate: self.quantity(&key("row_rate"), true, |r| streaming(r)?.row_rate.as_ref())?,
            row_half: self.quantity(&key("row_half"), true, |r| streaming(r)?.row_half.as_ref())?,
            shortest_row: self.quantity(&key("shortest_row"), true, |r| {
                streaming(r)?.shortest_row.as_ref()
            })?,
            gather: self.quantity(&key("gather"), true, |r| streaming(r)?.gather.as_ref())?,
        }))
    }
}
