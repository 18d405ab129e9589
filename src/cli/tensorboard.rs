//! `--tensorboard DIR`: a run's scalars as TensorBoard event files, one run folder per run
//! (`DIR/<the output folder's name>`), under Stable-Baselines3's tag names where SB3 has one.
//!
//! | tag | when |
//! |---|---|
//! | `episode/return`, `episode/length` | every finished episode, at its step |
//! | `rollout/ep_rew_mean`, `rollout/ep_len_mean` | the last 100 episodes' means, at most once a second |
//! | `time/fps` | environment steps a second since the last point |
//! | `rollout/intrinsic_reward` | a reward-free agent's mean intrinsic reward per rollout |
//! | `eval/mean_reward`, `eval/std_reward` | the evaluation after training |
//!
//! A write that fails (a full disk) is said once and logging stops; training goes on.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Instant;

use crate::agent::{EvalStats, Event};
use crate::util::tensorboard::EventWriter;

/// The event file of one run, and what its means need.
pub(super) struct TrainLog {
    writer: Option<EventWriter>,
    recent: VecDeque<(f64, usize)>,
    last: (Instant, u64),
    flushed: Instant,
}

impl TrainLog {
    /// A log in `dir/run`, starting at environment step `start`.
    pub(super) fn create(dir: &Path, run: &str, start: u64) -> anyhow::Result<Self> {
        let writer = EventWriter::create(&dir.join(run))?;
        let now = Instant::now();
        Ok(TrainLog { writer: Some(writer), recent: VecDeque::new(), last: (now, start), flushed: now })
    }

    /// Logs what `event` carries.
    pub(super) fn event(&mut self, event: &Event<'_>) {
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
                    self.flush();
                }
            }
            Event::Intrinsic { step, reward } => self.write(step, &[("rollout/intrinsic_reward", reward)]),
            Event::Progress { .. } | Event::Checkpoint { .. } => {}
        }
    }

    /// Logs the evaluation after training, at `step`, and writes everything out.
    pub(super) fn finish(&mut self, step: u64, eval: Option<&EvalStats>) {
        if let Some(e) = eval {
            self.write(step, &[("eval/mean_reward", e.mean), ("eval/std_reward", e.std)]);
        }
        self.flush();
    }

    fn write(&mut self, step: u64, values: &[(&str, f64)]) {
        if let Some(w) = &mut self.writer
            && let Err(e) = w.scalars(step, values)
        {
            eprintln!("warning: --tensorboard stops logging: {e}");
            self.writer = None;
        }
    }

    fn flush(&mut self) {
        self.flushed = Instant::now();
        if let Some(w) = &mut self.writer
            && let Err(e) = w.flush()
        {
            eprintln!("warning: --tensorboard stops logging: {e}");
            self.writer = None;
        }
    }
}
