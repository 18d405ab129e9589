//! Transfer: start a target agent from a source policy's weights, and report exactly what moved.
//!
//! A [`Strategy`] (RON) says how: copy every parameter whose name and shape match (`finetune`,
//! optionally with a smaller learning rate for what was copied), freeze parts for all or part of
//! the budget, re-initialise parts, keep the weights near the source (`l2_init`, L2-SP), distil
//! from the source policy (`distill`, kickstarting), and which training state starts fresh
//! (`reset`). A [`Map`] carries tensors across observation and action spaces that differ.
//! Parts are name patterns over the parameter names of [`crate::agent`]: `actor.trunk` names
//! everything under it, `*` matches any run of characters (`critic.*.head`).
//!
//! [`transfer`] writes the weights into the target agent, installs the learning-rate scales,
//! anchors and teacher, and returns a [`TransferReport`] with one row per target parameter.
//!
//! ```no_run
//! use headstart::{agent::checkpoint, env::{EnvSpec, Registry}, transfer::{self, Strategy}};
//!
//! let source = checkpoint::load("policies/cartpole-ppo".as_ref())?;
//! let target_env = EnvSpec::new("CartPole-v1").with("length", 0.75);
//! let env = Registry::builtin().make(&target_env)?;
//! let mut agent = source.card.config.build(env.observation_space(), env.action_space(), 0)?;
//! let strategy = Strategy::from_ron(r#"(name: "freeze-trunk", freeze: ["actor.trunk"], freeze_until: 20000)"#)?;
//! let report = transfer::transfer(&source, "policies/cartpole-ppo", agent.as_mut(), &target_env, env.observation_space(), env.action_space(), &strategy, None)?;
//! println!("{}", report.table());
//! # Ok::<(), anyhow::Error>(())
//! ```

mod added;
mod error;
mod guidance;
pub mod map;
mod parts;
mod report;
mod skill;
mod state;
mod strategy;
mod task;
pub mod continual;
pub mod predict;
pub mod suggest;
pub mod watch;
mod weights;

use std::collections::HashMap;

use tch::Tensor;

use crate::agent::Agent;
use crate::agent::checkpoint::Loaded;
use crate::env::{EnvSpec, Space};
pub use error::TransferError;
pub use map::{Axes, Axis, Map, ObsMap};
pub use parts::matches;
use parts::select;
use report::param;
pub use report::{Fate, Frozen, ParamReport, TransferReport};
use state::carry_state;
pub use strategy::{Addition, Resets, Skill, Strategy, Train};
use weights::{Spaces, action_count};

/// Moves the source's knowledge into `target` as `strategy` says, through `map` when the
/// spaces differ, and reports what happened. `target` must be freshly built for the target
/// environment (spaces `obs_space`, `action_space`); `source_name` names the source in the
/// report.
#[allow(clippy::too_many_arguments)]
pub fn transfer(
    source: &Loaded,
    source_name: &str,
    target: &mut dyn Agent,
    target_env: &EnvSpec,
    obs_space: &Space,
    action_space: &Space,
    strategy: &Strategy,
    map: Option<&Map>,
) -> Result<TransferReport, TransferError> {
    strategy.validate()?;
    let card = &source.card;
    let algo = target.algo();
    if card.algorithm != algo {
        return Err(TransferError::AlgorithmMismatch { source_algo: card.algorithm, target: algo });
    }
    let parts = matches!(obs_space, Space::Dict { .. }) && target.config().net().encoder.is_some();
    if map.is_some_and(|m| m.obs.is_some()) && parts {
        return Err(TransferError::Map {
            tensor: "map.obs".into(),
            message: "a map of observation features over a dictionary observation whose images have encoders of their \
                      own: maps index one flat observation (re-initialise the parts that differ with `reinit`)"
                .into(),
        });
    }
    let names = target.weight_names();
    let live: HashMap<String, Tensor> = target.tensors().into_iter().collect();
    let mut sources: HashMap<String, Tensor> = source.agent.tensors().into_iter().collect();
    let mut folded: Vec<String> = Vec::new();
    let mut source_dims = (card.observation_space.flat_dim(), action_count(&card.action_space));
    let mut aliased = Vec::new();
    if strategy.copy {
        folded.extend(skill::fold(&mut sources, card, strategy)?);
        if let Some((line, obs, actions)) = task::fold(&mut sources, card, strategy, (obs_space, action_space))? {
            folded.push(line);
            source_dims = (obs, actions);
        }
        // Then the source's networks under the target's names where they are laid out otherwise:
        // a renaming is stated, and its source parameters not dropped, where the target reads one.
        let mut origins = weights::Origins::new();
        let trunk = weights::trunk_aliases(&names, &mut sources, &mut origins);
        let image = weights::image_part_aliases(&names, &mut sources, &mut origins);
        let read: Vec<&(String, u8)> = names.iter().filter_map(|n| origins.get(n)).collect();
        for (kind, line) in [(weights::TRUNK, trunk), (weights::IMAGE_PART, image)] {
            if let Some(line) = line.filter(|_| read.iter().any(|(_, kinds)| kinds & kind != 0)) {
                folded.push(line);
            }
        }
        aliased.extend(read.into_iter().map(|(origin, _)| origin.clone()));
    }
    let mut report = TransferReport {
        source: source_name.to_string(),
        source_env: card.env.clone(),
        source_steps: card.steps,
        algorithm: algo,
        target_env: target_env.clone(),
        strategy: strategy.label(),
        settings: strategy.clone(),
        map: map.cloned(),
        parameters: Vec::new(),
        dropped: card.weights.iter().filter(|n| !names.contains(n) && !aliased.contains(n)).cloned().collect(),
        state: folded.into_iter().collect(),
        warnings: Vec::new(),
        extra_steps: 0,
    };
    if card.env.id != target_env.id {
        report.warnings.push(format!(
            "the source was trained on {} and the target is {}: another environment family, so the weights may \
             mean something else here",
            card.env.id, target_env.id
        ));
    }
    if card.reward_free {
        report.state.push(format!(
            "the source was pretrained without reward (objective {}): the target trains on its own reward; the objective's \
             networks and statistics stay with the source",
            card.config.objective().name()
        ));
    }
    if !strategy.copy {
        report.parameters = names.iter().map(|n| param(n, &live[n], sources.get(n), Fate::New)).collect();
        report.state.push("scratch: every parameter and all training state start fresh".into());
        return Ok(report);
    }

    let target_spaces = (obs_space, action_space);
    let reinit_parts = task::expand(card, strategy, target_spaces, "reinit", &strategy.reinit)?;
    let freeze_parts = task::expand(card, strategy, target_spaces, "freeze", &strategy.freeze)?;
    let mut reinit = select("reinit", &reinit_parts, &names)?;
    let frozen = select("freeze", &freeze_parts, &names)?;
    if strategy.reset.ent_coef && names.iter().any(|n| n == "log_ent_coef") {
        reinit.push("log_ent_coef".into());
    }
    // Fresh values of the re-initialised parts, restored after the teacher has seen the source's.
    let fresh: Vec<(String, Tensor)> = reinit.iter().map(|n| (n.clone(), live[n].detach().copy())).collect();
    let spaces = Spaces { obs: (source_dims.0, obs_space.flat_dim()), act: (source_dims.1, action_count(action_space)) };
    if !strategy.add.is_empty() && !names.iter().any(|n| crate::agent::nn::is_added(n)) {
        return Err(TransferError::Strategy {
            field: "add",
            message: "adds layers, but the target agent was built without them: build it from                       `transfer::target_config` (as `transfer::prepare` does)"
                .into(),
        });
    }
    // Input and output layers take over the map's observation and action sides of their network.
    let sides = added::SideMaps::new(map, &names);
    report.parameters = weights::copy(algo, &names, &live, &sources, &reinit, &sides, spaces)?;
    report.state.extend(added::start(&mut report.parameters, &live, &sources, map, spaces)?);
    if report.transferred() == 0 {
        let reason = if names.iter().any(|n| sources.contains_key(n)) {
            "every shared parameter is re-initialised".to_string()
        } else {
            format!("the source's parameters ({}) share no name with the target's", card.weights.join(", "))
        };
        return Err(TransferError::NothingCopied { reason });
    }

    // The teacher is a copy of the actor as the source left it, taken before re-initialising.
    guidance::install_teacher(target, strategy, &mut report)?;
    tch::no_grad(|| {
        for (name, value) in &fresh {
            live[name].shallow_clone().copy_(value);
        }
    });
    target.sync_targets();

    let copied: Vec<String> = report
        .parameters
        .iter()
        .filter(|p| matches!(p.fate, Fate::Copied | Fate::Mapped))
        .map(|p| p.name.clone())
        .collect();
    carry_state(source, target, &live, &sources, &copied, strategy, map, spaces.obs, &mut report)?;

    let until = strategy.freeze_until;
    let mut frozen: Vec<(String, Option<u64>)> = frozen.into_iter().map(|n| (n, until)).collect();
    for (name, until) in added::frozen(strategy.train, &report.parameters) {
        match frozen.iter_mut().find(|(n, _)| *n == name) {
            // Frozen by both: released when both release it.
            Some((_, u)) => *u = u.zip(until).map(|(a, b)| a.max(b)),
            None => frozen.push((name, until)),
        }
    }
    guidance::install(target, strategy, &copied, &frozen, &mut report);
    Ok(report)
}

/// The configuration a target agent is built with: the source's, with the layers the strategy
/// adds (checked against the source's networks, errors naming the strategy's `add`).
pub fn target_config(source: &Loaded, strategy: &Strategy) -> Result<crate::agent::AgentConfig, TransferError> {
    strategy.validate()?;
    // A reward-free source's target trains on the target's reward; a multitask source's target
    // is one task's network.
    Ok(added::augment(source, strategy)?.with_objective(crate::agent::Objective::Reward)?.single_task())
}

/// Builds an agent for `target` with the source's hyperparameters and network (and the layers
/// the strategy adds), and transfers into it: the start of every target run.
pub fn prepare(
    registry: &crate::env::Registry,
    source: &Loaded,
    source_name: &str,
    target: &EnvSpec,
    strategy: &Strategy,
    map: Option<&Map>,
    seed: u64,
) -> Result<(Box<dyn Agent>, TransferReport), TransferError> {
    let env = registry.make(target)?;
    let (obs_space, action_space) = (env.observation_space().clone(), env.action_space().clone());
    let start = |strategy: &Strategy| -> Result<(Box<dyn Agent>, TransferReport), TransferError> {
        let mut agent = target_config(source, strategy)?.build(&obs_space, &action_space, seed)?;
        let report = transfer(source, source_name, agent.as_mut(), target, &obs_space, &action_space, strategy, map)?;
        Ok((agent, report))
    };
    let Some(episodes) = skill::to_choose(&source.card, strategy) else { return start(strategy) };
    // A skill-discovery source: the best skill on the target's reward, its steps counted.
    let fixed = |z| Strategy { skill: Some(Skill::Fixed(z)), ..strategy.clone() };
    let skills = skill::skills(&source.card).unwrap_or_default();
    let choice = skill::choose(registry, target, skills, episodes, seed, |z| Ok(start(&fixed(z))?.0))?;
    let (agent, mut report) = start(&fixed(choice.skill))?;
    let returns: Vec<String> = choice.returns.iter().map(|r| format!("{r:.1}")).collect();
    report.state.push(format!(
        "skill {} chosen: the best mean return over {episodes} deterministic episodes of each skill on the target ({}), {} \
         target steps before training",
        choice.skill,
        returns.join(", "),
        choice.steps
    ));
    report.extra_steps = choice.steps;
    Ok((agent, report))
}
