//! The one error type of the environment layer. Every message names the input at fault.

use std::path::PathBuf;

/// What went wrong while making, configuring or stepping an environment.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// An action the environment will not act on (see
    /// [`Space::check_action`](super::Space::check_action)).
    #[error("invalid action {action} for {space}: {reason}")]
    InvalidAction {
        /// The action, as displayed.
        action: String,
        /// The action space, as displayed.
        space: String,
        /// Why the action is refused.
        reason: String,
    },

    /// `step` before the first `reset`, or after the episode ended (see
    /// [`EpisodeGuard`](super::EpisodeGuard)).
    #[error("step() called {when}; call reset() first")]
    NeedsReset {
        /// When the step came: before the first reset, or after the episode ended.
        when: &'static str,
    },

    /// An environment id that is not registered.
    #[error("unknown environment id {id:?}{}; known ids: {}", did_you_mean(suggestion), known.join(", "))]
    UnknownEnv {
        /// The id asked for.
        id: String,
        /// The registered ids, sorted.
        known: Vec<String>,
        /// The nearest registered id, when one is close enough to be a typo.
        suggestion: Option<String>,
    },

    /// A parameter override that the environment does not declare.
    #[error(
        "{env} has no parameter {name:?}{}; its parameters are: {}",
        did_you_mean(suggestion),
        valid.join(", ")
    )]
    UnknownParam {
        /// The environment's id.
        env: String,
        /// The unknown name.
        name: String,
        /// The environment's parameter names, in declaration order.
        valid: Vec<String>,
        /// The nearest valid name, when one is close enough to be a typo.
        suggestion: Option<String>,
    },

    /// A parameter value outside its physical range ([`Bound`](super::Bound)).
    #[error("{env} parameter {name} = {value} is out of range: it must be {range}")]
    ParamOutOfRange {
        /// The environment's id.
        env: String,
        /// The parameter's name.
        name: String,
        /// The value given.
        value: f64,
        /// The range the value must lie in, as [`Bound`](super::Bound) displays it
        /// (`finite and > 0`).
        range: String,
    },

    /// Settings that cannot make or run an environment although each parameter is in range:
    /// parameters that contradict each other, an episode limit of zero, a malformed transform,
    /// mixture or space, a random-policy episode that never ends.
    #[error("{env}: {message}")]
    InvalidParams {
        /// The environment at fault: usually its id, `mixture` for a
        /// [`Mixture`](super::Mixture).
        env: String,
        /// What is wrong.
        message: String,
    },

    /// A variant or map file that cannot be read or parsed.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The reading or parsing error (a syntax error names the line and column).
        message: String,
    },

    /// A vector of environments that cannot be built or stepped: no environments, spaces that
    /// differ, or not one action per environment.
    #[error("vector of environments: {0}")]
    VecEnv(String),

    /// An error of one environment of a [`VecEnv`](super::VecEnv).
    #[error("environment {index} of the vector: {error}")]
    InEnv {
        /// Which environment of the vector (from 0).
        index: usize,
        /// Its error (in the message, so not also a `source()`: a printed chain says it once).
        error: Box<EnvError>,
    },

    /// An environment that broke its side of the contract: an observation of the wrong length
    /// or with a non-finite value, a non-finite reward (see [`EpisodeGuard`](super::EpisodeGuard)).
    #[error("{env} {when}: {what} (an error in the environment, not the agent)")]
    Broken {
        /// The environment: its id and parameters.
        env: String,
        /// When: at reset, or at which step of the episode.
        when: String,
        /// What it returned.
        what: String,
    },

    /// An error raised by a user's environment.
    #[error("{0}")]
    Custom(String),
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default()
}
