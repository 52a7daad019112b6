//! A small, seeded, self-contained pseudo-random generator (SplitMix64).
//!
//! Sampling anchors and RoIs must be reproducible from a seed on every platform, without
//! pulling a random-number crate into this tensor-free crate. SplitMix64 (Steele, Lea &
//! Flood 2014, the seeding generator of `java.util.SplittableRandom` and xoshiro) passes
//! BigCrush and is more than enough to shuffle indices.

/// SplitMix64: a 64-bit state, one add and a mix per output.
///
/// ```
/// use arfpn_boxes::SplitMix64;
/// let mut a = SplitMix64::new(7);
/// let mut b = SplitMix64::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!(a.below(10) < 10);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed` (every seed, including 0, is fine).
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The whole state: `SplitMix64::new(g.state())` continues exactly where `g` is (for
    /// checkpoints that resume bit for bit).
    pub fn state(&self) -> u64 {
        self.state
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in `[0, 1)` (24 random mantissa bits).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// A uniform integer in `0..n` without modulo bias (Lemire's multiply-and-reject).
    /// Returns 0 when `n == 0`.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let n = n as u64;
        let threshold = n.wrapping_neg() % n; // (2^64 - n) mod n
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            if (m as u64) >= threshold {
                return (m >> 64) as usize;
            }
        }
    }

    /// A uniform float in `[0, 1)` (53 random mantissa bits).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform float in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// A standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Shuffles `items` uniformly (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        let k = items.len();
        self.choose_prefix(items, k);
    }

    /// Moves a uniformly chosen `k`-subset of `items` to `items[..k]`, in random order
    /// (partial Fisher–Yates). `k` larger than `items.len()` shuffles everything.
    pub fn choose_prefix<T>(&mut self, items: &mut [T], k: usize) {
        let n = items.len();
        for i in 0..k.min(n) {
            let j = i + self.below(n - i);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_permutation_and_floats_are_in_range() {
        let mut r = SplitMix64::new(3);
        let mut v: Vec<usize> = (0..100).collect();
        r.shuffle(&mut v);
        let mut s = v.clone();
        s.sort();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert_ne!(v, s);
        for _ in 0..1000 {
            let u = r.uniform();
            assert!((0.0..1.0).contains(&u));
            let x = r.range(-2.0, 5.0);
            assert!((-2.0..5.0).contains(&x));
            assert!(r.normal().is_finite());
        }
    }

    #[test]
    fn reference_values() {
        // First outputs of SplitMix64 seeded with 0 (as published with the algorithm).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn below_is_roughly_uniform() {
        let mut r = SplitMix64::new(3);
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            counts[r.below(5)] += 1;
        }
        for c in counts {
            assert!((9_400..10_600).contains(&c), "{counts:?}");
        }
        assert_eq!(r.below(0), 0);
        let f = r.next_f32();
        assert!((0.0..1.0).contains(&f));
    }

    #[test]
    fn choose_prefix_is_a_permutation() {
        let mut r = SplitMix64::new(11);
        let mut v: Vec<usize> = (0..20).collect();
        r.choose_prefix(&mut v, 5);
        let mut s = v.clone();
        s.sort();
        assert_eq!(s, (0..20).collect::<Vec<_>>());
        let mut w: Vec<usize> = (0..3).collect();
        r.choose_prefix(&mut w, 10);
        w.sort();
        assert_eq!(w, vec![0, 1, 2]);
    }
}
