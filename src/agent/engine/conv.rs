//! Convolutions as matrix products, under the engine's rules: a convolution's output element is
//! one chain, `b[o]` then `fma(patch[k], W[o][k], ·)` for `k` in PyTorch's weight order
//! (input channel, kernel row, kernel column), whichever instruction set runs it.
//!
//! Images are laid out as observations are, `(row, column, channel)` per sample ("NHWC"); a
//! weight is PyTorch's `[out channels, in channels, kernel, kernel]`, so that tensors move to and
//! from PyTorch (and Stable-Baselines3) unchanged. Zero padding reads zeros outside the image
//! (their products join the chain, as in PyTorch's unfolded patches), as PyTorch's padded
//! convolutions do
//! (the IMPALA network's; the Nature CNN's and MinAtar's have none). [`Pool`] is PyTorch's max
//! pooling (padding never wins; the first largest value of a window takes its gradient).
//! [`Flatten`] turns the last image into PyTorch's flattening order `(channel, row, column)`,
//! which the first linear layer after it reads.

use super::gemm::{self, Start, Strided};

/// A convolution's geometry: input `height x width x in_channels`, square kernels, a stride,
/// zero padding on every side.
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
    /// Zeros around the image, on each side.
    pub pad: usize,
}

/// Output positions along a side of `n` of a window `kernel` wide moving by `stride` over the
/// side padded with `pad` on both ends (`None` when it does not fit or the stride is zero).
fn windows(n: usize, kernel: usize, stride: usize, pad: usize) -> Option<usize> {
    let padded = n + 2 * pad;
    (n > 0 && stride > 0 && kernel > 0 && padded >= kernel).then(|| (padded - kernel) / stride + 1)
}

/// The input index along a side of `n` read by window `o`'s element `k`, or `None` in the padding.
fn read(o: usize, k: usize, stride: usize, pad: usize, n: usize) -> Option<usize> {
    (o * stride + k).checked_sub(pad).filter(|&i| i < n)
}

impl Conv {
    /// Output rows and columns (`None` when the kernel does not fit or the stride is zero).
    pub fn out_size(&self) -> Option<(usize, usize)> {
        let side = |n| windows(n, self.kernel, self.stride, self.pad);
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
    /// `c * kernel² + ky * kernel + kx` of a patch read from input `(y·s + ky - pad, x·s + kx -
    /// pad, c)` (zero in the padding).
    fn patches(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let (p, k, c) = (self.patch(), self.kernel, self.in_channels);
        let mut cols = vec![0.0; rows * self.positions() * p];
        self.walk_rows(rows, |position, ky, kx0, start, len| {
            let patch = &mut cols[position * p..(position + 1) * p];
            for (j, pixel) in x[start..start + len * c].chunks_exact(c).enumerate() {
                for (ch, &v) in pixel.iter().enumerate() {
                    patch[ch * k * k + ky * k + kx0 + j] = v;
                }
            }
        });
        cols
    }

    /// Calls `visit(position, ky, kx0, start, len)` for each kernel row `ky` of each patch of
    /// `rows` samples that reads the image: its kernel columns `kx0..kx0 + len` read the `len`
    /// pixels from input index `start` on (the others are padding). Positions come in order,
    /// each patch's kernel rows in order.
    fn walk_rows(&self, rows: usize, mut visit: impl FnMut(usize, usize, usize, usize, usize)) {
        let (oh, ow) = self.out_size().unwrap_or((0, 0));
        let (k, c, s, pad) = (self.kernel, self.in_channels, self.stride, self.pad);
        let mut position = 0;
        for sample in 0..rows {
            let base = sample * self.inputs();
            for oy in 0..oh {
                for ox in 0..ow {
                    let kx0 = pad.saturating_sub(ox * s);
                    let kx1 = k.min((self.width + pad).saturating_sub(ox * s));
                    for ky in 0..k {
                        let Some(y) = read(oy, ky, s, pad, self.height) else { continue };
                        if kx1 > kx0 {
                            visit(position, ky, kx0, base + (y * self.width + ox * s + kx0 - pad) * c, kx1 - kx0);
                        }
                    }
                    position += 1;
                }
            }
        }
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
        let (k, c) = (self.kernel, self.in_channels);
        let mut dx = vec![0.0; rows * self.inputs()];
        self.walk_rows(rows, |position, ky, kx0, start, len| {
            let patch = &dcols[position * p..(position + 1) * p];
            for (j, pixel) in dx[start..start + len * c].chunks_exact_mut(c).enumerate() {
                for (ch, v) in pixel.iter_mut().enumerate() {
                    *v += patch[ch * k * k + ky * k + kx0 + j];
                }
            }
        });
        Some(dx)
    }
}

/// Max pooling of `(row, column, channel)` images over square windows, PyTorch's `max_pool2d`:
/// padding is never the maximum, and ties go to the first value in the window (row by row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    /// Input rows.
    pub height: usize,
    /// Input columns.
    pub width: usize,
    /// Channels (the same out).
    pub channels: usize,
    /// The window's side.
    pub kernel: usize,
    /// The step between windows.
    pub stride: usize,
    /// Padding on each side (at most half the window, as PyTorch requires).
    pub pad: usize,
}

impl Pool {
    /// Output rows and columns (`None` when the window does not fit, the stride is zero or the
    /// padding exceeds half the window).
    pub fn out_size(&self) -> Option<(usize, usize)> {
        let side = |n| windows(n, self.kernel, self.stride, self.pad).filter(|_| 2 * self.pad <= self.kernel);
        Some((side(self.height)?, side(self.width)?))
    }

    /// Values a sample reads.
    pub fn inputs(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Values a sample gives.
    pub fn outputs(&self) -> usize {
        self.out_size().map_or(0, |(h, w)| h * w * self.channels)
    }

    /// For each output value of `rows` samples, the input index of its window's maximum.
    fn argmax(&self, x: &[f32], rows: usize) -> Vec<usize> {
        let (oh, ow) = self.out_size().unwrap_or((0, 0));
        let (k, s, pad, c) = (self.kernel, self.stride, self.pad, self.channels);
        let mut out = Vec::with_capacity(rows * self.outputs());
        for sample in 0..rows {
            let base = sample * self.inputs();
            for oy in 0..oh {
                for ox in 0..ow {
                    for ch in 0..c {
                        let mut best: Option<usize> = None;
                        for ky in 0..k {
                            let Some(y) = read(oy, ky, s, pad, self.height) else { continue };
                            for kx in 0..k {
                                let Some(x_) = read(ox, kx, s, pad, self.width) else { continue };
                                let at = base + (y * self.width + x_) * c + ch;
                                // PyTorch's rule: a larger value, or NaN, replaces the best so far.
                                if best.is_none_or(|b| x[at] > x[b] || x[at].is_nan()) {
                                    best = Some(at);
                                }
                            }
                        }
                        out.push(best.expect("padding at most half the window: every window reads the image"));
                    }
                }
            }
        }
        out
    }

    /// The forward pass over `rows` samples.
    pub fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        self.argmax(x, rows).into_iter().map(|at| x[at]).collect()
    }

    /// The input's gradient given the output's `g`: each output's gradient added to its window's
    /// maximum, outputs in order.
    pub fn backward(&self, x: &[f32], rows: usize, g: &[f32]) -> Vec<f32> {
        let mut dx = vec![0.0; rows * self.inputs()];
        for (at, &gi) in self.argmax(x, rows).into_iter().zip(g) {
            dx[at] += gi;
        }
        dx
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
