//! Adam whose state is named tensors (so that checkpoints hold it and training resumes where it
//! stopped), with gradient clipping by global norm and per-parameter learning-rate scales (how
//! transfer gives copied parameters a smaller step than new ones, or freezes them).

use tch::{Kind, Tensor};

/// One optimised parameter and its moment estimates.
struct Slot {
    name: String,
    param: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    /// Multiplies the learning rate; 0 freezes the parameter.
    lr_scale: f64,
}

/// Adam (Kingma & Ba), with PyTorch's bias correction and epsilon placement.
pub struct Adam {
    slots: Vec<Slot>,
    steps: i64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl Adam {
    /// Optimises `params` (name, tensor), in the given order.
    pub fn new(params: Vec<(String, Tensor)>, eps: f64) -> Self {
        let slots = params
            .into_iter()
            .map(|(name, param)| Slot {
                exp_avg: param.zeros_like(),
                exp_avg_sq: param.zeros_like(),
                name,
                param,
                lr_scale: 1.0,
            })
            .collect();
        Adam { slots, steps: 0, beta1: 0.9, beta2: 0.999, eps }
    }

    /// The names of the optimised parameters.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|s| s.name.as_str())
    }

    /// Scales the learning rate of every parameter for which `select(name)` holds.
    pub fn set_lr_scale(&mut self, select: impl Fn(&str) -> bool, scale: f64) {
        for slot in self.slots.iter_mut().filter(|s| select(&s.name)) {
            slot.lr_scale = scale;
        }
    }

    /// Back-propagates `loss`, clips the gradients' global norm to `max_grad_norm` when given,
    /// and takes one step of size `lr`.
    pub fn backward_step(&mut self, loss: &Tensor, lr: f64, max_grad_norm: Option<f64>) {
        self.zero_grad();
        loss.backward();
        if let Some(max) = max_grad_norm {
            self.clip_grad_norm(max);
        }
        self.step(lr);
    }

    fn zero_grad(&mut self) {
        for slot in &mut self.slots {
            let mut grad = slot.param.grad();
            if grad.defined() {
                let _ = grad.zero_();
            }
        }
    }

    /// Scales gradients so that their global L2 norm is at most `max` (as
    /// `torch.nn.utils.clip_grad_norm_`); returns the norm before clipping.
    fn clip_grad_norm(&mut self, max: f64) -> f64 {
        let grads: Vec<Tensor> = self.slots.iter().map(|s| s.param.grad()).filter(|g| g.defined()).collect();
        if grads.is_empty() {
            return 0.0;
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
        let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
        let coef = max / (total + 1e-6);
        if coef < 1.0 {
            for mut g in grads {
                let _ = g.g_mul_scalar_(coef);
            }
        }
        total
    }

    fn step(&mut self, lr: f64) {
        self.steps += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let bias1 = 1.0 - b1.powi(self.steps as i32);
        let bias2_sqrt = (1.0 - b2.powi(self.steps as i32)).sqrt();
        tch::no_grad(|| {
            for slot in &mut self.slots {
                let grad = slot.param.grad();
                if !grad.defined() || slot.lr_scale == 0.0 {
                    continue;
                }
                let _ = slot.exp_avg.lerp_(&grad, 1.0 - b1);
                let _ = slot.exp_avg_sq.g_mul_scalar_(b2);
                let _ = slot.exp_avg_sq.addcmul_(&(&grad * (1.0 - b2)), &grad);
                let mut denom = slot.exp_avg_sq.sqrt();
                let _ = denom.g_div_scalar_(bias2_sqrt);
                let _ = denom.g_add_scalar_(self.eps);
                let update = slot.exp_avg.divide(&denom);
                let _ = slot.param.g_add_(&(update * (-lr * slot.lr_scale / bias1)));
            }
        });
    }

    /// The optimiser's state as named tensors under `prefix`: `{prefix}.{param}.exp_avg`,
    /// `{prefix}.{param}.exp_avg_sq` and `{prefix}.steps`.
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.slots.len() + 1);
        for slot in &self.slots {
            out.push((format!("{prefix}.{}.exp_avg", slot.name), slot.exp_avg.shallow_clone()));
            out.push((format!("{prefix}.{}.exp_avg_sq", slot.name), slot.exp_avg_sq.shallow_clone()));
        }
        out.push((format!("{prefix}.steps"), Tensor::from_slice(&[self.steps]).to_kind(Kind::Int64)));
        out
    }

    /// Clears the moments and the step count (transfer's "reset the optimiser").
    pub fn reset(&mut self) {
        self.steps = 0;
        tch::no_grad(|| {
            for slot in &mut self.slots {
                let _ = slot.exp_avg.zero_();
                let _ = slot.exp_avg_sq.zero_();
            }
        });
    }

    /// Restores what [`Adam::state`] saved; `get` looks a tensor up by name.
    pub fn load_state(&mut self, prefix: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), String> {
        tch::no_grad(|| {
            for slot in &mut self.slots {
                for (suffix, dst) in [("exp_avg", &mut slot.exp_avg), ("exp_avg_sq", &mut slot.exp_avg_sq)] {
                    let name = format!("{prefix}.{}.{suffix}", slot.name);
                    let src = get(&name).ok_or_else(|| format!("missing tensor `{name}`"))?;
                    dst.copy_(&src);
                }
            }
            let name = format!("{prefix}.steps");
            let steps = get(&name).ok_or_else(|| format!("missing tensor `{name}`"))?;
            self.steps = steps.int64_value(&[0]);
            Ok(())
        })
    }
}
