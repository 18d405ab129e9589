//! What a transfer did: one row per target parameter, the training state, warnings.

use std::fmt;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::Strategy;
use crate::agent::Algo;
use crate::env::{EnvSpec, Map};
use crate::util::ron_options;

/// What happened to one target parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fate {
    /// The source's value, as is.
    Copied,
    /// The source's value carried through the map.
    Mapped,
    /// The source has it, but the strategy keeps the target's fresh initialisation.
    Reinit,
    /// The source has no such parameter: fresh initialisation.
    New,
    /// A layer the strategy added: it starts as the identity on the source's network (or as
    /// the source's column, or the written map), see the strategy's `add`.
    Added,
}

/// Whether a parameter trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frozen {
    /// Trains from the start.
    No,
    /// Frozen for the whole run.
    Always,
    /// Frozen until this environment step.
    Until(u64),
}

/// One target parameter in the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamReport {
    /// The parameter's name in the target agent.
    pub name: String,
    /// The target tensor's shape.
    pub shape: Vec<i64>,
    /// The source tensor's shape, when the source has one of this name.
    pub source_shape: Option<Vec<i64>>,
    /// Where its starting value came from.
    pub fate: Fate,
    /// Whether, and until when, it is frozen.
    pub frozen: Frozen,
    /// Learning-rate factor once unfrozen.
    pub lr_scale: f64,
    /// Whether L2-SP pulls it towards the source.
    pub anchored: bool,
}

/// What a transfer did: per target parameter, and to the training state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransferReport {
    /// The source checkpoint.
    pub source: String,
    /// The environment the source was trained on (from its card).
    pub source_env: EnvSpec,
    /// Environment steps the source was trained for.
    pub source_steps: u64,
    /// The algorithm of both source and target.
    pub algorithm: Algo,
    /// The environment the target trains on.
    pub target_env: EnvSpec,
    /// The strategy's label ([`Strategy::label`]).
    pub strategy: String,
    /// The strategy in full.
    pub settings: Strategy,
    /// The map the tensors were carried through, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<Map>,
    /// One row per target parameter, in the target agent's order.
    pub parameters: Vec<ParamReport>,
    /// Source parameters the target has no place for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
    /// What happened to optimiser state, normalisers, replay buffer and temperature.
    pub state: Vec<String>,
    /// Reasons to doubt that the transfer means what it seems to, such as a source trained on
    /// another environment family.
    pub warnings: Vec<String>,
    /// Target environment steps taken before training (choosing a skill-discovery source's
    /// skill): part of the transfer's cost.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub extra_steps: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl TransferReport {
    /// How many parameters took the source's values (copied or mapped).
    pub fn transferred(&self) -> usize {
        self.parameters.iter().filter(|p| matches!(p.fate, Fate::Copied | Fate::Mapped)).count()
    }

    /// Weights in all and weights that train at some point of the run (not frozen for good).
    pub fn parameter_counts(&self) -> (usize, usize) {
        let numel = |p: &ParamReport| p.shape.iter().map(|&d| d.max(0) as usize).product::<usize>();
        let total = self.parameters.iter().map(numel).sum();
        let trained = self.parameters.iter().filter(|p| p.frozen != Frozen::Always).map(numel).sum();
        (total, trained)
    }

    /// The report as a text table, with the state and warnings below it.
    pub fn table(&self) -> String {
        let shape = |s: &[i64]| format!("{s:?}");
        let rows: Vec<[String; 7]> = self
            .parameters
            .iter()
            .map(|p| {
                [
                    p.name.clone(),
                    shape(&p.shape),
                    p.shape.iter().map(|&d| d.max(0)).product::<i64>().to_string(),
                    p.source_shape.as_deref().map(shape).unwrap_or_else(|| "-".into()),
                    format!("{:?}", p.fate).to_lowercase(),
                    match p.frozen {
                        Frozen::No => "-".into(),
                        Frozen::Always => "frozen".into(),
                        Frozen::Until(s) => format!("until {s}"),
                    },
                    format!("{}{}", p.lr_scale, if p.anchored { " +l2" } else { "" }),
                ]
            })
            .collect();
        let header = ["parameter", "shape", "weights", "source", "fate", "frozen", "lr×"];
        let widths: Vec<usize> = (0..7)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0))
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            padded.join("  ").trim_end().to_string() + "\n"
        };
        let (total, trained) = self.parameter_counts();
        let mut out = format!(
            "transfer {} -> {} ({}, {}): {} of {} parameters from the source; {trained} of {total} weights trained\n",
            self.source,
            self.target_env,
            self.algorithm,
            self.strategy,
            self.transferred(),
            self.parameters.len()
        );
        out += &line(&header.map(String::from));
        for row in &rows {
            out += &line(row);
        }
        for d in &self.dropped {
            out += &format!("dropped: {d} (the target has no such parameter)\n");
        }
        for s in &self.state {
            out += &format!("state: {s}\n");
        }
        for w in &self.warnings {
            out += &format!("warning: {w}\n");
        }
        out
    }

    /// The report as RON (`transfer.ron`).
    pub fn to_ron(&self) -> String {
        crate::util::to_ron(self)
    }

    /// Reads what [`TransferReport::to_ron`] wrote.
    pub fn from_ron(text: &str) -> Result<Self, ron::error::SpannedError> {
        ron_options().from_str(text)
    }
}

pub(super) fn param(name: &str, dst: &Tensor, src: Option<&Tensor>, fate: Fate) -> ParamReport {
    ParamReport {
        name: name.to_string(),
        shape: dst.size(),
        source_shape: src.map(Tensor::size),
        fate,
        frozen: Frozen::No,
        lr_scale: 1.0,
        anchored: false,
    }
}

impl fmt::Display for Fate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", format!("{self:?}").to_lowercase())
    }
}
