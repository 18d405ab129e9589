//! Stable-Baselines3 and RL Zoo interop: their models in ([`read`], then [`Model::save`]) and
//! headstart's checkpoints out ([`export`]).
//!
//! An SB3 `MlpPolicy` maps onto headstart's networks name by name:
//!
//! | Stable-Baselines3 | headstart |
//! |---|---|
//! | PPO `mlp_extractor.policy_net.{2i}`, `action_net`, `log_std` | `actor.trunk.{i}`, `actor.head`, `actor.log_std` |
//! | PPO `mlp_extractor.value_net.{2i}`, `value_net` | `critic.trunk.{i}`, `critic.head` |
//! | DQN `q_net.q_net.{2i}` (the last is the head), `q_net_target.…` | `q.trunk.{i}`, `q.head`, `q_target.…` |
//! | SAC `actor.latent_pi.{2i}`, `actor.mu`, `actor.log_std` | `actor.trunk.{i}`, `actor.head`, `actor.log_std` |
//! | SAC `critic.qf{k}.{2i}` (the last is the head), `critic_target.…` | `critic.q{k}.…`, `critic_target.q{k}.…` |
//! | SAC `log_ent_coef` (`pytorch_variables.pth`) | `log_ent_coef` |
//! | `CnnPolicy`'s `NatureCNN` (PPO, A2C, DQN) | `{net}.encoder`, `{net}.trunk.0` (see [`cnn`]) |
//! | `VecNormalize`'s `obs_rms`, `ret_rms` (`vec_normalize.pkl`) | `obs_rms.*`, `ret_rms.*` |
//!
//! The hidden widths come from the tensors' shapes, the activation and the rest from `data`.
//! Not carried: optimiser states, replay buffers (SB3 saves them apart), gSDE's noise matrices
//! (redrawn), schedules other than constant and linear-to-zero (named in the card's `origin`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

use super::checkpoint::{self, Card, CardInfo, Origin};
use super::{Agent, AgentConfig, Algo, EvalStats};
use crate::env::{Env, EnvSpec, Registry, Space};

mod cnn;
mod export;
mod fields;
mod import;
mod kwargs;
mod names;
pub mod pickle;
mod table;
pub mod torch_file;
mod writer;
mod zoo;

pub use export::export;
pub use import::{ReadOptions, read, read_with};
use torch_file::StateTensor;

/// Why an SB3 model could not be imported or exported: the file, the entry in it, the problem.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}{}: {message}", path.display(), entry.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())]
pub struct Sb3Error {
    /// The file.
    pub path: PathBuf,
    /// The entry of the zip (`data`, `policy.pth`), or the tensor, at fault.
    pub entry: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// What is wrong inside an entry, before the caller names the file and entry ([`Sb3Error`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Problem(pub String);

impl From<&str> for Problem {
    fn from(s: &str) -> Self {
        Problem(s.to_string())
    }
}

impl From<String> for Problem {
    fn from(s: String) -> Self {
        Problem(s)
    }
}

impl Sb3Error {
    fn new(path: &Path, entry: Option<&str>, message: String) -> Self {
        Sb3Error { path: path.to_path_buf(), entry: entry.map(str::to_string), message }
    }
}

/// Running statistics of `VecNormalize` (float64).
#[derive(Clone, Debug, PartialEq)]
pub struct Statistics {
    /// Means.
    pub mean: Vec<f64>,
    /// Variances.
    pub var: Vec<f64>,
    /// Samples merged.
    pub count: f64,
}

pub use checkpoint::AlsoRead;

/// An SB3 model, read and mapped onto headstart's names.
#[derive(Clone, Debug)]
pub struct Model {
    /// The algorithm.
    pub algo: Algo,
    /// The hyperparameters that carried over (the rest are headstart's defaults).
    pub config: AgentConfig,
    /// The observation space.
    pub observation_space: Space,
    /// The action space.
    pub action_space: Space,
    /// The network weights under headstart's names.
    pub weights: Vec<StateTensor>,
    /// Observation statistics (`vec_normalize.pkl`).
    pub obs_rms: Option<Statistics>,
    /// Return statistics (`vec_normalize.pkl`).
    pub ret_rms: Option<Statistics>,
    /// The environment id the file name gives (`ppo-CartPole-v1.zip`), if any.
    pub env_id: Option<String>,
    /// The Zoo's `env_kwargs.yml`.
    pub env_kwargs: BTreeMap<String, f64>,
    /// The Zoo's `env_wrapper` and `frame_stack` (`config.yml`) as headstart's transforms.
    pub transforms: Vec<crate::env::Transform>,
    /// `num_timesteps`.
    pub steps: u64,
    /// The `.zip` read.
    pub source: PathBuf,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// The other files the import read (statistics, the Zoo's configuration), with their
    /// SHA-256: with the zip's, what decides whether a cached import is still this model's.
    pub also_read: Vec<AlsoRead>,
    /// `_stable_baselines3_version`.
    pub sb3_version: Option<String>,
    /// What the model holds that headstart does not carry.
    pub not_carried: Vec<String>,
}

impl Model {
    /// A headstart agent with the model's weights and statistics (seeded with `seed` for what
    /// training draws afterwards).
    pub fn agent(&self, seed: u64) -> Result<Box<dyn Agent>, Sb3Error> {
        let fail = |m: String| Sb3Error::new(&self.source, None, m);
        let mut agent = self
            .config
            .build(&self.observation_space, &self.action_space, seed)
            .map_err(|e| fail(format!("the imported configuration is refused: {e}")))?;
        let mut values: HashMap<String, Tensor> = agent.tensors().into_iter().collect();
        let mut set = |name: &str, shape: &[usize], tensor: Tensor| -> Result<(), Sb3Error> {
            let slot = values.get(name).ok_or_else(|| fail(format!("a {} agent has no tensor `{name}`", self.algo)))?;
            let want: Vec<usize> = slot.size().iter().map(|&d| d as usize).collect();
            if want != shape {
                return Err(Sb3Error::new(
                    &self.source,
                    Some(name),
                    format!("shape {shape:?}, but the agent that `data` describes has {want:?}"),
                ));
            }
            let kind = slot.kind();
            values.insert(name.to_string(), tensor.to_kind(kind));
            Ok(())
        };
        for w in &self.weights {
            let dims: Vec<i64> = w.shape.iter().map(|&d| d as i64).collect();
            set(&w.name, &w.shape, Tensor::from_slice(&w.values).reshape(dims))?;
        }
        for (prefix, stats) in [("obs_rms", &self.obs_rms), ("ret_rms", &self.ret_rms)] {
            if let Some(s) = stats {
                set(&format!("{prefix}.mean"), &[s.mean.len()], Tensor::from_slice(&s.mean))?;
                set(&format!("{prefix}.var"), &[s.var.len()], Tensor::from_slice(&s.var))?;
                set(&format!("{prefix}.count"), &[1], Tensor::from_slice(&[s.count]).to_kind(Kind::Double))?;
            }
        }
        // Target networks the model left out are copied from the online ones (all of them: a
        // target without its companions would lag behind them).
        let is_target = |name: &str| name.split('.').next().is_some_and(|net| net.ends_with("_target"));
        let has_targets = values.keys().filter(|n| is_target(n)).all(|n| self.weights.iter().any(|w| &w.name == n));
        agent
            .restore(&mut |name| values.get(name).map(Tensor::shallow_clone), self.steps)
            .map_err(|e| fail(e.to_string()))?;
        if !has_targets {
            agent.sync_targets();
        }
        Ok(agent)
    }

    /// The environment the model names: the id in its file name (a headstart port when
    /// `registry` has one, else `gym:<id>`) with the Zoo's `env_kwargs.yml` and wrappers.
    pub fn env_spec(&self, registry: &Registry) -> Option<EnvSpec> {
        let id = self.env_id.as_ref()?;
        let mut spec = EnvSpec::new(if registry.entry(id).is_ok() { id.clone() } else { format!("gym:{id}") });
        spec.params.extend(self.env_kwargs.clone());
        spec.transforms.clone_from(&self.transforms);
        Some(spec)
    }

    /// Checks that `env` has the model's spaces (bounds equal up to float rounding).
    pub fn check_env(&self, env: &dyn Env, spec: &EnvSpec) -> Result<(), Sb3Error> {
        for (what, ours, theirs) in [
            ("observation", env.observation_space(), &self.observation_space),
            ("action", env.action_space(), &self.action_space),
        ] {
            let same = match (ours, theirs) {
                (Space::Discrete { n: x }, Space::Discrete { n: y }) => x == y,
                (Space::Box { low: l1, high: h1, shape: s1 }, Space::Box { low: l2, high: h2, shape: s2 }) => {
                    let near = |x: &[f32], y: &[f32]| {
                        x.len() == y.len()
                            && x.iter().zip(y).all(|(a, b)| a == b || (a - b).abs() <= 1e-5 * a.abs().max(1.0))
                    };
                    s1.iter().product::<usize>() == s2.iter().product::<usize>() && near(l1, l2) && near(h1, h2)
                }
                _ => false,
            };
            if !same {
                return Err(Sb3Error::new(
                    &self.source,
                    None,
                    format!("the model's {what} space {theirs} is not {spec}'s {ours}"),
                ));
            }
        }
        Ok(())
    }

    /// Saves the model as a headstart checkpoint in `out` for the environment `env` (whose
    /// spaces the caller has checked), its card recording where it came from and `eval`.
    pub fn save(&self, env: &EnvSpec, out: &Path, eval: Option<EvalStats>) -> Result<Card, Sb3Error> {
        let agent = self.agent(0)?;
        let version = self.sb3_version.as_deref().unwrap_or("(version not recorded)");
        let info = CardInfo {
            env,
            mixture: None,
            tasks: None,
            observation_space: &self.observation_space,
            action_space: &self.action_space,
            eval,
            produced_by: format!("headstart import sb3 {}", self.source.display()),
            origin: Some(Origin {
                library: format!("Stable-Baselines3 {version}"),
                file: self.source.display().to_string(),
                sha256: self.sha256.clone(),
                also_read: self.also_read.clone(),
                not_carried: self.not_carried.clone(),
            }),
        };
        checkpoint::save(agent.as_ref(), info, out).map_err(|e| Sb3Error::new(out, None, e.to_string()))
    }
}
