//! Training runs: an agent, its environments and its learning curve, as the CLI, the tests and
//! the experiment harness drive them.

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use crate::agent::{Agent, AgentError, Event, Outcome};
use crate::env::{EnvSpec, Registry};

/// One finished training episode: the environment steps taken when it ended, its return and
/// length.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeRecord {
    pub step: u64,
    pub ret: f64,
    pub len: usize,
}

/// The episodes of a training run, in the order they ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    pub episodes: Vec<EpisodeRecord>,
}

impl Curve {
    /// The mean return of the last `n` episodes (fewer when fewer ended).
    pub fn recent_mean(&self, n: usize) -> Option<f64> {
        let tail = &self.episodes[self.episodes.len().saturating_sub(n)..];
        (!tail.is_empty()).then(|| tail.iter().map(|e| e.ret).sum::<f64>() / tail.len() as f64)
    }

    /// Reads what [`Curve::to_csv`] wrote.
    pub fn from_csv(text: &str) -> Result<Curve, String> {
        let mut episodes = Vec::new();
        for (i, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split(',').collect();
            let parsed = match fields.as_slice() {
                [step, ret, len] => step.parse().ok().zip(ret.parse().ok()).zip(len.parse().ok()),
                _ => None,
            };
            let ((step, ret), len) = parsed.ok_or_else(|| format!("line {}: expected step,return,length", i + 1))?;
            episodes.push(EpisodeRecord { step, ret, len });
        }
        Ok(Curve { episodes })
    }

    /// The curve as CSV (`step,return,length`).
    pub fn to_csv(&self) -> String {
        let mut out = String::from("step,return,length\n");
        for e in &self.episodes {
            out.push_str(&format!("{},{},{}\n", e.step, e.ret, e.len));
        }
        out
    }
}

/// Trains `agent` on environments made from `spec` until `total` steps, recording the curve;
/// `on_event` sees every event and may stop the run.
pub fn train(
    registry: &Registry,
    spec: &EnvSpec,
    agent: &mut dyn Agent,
    total: u64,
    curve: &mut Curve,
    on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
) -> Result<Outcome, AgentError> {
    let mut envs = registry.make_vec(spec, agent.config().num_envs())?;
    let mut monitor = |event: Event<'_>| {
        if let Event::Episode { step, episode } = event {
            curve.episodes.push(EpisodeRecord { step, ret: episode.ret, len: episode.len });
        }
        on_event(event)
    };
    agent.learn(&mut envs, total, &mut monitor)
}
