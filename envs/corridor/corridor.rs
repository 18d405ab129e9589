//! Corridor-v0: the worked example of a custom environment.
//!
//! | | |
//! |---|---|
//! | Action space | `Discrete(2)`: 0 steps left, 1 steps right |
//! | Observation | one-hot position among `length` cells, `Box(0, 1, (length,))` |
//! | Reward | -0.01 every step, +1 on reaching the right end |
//! | Start | the leftmost cell |
//! | Termination | reaching the rightmost cell |
//! | Truncation | 100 steps (registry's `TimeLimit`) |
//!
//! With probability `slip` a step goes the other way. The corridor's `length` is a parameter,
//! and it changes the observation's size: a policy for a short corridor transfers to a long one
//! only through an observation map, which makes this a small test bed for `map` transfer.
//!
//! Three things make it a good citizen: it validates actions (`check_action`), all its
//! randomness comes from the generator that `reset(seed)` seeds (`EnvRng`), and it declares its
//! parameters with ranges so that RON files are checked before a run.

use headstart::env::registry::EnvEntry;
use headstart::env::{Action, Env, EnvError, EnvRng, Info, Obs, Space, Step};
use rand::Rng;

headstart::physics_params! {
    /// The corridor's parameters.
    pub struct CorridorParams for "Corridor-v0" {
        /// Number of cells (a whole number from 2 to 64).
        length: 8.0, Within(2.0, 64.0);
        /// Probability that a step goes the opposite way.
        slip: 0.1, Within(0.0, 1.0);
    }
}

pub struct Corridor {
    length: usize,
    slip: f64,
    position: usize,
    rng: EnvRng,
    observation_space: Space,
    action_space: Space,
}

impl Corridor {
    pub fn new(p: CorridorParams) -> Result<Self, EnvError> {
        p.validate()?;
        if p.length.fract() != 0.0 {
            return Err(EnvError::InvalidParams {
                env: "Corridor-v0".into(),
                message: format!("length must be a whole number of cells, got {}", p.length),
            });
        }
        let length = p.length as usize;
        Ok(Corridor {
            length,
            slip: p.slip,
            position: 0,
            rng: EnvRng::default(),
            observation_space: Space::uniform_box(0.0, 1.0, length),
            action_space: Space::Discrete { n: 2 },
        })
    }

    fn obs(&self) -> Obs {
        (0..self.length).map(|i| if i == self.position { 1.0 } else { 0.0 }).collect()
    }
}

impl Env for Corridor {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        self.rng.reseed(seed);
        self.position = 0;
        Ok((self.obs(), Info::new()))
    }

    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        self.action_space.check_action(action)?;
        let mut right = *action == Action::Discrete(1);
        if self.rng.reseed(None).random_bool(self.slip) {
            right = !right;
        }
        self.position = if right { (self.position + 1).min(self.length - 1) } else { self.position.saturating_sub(1) };
        let terminated = self.position == self.length - 1;
        let reward = if terminated { 1.0 } else { -0.01 };
        Ok(Step { obs: self.obs(), reward, terminated, truncated: false, info: Info::new() })
    }
}

/// The registry entry: id, constructor, parameters and episode limit.
pub fn entry() -> EnvEntry {
    EnvEntry::new("Corridor-v0", |p| Corridor::new(CorridorParams::from_overrides(p)?))
        .params(CorridorParams::SPECS)
        .max_episode_steps(100)
        .reward_threshold(0.9)
        .doc("Walk right along a slippery corridor to its end (custom-environment example).")
}
