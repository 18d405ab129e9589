//! Evaluation on an environment instance of its own, never the training one.

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::Agent;
use crate::env::{Env, EnvError};

/// Returns of evaluation episodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalStats {
    /// Episodes run.
    pub episodes: usize,
    /// Whether actions were greedy / mean actions.
    pub deterministic: bool,
    /// The mean return.
    pub mean: f64,
    /// Population standard deviation (as NumPy's `std` and Stable-Baselines3's `evaluate_policy`).
    pub std: f64,
    /// Each episode's return.
    pub returns: Vec<f64>,
}

impl EvalStats {
    /// Statistics of `returns`.
    pub fn from_returns(returns: Vec<f64>, deterministic: bool) -> Self {
        let n = returns.len().max(1) as f64;
        let mean = returns.iter().sum::<f64>() / n;
        let std = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
        EvalStats { episodes: returns.len(), deterministic, mean, std, returns }
    }
}

/// Runs `episodes` episodes of `agent` on `env`: episode `i` starts from `reset(seed + i)`.
/// Deterministic evaluation takes greedy / mean actions; stochastic evaluation samples from a
/// generator seeded with `seed`, leaving the agent's own untouched.
pub fn evaluate(
    agent: &dyn Agent,
    env: &mut dyn Env,
    episodes: usize,
    deterministic: bool,
    seed: u64,
) -> Result<EvalStats, EnvError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut returns = Vec::with_capacity(episodes);
    for i in 0..episodes {
        let (mut obs, _) = env.reset(Some(seed.wrapping_add(i as u64)))?;
        let mut ret = 0.0;
        loop {
            let action = agent.act(&obs, deterministic, &mut rng).pop().expect("one observation, one action");
            let step = env.step(&action)?;
            ret += step.reward;
            if step.done() {
                break;
            }
            obs = step.obs;
        }
        returns.push(ret);
    }
    Ok(EvalStats::from_returns(returns, deterministic))
}
