//! What a network reads before its chain or graph: a dictionary observation's parts, each a range
//! of the row's columns, through an encoder of its own (an image's convolutions) or as it is, the
//! results concatenated in order; or, before a graph of added layers, the image's encoder alone
//! (one part spanning the row).

use super::net::{Net, Pass};

/// One part of the row.
#[derive(Clone, Debug)]
pub struct Part {
    /// Its first column in the row.
    pub offset: usize,
    /// Its number of columns.
    pub width: usize,
    /// The encoder it goes through (none: its values as they are).
    pub encoder: Option<Net>,
}

impl Part {
    /// Values a row out: the encoder's outputs, or the part's own.
    fn outputs(&self) -> usize {
        self.encoder.as_ref().map_or(self.width, Net::outputs)
    }
}

/// The parts of a row, in order.
#[derive(Clone, Debug)]
pub struct Front {
    parts: Vec<Part>,
    inputs: usize,
}

/// What the parts' forward pass keeps: each encoder's input and pass, and the concatenation.
pub struct FrontPass {
    parts: Vec<Option<(Vec<f32>, Pass)>>,
    /// `[rows, outputs]`: what the chain reads.
    pub(super) joined: Vec<f32>,
}

impl Front {
    /// The parts of rows of `inputs` values; `None` when a part reads past the row or an
    /// encoder does not read the part's width.
    pub fn new(parts: Vec<Part>, inputs: usize) -> Option<Self> {
        let fits = |p: &Part| {
            p.offset.checked_add(p.width).is_some_and(|end| end <= inputs)
                && p.encoder.as_ref().is_none_or(|e| e.inputs() == p.width)
        };
        parts.iter().all(fits).then_some(Front { parts, inputs })
    }

    /// Values a row in.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Values a row out (the chain's input width).
    pub fn outputs(&self) -> usize {
        self.parts.iter().map(Part::outputs).sum()
    }

    /// The columns of `part` of `rows` rows of `x`, `[rows, width]`.
    fn gather(&self, part: &Part, x: &[f32], rows: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows * part.width);
        for row in x.chunks_exact(self.inputs).take(rows) {
            out.extend_from_slice(&row[part.offset..part.offset + part.width]);
        }
        out
    }

    /// The forward pass over `rows` rows of `x`: each encoder's pass (kept for the backward
    /// pass when `keep`), the parts joined row by row.
    pub fn forward(&self, params: &[f32], x: &[f32], rows: usize, keep: bool) -> FrontPass {
        let width = self.outputs();
        let mut joined = vec![0.0; rows * width];
        let mut kept = Vec::with_capacity(self.parts.len());
        let mut at = 0;
        for part in &self.parts {
            let input = self.gather(part, x, rows);
            let (out, pass) = match &part.encoder {
                Some(net) if keep => {
                    let pass = net.forward(params, &input, rows);
                    (pass.output().to_vec(), Some((input, pass)))
                }
                Some(net) => (net.infer(params, &input, rows), None),
                None => (input, None),
            };
            let w = part.outputs();
            for (to, from) in joined.chunks_exact_mut(width).zip(out.chunks_exact(w)) {
                to[at..at + w].copy_from_slice(from);
            }
            kept.push(pass);
            at += w;
        }
        FrontPass { parts: kept, joined }
    }

    /// The backward pass from the gradient `grad` of the joined values: each encoder's
    /// parameters' gradients written into `grads` (when given); the gradient with respect to the
    /// rows `x` when `want_input`.
    pub fn backward(
        &self,
        params: &[f32],
        pass: &FrontPass,
        grad: &[f32],
        mut grads: Option<&mut [f32]>,
        want_input: bool,
    ) -> Option<Vec<f32>> {
        let width = self.outputs();
        let rows = grad.len() / width.max(1);
        let mut dx = want_input.then(|| vec![0.0; rows * self.inputs]);
        let mut at = 0;
        for (part, kept) in self.parts.iter().zip(&pass.parts) {
            let w = part.outputs();
            let g: Vec<f32> = grad.chunks_exact(width).flat_map(|row| row[at..at + w].iter().copied()).collect();
            at += w;
            let part_dx = match (&part.encoder, kept) {
                (Some(net), Some((input, p))) if want_input => {
                    Some(net.input_gradient(params, input, p, &g, grads.as_deref_mut()))
                }
                (Some(net), Some((input, p))) => {
                    if let Some(grads) = grads.as_deref_mut() {
                        net.backward(params, input, p, &g, None, grads);
                    }
                    None
                }
                (Some(_), None) => unreachable!("a kept pass has every encoder's"),
                (None, _) => want_input.then_some(g),
            };
            if let (Some(dx), Some(part_dx)) = (dx.as_mut(), part_dx) {
                for (to, from) in dx.chunks_exact_mut(self.inputs).zip(part_dx.chunks_exact(part.width)) {
                    to[part.offset..part.offset + part.width].copy_from_slice(from);
                }
            }
        }
        dx
    }
}
