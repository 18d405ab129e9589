//! A run's scalars as TensorBoard event files (`train --tensorboard DIR`, a study's
//! `log: (tensorboard: true)`), one folder per run, under Stable-Baselines3's tag names where
//! SB3 has one.
//!
//! | tag | when |
//! |---|---|
//! | `episode/return`, `episode/length` | every finished episode, at its step |
//! | `rollout/ep_rew_mean`, `rollout/ep_len_mean` | the last 100 episodes' means, at most once a second |
//! | `time/fps` | environment steps a second since the last point |
//! | `rollout/intrinsic_reward` | a reward-free agent's mean intrinsic reward per rollout |
//! | `eval/mean_reward`, `eval/std_reward` | each evaluation (a study's grid, or after training) |
//! | `eval/score` | a study's evaluations normalised: 0 for a random policy, 1 at the threshold |
//! | `train/...`, `rollout/exploration_rate`, `transfer/...` | the updates' scalars ([`super::stats`]): their means since the last point, at the first update [`UPDATE_EVERY`] steps or more after it, and at the end |
//!
//! A write that fails (a full disk) is said once and logging stops; training goes on.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Instant;

use super::Event;
use super::stats::TrainStats;
use crate::util::FileError;
use crate::util::tensorboard::EventWriter;

/// The least number of environment steps between two points of the updates' scalars (PPO's
/// rollouts are often longer: then every update is a point; DQN and SAC train every few steps).
pub const UPDATE_EVERY: u64 = 1000;

/// The event file of one run, and what its means need.
pub struct TrainLog {
    writer: Option<EventWriter>,
    recent: VecDeque<(f64, usize)>,
    last: (Instant, u64),
    flushed: Instant,
    /// The updates' scalars since the last point, the step of the last update, and of the point.
    updates: (TrainStats, u64, u64),
    /// Added to every step written (a sequence's later tasks continue its axis).
    offset: u64,
}

impl TrainLog {
    /// A log in the run folder `dir`, starting at environment step `start`.
    pub fn create(dir: &Path, start: u64) -> Result<Self, FileError> {
        let writer = EventWriter::create(dir)?;
        let now = Instant::now();
        let updates = (TrainStats::default(), start, start);
        Ok(TrainLog { writer: Some(writer), recent: VecDeque::new(), last: (now, start), flushed: now, updates, offset: 0 })
    }

    /// The same log writing every step `offset` later (a task of a sequence at its place in it).
    pub fn with_offset(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }

    /// Logs what `event` carries.
    pub fn event(&mut self, event: &Event<'_>) {
        match *event {
            Event::Episode { step, episode } => {
                self.recent.push_back((episode.ret, episode.len));
                if self.recent.len() > 100 {
                    self.recent.pop_front();
                }
                self.write(step, &[("episode/return", episode.ret), ("episode/length", episode.len as f64)]);
            }
            Event::Progress { step } if self.last.0.elapsed().as_secs_f64() >= 1.0 => {
                let fps = (step - self.last.1) as f64 / self.last.0.elapsed().as_secs_f64();
                self.last = (Instant::now(), step);
                let mut values = vec![("time/fps", fps)];
                if !self.recent.is_empty() {
                    let n = self.recent.len() as f64;
                    values.push(("rollout/ep_rew_mean", self.recent.iter().map(|e| e.0).sum::<f64>() / n));
                    values.push(("rollout/ep_len_mean", self.recent.iter().map(|e| e.1 as f64).sum::<f64>() / n));
                }
                self.write(step, &values);
                if self.flushed.elapsed().as_secs() >= 5 {
                    self.flush_writer();
                }
            }
            Event::Intrinsic { step, reward } => self.write(step, &[("rollout/intrinsic_reward", reward)]),
            Event::Update { step, stats } => {
                for &(tag, value) in stats {
                    self.updates.0.add(tag, value);
                }
                self.updates.1 = step;
                if step >= self.updates.2 + UPDATE_EVERY {
                    self.write_updates();
                }
            }
            Event::Progress { .. } | Event::Checkpoint { .. } => {}
        }
    }

    /// Logs an evaluation's mean and standard deviation at `step`, and with `score` (a study's
    /// normalisation: 0 for a random policy, 1 at the threshold) the mean's score.
    pub fn eval(&mut self, step: u64, mean: f64, std: f64, score: Option<&dyn Fn(f64) -> f64>) {
        match score {
            Some(score) => self.write(step, &[("eval/mean_reward", mean), ("eval/std_reward", std), ("eval/score", score(mean))]),
            None => self.write(step, &[("eval/mean_reward", mean), ("eval/std_reward", std)]),
        }
    }

    /// Logs scalars under their tags at `step`.
    pub fn write(&mut self, step: u64, values: &[(&str, f64)]) {
        if let Some(w) = &mut self.writer
            && let Err(e) = w.scalars(step + self.offset, values)
        {
            eprintln!("warning: --tensorboard stops logging: {e}");
            self.writer = None;
        }
    }

    /// Writes the updates' means since the last point, at the last update's step.
    fn write_updates(&mut self) {
        if !self.updates.0.is_empty() {
            let values = self.updates.0.take();
            self.updates.2 = self.updates.1;
            self.write(self.updates.1, &values);
        }
    }

    /// Writes everything out (at the end of a run, or of a part of it).
    pub fn flush(&mut self) {
        self.write_updates();
        self.flush_writer();
    }

    fn flush_writer(&mut self) {
        self.flushed = Instant::now();
        if let Some(w) = &mut self.writer
            && let Err(e) = w.flush()
        {
            eprintln!("warning: --tensorboard stops logging: {e}");
            self.writer = None;
        }
    }
}

impl Drop for TrainLog {
    /// A run that ends by an error or a stop still writes what it has.
    fn drop(&mut self) {
        self.flush();
    }
}
