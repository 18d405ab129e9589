//! CartPole-v1, ported from Gymnasium 1.4.0 (`classic_control/cartpole.py`; Barto, Sutton and
//! Anderson, 1983).
//!
//! | | |
//! |---|---|
//! | Action space | `Discrete(2)`: 0 pushes the cart left, 1 right, with `force_mag` |
//! | Observation | `[x, x_dot, theta, theta_dot]`, `Box` with `x` in ±2·`x_threshold`, `theta` in ±2·`theta_threshold_radians` |
//! | Reward | +1 every step, including the terminating one |
//! | Start | every state variable uniform in [-0.05, 0.05] |
//! | Termination | `|x| > x_threshold` or `|theta| > theta_threshold_radians` |
//! | Truncation | 500 steps (registry's `TimeLimit`) |
//!
//! Integrator: explicit Euler with step `tau`, state in `f64`, observations cast to `f32`.

use rand::Rng;

use crate::env::{Action, Env, EnvError, EnvRng, Info, Obs, Space, Step};

crate::physics_params! {
    /// CartPole's physics; defaults are Gymnasium's.
    pub struct CartPoleParams for "CartPole-v1" {
        /// Gravitational acceleration (m/s²).
        gravity: 9.8, NonNegative;
        /// Mass of the cart (kg).
        masscart: 1.0, Positive;
        /// Mass of the pole (kg).
        masspole: 0.1, Positive;
        /// Half the pole's length (m).
        length: 0.5, Positive;
        /// Magnitude of the push (N).
        force_mag: 10.0, Positive;
        /// Seconds between state updates.
        tau: 0.02, Positive;
        /// Pole angle beyond which the episode terminates (rad).
        theta_threshold_radians: 12.0 * 2.0 * std::f64::consts::PI / 360.0, Within(1e-6, std::f64::consts::PI);
        /// Cart position beyond which the episode terminates (m).
        x_threshold: 2.4, Positive;
    }
}

/// The cart-pole system.
#[derive(Clone, Debug)]
pub struct CartPole {
    p: CartPoleParams,
    state: [f64; 4],
    rng: EnvRng,
    observation_space: Space,
    action_space: Space,
}

impl CartPole {
    /// Builds the environment from `p`; a value out of its physical range is an
    /// [`EnvError::ParamOutOfRange`].
    pub fn new(p: CartPoleParams) -> Result<Self, EnvError> {
        p.validate()?;
        let high =
            [(p.x_threshold * 2.0) as f32, f32::INFINITY, (p.theta_threshold_radians * 2.0) as f32, f32::INFINITY];
        Ok(CartPole {
            p,
            state: [0.0; 4],
            rng: EnvRng::default(),
            observation_space: Space::symmetric(&high),
            action_space: Space::Discrete { n: 2 },
        })
    }

    /// The internal state `[x, x_dot, theta, theta_dot]`.
    pub fn state(&self) -> [f64; 4] {
        self.state
    }

    /// Sets the internal state (for tests against recorded trajectories, or chosen starts).
    pub fn set_state(&mut self, state: [f64; 4]) {
        self.state = state;
    }

    #[inline]
    fn obs(&self) -> Obs {
        Obs::from_slice(&self.state.map(|v| v as f32))
    }
}

impl Env for CartPole {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        let rng = self.rng.reseed(seed);
        self.state = std::array::from_fn(|_| rng.random_range(-0.05..0.05));
        Ok((self.obs(), Info::new()))
    }

    #[inline(always)]
    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        let push_right = match action {
            Action::Discrete(0) => false,
            Action::Discrete(1) => true,
            _ => return Err(self.action_space.reject(action)),
        };
        let p = &self.p;
        let [x, x_dot, theta, theta_dot] = self.state;
        let force = if push_right { p.force_mag } else { -p.force_mag };
        let (sintheta, costheta) = theta.sin_cos();
        let total_mass = p.masspole + p.masscart;
        let polemass_length = p.masspole * p.length;

        // Parenthesised as Gymnasium computes them, so that rounding matches bit for bit.
        let temp = (force + polemass_length * (theta_dot * theta_dot) * sintheta) / total_mass;
        let thetaacc = (p.gravity * sintheta - costheta * temp)
            / (p.length * (4.0 / 3.0 - p.masspole * (costheta * costheta) / total_mass));
        let xacc = temp - polemass_length * thetaacc * costheta / total_mass;

        self.state = [x + p.tau * x_dot, x_dot + p.tau * xacc, theta + p.tau * theta_dot, theta_dot + p.tau * thetaacc];
        let [x, _, theta, _] = self.state;
        let terminated = x < -p.x_threshold
            || x > p.x_threshold
            || theta < -p.theta_threshold_radians
            || theta > p.theta_threshold_radians;
        Ok(Step { obs: self.obs(), reward: 1.0, terminated, truncated: false, info: Info::new() })
    }
}
