//! Acrobot-v1, ported from Gymnasium 1.4.0 (`classic_control/acrobot.py`; Sutton 1996,
//! dynamics from Sutton and Barto's book).
//!
//! | | |
//! |---|---|
//! | Action space | `Discrete(3)`: torque -1, 0 or +1 on the joint between the links |
//! | Observation | `[cos θ1, sin θ1, cos θ2, sin θ2, θ1', θ2']`, `Box` with the velocities in ±`max_vel_1`, ±`max_vel_2` |
//! | Reward | -1 every step that does not reach the goal, 0 on the step that does |
//! | Start | every state variable uniform in [-0.1, 0.1] (rounded to `f32`, as Gymnasium does) |
//! | Termination | the free end rises above the bar: `-cos θ1 - cos(θ1 + θ2) > 1` |
//! | Truncation | 500 steps (registry's `TimeLimit`) |
//!
//! Integrator: one fourth-order Runge-Kutta step of length `dt`, angles wrapped to [-π, π],
//! velocities clipped. As in Gymnasium, the second link's length only matters for drawing (the
//! goal test assumes unit links), so it is not a parameter here.

use std::f64::consts::PI;

use rand::Rng;

use crate::env::{Action, Env, EnvError, EnvRng, Info, Obs, Space, Step};

crate::physics_params! {
    /// Acrobot's physics; defaults are Gymnasium's.
    pub struct AcrobotParams for "Acrobot-v1" {
        /// Seconds per step (one RK4 step).
        dt: 0.2, Positive;
        /// Length of the first link (m).
        link_length_1: 1.0, Positive;
        /// Mass of the first link (kg).
        link_mass_1: 1.0, Positive;
        /// Mass of the second link (kg).
        link_mass_2: 1.0, Positive;
        /// Position of the first link's centre of mass along it (m).
        link_com_pos_1: 0.5, Positive;
        /// Position of the second link's centre of mass along it (m).
        link_com_pos_2: 0.5, Positive;
        /// Moment of inertia of each link (kg·m²).
        link_moi: 1.0, Positive;
        /// Bound on the first joint's angular velocity (rad/s).
        max_vel_1: 4.0 * PI, Positive;
        /// Bound on the second joint's angular velocity (rad/s).
        max_vel_2: 9.0 * PI, Positive;
        /// Gravitational acceleration (m/s²).
        gravity: 9.8, NonNegative;
        /// Half-width of uniform noise added to the torque (0: none).
        torque_noise_max: 0.0, NonNegative;
    }
}

const AVAIL_TORQUE: [f64; 3] = [-1.0, 0.0, 1.0];

/// The two-link underactuated pendulum.
#[derive(Clone, Debug)]
pub struct Acrobot {
    p: AcrobotParams,
    state: [f64; 4],
    rng: EnvRng,
    observation_space: Space,
    action_space: Space,
}

impl Acrobot {
    /// Builds the environment from `p`; a value out of its physical range is an
    /// [`EnvError::ParamOutOfRange`].
    pub fn new(p: AcrobotParams) -> Result<Self, EnvError> {
        p.validate()?;
        let high = [1.0, 1.0, 1.0, 1.0, p.max_vel_1 as f32, p.max_vel_2 as f32];
        Ok(Acrobot {
            p,
            state: [0.0; 4],
            rng: EnvRng::default(),
            observation_space: Space::symmetric(&high),
            action_space: Space::Discrete { n: 3 },
        })
    }

    /// The internal state `[θ1, θ2, θ1', θ2']`.
    pub fn state(&self) -> [f64; 4] {
        self.state
    }

    /// Sets the internal state (for tests against recorded trajectories, or chosen starts).
    pub fn set_state(&mut self, state: [f64; 4]) {
        self.state = state;
    }

    fn obs(&self) -> Obs {
        let [t1, t2, d1, d2] = self.state;
        [t1.cos(), t1.sin(), t2.cos(), t2.sin(), d1, d2].iter().map(|&v| v as f32).collect()
    }

    /// Time derivative of `[θ1, θ2, θ1', θ2']` under torque `a` (the book's dynamics).
    fn dsdt(&self, s: [f64; 4], a: f64) -> [f64; 4] {
        let p = &self.p;
        let (m1, m2, l1) = (p.link_mass_1, p.link_mass_2, p.link_length_1);
        let (lc1, lc2, i1, i2, g) = (p.link_com_pos_1, p.link_com_pos_2, p.link_moi, p.link_moi, p.gravity);
        let [theta1, theta2, dtheta1, dtheta2] = s;
        // Written in Gymnasium's order of operations, so that rounding matches.
        let d1 = m1 * lc1.powi(2) + m2 * (l1.powi(2) + lc2.powi(2) + 2.0 * l1 * lc2 * theta2.cos()) + i1 + i2;
        let d2 = m2 * (lc2.powi(2) + l1 * lc2 * theta2.cos()) + i2;
        let phi2 = m2 * lc2 * g * (theta1 + theta2 - PI / 2.0).cos();
        let phi1 = -m2 * l1 * lc2 * dtheta2.powi(2) * theta2.sin()
            - 2.0 * m2 * l1 * lc2 * dtheta2 * dtheta1 * theta2.sin()
            + (m1 * lc1 + m2 * l1) * g * (theta1 - PI / 2.0).cos()
            + phi2;
        let ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1.powi(2) * theta2.sin() - phi2)
            / (m2 * lc2.powi(2) + i2 - d2.powi(2) / d1);
        let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
        [dtheta1, dtheta2, ddtheta1, ddtheta2]
    }
}

/// Wraps `x` into `[m, mm]` by whole turns, as Gymnasium's `wrap`.
fn wrap(mut x: f64, m: f64, mm: f64) -> f64 {
    let diff = mm - m;
    while x > mm {
        x -= diff;
    }
    while x < m {
        x += diff;
    }
    x
}

impl Env for Acrobot {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        let rng = self.rng.reseed(seed);
        self.state = std::array::from_fn(|_| rng.random_range(-0.1..0.1) as f32 as f64);
        Ok((self.obs(), Info::new()))
    }

    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        let mut torque = match action {
            Action::Discrete(a) if *a < 3 => AVAIL_TORQUE[*a],
            _ => return Err(self.action_space.reject(action)),
        };
        if self.p.torque_noise_max > 0.0 {
            let m = self.p.torque_noise_max;
            torque += self.rng.reseed(None).random_range(-m..m);
        }
        // One RK4 step over [0, dt], with Gymnasium's association of the sums.
        let s = self.state;
        let dt = self.p.dt;
        let dt2 = dt / 2.0;
        let add = |y: [f64; 4], h: f64, k: [f64; 4]| -> [f64; 4] { std::array::from_fn(|i| y[i] + h * k[i]) };
        let k1 = self.dsdt(s, torque);
        let k2 = self.dsdt(add(s, dt2, k1), torque);
        let k3 = self.dsdt(add(s, dt2, k2), torque);
        let k4 = self.dsdt(add(s, dt, k3), torque);
        let ns: [f64; 4] = std::array::from_fn(|i| s[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]));
        let p = &self.p;
        self.state = [
            wrap(ns[0], -PI, PI),
            wrap(ns[1], -PI, PI),
            ns[2].clamp(-p.max_vel_1, p.max_vel_1),
            ns[3].clamp(-p.max_vel_2, p.max_vel_2),
        ];
        let [t1, t2, _, _] = self.state;
        let terminated = -t1.cos() - (t2 + t1).cos() > 1.0;
        let reward = if terminated { 0.0 } else { -1.0 };
        Ok(Step { obs: self.obs(), reward, terminated, truncated: false, info: Info::new() })
    }
}
