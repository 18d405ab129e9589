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

    #[error("{}: {message}", path.display())]
    VariantFile { path: PathBuf, message: String },

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

/// The candidate closest to `name`, if one is close enough to be a plausible typo.
pub(crate) fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::normalized_damerau_levenshtein(&name.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.5)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}
