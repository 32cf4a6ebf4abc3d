//! A tiny seeded generator (SplitMix64): enough to choose faults, delays and
//! workloads reproducibly; no dependency.

/// SplitMix64. Every stream is fully determined by its seed.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// An independent stream for `label` (a link, a client, a disk): the same seed
    /// and label always give the same stream, whatever else was drawn meanwhile.
    pub fn derive(seed: u64, label: &[u64]) -> Self {
        let mut mixed = SimRng::new(seed);
        let mut state = mixed.next_u64();
        for part in label {
            state = SimRng::new(state ^ part.wrapping_mul(0xA24B_AED4_963E_E407)).next_u64();
        }
        Self(state)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high.saturating_sub(low) + 1)
    }

    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// One of `items`, uniformly.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}
