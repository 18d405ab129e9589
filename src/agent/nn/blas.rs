//! Matrix products as libtorch computes them, without its operators: MKL's `sgemm_` (linked into
//! `libtorch_cpu`) called with the arguments libtorch's `addmm` would pass, on buffers aligned
//! as libtorch aligns its own (MKL's small products depend on alignment), and MKL's vector `tanh`
//! as libtorch's `tanh` calls it. Where a call does not apply (a platform without MKL, an
//! operand libtorch would copy first), libtorch's own operation runs on the same memory.

use tch::{Kind, Tensor};

/// 64 bytes of floats: libtorch's allocation alignment.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// Floats aligned as libtorch aligns a tensor's data.
pub(crate) struct Buf {
    lines: Vec<Line>,
    len: usize,
}

impl Buf {
    pub(crate) fn zeros(len: usize) -> Buf {
        Buf { lines: vec![Line([0.0; 16]); len.div_ceil(16)], len }
    }

    pub(crate) fn from_slice(values: &[f32]) -> Buf {
        let mut buf = Buf::zeros(values.len());
        buf.as_mut_slice().copy_from_slice(values);
        buf
    }

    pub(crate) fn as_slice(&self) -> &[f32] {
        // SAFETY: `lines` holds at least `len` floats, contiguous (`Line` is 16 floats, no padding).
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.len) }
    }
}

/// The floats of a contiguous CPU float tensor (the rows a pass reads).
pub(crate) fn tensor_floats(t: &Tensor) -> &[f32] {
    super::kernels::values(t).expect("a contiguous CPU float tensor")
}

/// A matrix in memory: sizes and strides in elements, as libtorch describes a 2-D tensor.
#[derive(Clone, Copy)]
pub(super) struct Mat {
    ptr: *const f32,
    sizes: [i64; 2],
    strides: [i64; 2],
}

impl Mat {
    /// A row-major `[rows, cols]` matrix with libtorch's contiguous strides.
    pub(super) fn new(ptr: *const f32, rows: usize, cols: usize) -> Mat {
        Mat { ptr, sizes: [rows as i64, cols as i64], strides: [(cols as i64).max(1), 1] }
    }

    pub(super) fn t(self) -> Mat {
        Mat { ptr: self.ptr, sizes: [self.sizes[1], self.sizes[0]], strides: [self.strides[1], self.strides[0]] }
    }
}

/// `c ← c + m1 m2` (`accumulate`) or `c ← m1 m2` into the contiguous `[m1 rows, m2 cols]`
/// matrix at `c`, as libtorch's `addmm_`/`mm_out` computes it: the BLAS call `addmm_impl_cpu_`
/// makes (its choice of transpositions and leading dimensions, then `cpublas::gemm`'s
/// normalisation), or, where that call does not apply, libtorch's own operation.
///
/// # Safety
/// The matrices' memory is valid for their sizes and strides, `c` for `m1 rows × m2 cols`
/// floats, and `c` overlaps neither operand.
pub(super) unsafe fn addmm(c: *mut f32, m1: Mat, m2: Mat, accumulate: bool) {
    settle_threads();
    let beta = if accumulate { 1.0 } else { 0.0 };
    if let Some(args) = blas_args(m1, m2) {
        // SAFETY: the arguments describe the caller's valid memory, as libtorch would pass it.
        unsafe { mkl::sgemm(args, 1.0, beta, c) };
        return;
    }
    // SAFETY: the caller's contract.
    unsafe { libtorch_addmm(c, m1, m2, accumulate) }
}

/// [`addmm`] through libtorch's operation, on tensors over the same memory.
///
/// # Safety
/// As for [`addmm`].
unsafe fn libtorch_addmm(c: *mut f32, m1: Mat, m2: Mat, accumulate: bool) {
    // SAFETY: tensors over the caller's memory, alive only for this call.
    let wrap = |m: Mat| unsafe { Tensor::from_blob(m.ptr.cast(), &m.sizes, &m.strides, Kind::Float, tch::Device::Cpu) };
    let out = wrap(Mat::new(c, m1.sizes[0] as usize, m2.sizes[1] as usize));
    tch::no_grad(|| match accumulate {
        true => drop(out.shallow_clone().addmm_(&wrap(m1), &wrap(m2))),
        false => drop(wrap(m1).mm_out(&out, &wrap(m2))),
    });
}

/// Makes this thread's MKL use libtorch's thread count before its first direct call: libtorch
/// sets MKL's count per thread, lazily, on a thread's first query of its own count (a rayon
/// worker's first libtorch operation may not have made one).
fn settle_threads() {
    thread_local!(static SETTLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if !SETTLED.with(|s| s.replace(true)) {
        let _ = tch::get_num_threads();
    }
}

/// BLAS's arguments for [`addmm`] (`None` where libtorch would copy an operand or not call BLAS).
struct BlasArgs {
    trans_a: bool,
    trans_b: bool,
    m: i64,
    n: i64,
    k: i64,
    a: *const f32,
    lda: i64,
    b: *const f32,
    ldb: i64,
    ldc: i64,
}

fn blas_args(m1: Mat, m2: Mat) -> Option<BlasArgs> {
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        return None;
    }
    let r_sizes = [m1.sizes[0], m2.sizes[1]];
    let r_strides = [r_sizes[1].max(1), 1];
    // libtorch reads the result as column-major, transposed (`tc`) when it is row-major.
    let (tc, m1, m2) = if r_strides[0] == 1 && (r_sizes[1] == 1 || r_strides[1] >= r_sizes[0].max(1)) {
        (false, m1, m2)
    } else if r_strides[1] == 1 && (r_sizes[0] == 1 || r_strides[0] >= r_sizes[1].max(1)) {
        (true, m2, m1)
    } else {
        return None;
    };
    let (i0, i1) = if tc { (1, 0) } else { (0, 1) };
    let (m, n, k) = (r_sizes[i0], r_sizes[i1], m1.sizes[i1]);
    // Whether an operand is read as stored (`false`) or transposed, as `addmm_impl_cpu_` decides.
    let cast = |x: Mat, rows: i64, cols: i64| {
        if x.strides[i0] == 1 && x.strides[i1] >= rows.max(1) {
            Some(false)
        } else if x.strides[i1] == 1 && x.strides[i0] >= cols.max(1) {
            Some(true)
        } else {
            None
        }
    };
    let trans_a = cast(m1, m, k)?;
    let trans_b = cast(m2, k, n)?;
    let mut lda = m1.strides[if trans_a == tc { 1 } else { 0 }];
    let mut ldb = m2.strides[if trans_b == tc { 1 } else { 0 }];
    let mut ldc = r_strides[if tc { 0 } else { 1 }];
    // `cpublas::gemm`'s normalisation of leading dimensions for single rows and columns.
    if n == 1 {
        ldc = m;
    }
    if trans_a {
        if m == 1 {
            lda = k;
        }
    } else if k == 1 {
        lda = m;
    }
    if trans_b {
        if k == 1 {
            ldb = n;
        }
    } else if n == 1 {
        ldb = k;
    }
    // `cpublas::gemm` calls BLAS only with valid leading dimensions (else its own kernel).
    let valid = lda >= (if trans_a { k } else { m }).max(1)
        && ldb >= (if trans_b { n } else { k }).max(1)
        && ldc >= m.max(1)
        && [m, n, k, lda, ldb, ldc].iter().all(|&v| v <= i32::MAX as i64);
    (valid && m > 0 && n > 0 && k > 0).then_some(BlasArgs {
        trans_a,
        trans_b,
        m,
        n,
        k,
        a: m1.ptr,
        lda,
        b: m2.ptr,
        ldb,
        ldc,
    })
}

/// MKL's entry points in `libtorch_cpu` (LP64: 32-bit integers), where the platform has them.
pub(super) mod mkl {
    use super::BlasArgs;

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    mod ffi {
        use std::os::raw::{c_char, c_int, c_longlong};
        unsafe extern "C" {
            pub(super) fn sgemm_(
                transa: *const c_char,
                transb: *const c_char,
                m: *const c_int,
                n: *const c_int,
                k: *const c_int,
                alpha: *const f32,
                a: *const f32,
                lda: *const c_int,
                b: *const f32,
                ldb: *const c_int,
                beta: *const f32,
                c: *mut f32,
                ldc: *const c_int,
            );
            pub(super) fn vmsTanh(n: c_int, a: *const f32, r: *mut f32, mode: c_longlong);
        }
    }

    /// # Safety
    /// `args` describe valid memory and `c` holds the `m × n` result with leading dimension `ldc`.
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    pub(super) unsafe fn sgemm(args: BlasArgs, alpha: f32, beta: f32, c: *mut f32) {
        let t = |x: bool| (if x { b'T' } else { b'N' }) as std::os::raw::c_char;
        let i = |x: i64| x as std::os::raw::c_int;
        let (ta, tb, m, n, k) = (t(args.trans_a), t(args.trans_b), i(args.m), i(args.n), i(args.k));
        let (lda, ldb, ldc) = (i(args.lda), i(args.ldb), i(args.ldc));
        // SAFETY: the caller's contract; every argument is passed by pointer as Fortran BLAS takes it.
        unsafe { ffi::sgemm_(&ta, &tb, &m, &n, &k, &alpha, args.a, &lda, args.b, &ldb, &beta, c, &ldc) }
    }

    /// libtorch's `tanh` of `n` floats: MKL's high-accuracy vector tanh with the mode libtorch
    /// passes (`VML_HA | VML_FTZDAZ_OFF | VML_ERRMODE_IGNORE`). `false` where there is no MKL.
    pub(in super::super) fn tanh(x: &[f32], out: &mut [f32]) -> bool {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        // libtorch's `tanh` calls MKL once for all values below its grain (2048) or on one thread.
        if x.len() == out.len() && super::super::kernels::serial(x.len(), 2048) && x.len() <= i32::MAX as usize {
            const MODE: i64 = 0x2 | 0x14_0000 | 0x100;
            super::settle_threads();
            // SAFETY: both slices hold `len` floats.
            unsafe { ffi::vmsTanh(x.len() as i32, x.as_ptr(), out.as_mut_ptr(), MODE) };
            return true;
        }
        let _ = (x, out);
        false
    }

    /// Without MKL: no direct call (the caller falls back to libtorch).
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    pub(super) unsafe fn sgemm(_: BlasArgs, _: f32, _: f32, _: *mut f32) {
        unreachable!("blas_args returns None without MKL")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct BLAS call gives libtorch's bits for the products a network's passes make (a
    /// layer, its weight gradient, its input gradient), at shapes on both sides of every special
    /// case (single rows, single columns, a single inner dimension).
    #[test]
    fn direct_products_equal_libtorch() {
        tch::set_num_threads(1);
        tch::manual_seed(5);
        let dims = [1usize, 2, 3, 4, 7, 16, 64, 256];
        for &rows in &dims {
            for &inputs in &dims[..7] {
                for &outputs in &dims[..7] {
                    let x = Buf::from_slice(
                        &Vec::<f32>::try_from(Tensor::randn([(rows * inputs) as i64], tch::kind::FLOAT_CPU)).unwrap(),
                    );
                    let w = Buf::from_slice(
                        &Vec::<f32>::try_from(Tensor::randn([(outputs * inputs) as i64], tch::kind::FLOAT_CPU))
                            .unwrap(),
                    );
                    let g = Buf::from_slice(
                        &Vec::<f32>::try_from(Tensor::randn([(rows * outputs) as i64], tch::kind::FLOAT_CPU)).unwrap(),
                    );
                    let (x, w, g) = (
                        Mat::new(x.as_slice().as_ptr(), rows, inputs),
                        Mat::new(w.as_slice().as_ptr(), outputs, inputs),
                        Mat::new(g.as_slice().as_ptr(), rows, outputs),
                    );
                    for (what, m1, m2, accumulate) in [
                        ("layer", x, w.t(), true),
                        ("weight gradient", g.t(), x, false),
                        ("input gradient", g, w, false),
                    ] {
                        let len = (m1.sizes[0] * m2.sizes[1]) as usize;
                        let start = Vec::<f32>::try_from(Tensor::randn([len as i64], tch::kind::FLOAT_CPU)).unwrap();
                        let (mut direct, mut reference) = (Buf::from_slice(&start), Buf::from_slice(&start));
                        // SAFETY: buffers of the operands' and the results' sizes, alive here.
                        unsafe {
                            addmm(direct.as_mut_slice().as_mut_ptr(), m1, m2, accumulate);
                            libtorch_addmm(reference.as_mut_slice().as_mut_ptr(), m1, m2, accumulate);
                        }
                        let bits = |b: &Buf| b.as_slice().iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&direct), bits(&reference), "{what}: {rows} rows, {inputs} -> {outputs}");
                    }
                }
            }
        }
    }
}
