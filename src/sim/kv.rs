//! A paged KV cache: fixed-size blocks of tokens, allocated per request.

/// Blocks of `block_tokens` tokens; a request holds `ceil(tokens / block_tokens)` of them, or
/// when every layer has the same sliding window, at most the blocks a window can straddle.
#[derive(Debug, Clone, PartialEq)]
pub struct PagedKv {
    /// Tokens per block.
    pub block_tokens: u64,
    /// Blocks in the cache.
    pub total_blocks: u64,
    /// The most blocks one request holds (`None`: no bound).
    pub cap: Option<u64>,
    free: u64,
}

impl PagedKv {
    /// A cache of `total_blocks` free blocks of `block_tokens` tokens.
    pub fn new(block_tokens: u64, total_blocks: u64) -> Self {
        PagedKv {
            block_tokens,
            total_blocks,
            cap: None,
            free: total_blocks,
        }
    }

    /// The cache of a model whose every layer attends the last `window` tokens: a request
    /// holds at most the blocks `window` tokens can straddle, ceil(window / block) + 1, older
    /// blocks being reused (as vLLM's block manager does for a sliding window).
    pub fn windowed(mut self, window: u64) -> Self {
        self.cap = Some(window.div_ceil(self.block_tokens) + 1);
        self
    }

    /// Blocks needed to hold `tokens` tokens.
    pub fn blocks_for(&self, tokens: u64) -> u64 {
        let n = tokens.div_ceil(self.block_tokens);
        self.cap.map_or(n, |c| n.min(c))
    }

    /// Blocks to add to `held` blocks so that they hold `tokens` tokens (0 when they already
    /// do: a multiply, not a division, on the decode path where that is nearly always so).
    #[inline]
    pub fn more_blocks(&self, tokens: u64, held: u64) -> u64 {
        if tokens <= held.saturating_mul(self.block_tokens) {
            return 0;
        }
        self.blocks_for(tokens).saturating_sub(held)
    }

    /// Blocks of `held` past those `tokens` tokens need (0 when the last one holds a token:
    /// again a multiply, where a step without drafts always leaves it so).
    #[inline]
    pub fn surplus(&self, tokens: u64, held: u64) -> u64 {
        let last_used = held == 0 || (held - 1).saturating_mul(self.block_tokens) < tokens;
        if last_used && self.cap.is_none_or(|c| held <= c) {
            return 0;
        }
        held.saturating_sub(self.blocks_for(tokens))
    }

    /// Free blocks.
    pub fn free(&self) -> u64 {
        self.free
    }

    /// Blocks in use.
    pub fn used(&self) -> u64 {
        self.total_blocks - self.free
    }

    /// Takes `n` blocks if that many are free.
    pub fn try_take(&mut self, n: u64) -> bool {
        if n <= self.free {
            self.free -= n;
            true
        } else {
            false
        }
    }

    /// Returns `n` blocks (never more than the cache holds).
    pub fn release(&mut self, n: u64) {
        self.free = (self.free + n).min(self.total_blocks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_up_and_are_conserved() {
        let mut kv = PagedKv::new(16, 10);
        assert_eq!(kv.blocks_for(1), 1);
        assert_eq!(kv.blocks_for(16), 1);
        assert_eq!(kv.blocks_for(17), 2);
        assert!(kv.try_take(7));
        assert!(!kv.try_take(4));
        kv.release(7);
        assert_eq!(kv.free(), 10);
    }

    #[test]
    fn a_window_bounds_the_blocks_of_a_request() {
        // A 4096-token window over 16-token blocks straddles at most 257 blocks.
        let kv = PagedKv::new(16, 1000).windowed(4096);
        assert_eq!(kv.blocks_for(4096), 256);
        assert_eq!(kv.blocks_for(4097), 257);
        assert_eq!(kv.blocks_for(16384), 257);
        assert_eq!(kv.blocks_for(100), 7);
    }

    #[test]
    fn more_blocks_and_surplus_are_what_blocks_for_leaves() {
        // A 64-token window caps a request at 5 blocks; held runs past it.
        for kv in [PagedKv::new(16, 1000), PagedKv::new(16, 1000).windowed(64)] {
            for tokens in 0..200 {
                for held in 0..15 {
                    let (need, at) = (
                        kv.blocks_for(tokens),
                        format!("{tokens} tokens, {held} held"),
                    );
                    assert_eq!(
                        kv.more_blocks(tokens, held),
                        need.saturating_sub(held),
                        "{at}"
                    );
                    assert_eq!(kv.surplus(tokens, held), held.saturating_sub(need), "{at}");
                }
            }
        }
    }
}
