//! Pendulum-v1, ported from Gymnasium 1.4.0 (`classic_control/pendulum.py`).
//!
//! | | |
//! |---|---|
//! | Action space | `Box(-max_torque, max_torque, (1,))`: torque at the pivot; values outside are clipped |
//! | Observation | `[cos θ, sin θ, θ']`, `Box` with `θ'` in ±`max_speed` |
//! | Reward | `-(normalize(θ)² + 0.1·θ'² + 0.001·torque²)`, between about -16.27 and 0 |
//! | Start | θ uniform in [-π, π], θ' uniform in [-1, 1] |
//! | Termination | never |
//! | Truncation | 200 steps (registry's `TimeLimit`) |
//!
//! Dynamics: `θ' += (3g/(2l)·sin θ + 3/(m l²)·u)·dt`, clipped to ±`max_speed`; `θ += θ'·dt`.
//! As in Gymnasium the torque stays `float32`, and the products it enters are rounded to
//! `float32` before joining the `float64` state.

use std::f64::consts::PI;

use rand::Rng;

use crate::env::{Action, Env, EnvError, EnvRng, Info, Obs, Space, Step};

crate::physics_params! {
    /// Pendulum's physics; defaults are Gymnasium's.
    pub struct PendulumParams for "Pendulum-v1" {
        /// Gravitational acceleration (m/s²).
        g: 10.0, NonNegative;
        /// Mass of the bob (kg).
        m: 1.0, Positive;
        /// Length of the rod (m).
        l: 1.0, Positive;
        /// Seconds per step.
        dt: 0.05, Positive;
        /// Bound on the angular velocity (rad/s).
        max_speed: 8.0, Positive;
        /// Bound on the torque (N·m); also the action space's bound.
        max_torque: 2.0, Positive;
    }
}

/// The inverted pendulum swing-up.
#[derive(Clone, Debug)]
pub struct Pendulum {
    p: PendulumParams,
    state: [f64; 2],
    rng: EnvRng,
    observation_space: Space,
    action_space: Space,
}

impl Pendulum {
    /// Builds the environment from `p`; a value out of its physical range is an
    /// [`EnvError::ParamOutOfRange`].
    pub fn new(p: PendulumParams) -> Result<Self, EnvError> {
        p.validate()?;
        let high = [1.0, 1.0, p.max_speed as f32];
        let max_torque = p.max_torque as f32;
        Ok(Pendulum {
            p,
            state: [0.0; 2],
            rng: EnvRng::default(),
            observation_space: Space::symmetric(&high),
            action_space: Space::uniform_box(-max_torque, max_torque, 1),
        })
    }

    /// The internal state `[θ, θ']`.
    pub fn state(&self) -> [f64; 2] {
        self.state
    }

    /// Sets the internal state (for tests against recorded trajectories, or chosen starts).
    pub fn set_state(&mut self, state: [f64; 2]) {
        self.state = state;
    }

    fn obs(&self) -> Obs {
        let [th, thdot] = self.state;
        [th.cos(), th.sin(), thdot].iter().map(|&v| v as f32).collect()
    }
}

/// Maps an angle into [-π, π) with Python's floor modulo.
fn angle_normalize(x: f64) -> f64 {
    (x + PI).rem_euclid(2.0 * PI) - PI
}

impl Env for Pendulum {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        let rng = self.rng.reseed(seed);
        self.state = [rng.random_range(-PI..PI), rng.random_range(-1.0..1.0)];
        Ok((self.obs(), Info::new()))
    }

    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        let p = &self.p;
        let max_torque = p.max_torque as f32;
        let u = match action {
            Action::Continuous(v) if v.len() == 1 && v[0].is_finite() => v[0].clamp(-max_torque, max_torque),
            _ => return Err(self.action_space.reject(action)),
        };
        let [th, thdot] = self.state;
        let torque_cost = (0.001f32 * (u * u)) as f64;
        let costs = angle_normalize(th).powi(2) + 0.1 * thdot.powi(2) + torque_cost;
        let drive = ((3.0 / (p.m * p.l.powi(2))) as f32 * u) as f64;
        let newthdot = thdot + (3.0 * p.g / (2.0 * p.l) * th.sin() + drive) * p.dt;
        let newthdot = newthdot.clamp(-p.max_speed, p.max_speed);
        let newth = th + newthdot * p.dt;
        self.state = [newth, newthdot];
        Ok(Step { obs: self.obs(), reward: -costs, terminated: false, truncated: false, info: Info::new() })
    }
}
