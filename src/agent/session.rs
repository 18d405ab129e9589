//! A training session: one agent trained on one task towards a step budget, with its
//! environments (which log their actions, so that a saved session resumes bit for bit) and its
//! curve. `train`, `transfer` and `pretrain` on the command line, a study's pretrained sources
//! and a study's units all drive one: they differ in what they watch for while it trains and in
//! where they save it, not in how it trains.
//!
//! ```no_run
//! use headstart::agent::{AgentConfig, session::Session, train::Task};
//! use headstart::env::{EnvSpec, Registry};
//!
//! let registry = Registry::builtin();
//! let task = Task::Env(EnvSpec::new("CartPole-v1"));
//! let env = registry.make(task.nominal())?;
//! let mut agent = AgentConfig::from_ron("Ppo()")?.build(env.observation_space(), env.action_space(), 0)?;
//! let mut session = Session::new(&registry, &task, agent.as_mut(), 20_000)?;
//! session.train(&mut |_| std::ops::ControlFlow::Continue(()))?;
//! session.save(None, "example".into(), "runs/example".as_ref())?;
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::ops::ControlFlow;
use std::path::Path;

use super::checkpoint::{Card, CheckpointError};
use super::train::{Curve, EpisodeRecord, Task, save_run, save_training};
use super::{Agent, AgentError, EvalStats, Event, Outcome};
use crate::env::vector::ActionLog;
use crate::env::{Registry, VecEnv};

/// One agent training on one task towards `total` steps.
pub struct Session<'a> {
    agent: &'a mut dyn Agent,
    task: Task,
    envs: VecEnv,
    total: u64,
    /// The episodes that ended (and a reward-free agent's intrinsic rewards), in order.
    pub curve: Curve,
}

impl<'a> Session<'a> {
    /// A session of `agent` on fresh environments of `task` (as many as the agent steps
    /// together), logging their actions.
    pub fn new(registry: &Registry, task: &Task, agent: &'a mut dyn Agent, total: u64) -> Result<Self, AgentError> {
        let mut envs = task.make_vec(registry, agent.config().num_envs())?;
        envs.start_log();
        Ok(Session { agent, task: task.clone(), envs, total, curve: Curve::default() })
    }

    /// Continues a session that stopped: its environments brought to the state `log` recorded
    /// (the agent restored with its training state continues exactly where it stopped), its
    /// curve so far `curve`.
    pub fn resume(&mut self, log: &ActionLog, curve: Curve) -> Result<(), AgentError> {
        self.envs.replay(log)?;
        self.curve = curve;
        Ok(())
    }

    /// The agent.
    pub fn agent(&self) -> &dyn Agent {
        self.agent
    }

    /// The agent, to restore.
    pub fn agent_mut(&mut self) -> &mut dyn Agent {
        self.agent
    }

    /// The task.
    pub fn task(&self) -> &Task {
        &self.task
    }

    /// The step budget.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Moves the budget to `total`: training continues past the old one (PackNet's retraining
    /// after pruning).
    pub fn extend(&mut self, total: u64) {
        self.total = total;
    }

    /// The training environments' action log so far (what [`Session::resume`] replays).
    pub fn log(&self) -> &ActionLog {
        self.envs.log().expect("a session's environments log their actions")
    }

    /// Trains until the budget or until `on_event` stops it (at the next point where stopping
    /// loses nothing), recording the curve; `on_event` sees every event.
    pub fn train(&mut self, on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>) -> Result<Outcome, AgentError> {
        let curve = &mut self.curve;
        let mut monitor = |event: Event<'_>| {
            match event {
                Event::Episode { step, episode } => {
                    curve.episodes.push(EpisodeRecord { step, ret: episode.ret, len: episode.len })
                }
                Event::Intrinsic { step, reward } => curve.intrinsic.push((step, reward)),
                Event::Progress { .. } | Event::Update { .. } | Event::Checkpoint { .. } => {}
            }
            on_event(event)
        };
        self.agent.learn(&mut self.envs, self.total, &mut monitor)
    }

    /// Saves the run into `out`: the checkpoint (its card naming the task, the evaluation and
    /// `produced_by`), `curve.csv` (and `intrinsic.csv`), and the training state that
    /// `train --resume` continues from.
    pub fn save(&self, eval: Option<EvalStats>, produced_by: String, out: &Path) -> Result<Card, CheckpointError> {
        let card = self.save_run(eval, produced_by, out)?;
        save_training(self.agent, self.log(), out)?;
        Ok(card)
    }

    /// [`Session::save`] without the training state (a finished source, say).
    pub fn save_run(&self, eval: Option<EvalStats>, produced_by: String, out: &Path) -> Result<Card, CheckpointError> {
        let spaces = (self.envs.observation_space(), self.envs.action_space());
        save_run(self.agent, &self.task, spaces, eval, &self.curve, produced_by, out)
    }
}
