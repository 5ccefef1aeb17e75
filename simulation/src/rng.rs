//! The simulation's only source of randomness: SplitMix64 streams derived from the run's seed.
//!
//! Every component draws from its own stream, forked from the seed by a label, so adding a
//! draw to one component (a producer, the chaos schedule) never shifts what another draws.
//! The algorithm is written out here, so no dependency update can change a replay.

/// A seeded generator. Not shared between tasks: each task owns its stream.
#[derive(Clone, Debug)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// An independent stream for `label`: the same seed and label always give the same
    /// stream.
    pub fn fork(&self, label: &str, index: u64) -> Self {
        let mut hash = mix(self.state ^ 0x5EED_5EED_5EED_5EED);
        for byte in label.bytes() {
            hash = mix(hash ^ u64::from(byte));
        }
        Self::new(mix(hash ^ index))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `low..=high`; `low` when `high <= low`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.next_u64() % (high - low + 1)
    }

    /// Uniform in `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `low..=high` milliseconds.
    pub fn millis(&mut self, low: u64, high: u64) -> std::time::Duration {
        std::time::Duration::from_millis(self.between(low, high))
    }

    /// Log-uniform in `low..=high` (both > 0): small values as likely as large ones.
    pub fn log_between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low || low == 0 {
            return low;
        }
        let (l, h) = ((low as f64).ln(), (high as f64).ln());
        ((l + self.unit() * (h - l)).exp().round() as u64).clamp(low, high)
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Shuffles in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// SplitMix64's finalizer; also a good 64-bit hash step.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable hash of a few integers (not `std`'s `DefaultHasher`, whose algorithm may change).
pub fn hash(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x243F_6A88_85A3_08D3, |acc, part| mix(acc ^ mix(*part)))
}

/// FNV-1a over bytes, for trace digests and value fingerprints.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xCBF2_9CE4_8422_2325)
    }
}

impl Fnv {
    pub fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }

    pub fn write_u64(&mut self, value: u64) {
        self.write(&value.to_le_bytes());
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_independent() {
        let root = SimRng::new(42);
        let mut a = root.fork("producer", 1);
        let mut b = root.fork("producer", 1);
        let mut c = root.fork("producer", 2);
        let drawn: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        assert_eq!(drawn, (0..8).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(drawn, (0..8).map(|_| c.next_u64()).collect::<Vec<_>>());
        for _ in 0..1000 {
            assert!((3..=9).contains(&a.between(3, 9)));
            assert!(a.below(5) < 5);
            assert!((1..=1000).contains(&a.log_between(1, 1000)));
        }
    }
}
