//! Matrix products in a fixed order: `c[i][j] = start(i, j) + Σ_k a(i, k) · b[k][j]`, each element
//! one chain of fused multiply-adds over `k = 0, 1, …`.
//!
//! `b` is row-major `[k, n]` and read a row at a time; `a(i, k)` is one scalar read with strides
//! (`a[i * row_stride + k * col_stride]`), so the same kernel computes `x Wᵀ` (with `Wᵀ` packed),
//! `g W` and `gᵀ x` without transposing the operand read by columns. The micro-kernel keeps a block
//! of rows by columns of `c` in registers (8 x 32 with AVX-512, 6 x 16 with AVX2, 4 x 16 in the
//! portable build: enough independent chains to cover the FMA latency) and walks a part of `k`;
//! each panel of `b`'s columns is passed over by every row block before the next (it stays in the
//! cache), and long chains are walked in parts of [`KC`] links, each continuing from the stored
//! value. Edge blocks use the same code with fewer rows or columns. Which elements share a vector
//! register, and where a chain is paused, never changes what each element computes.

use super::{Isa, isa};

/// Rows of `c` per micro-kernel block in the portable build.
pub const MR: usize = 4;
/// Columns of `c` per micro-kernel block (twice as many with AVX-512).
pub const NR: usize = 16;

/// Where each chain starts.
#[derive(Clone, Copy, Debug)]
pub enum Start<'a> {
    /// At zero.
    Zero,
    /// At `bias[j]` for every row (a linear layer's bias).
    Bias(&'a [f32]),
    /// At the value `c` holds (accumulating into it).
    Existing,
}

/// The operand read one scalar at a time: `a(i, k) = data[i * row_stride + k * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct Strided<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Strided<'a> {
    /// A row-major `[rows, cols]` matrix read as `a(i, k) = m[i][k]`.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Strided { data, row_stride: cols, col_stride: 1 }
    }

    /// A row-major `[k, m]` matrix read transposed: `a(i, k) = m[k][i]`.
    pub fn transposed(data: &'a [f32], m: usize) -> Self {
        Strided { data, row_stride: 1, col_stride: m }
    }
}

/// `c = start + a · b` for `c` `[m, n]`, `a` `(m, k)` and `b` `[k, n]` row-major (see the module
/// documentation for the order of every sum).
///
/// # Panics
/// When a slice is shorter than the shapes say (a bug in the caller, never user input: the
/// networks check their shapes when built).
pub fn gemm(m: usize, n: usize, k: usize, a: Strided<'_>, b: &[f32], c: &mut [f32], start: Start<'_>) {
    assert!(c.len() >= m * n && b.len() >= k * n, "gemm: c or b shorter than [{m}, {n}] / [{k}, {n}]");
    if m > 0 && k > 0 {
        let last = (m - 1) * a.row_stride + (k - 1) * a.col_stride;
        assert!(last < a.data.len(), "gemm: a shorter than ({m}, {k}) with its strides");
    }
    if let Start::Bias(bias) = start {
        assert!(bias.len() >= n, "gemm: a bias of {} for {n} columns", bias.len());
    }
    if m == 0 || n == 0 {
        return;
    }
    kernel(m, k, Operands { n, k0: 0, k1: k, a, b, start }, c);
}

/// What every block of one product reads: `c`'s width `n`, the part `k0..k1` of the chains,
/// both operands and where chains start.
#[derive(Clone, Copy)]
struct Operands<'a> {
    n: usize,
    k0: usize,
    k1: usize,
    a: Strided<'a>,
    b: &'a [f32],
    start: Start<'a>,
}

/// Chains are walked [`KC`] links at a time, each part continuing from the value the previous
/// one stored (an `f32` stored and loaded is the same `f32`, so the chain is unchanged), so that a
/// panel of `b` (`KC` rows by a block's columns) stays in the first-level cache while every row
/// block of `a` passes over it.
const KC: usize = 128;

/// [`gemm`] after its checks, compiled for each instruction set (as `dispatch!` does, but with
/// a block as large as the instruction set's registers allow: AVX-512 keeps 8 x 32 accumulators
/// in sixteen registers, AVX2 6 x 16 in twelve, the portable build 4 x 16). How elements are
/// grouped into blocks never changes an element's chain.
fn kernel(m: usize, k: usize, ops: Operands<'_>, c: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    fn avx512(m: usize, k: usize, ops: Operands<'_>, c: &mut [f32]) {
        parts::<8, { 2 * NR }>(m, k, ops, c)
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn avx2(m: usize, k: usize, ops: Operands<'_>, c: &mut [f32]) {
        parts::<6, NR>(m, k, ops, c)
    }
    match isa() {
        // SAFETY: `isa()` names an instruction set only where the CPU has it.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { avx512(m, k, ops, c) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2(m, k, ops, c) },
        _ => parts::<MR, NR>(m, k, ops, c),
    }
}

/// The chains' parts of [`KC`] links, the first from the caller's start, the others from the
/// values stored.
#[inline(always)]
fn parts<const R: usize, const W: usize>(m: usize, k: usize, ops: Operands<'_>, c: &mut [f32]) {
    let mut k0 = 0;
    loop {
        let k1 = (k0 + KC).min(k);
        let start = if k0 == 0 { ops.start } else { Start::Existing };
        panels::<R, W>(m, Operands { k0, k1, start, ..ops }, c);
        k0 = k1;
        if k0 >= k {
            break;
        }
    }
}

/// Panels of `W` columns (then 16, 8, 4 and single columns), each passed over by every row block.
#[inline(always)]
fn panels<const R: usize, const W: usize>(m: usize, ops: Operands<'_>, c: &mut [f32]) {
    let mut j = 0;
    while j + W <= ops.n {
        column::<R, W>(m, ops, c, j);
        j += W;
    }
    while W > NR && j + NR <= ops.n {
        column::<R, NR>(m, ops, c, j);
        j += NR;
    }
    while j + 8 <= ops.n {
        column::<R, 8>(m, ops, c, j);
        j += 8;
    }
    while j + 4 <= ops.n {
        column::<R, 4>(m, ops, c, j);
        j += 4;
    }
    while j < ops.n {
        column::<R, 1>(m, ops, c, j);
        j += 1;
    }
}

/// Columns `j..j + C` of `c`, in blocks of `R` rows, then single rows.
#[inline(always)]
fn column<const R: usize, const C: usize>(m: usize, ops: Operands<'_>, c: &mut [f32], j: usize) {
    let mut i = 0;
    while i + R <= m {
        block::<R, C>(ops, c, i, j);
        i += R;
    }
    while i < m {
        block::<1, C>(ops, c, i, j);
        i += 1;
    }
}

/// The micro-kernel: rows `i..i + R` and columns `j..j + C` of `c`, each element's chain over
/// `k0..k1` in order.
#[inline(always)]
fn block<const R: usize, const C: usize>(ops: Operands<'_>, c: &mut [f32], i: usize, j: usize) {
    let Operands { n, k0, k1, a, b, start } = ops;
    let mut acc = [[0.0f32; C]; R];
    for (r, row) in acc.iter_mut().enumerate() {
        match start {
            Start::Zero => {}
            Start::Bias(bias) => row.copy_from_slice(&bias[j..j + C]),
            Start::Existing => row.copy_from_slice(&c[(i + r) * n + j..][..C]),
        }
    }
    let (rs, cs) = (a.row_stride, a.col_stride);
    for kk in k0..k1 {
        let b_row: &[f32; C] = b[kk * n + j..][..C].try_into().expect("C columns");
        for (r, row) in acc.iter_mut().enumerate() {
            let x = a.data[(i + r) * rs + kk * cs];
            for (acc, &w) in row.iter_mut().zip(b_row) {
                *acc = x.mul_add(w, *acc);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        c[(i + r) * n + j..][..C].copy_from_slice(row);
    }
}

/// `out = mᵀ` for a row-major `[rows, cols]` matrix `m` (`out` is `[cols, rows]`), in tiles of
/// 16 x 16 so that the lines written stay in the cache while a tile fills them.
pub fn transpose(m: &[f32], rows: usize, cols: usize, out: &mut Vec<f32>) {
    transpose_padded(m, rows, cols, rows, out);
}

/// [`transpose`] into rows of `width >= rows` values, the last `width - rows` of each zero.
pub fn transpose_padded(m: &[f32], rows: usize, cols: usize, width: usize, out: &mut Vec<f32>) {
    const TILE: usize = 16;
    debug_assert!(width >= rows);
    out.clear();
    out.resize(width * cols, 0.0);
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            let c1 = (c0 + TILE).min(cols);
            for r in r0..(r0 + TILE).min(rows) {
                for (c, &v) in (c0..c1).zip(&m[r * cols + c0..r * cols + c1]) {
                    out[c * width + r] = v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::engine::testing::{bits, isas};
    use crate::agent::engine::{Isa, force};
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn random(n: usize, rng: &mut StdRng) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
    }

    /// Every instruction set gives the bits of the portable kernel, and the portable kernel the
    /// bits of the chain written out element by element, for every edge of the blocking and all
    /// three ways of reading `a` and starting a chain.
    #[test]
    fn every_instruction_set_computes_the_same_chains() {
        let sizes = [0usize, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65];
        let mut rng = StdRng::seed_from_u64(7);
        for &m in &sizes {
            for &n in &sizes {
                for k in [0usize, 1, 3, 16, 65, 300] {
                    let a = random(m * k, &mut rng);
                    let b = random(k * n, &mut rng);
                    let bias = random(n, &mut rng);
                    let existing = random(m * n, &mut rng);
                    for transposed in [false, true] {
                        let strided = if transposed { Strided::transposed(&a, m) } else { Strided::rows(&a, k) };
                        for start in [Start::Zero, Start::Bias(&bias), Start::Existing] {
                            // The reference: each chain written out.
                            let mut want = existing.clone();
                            for i in 0..m {
                                for j in 0..n {
                                    let mut acc = match start {
                                        Start::Zero => 0.0,
                                        Start::Bias(b) => b[j],
                                        Start::Existing => existing[i * n + j],
                                    };
                                    for kk in 0..k {
                                        let x = strided.data[i * strided.row_stride + kk * strided.col_stride];
                                        acc = x.mul_add(b[kk * n + j], acc);
                                    }
                                    want[i * n + j] = acc;
                                }
                            }
                            for isa in isas() {
                                let mut c = existing.clone();
                                force(isa, || gemm(m, n, k, strided, &b, &mut c, start));
                                assert_eq!(bits(&c), bits(&want), "{isa:?} {m}x{n}x{k} {start:?} t={transposed}");
                            }
                        }
                    }
                }
            }
        }
        assert!(isas().contains(&Isa::Portable));
    }
}
