//! The one error type of the environment layer. Every message names the input at fault.

use std::path::PathBuf;

/// What went wrong while making, configuring or stepping an environment.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("invalid action {action} for {space}: {reason}")]
    InvalidAction { action: String, space: String, reason: String },

    #[error("step() called {when}; call reset() first")]
    NeedsReset { when: &'static str },

    #[error("unknown environment id {id:?}{}; known ids: {}", did_you_mean(suggestion), known.join(", "))]
    UnknownEnv { id: String, known: Vec<String>, suggestion: Option<String> },

    #[error(
        "{env} has no parameter {name:?}{}; its parameters are: {}",
        did_you_mean(suggestion),
        valid.join(", ")
    )]
    UnknownParam { env: String, name: String, valid: Vec<String>, suggestion: Option<String> },

    #[error("{env} parameter {name} = {value} is out of range: it must be {range}")]
    ParamOutOfRange { env: String, name: String, value: f64, range: String },

    #[error("{env}: {message}")]
    InvalidParams { env: String, message: String },

    /// A variant or map file that cannot be read or parsed.
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },

    #[error("vector of environments: {0}")]
    VecEnv(String),

    #[error("environment {index} of the vector: {source}")]
    InEnv { index: usize, source: Box<EnvError> },

    /// An error raised by a user's environment.
    #[error("{0}")]
    Custom(String),
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default()
}

