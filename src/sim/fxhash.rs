//! A fast, non-cryptographic hasher for the op-price cache (the multiply-rotate hash of
//! rustc's `FxHasher`): the cache's keys are small plain-data op shapes, hashed once per op
//! priced, where SipHash's cost showed in the profile. Lookups do not depend on the hasher's
//! order, so results are unchanged.

use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// Rustc's Fx hash: per word, rotate, xor, multiply.
#[derive(Default, Clone, Copy)]
pub(super) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A `HashMap` hashed with [`FxHasher`].
pub(super) type FxHashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    fn hash<T: Hash>(x: &T) -> u64 {
        let mut h = FxHasher::default();
        x.hash(&mut h);
        h.finish()
    }

    #[test]
    fn equal_keys_hash_equal_and_near_keys_differ() {
        assert_eq!(hash(&(1u64, 2u64)), hash(&(1u64, 2u64)));
        // One word: (0 rotl 5 ^ w) * SEED, the closed form.
        assert_eq!(hash(&7u64), 7u64.wrapping_mul(SEED));
        let hs: std::collections::HashSet<u64> = (0..1000u64).map(|i| hash(&(i, 3u64))).collect();
        assert_eq!(hs.len(), 1000);
        // Byte slices: a partial last word is zero-padded.
        let mut a = FxHasher::default();
        a.write(&[1, 0, 0]);
        assert_eq!(a.finish(), 1u64.wrapping_mul(SEED));
    }

    #[test]
    fn the_map_finds_what_it_holds() {
        let mut m: FxHashMap<(u32, u64), usize> = FxHashMap::default();
        for i in 0..500u64 {
            m.insert((i as u32 % 7, i), i as usize);
        }
        assert!((0..500u64).all(|i| m.get(&(i as u32 % 7, i)) == Some(&(i as usize))));
        assert_eq!(m.get(&(1, 0)), None);
    }
}
