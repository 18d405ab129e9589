//! The optimiser, Adam or RMSprop (A2C's), whose state is named tensors (checkpoints hold it and
//! training resumes where it stopped), with gradient clipping by global norm over what trains and
//! per-parameter learning-rate scales (transfer's smaller steps for copied parameters, freezes).
//!
//! Speed: networks this small spend their time in per-operation overhead, not arithmetic. The
//! optimiser moves its parameters into one flat buffer (each parameter's data a view of it) and
//! aliases their gradients to one flat gradient buffer, so that zeroing, clipping and the update
//! are a few operations on two vectors. Backward passes accumulate into the aliased gradients in
//! place; every step checks that the aliases still hold and re-establishes any that do not.

mod flat;

use tch::{Kind, Tensor};

use super::engine::math;
use super::error::{AgentError, fetch_tensor};
pub(crate) use flat::FlatParams;

/// The update rule.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rule {
    /// Adam (Kingma & Ba), with PyTorch's bias correction and epsilon placement.
    Adam { beta1: f64, beta2: f64 },
    /// RMSprop as PyTorch's (no momentum, not centred): `v ← α v + (1 - α) g²`,
    /// `θ ← θ - lr g / (√v + ε)`; `v` lives where Adam keeps its second moment.
    RmsProp { alpha: f64 },
}

/// How often an optimiser that does not clip takes its gradients' norm (for the logs).
pub const NORM_EVERY: i64 = 8;

/// Adam or RMSprop over a flat buffer of parameters (see the module's docs).
pub struct Optimizer {
    params: FlatParams,
    grad: Tensor,
    /// Each parameter's view of `grad`, in slot order (made once: a view costs a dispatch).
    grad_views: Vec<Tensor>,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    /// Per-element learning-rate scale; `None` while every scale is 1.
    lr_scale: Option<Tensor>,
    /// Scales that change at an environment step: `(step, parameter names, new scale)`.
    pending: Vec<(u64, Vec<String>, f64)>,
    /// L2-SP: the values to stay near, a 0/1 mask of the parameters it applies to, and the
    /// coefficient of `coef * ||θ - θ₀||²`.
    anchor: Option<(Tensor, Tensor, f64)>,
    steps: i64,
    rule: Rule,
    eps: f64,
    /// The global norm of the last step's gradients before clipping (what training logs show).
    last_norm: Option<f64>,
}

impl Optimizer {
    /// Adam (β = 0.9, 0.999) over `params` (name, tensor), in the given order. Their data moves
    /// into the optimiser's flat buffer (values unchanged; other handles to the same tensors see
    /// it).
    pub fn adam(params: Vec<(String, Tensor)>, eps: f64) -> Self {
        Self::with_rule(params, Rule::Adam { beta1: 0.9, beta2: 0.999 }, eps)
    }

    /// RMSprop with smoothing `alpha` over `params`, as [`Optimizer::adam`].
    pub fn rms_prop(params: Vec<(String, Tensor)>, alpha: f64, eps: f64) -> Self {
        Self::with_rule(params, Rule::RmsProp { alpha }, eps)
    }

    fn with_rule(params: Vec<(String, Tensor)>, rule: Rule, eps: f64) -> Self {
        let params = FlatParams::new(params);
        let grad = params.flat.zeros_like();
        let grad_views =
            params.slots.iter().map(|s| grad.narrow(0, s.offset, s.numel).view(s.shape.as_slice())).collect();
        Optimizer {
            grad,
            grad_views,
            exp_avg: params.flat.zeros_like(),
            exp_avg_sq: params.flat.zeros_like(),
            params,
            lr_scale: None,
            pending: Vec::new(),
            anchor: None,
            steps: 0,
            rule,
            eps,
            last_norm: None,
        }
    }

    /// The optimised parameters, laid out in one flat buffer.
    pub(crate) fn params(&self) -> &FlatParams {
        &self.params
    }

    /// Scales the learning rate of every parameter for which `select(name)` holds (0 freezes).
    pub fn set_lr_scale(&mut self, select: impl Fn(&str) -> bool, scale: f64) {
        let scales = self.lr_scale.get_or_insert_with(|| self.params.flat.ones_like());
        for slot in self.params.slots.iter().filter(|s| select(&s.name)) {
            let _ = scales.narrow(0, slot.offset, slot.numel).fill_(scale);
        }
    }

    /// Sets the scale of the parameters `names` to `scale` once [`Optimizer::advance`] reaches
    /// environment step `step` (a freeze that ends).
    pub fn schedule_lr_scale(&mut self, step: u64, names: Vec<String>, scale: f64) {
        self.pending.push((step, names, scale));
    }

    /// Applies the scheduled scales due at environment step `step`; agents call it before each
    /// update.
    pub fn advance(&mut self, step: u64) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending).into_iter().partition(|p| p.0 <= step);
        self.pending = later;
        for (_, names, scale) in due {
            self.set_lr_scale(|n| names.iter().any(|m| m == n), scale);
        }
    }

    /// Adds `coef * ||θ - θ₀||²` to the loss of every parameter for which `select(name)` holds,
    /// `θ₀` being its value now (L2-SP: Li, Grandvalet & Davoine, 2018).
    pub fn set_anchor(&mut self, select: impl Fn(&str) -> bool, coef: f64) {
        self.set_weighted_anchor(|n| select(n).then(|| Tensor::from(1f32)), coef);
    }

    /// Adds `coef * Σ w ⊙ (θ - θ₀)²` to the loss, `θ₀` being the values now and `w` each
    /// parameter's weights (`weight(name)`: one per element, or one for all; none: no pull). EWC's
    /// and MAS's importance, or L2-SP's ones.
    pub fn set_weighted_anchor(&mut self, weight: impl Fn(&str) -> Option<Tensor>, coef: f64) {
        let mask = self.params.flat.zeros_like();
        for slot in &self.params.slots {
            if let Some(w) = weight(&slot.name) {
                let mut view = mask.narrow(0, slot.offset, slot.numel);
                view.copy_(&w.to_kind(Kind::Float).reshape([-1]).expand([slot.numel], false));
            }
        }
        self.anchor = Some((self.params.flat.detach().copy(), mask, coef));
    }

    /// Sets per-element learning-rate scales of the parameter `name` (`scales` of its shape; 0
    /// freezes an element: PackNet's weights of earlier tasks).
    pub fn set_element_lr_scales(&mut self, name: &str, scales: &Tensor) {
        let flat = self.lr_scale.get_or_insert_with(|| self.params.flat.ones_like());
        if let Some(slot) = self.params.slots.iter().find(|s| s.name == name) {
            flat.narrow(0, slot.offset, slot.numel).copy_(&scales.to_kind(Kind::Float).reshape([-1]));
        }
    }

    /// Back-propagates `loss`, clips the gradients' global norm to `max_grad_norm` when given,
    /// and takes one step of size `lr`.
    pub fn backward_step(&mut self, loss: &Tensor, lr: f64, max_grad_norm: Option<f64>) {
        self.compute_gradients(loss);
        self.step_with_gradients(lr, max_grad_norm);
    }

    /// Back-propagates `loss` into the gradient buffer (finish with
    /// [`Optimizer::step_with_gradients`]).
    pub fn compute_gradients(&mut self, loss: &Tensor) {
        let _ = self.grad.zero_();
        loss.backward();
        self.gather_grads();
    }

    /// The flat gradient buffer, in parameter order.
    pub fn gradients(&self) -> &Tensor {
        &self.grad
    }

    /// Starts a step whose gradients the engine computes: clears the gradient buffer and returns
    /// the parameters' values and the gradient buffer (both in slot order; see
    /// [`FlatParams::slot`]). Finish with [`Optimizer::step_with_gradients`].
    pub(crate) fn values_and_gradients(&mut self) -> (&[f32], &mut [f32]) {
        // SAFETY: both are this optimiser's own buffers, distinct allocations; `&mut self`
        // excludes any other borrow of them while these live.
        let grads = unsafe { floats_mut(&self.grad) };
        grads.fill(0.0);
        (self.params.values(), grads)
    }

    /// Clips and applies the gradients in the buffer (written by [`Optimizer::compute_gradients`] or
    /// through [`Optimizer::values_and_gradients`]).
    pub fn step_with_gradients(&mut self, lr: f64, max_grad_norm: Option<f64>) {
        if let Some((anchor, mask, coef)) = &self.anchor {
            // SAFETY: the optimiser's own buffers, distinct, borrowed under `&mut self`.
            let (g, p, a, m) =
                unsafe { (floats_mut(&self.grad), floats(&self.params.flat), floats(anchor), floats(mask)) };
            let coef = (2.0 * coef) as f32;
            for i in 0..g.len() {
                g[i] += (p[i] - a[i]) * m[i] * coef;
            }
        }
        // Clipping needs the norm every step; without it, the logs take one every
        // `NORM_EVERY` steps (a pass over every gradient costs SAC's small networks about 1 %).
        let norm = (max_grad_norm.is_some() || self.steps % NORM_EVERY == 0).then(|| self.grad_norm());
        self.last_norm = norm;
        if let (Some(max), Some(norm)) = (max_grad_norm, norm) {
            // Scales the gradients down to a global norm of `max`.
            let coef = max / (norm + 1e-6);
            if coef < 1.0 {
                // SAFETY: the optimiser's own gradient buffer, borrowed under `&mut self`.
                math::scale_(unsafe { floats_mut(&self.grad) }, coef as f32);
            }
        }
        self.step(lr);
    }

    /// The gradients' global norm over the parameters that train (fixed lanes, `f64`).
    fn grad_norm(&self) -> f64 {
        // SAFETY: the optimiser's own gradient and scale buffers, read under `&self`.
        let (g, scale) = unsafe { (floats(&self.grad), self.lr_scale.as_ref().map(|s| floats(s))) };
        match scale.filter(|s| s.contains(&0.0)) {
            Some(scale) => math::sum_squares_where(g, scale),
            None => math::sum_squares(g),
        }
        .sqrt()
    }

    /// The global norm of the last step's gradients before clipping, over the parameters that
    /// train: every step that clips, every [`NORM_EVERY`]th of those that do not (`None` between
    /// and before the first step).
    pub fn last_grad_norm(&self) -> Option<f64> {
        self.last_norm
    }

    /// How many weights have learning rate 0 (frozen by transfer), once any scale was set;
    /// `None` while every scale is 1.
    pub fn frozen(&self) -> Option<usize> {
        let scale = self.lr_scale.as_ref()?;
        // SAFETY: the optimiser's own scale buffer, read under `&self`.
        let scale = unsafe { floats(scale) };
        Some(scale.iter().filter(|&&s| s == 0.0).count())
    }

    /// How many weights it optimises.
    pub fn weights(&self) -> usize {
        self.params.flat.numel()
    }

    /// Makes sure every parameter's gradient lives in the flat gradient buffer. The first
    /// backward pass creates gradients as fresh tensors: their values are copied in and the
    /// gradient re-pointed at its view, after which backward passes accumulate in place.
    fn gather_grads(&mut self) {
        for (slot, view) in self.params.slots.iter().zip(&self.grad_views) {
            let mut g = slot.param.grad();
            if g.defined() && g.data_ptr() != view.data_ptr() {
                tch::no_grad(|| view.shallow_clone().copy_(&g));
                g.set_data(view);
            }
        }
    }

    /// One step in the engine ([`math::AdamStep`], [`math::RmsPropStep`]: every element on its
    /// own, correctly rounded operations only, so the same bits on every CPU).
    fn step(&mut self, lr: f64) {
        self.steps += 1;
        // SAFETY: the optimiser's own buffers, distinct allocations, borrowed under `&mut self`.
        let (grad, exp_avg, exp_avg_sq, params, lr_scale) = unsafe {
            (
                floats(&self.grad),
                floats_mut(&self.exp_avg),
                floats_mut(&self.exp_avg_sq),
                floats_mut(&self.params.flat),
                self.lr_scale.as_ref().map(|s| floats(s)),
            )
        };
        match self.rule {
            Rule::Adam { beta1: b1, beta2: b2 } => {
                let bias1 = 1.0 - b1.powi(self.steps as i32);
                let bias2_sqrt = (1.0 - b2.powi(self.steps as i32)).sqrt();
                math::AdamStep {
                    grad,
                    exp_avg,
                    exp_avg_sq,
                    params,
                    lr_scale,
                    one_minus_b1: (1.0 - b1) as f32,
                    b2: b2 as f32,
                    one_minus_b2: (1.0 - b2) as f32,
                    bias2_sqrt: bias2_sqrt as f32,
                    eps: self.eps as f32,
                    step: (-lr / bias1) as f32,
                }
                .run()
            }
            Rule::RmsProp { alpha } => math::RmsPropStep {
                grad,
                square_avg: exp_avg_sq,
                params,
                lr_scale,
                alpha: alpha as f32,
                one_minus_alpha: (1.0 - alpha) as f32,
                eps: self.eps as f32,
                step: -lr as f32,
            }
            .run(),
        }
    }

    /// The optimiser's state as named tensors under `prefix`: `{prefix}.{param}.exp_avg`,
    /// `{prefix}.{param}.exp_avg_sq` and `{prefix}.steps`.
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.slots.len() + 1);
        for slot in &self.params.slots {
            for (suffix, flat) in [("exp_avg", &self.exp_avg), ("exp_avg_sq", &self.exp_avg_sq)] {
                let view = flat.narrow(0, slot.offset, slot.numel).view(slot.shape.as_slice());
                out.push((format!("{prefix}.{}.{suffix}", slot.name), view));
            }
        }
        out.push((format!("{prefix}.steps"), Tensor::from_slice(&[self.steps])));
        out
    }

    /// Carries another optimiser's state (what [`Optimizer::state`] saved under `prefix`) for the
    /// parameters `names` and the step count; the other moments stay as they are. Returns how
    /// many tensors were carried.
    pub fn carry_state(
        &mut self,
        prefix: &str,
        names: &[String],
        get: &mut dyn FnMut(&str) -> Option<Tensor>,
    ) -> usize {
        let mut carried = 0;
        for (name, view) in self.state(prefix) {
            let Some(src) = get(&name).filter(|s| s.size() == view.size()) else { continue };
            if name == format!("{prefix}.steps") {
                self.steps = src.int64_value(&[0]);
            } else if names
                .iter()
                .any(|p| name == format!("{prefix}.{p}.exp_avg") || name == format!("{prefix}.{p}.exp_avg_sq"))
            {
                tch::no_grad(|| view.shallow_clone().copy_(&src));
            } else {
                continue;
            }
            carried += 1;
        }
        carried
    }

    /// Restores what [`Optimizer::state`] saved; `get` looks a tensor up by name.
    pub fn load_state(&mut self, prefix: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        for (name, view) in self.state(prefix) {
            let src = fetch_tensor(get, &name, &view.size())?;
            if name.ends_with(".steps") {
                self.steps = src.int64_value(&[0]);
            } else {
                tch::no_grad(|| view.shallow_clone().copy_(&src));
            }
        }
        Ok(())
    }
}

/// The floats of a contiguous CPU float tensor.
///
/// # Safety
/// The caller owns `t` (or a value that does) and no write to its data, through any handle,
/// happens while the slice lives.
unsafe fn floats(t: &Tensor) -> &[f32] {
    assert!(t.kind() == Kind::Float && t.is_contiguous(), "a contiguous float buffer");
    // SAFETY: `t` holds `numel` contiguous floats on the CPU, alive as long as `t`; the caller
    // excludes writes.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel()) }
}

/// The floats of a contiguous CPU float tensor, to write.
///
/// # Safety
/// The caller owns `t` (or a value that does) and no other access to its data, through any
/// handle, happens while the slice lives.
#[allow(clippy::mut_from_ref)]
unsafe fn floats_mut(t: &Tensor) -> &mut [f32] {
    assert!(t.kind() == Kind::Float && t.is_contiguous(), "a contiguous float buffer");
    // SAFETY: as in `floats`; the caller excludes every other access.
    unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, t.numel()) }
}

#[cfg(test)]
mod tests;
