//! Why a transfer was refused.

use crate::agent::checkpoint::CheckpointError;
use crate::agent::{AgentError, Algo};
use crate::env::EnvError;
use crate::util::FileError;

/// Why a transfer was refused. Each names the tensor, field or part at fault.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// An error of the agent layer (building the target agent, carrying its state), passed on.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// An error of the environment layer (making the target environment), passed on.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// A source checkpoint that cannot be read, passed on.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A folder or file that cannot be read.
    #[error(transparent)]
    File(#[from] FileError),
    /// The source checkpoint and the target agent are of different algorithms: weights move only
    /// between agents of one algorithm.
    #[error(
        "the source is a {source} policy and the target agent is {target}: transfer moves weights between agents \
         of one algorithm ({source} handles {}, {target} handles {}); train the target with {source}, or pretrain a {target} source",
        source_algo.supports(),
        target.supports(),
        source = source_algo
    )]
    AlgorithmMismatch {
        /// The source checkpoint's algorithm.
        source_algo: Algo,
        /// The target agent's algorithm.
        target: Algo,
    },
    /// A source tensor that cannot take the target's place: its rank differs, or its shape
    /// (after the map, when one applies) differs and the strategy does not re-initialise it.
    #[error("tensor `{tensor}` is {source_shape:?} in the source but {target:?} in the target: {hint}")]
    ShapeMismatch {
        /// The parameter's name.
        tensor: String,
        /// The source tensor's shape, after the map when one applies.
        source_shape: Vec<i64>,
        /// The target tensor's shape.
        target: Vec<i64>,
        /// What to do about it: declare a map, re-initialise the part, or build the target with
        /// the source's network.
        hint: String,
    },
    /// A tensor that the map cannot carry, in a part that is not re-initialised.
    #[error("map: tensor `{tensor}`: {message}")]
    Map {
        /// The parameter's name.
        tensor: String,
        /// Why the map does not fit it.
        message: String,
    },
    /// A part pattern of the strategy that names no target parameter.
    #[error("strategy field `{field}`: part {pattern:?} matches no parameter{}; parts are: {}", did_you_mean(suggestion), parts.join(", "))]
    UnknownPart {
        /// The strategy field the pattern is in (`freeze` or `reinit`).
        field: &'static str,
        /// The pattern.
        pattern: String,
        /// The parts a pattern may name: every target parameter and each of its dotted
        /// prefixes, sorted.
        parts: Vec<String>,
        /// The nearest part, when one is close enough to be a typo.
        suggestion: Option<String>,
    },
    /// A strategy setting that is out of range, contradicts another, or cannot apply to this
    /// source.
    #[error("strategy field `{field}` {message}")]
    Strategy {
        /// The field at fault, such as `lr_scale` or `reset.replay`.
        field: &'static str,
        /// What is wrong, worded to follow the field's name (`must be finite and >= 0`).
        message: String,
    },
    /// A strategy named on the command line (a `.ron` file or RON text) that cannot be read or
    /// parsed.
    #[error("{origin}: {message} (strategies: finetune, scratch, a .ron file or RON text)")]
    StrategyArg {
        /// The `.ron` file's path, or `strategy` for RON text.
        origin: String,
        /// The reading or parsing error.
        message: String,
    },
    /// A transfer that would take no parameter from the source: a scratch run under another
    /// name.
    #[error(
        "the transfer copies nothing: no target parameter takes a value from the source ({reason}); this would \
         be a scratch run under another name (use the `scratch` strategy for that)"
    )]
    NothingCopied {
        /// Why: every shared parameter is re-initialised, or no parameter name is shared.
        reason: String,
    },
}

fn did_you_mean(s: &Option<String>) -> String {
    s.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default()
}
