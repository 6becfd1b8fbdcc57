//! `[xpu.tiling]`: SMs, the operand feed, and the GEMM library's tile shapes per element type.

use super::ArchChain;
use super::raw::tiling;
use crate::config::error::ConfigError;
use crate::hw::Tiling;
use crate::work::{Dtype, UnknownDtype};

impl ArchChain {
    /// `[xpu.tiling]`, if any file of the chain has one: then its SM count, operand bandwidth,
    /// per-tile overhead, stream-K flag, the full waves from which and the rate at which
    /// stream-K runs, operand reuse at half rate, overlap exponent and tiles (the first file
    /// that sets each key gives it).
    pub(super) fn tiling(&self) -> Result<Option<Tiling>, ConfigError> {
        if !self.layers.iter().any(|l| tiling(&l.raw).is_some()) {
            return Ok(None);
        }
        let sms = self.count("xpu.tiling.sms", |r| tiling(r)?.sms.as_ref())?;
        let operand_bandwidth = self.quantity("xpu.tiling.operand_bandwidth", true, |r| {
            tiling(r)?.operand_bandwidth.as_ref()
        })?;
        let tile_overhead = self.quantity("xpu.tiling.tile_overhead", false, |r| {
            tiling(r)?.tile_overhead.as_ref()
        })?;
        let stream_k = *self
            .req("xpu.tiling.stream_k", |r| tiling(r)?.stream_k.as_ref())?
            .value;
        let stream_k_from = self.count("xpu.tiling.stream_k_from", |r| {
            tiling(r)?.stream_k_from.as_ref()
        })?;
        let stream_k_efficiency = self.fraction("xpu.tiling.stream_k_efficiency", |r| {
            tiling(r)?.stream_k_efficiency.as_ref()
        })?;
        let reuse_half = self.non_negative("xpu.tiling.reuse_half", "number of elements", |r| {
            tiling(r)?.reuse_half.as_ref()
        })?;
        let overlap = self.non_negative("xpu.tiling.overlap", "exponent", |r| {
            tiling(r)?.overlap.as_ref()
        })?;
        let layer = self
            .layers
            .iter()
            .find(|l| tiling(&l.raw).is_some_and(|t| t.tiles.is_some()));
        let mut tiles = std::collections::BTreeMap::new();
        if let Some(l) = layer {
            let map = tiling(&l.raw).and_then(|t| t.tiles.as_ref());
            for (name, shapes) in map.into_iter().flatten() {
                let at = l.src.locate_ref(shapes);
                let dtype: Dtype = name
                    .parse()
                    .map_err(|e: UnknownDtype| at.err(format!("`xpu.tiling.tiles.{name}`: {e}")))?;
                let mut v = Vec::new();
                for &(a, b) in shapes.get_ref() {
                    match (u64::try_from(a), u64::try_from(b)) {
                        (Ok(a), Ok(b)) if a > 0 && b > 0 => v.push((a, b)),
                        _ => {
                            return Err(at.err(format!(
                                "`xpu.tiling.tiles.{name}`: tile sides must be positive integers, found [{a}, {b}]"
                            )));
                        }
                    }
                }
                if v.is_empty() {
                    return Err(at.err(format!("`xpu.tiling.tiles.{name}`: no tile shapes")));
                }
                tiles.insert(dtype, v);
            }
        }
        Ok(Some(Tiling {
            sms,
            operand_bandwidth,
            tile_overhead,
            stream_k,
            stream_k_from,
            stream_k_efficiency,
            reuse_half,
            overlap,
            tiles,
        }))
    }

    /// The required number at `key`, refused unless a fraction in (0, 1].
    pub(super) fn fraction<'a>(
        &'a self,
        key: &str,
        f: impl Fn(&'a super::raw::RawArch) -> Option<&'a toml::Spanned<f64>>,
    ) -> Result<f64, ConfigError> {
        let v = self.req(key, f)?;
        if !(*v.value > 0.0 && *v.value <= 1.0) {
            return Err(v.err(format!(
                "`{key}` must be a fraction in (0, 1], found {}",
                v.value
            )));
        }
        Ok(*v.value)
    }

    /// The required number at `key`, refused unless finite and at least 0 (`what` names it).
    fn non_negative<'a>(
        &'a self,
        key: &str,
        what: &str,
        f: impl Fn(&'a super::raw::RawArch) -> Option<&'a toml::Spanned<f64>>,
    ) -> Result<f64, ConfigError> {
        let v = self.req(key, f)?;
        if !(v.value.is_finite() && *v.value >= 0.0) {
            return Err(v.err(format!(
                "`{key}` must be a non-negative {what}, found {}",
                v.value
            )));
        }
        Ok(*v.value)
    }
}
