//! Named hyperparameter presets: the RL Zoo's tuned values per environment, kept as RON files
//! (`src/agent/presets/{ppo,dqn,sac,a2c,td3}.ron`) compiled into the binary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AgentConfig, Algo};
use crate::util::ron_options;

/// A tuned configuration and the training budget it was tuned for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Environment steps (the Zoo's `n_timesteps`).
    pub steps: u64,
    /// The tuned hyperparameters.
    pub config: AgentConfig,
}

fn source(algo: Algo) -> &'static str {
    match algo {
        Algo::Ppo => include_str!("presets/ppo.ron"),
        Algo::Dqn => include_str!("presets/dqn.ron"),
        Algo::Sac => include_str!("presets/sac.ron"),
        Algo::A2c => include_str!("presets/a2c.ron"),
        Algo::Td3 => include_str!("presets/td3.ron"),
    }
}

/// Every preset of an algorithm, by environment id.
pub fn all(algo: Algo) -> BTreeMap<String, Preset> {
    ron_options().from_str(source(algo)).unwrap_or_else(|e| panic!("presets/{}.ron is malformed: {e}", algo.name()))
}

/// The preset of `algo` for an environment id, if the Zoo tuned one.
pub fn get(algo: Algo, env_id: &str) -> Option<Preset> {
    all(algo).remove(env_id)
}

/// Whether `env_id` names an Arcade Learning Environment game (`gym:ALE/Breakout-v5`,
/// `gym:BreakoutNoFrameskip-v4`), whose presets are the Zoo's `atari`.
pub fn is_atari(env_id: &str) -> bool {
    let name = env_id.rsplit(':').next().unwrap_or(env_id);
    name.starts_with("ALE/") || name.contains("NoFrameskip-v")
}

/// Hyperparameters chosen by the one precedence every command follows: an explicit `config`,
/// else the named `preset` (an error if the Zoo has none), else the preset of `env_id`, else
/// the algorithm's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The configuration.
    pub config: AgentConfig,
    /// The budget of the preset, when one was used.
    pub steps: Option<u64>,
    /// Where the configuration came from, in words (`RL Zoo preset PPO CartPole-v1`).
    pub origin: String,
}

/// Why hyperparameters could not be resolved. Callers name the flag or field at fault
/// (`--config`, `source.preset`, ...).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PresetError {
    /// An explicit configuration of another algorithm.
    #[error("a {config} configuration, but the algorithm is {algo}")]
    AlgorithmMismatch {
        /// The configuration's algorithm.
        config: Algo,
        /// The algorithm asked for.
        algo: Algo,
    },
    /// A named preset the RL Zoo has no values for.
    #[error("no {algo} preset for {id:?} (presets: {})", known.join(", "))]
    UnknownPreset {
        /// The algorithm.
        algo: Algo,
        /// The preset's environment id.
        id: String,
        /// The ids the algorithm has presets for.
        known: Vec<String>,
    },
}

/// Resolves hyperparameters for `algo` on `env_id` (see [`Resolved`]); an explicit `config`
/// comes with words for where it came from.
pub fn resolve(
    algo: Algo,
    config: Option<(AgentConfig, String)>,
    preset: Option<&str>,
    env_id: &str,
) -> Result<Resolved, PresetError> {
    if let Some((config, origin)) = config {
        if config.algo() != algo {
            return Err(PresetError::AlgorithmMismatch { config: config.algo(), algo });
        }
        return Ok(Resolved { config, steps: None, origin });
    }
    let id = preset.unwrap_or(if is_atari(env_id) { "atari" } else { env_id });
    match get(algo, id) {
        Some(found) => Ok(Resolved {
            config: found.config,
            steps: Some(found.steps),
            origin: format!("{} preset {algo} {id}", if id.starts_with("MinAtar/") { "MinAtar paper" } else { "RL Zoo" }),
        }),
        None if preset.is_some() => {
            Err(PresetError::UnknownPreset { algo, id: id.to_string(), known: all(algo).into_keys().collect() })
        }
        None => {
            Ok(Resolved { config: AgentConfig::default_for(algo), steps: None, origin: format!("{algo} defaults") })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_matches_its_algorithm() {
        for algo in Algo::ALL {
            let presets = all(algo);
            assert!(!presets.is_empty());
            for (id, preset) in presets {
                assert_eq!(preset.config.algo(), algo, "{id}");
            }
        }
        assert_eq!(get(Algo::Ppo, "CartPole-v1").unwrap().steps, 100_000);
        assert!(get(Algo::Dqn, "Pendulum-v1").is_none());
    }
}
