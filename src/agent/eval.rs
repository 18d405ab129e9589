//! Evaluation on an environment instance of its own, never the training one.

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::Agent;
use std::ops::DerefMut;

use crate::env::{Env, EnvError, Obs, Space};

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
    evaluate_on(agent, &mut [env], episodes, deterministic, seed)
}

/// [`evaluate`] with several instances of the environment (at least one). Deterministic evaluation of discrete
/// actions then runs up to `envs.len()` episodes at once, with one batched action call per step
/// for all of them (an instance that finishes its episode starts the next one): the networks'
/// per-step cost is paid once per step instead of once per episode. Episode `i` still starts
/// from `reset(seed + i)`, so the returns are those of [`evaluate`].
///
/// The other cases run the episodes one after the other on the first instance: stochastic
/// evaluation draws from one generator in episode order, and continuous actions would not be
/// the same. A batched matrix product does not round a row exactly as a one-row product does
/// (libtorch's BLAS picks other kernels), and a mean action that differs in its last bit sends
/// a continuous trajectory elsewhere; a greedy choice among discrete actions only changes when
/// two values lie within that rounding. That is not impossible, so batched returns equal
/// one-by-one returns up to such near-ties; checked byte for byte on the quick start and the
/// DQN MountainCar study, and by this module's test.
pub fn evaluate_on<'e, E: DerefMut<Target = dyn Env + 'e>>(
    agent: &dyn Agent,
    envs: &mut [E],
    episodes: usize,
    deterministic: bool,
    seed: u64,
) -> Result<EvalStats, EnvError> {
    assert!(episodes == 0 || !envs.is_empty(), "evaluate_on needs at least one environment instance");
    let mut rng = StdRng::seed_from_u64(seed);
    let discrete = envs.first().is_some_and(|env| matches!(env.action_space(), Space::Discrete { .. }));
    let lanes = if deterministic && discrete { envs.len().clamp(1, episodes.max(1)) } else { 1 };
    let mut returns = vec![0.0; episodes];
    // Each lane: its environment's index, the episode it runs, its current observation.
    let mut active: Vec<(usize, usize, Obs)> = Vec::with_capacity(lanes);
    for (lane, env) in envs.iter_mut().enumerate().take(lanes.min(episodes)) {
        let (obs, _) = env.reset(Some(seed.wrapping_add(lane as u64)))?;
        active.push((lane, lane, obs));
    }
    let mut next = active.len();
    let mut obs = Vec::new();
    while !active.is_empty() {
        obs.clear();
        active.iter().for_each(|(_, _, o)| obs.extend_from_slice(o));
        let actions = agent.act(&obs, deterministic, &mut rng);
        let mut finished = Vec::new();
        for (k, ((lane, episode, o), action)) in active.iter_mut().zip(&actions).enumerate() {
            let step = envs[*lane].step(action)?;
            // Wrappers that shape training (Atari's clipped rewards and episodic lives) report
            // the raw reward, and whether the game went on: an evaluation plays whole games.
            returns[*episode] += step.info.get("raw_reward").unwrap_or(step.reward);
            if !step.done() {
                *o = step.obs;
            } else if step.info.get("game_over") == Some(0.0) {
                (*o, _) = envs[*lane].reset(None)?;
            } else if next < episodes {
                (*o, _) = envs[*lane].reset(Some(seed.wrapping_add(next as u64)))?;
                *episode = next;
                next += 1;
            } else {
                finished.push(k);
            }
        }
        for k in finished.into_iter().rev() {
            active.remove(k);
        }
    }
    Ok(EvalStats::from_returns(returns, deterministic))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{Algo, presets};
    use crate::env::{EnvSpec, Registry};

    /// Evaluation on several instances gives exactly the returns of one instance running the
    /// episodes in turn: batched for discrete actions (PPO, DQN), one by one for continuous ones
    /// and stochastic evaluation.
    #[test]
    fn batched_evaluation_equals_one_by_one() {
        let registry = Registry::builtin();
        for (algo, id) in [
            (Algo::Ppo, "CartPole-v1"),
            (Algo::Dqn, "Acrobot-v1"),
            (Algo::Ppo, "Pendulum-v1"),
            (Algo::Sac, "Pendulum-v1"),
        ] {
            let spec = EnvSpec::new(id);
            let mut one = registry.make(&spec).unwrap();
            let config = presets::get(algo, id).unwrap().config;
            let agent = config.build(one.observation_space(), one.action_space(), 7).unwrap();
            let single = evaluate(agent.as_ref(), one.as_mut(), 7, true, 42).unwrap();
            let mut envs: Vec<_> = (0..3).map(|_| registry.make(&spec).unwrap()).collect();
            let batched = evaluate_on(agent.as_ref(), &mut envs, 7, true, 42).unwrap();
            assert_eq!(single, batched, "{algo} {id}");
            let stochastic = evaluate_on(agent.as_ref(), &mut envs, 3, false, 42).unwrap();
            assert_eq!(stochastic, evaluate(agent.as_ref(), one.as_mut(), 3, false, 42).unwrap(), "{algo} {id}");
        }
    }
}
