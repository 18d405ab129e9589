//! Named hyperparameter presets: the RL Zoo's tuned values per environment, kept as RON files
//! (`src/agent/presets/{ppo,dqn,sac}.ron`) compiled into the binary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AgentConfig, Algo, ron_options};

/// A tuned configuration and the training budget it was tuned for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Environment steps (the Zoo's `n_timesteps`).
    pub steps: u64,
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
