//! libtorch's kernels for a network's passes, reproduced bit for bit in Rust: `tanh` in its
//! sigmoid form (fused: one pass over a layer's output instead of three libtorch operations, each
//! a dispatch and a loop), `tanh`'s derivative, ReLU and its derivative, and the cascade sum of a
//! bias gradient ([`column_sums`]).
//!
//! libtorch's float kernels on an AVX2 machine treat a contiguous tensor in blocks of 16 values
//! (two 8-lane vectors) and its last `n mod 16` values with scalar code, and the two round
//! differently: `sigmoid`'s vector code takes SLEEF's `expf` (1 ULP, with fused multiply-adds),
//! its scalar code the C library's `expf`. The functions here follow the same split and the
//! same instruction sequences, so that their output equals libtorch's on every input
//! (`kernels_equal_libtorch` compares them on random and special values, every tail length).
//! They apply only where libtorch runs those AVX2 kernels: an x86-64 CPU with AVX2 and FMA but
//! without the AVX-512 subset libtorch would pick instead, and `ATEN_CPU_CAPABILITY` unset or
//! `avx2` (ReLU's select is the same on every CPU). Elsewhere, for tensors that are not
//! contiguous float tensors, and for operations libtorch would split among threads ([`serial`]),
//! the callers run libtorch's own operations.

use tch::{Kind, Tensor};

/// Whether libtorch runs its AVX2 kernels in this process (and so the kernels here apply).
pub(super) fn libtorch_avx2() -> bool {
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX2.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let forced = std::env::var("ATEN_CPU_CAPABILITY").ok();
            let avx512 = std::arch::is_x86_feature_detected!("avx512f");
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && match forced.as_deref() {
                    None | Some("") => !avx512,
                    Some(c) => c == "avx2",
                }
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

thread_local! {
    /// Set by tests on their thread: the tensor-level entry points decline, so that `Mlp`'s
    /// passes run libtorch's own operations (an independent reference for the direct passes).
    static LIBTORCH_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn libtorch_only() -> bool {
    cfg!(test) && LIBTORCH_ONLY.with(|c| c.get())
}

/// Runs `f` with `Mlp`'s passes on libtorch's own operations (on this thread).
#[cfg(test)]
pub(super) fn with_libtorch_only<T>(f: impl FnOnce() -> T) -> T {
    LIBTORCH_ONLY.with(|c| c.set(true));
    let out = f();
    LIBTORCH_ONLY.with(|c| c.set(false));
    out
}

/// Whether libtorch treats `n` values in one piece: below its grain size, or on one thread
/// (else it splits them among threads, each piece with its own scalar tail and order).
pub(super) fn serial(n: usize, grain: usize) -> bool {
    n < grain || tch::get_num_threads() == 1
}

/// libtorch's grain size for element-wise operations and reductions (`at::internal::GRAIN_SIZE`).
pub(super) const GRAIN: usize = 32768;

/// The values of a contiguous CPU float tensor, if it is one.
pub(super) fn values(t: &Tensor) -> Option<&[f32]> {
    let usable = t.kind() == Kind::Float && t.device() == tch::Device::Cpu && t.is_contiguous();
    // SAFETY: a contiguous CPU float tensor holds `numel` floats from its data pointer, alive as
    // long as `t`.
    usable.then(|| unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel()) })
}

/// [`values`], writable.
///
/// # Safety
/// No other slice of the tensor's data lives while this one does.
#[allow(clippy::mut_from_ref)]
unsafe fn values_mut(t: &Tensor) -> Option<&mut [f32]> {
    let usable = t.kind() == Kind::Float && t.device() == tch::Device::Cpu && t.is_contiguous();
    // SAFETY: as in `values`; the caller's contract excludes aliases.
    usable.then(|| unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, t.numel()) })
}

/// `2 σ(x) - 1` in place, the bits of libtorch's `sigmoid_()`, `mul_(2)` and `sub_(1)` in
/// turn (tanh of `x / 2`); with `double_first`, of `mul_(2)` before them (tanh of `x`).
/// Returns `false`, leaving `v` as it was, where libtorch does not run its AVX2 kernels.
pub(super) fn tanh_sigmoid_form(v: &mut [f32], double_first: bool) -> bool {
    if !libtorch_avx2() || !serial(v.len(), GRAIN) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `libtorch_avx2` checked the CPU has AVX2 and FMA.
    unsafe {
        avx2::tanh_sigmoid_form(v, double_first)
    };
    true
}

/// [`tanh_sigmoid_form`] (without doubling) on a tensor.
pub(super) fn tanh_of_half_(x: &Tensor) -> bool {
    // SAFETY: `x` is the caller's tensor, written only here.
    !libtorch_only() && unsafe { values_mut(x) }.is_some_and(|v| tanh_sigmoid_form(v, false))
}

/// `out = g (1 - y²)`, the bits of libtorch's `tanh_backward(g, y)`; `false` where libtorch
/// does not run its AVX2 kernels.
pub(super) fn tanh_backward_into(g: &[f32], y: &[f32], out: &mut [f32]) -> bool {
    if !libtorch_avx2() || !serial(g.len(), GRAIN) || g.len() != y.len() || g.len() != out.len() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `libtorch_avx2` checked the CPU has AVX2 and FMA.
    unsafe {
        avx2::tanh_backward(g, y, out)
    };
    true
}

/// [`tanh_backward_into`] on tensors, as a new tensor; `None` where it does not apply.
pub(super) fn tanh_backward(grad: &Tensor, output: &Tensor) -> Option<Tensor> {
    if grad.size() != output.size() {
        return None;
    }
    if libtorch_only() {
        return None;
    }
    let (g, y) = (values(grad)?, values(output)?);
    let out = grad.empty_like();
    // SAFETY: `out` is new.
    tanh_backward_into(g, y, unsafe { values_mut(&out) }?).then_some(out)
}

/// `max(x, 0)` in place as libtorch's `relu_` computes it (`x` where `x < 0` is false: NaN and
/// `-0` stay), on every CPU.
pub(super) fn relu(v: &mut [f32]) {
    #[inline(always)]
    fn body(v: &mut [f32]) {
        for x in v {
            *x = if *x < 0.0 { 0.0 } else { *x };
        }
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn wide(v: &mut [f32]) {
            body(v)
        }
        // SAFETY: the CPU has AVX2.
        return unsafe { wide(v) };
    }
    body(v)
}

/// `out = g` where `y > 0`, else 0, as libtorch's `threshold_backward(g, y, 0)`.
pub(super) fn relu_backward_into(g: &[f32], y: &[f32], out: &mut [f32]) {
    #[inline(always)]
    fn body(g: &[f32], y: &[f32], out: &mut [f32]) {
        for ((o, g), y) in out.iter_mut().zip(g).zip(y) {
            *o = if *y <= 0.0 { 0.0 } else { *g };
        }
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn wide(g: &[f32], y: &[f32], out: &mut [f32]) {
            body(g, y, out)
        }
        // SAFETY: the CPU has AVX2.
        return unsafe { wide(g, y, out) };
    }
    body(g, y, out)
}

/// libtorch's `sum(0)` of a contiguous `[rows, cols]` matrix, column by column in the order of
/// its cascade sum (`SumKernel.cpp`): columns in blocks of 32 (of 4 under 8 columns) summed row
/// after row (`multi_row_sum`), the others in four interleaved chains (`row_sum`), a single
/// column as a contiguous reduction over 8-float vectors (`vectorized_inner_sum`), as libtorch's
/// AVX2 kernel does. Reproduced for the shapes `column_sums_equal_libtorch` checks, where
/// libtorch runs that kernel ([`libtorch_avx2`], [`serial`]); `None` elsewhere.
pub(super) fn column_sums(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) -> Option<()> {
    if rows == 0 || cols == 0 || !libtorch_avx2() || !serial(rows * cols, GRAIN) {
        return None;
    }
    if cols == 1 {
        // Eight lanes of interleaved chains over whole vectors, then the tail, then the lanes.
        let vectors = rows / 8;
        if vectors == 0 {
            return None;
        }
        let mut lanes = [0.0f32; 8];
        row_sum(|i| &x[i * 8..i * 8 + 8], vectors, &mut lanes);
        let mut total = x[vectors * 8..].iter().fold(0.0f32, |acc, v| acc + v);
        for l in lanes {
            total += l;
        }
        out[0] = total;
        return Some(());
    }
    let blocked = if cols >= 8 { cols - cols % 32 } else { cols - cols % 4 };
    let (head, tail) = out[..cols].split_at_mut(blocked);
    multi_row_sum(|i| &x[i * cols..i * cols + blocked], rows, head);
    row_sum(|i| &x[i * cols + blocked..(i + 1) * cols], rows, tail);
    Some(())
}

/// libtorch's `multi_row_sum` for `out.len()` lanes side by side (each lane's order is its own,
/// so lanes may go together): `size` rows added in groups of `2^p` whose partial sums cascade
/// through four levels.
fn multi_row_sum<'a>(row: impl Fn(usize) -> &'a [f32], size: usize, out: &mut [f32]) {
    let lanes = out.len();
    let ceil_log2 = if size <= 2 { 1 } else { usize::BITS - (size - 1).leading_zeros() } as usize;
    let power = (ceil_log2 / 4).max(4);
    let (step, mask) = (1usize << power, (1usize << power) - 1);
    let mut acc = [vec![0.0f32; lanes], vec![0.0f32; lanes], vec![0.0f32; lanes], vec![0.0f32; lanes]];
    let mut i = 0;
    while i + step <= size {
        for _ in 0..step {
            add(&mut acc[0], row(i));
            i += 1;
        }
        for j in 1..4 {
            let (lower, upper) = acc.split_at_mut(j);
            add(&mut upper[0], &lower[j - 1]);
            lower[j - 1].fill(0.0);
            if i & (mask << (j * power)) != 0 {
                break;
            }
        }
    }
    while i < size {
        add(&mut acc[0], row(i));
        i += 1;
    }
    for (l, o) in out.iter_mut().enumerate() {
        *o = acc[0][l] + acc[1][l] + acc[2][l] + acc[3][l];
    }
}

/// libtorch's `row_sum` for `out.len()` lanes: four interleaved chains (`multi_row_sum` over
/// groups of four rows), the leftover rows into the first, then the chains together.
fn row_sum<'a>(row: impl Fn(usize) -> &'a [f32], size: usize, out: &mut [f32]) {
    let (lanes, groups) = (out.len(), size / 4);
    let mut chains = [vec![0.0f32; lanes], vec![0.0f32; lanes], vec![0.0f32; lanes], vec![0.0f32; lanes]];
    for (k, chain) in chains.iter_mut().enumerate() {
        multi_row_sum(|i| row(i * 4 + k), groups, chain);
    }
    for i in groups * 4..size {
        add(&mut chains[0], row(i));
    }
    for (l, o) in out.iter_mut().enumerate() {
        *o = chains[0][l] + chains[1][l] + chains[2][l] + chains[3][l];
    }
}

/// `acc += values`, lane by lane (8 lanes at a time with AVX2).
fn add(acc: &mut [f32], values: &[f32]) {
    #[inline(always)]
    fn body(acc: &mut [f32], values: &[f32]) {
        for (a, v) in acc.iter_mut().zip(values) {
            *a += v;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn wide(acc: &mut [f32], values: &[f32]) {
            body(acc, values)
        }
        // SAFETY: the CPU has AVX2.
        return unsafe { wide(acc, values) };
    }
    body(acc, values)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// The values libtorch's vectorised loops treat with vector code: whole blocks of 16.
    const BLOCK: usize = 16;

    /// SLEEF's `expf` (`xexpf`, 1-ULP, AVX2 with FMA) on 8 lanes: `x = q ln 2 + s` with `q`
    /// rounded to even, a degree-6 polynomial in `s`, then `2^q` applied in two halves.
    #[target_feature(enable = "avx2,fma")]
    fn exp8(d: __m256) -> __m256 {
        // SLEEF's coefficients are double literals narrowed to float; `as f32` narrows alike.
        #[allow(clippy::excessive_precision)]
        const C: [f64; 6] = [
            0.000198527617612853646278381,
            0.00139304355252534151077271,
            0.00833336077630519866943359,
            0.0416664853692054748535156,
            0.166666671633720397949219,
            0.5,
        ];
        // SLEEF's float literals: 1/ln 2, and ln 2 in two parts (the first exact in few bits).
        const R_LN2: f32 = std::f32::consts::LOG2_E;
        #[allow(clippy::excessive_precision)]
        const L2U: f32 = 0.693145751953125;
        #[allow(clippy::excessive_precision)]
        const L2L: f32 = 1.428606765330187045e-06;
        let q = _mm256_cvtps_epi32(_mm256_mul_ps(d, _mm256_set1_ps(R_LN2)));
        let qf = _mm256_cvtepi32_ps(q);
        let s = _mm256_fmadd_ps(qf, _mm256_set1_ps(-L2U), d);
        let s = _mm256_fmadd_ps(qf, _mm256_set1_ps(-L2L), s);
        let mut u = _mm256_set1_ps(C[0] as f32);
        for c in &C[1..] {
            u = _mm256_fmadd_ps(u, s, _mm256_set1_ps(*c as f32));
        }
        u = _mm256_add_ps(_mm256_set1_ps(1.0), _mm256_fmadd_ps(_mm256_mul_ps(s, s), u, s));
        let half = _mm256_srai_epi32::<1>(q);
        u = _mm256_mul_ps(_mm256_mul_ps(u, pow2(half)), pow2(_mm256_sub_epi32(q, half)));
        u = _mm256_andnot_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(d, _mm256_set1_ps(-104.0)), u);
        let overflow = _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_set1_ps(100.0), d);
        _mm256_blendv_ps(u, _mm256_set1_ps(f32::INFINITY), overflow)
    }

    /// `2^e` for exponents in the normal range, built from its bits.
    #[target_feature(enable = "avx2")]
    fn pow2(e: __m256i) -> __m256 {
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(e, _mm256_set1_epi32(0x7f))))
    }

    /// See [`super::tanh_sigmoid_form`]: libtorch's vector `sigmoid` is `1 / (exp(0 - x) + 1)`,
    /// its scalar one `1 / (1 + expf(-x))`; `mul_` and `sub_` round alike in both.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tanh_sigmoid_form(v: &mut [f32], double_first: bool) {
        let split = v.len() - v.len() % BLOCK;
        let (body, tail) = v.split_at_mut(split);
        let (one, two, zero) = (_mm256_set1_ps(1.0), _mm256_set1_ps(2.0), _mm256_setzero_ps());
        let first = if double_first { two } else { one };
        for lanes in body.chunks_exact_mut(8) {
            // SAFETY: `lanes` holds 8 floats; unaligned loads and stores.
            unsafe {
                let x = _mm256_mul_ps(_mm256_loadu_ps(lanes.as_ptr()), first);
                let s = _mm256_div_ps(one, _mm256_add_ps(exp8(_mm256_sub_ps(zero, x)), one));
                _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_sub_ps(_mm256_mul_ps(s, two), one));
            }
        }
        for x in tail {
            let x2 = if double_first { *x * 2.0 } else { *x };
            let s = 1.0 / (1.0 + (-x2).exp());
            *x = s * 2.0 - 1.0;
        }
    }

    /// See [`super::tanh_backward`]: libtorch's code is `g (1 - y y)`, compiled with `1 - y y`
    /// contracted into one fused multiply-add, in its vector code as in its scalar code (so this
    /// loop needs no split; with FMA enabled it vectorises).
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn tanh_backward(g: &[f32], y: &[f32], out: &mut [f32]) {
        for ((o, g), y) in out.iter_mut().zip(g).zip(y) {
            *o = g * (-y).mul_add(*y, 1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Random values over the activations' range and beyond, special values, every tail length.
    fn inputs(n: usize, rng: &mut StdRng) -> Vec<f32> {
        let special = [0.0, -0.0, 1e-30, -1e-30, 88.0, -88.0, 103.9, -103.9, 104.5, -104.5, 150.0, -150.0];
        (0..n)
            .map(|i| match i % 7 {
                0 => special[(i / 7) % special.len()],
                1 => rng.random_range(-200.0..200.0),
                2 => rng.random_range(-1e-3..1e-3),
                _ => rng.random_range(-12.0..12.0),
            })
            .collect()
    }

    #[test]
    fn kernels_equal_libtorch() {
        tch::set_num_threads(1);
        if !libtorch_avx2() {
            eprintln!("skipped: libtorch does not run its AVX2 kernels here");
            return;
        }
        let mut rng = StdRng::seed_from_u64(7);
        for n in (1..=80).chain([1000, 4096, 4103, 65536 + 13]) {
            let x = Tensor::from_slice(&inputs(n, &mut rng));
            let expected = x.sigmoid().g_mul_scalar(2.0).g_sub_scalar(1.0);
            let ours = x.copy();
            assert!(tanh_of_half_(&ours));
            assert!(ours.equal(&expected), "tanh_of_half_ differs from libtorch at n = {n}");
            let expected = x.g_mul_scalar(2.0).sigmoid().g_mul_scalar(2.0).g_sub_scalar(1.0);
            let ours = x.copy();
            assert!(tanh_sigmoid_form(unsafe { values_mut(&ours) }.unwrap(), true));
            assert!(ours.equal(&expected), "doubled tanh_sigmoid_form differs from libtorch at n = {n}");

            let y = x.tanh();
            let g = Tensor::from_slice(&inputs(n, &mut rng));
            let expected = Tensor::tanh_backward(&g, &y);
            let ours = tanh_backward(&g, &y).expect("applies");
            assert!(ours.equal(&expected), "tanh_backward differs from libtorch at n = {n}");
        }
    }

    #[test]
    fn relu_equals_libtorch() {
        let mut rng = StdRng::seed_from_u64(8);
        let mut v = inputs(100, &mut rng);
        v.extend([f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0]);
        let x = Tensor::from_slice(&v);
        let ours = x.copy();
        relu(unsafe { values_mut(&ours) }.unwrap());
        // `equal` treats NaN as unequal: compare bits.
        let bits = |t: &Tensor| Vec::<f32>::try_from(t).unwrap().iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&ours), bits(&x.relu()));
        let g = Tensor::from_slice(&inputs(v.len(), &mut rng));
        let ours = g.empty_like();
        relu_backward_into(values(&g).unwrap(), values(&x).unwrap(), unsafe { values_mut(&ours) }.unwrap());
        assert_eq!(bits(&ours), bits(&x.threshold_backward(&g, 0.0)));
    }

    /// The reproduced cascade sum equals libtorch's `sum(0)` wherever it claims to apply.
    #[test]
    fn column_sums_equal_libtorch() {
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        tch::set_num_threads(1);
        tch::manual_seed(4);
        for rows in [1usize, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 255, 256, 257, 1000, 5000] {
            for cols in [1usize, 2, 3, 4, 5, 7, 8, 9, 12, 16, 24, 31, 32, 33, 40, 64, 65, 100] {
                let x = Tensor::randn([rows as i64, cols as i64], tch::kind::FLOAT_CPU) * 10.0;
                let mut ours = vec![0.0f32; cols];
                let applies = column_sums(values(&x).unwrap(), rows, cols, &mut ours).is_some();
                assert_eq!(applies, cols > 1 || rows >= 8, "{rows} x {cols}");
                if applies {
                    let expected =
                        Vec::<f32>::try_from(&x.sum_dim_intlist([0i64].as_slice(), false, None::<Kind>)).unwrap();
                    assert_eq!(bits(&ours), bits(&expected), "{rows} x {cols}");
                }
            }
        }
    }
}
