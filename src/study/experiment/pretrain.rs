//! What a `Pretrain` source trains on and with: its task (an environment, a variant file, a
//! mixture or named tasks) and its hyperparameters.

use crate::agent::train::Task;
use crate::agent::{AgentConfig, Objective, presets};
use crate::env::{EnvSpec, Registry, Tasks, Variant};

use super::super::StudyError;
use super::{EnvRef, Pretrain};

impl Pretrain {
    /// One pretraining spec per source: each of `seeds` (else `seed` alone) with a single seed,
    /// the form whose hash names its cached checkpoint (a one-seed spec hashes as before).
    pub fn replicates(&self) -> Vec<Pretrain> {
        if self.seeds.is_empty() {
            return vec![self.clone()];
        }
        self.seeds.iter().map(|&seed| Pretrain { seed, seeds: Vec::new(), ..self.clone() }).collect()
    }

    /// The training task; a mixture must list at least one variant (its first one names the
    /// task), and tasks must each be an environment or a variant file.
    pub fn task(&self) -> Result<Task, StudyError> {
        let source_env = |message: String| StudyError::SourceEnv { message };
        let spec = |env: &EnvRef| match env {
            EnvRef::Env(spec) => Ok(spec.clone()),
            EnvRef::Variant(path) => Variant::load(path).map(|v| v.env).map_err(|e| source_env(e.to_string())),
            _ => Err(source_env("a task is an environment or a variant file, not a mixture or tasks".into())),
        };
        Ok(match &self.env {
            EnvRef::Env(_) | EnvRef::Variant(_) => Task::Env(spec(&self.env)?),
            EnvRef::Mixture(mix) if mix.variants.is_empty() => {
                return Err(source_env("the mixture lists no variant".into()));
            }
            EnvRef::Mixture(mix) => Task::Mixture(mix.clone()),
            EnvRef::Tasks { tasks, .. } if tasks.len() < 2 => {
                return Err(source_env(format!("Tasks needs at least two tasks, not {}", tasks.len())));
            }
            EnvRef::Tasks { tasks, heads } => {
                let tasks: Result<Vec<(String, EnvSpec)>, StudyError> =
                    tasks.iter().map(|(name, env)| Ok((name.clone(), spec(env)?))).collect();
                Task::Tasks(Tasks { tasks: tasks?, heads: *heads })
            }
        })
    }

    /// The hyperparameters ([`Pretrain::agent_config`]) and, for named tasks, the multitask
    /// network's tasks (their spaces read from `registry`).
    pub fn resolved_config(&self, registry: &Registry) -> Result<AgentConfig, StudyError> {
        let config = self.agent_config()?;
        let Task::Tasks(tasks) = self.task()? else { return Ok(config) };
        let layout = tasks.layout(registry).map_err(|e| StudyError::SourceEnv { message: e.to_string() })?;
        config
            .with_tasks(crate::agent::TaskNets::of(&layout))
            .map_err(|e| StudyError::SourceConfig { field: "source.env", message: e.to_string() })
    }

    /// The id of the environment that names the task, if the task resolves.
    pub fn env_id(&self) -> Option<String> {
        self.task().ok().map(|t| t.nominal().id.clone())
    }

    /// The hyperparameters: `config`, else the preset, else the algorithm's defaults.
    pub fn agent_config(&self) -> Result<AgentConfig, StudyError> {
        let explicit = self.config.clone().map(|c| (c, "source.config".to_string()));
        let id = self.env_id().unwrap_or_default();
        let config = presets::resolve(self.algorithm, explicit, self.preset.as_deref(), &id).map_err(|e| match e {
            presets::PresetError::AlgorithmMismatch { config, algo } => StudyError::SourceConfig {
                field: "source.config",
                message: format!("a {config} configuration, but source.algorithm is {algo}"),
            },
            e @ presets::PresetError::UnknownPreset { .. } => {
                StudyError::SourceConfig { field: "source.preset", message: e.to_string() }
            }
        })?;
        match &self.objective {
            // `config` may carry an objective of its own.
            Objective::Reward => Ok(config.config),
            objective => config
                .config
                .with_objective(objective.clone())
                .map_err(|e| StudyError::SourceConfig { field: "source.objective", message: e.to_string() }),
        }
    }
}
