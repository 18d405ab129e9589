//! Experiment files: one RON file describes a whole transfer study (its source, targets,
//! strategies, seeds, budget and evaluation), which `headstart run` executes and `headstart
//! validate` checks without running.
//!
//! ```ron
//! (
//!     version: 1,
//!     name: "cartpole-pole-length",
//!     source: Policy("policies/cartpole-ppo"),
//!     targets: [Env(id: "CartPole-v1", params: {"length": 0.65}), Variant("envs/cartpole-heavy-pole.ron")],
//!     strategies: [(name: "finetune"), (name: "freeze-trunk", freeze: ["actor.trunk"], freeze_until: 10000)],
//!     seeds: 10,
//!     budget: 30000,
//!     eval: (every: 2000, episodes: 10),
//! )
//! ```
//!
//! Scratch is always run; `strategies` lists what is compared with it. Relative paths are
//! relative to the directory `headstart` runs in (the repository root for the shipped files).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::agent::{AgentConfig, Algo, Objective};
use crate::env::tasks::Heads;
use crate::env::{EnvSpec, Map, Mixture, Variant};
use crate::transfer::Strategy;
use crate::util::{describe_ron_error, file_safe, ron_options};

use super::StudyError;
use super::ids::{Metric, TargetId};
pub use super::sequential::{Guard, Spending};

mod guarded;
mod log;
mod matrix;
mod pretrain;

pub use log::Log;

/// The schema version this headstart reads and writes.
pub const VERSION: u32 = 1;

/// A transfer study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// The schema version: 1.
    pub version: u32,
    /// Names the results folder (`runs/<name>`).
    pub name: String,
    /// A paragraph for the report.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The source policy.
    pub source: Source,
    /// The targets it is transferred to.
    pub targets: Vec<Target>,
    /// The strategies compared with scratch (which always runs).
    #[serde(default = "default_strategies")]
    pub strategies: Vec<Strategy>,
    /// Seeds per (target, strategy): 0 to `seeds - 1`. Scratch and every strategy share them,
    /// and with them the environments' seeds (paired runs).
    #[serde(default = "default_seeds")]
    pub seeds: u64,
    /// Target environment steps per run.
    pub budget: u64,
    /// When and how runs are evaluated.
    #[serde(default)]
    pub eval: Eval,
    /// The return at which a target counts as solved [default: the environment's registered
    /// threshold]; the upper end of the normalisation and the mark of time to threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The share of the budget, at its end, whose evaluations make the asymptotic performance.
    #[serde(default = "default_final_fraction")]
    pub final_fraction: f64,
    /// Bootstrap resamples for confidence intervals.
    #[serde(default = "default_resamples")]
    pub resamples: usize,
    /// The metric each headline verdict rests on [default: `Area`]; `Jumpstart`, `Asymptotic`
    /// and `Time` are the others.
    #[serde(default, skip_serializing_if = "is_area")]
    pub primary: Metric,
    /// The smallest difference on the primary metric worth detecting, for the report's power
    /// note [default: [`Experiment::effect`]'s: 0.1 on the normalised metrics, a tenth of the way
    /// from the random policy to the threshold; a tenth of the budget for time to threshold].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<f64>,
    /// Strategies that every other strategy is also compared with, as with scratch (`["finetune"]`:
    /// does an adapter beat fine-tuning?); those verdicts join the study's Holm family.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub against: Vec<String>,
    /// A sequential guard [default: none]: the comparisons with scratch are tested at `looks`
    /// points of the budget, and an arm that crosses the harm boundary is stopped there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<Guard>,
    /// What the units log while they train ([`Log`]; nothing by default); not part of what the
    /// results are (see [`Experiment::identity`]).
    #[serde(default, skip_serializing_if = "Log::is_off")]
    pub log: Log,
}

impl Experiment {
    /// The smallest difference of interest on the primary metric: `effect`, or its default.
    pub fn effect(&self) -> f64 {
        self.effect.unwrap_or(match self.primary {
            Metric::Time => self.budget as f64 / 10.0,
            _ => 0.1,
        })
    }
}

fn is_area(m: &Metric) -> bool {
    *m == Metric::Area
}

fn default_strategies() -> Vec<Strategy> {
    vec![Strategy::finetune()]
}
fn default_seeds() -> u64 {
    10
}
fn default_final_fraction() -> f64 {
    0.2
}
fn default_resamples() -> usize {
    10_000
}

/// Where the source policy comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Source {
    /// A checkpoint folder, such as a shipped policy.
    Policy(PathBuf),
    /// Several checkpoints of one source task (say, pretraining runs with other seeds): target
    /// seed `k` transfers from policy `k mod K`, and verdicts test the per-source differences.
    /// They must share algorithm and spaces.
    Policies(Vec<PathBuf>),
    /// Pretrained by the harness (and cached by the hash of this spec).
    Pretrain(Box<Pretrain>),
    /// A Stable-Baselines3 model, imported once into headstart's cache (see [`Sb3Source`]).
    Sb3(Sb3Source),
    /// A transfer matrix: named sources, each crossed with every target and strategy
    /// (`Matrix([("short", Pretrain(...)), ("long", Policy("..."))])`); scratch is shared per
    /// target. Each is one checkpoint (no `seeds`, no `Policies`); they share algorithm and spaces.
    Matrix(Vec<(String, Source)>),
}

/// A Stable-Baselines3 model as a source: `Sb3(model: "ppo-CartPole-v1.zip")`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sb3Source {
    /// The model: an SB3 `.zip`, or an RL-Zoo-style folder holding one.
    pub model: PathBuf,
    /// The environment id it was trained on [default: the id in its file name, a headstart
    /// port when there is one, else `gym:<id>`, with the Zoo's `env_kwargs.yml`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The `VecNormalize` statistics [default: a `vec_normalize.pkl` beside the model, or in
    /// its RL Zoo folder].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vec_normalize: Option<PathBuf>,
}

impl Sb3Source {
    /// Where its import is cached: `$HEADSTART_CACHE` (else `$XDG_CACHE_HOME/headstart`, else
    /// `~/.cache/headstart`) `/sb3/<the model's path, made file-safe>`. A cached import is
    /// reused while its inputs match its card (see [`super::source::import_sb3`]).
    pub fn dir(&self) -> PathBuf {
        let root = std::env::var_os("HEADSTART_CACHE").map(PathBuf::from).unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(std::env::temp_dir)
                .join("headstart")
        });
        let path = std::path::absolute(&self.model).unwrap_or_else(|_| self.model.clone());
        root.join("sb3").join(crate::util::file_safe(&path.display().to_string()))
    }
}

/// A source the harness trains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pretrain {
    /// The algorithm.
    pub algorithm: Algo,
    /// The environment, variant or mixture to train on.
    pub env: EnvRef,
    /// Environment steps of pretraining.
    pub steps: u64,
    /// Hyperparameters [default: the RL Zoo preset of `preset`, else of the environment's id,
    /// else the algorithm's defaults].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<AgentConfig>,
    /// The environment id whose RL Zoo preset to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// The agent's seed.
    #[serde(default)]
    pub seed: u64,
    /// What the source maximises: the task's reward, or a reward-free objective
    /// (`objective: Rnd()`, PPO only), which never reads the reward.
    #[serde(default, skip_serializing_if = "Objective::is_reward")]
    pub objective: Objective,
    /// Several pretraining seeds instead of `seed`: one source checkpoint each, so that the
    /// study measures the variance between sources too. Target seed `k` transfers from source
    /// `k mod K`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<u64>,
}

/// An environment as experiment files name it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum EnvRef {
    /// An id with parameter overrides and transforms.
    Env(EnvSpec),
    /// A variant file.
    Variant(PathBuf),
    /// A mixture drawn anew each episode (sources only).
    Mixture(Mixture),
    /// Named tasks for a multitask network (sources only): `Tasks(tasks: [("short",
    /// Env(id: "CartPole-v1", params: {"length": 0.3})), ("acrobot", Env(id: "Acrobot-v1"))])`;
    /// each task an environment or a variant file. Environment `i` runs task `i mod T`.
    Tasks {
        /// Each task's name and environment.
        tasks: Vec<(String, EnvRef)>,
        /// A head per task [default], or one shared head reading the task's id.
        #[serde(default)]
        heads: Heads,
    },
}

/// A target: an environment or a variant file (whose declared maps apply), optionally with a
/// map of its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Target {
    /// An id with parameter overrides and transforms.
    Env(EnvSpec),
    /// A variant file.
    Variant(PathBuf),
    /// A target with an explicit map from the source's spaces.
    Mapped {
        /// The environment.
        env: EnvSpec,
        /// How the source's observations and actions map onto it.
        map: Map,
    },
}

/// When and how the target runs are evaluated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Eval {
    /// Evaluate every this many environment steps (and before the first update).
    pub every: u64,
    /// Episodes per evaluation.
    pub episodes: usize,
    /// Greedy / mean actions (the usual report) or sampled ones.
    pub deterministic: bool,
}

impl Default for Eval {
    fn default() -> Self {
        Eval { every: 5000, episodes: 10, deterministic: true }
    }
}

/// A target resolved: its spec, map and a short key for file names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResolvedTarget {
    /// Unique among the experiment's targets, also once made file-safe.
    pub key: TargetId,
    /// The environment.
    pub env: EnvSpec,
    /// The map from the source's spaces, if any.
    pub map: Option<Map>,
}

/// Why an experiment file is refused.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ExperimentError {
    /// The experiment file.
    pub path: PathBuf,
    /// Where and why.
    pub message: String,
}

impl Experiment {
    /// Reads an experiment file. A syntax error names the line and column; an unknown field
    /// names the nearest valid one.
    pub fn load(path: &Path) -> Result<Experiment, ExperimentError> {
        load_versioned(path, |e: &Experiment| e.version)
    }

    /// The experiment as RON.
    pub fn to_ron(&self) -> String {
        crate::util::to_ron(self)
    }

    /// Checks the values that parsing cannot, naming the field.
    pub fn check_fields(&self) -> Result<(), StudyError> {
        let bad = |field: &'static str, message: &str| Err(StudyError::field(field, message));
        if self.name.is_empty() || self.name.contains(['/', '\\']) || self.name.starts_with('.') {
            return bad("name", "must be a non-empty folder name");
        }
        if self.targets.is_empty() {
            return bad("targets", "lists no target");
        }
        if self.seeds == 0 {
            return bad("seeds", "must be at least 1");
        }
        if self.budget == 0 {
            return bad("budget", "must be at least 1");
        }
        if self.eval.every == 0 || self.eval.every > self.budget {
            return bad("eval.every", "must be between 1 and the budget");
        }
        if self.eval.episodes == 0 {
            return bad("eval.episodes", "must be at least 1");
        }
        if !(self.final_fraction > 0.0 && self.final_fraction <= 1.0) {
            return bad("final_fraction", "must be in (0, 1]");
        }
        if self.effect.is_some_and(|e| !(e.is_finite() && e > 0.0)) {
            return bad("effect", "must be a positive number (a difference on the primary metric)");
        }
        if self.resamples < 100 {
            return bad("resamples", "must be at least 100");
        }
        if let Some(guard) = &self.guard {
            guarded::check(guard, self.budget, self.eval.every)?;
            if self.primary != Metric::Area {
                return bad("guard", "tests the area under the curve so far at each look: it needs `primary: Area`");
            }
        }
        let mut labels: Vec<String> = self.strategies.iter().map(Strategy::label).collect();
        let misnamed = |(i, n): &(usize, &String)| self.against[..*i].contains(n) || !labels.contains(n);
        if let Some((i, name)) = self.against.iter().enumerate().find(misnamed) {
            let hint = crate::util::nearest(name, labels.iter().map(String::as_str)).map(|n| format!(" (did you mean {n:?}?)"));
            let why = match (self.against[..i].contains(name), name.as_str()) {
                (true, _) => format!("names {name:?} twice"),
                (_, "scratch") => "names \"scratch\", every strategy's baseline already".to_string(),
                _ => format!("names {name:?}, not a strategy of the experiment ({}){}", labels.join(", "), hint.unwrap_or_default()),
            };
            return bad("against", &why);
        }
        if labels.iter().any(|l| l == "scratch") {
            return bad("strategies", "scratch always runs; list only what is compared with it");
        }
        labels.sort();
        if let Some(w) = labels.windows(2).find(|w| w[0] == w[1]) {
            return bad("strategies", &format!("two strategies are labelled {:?}; give them distinct `name`s", w[0]));
        }
        // Units are stored under the file-safe label: two labels must not share a folder.
        let mut folders: Vec<(String, &String)> = labels.iter().map(|l| (file_safe(l), l)).collect();
        folders.sort();
        if let Some(w) = folders.windows(2).find(|w| w[0].0 == w[1].0) {
            return bad(
                "strategies",
                &format!(
                    "the strategies labelled {:?} and {:?} would share the unit folder {:?}; give them `name`s that differ in letters, digits or `-=._`",
                    w[0].1, w[1].1, w[0].0
                ),
            );
        }
        if let Source::Matrix(members) = &self.source {
            matrix::check(members)?;
            if !self.against.is_empty() {
                return bad("against", "a Matrix compares each source with scratch; `against` is not for matrices");
            }
        }
        if let Source::Policies(dirs) = &self.source {
            if dirs.is_empty() {
                return bad("source", "Policies lists no checkpoint");
            }
            if dirs.len() as u64 > self.seeds {
                return bad(
                    "source",
                    "Policies lists more checkpoints than the experiment has seeds (each needs a target seed)",
                );
            }
            let mut sorted = dirs.clone();
            sorted.sort();
            if sorted.windows(2).any(|w| w[0] == w[1]) {
                return bad("source", "Policies lists a checkpoint twice");
            }
        }
        if let Source::Pretrain(p) = &self.source
            && !p.seeds.is_empty()
        {
            if p.seed != 0 {
                return bad("source.seeds", "give `seed` or `seeds`, not both");
            }
            let mut sorted = p.seeds.clone();
            sorted.sort_unstable();
            if sorted.windows(2).any(|w| w[0] == w[1]) {
                return bad("source.seeds", "lists a seed twice");
            }
            if p.seeds.len() as u64 > self.seeds {
                return bad(
                    "source.seeds",
                    "lists more sources than the experiment has seeds (each source needs a target seed)",
                );
            }
        }
        if let Source::Pretrain(p) = &self.source {
            if p.steps == 0 {
                return bad("source.steps", "must be at least 1");
            }
            if let EnvRef::Mixture(mix) = &p.env
                && mix.variants.is_empty()
            {
                return Err(StudyError::SourceEnv { message: "the mixture lists no variant".into() });
            }
            if let EnvRef::Tasks { tasks, .. } = &p.env
                && tasks.len() < 2
            {
                return bad("source.env", "Tasks needs at least two tasks");
            }
        }
        Ok(())
    }

    /// The targets with their specs and maps, and keys unique among them (also once made
    /// file-safe: a later target whose key is taken gets `-2`, `-3`, ...). A variant's declared
    /// map applies when it names `source_env`, the id of the source's environment.
    pub fn resolve_targets(&self, source_env: Option<&str>) -> Result<Vec<ResolvedTarget>, StudyError> {
        resolve_targets(&self.targets, source_env)
    }
}

/// Reads a RON file of the experiment schema's family (an experiment, a sequence): a syntax
/// error names the line and column, an unknown field the nearest valid one, and the file's
/// `version` must be [`VERSION`].
pub fn load_versioned<T: serde::de::DeserializeOwned>(path: &Path, version: fn(&T) -> u32) -> Result<T, ExperimentError> {
    let err = |message: String| ExperimentError { path: path.to_path_buf(), message };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let value: T = ron_options().from_str(&text).map_err(|e| err(describe_ron_error(&e)))?;
    if version(&value) != VERSION {
        return Err(err(format!("field `version`: {} is not a version this headstart reads ({VERSION})", version(&value))));
    }
    Ok(value)
}

/// [`Experiment::resolve_targets`] of any list of targets (a sequence's tasks, say).
pub fn resolve_targets(targets: &[Target], source_env: Option<&str>) -> Result<Vec<ResolvedTarget>, StudyError> {
    let mut out: Vec<ResolvedTarget> = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        let (key, env, map) = match target {
            Target::Env(env) => (env_key(env), env.clone(), None),
            Target::Mapped { env, map } => (env_key(env), env.clone(), Some(map.clone())),
            Target::Variant(path) => {
                let variant = Variant::load(path).map_err(|error| StudyError::Target { index, error })?;
                let map = source_env.and_then(|id| variant.maps.get(id).cloned());
                (variant.name.clone(), variant.env, map)
            }
        };
        let taken = |k: &str| out.iter().any(|t| file_safe(t.key.as_str()) == file_safe(k));
        let mut unique = key.clone();
        let mut n = 2;
        while taken(&unique) {
            unique = format!("{key}-{n}");
            n += 1;
        }
        out.push(ResolvedTarget { key: TargetId::new(unique), env, map });
    }
    Ok(out)
}

impl Source {
    /// The checkpoint folders of a `Policy`, `Policies` or `Sb3` source (`None` for
    /// `Pretrain`); an `Sb3` source's is its import's (see [`super::source::import_sb3`]).
    pub fn policy_dirs(&self) -> Option<Vec<PathBuf>> {
        match self {
            Source::Policy(dir) => Some(vec![dir.clone()]),
            Source::Policies(dirs) => Some(dirs.clone()),
            Source::Sb3(s) => Some(vec![s.dir()]),
            Source::Pretrain(_) | Source::Matrix(_) => None,
        }
    }
}


/// A file-name-safe key for an environment spec: `CartPole-v1-length=0.65`.
fn env_key(env: &EnvSpec) -> String {
    let mut key = env.id.clone();
    for (k, v) in &env.params {
        key.push_str(&format!("-{k}={v}"));
    }
    if !env.transforms.is_empty() {
        key.push_str("-transformed");
    }
    key.chars().map(|c| if c.is_ascii_alphanumeric() || "-=._".contains(c) { c } else { '_' }).collect()
}
