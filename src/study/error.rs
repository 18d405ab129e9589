//! [`StudyError`]: why an experiment is refused, or a run or a report cannot go on. Each
//! message names what it concerns: the file, the field, the target or the unit.
//!
//! A unit that fails while it runs is not an error of the study: its record says so
//! ([`super::UnitStatus::Failed`]) and the other units carry on.

use std::path::PathBuf;

use crate::agent::AgentError;
use crate::agent::checkpoint::CheckpointError;
use crate::env::EnvError;
use crate::transfer::TransferError;
use crate::util::FileError;

/// Why a study cannot be validated, run or reported.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// A field of the experiment holds a value that parsing cannot refuse.
    #[error("field `{field}`: {message}")]
    Field {
        /// The field, as the experiment file spells it (`eval.every`, `strategies`).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A target's environment or variant file is refused.
    #[error("targets[{index}]: {error}")]
    Target {
        /// The target's position in `targets`.
        index: usize,
        /// What the environment layer said.
        error: EnvError,
    },
    /// A strategy does not transfer onto a target (found by validation with a stand-in source).
    #[error("targets[{index}] ({key}), strategy {strategy:?}: {error}")]
    Transfer {
        /// The target's position in `targets`.
        index: usize,
        /// The target's key.
        key: String,
        /// The strategy's label.
        strategy: String,
        /// Why the transfer is refused.
        error: Box<TransferError>,
    },
    /// A task of a sequence (`sequence[i]`) is refused.
    #[error("sequence[{index}]: {error}")]
    Task {
        /// The task's position in `sequence`.
        index: usize,
        /// What the environment layer said.
        error: EnvError,
    },
    /// A phase of a sequence's unit could not train, transfer or evaluate (its record says so).
    #[error("{message}")]
    Training {
        /// What went wrong.
        message: String,
    },
    /// The source's environment (`source.env`) is refused.
    #[error("source.env: {message}")]
    SourceEnv {
        /// What is wrong with it.
        message: String,
    },
    /// The source's preset or configuration (`source.preset`, `source.config`) is refused.
    #[error("{field}: {message}")]
    SourceConfig {
        /// `source.preset` or `source.config`.
        field: &'static str,
        /// What is wrong with them.
        message: String,
    },
    /// The source policy does not load, or a stand-in of its configuration does not build.
    #[error("source: {message}")]
    Source {
        /// What went wrong.
        message: String,
    },
    /// Pretraining the source failed.
    #[error("pretraining the source: {error}")]
    Pretrain {
        /// What the agent said.
        error: AgentError,
    },
    /// A checkpoint (the source's cached copy, or its card at report time) could not be read or
    /// written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Ctrl-C while the source was pretraining.
    #[error("interrupted while pretraining the source (nothing saved; run again to start it over)")]
    PretrainInterrupted,
    /// A target's random-policy return could not be measured.
    #[error("the random-policy return on {env}: {error}")]
    RandomReturn {
        /// The target's environment.
        env: String,
        /// What the environment said.
        error: EnvError,
    },
    /// A unit's preemption checkpoint could not be written, read or restored.
    #[error("{}: {message}", path.display())]
    Resume {
        /// The checkpoint file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The results folder holds another experiment's results.
    #[error(
        "{} holds the results of a different experiment file (its experiment.ron differs); use another --out or remove the folder",
        dir.display()
    )]
    DifferentExperiment {
        /// The results folder.
        dir: PathBuf,
    },
    /// A file of the results folder could not be read or written.
    #[error(transparent)]
    File(#[from] FileError),
    /// A file of the results folder (a unit record, `targets.ron`, ...) does not parse or holds
    /// what no run writes.
    #[error("{}: {message}", path.display())]
    Record {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The summary could not be written as JSON.
    #[error("summary.json: {0}")]
    Json(serde_json::Error),
    /// A figure could not be drawn.
    #[error("{}: {message}", path.display())]
    Figure {
        /// The figure's file.
        path: PathBuf,
        /// What the plotting library said.
        message: String,
    },
    /// The pool of unit threads could not be built.
    #[error("the thread pool: {0}")]
    Pool(rayon::ThreadPoolBuildError),
}

impl StudyError {
    /// A field error.
    pub(crate) fn field(field: &'static str, message: impl Into<String>) -> Self {
        StudyError::Field { field, message: message.into() }
    }

    /// A preemption checkpoint error.
    pub(crate) fn resume(path: &std::path::Path, message: impl std::fmt::Display) -> Self {
        StudyError::Resume { path: path.to_path_buf(), message: message.to_string() }
    }

    /// A file that does not parse or holds what no run writes.
    pub(crate) fn record(path: &std::path::Path, message: impl std::fmt::Display) -> Self {
        StudyError::Record { path: path.to_path_buf(), message: message.to_string() }
    }
}
