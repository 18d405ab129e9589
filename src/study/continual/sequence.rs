//! A sequence experiment in RON: the tasks in the order they are trained, the agent, the methods
//! compared at every task change, seeds, budget and evaluation.
//!
//! ```ron
//! (
//!     version: 1,
//!     name: "continual-cartpole",
//!     sequence: [Env(id: "CartPole-v1"), Env(id: "CartPole-v1", params: {"length": 1.0}), Variant("envs/cartpole-swapped-actions.ron")],
//!     agent: (algorithm: Dqn, preset: "CartPole-v1"),
//!     methods: [(name: "finetune"), (name: "l2", strategy: (l2_init: 0.01)), (name: "ewc", protect: Ewc(lambda: 100.0)),
//!               (name: "packnet", protect: PackNet()), (name: "replay", strategy: (reset: (replay: false)))],
//!     seeds: 5,
//!     budget: 30000,
//!     eval: (every: 3000, episodes: 10),
//! )
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::agent::{AgentConfig, Algo, presets};
use crate::env::Registry;
use crate::env::tasks::{Heads, Tasks};
use crate::transfer::Strategy;
use crate::transfer::continual::Protect;
use crate::util::{file_safe, ron_options};

use crate::study::StudyError;
use crate::study::experiment::{Eval, ExperimentError, Log, ResolvedTarget, Target, load_versioned, resolve_targets};

/// The method every other is compared with as the continual baseline (added when not listed).
pub const BASELINE: &str = "finetune";
/// The reference of forward transfer: every task learned alone, from scratch, with the same
/// budget and seed (always run).
pub const SINGLE: &str = "single-task";

/// A study of transfer along a sequence of tasks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sequence {
    /// The schema version: 1.
    pub version: u32,
    /// Names the results folder (`runs/<name>`).
    pub name: String,
    /// A paragraph for the report.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The tasks, in the order they are trained (environments or variants with the same spaces).
    pub sequence: Vec<Target>,
    /// Passes over the sequence (Continual World's CW20 is CW10 twice) [default: 1].
    #[serde(default = "one")]
    pub repeats: usize,
    /// Whether the network is told the task [default: no: one network over the tasks'
    /// observations as they come]. `Shared`: every task's observation in its own block of one
    /// shared input with the task's one-hot id (a separate input layer per task, the hidden
    /// layers and the head shared); `PerTask`: a head per task as well (Continual World's
    /// multi-head setting). The task id is then known at evaluation; tasks may differ in their
    /// spaces. PPO and A2C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<Heads>,
    /// The agent trained along the sequence.
    pub agent: AgentSpec,
    /// What happens at every task change, each compared with fine-tuning and with single-task
    /// training.
    pub methods: Vec<Method>,
    /// Seeds per method: 0 to `seeds - 1` (shared by every method: paired environments).
    #[serde(default = "five")]
    pub seeds: u64,
    /// Environment steps per task.
    pub budget: u64,
    /// When and how every task is evaluated (all tasks at every point).
    #[serde(default)]
    pub eval: Eval,
    /// The return at which a task counts as solved, for every task [default: each environment's
    /// registered threshold]: the upper end of the normalised scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// What the units log while they train (`log: (tensorboard: true)`: a TensorBoard run per
    /// method and seed, `<results>/tensorboard/<method>/seed<k>`, its steps along the whole
    /// sequence); not part of what the results are.
    #[serde(default, skip_serializing_if = "Log::is_off")]
    pub log: Log,
}

fn one() -> usize {
    1
}
fn five() -> u64 {
    5
}

/// The agent: an algorithm with the RL Zoo preset of `preset` (else of the first task's id, else
/// the defaults), or an explicit `config`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// The algorithm.
    pub algorithm: Algo,
    /// The environment id whose preset to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Hyperparameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<AgentConfig>,
}

/// A method: how the agent at the end of one task starts the next.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Method {
    /// The label in reports and the results folder.
    pub name: String,
    /// The transfer from the previous task's agent [default: fine-tuning everything, optimiser
    /// reset]: Continual World's reset flags are `reset` (`optimizer`, `replay`) and `reinit`
    /// (`["critic"]`), L2 towards the previous weights is `l2_init`, distillation `distill`.
    #[serde(default = "Strategy::finetune")]
    pub strategy: Strategy,
    /// What protects the earlier tasks besides: EWC, MAS or PackNet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protect: Option<Protect>,
}

impl Method {
    /// Whether every task starts from scratch (the single-task reference).
    pub fn is_single(&self) -> bool {
        !self.strategy.copy
    }
}

impl Sequence {
    /// Reads a sequence file. A syntax error names the line and column; an unknown field names
    /// the nearest valid one.
    pub fn load(path: &Path) -> Result<Sequence, ExperimentError> {
        load_versioned(path, |s: &Sequence| s.version)
    }

    /// Whether the RON file at `path` describes a sequence (it has a `sequence` field) rather
    /// than a transfer study; `false` when it cannot be read (the study's loader says why).
    pub fn is_sequence_file(path: &Path) -> bool {
        #[derive(Deserialize)]
        struct Peek {
            sequence: Option<serde::de::IgnoredAny>,
        }
        let Ok(text) = std::fs::read_to_string(path) else { return false };
        ron_options().from_str::<Peek>(&text).is_ok_and(|p| p.sequence.is_some())
    }

    /// The sequence as RON (what a results folder's `sequence.ron` holds): without its `log`,
    /// so that a results folder accepts the file with or without.
    pub fn to_ron(&self) -> String {
        crate::util::to_ron(&Sequence { log: Log::default(), ..self.clone() })
    }

    /// The methods run: the baseline first (as listed, else plain fine-tuning), then the
    /// others as listed, then the single-task reference.
    pub fn methods(&self) -> Vec<Method> {
        let listed = |name: &str| self.methods.iter().find(|m| m.name == name).cloned();
        let mut out = vec![listed(BASELINE).unwrap_or(Method {
            name: BASELINE.into(),
            strategy: Strategy::finetune(),
            protect: None,
        })];
        out.extend(self.methods.iter().filter(|m| m.name != BASELINE && m.name != SINGLE).cloned());
        out.push(listed(SINGLE).unwrap_or(Method {
            name: SINGLE.into(),
            strategy: Strategy::scratch(),
            protect: None,
        }));
        out
    }

    /// The number of training phases: tasks times repeats.
    pub fn phases(&self) -> usize {
        self.sequence.len() * self.repeats
    }

    /// The tasks with their specs and keys.
    pub fn tasks(&self) -> Result<Vec<ResolvedTarget>, StudyError> {
        resolve_targets(&self.sequence, None)
    }

    /// With task ids, the tasks as a multitask network sees them (named by their keys).
    pub fn named_tasks(&self, tasks: &[TaskInfo]) -> Option<Tasks> {
        let heads = self.heads?;
        let named = tasks.iter().map(|t| (t.task.key.to_string(), t.task.env.clone())).collect();
        Some(Tasks { tasks: named, heads })
    }

    /// The agent's hyperparameters: `agent.config`, else the preset, else the defaults.
    pub fn agent_config(&self) -> Result<AgentConfig, StudyError> {
        let explicit = self.agent.config.clone().map(|c| (c, "agent.config".to_string()));
        let first = self.tasks().ok().and_then(|t| t.first().map(|t| t.env.id.clone())).unwrap_or_default();
        presets::resolve(self.agent.algorithm, explicit, self.agent.preset.as_deref(), &first)
            .map(|r| r.config)
            .map_err(|e| match e {
                presets::PresetError::AlgorithmMismatch { config, algo } => StudyError::SourceConfig {
                    field: "agent.config",
                    message: format!("a {config} configuration, but agent.algorithm is {algo}"),
                },
                e => StudyError::SourceConfig { field: "agent.preset", message: e.to_string() },
            })
    }

    /// Checks the values that parsing cannot, naming the field.
    pub fn check_fields(&self) -> Result<(), StudyError> {
        let bad = |field: &'static str, message: String| Err(StudyError::field(field, message));
        if self.name.is_empty() || self.name.contains(['/', '\\']) || self.name.starts_with('.') {
            return bad("name", "must be a non-empty folder name".into());
        }
        if self.sequence.len() < 2 {
            return bad("sequence", "needs at least two tasks".into());
        }
        if self.sequence.iter().any(|t| matches!(t, Target::Mapped { .. })) {
            return bad("sequence", "a task with a map: every task must share the first task's spaces".into());
        }
        if !(1..=100).contains(&self.repeats) {
            return bad("repeats", "must be between 1 and 100".into());
        }
        if !(3..=1000).contains(&self.seeds) {
            return bad("seeds", "must be between 3 and 1000 (verdicts need 3 seeds per method)".into());
        }
        if self.budget == 0 {
            return bad("budget", "must be positive".into());
        }
        if self.eval.every == 0 || self.eval.every > self.budget {
            return bad("eval.every", format!("must be between 1 and the budget ({})", self.budget));
        }
        if self.eval.episodes == 0 {
            return bad("eval.episodes", "must be at least 1".into());
        }
        if self.threshold.is_some_and(|t| !t.is_finite()) {
            return bad("threshold", "must be finite".into());
        }
        if self.methods.is_empty() {
            return bad("methods", "lists no method".into());
        }
        if self.heads.is_some() && !matches!(self.agent.algorithm, Algo::Ppo | Algo::A2c) {
            let message = format!("task ids are PPO's and A2C's multitask networks; agent.algorithm is {}", self.agent.algorithm);
            return bad("heads", message);
        }
        let methods = self.methods();
        for (i, m) in methods.iter().enumerate() {
            if self.heads.is_some() && !m.strategy.add.is_empty() {
                return bad("methods", format!("`{}`: added layers on a network with task ids are not supported", m.name));
            }
            if m.name.is_empty() || file_safe(&m.name) != m.name {
                return bad(
                    "methods",
                    format!("`{}`: a name must be non-empty and file-safe (letters, digits, - _ .)", m.name),
                );
            }
            if methods[..i].iter().any(|o| o.name == m.name) {
                return bad("methods", format!("`{}` is listed twice", m.name));
            }
            let at = |e: crate::transfer::TransferError| StudyError::field("methods", format!("`{}`: {e}", m.name));
            m.strategy.validate().map_err(at)?;
            if let Some(protect) = &m.protect {
                protect.validate().map_err(at)?;
                protect.check_algo(self.agent.algorithm).map_err(at)?;
                if matches!(protect, Protect::PackNet { .. }) && self.repeats > 1 {
                    return bad(
                        "methods",
                        format!(
                            "`{}`: PackNet gives each task its own weights once; with `repeats` > 1 there are none left for the second pass",
                            m.name
                        ),
                    );
                }
            }
            if m.is_single() && m.name != SINGLE {
                return bad(
                    "methods",
                    format!(
                        "`{}`: `copy: false` is the single-task reference, which always runs as `{SINGLE}`",
                        m.name
                    ),
                );
            }
        }
        Ok(())
    }
}

/// What checking a sequence resolves: its tasks with their thresholds and random-policy returns.
pub struct Checked {
    /// The tasks, in order.
    pub tasks: Vec<TaskInfo>,
    /// The agent's hyperparameters.
    pub config: AgentConfig,
}

/// A task of the sequence as the results folder records it (`tasks.ron`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// The task's key and environment.
    pub task: ResolvedTarget,
    /// The return that counts as solved.
    pub threshold: f64,
    /// What uniformly random actions score (100 seeded episodes).
    pub random_return: f64,
}

impl TaskInfo {
    /// A return on the scale where random actions score 0 and the threshold 1.
    pub fn normalise(&self, ret: f64) -> f64 {
        (ret - self.random_return) / (self.threshold - self.random_return)
    }
}

/// Checks a sequence against the registry without training: every task builds and shares the
/// first task's spaces, thresholds stand above random returns, the agent builds, and every
/// method transfers from an agent of the first task onto every task. With a results `folder`,
/// the random returns its `tasks.ron` records are read rather than measured again (a resumed
/// run, or another process on the same folder), as a study's `targets.ron` are.
pub fn check(sequence: &Sequence, registry: &Registry, folder: Option<&Path>) -> Result<Checked, StudyError> {
    sequence.check_fields()?;
    let tasks = sequence.tasks()?;
    let recorded: Vec<TaskInfo> = crate::study::validate::recorded(folder, "tasks.ron");
    let mut spaces = None;
    let mut out = Vec::new();
    for (index, t) in tasks.into_iter().enumerate() {
        let env = registry.make(&t.env).map_err(|error| StudyError::Task { index, error })?;
        let these = (env.observation_space().clone(), env.action_space().clone());
        match &spaces {
            None => spaces = Some(these),
            Some(first) if *first != these && sequence.heads.is_none() => {
                return Err(StudyError::field(
                    "sequence",
                    format!(
                        "sequence[{index}] ({}) has observations {} and actions {}, the first task {} and {}: one network \
                         serves every task, so they must match",
                        t.key, these.0, these.1, first.0, first.1
                    ),
                ));
            }
            Some(_) => {}
        }
        let threshold = sequence.threshold.or_else(|| registry.entry(&t.env.id).ok().and_then(|e| e.threshold()));
        let Some(threshold) = threshold else {
            return Err(StudyError::field(
                "threshold",
                format!("{} registers no reward threshold, so the sequence must give one", t.env.id),
            ));
        };
        let random_return = match recorded.iter().find(|r| r.task.env == t.env) {
            Some(r) => r.random_return,
            None => crate::study::validate::random_return(registry, &t.env)?,
        };
        if threshold <= random_return {
            return Err(StudyError::field(
                "threshold",
                format!(
                    "sequence[{index}] ({}): {threshold} is not above the random policy's return {random_return:.2}",
                    t.key
                ),
            ));
        }
        out.push(TaskInfo { task: t, threshold, random_return });
    }
    let mut config = sequence.agent_config()?;
    let (mut obs, mut act) = spaces.expect("at least two tasks");
    if let Some(tasks) = sequence.named_tasks(&out) {
        let layout = tasks.layout(registry).map_err(|e| StudyError::field("heads", e.to_string()))?;
        config = config
            .with_tasks(crate::agent::TaskNets::of(&layout))
            .map_err(|e| StudyError::field("heads", e.to_string()))?;
        (obs, act) = (layout.observation_space(), layout.action_space());
    }
    let standin = config
        .build(&obs, &act, 0)
        .map_err(|e| StudyError::SourceConfig { field: "agent.config", message: e.to_string() })?;
    let card = crate::study::validate::standin_card(&config, &out[0].task.env, &obs, &act, standin.as_ref());
    let loaded = crate::agent::checkpoint::Loaded { card, agent: standin };
    for m in sequence.methods().iter().filter(|m| !m.is_single()) {
        let off_policy = matches!(config.algo(), Algo::Dqn | Algo::Sac | Algo::Td3);
        if !m.strategy.reset.replay && !off_policy {
            return Err(StudyError::field(
                "methods",
                format!(
                    "`{}`: `reset: (replay: false)` replays earlier tasks from the replay buffer, which {} has not",
                    m.name,
                    config.algo()
                ),
            ));
        }
        // The stand-in has an empty buffer; the previous task's agent will have one.
        let strategy = crate::transfer::Strategy {
            reset: crate::transfer::Resets { replay: true, ..m.strategy.reset },
            ..m.strategy.clone()
        };
        for (index, t) in out.iter().enumerate() {
            let spaces = (&obs, &act);
            super::unit::hop(registry, &loaded, "previous task", &t.task.env, spaces, &strategy, sequence.heads.is_some(), 0).map_err(
                |error| {
                    StudyError::field(
                        "methods",
                        format!("`{}` onto sequence[{index}] ({}): {error}", m.name, t.task.key),
                    )
                },
            )?;
        }
    }
    Ok(Checked { tasks: out, config })
}
