//! Transforms of an environment's interface, declared in its [`EnvSpec`](super::EnvSpec): the
//! related-but-different targets of a transfer study that physics parameters cannot express
//! (an observation with a feature more or less, actions in another order, rewards on another
//! scale).
//!
//! ```
//! use headstart::env::{Env, EnvSpec, Registry, Transform};
//!
//! let mut spec = EnvSpec::new("CartPole-v1");
//! spec.transforms = vec![Transform::NoiseObs { count: 1, std: 1.0 }, Transform::PermuteActions(vec![1, 0])];
//! let mut env = Registry::builtin().make(&spec)?;
//! assert_eq!(env.reset(Some(0))?.0.len(), 5);
//! # Ok::<(), headstart::env::EnvError>(())
//! ```

use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::{Action, Env, EnvError, EnvRng, Info, Obs, Space, Step};

/// One change to an environment's interface. Transforms apply in order, each to the result of
/// the ones before it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Transform {
    /// Action `i` of the transformed environment is action `perm[i]` of the one inside
    /// (Discrete: action indices; Box: action dimensions). `[1, 0]` swaps CartPole's pushes.
    PermuteActions(Vec<usize>),
    /// Keeps only these observation features, in this order (drop a sensor).
    SelectObs(Vec<usize>),
    /// Appends `count` features of Gaussian noise with standard deviation `std`, which carry
    /// no information (an extra, useless sensor).
    NoiseObs {
        /// How many features to append (at least 1).
        count: usize,
        /// Their standard deviation (finite, at least 0).
        std: f64,
    },
    /// Multiplies every reward by this factor.
    ScaleReward(f64),
    /// Stacks the last `n` observations along their last axis, oldest first, as
    /// Stable-Baselines3's `VecFrameStack` does (channels last): an image `(h, w, c)` becomes
    /// `(h, w, c·n)`, a vector of `d` values `d·n` values. A new episode starts from zeros with
    /// its first observation last.
    FrameStack(usize),
    /// The standard Atari preprocessing over an ALE game (SB3's `AtariWrapper`: noop reset,
    /// frame skip with max-pool, episodic life, 84x84 grey, clipped reward; see
    /// [`super::atari`]). First in the list when present.
    Atari(super::atari::AtariConfig),
}

impl std::fmt::Display for Transform {
    /// As written in RON: `NoiseObs(count: 1, std: 1.0)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = crate::util::ron_options().to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&text.replace(':', ": ").replace(',', ", "))
    }
}

/// An environment wearing [`Transform`]s.
pub struct Transformed {
    inner: Box<dyn Env>,
    transforms: Vec<Transform>,
    observation_space: Space,
    action_space: Space,
    /// For each outer action index (Discrete) or dimension (Box), the inner one.
    action_perm: Option<Vec<usize>>,
    rng: EnvRng,
    noise: Option<Normal<f64>>,
    /// The frames `FrameStack` holds, oldest first (empty at the start of an episode), and the
    /// values of one frame along the last axis.
    frames: std::collections::VecDeque<Obs>,
    channels: usize,
    /// The environment's id, for errors.
    env: String,
}

impl Transformed {
    /// Wraps `inner`; `env` names it in errors.
    pub fn new(mut inner: Box<dyn Env>, transforms: Vec<Transform>, env: &str) -> Result<Self, EnvError> {
        let invalid = |message: String| EnvError::InvalidParams { env: env.to_string(), message };
        if let Some(Transform::Atari(config)) = transforms.first() {
            inner = Box::new(super::atari::Atari::new(inner, config.clone(), env)?);
        }
        if transforms.iter().skip(1).any(|t| matches!(t, Transform::Atari(_))) {
            return Err(invalid("Atari(..) reads the game's screens: it must come first among the transforms".into()));
        }
        let mut obs_space = inner.observation_space().clone();
        let action_space = inner.action_space().clone();
        let mut action_perm: Option<Vec<usize>> = None;
        let mut noise = None;
        let mut channels = 0;
        for t in &transforms {
            match t {
                Transform::PermuteActions(perm) => {
                    let n = match &action_space {
                        Space::Discrete { n } => *n,
                        Space::Box { .. } | Space::Dict { .. } => action_space.flat_dim(),
                    };
                    let mut sorted = perm.clone();
                    sorted.sort_unstable();
                    if sorted != (0..n).collect::<Vec<_>>() {
                        return Err(invalid(format!(
                            "PermuteActions({perm:?}) must list each of the {n} actions 0..{n} once"
                        )));
                    }
                    let before = action_perm.take().unwrap_or_else(|| (0..n).collect());
                    action_perm = Some(perm.iter().map(|&i| before[i]).collect());
                }
                Transform::SelectObs(keep) => {
                    let (low, high) = box_bounds(&obs_space, t, env)?;
                    let dim = low.len();
                    if keep.is_empty() || keep.iter().any(|&i| i >= dim) {
                        return Err(invalid(format!(
                            "SelectObs({keep:?}) must name at least one of the {dim} observation features 0..{dim}"
                        )));
                    }
                    obs_space =
                        Space::bounded(keep.iter().map(|&i| low[i]).collect(), keep.iter().map(|&i| high[i]).collect());
                }
                Transform::NoiseObs { count, std } => {
                    if *count == 0 || !(std.is_finite() && *std >= 0.0) {
                        return Err(invalid(format!(
                            "NoiseObs(count: {count}, std: {std}) needs count >= 1 and a finite std >= 0"
                        )));
                    }
                    if noise.is_some() {
                        return Err(invalid("NoiseObs may appear once".into()));
                    }
                    let (mut low, mut high) = box_bounds(&obs_space, t, env)?;
                    low.extend(std::iter::repeat_n(f32::NEG_INFINITY, *count));
                    high.extend(std::iter::repeat_n(f32::INFINITY, *count));
                    obs_space = Space::bounded(low, high);
                    noise = Some(Normal::new(0.0, *std).expect("std checked"));
                }
                Transform::Atari(_) => {}
                Transform::ScaleReward(factor) => {
                    if !factor.is_finite() {
                        return Err(invalid(format!("ScaleReward({factor}) must be finite")));
                    }
                }
                Transform::FrameStack(n) => {
                    if !(2..=64).contains(n) || channels > 0 {
                        return Err(invalid(format!("{t}: stack 2 to 64 frames, once")));
                    }
                    let (low, high) = box_bounds(&obs_space, t, env)?;
                    let Space::Box { shape, .. } = &obs_space else { unreachable!("a Box: box_bounds") };
                    let mut shape = shape.clone();
                    channels = shape.last().copied().filter(|&c| c > 0).unwrap_or(low.len().max(1));
                    let stack = |bounds: &[f32]| -> Vec<f32> {
                        bounds.chunks(channels).flat_map(|pixel| pixel.repeat(*n)).collect()
                    };
                    let (low, high) = (stack(&low), stack(&high));
                    match shape.last_mut() {
                        Some(last) => *last *= n,
                        None => shape.push(*n),
                    }
                    obs_space = Space::Box { low, high, shape };
                }
            }
        }
        Ok(Transformed {
            inner,
            transforms,
            observation_space: obs_space,
            action_space,
            action_perm,
            rng: EnvRng::default(),
            noise,
            frames: Default::default(),
            channels,
            env: env.to_string(),
        })
    }

    /// The transformed observation. An inner observation shorter than its space (a custom
    /// environment's bug) is an error, not an out-of-bounds index.
    fn observe(&mut self, inner: Obs) -> Result<Obs, EnvError> {
        let mut obs = inner;
        for t in &self.transforms {
            match t {
                Transform::SelectObs(keep) => {
                    if let Some(&i) = keep.iter().find(|&&i| i >= obs.len()) {
                        return Err(EnvError::InvalidParams {
                            env: self.env.clone(),
                            message: format!(
                                "{t}: feature {i} was selected, but the observation has {} values",
                                obs.len()
                            ),
                        });
                    }
                    obs = keep.iter().map(|&i| obs[i]).collect()
                }
                Transform::NoiseObs { count, .. } => {
                    let noise = self.noise.expect("built with NoiseObs");
                    let rng = self.rng.reseed(None);
                    obs.extend((0..*count).map(|_| noise.sample(rng) as f32));
                }
                Transform::FrameStack(n) => {
                    if self.frames.is_empty() {
                        self.frames.extend((1..*n).map(|_| Obs::from_elem(0.0, obs.len())));
                    } else {
                        self.frames.pop_front();
                    }
                    self.frames.push_back(obs);
                    obs = self.stacked();
                }
                Transform::PermuteActions(_) | Transform::ScaleReward(_) | Transform::Atari(_) => {}
            }
        }
        Ok(obs)
    }

    /// The held frames interleaved along the last axis: per position, each frame's values.
    fn stacked(&self) -> Obs {
        let c = self.channels;
        let positions = self.frames.back().map_or(0, |f| f.len() / c);
        let mut out = Obs::with_capacity(positions * c * self.frames.len());
        for p in 0..positions {
            for frame in &self.frames {
                out.extend_from_slice(&frame[p * c..(p + 1) * c]);
            }
        }
        out
    }
}

/// The bounds of a Box observation space; observation transforms refuse any other space.
fn box_bounds(space: &Space, transform: &Transform, env: &str) -> Result<(Vec<f32>, Vec<f32>), EnvError> {
    match space {
        Space::Box { low, high, .. } => Ok((low.clone(), high.clone())),
        Space::Discrete { .. } | Space::Dict { .. } => Err(EnvError::InvalidParams {
            env: env.to_string(),
            message: format!(
                "{transform} needs a Box observation space (a vector of numbers); this one observes {space}"
            ),
        }),
    }
}

impl Env for Transformed {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        // The noise has its own stream, derived from the episode's seed.
        self.rng.reseed(seed.map(|s| s ^ 0x9e37_79b9_7f4a_7c15));
        self.frames.clear();
        let (obs, info) = self.inner.reset(seed)?;
        Ok((self.observe(obs)?, info))
    }

    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        let mut step = match &self.action_perm {
            None => self.inner.step(action)?,
            Some(perm) => {
                self.action_space.check_action(action)?;
                let inner = match action {
                    Action::Discrete(i) => Action::Discrete(perm[*i]),
                    Action::Continuous(values) => {
                        let mut inner = values.clone();
                        for (outer, &dst) in perm.iter().enumerate() {
                            inner[dst] = values[outer];
                        }
                        Action::Continuous(inner)
                    }
                };
                self.inner.step(&inner)?
            }
        };
        for t in &self.transforms {
            if let Transform::ScaleReward(factor) = t {
                step.reward *= factor;
            }
        }
        step.obs = self.observe(std::mem::take(&mut step.obs))?;
        Ok(step)
    }
}
