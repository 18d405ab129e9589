//! MountainCarContinuous-v0, ported from Gymnasium 1.4.0
//! (`classic_control/continuous_mountain_car.py`).
//!
//! | | |
//! |---|---|
//! | Action space | `Box(-1, 1, (1,))`: the engine's force; values outside are clipped |
//! | Observation | `[position, velocity]`, `Box` within `[min_position, max_position]` × ±`max_speed` |
//! | Reward | +100 on reaching the flag, minus 0.1·action² every step (of the action as given, unclipped) |
//! | Start | position uniform in [-0.6, -0.4], velocity 0 |
//! | Termination | `position >= goal_position` and `velocity >= goal_velocity` |
//! | Truncation | 999 steps (registry's `TimeLimit`) |
//!
//! Gymnasium keeps this environment's state in a `float32` array after the first step and mixes
//! `float32` and `float64` arithmetic by NumPy's promotion rules; the port rounds at the same
//! places, so trajectories match to the last bit that an `f32` observation shows.

use rand::Rng;

use super::mountain_car::{check_track, track_space};
use crate::env::{Action, Env, EnvError, EnvRng, Info, Obs, Space, Step};

crate::physics_params! {
    /// MountainCarContinuous's physics; defaults are Gymnasium's.
    pub struct ContinuousMountainCarParams for "MountainCarContinuous-v0" {
        /// Acceleration per unit of action.
        power: 0.0015, Positive;
        /// Strength of the pull along the hill (`cos(3x)·gravity`).
        gravity: 0.0025, NonNegative;
        /// Bound on the speed.
        max_speed: 0.07, Positive;
        /// Left wall.
        min_position: -1.2, Finite;
        /// Right wall.
        max_position: 0.6, Finite;
        /// Position of the flag.
        goal_position: 0.45, Finite;
        /// Speed needed at the flag.
        goal_velocity: 0.0, Finite;
    }
}

const MIN_ACTION: f32 = -1.0;
const MAX_ACTION: f32 = 1.0;

/// The mountain car with a continuous engine.
#[derive(Clone, Debug)]
pub struct ContinuousMountainCar {
    p: ContinuousMountainCarParams,
    state: [f64; 2],
    /// Whether the state is `float32` yet (it is after the first step, as in Gymnasium).
    state_is_f32: bool,
    rng: EnvRng,
    observation_space: Space,
    action_space: Space,
}

impl ContinuousMountainCar {
    /// Builds the environment from `p`; a value out of its physical range is an
    /// [`EnvError::ParamOutOfRange`], and a track without `min_position < max_position` and
    /// `goal_position` between them is an [`EnvError::InvalidParams`].
    pub fn new(p: ContinuousMountainCarParams) -> Result<Self, EnvError> {
        p.validate()?;
        check_track("MountainCarContinuous-v0", p.min_position, p.max_position, p.goal_position)?;
        Ok(ContinuousMountainCar {
            p,
            state: [0.0; 2],
            state_is_f32: false,
            rng: EnvRng::default(),
            observation_space: track_space(p.min_position, p.max_position, p.max_speed),
            action_space: Space::uniform_box(MIN_ACTION, MAX_ACTION, 1),
        })
    }

    /// The internal state `[position, velocity]`.
    pub fn state(&self) -> [f64; 2] {
        self.state
    }

    /// Sets the internal state, as `reset` leaves it (in `float64`).
    pub fn set_state(&mut self, state: [f64; 2]) {
        self.state = state;
        self.state_is_f32 = false;
    }

    fn obs(&self) -> Obs {
        self.state.iter().map(|&v| v as f32).collect()
    }
}

impl Env for ContinuousMountainCar {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        self.state = [self.rng.reseed(seed).random_range(-0.6..-0.4), 0.0];
        self.state_is_f32 = false;
        Ok((self.obs(), Info::new()))
    }

    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        let a = match action {
            Action::Continuous(v) if v.len() == 1 && v[0].is_finite() => v[0],
            _ => return Err(self.action_space.reject(action)),
        };
        let p = &self.p;
        let f32_state = self.state_is_f32;
        let [mut position, mut velocity] = self.state;

        // force * power: float32 when the action was within bounds, float64 once clipped.
        let (push, push_is_f32) = if a < MIN_ACTION {
            (MIN_ACTION as f64 * p.power, false)
        } else if a > MAX_ACTION {
            (MAX_ACTION as f64 * p.power, false)
        } else {
            ((a * p.power as f32) as f64, true)
        };
        let three_x = if f32_state { (3.0 * position as f32) as f64 } else { 3.0 * position };
        let pull = p.gravity * three_x.cos();
        let dv = if push_is_f32 { (push as f32 - pull as f32) as f64 } else { push - pull };
        velocity = if f32_state { (velocity as f32 + dv as f32) as f64 } else { velocity + dv };
        velocity = velocity.clamp(-p.max_speed, p.max_speed);
        position = if f32_state { (position as f32 + velocity as f32) as f64 } else { position + velocity };
        position = position.clamp(p.min_position, p.max_position);
        if position == p.min_position && velocity < 0.0 {
            velocity = 0.0;
        }
        let terminated = position >= p.goal_position && velocity >= p.goal_velocity;
        let bonus = if terminated { 100.0 } else { 0.0 };
        let reward = bonus - (a as f64).powi(2) * 0.1;

        self.state = [position as f32 as f64, velocity as f32 as f64];
        self.state_is_f32 = true;
        Ok(Step { obs: self.obs(), reward, terminated, truncated: false, info: Info::new() })
    }
}
