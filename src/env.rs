//! The environment API, with Gymnasium's semantics.
//!
//! An [`Env`] is reset with an optional seed and stepped with an [`Action`]; each step returns a
//! [`Step`] with the observation, the reward, `terminated` (the MDP ended: do not bootstrap) and
//! `truncated` (cut from outside, usually by [`TimeLimit`]: bootstrap from the observation).
//! The same seed gives the same trajectory.
//!
//! ```
//! use headstart::env::{Action, Env, EnvSpec, Registry};
//!
//! let registry = Registry::builtin();
//! let mut env = registry.make(&EnvSpec::new("CartPole-v1").with("length", 0.75))?;
//! let (obs, _info) = env.reset(Some(42))?;
//! assert_eq!(obs.len(), 4);
//! let step = env.step(&Action::Discrete(1))?;
//! assert_eq!(step.reward, 1.0);
//! assert!(env.step(&Action::Discrete(2)).is_err()); // outside Discrete(2)
//! # Ok::<(), headstart::env::EnvError>(())
//! ```
//!
//! Environments never touch tensors: agents turn observations into tensors in batches.

pub mod atari;
pub mod check;
pub mod classic;
mod error;
pub mod map;
pub mod minatar;
pub mod mixture;
pub mod params;
#[cfg(feature = "python")]
pub mod python;
mod random;
pub mod registry;
mod space;
pub mod tasks;
pub mod transform;
pub mod vector;
pub mod wrappers;

use rand::SeedableRng;
use rand::rngs::StdRng;
use smallvec::SmallVec;

pub use check::{check_env, check_registered};
pub use error::EnvError;
pub use map::{Map, ObsMap};
pub use mixture::Mixture;
pub use params::{Bound, ParamSpec, Params};
pub use random::{MAX_RANDOM_EPISODE_STEPS, random_policy_return};
pub use registry::{EnvEntry, EnvSpec, Registry, Variant};
pub use space::{Action, DictPart, Space, SpaceError};
pub use tasks::Tasks;
pub use transform::Transform;
pub use vector::VecEnv;
pub use wrappers::{EpisodeGuard, TimeLimit};

/// An observation, flattened. Up to eight values live inline, so stepping allocates nothing.
pub type Obs = SmallVec<[f32; 8]>;

/// Extra information from `reset` or `step` (Gymnasium's `info` dict): named numbers.
/// Empty for the classic-control environments; an empty `Info` neither allocates nor costs
/// anything to drop, which matters at tens of millions of steps a second.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Info(Vec<(String, f64)>);

impl Info {
    /// An empty `Info`, which allocates nothing.
    pub fn new() -> Self {
        Info(Vec::new())
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn insert(&mut self, key: impl Into<String>, value: f64) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// The value of `key`, if it is set.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// The `(key, value)` pairs, in the order the keys were first inserted.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What one call to [`Env::step`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The observation after the action (the episode's last when it ended).
    pub obs: Obs,
    /// The reward for this step.
    pub reward: f64,
    /// The episode reached a terminal state of the MDP: the value after it is zero.
    pub terminated: bool,
    /// The episode was cut short (time limit): the value after it is not zero.
    pub truncated: bool,
    /// Extra information (empty for the classic-control environments).
    pub info: Info,
}

impl Step {
    /// Whether the episode is over, either way.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// A reinforcement-learning environment with Gymnasium's semantics.
///
/// Implement this for a custom environment, register it by id with
/// [`Registry::register`], and run [`check_env`] on it.
pub trait Env: Send {
    /// The space every observation lies in.
    fn observation_space(&self) -> &Space;

    /// The space of valid actions.
    fn action_space(&self) -> &Space;

    /// Starts an episode. `Some(seed)` reseeds the environment's random generator (same seed,
    /// same episode); `None` continues the generator's stream.
    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError>;

    /// Advances one step. Invalid actions are errors, never panics.
    fn step(&mut self, action: &Action) -> Result<Step, EnvError>;
}

impl<E: Env + ?Sized> Env for Box<E> {
    fn observation_space(&self) -> &Space {
        (**self).observation_space()
    }
    fn action_space(&self) -> &Space {
        (**self).action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        (**self).reset(seed)
    }
    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        (**self).step(action)
    }
}

/// The random generator an environment keeps, seeded as Gymnasium seeds `np_random`: from
/// `reset(Some(seed))`, or from the operating system until then.
#[derive(Clone, Debug)]
pub struct EnvRng(StdRng);

impl EnvRng {
    /// Reseeds on `Some(seed)`; keeps the stream on `None`. Returns the generator.
    pub fn reseed(&mut self, seed: Option<u64>) -> &mut StdRng {
        if let Some(seed) = seed {
            self.0 = StdRng::seed_from_u64(seed);
        }
        &mut self.0
    }
}

impl Default for EnvRng {
    fn default() -> Self {
        EnvRng(StdRng::from_os_rng())
    }
}
