//! What protects an agent's earlier tasks when it moves on to the next task of a sequence:
//! EWC's and MAS's importance-weighted anchors, and PackNet's per-task masks. A sequence study
//! (`study::continual`) moves the agent at the end of one task into the next with
//! [`super::prepare`] (the method's strategy: fine-tuning with Continual World's resets, L2,
//! distillation, ...), then applies its [`Protect`] here.
//!
//! Importance is computed by hand in `f64` (forward and backward passes of each network, one
//! state at a time, in a fixed order), so it is the same on every CPU; `tests/continual.rs`
//! checks it against autograd.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::TransferError;
use crate::agent::nn::Activation;
use crate::agent::to_vec;

mod packnet;
pub use packnet::{Owners, free_owners, freeze, normalizers, prune, retrain_only, with_task_weights};
use crate::agent::{Agent, Algo};
use crate::env::Env;

/// How a method protects earlier tasks, on top of its strategy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Protect {
    /// Elastic weight consolidation (Kirkpatrick et al. 2017): the loss gains
    /// `lambda / 2 · Σ F ⊙ (θ - θ*)²`, `θ*` the weights at the task change and `F` the diagonal
    /// Fisher information of the networks' outputs on states the agent visits at the end of each
    /// task, summed over the tasks so far (Continual World's accumulation).
    Ewc {
        /// The penalty's weight.
        lambda: f64,
        /// States the importance is averaged over.
        #[serde(default = "default_samples")]
        samples: usize,
    },
    /// Memory aware synapses (Aljundi et al. 2018): as EWC with `Ω = mean |∂‖f(s)‖² / ∂θ|`, the
    /// sensitivity of the networks' squared output norm.
    Mas {
        /// The penalty's weight.
        lambda: f64,
        /// States the importance is averaged over.
        #[serde(default = "default_samples")]
        samples: usize,
    },
    /// PackNet (Mallya & Lazebnik 2018): at the end of each task the largest of the free weights
    /// (a share `keep` of each matrix's free weights [default: an equal share, `1 / tasks left`])
    /// become the task's, are retrained alone for `retrain` steps and are frozen from then on;
    /// the rest are set to zero and free for the next task. Biases are the first task's. Task `j` is evaluated with the weights of tasks
    /// `0..=j` only (the task id is known at evaluation, as in Continual World).
    PackNet {
        /// The share of each weight matrix's free weights a task keeps.
        #[serde(default)]
        keep: Option<f64>,
        /// Environment steps of retraining the kept weights after pruning (the pruned ones at
        /// zero, the earlier tasks' frozen), counted in the task's steps [default: a tenth of
        /// the task's budget].
        #[serde(default)]
        retrain: Option<u64>,
    },
}

fn default_samples() -> usize {
    1000
}

impl Protect {
    /// The name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Protect::Ewc { .. } => "EWC",
            Protect::Mas { .. } => "MAS",
            Protect::PackNet { .. } => "PackNet",
        }
    }

    /// Refuses values no run could use, naming the field.
    pub fn validate(&self) -> Result<(), TransferError> {
        let bad = |field: &'static str, message: &str| Err(TransferError::Strategy { field, message: message.into() });
        match *self {
            Protect::Ewc { lambda, samples } | Protect::Mas { lambda, samples } => {
                if !(lambda.is_finite() && lambda > 0.0) {
                    return bad("protect.lambda", "must be finite and > 0");
                }
                if !(1..=100_000).contains(&samples) {
                    return bad("protect.samples", "must be between 1 and 100000");
                }
            }
            Protect::PackNet { keep: Some(k), .. } if !(k > 0.0 && k <= 1.0) => {
                return bad("protect.keep", "must be in (0, 1]");
            }
            Protect::PackNet { .. } => {}
        }
        Ok(())
    }

    /// Whether the algorithm's networks are ones this protection reads: EWC and MAS compute
    /// importance for PPO's and A2C's actor and critic and DQN's Q-network; PackNet masks any.
    pub fn check_algo(&self, algo: Algo) -> Result<(), TransferError> {
        match (self, algo) {
            (Protect::PackNet { .. }, _) | (_, Algo::Ppo | Algo::A2c | Algo::Dqn) => Ok(()),
            _ => Err(TransferError::Strategy {
                field: "protect",
                message: format!(
                    "{}: importance is computed for PPO's and A2C's actor and critic and DQN's Q-network; {algo}'s \
                     critics take actions as inputs, which it does not yet handle (use PackNet or L2)",
                    self.name()
                ),
            }),
        }
    }
}

/// Named importance tensors, one per protected weight (the weights' shapes, `f32`).
pub type Importance = Vec<(String, Tensor)>;

/// `n` observations the agent visits acting greedily on `env`, episodes seeded `seed`,
/// `seed + 1`, ...: the states importance is measured on.
pub fn visited_states(env: &mut dyn Env, agent: &dyn Agent, n: usize, seed: u64) -> Result<Vec<f32>, TransferError> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut episode = 0;
    let (mut obs, _) = env.reset(Some(seed))?;
    while out.len() < n * obs.len() {
        out.extend_from_slice(&obs);
        let action = agent.act(&obs, true, &mut rng).remove(0);
        let step = env.step(&action)?;
        obs = if step.terminated || step.truncated {
            episode += 1;
            env.reset(Some(seed + episode))?.0
        } else {
            step.obs
        };
    }
    Ok(out)
}

/// What the importance of a network's parameters is measured through.
#[derive(Clone, Copy)]
enum Output {
    /// A value read as the mean of a unit-variance Gaussian (Q-values, the critic): `Σ_k (∂o_k)²`.
    Gaussian,
    /// A Gaussian policy's mean, each output with its variance: `Σ_k (∂μ_k)² / σ_k²`.
    Scaled,
    /// A categorical policy's logits: `Σ_a p_a (∂ log p_a)²`.
    Categorical,
}

/// A plain MLP read from an agent's named tensors, in `f64`.
struct NetView {
    /// `{net}.trunk.0`, `{net}.trunk.1`, ..., `{net}.head`: (name, weight `[out, in]` row-major,
    /// bias, out, in).
    layers: Vec<(String, Vec<f64>, Vec<f64>, usize, usize)>,
    activation: Activation,
}

impl NetView {
    fn read(agent: &dyn Agent, net: &str) -> Result<NetView, TransferError> {
        let tensors: std::collections::HashMap<String, Tensor> = agent.tensors().into_iter().collect();
        let unsupported = |message: String| TransferError::Strategy { field: "protect", message };
        let names = agent.weight_names();
        if names.iter().any(|n| n.starts_with("shared.")) {
            return Err(unsupported(
                "importance is computed for an actor and a critic with a trunk each; these share one (`share_trunk`): \
                 use PackNet or L2"
                    .into(),
            ));
        }
        if let Some(other) = names.iter().find(|n| {
            n.starts_with(&format!("{net}."))
                && !n.contains(".trunk.")
                && !n.contains(".head.")
                && !n.ends_with("log_std")
        }) {
            return Err(unsupported(format!(
                "importance is computed for plain networks (trunk and head); `{other}` is another layer (added layers, \
                 per-task inputs): use PackNet or L2"
            )));
        }
        let mut layers = Vec::new();
        let mut layer = |name: String| -> Option<()> {
            let w = tensors.get(&format!("{name}.weight"))?;
            let b = tensors.get(&format!("{name}.bias"))?;
            let (out, inp) = (w.size()[0] as usize, w.size()[1] as usize);
            let (w, b) = (doubles(w), doubles(b));
            layers.push((name, w, b, out, inp));
            Some(())
        };
        let mut i = 0;
        while layer(format!("{net}.trunk.{i}")).is_some() {
            i += 1;
        }
        layer(format!("{net}.head")).ok_or_else(|| unsupported(format!("the agent has no network `{net}.head`")))?;
        Ok(NetView { layers, activation: agent.config().net().activation })
    }

    /// The outputs and every layer's pre-activation and input for one input.
    fn forward(&self, x: &[f64]) -> (Vec<f64>, Vec<Vec<f64>>) {
        let mut inputs = Vec::with_capacity(self.layers.len());
        let mut h = x.to_vec();
        for (i, (_, w, b, out, inp)) in self.layers.iter().enumerate() {
            let mut z = b.clone();
            for (o, zo) in z.iter_mut().enumerate() {
                for k in 0..*inp {
                    *zo += w[o * inp + k] * h[k];
                }
            }
            let _ = out;
            inputs.push(std::mem::replace(&mut h, z));
            if i + 1 < self.layers.len() {
                h.iter_mut().for_each(|v| *v = self.act(*v));
            }
        }
        (h, inputs)
    }

    fn act(&self, z: f64) -> f64 {
        match self.activation {
            Activation::Tanh => libm::tanh(z),
            Activation::Relu => z.max(0.0),
        }
    }

    /// The gradient of `cotangent · outputs` with respect to every parameter, laid out layer by
    /// layer as (weight row-major, bias), given the forward pass's layer inputs.
    fn backward(&self, inputs: &[Vec<f64>], cotangent: &[f64], grad: &mut Vec<f64>) {
        grad.clear();
        let mut parts: Vec<Vec<f64>> = Vec::with_capacity(self.layers.len());
        let mut delta = cotangent.to_vec();
        for (i, (_, w, _, out, inp)) in self.layers.iter().enumerate().rev() {
            let x = &inputs[i];
            let mut part = Vec::with_capacity(out * inp + out);
            for d in &delta {
                part.extend(x.iter().map(|xk| d * xk));
            }
            part.extend_from_slice(&delta);
            parts.push(part);
            if i > 0 {
                // The layer's input is act(z) of the layer below: its derivative from its value.
                let mut next = vec![0.0; *inp];
                for (o, d) in delta.iter().enumerate() {
                    for (k, n) in next.iter_mut().enumerate() {
                        *n += w[o * inp + k] * d;
                    }
                }
                for (n, xk) in next.iter_mut().zip(x) {
                    *n *= match self.activation {
                        Activation::Tanh => 1.0 - xk * xk,
                        Activation::Relu => f64::from(u8::from(*xk > 0.0)),
                    };
                }
                delta = next;
            }
        }
        for part in parts.into_iter().rev() {
            grad.extend(part);
        }
    }
}

/// A tensor's values in `f64`.
fn doubles(t: &Tensor) -> Vec<f64> {
    let t = t.to_kind(Kind::Double).contiguous();
    let n = t.numel();
    let mut out = vec![0.0; n];
    t.copy_data(&mut out, n);
    out
}

/// The networks whose importance an algorithm has, with their outputs' kind.
fn networks(agent: &dyn Agent) -> Vec<(&'static str, Output)> {
    let names = agent.weight_names();
    match agent.algo() {
        Algo::Dqn => vec![("q", Output::Gaussian)],
        _ if names.iter().any(|n| n == "actor.log_std") => {
            vec![("actor", Output::Scaled), ("critic", Output::Gaussian)]
        }
        _ => vec![("actor", Output::Categorical), ("critic", Output::Gaussian)],
    }
}

/// The observations as the networks see them: normalised by the agent's running statistics
/// when it has them (`clip((x - mean) / sqrt(var + 1e-8), ±10)`).
fn network_inputs(agent: &dyn Agent, states: &[f32]) -> Vec<f64> {
    let tensors: std::collections::HashMap<String, Tensor> = agent.tensors().into_iter().collect();
    let stats = |n: &str| tensors.get(n).map(doubles);
    let mut out: Vec<f64> = states.iter().map(|&x| f64::from(x)).collect();
    let (Some(mean), Some(var)) = (stats("obs_rms.mean"), stats("obs_rms.var")) else { return out };
    if mean.is_empty() {
        return out;
    }
    let config = agent.config();
    for row in out.chunks_mut(mean.len()) {
        // A multitask network's row: only its task's block is normalised (the other blocks stay
        // zero, the one-hot id as it is), as the agent does.
        let columns = match config.tasks() {
            Some(tasks) => {
                let t = task_of(row, tasks.len());
                let (start, width) = tasks.obs_block(t);
                start..start + width
            }
            None => 0..row.len(),
        };
        for i in columns {
            row[i] = ((row[i] - mean[i]) / (var[i] + 1e-8).sqrt()).clamp(-10.0, 10.0);
        }
    }
    out
}

/// The task of a multitask network's row: the one-hot id that ends it.
fn task_of(row: &[f64], tasks: usize) -> usize {
    let id = &row[row.len() - tasks..];
    (0..tasks).max_by(|&a, &b| id[a].total_cmp(&id[b]).then(b.cmp(&a))).unwrap_or(0)
}

/// The importance of each protected weight on `states` (raw observations, `[n * obs_dim]`):
/// EWC's diagonal Fisher or MAS's sensitivity, averaged over the states, in `f64` and rounded
/// once to `f32`.
pub fn importance(agent: &dyn Agent, protect: &Protect, states: &[f32]) -> Result<Importance, TransferError> {
    protect.check_algo(agent.algo())?;
    let inputs = network_inputs(agent, states);
    let mas = matches!(protect, Protect::Mas { .. });
    let tensors: std::collections::HashMap<String, Tensor> = agent.tensors().into_iter().collect();
    let mut out = Importance::new();
    for (net, kind) in networks(agent) {
        let view = NetView::read(agent, net)?;
        let dim = view.layers[0].4;
        let outputs = view.layers.last().map_or(0, |l| l.3);
        let inv_var: Vec<f64> = match kind {
            Output::Scaled => {
                let log_std = tensors.get("actor.log_std").map(to_vec).unwrap_or_default();
                log_std.iter().map(|l| libm::exp(-2.0 * f64::from(*l))).collect()
            }
            _ => vec![1.0; outputs],
        };
        let total: usize = view.layers.iter().map(|l| l.3 * l.4 + l.3).sum();
        let mut sum = vec![0.0f64; total];
        let mut grad = Vec::with_capacity(total);
        let n = inputs.len() / dim;
        let tasks = agent.config().tasks().cloned();
        for x in inputs.chunks_exact(dim) {
            let (mut o, layer_inputs) = view.forward(x);
            // A head per task: the row's task acts on its slice of the logits alone (the others
            // are masked to probability 0 by the agent, so they carry no information).
            let slice = match (&tasks, kind) {
                (Some(t), Output::Categorical) => t.action_slice(task_of(x, t.len())),
                _ => None,
            };
            if let Some((first, count)) = slice {
                for (k, v) in o.iter_mut().enumerate() {
                    if k < first || k >= first + count {
                        *v = f64::NEG_INFINITY;
                    }
                }
            }
            if mas {
                let cot: Vec<f64> = o.iter().map(|v| if v.is_finite() { 2.0 * v } else { 0.0 }).collect();
                view.backward(&layer_inputs, &cot, &mut grad);
                sum.iter_mut().zip(&grad).for_each(|(s, g)| *s += g.abs());
                continue;
            }
            match kind {
                Output::Categorical => {
                    let max = o.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = o.iter().map(|v| libm::exp(v - max)).collect();
                    let z: f64 = e.iter().sum();
                    let p: Vec<f64> = e.iter().map(|v| v / z).collect();
                    for a in (0..o.len()).filter(|&a| p[a] > 0.0) {
                        let cot: Vec<f64> = (0..o.len()).map(|b| f64::from(u8::from(a == b)) - p[b]).collect();
                        view.backward(&layer_inputs, &cot, &mut grad);
                        sum.iter_mut().zip(&grad).for_each(|(s, g)| *s += p[a] * g * g);
                    }
                }
                Output::Gaussian | Output::Scaled => {
                    for k in 0..o.len() {
                        let mut cot = vec![0.0; o.len()];
                        cot[k] = 1.0;
                        view.backward(&layer_inputs, &cot, &mut grad);
                        sum.iter_mut().zip(&grad).for_each(|(s, g)| *s += inv_var[k] * g * g);
                    }
                }
            }
        }
        let mut at = 0;
        for (name, _, _, rows, cols) in &view.layers {
            for (suffix, len, shape) in
                [("weight", rows * cols, vec![*rows as i64, *cols as i64]), ("bias", *rows, vec![*rows as i64])]
            {
                let values: Vec<f32> = sum[at..at + len].iter().map(|s| (s / n.max(1) as f64) as f32).collect();
                out.push((format!("{name}.{suffix}"), Tensor::from_slice(&values).reshape(shape.as_slice())));
                at += len;
            }
        }
    }
    Ok(out)
}

/// Adds `earlier` into `total` name by name (importance summed over tasks).
pub fn accumulate(total: &mut Importance, earlier: Importance) {
    for (name, value) in earlier {
        match total.iter_mut().find(|(n, _)| *n == name) {
            Some((_, t)) => *t = &*t + value,
            None => total.push((name, value)),
        }
    }
}

/// Installs EWC's or MAS's anchor in the agent's optimisers: `lambda / 2 · Σ Ω ⊙ (θ - θ*)²`
/// at the weights the agent holds now.
pub fn anchor(agent: &mut dyn Agent, importance: &Importance, lambda: f64) {
    for (_, opt) in agent.optimizers() {
        opt.set_weighted_anchor(
            |n| importance.iter().find(|(m, _)| m == n).map(|(_, t)| t.shallow_clone()),
            lambda / 2.0,
        );
    }
}
