//! MountainCar-v0, ported from Gymnasium 1.4.0 (`classic_control/mountain_car.py`; Moore, 1990).
//!
//! | | |
//! |---|---|
//! | Action space | `Discrete(3)`: accelerate left, do nothing, accelerate right |
//! | Observation | `[position, velocity]`, `Box` within `[min_position, max_position]` × ±`max_speed` |
//! | Reward | -1 every step |
//! | Start | position uniform in [-0.6, -0.4], velocity 0 |
//! | Termination | `position >= goal_position` and `velocity >= goal_velocity` |
//! | Truncation | 200 steps (registry's `TimeLimit`) |
//!
//! Dynamics: `v += (a - 1)·force - cos(3x)·gravity`, clipped; `x += v`, clipped; the velocity
//! is zeroed when the car hits the left wall moving left.

use rand::Rng;

use crate::env::{Action, Env, EnvError, EnvRng, Info, Obs, Space, Step};

crate::physics_params! {
    /// MountainCar's physics; defaults are Gymnasium's.
    pub struct MountainCarParams for "MountainCar-v0" {
        /// Acceleration of the engine per step.
        force: 0.001, Positive;
        /// Strength of the pull along the hill (`cos(3x)·gravity`).
        gravity: 0.0025, NonNegative;
        /// Bound on the speed.
        max_speed: 0.07, Positive;
        /// Left wall.
        min_position: -1.2, Finite;
        /// Right wall.
        max_position: 0.6, Finite;
        /// Position of the flag.
        goal_position: 0.5, Finite;
        /// Speed needed at the flag.
        goal_velocity: 0.0, Finite;
    }
}

/// The car in the valley with an engine too weak to climb straight out.
#[derive(Clone, Debug)]
pub struct MountainCar {
    p: MountainCarParams,
    state: [f64; 2],
    rng: EnvRng,
    observation_space: Space,
    action_space: Space,
}

impl MountainCar {
    /// Builds the environment from `p`; a value out of its physical range is an
    /// [`EnvError::ParamOutOfRange`], and a track without `min_position < max_position` and
    /// `goal_position` between them is an [`EnvError::InvalidParams`].
    pub fn new(p: MountainCarParams) -> Result<Self, EnvError> {
        p.validate()?;
        check_track("MountainCar-v0", p.min_position, p.max_position, p.goal_position)?;
        Ok(MountainCar {
            p,
            state: [0.0; 2],
            rng: EnvRng::default(),
            observation_space: track_space(p.min_position, p.max_position, p.max_speed),
            action_space: Space::Discrete { n: 3 },
        })
    }

    /// The internal state `[position, velocity]`.
    pub fn state(&self) -> [f64; 2] {
        self.state
    }

    /// Sets the internal state (for tests against recorded trajectories, or chosen starts).
    pub fn set_state(&mut self, state: [f64; 2]) {
        self.state = state;
    }

    fn obs(&self) -> Obs {
        self.state.iter().map(|&v| v as f32).collect()
    }
}

impl Env for MountainCar {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        self.state = [self.rng.reseed(seed).random_range(-0.6..-0.4), 0.0];
        Ok((self.obs(), Info::new()))
    }

    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        let direction = match action {
            Action::Discrete(a) if *a < 3 => *a as f64 - 1.0,
            _ => return Err(self.action_space.reject(action)),
        };
        let p = &self.p;
        let [mut position, mut velocity] = self.state;
        velocity += direction * p.force + (3.0 * position).cos() * (-p.gravity);
        velocity = velocity.clamp(-p.max_speed, p.max_speed);
        position += velocity;
        position = position.clamp(p.min_position, p.max_position);
        if position == p.min_position && velocity < 0.0 {
            velocity = 0.0;
        }
        let terminated = position >= p.goal_position && velocity >= p.goal_velocity;
        self.state = [position, velocity];
        Ok(Step { obs: self.obs(), reward: -1.0, terminated, truncated: false, info: Info::new() })
    }
}

/// Refuses a track whose walls are in the wrong order or whose flag is off the track.
pub(super) fn check_track(env: &str, min_position: f64, max_position: f64, goal: f64) -> Result<(), EnvError> {
    if min_position < max_position && (min_position..=max_position).contains(&goal) {
        Ok(())
    } else {
        Err(EnvError::InvalidParams {
            env: env.into(),
            message: format!(
                "need min_position < max_position and goal_position between them; got \
                 min_position = {min_position}, max_position = {max_position}, goal_position = {goal}"
            ),
        })
    }
}

/// The observation space of both mountain cars.
pub(super) fn track_space(min_position: f64, max_position: f64, max_speed: f64) -> Space {
    Space::bounded(vec![min_position as f32, -max_speed as f32], vec![max_position as f32, max_speed as f32])
}
