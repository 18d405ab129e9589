//! NumPy's legacy `RandomState` (MT19937), the generator MinAtar draws every random number from:
//! the same seed gives the same stream as `np.random.RandomState(seed)`, draw for draw.
//!
//! Only the three draws MinAtar makes are here: `rand()` (`random_sample`: 53 bits from two
//! 32-bit outputs), `randint(low, high)` (NumPy's legacy masked rejection sampling, which draws
//! nothing when the range holds one value) and the generator's seeding (`init_genrand` for a
//! seed below 2^32, `init_by_array` of its two 32-bit words above, as
//! `RandomState(np.array([lo, hi], dtype=np.uint32))` seeds).

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// The Mersenne Twister state of a `RandomState`.
#[derive(Clone)]
pub struct RandomState {
    key: [u32; N],
    pos: usize,
}

impl std::fmt::Debug for RandomState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RandomState {{ pos: {} }}", self.pos)
    }
}

impl RandomState {
    /// `np.random.RandomState(seed)`; a seed of 2^32 or more is taken as the array of its low and
    /// high 32-bit words (NumPy refuses such an integer; this is what its array form does).
    pub fn new(seed: u64) -> Self {
        match u32::try_from(seed) {
            Ok(seed) => Self::from_u32(seed),
            Err(_) => Self::from_array(&[seed as u32, (seed >> 32) as u32]),
        }
    }

    fn from_u32(seed: u32) -> Self {
        let mut key = [0u32; N];
        key[0] = seed;
        for i in 1..N {
            key[i] = 1_812_433_253u32.wrapping_mul(key[i - 1] ^ (key[i - 1] >> 30)).wrapping_add(i as u32);
        }
        RandomState { key, pos: N }
    }

    fn from_array(init: &[u32]) -> Self {
        let mut s = Self::from_u32(19_650_218);
        let mt = &mut s.key;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(init.len()) {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(init[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= init.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        s
    }

    fn generate(&mut self) {
        let mt = &mut self.key;
        for k in 0..N {
            let y = (mt[k] & UPPER_MASK) | (mt[(k + 1) % N] & LOWER_MASK);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            mt[k] = mt[(k + M) % N] ^ (y >> 1) ^ mag;
        }
        self.pos = 0;
    }

    /// The next 32-bit output (`genrand_int32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos == N {
            self.generate();
        }
        let mut y = self.key[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `rand()`: uniform in `[0, 1)` with 53 random bits.
    pub fn rand(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// `randint(low, high)`: uniform in `low..high` (`high > low`), by NumPy's legacy masked
    /// rejection: 32-bit outputs masked to the range's bit length until one falls inside. A range
    /// of one value draws nothing.
    pub fn randint(&mut self, low: i64, high: i64) -> i64 {
        let range = (high - low - 1) as u32;
        if range == 0 {
            return low;
        }
        let mut mask = range;
        for shift in [1, 2, 4, 8, 16] {
            mask |= mask >> shift;
        }
        loop {
            let value = self.next_u32() & mask;
            if value <= range {
                return low + i64::from(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RandomState;

    #[test]
    fn matches_the_mersenne_twister_reference_outputs() {
        // mt19937ar.c's test vector: init_by_array({0x123, 0x234, 0x345, 0x456}); its first
        // outputs, as the reference's mt19937ar.out lists them.
        let mut s = RandomState::from_array(&[0x123, 0x234, 0x345, 0x456]);
        let first: Vec<u32> = (0..5).map(|_| s.next_u32()).collect();
        assert_eq!(first, [1067595299, 955945823, 477289528, 4107218783, 4228976476]);
        // std::mt19937 with the default seed 5489: the 10000th output is 4123659995 (C++11).
        let mut s = RandomState::new(5489);
        let tenth_thousand = (0..10_000).map(|_| s.next_u32()).last();
        assert_eq!(tenth_thousand, Some(4_123_659_995));
    }

    #[test]
    fn draws_are_numpys() {
        // Values printed by NumPy 2.4: np.random.RandomState(0).rand() and .randint(0, 10), and
        // RandomState(np.array([5, 1], dtype=np.uint32)).rand() (the seed 2^32 + 5 here).
        assert_eq!(RandomState::new(0).rand(), 0.548_813_503_927_324_8);
        assert_eq!(RandomState::new(0).randint(0, 10), 5);
        assert_eq!(RandomState::new((1 << 32) + 5).rand(), 0.157_272_387_187_897_82);
        let mut s = RandomState::new(0);
        assert_eq!(s.randint(5, 6), 5);
        assert_eq!(s.rand(), 0.548_813_503_927_324_8, "a range of one value draws nothing");
    }
}
