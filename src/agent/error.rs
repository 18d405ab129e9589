//! The error type of the agent layer.

use crate::env::EnvError;

/// Errors from building or training an agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The environments refused a reset or a step.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The algorithm cannot handle these spaces.
    #[error("{0}")]
    Unsupported(String),
    /// A hyperparameter out of its domain.
    #[error("hyperparameter `{field}`: {message}")]
    Config {
        /// The hyperparameter.
        field: &'static str,
        /// What is wrong with its value.
        message: String,
    },
    /// A tensor that restoring state needs is not among the given ones.
    #[error("missing tensor `{name}`")]
    MissingTensor {
        /// The tensor's name.
        name: String,
    },
    /// A tensor to restore has another shape than the agent's.
    #[error("tensor `{name}` has shape {found:?}, expected {expected}")]
    TensorShape {
        /// The tensor's name.
        name: String,
        /// Its shape.
        found: Vec<i64>,
        /// The shape the agent needs, written out (`[64, 4]`, or `[n, 4]` for any number of rows).
        expected: String,
    },
    /// Restoring state failed otherwise (unreadable values, inconsistent sizes).
    #[error("{0}")]
    State(String),
}

/// A `Config` error for `field` unless `ok`.
pub(crate) fn check(field: &'static str, ok: bool, message: &str) -> Result<(), AgentError> {
    if ok { Ok(()) } else { Err(AgentError::Config { field, message: message.to_string() }) }
}

/// The tensor `name` from `get`, which must have the shape `expected`.
pub(crate) fn fetch_tensor(
    get: &mut dyn FnMut(&str) -> Option<tch::Tensor>,
    name: &str,
    expected: &[i64],
) -> Result<tch::Tensor, AgentError> {
    let src = get(name).ok_or_else(|| AgentError::MissingTensor { name: name.to_string() })?;
    if src.size() != expected {
        return Err(AgentError::TensorShape {
            name: name.to_string(),
            found: src.size(),
            expected: format!("{expected:?}"),
        });
    }
    Ok(src)
}
