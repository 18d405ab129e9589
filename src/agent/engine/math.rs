//! Element-wise functions in `f32` and the engine's element-wise kernels, each written once from
//! correctly rounded operations (so every instruction set computes the same bits; see the
//! [engine](super)'s rules).
//!
//! `exp` and `tanh` follow Cephes' single-precision algorithms (Moshier): `exp` by reduction to
//! `r ∈ [-ln2/2, ln2/2]` with a two-part `ln 2` and a degree-7 polynomial, `tanh` by an odd
//! polynomial below 0.625 and `1 - 2 / (e^{2|x|} + 1)` above. Both are within 2 ULP of the exact
//! value (`functions_are_accurate` measures it against `f64`).

use super::{LANES, dispatch};

/// `e^x` in `f32`: `inf` above 88.72, `0` below -103.9, NaN for NaN. Without branches (the
/// NaN case is a selection), so that loops over it vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Rounds to the nearest integer with one addition (ties to even), exact for |x| < 2^22.
    const ROUND: f32 = 12_582_912.0;
    let c = x.clamp(-104.0, 89.0);
    let shifted = c.mul_add(LOG2E, ROUND);
    let n = shifted - ROUND;
    let r = n.mul_add(-LN2_HI, c);
    let r = n.mul_add(-LN2_LO, r);
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_2e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 5e-1);
    let y = p.mul_add(r * r, r) + 1.0;
    // y · 2^n in two steps, so that n below -126 (subnormal results) and up to 128 stay exact.
    // `n` as an integer is read from the low bits of `ROUND + n` (whose ULP is 1), which
    // vectorises where a float-to-integer conversion would not (for NaN the bits are garbage and
    // the result is replaced below).
    let n = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let half = n / 2;
    let e = y * pow2(half) * pow2(n - half);
    if x.is_nan() { x } else { e }
}

/// `2^n` for `-126 <= n <= 127`.
#[inline(always)]
fn pow2(n: i32) -> f32 {
    f32::from_bits(((n + 127) as u32) << 23)
}

/// `tanh(x)` in `f32`. Both of Cephes' branches are computed and one selected, so that loops
/// over it vectorise; the selected branch's operations are the same either way.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let mut p = -5.704_988_7e-3f32;
    p = p.mul_add(z, 2.063_909e-2);
    p = p.mul_add(z, -5.373_971_6e-2);
    p = p.mul_add(z, 1.333_144_2e-1);
    p = p.mul_add(z, -3.333_328e-1);
    let small = (p * z).mul_add(x, x);
    // Above 9, tanh is within half an ULP of 1 (and `e` below is not read).
    let e = exp(a.min(9.0) + a.min(9.0));
    let large = (1.0 - 2.0 / (e + 1.0)).copysign(x);
    let t = if a < 0.625 { small } else { large };
    let t = if a > 9.0 { 1.0f32.copysign(x) } else { t };
    // ±0 as itself (the polynomial would give +0 for -0), NaN as itself.
    if a == 0.0 || x.is_nan() { x } else { t }
}

dispatch! {
    /// `x ← tanh(x)`.
    pub(crate) fn tanh_(x: &mut [f32]) {
        for v in x {
            *v = tanh(*v);
        }
    }
}

dispatch! {
    /// `x ← max(x, 0)` (NaN stays NaN, as PyTorch's `relu`).
    pub(crate) fn relu_(x: &mut [f32]) {
        for v in x {
            if *v < 0.0 {
                *v = 0.0;
            }
        }
    }
}

dispatch! {
    /// `g ← g · (1 - y²)`: the gradient before a `tanh` from the gradient after it and its
    /// output `y`.
    pub(crate) fn tanh_backward_(g: &mut [f32], y: &[f32]) {
        assert_eq!(g.len(), y.len(), "a gradient for each output");
        for (g, &y) in g.iter_mut().zip(y) {
            *g *= (-y).mul_add(y, 1.0);
        }
    }
}

dispatch! {
    /// `g ← g` where the ReLU's output `y` is positive, else 0.
    pub(crate) fn relu_backward_(g: &mut [f32], y: &[f32]) {
        assert_eq!(g.len(), y.len(), "a gradient for each output");
        for (g, &y) in g.iter_mut().zip(y) {
            if y <= 0.0 {
                *g = 0.0;
            }
        }
    }
}

dispatch! {
    /// `Σ x²` in `f64`, in [`LANES`] lanes (element `i` in lane `i mod LANES`, each lane in order,
    /// lanes added in order).
    pub(crate) fn sum_squares(x: &[f32]) -> f64 {
        let mut lanes = [0.0f64; LANES];
        let mut chunks = x.chunks_exact(LANES);
        for chunk in &mut chunks {
            for (lane, &v) in lanes.iter_mut().zip(chunk) {
                let v = v as f64;
                *lane = v.mul_add(v, *lane);
            }
        }
        for (lane, &v) in lanes.iter_mut().zip(chunks.remainder()) {
            let v = v as f64;
            *lane = v.mul_add(v, *lane);
        }
        lanes.iter().sum()
    }
}

dispatch! {
    /// [`sum_squares`] of `x` as if its elements where `keep` is zero were zero (the same lanes,
    /// the same bits), without making that copy.
    pub(crate) fn sum_squares_where(x: &[f32], keep: &[f32]) -> f64 {
        let mut lanes = [0.0f64; LANES];
        for (i, (&v, &k)) in x.iter().zip(keep).enumerate() {
            let v = if k == 0.0 { 0.0 } else { v as f64 };
            lanes[i % LANES] = v.mul_add(v, lanes[i % LANES]);
        }
        lanes.iter().sum()
    }
}

dispatch! {
    /// `x ← x · s`.
    pub(crate) fn scale_(x: &mut [f32], s: f32) {
        for v in x {
            *v *= s;
        }
    }
}

dispatch! {
    /// `t ← t + w (s - t)` (a Polyak average of a target `t` towards `s`).
    pub(crate) fn lerp_(t: &mut [f32], s: &[f32], w: f32) {
        assert_eq!(t.len(), s.len(), "two buffers of one size");
        for (t, &s) in t.iter_mut().zip(s) {
            *t = w.mul_add(s - *t, *t);
        }
    }
}

/// One step of Adam over flat buffers (see `optim.rs`), element by element.
pub struct AdamStep<'a> {
    pub grad: &'a [f32],
    pub exp_avg: &'a mut [f32],
    pub exp_avg_sq: &'a mut [f32],
    pub params: &'a mut [f32],
    /// Per-element learning-rate scales, or `None` for all ones.
    pub lr_scale: Option<&'a [f32]>,
    /// `1 - β₁`.
    pub one_minus_b1: f32,
    pub b2: f32,
    /// `1 - β₂`.
    pub one_minus_b2: f32,
    /// `√(1 - β₂ᵗ)`.
    pub bias2_sqrt: f32,
    pub eps: f32,
    /// `-lr / (1 - β₁ᵗ)`.
    pub step: f32,
}

impl AdamStep<'_> {
    /// `m ← m + (1-β₁)(g - m)`, `v ← β₂ v + (1-β₂) g²`, `θ ← θ + step · scale · m / (√v / √(1-β₂ᵗ) + ε)`:
    /// PyTorch's Adam, each element on its own.
    pub fn run(self) {
        let n = self.params.len();
        assert!(
            self.grad.len() == n
                && self.exp_avg.len() == n
                && self.exp_avg_sq.len() == n
                && self.lr_scale.is_none_or(|s| s.len() == n),
            "Adam's buffers of one size"
        );
        adam(self);
    }
}

/// One step of RMSprop over flat buffers (see `optim.rs`), element by element.
pub struct RmsPropStep<'a> {
    pub grad: &'a [f32],
    pub square_avg: &'a mut [f32],
    pub params: &'a mut [f32],
    /// Per-element learning-rate scales, or `None` for all ones.
    pub lr_scale: Option<&'a [f32]>,
    /// The smoothing constant α.
    pub alpha: f32,
    /// `1 - α`.
    pub one_minus_alpha: f32,
    pub eps: f32,
    /// `-lr`.
    pub step: f32,
}

impl RmsPropStep<'_> {
    /// `v ← α v + (1-α) g²`, `θ ← θ + step · scale · g / (√v + ε)`: PyTorch's RMSprop without
    /// momentum, each element on its own.
    pub fn run(self) {
        let n = self.params.len();
        assert!(
            self.grad.len() == n && self.square_avg.len() == n && self.lr_scale.is_none_or(|s| s.len() == n),
            "RMSprop's buffers of one size"
        );
        rms_prop(self);
    }
}

dispatch! {
    fn rms_prop(s: RmsPropStep<'_>) {
        let RmsPropStep { grad, square_avg, params, lr_scale, alpha, one_minus_alpha, eps, step } = s;
        let n = params.len();
        let (grad, square_avg) = (&grad[..n], &mut square_avg[..n]);
        for i in 0..n {
            let g = grad[i];
            let v = (g * one_minus_alpha).mul_add(g, square_avg[i] * alpha);
            square_avg[i] = v;
            let scale = match lr_scale {
                Some(s) => s[i],
                None => 1.0,
            };
            params[i] += g / (v.sqrt() + eps) * step * scale;
        }
    }
}

dispatch! {
    fn adam(s: AdamStep<'_>) {
        let AdamStep { grad, exp_avg, exp_avg_sq, params, lr_scale, one_minus_b1, b2, one_minus_b2, bias2_sqrt, eps, step } = s;
        let n = params.len();
        let (grad, exp_avg, exp_avg_sq) = (&grad[..n], &mut exp_avg[..n], &mut exp_avg_sq[..n]);
        for i in 0..n {
            let g = grad[i];
            let m = one_minus_b1.mul_add(g - exp_avg[i], exp_avg[i]);
            let v = (g * one_minus_b2).mul_add(g, exp_avg_sq[i] * b2);
            exp_avg[i] = m;
            exp_avg_sq[i] = v;
            let scale = match lr_scale {
                Some(s) => s[i],
                None => 1.0,
            };
            params[i] += m / (v.sqrt() / bias2_sqrt + eps) * step * scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::engine::force;
    use crate::agent::engine::testing::{bits, isas};
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// Values over every range the functions treat apart, and the special ones.
    fn inputs() -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(1);
        let mut x: Vec<f32> = (0..20_000).map(|i| (i as f32 - 10_000.0) * 0.0013).collect();
        x.extend((0..20_000).map(|_| rng.random_range(-120.0f32..100.0)));
        x.extend((0..2_000).map(|_| rng.random_range(-1e-3f32..1e-3)));
        x.extend([0.0, -0.0, 0.625, -0.625, 9.0, -9.0, 88.7, 88.8, -103.0, -104.5, 1e-30, -1e-40]);
        x.extend([f32::INFINITY, f32::NEG_INFINITY, f32::MAX, f32::MIN, f32::MIN_POSITIVE]);
        x
    }

    /// The masked sum of squares is the sum of squares of the zeroed copy, bit for bit, on every
    /// instruction set.
    #[test]
    fn masked_sum_of_squares_is_the_sum_of_the_zeroed_copy() {
        let mut rng = StdRng::seed_from_u64(2);
        for len in [0, 1, 15, 16, 17, 1000, 4099] {
            let x: Vec<f32> = (0..len).map(|_| rng.random_range(-3.0f32..3.0)).collect();
            let keep: Vec<f32> = (0..len).map(|_| if rng.random_bool(0.3) { 0.0 } else { 1.0 }).collect();
            let zeroed: Vec<f32> = x.iter().zip(&keep).map(|(&v, &k)| if k == 0.0 { 0.0 } else { v }).collect();
            for isa in isas() {
                let (a, b) = force(isa, || (sum_squares_where(&x, &keep), sum_squares(&zeroed)));
                assert_eq!(a.to_bits(), b.to_bits(), "{isa:?}, {len} values");
            }
        }
    }

    /// `exp` and `tanh` within 2 ULP of the exact value (`f64` rounded), on every range.
    #[test]
    fn functions_are_accurate() {
        let ulps = |got: f32, want: f64| {
            let want = want as f32;
            if got == want || (got.is_nan() && want.is_nan()) {
                return 0;
            }
            (got.to_bits() as i64 - want.to_bits() as i64).unsigned_abs()
        };
        let mut worst = (0, 0);
        for x in inputs() {
            worst.0 = worst.0.max(ulps(exp(x), (x as f64).exp()));
            worst.1 = worst.1.max(ulps(tanh(x), (x as f64).tanh()));
        }
        assert!(worst.0 <= 2 && worst.1 <= 2, "exp {} ULP, tanh {} ULP", worst.0, worst.1);
        assert!(exp(f32::NAN).is_nan() && tanh(f32::NAN).is_nan());
        assert_eq!(tanh(-0.0).to_bits(), (-0.0f32).to_bits());
    }

    /// The branch-free `exp` and `tanh` give the bits of Cephes' branchy algorithm written out
    /// (the form they had when the engine's numbers were set), NaN and infinities included.
    #[test]
    fn branch_free_functions_are_the_branchy_ones() {
        fn exp_branchy(x: f32) -> f32 {
            const ROUND: f32 = 12_582_912.0;
            if x.is_nan() {
                return x;
            }
            let x = x.clamp(-104.0, 89.0);
            let n = x.mul_add(std::f32::consts::LOG2_E, ROUND) - ROUND;
            let r = n.mul_add(-0.693_359_4, x);
            let r = n.mul_add(2.121_944_4e-4, r);
            let mut p = 1.987_569_1e-4f32;
            for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5e-1] {
                p = p.mul_add(r, c);
            }
            let y = p.mul_add(r * r, r) + 1.0;
            let n = n as i32;
            let half = n / 2;
            y * pow2(half) * pow2(n - half)
        }
        fn tanh_branchy(x: f32) -> f32 {
            let a = x.abs();
            if a == 0.0 {
                x
            } else if a < 0.625 {
                let z = x * x;
                let mut p = -5.704_988_7e-3f32;
                for c in [2.063_909e-2, -5.373_971_6e-2, 1.333_144_2e-1, -3.333_328e-1] {
                    p = p.mul_add(z, c);
                }
                (p * z).mul_add(x, x)
            } else if a > 9.0 {
                1.0f32.copysign(x)
            } else {
                let e = exp_branchy(a + a);
                (1.0 - 2.0 / (e + 1.0)).copysign(x)
            }
        }
        let mut x = inputs();
        x.extend([f32::NAN, -f32::NAN, 0.625f32.next_down(), 9.0f32.next_up(), -88.72, 88.72]);
        for v in x {
            assert_eq!(exp(v).to_bits(), exp_branchy(v).to_bits(), "exp({v})");
            assert_eq!(tanh(v).to_bits(), tanh_branchy(v).to_bits(), "tanh({v})");
        }
    }

    /// Every element-wise kernel gives the same bits on every instruction set, at every length
    /// around the vector widths.
    #[test]
    fn kernels_agree_across_instruction_sets() {
        let x = inputs();
        let mut rng = StdRng::seed_from_u64(2);
        let g: Vec<f32> = (0..x.len()).map(|_| rng.random_range(-3.0f32..3.0)).collect();
        for len in [1usize, 2, 3, 7, 15, 16, 17, 63, 64, 65, 256, x.len()] {
            let run = |isa| {
                force(isa, || {
                    let (mut t, mut r) = (x[..len].to_vec(), x[..len].to_vec());
                    tanh_(&mut t);
                    relu_(&mut r);
                    let (mut gt, mut gr) = (g[..len].to_vec(), g[..len].to_vec());
                    tanh_backward_(&mut gt, &t);
                    relu_backward_(&mut gr, &r);
                    let mut l = g[..len].to_vec();
                    lerp_(&mut l, &t, 0.005);
                    let norm = sum_squares(&g[..len]);
                    [
                        bits(&t),
                        bits(&r),
                        bits(&gt),
                        bits(&gr),
                        bits(&l),
                        vec![norm.to_bits() as u32, (norm.to_bits() >> 32) as u32],
                    ]
                })
            };
            let portable = run(crate::agent::engine::Isa::Portable);
            for isa in isas() {
                assert_eq!(run(isa), portable, "{isa:?}, {len} elements");
            }
        }
    }
}
