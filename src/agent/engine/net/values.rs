//! Values between a chain's ops, laid out by rows or by columns, and the linear layer that
//! computes either way with the same bits.

use super::super::gemm::{self, Start, Strided};

/// A value between ops: `[rows, width]` laid out by rows, or `[width, rows]` by columns (what a
/// linear layer computed transposed gives; one row is both).
#[derive(Default)]
pub(super) struct Value {
    pub(super) data: Vec<f32>,
    pub(super) by_rows: bool,
}

/// A linear layer's input, borrowed.
#[derive(Clone, Copy)]
pub(super) struct Input<'a> {
    pub(super) data: &'a [f32],
    pub(super) by_rows: bool,
}

impl Value {
    pub(super) fn as_input(&self) -> Input<'_> {
        Input { data: &self.data, by_rows: self.by_rows }
    }

    /// The values laid out by rows.
    pub(super) fn into_rows(self, rows: usize, scratch: &mut Vec<f32>) -> Vec<f32> {
        if self.by_rows || self.data.is_empty() {
            return self.data;
        }
        let width = self.data.len() / rows;
        gemm::transpose(&self.data, width, rows, scratch);
        std::mem::replace(scratch, self.data)
    }
}

/// `x Wᵀ + b` for `rows` rows: element `(r, o)` is the chain `b[o]`, then `fma(x[r][k], W[o][k], ·)`
/// for `k` in order, whichever way it is laid out. With no more rows than outputs it is computed
/// transposed, `W xᵀ`, so that the smaller operand is the one packed (none when `x` comes laid
/// out by columns, as the previous layer computed it), and the result is laid out by columns;
/// otherwise `Wᵀ` is packed and `x` read in its layout. An FMA's product does not depend on the
/// order of its factors, so the bits are the same every way.
pub(super) fn linear(
    x: Input<'_>,
    rows: usize,
    w: &[f32],
    b: &[f32],
    inputs: usize,
    outputs: usize,
    packed: &mut Vec<f32>,
) -> Value {
    let by_columns = !x.by_rows && rows > 1;
    if rows <= outputs {
        // outᵀ [outputs, rows], each row starting at its bias. Rows are padded to a whole number
        // of 8-wide vectors with zero columns (a batched evaluation's 10 episodes would leave two
        // columns to scalar chains): a column is read by its own chains only, so the real ones
        // are unchanged.
        let width = if rows > 1 { rows.next_multiple_of(8) } else { rows };
        let mut out_t = vec![0.0; outputs * width];
        for (o, &bias) in b.iter().enumerate() {
            out_t[o * width..(o + 1) * width].fill(bias);
        }
        let x_t = match (by_columns, width == rows) {
            (true, true) => x.data,
            (true, false) => {
                packed.clear();
                packed.resize(inputs * width, 0.0);
                for (to, from) in packed.chunks_exact_mut(width).zip(x.data.chunks_exact(rows)) {
                    to[..rows].copy_from_slice(from);
                }
                packed.as_slice()
            }
            (false, _) if rows == 1 => x.data,
            (false, _) => {
                gemm::transpose_padded(x.data, rows, inputs, width, packed);
                packed.as_slice()
            }
        };
        gemm::gemm(outputs, width, inputs, Strided::rows(w, inputs), x_t, &mut out_t, Start::Existing);
        if width != rows {
            for o in 0..outputs {
                out_t.copy_within(o * width..o * width + rows, o * rows);
            }
            out_t.truncate(outputs * rows);
        }
        Value { data: out_t, by_rows: rows == 1 }
    } else {
        let a = if by_columns { Strided::transposed(x.data, rows) } else { Strided::rows(x.data, inputs) };
        let mut out = vec![0.0; rows * outputs];
        gemm::transpose(w, outputs, inputs, packed);
        gemm::gemm(rows, outputs, inputs, a, packed, &mut out, Start::Bias(b));
        Value { data: out, by_rows: true }
    }
}
