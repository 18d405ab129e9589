//! Helpers shared by the test binaries.

use std::path::Path;

use headstart::agent::Agent;
use headstart::agent::checkpoint::{self, CardInfo};
use headstart::env::{EnvSpec, Registry};

/// Saves `agent`, trained on `spec`, as a checkpoint in `dir`; the card says `produced_by`.
pub fn save_checkpoint(agent: &dyn Agent, spec: &EnvSpec, dir: &Path, produced_by: &str) {
    let env = Registry::builtin().make(spec).unwrap();
    let info = CardInfo {
        env: spec,
        mixture: None,
        tasks: None,
        observation_space: env.observation_space(),
        action_space: env.action_space(),
        eval: None,
        produced_by: produced_by.into(),
        origin: None,
    };
    checkpoint::save(agent, info, dir).unwrap();
}
