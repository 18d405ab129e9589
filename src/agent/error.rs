//! The error type of the agent layer.

use crate::env::EnvError;

/// Errors from building or training an agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The algorithm cannot handle these spaces.
    #[error("{0}")]
    Unsupported(String),
    /// A hyperparameter out of its domain.
    #[error("hyperparameter `{field}`: {message}")]
    Config { field: &'static str, message: String },
    /// Restoring state failed.
    #[error("{0}")]
    State(String),
}

pub(crate) fn check(field: &'static str, ok: bool, message: &str) -> Result<(), AgentError> {
    if ok { Ok(()) } else { Err(AgentError::Config { field, message: message.to_string() }) }
}
