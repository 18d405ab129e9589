//! PackNet's side of a sequence (Mallya & Lazebnik 2018): which task owns each weight, pruning
//! at a task's end, freezing the earlier tasks' weights, and a task evaluated with its own
//! weights and normaliser statistics.

use tch::{Kind, Tensor};

use super::TransferError;
use crate::agent::{Agent, to_vec};

/// PackNet's owners: for every weight of the agent, each element's task (`-1`: free), `f32`.
pub type Owners = Vec<(String, Tensor)>;

/// Every weight free.
pub fn free_owners(agent: &dyn Agent) -> Owners {
    let live: std::collections::HashMap<String, Tensor> = agent.tensors().into_iter().collect();
    agent
        .weight_names()
        .into_iter()
        .map(|n| {
            let t = live[&n].full_like(-1.0).to_kind(Kind::Float);
            (n, t)
        })
        .collect()
}

/// PackNet's end of task `task`: in each weight matrix, the largest `keep` share of the free
/// weights (by magnitude; ties by position) becomes the task's, the other free ones are set to
/// zero; free vectors (biases) become the task's whole. Writes the agent's weights in place.
pub fn prune(agent: &mut dyn Agent, owners: &mut Owners, task: usize, keep: f64) {
    let live: std::collections::HashMap<String, Tensor> = agent.tensors().into_iter().collect();
    for (name, owner) in owners.iter_mut() {
        let Some(param) = live.get(name.as_str()) else { continue };
        let mut own = to_vec(owner);
        let mut values = to_vec(&param.to_kind(Kind::Float));
        let free: Vec<usize> = (0..own.len()).filter(|&i| own[i] < 0.0).collect();
        if param.dim() == 2 {
            let mut ranked = free.clone();
            ranked.sort_by(|&a, &b| values[b].abs().total_cmp(&values[a].abs()).then(a.cmp(&b)));
            let kept = ((keep * free.len() as f64).ceil() as usize).min(free.len());
            for (rank, &i) in ranked.iter().enumerate() {
                if rank < kept {
                    own[i] = task as f32;
                } else {
                    values[i] = 0.0;
                }
            }
        } else {
            free.iter().for_each(|&i| own[i] = task as f32);
        }
        *owner = Tensor::from_slice(&own).reshape(owner.size().as_slice());
        tch::no_grad(|| param.shallow_clone().copy_(&Tensor::from_slice(&values).reshape(param.size().as_slice())));
    }
}

/// Freezes, in the agent's optimisers, every element an earlier task than `task` owns.
pub fn freeze(agent: &mut dyn Agent, owners: &Owners, task: usize) {
    train_only(agent, owners, |owner| owner.ge(0.0).logical_and(&owner.lt(task as f64)).logical_not());
}

/// Freezes every element but those `task` owns: PackNet's retraining after pruning (the
/// pruned weights stay at zero, the earlier tasks' as they are).
pub fn retrain_only(agent: &mut dyn Agent, owners: &Owners, task: usize) {
    train_only(agent, owners, |owner| owner.eq(task as f64));
}

fn train_only(agent: &mut dyn Agent, owners: &Owners, trains: impl Fn(&Tensor) -> Tensor) {
    for (_, opt) in agent.optimizers() {
        for (name, owner) in owners {
            opt.set_element_lr_scales(name, &trains(owner).to_kind(Kind::Float));
        }
    }
}

/// The agent's normaliser statistics (`obs_rms.*`, `ret_rms.*`), copied: PackNet keeps each
/// task's, as the original keeps each task's batch-norm statistics.
pub fn normalizers(agent: &dyn Agent) -> Vec<(String, Tensor)> {
    let is_stat = |n: &str| n.starts_with("obs_rms.") || n.starts_with("ret_rms.");
    agent.tensors().into_iter().filter(|(n, _)| is_stat(n)).map(|(n, t)| (n, t.copy())).collect()
}

/// Runs `f` on the agent with only the weights of tasks `0..=task` (the others and the free
/// ones zeroed) and, when given, that task's normaliser statistics, then puts every weight and
/// statistic back bit for bit.
pub fn with_task_weights<R>(
    agent: &mut dyn Agent,
    owners: &Owners,
    task: usize,
    stats: &[(String, Tensor)],
    f: impl FnOnce(&dyn Agent) -> R,
) -> Result<R, TransferError> {
    let live: std::collections::HashMap<String, Tensor> = agent.tensors().into_iter().collect();
    let mut saved = Vec::new();
    tch::no_grad(|| {
        for (name, owner) in owners {
            let Some(param) = live.get(name.as_str()) else { continue };
            let keep = owner.ge(0.0).logical_and(&owner.le(task as f64)).to_kind(param.kind());
            saved.push((param.shallow_clone(), param.detach().copy()));
            param.shallow_clone().copy_(&(param * keep));
        }
    });
    let current = normalizers(agent);
    let load = |agent: &mut dyn Agent, from: &[(String, Tensor)]| {
        agent.load_normalizers(&mut |n| from.iter().find(|(m, _)| m == n).map(|(_, t)| t.shallow_clone()))
    };
    let swapped = if stats.is_empty() { Ok(()) } else { load(agent, stats) };
    let out = swapped.map(|()| f(agent));
    if !stats.is_empty() {
        load(agent, &current)?;
    }
    tch::no_grad(|| saved.iter().for_each(|(param, value)| param.shallow_clone().copy_(value)));
    Ok(out?)
}
