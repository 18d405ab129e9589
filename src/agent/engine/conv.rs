//! Convolutions as matrix products, under the engine's rules: a convolution's output element is
//! one chain, `b[o]` then `fma(patch[k], W[o][k], ·)` for `k` in PyTorch's weight order
//! (input channel, kernel row, kernel column), whichever instruction set runs it.
//!
//! Images are laid out as observations are, `(row, column, channel)` per sample ("NHWC"); a
//! weight is PyTorch's `[out channels, in channels, kernel, kernel]`, so that tensors move to and
//! from PyTorch (and Stable-Baselines3) unchanged. No padding (the Nature CNN's and MinAtar's
//! networks have none). [`Flatten`] turns the last image into PyTorch's flattening order
//! `(channel, row, column)`, which the first linear layer after it reads.

use super::gemm::{self, Start, Strided};

/// A convolution's geometry: input `height x width x in_channels`, square kernels, a stride.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv {
    /// Input rows.
    pub height: usize,
    /// Input columns.
    pub width: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels (the weight's first dimension).
    pub out_channels: usize,
    /// The kernel's side.
    pub kernel: usize,
    /// The step between two windows.
    pub stride: usize,
}

impl Conv {
    /// Output rows and columns (`None` when the kernel does not fit or the stride is zero).
    pub fn out_size(&self) -> Option<(usize, usize)> {
        let side = |n: usize| (self.stride > 0 && n >= self.kernel).then(|| (n - self.kernel) / self.stride + 1);
        Some((side(self.height)?, side(self.width)?))
    }

    /// Values a sample reads.
    pub fn inputs(&self) -> usize {
        self.height * self.width * self.in_channels
    }

    /// Values a sample gives: `out rows x out columns x out channels`.
    pub fn outputs(&self) -> usize {
        self.out_size().map_or(0, |(h, w)| h * w * self.out_channels)
    }

    /// Weights of the kernel per output channel (a patch's length).
    pub fn patch(&self) -> usize {
        self.in_channels * self.kernel * self.kernel
    }

    /// Output positions per sample.
    fn positions(&self) -> usize {
        self.out_size().map_or(0, |(h, w)| h * w)
    }

    /// Each output position's patch: `[rows x positions, patch]`, element
    /// `c * kernel² + ky * kernel + kx` of a patch read from input `(y·s + ky, x·s + kx, c)`.
    fn patches(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let (oh, ow) = self.out_size().unwrap_or((0, 0));
        let (k, c, s) = (self.kernel, self.in_channels, self.stride);
        let mut cols = vec![0.0; rows * oh * ow * self.patch()];
        let mut out = cols.chunks_exact_mut(self.patch());
        for sample in x.chunks_exact(self.inputs()).take(rows) {
            for oy in 0..oh {
                for ox in 0..ow {
                    let patch = out.next().expect("one patch per position");
                    for ky in 0..k {
                        let row = &sample[((oy * s + ky) * self.width + ox * s) * c..][..k * c];
                        for (kx, pixel) in row.chunks_exact(c).enumerate() {
                            for (ch, &v) in pixel.iter().enumerate() {
                                patch[ch * k * k + ky * k + kx] = v;
                            }
                        }
                    }
                }
            }
        }
        cols
    }

    /// The forward pass: `[rows, out rows, out columns, out channels]` from `x`
    /// (`[rows, height, width, in channels]`), `w` and `b` as PyTorch lays them out.
    pub fn forward(&self, x: &[f32], rows: usize, w: &[f32], b: &[f32], packed: &mut Vec<f32>) -> Vec<f32> {
        let (p, n) = (self.patch(), self.out_channels);
        let cols = self.patches(x, rows);
        let m = rows * self.positions();
        gemm::transpose(w, n, p, packed);
        let mut out = vec![0.0; m * n];
        gemm::gemm(m, n, p, Strided::rows(&cols, p), packed, &mut out, Start::Bias(b));
        out
    }

    /// The backward pass given the gradient `g` of the output (`[rows, positions, out
    /// channels]`): writes the weight's and the bias's gradients (not accumulated) when `grads`
    /// is given, and returns the input's gradient when `want_input`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        x: &[f32],
        rows: usize,
        w: &[f32],
        g: &[f32],
        grads: Option<(&mut [f32], &mut [f32])>,
        want_input: bool,
    ) -> Option<Vec<f32>> {
        let (p, n) = (self.patch(), self.out_channels);
        let m = rows * self.positions();
        assert_eq!(g.len(), m * n, "a gradient for each output");
        if let Some((dw, db)) = grads {
            // dW = gᵀ · patches: element (o, k) one chain over the positions of every sample.
            let cols = self.patches(x, rows);
            gemm::gemm(n, p, m, Strided::transposed(g, n), &cols, dw, Start::Zero);
            super::net::column_sums(g, m, n, db);
        }
        if !want_input {
            return None;
        }
        // The patches' gradient g · W, then each added back where its value was read from, in
        // the order positions and patch elements come (one fixed order of additions).
        let mut dcols = vec![0.0; m * p];
        gemm::gemm(m, p, n, Strided::rows(g, n), w, &mut dcols, Start::Zero);
        let (oh, ow) = self.out_size().unwrap_or((0, 0));
        let (k, c, s) = (self.kernel, self.in_channels, self.stride);
        let mut dx = vec![0.0; rows * self.inputs()];
        let mut patches = dcols.chunks_exact(p);
        for sample in dx.chunks_exact_mut(self.inputs()) {
            for oy in 0..oh {
                for ox in 0..ow {
                    let patch = patches.next().expect("one patch per position");
                    for ky in 0..k {
                        let row = &mut sample[((oy * s + ky) * self.width + ox * s) * c..][..k * c];
                        for (kx, pixel) in row.chunks_exact_mut(c).enumerate() {
                            for (ch, v) in pixel.iter_mut().enumerate() {
                                *v += patch[ch * k * k + ky * k + kx];
                            }
                        }
                    }
                }
            }
        }
        Some(dx)
    }
}

/// An image `(row, column, channel)` flattened in PyTorch's `(channel, row, column)` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flatten {
    /// Positions per sample (rows x columns).
    pub positions: usize,
    /// Channels.
    pub channels: usize,
}

impl Flatten {
    /// Values per sample.
    pub fn width(&self) -> usize {
        self.positions * self.channels
    }

    /// `(position, channel)` to `(channel, position)` per sample.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; x.len()];
        for (from, to) in x.chunks_exact(self.width()).zip(out.chunks_exact_mut(self.width())) {
            permute(from, self.positions, self.channels, to);
        }
        out
    }

    /// The gradient back through the permutation.
    pub fn backward(&self, g: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; g.len()];
        for (from, to) in g.chunks_exact(self.width()).zip(out.chunks_exact_mut(self.width())) {
            permute(from, self.channels, self.positions, to);
        }
        out
    }
}

/// `to[j][i] = from[i][j]` for a `rows x cols` block (a permutation: no arithmetic).
fn permute(from: &[f32], rows: usize, cols: usize, to: &mut [f32]) {
    for (i, row) in from.chunks_exact(cols).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            to[j * rows + i] = v;
        }
    }
}

#[cfg(test)]
mod tests;
