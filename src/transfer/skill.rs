//! A skill-discovery (DIAYN) source's skill, chosen for the target. The source's networks read
//! the observation with the skill appended as one-hot features; the target's read the
//! observation alone. Fixing skill `z` folds its column into the first layer's bias,
//! `W' = W[:, :d]`, `b' = b + W[:, d + z]`, so that the target's policy is the source's policy
//! with skill `z` (up to the order of one addition). Which `z`: the strategy's `skill`, by
//! default the best on the target's reward over a few episodes of each (URLB's choice), whose
//! steps the transfer report counts.

use std::collections::HashMap;

use tch::Tensor;

use super::{Skill, Strategy, TransferError};
use crate::agent::checkpoint::Card;
use crate::agent::{Objective, evaluate};
use crate::env::{Action, Env, EnvError, EnvSpec, Info, Obs, Registry, Space, Step};

/// The skills of a source: how many, when it is a skill-discovery source.
pub(super) fn skills(card: &Card) -> Option<usize> {
    match card.config.objective() {
        Objective::Diayn(c) => Some(c.skills),
        _ => None,
    }
}

/// The episodes per skill of the choice `strategy` asks of `card`'s source, when one is to be
/// made (a copying strategy from a skill-discovery source without a fixed skill).
pub(super) fn to_choose(card: &Card, strategy: &Strategy) -> Option<usize> {
    skills(card)?;
    match strategy.skill {
        _ if !strategy.copy => None,
        Some(Skill::Fixed(_)) => None,
        Some(Skill::Best { episodes }) => Some(episodes),
        None => Some(3),
    }
}

/// Folds skill `z` (the strategy's fixed skill, else the source's acting skill) into the first
/// layer of every network of a skill-discovery source's tensors; the report's line on it.
pub(super) fn fold(
    sources: &mut HashMap<String, Tensor>,
    card: &Card,
    strategy: &Strategy,
) -> Result<Option<String>, TransferError> {
    let Objective::Diayn(c) = card.config.objective() else { return Ok(None) };
    let z = match strategy.skill {
        Some(Skill::Fixed(z)) => z,
        _ => c.skill,
    };
    if z >= c.skills {
        return Err(TransferError::Strategy {
            field: "skill",
            message: format!("Fixed({z}): the source has {} skills (0 .. {})", c.skills, c.skills - 1),
        });
    }
    let d = card.observation_space.flat_dim() as i64;
    let first_layers = super::task::fold_first_layers(sources, d + c.skills as i64, (0, d), d + z as i64);
    Ok(Some(format!(
        "skill {z} of the source's {}: its one-hot input folded into the bias of {}",
        c.skills,
        first_layers.join(", ")
    )))
}

/// An environment that counts its steps.
struct Counting {
    inner: Box<dyn Env>,
    steps: u64,
}

impl Env for Counting {
    fn observation_space(&self) -> &Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.inner.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        self.inner.reset(seed)
    }
    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        self.steps += 1;
        self.inner.step(action)
    }
}

/// The choice of a skill: the skill, each skill's mean return and the target steps it took.
pub(super) struct Choice {
    pub(super) skill: usize,
    pub(super) returns: Vec<f64>,
    pub(super) steps: u64,
}

/// Evaluates every skill of the source on `target` (the agent `start` builds with that skill
/// fixed, `episodes` deterministic episodes each) and picks the best (the first on ties).
pub(super) fn choose(
    registry: &Registry,
    target: &EnvSpec,
    skills: usize,
    episodes: usize,
    seed: u64,
    start: impl Fn(usize) -> Result<Box<dyn crate::agent::Agent>, TransferError>,
) -> Result<Choice, TransferError> {
    let mut env = Counting { inner: registry.make(target)?, steps: 0 };
    let mut returns = Vec::with_capacity(skills);
    for z in 0..skills {
        let agent = start(z)?;
        returns.push(evaluate(agent.as_ref(), &mut env, episodes, true, 3_000_000 + seed)?.mean);
    }
    let skill = (0..skills).fold(0, |best, z| if returns[z] > returns[best] { z } else { best });
    Ok(Choice { skill, returns, steps: env.steps })
}
