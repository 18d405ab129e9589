//! Networks run without libtorch's operators, with the numbers of their own libtorch passes.
//!
//! A small network's pass is mostly overhead in libtorch: each operation costs 2 to 10 µs of
//! dispatch, shape checks and allocation before any arithmetic (a 256 × 64 × 64 `linear` takes
//! 42 µs through libtorch and 27 µs as the BLAS call it makes; an 8-row one 10 µs and 2 µs), and
//! PPO on CartPole-v1 runs about 40 000 such passes. Here a pass calls the BLAS libtorch calls
//! (MKL's `sgemm_`, linked into `libtorch_cpu`) with the arguments libtorch's `addmm` would choose
//! ([`addmm`] follows its choice of transpositions and leading dimensions), the activations
//! through the reproductions of libtorch's kernels (`kernels.rs`) or MKL's vector `tanh` that
//! libtorch's `tanh` calls, and the bias gradients through a reproduction of libtorch's cascade
//! sum ([`column_sums`]), over buffers aligned as libtorch aligns its own (MKL's small products
//! depend on alignment). Each network is its own pass, so the bits are those of
//! [`Mlp`](super::Mlp)'s passes at any shape and thread count: `direct_passes_equal_the_networks_own`
//! compares forward, acting and gradients bit for bit. Where a piece does not apply (another
//! CPU, a platform without MKL), that piece runs libtorch's own operation on the same memory.

use tch::{Kind, Tensor};

use super::{Activation, kernels};
use crate::agent::optim::Adam;

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
    assert!(t.kind() == Kind::Float && t.device() == tch::Device::Cpu && t.is_contiguous(), "contiguous floats");
    // SAFETY: a contiguous CPU float tensor holds `numel` floats from its data pointer, alive as
    // long as `t`.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel()) }
}

/// A matrix in memory: sizes and strides in elements, as libtorch describes a 2-D tensor.
#[derive(Clone, Copy)]
struct Mat {
    ptr: *const f32,
    sizes: [i64; 2],
    strides: [i64; 2],
}

impl Mat {
    /// A row-major `[rows, cols]` matrix with libtorch's contiguous strides.
    fn new(ptr: *const f32, rows: usize, cols: usize) -> Mat {
        Mat { ptr, sizes: [rows as i64, cols as i64], strides: [(cols as i64).max(1), 1] }
    }

    fn t(self) -> Mat {
        Mat { ptr: self.ptr, sizes: [self.sizes[1], self.sizes[0]], strides: [self.strides[1], self.strides[0]] }
    }
}

/// `c ← c + m1 m2` (`accumulate`) or `c ← m1 m2` into the contiguous `[m1 rows, m2 cols]` matrix at `c`, as libtorch's
/// `addmm`/`mm_out` computes it: the BLAS call `addmm_impl_cpu_` makes (its choice of
/// transpositions and leading dimensions, then `cpublas::gemm`'s normalisation), or, where
/// that call does not apply, libtorch's own operation on the same memory.
///
/// # Safety
/// The matrices' memory is valid for their sizes and strides, `c` for `m1 rows × m2 cols`
/// floats, and `c` overlaps neither operand.
unsafe fn addmm(c: *mut f32, m1: Mat, m2: Mat, accumulate: bool) {
    let beta = if accumulate { 1.0 } else { 0.0 };
    if let Some(args) = blas_args(m1, m2) {
        // SAFETY: the arguments describe the caller's valid memory, as libtorch would pass it.
        unsafe { mkl::sgemm(args, 1.0, beta, c) };
        return;
    }
    // SAFETY: tensors over the caller's memory, alive only for this call.
    let wrap = |m: Mat| unsafe { Tensor::from_blob(m.ptr.cast(), &m.sizes, &m.strides, Kind::Float, tch::Device::Cpu) };
    let out = wrap(Mat::new(c, m1.sizes[0] as usize, m2.sizes[1] as usize));
    tch::no_grad(|| match accumulate {
        true => drop(out.shallow_clone().addmm_(&wrap(m1), &wrap(m2))),
        false => drop(wrap(m1).mm_out(&out, &wrap(m2))),
    });
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
    let r_strides = Mat::new(std::ptr::null(), r_sizes[0] as usize, r_sizes[1] as usize).strides;
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
mod mkl {
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
    pub(super) fn tanh(x: &[f32], out: &mut [f32]) -> bool {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        // libtorch's `tanh` calls MKL once for all values below its grain (2048) or on one thread.
        if x.len() == out.len() && super::kernels::serial(x.len(), 2048) && x.len() <= i32::MAX as usize {
            const MODE: i64 = 0x2 | 0x14_0000 | 0x100;
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

/// libtorch's `sum(0)` of a contiguous `[rows, cols]` matrix, column by column in the order of
/// its cascade sum (`SumKernel.cpp`): columns in blocks of 32 summed row after row
/// (`vectorized_outer_sum`'s `multi_row_sum`), the others in four interleaved chains
/// (`row_sum`), a single column as a contiguous reduction (`vectorized_inner_sum`). Reproduced
/// for the shapes `column_sums_equal_libtorch` checks; `None` for the others.
fn column_sums(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) -> Option<()> {
    if rows == 0 || cols == 0 || !kernels::serial(rows * cols, kernels::GRAIN) {
        return None;
    }
    let at = |c: usize| move |i: usize| x[i * cols + c];
    if cols == 1 {
        // Eight lanes of interleaved chains over whole vectors, then the tail, then the lanes.
        let vectors = rows / 8;
        if vectors == 0 {
            return None;
        }
        let lanes: Vec<f32> = (0..8).map(|l| row_sum(|i| x[i * 8 + l], vectors)).collect();
        let mut total = x[vectors * 8..].iter().fold(0.0f32, |acc, v| acc + v);
        for l in lanes {
            total += l;
        }
        out[0] = total;
        return Some(());
    }
    let blocked = if cols >= 8 { cols - cols % 32 } else { cols - cols % 4 };
    for (c, o) in out.iter_mut().enumerate().take(cols) {
        *o = if c < blocked { multi_row_sum(at(c), rows) } else { row_sum(at(c), rows) };
    }
    Some(())
}

/// One lane of libtorch's `multi_row_sum`: `size` values added in groups of `2^p` whose partial
/// sums cascade through four levels.
fn multi_row_sum(load: impl Fn(usize) -> f32, size: usize) -> f32 {
    let ceil_log2 = if size <= 2 { 1 } else { usize::BITS - (size - 1).leading_zeros() } as usize;
    let power = (ceil_log2 / 4).max(4);
    let (step, mask) = (1usize << power, (1usize << power) - 1);
    let mut acc = [0.0f32; 4];
    let mut i = 0;
    while i + step <= size {
        for _ in 0..step {
            acc[0] += load(i);
            i += 1;
        }
        for j in 1..4 {
            acc[j] += acc[j - 1];
            acc[j - 1] = 0.0;
            if i & (mask << (j * power)) != 0 {
                break;
            }
        }
    }
    while i < size {
        acc[0] += load(i);
        i += 1;
    }
    acc[0] + acc[1] + acc[2] + acc[3]
}

/// libtorch's `row_sum`: four interleaved chains (`multi_row_sum` over groups of four), the
/// leftover values into the first, then the chains together.
fn row_sum(load: impl Fn(usize) -> f32, size: usize) -> f32 {
    let groups = size / 4;
    let mut chains = [0.0f32; 4];
    for (k, chain) in chains.iter_mut().enumerate() {
        *chain = multi_row_sum(|i| load(i * 4 + k), groups);
    }
    for i in groups * 4..size {
        chains[0] += load(i);
    }
    chains[0] + chains[1] + chains[2] + chains[3]
}

/// One linear layer: views of its parameters and of their gradients.
struct Layer {
    inputs: usize,
    outputs: usize,
    weight: Tensor,
    bias: Tensor,
    grads: (Tensor, Tensor),
}

/// Mutable floats of a parameter or gradient view (contiguous, owned by the optimiser).
fn view_floats(t: &Tensor) -> *mut f32 {
    debug_assert!(t.is_contiguous() && t.kind() == Kind::Float);
    t.data_ptr() as *mut f32
}

/// A network laid out as [`Mlp`](super::Mlp) lays it out (`{name}.trunk.{i}`, `{name}.head`),
/// over an optimiser's parameters.
pub(crate) struct DirectMlp {
    layers: Vec<Layer>,
    activation: Activation,
}

/// What a training pass keeps for the backward pass: each hidden layer's output, and the
/// network's output.
pub(crate) struct DirectPass {
    rows: usize,
    hidden: Vec<Buf>,
    output: Buf,
}

impl DirectPass {
    /// The network's output, `[rows, out]` row-major.
    pub(crate) fn output(&self) -> &[f32] {
        self.output.as_slice()
    }
}

impl DirectMlp {
    /// The network `name` (its trunk's depth `depth`) over `opt`'s parameters and gradients.
    pub(crate) fn new(opt: &Adam, name: &str, depth: usize, activation: Activation) -> Option<Self> {
        let names = (0..depth).map(|i| format!("{name}.trunk.{i}")).chain([format!("{name}.head")]);
        let layers = names
            .map(|layer| {
                let ((weight, dw), (bias, db)) =
                    (opt.stacked(&[format!("{layer}.weight")])?, opt.stacked(&[format!("{layer}.bias")])?);
                let size = weight.size();
                Some(Layer { inputs: size[2] as usize, outputs: size[1] as usize, weight, bias, grads: (dw, db) })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(DirectMlp { layers, activation })
    }

    /// `bias + x Wᵀ` for `rows` rows, as libtorch's `linear`.
    fn affine(layer: &Layer, x: &[f32], rows: usize) -> Buf {
        let mut out = Buf::zeros(rows * layer.outputs);
        // SAFETY: the bias view holds `outputs` floats.
        let bias = unsafe { std::slice::from_raw_parts(view_floats(&layer.bias), layer.outputs) };
        for row in out.as_mut_slice().chunks_exact_mut(layer.outputs.max(1)) {
            row.copy_from_slice(bias);
        }
        let w = Mat::new(view_floats(&layer.weight), layer.outputs, layer.inputs);
        // SAFETY: `x` holds `rows × inputs` floats, the weight view `outputs × inputs`, `out`
        // `rows × outputs`; `out` is new.
        unsafe { addmm(out.as_mut_slice().as_mut_ptr(), Mat::new(x.as_ptr(), rows, layer.inputs), w.t(), true) };
        out
    }

    /// The training pass for `rows` rows of `x` (as [`Mlp::forward_cached`](super::Mlp::forward_cached)
    /// computes it: `tanh` in its sigmoid form).
    pub(crate) fn forward(&self, x: &[f32], rows: usize) -> DirectPass {
        let mut hidden: Vec<Buf> = Vec::with_capacity(self.layers.len() - 1);
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let input = if i == 0 { x } else { hidden[i - 1].as_slice() };
            let mut out = Self::affine(layer, input, rows);
            if i == last {
                return DirectPass { rows, hidden, output: out };
            }
            match self.activation {
                Activation::Tanh => {
                    if !kernels::tanh_sigmoid_form(out.as_mut_slice(), true) {
                        let t = Tensor::from_slice(out.as_slice());
                        self.activation.apply_(&mut t.shallow_clone());
                        t.copy_data(out.as_mut_slice(), t.numel());
                    }
                }
                Activation::Relu => kernels::relu(out.as_mut_slice()),
            }
            hidden.push(out);
        }
        unreachable!("a network has a head")
    }

    /// The acting pass (as [`Mlp::features`](super::Mlp::features) then the head compute it:
    /// libtorch's own `tanh`): the output and the trunk's features.
    pub(crate) fn infer(&self, x: &[f32], rows: usize) -> (Buf, Option<Buf>) {
        let mut features: Option<Buf> = None;
        for (i, layer) in self.layers.iter().enumerate() {
            let input = features.as_ref().map_or(x, |f| f.as_slice());
            let mut out = Self::affine(layer, input, rows);
            if i + 1 == self.layers.len() {
                return (out, features);
            }
            out = match self.activation {
                Activation::Tanh => {
                    let mut y = Buf::zeros(out.len);
                    if !mkl::tanh(out.as_slice(), y.as_mut_slice()) {
                        let t = Tensor::from_slice(out.as_slice()).tanh();
                        t.copy_data(y.as_mut_slice(), t.numel());
                    }
                    y
                }
                Activation::Relu => {
                    kernels::relu(out.as_mut_slice());
                    out
                }
            };
            features = Some(out);
        }
        unreachable!("a network has a head")
    }

    /// Writes every parameter's gradient into the optimiser's views, for the loss's gradient
    /// `grad_out` (`[rows, out]`) with respect to the output of `pass` (on the rows `x`), as
    /// [`Mlp::backward`](super::Mlp::backward) computes them.
    pub(crate) fn backward(&self, x: &[f32], pass: &DirectPass, grad_out: &[f32]) {
        let rows = pass.rows;
        let mut grad = Buf::from_slice(grad_out);
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let input = if i == 0 { x } else { pass.hidden[i - 1].as_slice() };
            let g = Mat::new(grad.as_slice().as_ptr(), rows, layer.outputs);
            let (dw, db) = &layer.grads;
            // SAFETY: the gradient views hold `outputs × inputs` and `outputs` floats, apart from
            // every buffer read here.
            unsafe {
                addmm(view_floats(dw), g.t(), Mat::new(input.as_ptr(), rows, layer.inputs), false);
                let db = std::slice::from_raw_parts_mut(view_floats(db), layer.outputs);
                if column_sums(grad.as_slice(), rows, layer.outputs, db).is_none() {
                    let g = Tensor::from_slice(grad.as_slice()).view([rows as i64, layer.outputs as i64]);
                    let sums = g.sum_dim_intlist([0i64].as_slice(), false, None::<Kind>);
                    sums.copy_data(db, layer.outputs);
                }
            }
            if i == 0 {
                break;
            }
            let mut into = Buf::zeros(rows * layer.inputs);
            let w = Mat::new(view_floats(&layer.weight), layer.outputs, layer.inputs);
            // SAFETY: `into` is new and holds `rows × inputs` floats.
            unsafe { addmm(into.as_mut_slice().as_mut_ptr(), g, w, false) };
            let mut next = Buf::zeros(into.len);
            let y = pass.hidden[i - 1].as_slice();
            match self.activation {
                Activation::Tanh => {
                    if !kernels::tanh_backward_into(into.as_slice(), y, next.as_mut_slice()) {
                        let t = Tensor::tanh_backward(&Tensor::from_slice(into.as_slice()), &Tensor::from_slice(y));
                        t.copy_data(next.as_mut_slice(), t.numel());
                    }
                }
                Activation::Relu => kernels::relu_backward_into(into.as_slice(), y, next.as_mut_slice()),
            }
            grad = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::nn::{Mlp, MlpConfig, with_seed};
    use crate::agent::{sorted_variables, to_vec};

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|f| f.to_bits()).collect()
    }

    /// The reproduced cascade sum equals libtorch's `sum(0)` wherever it claims to apply.
    #[test]
    fn column_sums_equal_libtorch() {
        tch::set_num_threads(1);
        tch::manual_seed(4);
        for rows in [1usize, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 255, 256, 257, 1000, 5000] {
            for cols in [1usize, 2, 3, 4, 5, 7, 8, 9, 12, 16, 24, 31, 32, 33, 40, 64, 65, 100] {
                let x = Tensor::randn([rows as i64, cols as i64], tch::kind::FLOAT_CPU) * 10.0;
                let mut ours = vec![0.0f32; cols];
                let applies = column_sums(tensor_floats(&x), rows, cols, &mut ours).is_some();
                assert_eq!(applies, cols > 1 || rows >= 8, "{rows} x {cols}");
                if applies {
                    let expected = to_vec(&x.sum_dim_intlist([0i64].as_slice(), false, None::<Kind>));
                    assert_eq!(bits(&ours), bits(&expected), "{rows} x {cols}");
                }
            }
        }
    }

    /// A direct pass computes what the network's own libtorch passes compute, bit for bit: the
    /// training pass's output, the acting pass's output and features, and every parameter's
    /// gradient, for shapes on both sides of every threshold above (one libtorch thread: the
    /// reproducibility contract).
    #[test]
    fn direct_passes_equal_the_networks_own() {
        tch::set_num_threads(1);
        for (hidden, activation) in [
            (vec![64, 64], Activation::Tanh),
            (vec![16, 8, 12], Activation::Tanh),
            (vec![5, 7], Activation::Tanh),
            (vec![256, 256], Activation::Relu),
            (vec![16, 32], Activation::Relu),
            (vec![], Activation::Tanh),
        ] {
            for (inputs, outputs) in [(4, 2), (3, 1), (6, 3)] {
                let config = MlpConfig { hidden: hidden.clone(), activation, ortho_init: true };
                let vs = tch::nn::VarStore::new(tch::Device::Cpu);
                let net = with_seed(1, || Mlp::new(&(vs.root() / "net"), &config, inputs, outputs, 0.5));
                let mut opt = Adam::new(sorted_variables(&vs), 1e-3);
                let direct = DirectMlp::new(&opt, "net", hidden.len(), activation).expect("the network's layers");
                for rows in [1usize, 2, 3, 7, 8, 9, 33, 256] {
                    let what = format!("{hidden:?} {activation:?}, {inputs} -> {outputs}, {rows} rows");
                    let x = Tensor::randn([rows as i64, inputs as i64], tch::kind::FLOAT_CPU);
                    let (own, acts) = net.forward_cached(&x);
                    let pass = direct.forward(tensor_floats(&x), rows);
                    assert_eq!(bits(pass.output()), bits(&to_vec(&own)), "training pass: {what}");

                    let (out, features) = direct.infer(tensor_floats(&x), rows);
                    let own_features = tch::no_grad(|| net.features(&x));
                    let own_out = tch::no_grad(|| net.head_forward(&own_features));
                    assert_eq!(bits(out.as_slice()), bits(&to_vec(&own_out)), "acting pass: {what}");
                    let features = features.as_ref().map_or(tensor_floats(&x), |f| f.as_slice());
                    assert_eq!(bits(features), bits(&to_vec(&own_features)), "acting features: {what}");

                    let g = Tensor::randn([rows as i64, outputs as i64], tch::kind::FLOAT_CPU);
                    let mut sink = opt.gradient_views();
                    net.backward(&acts, &g, &mut sink);
                    drop(sink);
                    let reference = opt.gradients().copy();
                    opt.zero_grad();
                    direct.backward(tensor_floats(&x), &pass, tensor_floats(&g));
                    assert!(opt.gradients().equal(&reference), "gradients: {what}");
                }
            }
        }
    }
}
