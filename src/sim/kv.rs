//! A paged KV cache: fixed-size blocks of tokens, allocated per request.

/// Blocks of `block_tokens` tokens; a request holds `ceil(tokens / block_tokens)` of them.
#[derive(Debug, Clone, PartialEq)]
pub struct PagedKv {
    /// Tokens per block.
    pub block_tokens: u64,
    /// Blocks in the cache.
    pub total_blocks: u64,
    free: u64,
}

impl PagedKv {
    /// A cache of `total_blocks` free blocks of `block_tokens` tokens.
    pub fn new(block_tokens: u64, total_blocks: u64) -> Self {
        PagedKv {
            block_tokens,
            total_blocks,
            free: total_blocks,
        }
    }

    /// Blocks needed to hold `tokens` tokens.
    pub fn blocks_for(&self, tokens: u64) -> u64 {
        tokens.div_ceil(self.block_tokens)
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
}
