//! Inter-task mappings (Taylor & Stone's χ_S and χ_A): how a target environment's observation
//! features and actions relate to a source environment's. A variant file declares them by
//! source id; the transfer layer carries tensors through them (`transfer::map`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::EnvError;

/// How target observations and actions correspond to the source's. Written in RON beside a
/// variant (`maps: {"CartPole-v1": (obs: Index([0, 1, 2, 3, None]))}`) or in a strategy file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Map {
    /// The target's observation in terms of the source's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obs: Option<ObsMap>,
    /// For each target action (Discrete index or Box dimension), the source action it plays the
    /// part of; `None` for an action the source lacks (its weights start fresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<Option<usize>>>,
}

/// The source observation as a function of the target's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ObsMap {
    /// For each target feature, the source feature it is (`None`: a feature the source never
    /// saw, whose input weights start at zero).
    Index(Vec<Option<usize>>),
    /// `source = M · target`: one row per source feature, one column per target feature.
    Linear(Vec<Vec<f64>>),
}

impl Map {
    /// Reads a map file (RON), refusing unknown fields; errors name the file, line and column.
    pub fn load(path: &Path) -> Result<Map, EnvError> {
        let file_error = |message: String| EnvError::File { path: path.to_path_buf(), message };
        let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
        crate::util::ron_options().from_str(&text).map_err(|e| file_error(e.to_string()))
    }
}
