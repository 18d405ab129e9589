//! The off-policy training loop that DQN and SAC share (Stable-Baselines3's
//! `OffPolicyAlgorithm.learn`):
//!
//! ```text
//! until the step budget is spent, rounded up to whole training rounds (as SB3):
//!     begin a block                                  (SAC: redraw the gSDE matrix)
//!     repeat `block` times:
//!         act on the observations                    (random before `learning_starts`)
//!         step the environments, store the transitions in the replay buffer
//!         report finished episodes and progress to the monitor
//!         after the step                             (DQN: the target network's update)
//!     if past `learning_starts` and the algorithm is due to train:
//!         scheduled guidance takes effect (`Optimizer::advance`), then gradient steps
//!     Event::Checkpoint
//! ```
//!
//! The algorithms differ in where they stand inside this skeleton, and each difference is a
//! field of [`Shape`]: how many vector steps a block holds (where `Event::Checkpoint` falls:
//! DQN after every vector step, SAC after every `train_freq` block), when the learning rate's
//! schedule progress is read (DQN before the step, SAC after the block), and whether a stop that
//! the monitor asks for on an episode report ends the block at once or after its training.

use super::engine::Net;
use super::optim::Optimizer;
use super::replay::ReplayBuffer;
use super::stats::TrainStats;
use super::{Agent, AgentError, Event, Monitor, Outcome, Schedule, advance_guidance, report, update_stats};
use crate::env::{Action, VecEnv};

/// When the learning rate's schedule progress `steps / total` is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProgressAt {
    /// Before the block's last vector step (DQN, whose blocks are one step: the progress that
    /// also sets epsilon).
    BeforeStep,
    /// After the block's steps were collected (SAC).
    AfterBlock,
}

/// What happens when the monitor asks to stop on an episode report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopAt {
    /// At once, before the block's remaining steps, training and checkpoint (SAC).
    Immediately,
    /// After the step's `after_step` and the block's training, without the checkpoint event
    /// (DQN).
    AfterTraining,
}

/// How an algorithm fills the loop's skeleton.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    /// Environments stepped together.
    pub n_envs: usize,
    /// Vector steps per block: between trainings and `Event::Checkpoint`s.
    pub block: u64,
    /// Vector steps per training round (`train_freq`). The loop ends after a whole number of
    /// rounds, past the budget if need be, as Stable-Baselines3's collection of `train_freq`
    /// steps at a time does: a budget of 50 000 steps with rounds of 256 ends at 50 176, and the
    /// last transitions are trained on.
    pub round: u64,
    /// Environment steps before the first training.
    pub learning_starts: u64,
    /// The learning rate's schedule.
    pub learning_rate: Schedule,
    /// When its progress is read.
    pub progress: ProgressAt,
    /// When a stop asked on an episode report takes effect.
    pub stop: StopAt,
}

/// An off-policy algorithm's parts of the loop.
pub(crate) trait OffPolicy: Agent {
    /// The algorithm's shape of the loop.
    fn shape(&self) -> Shape;

    /// The environment step counter, the observations to act on next (`None` until the first
    /// `learn`, and after a restore) and the replay buffer.
    fn loop_state(&mut self) -> (&mut u64, &mut Option<Vec<f32>>, &mut ReplayBuffer);

    /// Starts a block of vector steps.
    fn begin_block(&mut self) {}

    /// Actions for the observation rows `obs` at vector step `k` of the block, with `progress`
    /// (`steps / total` before the step) for exploration schedules: as environment actions and
    /// as the replay buffer stores them.
    fn act_exploring(&mut self, obs: &[f32], k: u64, progress: f64) -> (Vec<Action>, Vec<f32>);

    /// Runs after each vector step, also one on which the monitor asked to stop with
    /// [`StopAt::AfterTraining`] (a stop [`StopAt::Immediately`] returns before it).
    fn after_step(&mut self) {}

    /// Whether the algorithm trains after this block (once past `learning_starts`).
    fn train_due(&self) -> bool {
        true
    }

    /// The gradient steps of one training, at learning rate `lr`.
    fn train(&mut self, lr: f64);

    /// The scalars the trainings recorded since the loop last reported them.
    fn stats(&mut self) -> &mut TrainStats;
}

/// Trains `agent` on `envs` until `total` environment steps (see the module's pseudo-code).
pub(crate) fn learn<A: OffPolicy>(
    agent: &mut A,
    envs: &mut VecEnv,
    total: u64,
    monitor: &mut Monitor<'_>,
) -> Result<Outcome, AgentError> {
    let shape = agent.shape();
    let round = shape.round.max(1) * shape.n_envs as u64;
    let end = total.div_ceil(round).saturating_mul(round);
    let mut obs = match agent.loop_state().1.take() {
        Some(obs) => obs,
        None => envs.reset(Some(agent.seed()))?.to_vec(),
    };
    while agent.steps() < end {
        agent.begin_block();
        let mut stop = false;
        let mut progress = 0.0;
        for k in 0..shape.block {
            progress = agent.steps() as f64 / total as f64;
            let (actions, stored) = agent.act_exploring(&obs, k, progress);
            let step = envs.step(&actions)?;
            let (steps, _, buffer) = agent.loop_state();
            buffer.push_step(&obs, &stored, &step);
            obs.copy_from_slice(step.obs);
            *steps += shape.n_envs as u64;
            let steps = *steps;
            stop = report(monitor, steps, step.episodes);
            if stop && shape.stop == StopAt::Immediately {
                *agent.loop_state().1 = Some(obs);
                return Ok(Outcome::Stopped);
            }
            agent.after_step();
            // A stop that waits for the training ends the block here (with DQN's one-step
            // blocks, it changes nothing).
            if stop || steps >= end {
                break;
            }
        }
        let steps = agent.steps();
        if steps > shape.learning_starts && agent.train_due() {
            let progress = match shape.progress {
                ProgressAt::BeforeStep => progress,
                ProgressAt::AfterBlock => steps as f64 / total as f64,
            };
            advance_guidance(agent, steps);
            agent.train(shape.learning_rate.at(progress));
            let stats = agent.stats().take();
            let stats = update_stats(agent, stats);
            stop |= monitor(Event::Update { step: steps, stats: &stats }).is_break();
        }
        if stop || monitor(Event::Checkpoint { step: steps }).is_break() {
            *agent.loop_state().1 = Some(obs);
            return Ok(Outcome::Stopped);
        }
    }
    *agent.loop_state().1 = Some(obs);
    Ok(Outcome::Finished)
}

/// The input rows of a critic `Q(s, a)`: each observation row (`obs_dim` values) followed by its
/// action row (`act_dim`), as SAC's and TD3's critics read them.
pub(crate) fn critic_input(obs: &[f32], actions: &[f32], obs_dim: usize, act_dim: usize) -> Vec<f32> {
    let mut x = Vec::with_capacity(obs.len() + actions.len());
    for (o, a) in obs.chunks_exact(obs_dim).zip(actions.chunks_exact(act_dim)) {
        x.extend_from_slice(o);
        x.extend_from_slice(a);
    }
    x
}

/// Actions in `[-1, 1]` (rows of `low.len()` values) rescaled to the bounds `[low, high]`, as SAC
/// and TD3 act.
pub(crate) fn to_bounds(squashed: &[f32], low: &[f32], high: &[f32]) -> Vec<Action> {
    squashed
        .chunks_exact(low.len())
        .map(|a| {
            let scaled: Vec<f32> = a
                .iter()
                .zip(low.iter().zip(high))
                .map(|(&x, (&l, &h))| (l + (x + 1.0) * 0.5 * (h - l)).clamp(l, h))
                .collect();
            Action::continuous(&scaled)
        })
        .collect()
}

/// Writes into `opt` the gradients of twin critics `nets` (over `opt`'s parameters) for the loss
/// `factor / 2 · Σ_k mean_i (Q_k(x_i) - y_i)²`: SAC's `½ Σ_k MSE` is `factor` 1, TD3's `Σ_k MSE`
/// is 2 (`∂/∂Q_k = factor (Q_k - y) / n`). Returns the loss.
pub(crate) fn twin_critic_gradients(nets: &[Net; 2], opt: &mut Optimizer, x: &[f32], target: &[f32], factor: f32) -> f64 {
    let n = target.len();
    let params = opt.params().values();
    let passes = [0, 1].map(|k| nets[k].forward(params, x, n));
    let (params, grads) = opt.values_and_gradients();
    let mut squares = 0.0;
    for (net, pass) in nets.iter().zip(&passes) {
        squares += pass.output().iter().zip(target).map(|(q, t)| ((q - t) as f64).powi(2)).sum::<f64>();
        let grad: Vec<f32> = pass.output().iter().zip(target).map(|(q, t)| (q - t) * factor / n as f32).collect();
        net.backward(params, x, pass, &grad, None, grads);
    }
    factor as f64 / 2.0 * squares / n as f64
}
