//! What a study's units log while they train (`log: (tensorboard: true)`): TensorBoard event
//! files in `<results>/tensorboard/<target>/<arm>/seed<k>`.

use serde::{Deserialize, Serialize};

use super::Experiment;

/// What a study's units log while they train.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// TensorBoard event files: episodes, their running means, steps a second, evaluations.
    #[serde(default)]
    pub tensorboard: bool,
}

impl Log {
    pub(crate) fn is_off(&self) -> bool {
        !self.tensorboard
    }
}

impl Experiment {
    /// What the results depend on, as RON (what a results folder's `experiment.ron` holds): the
    /// experiment without its `log`, so that a results folder accepts the file with or without.
    pub fn identity(&self) -> String {
        Experiment { log: Log::default(), ..self.clone() }.to_ron()
    }
}
