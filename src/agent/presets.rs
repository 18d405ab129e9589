//! Named hyperparameter presets: the RL Zoo's tuned values per environment, kept as RON files
//! (`src/agent/presets/{ppo,dqn,sac}.ron`) compiled into the binary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AgentConfig, AgentError, Algo};
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

/// Resolves hyperparameters for `algo` on `env_id` (see [`Resolved`]); `config_origin` names
/// where an explicit `config` came from.
pub fn resolve(
    algo: Algo,
    config: Option<(AgentConfig, String)>,
    preset: Option<&str>,
    env_id: &str,
) -> Result<Resolved, AgentError> {
    if let Some((config, origin)) = config {
        if config.algo() != algo {
            return Err(AgentError::Unsupported(format!(
                "{origin}: a {} configuration, but the algorithm is {algo}",
                config.algo()
            )));
        }
        return Ok(Resolved { config, steps: None, origin });
    }
    let id = preset.unwrap_or(env_id);
    match get(algo, id) {
        Some(found) => Ok(Resolved {
            config: found.config,
            steps: Some(found.steps),
            origin: format!("RL Zoo preset {algo} {id}"),
        }),
        None if preset.is_some() => {
            let known: Vec<String> = all(algo).into_keys().collect();
            Err(AgentError::Config {
                field: "preset",
                message: format!("no {algo} preset for {id:?} (presets: {})", known.join(", ")),
            })
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
