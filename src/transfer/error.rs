//! Why a transfer was refused.

use crate::agent::{AgentError, Algo};
use crate::env::EnvError;

/// Why a transfer was refused. Each names the tensor, field or part at fault.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error(
        "the source is a {source} policy and the target agent is {target}: transfer moves weights between agents \
         of one algorithm ({source} handles {}, {target} handles {}); train the target with {source}, or pretrain a {target} source",
        source_algo.supports(),
        target.supports(),
        source = source_algo
    )]
    AlgorithmMismatch { source_algo: Algo, target: Algo },
    #[error("tensor `{tensor}` is {source_shape:?} in the source but {target:?} in the target: {hint}")]
    ShapeMismatch { tensor: String, source_shape: Vec<i64>, target: Vec<i64>, hint: String },
    #[error("map: tensor `{tensor}`: {message}")]
    Map { tensor: String, message: String },
    #[error("strategy field `{field}`: part {pattern:?} matches no parameter{}; parts are: {}", did_you_mean(suggestion), parts.join(", "))]
    UnknownPart { field: &'static str, pattern: String, parts: Vec<String>, suggestion: Option<String> },
    #[error("strategy field `{field}` {message}")]
    Strategy { field: &'static str, message: String },
    #[error("{origin}: {message} (strategies: finetune, scratch, a .ron file or RON text)")]
    StrategyArg { origin: String, message: String },
    #[error(
        "the transfer copies nothing: no target parameter takes a value from the source ({reason}); this would \
         be a scratch run under another name (use the `scratch` strategy for that)"
    )]
    NothingCopied { reason: String },
}

fn did_you_mean(s: &Option<String>) -> String {
    s.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default()
}

