//! Multitask training and domain randomisation: an environment that, at each reset, draws one of
//! several variants and, optionally, fresh values of some physics parameters. A source policy
//! trained on such a mixture has seen a family of tasks rather than one.
//!
//! ```
//! use headstart::env::{Env, EnvSpec, Mixture, Registry};
//!
//! let mix = Mixture {
//!     variants: vec![EnvSpec::new("CartPole-v1"), EnvSpec::new("CartPole-v1").with("length", 0.75)],
//!     randomize: [("masscart".to_string(), (0.5, 2.0))].into(),
//! };
//! let mut envs = Registry::builtin().make_vec_mixture(&mix, 4)?;
//! envs.reset(Some(0))?;
//! # Ok::<(), headstart::env::EnvError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use super::registry::{EnvSpec, Registry};
use super::{Action, Env, EnvError, EnvRng, Info, Obs, Space, Step};

/// Which tasks a mixture draws from: one of `variants` per episode (uniformly), then each
/// parameter in `randomize` uniformly from its `(low, high)` range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mixture {
    /// The environments to draw from; all must have one pair of spaces.
    pub variants: Vec<EnvSpec>,
    /// Parameters drawn anew at each reset, by name: uniform in `[low, high)` (`low` when the
    /// two are equal), replacing the drawn variant's own override [default: none].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub randomize: BTreeMap<String, (f64, f64)>,
}

impl Mixture {
    /// Checks that every variant and both ends of every range build, with one pair of spaces.
    pub fn validate(&self, registry: &Registry) -> Result<(), EnvError> {
        let invalid = |message: String| EnvError::InvalidParams { env: "mixture".into(), message };
        if self.variants.is_empty() {
            return Err(invalid("a mixture needs at least one variant".into()));
        }
        let first = registry.make(&self.variants[0])?;
        for variant in &self.variants {
            for (name, &(low, high)) in &self.randomize {
                if low.is_nan() || high.is_nan() || low > high {
                    return Err(invalid(format!("randomize {name}: low {low} is above high {high}")));
                }
            }
            for end in [0, 1] {
                let mut spec = variant.clone();
                for (name, &(low, high)) in &self.randomize {
                    spec.params.insert(name.clone(), if end == 0 { low } else { high });
                }
                let env = registry.make(&spec)?;
                if env.observation_space() != first.observation_space() || env.action_space() != first.action_space() {
                    return Err(invalid(format!(
                        "{spec} has spaces {} / {}, {} has {} / {}",
                        env.observation_space(),
                        env.action_space(),
                        self.variants[0],
                        first.observation_space(),
                        first.action_space()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The spec of one draw.
    fn draw(&self, rng: &mut impl Rng) -> EnvSpec {
        let mut spec = self.variants[rng.random_range(0..self.variants.len())].clone();
        for (name, &(low, high)) in &self.randomize {
            spec.params.insert(name.clone(), if low < high { rng.random_range(low..high) } else { low });
        }
        spec
    }
}

impl fmt::Display for Mixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let variants: Vec<String> = self.variants.iter().map(ToString::to_string).collect();
        write!(f, "mixture of [{}]", variants.join(", "))?;
        for (name, (low, high)) in &self.randomize {
            write!(f, ", {name} ~ U({low}, {high})")?;
        }
        Ok(())
    }
}

/// An environment that becomes a fresh draw of its [`Mixture`] at every reset.
pub struct MixtureEnv {
    registry: Registry,
    mixture: Mixture,
    rng: EnvRng,
    current: Box<dyn Env>,
}

impl MixtureEnv {
    /// Validates the mixture and starts with its first variant.
    pub fn new(registry: &Registry, mixture: Mixture) -> Result<Self, EnvError> {
        mixture.validate(registry)?;
        Ok(MixtureEnv {
            current: registry.make(&mixture.variants[0])?,
            registry: registry.clone(),
            mixture,
            rng: EnvRng::default(),
        })
    }
}

impl Env for MixtureEnv {
    fn observation_space(&self) -> &Space {
        self.current.observation_space()
    }

    fn action_space(&self) -> &Space {
        self.current.action_space()
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        let rng = self.rng.reseed(seed);
        let spec = self.mixture.draw(rng);
        let episode_seed = rng.next_u64();
        self.current = self.registry.make(&spec)?;
        self.current.reset(Some(episode_seed))
    }

    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        self.current.step(action)
    }
}

impl Registry {
    /// `n` environments drawing from `mixture`, stepped together.
    pub fn make_vec_mixture(&self, mixture: &Mixture, n: usize) -> Result<super::VecEnv, EnvError> {
        let envs = (0..n)
            .map(|_| MixtureEnv::new(self, mixture.clone()).map(|e| Box::new(e) as Box<dyn Env>))
            .collect::<Result<Vec<_>, _>>()?;
        super::VecEnv::new(envs)
    }
}
