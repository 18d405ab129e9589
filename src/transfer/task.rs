//! A multitask source's task for the target. The source's networks read every task's block of
//! the shared observation and the task's one-hot id (see `env/tasks.rs`); their first layer is
//! an input layer per task (`inputs.<task>`: the block's columns, and the id's column as a
//! per-task bias) and, with a head per task, the policy's head is one slice of rows per task
//! (`heads.<task>`). Starting the target as task `t` keeps the shared trunk and folds task `t`'s
//! input layer and head into a plain network: `W' = W[:, block_t]`, `b' = b + W[:, id_t]`, the
//! head's rows of `t`'s slice, and the observation statistics of `t`'s block. A new task takes
//! a known task's input layer and, with `reinit: ["actor.head"]`, a fresh head.

use std::collections::HashMap;

use tch::Tensor;

use super::{Strategy, TransferError};
use crate::agent::TaskNets;
use crate::agent::checkpoint::Card;
use crate::env::Space;

/// Folds the strategy's task (`task`, else the first task whose spaces are the target's) of a
/// multitask source's tensors into a plain network's; the report's line and the folded
/// source's observation width and action count. `None` for other sources.
pub(super) fn fold(
    sources: &mut HashMap<String, Tensor>,
    card: &Card,
    strategy: &Strategy,
    target: (&Space, &Space),
) -> Result<Option<(String, usize, usize)>, TransferError> {
    let Some(tasks) = card.config.tasks() else { return Ok(None) };
    // Into the same tasks' shared spaces (a sequence's next task, with task ids): a plain copy.
    if target == (&card.observation_space, &card.action_space) {
        return Ok(None);
    }
    let t = chosen(tasks, strategy, target)?;
    let d = tasks.obs_dim() as i64;
    let (start, width) = tasks.obs_block(t);
    let id = (tasks.obs_dim() - tasks.len() + t) as i64;
    let folded = fold_first_layers(sources, d, (start as i64, width as i64), id);
    let mut actions = card.action_space.flat_dim();
    let mut head = String::new();
    if let Some((first, n)) = tasks.action_slice(t) {
        for part in ["weight", "bias"] {
            let name = format!("actor.head.{part}");
            let slice = sources[&name].narrow(0, first as i64, n as i64).contiguous();
            sources.insert(name, slice);
        }
        actions = n;
        head = format!(" and its head (actions {first}..{} of actor.head)", first + n - 1);
    }
    if let Space::Discrete { n } = card.action_space
        && tasks.action_slice(t).is_none()
    {
        actions = n;
    }
    for stat in ["obs_rms.mean", "obs_rms.var"] {
        if let Some(v) = sources.get(stat) {
            let block = v.narrow(0, start as i64, width as i64).contiguous();
            sources.insert(stat.to_string(), block);
        }
    }
    let line = format!(
        "task {:?} of the source's {}: its input layer (block and id folded into {}){head}; the trunk is shared",
        tasks.names[t],
        tasks.len(),
        folded.join(", ")
    );
    Ok(Some((line, width, actions)))
}

/// The task the target starts as: the strategy's `task`, else the first whose spaces are the
/// target's.
fn chosen(tasks: &TaskNets, strategy: &Strategy, target: (&Space, &Space)) -> Result<usize, TransferError> {
    let bad = |message: String| TransferError::Strategy { field: "task", message };
    let target_actions = match target.1 {
        Space::Discrete { n } => *n,
        space => space.flat_dim(),
    };
    match &strategy.task {
        Some(name) => tasks
            .index(name)
            .ok_or_else(|| bad(format!("{name:?} is not a task of the source (its tasks: {})", tasks.names.join(", ")))),
        None => (0..tasks.len())
            .find(|&t| tasks.obs[t] == target.0.flat_dim() && tasks.action_slice(t).is_none_or(|(_, n)| n == target_actions))
            .ok_or_else(|| {
                bad(format!(
                    "no task of the source ({}) has the target's spaces: name the one to start from (`task: \"{}\"`) and map or \
                     re-initialise what differs",
                    tasks.names.join(", "),
                    tasks.names[0]
                ))
            }),
    }
}

/// A multitask source's part names in a strategy's `freeze` and `reinit`, as the target's
/// parameters: `inputs.<task>` is the first layers (the task's input layer, folded), `heads.<task>`
/// the policy's head, `trunk` the shared layers after the input layer. `<task>` must be the task
/// the target starts as. Other patterns, and every pattern for other sources, pass unchanged.
pub(super) fn expand(
    card: &Card,
    strategy: &Strategy,
    target: (&Space, &Space),
    field: &'static str,
    patterns: &[String],
) -> Result<Vec<String>, TransferError> {
    let Some(tasks) = card.config.tasks() else { return Ok(patterns.to_vec()) };
    if target == (&card.observation_space, &card.action_space) {
        return Ok(patterns.to_vec());
    }
    let t = chosen(tasks, strategy, target)?;
    let depth = |net: &str| match (&card.config, net) {
        (crate::agent::AgentConfig::Ppo(c), "critic") => c.critic_net().hidden.len(),
        _ => card.config.net().hidden.len(),
    };
    let first = |net: &str| if depth(net) == 0 { format!("{net}.head") } else { format!("{net}.trunk.0") };
    let mut out = Vec::new();
    for pattern in patterns {
        let (kind, name) = pattern.split_once('.').unwrap_or((pattern, ""));
        match kind {
            "inputs" | "heads" if name != tasks.names[t] => {
                return Err(TransferError::Strategy {
                    field,
                    message: format!(
                        "{pattern:?}: the target starts as task {:?} (`task`), whose parts are inputs.{0} and heads.{0}",
                        tasks.names[t]
                    ),
                });
            }
            "inputs" => out.extend(["actor", "critic"].map(first)),
            "heads" => out.push("actor.head".into()),
            "trunk" if name.is_empty() => {
                out.extend(["actor", "critic"].into_iter().flat_map(|n| (1..depth(n)).map(move |i| format!("{n}.trunk.{i}"))))
            }
            _ => out.push(pattern.clone()),
        }
    }
    Ok(out)
}

/// Folds an input column into the first layer of the actor and the critic, where that layer
/// reads `inputs` values: keeps the `keep` columns (start, width) as the weight and adds column
/// `column` (a one-hot input fixed at 1) to the bias. The layers folded.
pub(super) fn fold_first_layers(
    sources: &mut HashMap<String, Tensor>,
    inputs: i64,
    (start, width): (i64, i64),
    column: i64,
) -> Vec<String> {
    let mut folded = Vec::new();
    for net in ["actor", "critic"] {
        let Some(layer) = [format!("{net}.trunk.0"), format!("{net}.head")]
            .into_iter()
            .find(|l| sources.get(&format!("{l}.weight")).is_some_and(|w| w.size()[1] == inputs))
        else {
            continue;
        };
        let w = &sources[&format!("{layer}.weight")];
        let bias = &sources[&format!("{layer}.bias")] + w.narrow(1, column, 1).squeeze_dim(1);
        let weight = w.narrow(1, start, width).contiguous();
        sources.insert(format!("{layer}.weight"), weight);
        sources.insert(format!("{layer}.bias"), bias);
        folded.push(layer);
    }
    folded
}
