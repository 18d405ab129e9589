//! Gymnasium's classic-control environments, ported exactly from Gymnasium 1.4.0, with every
//! physics constant a named parameter (defaults equal Gymnasium's).
//!
//! | id | observation | actions | episode limit |
//! |---|---|---|---|
//! | `CartPole-v1` | 4 | `Discrete(2)` | 500 |
//! | `Acrobot-v1` | 6 | `Discrete(3)` | 500 |
//! | `MountainCar-v0` | 2 | `Discrete(3)` | 200 |
//! | `MountainCarContinuous-v0` | 2 | `Box(1)` | 999 |
//! | `Pendulum-v1` | 3 | `Box(1)` | 200 |
//!
//! Each is checked step by step against trajectories recorded from Gymnasium
//! (`tests/golden.rs`).

pub mod acrobot;
pub mod cartpole;
pub mod continuous_mountain_car;
pub mod mountain_car;
pub mod pendulum;

pub use acrobot::{Acrobot, AcrobotParams};
pub use cartpole::{CartPole, CartPoleParams};
pub use continuous_mountain_car::{ContinuousMountainCar, ContinuousMountainCarParams};
pub use mountain_car::{MountainCar, MountainCarParams};
pub use pendulum::{Pendulum, PendulumParams};

use super::registry::{EnvEntry, Registry};

/// Registers the five environments under their Gymnasium ids.
pub(crate) fn register_all(registry: &mut Registry) {
    registry.register(
        EnvEntry::new("CartPole-v1", |p| CartPole::new(CartPoleParams::from_overrides(p)?))
            .params(CartPoleParams::SPECS)
            .max_episode_steps(500)
            .reward_threshold(475.0)
            .doc("Balance a pole on a cart by pushing it left or right."),
    );
    registry.register(
        EnvEntry::new("Acrobot-v1", |p| Acrobot::new(AcrobotParams::from_overrides(p)?))
            .params(AcrobotParams::SPECS)
            .max_episode_steps(500)
            .reward_threshold(-100.0)
            .doc("Swing the end of a two-link chain above the bar with torque on the middle joint."),
    );
    registry.register(
        EnvEntry::new("MountainCar-v0", |p| MountainCar::new(MountainCarParams::from_overrides(p)?))
            .params(MountainCarParams::SPECS)
            .max_episode_steps(200)
            .reward_threshold(-110.0)
            .doc("Drive an underpowered car up a hill by rocking it (discrete engine)."),
    );
    registry.register(
        EnvEntry::new("MountainCarContinuous-v0", |p| {
            ContinuousMountainCar::new(ContinuousMountainCarParams::from_overrides(p)?)
        })
        .params(ContinuousMountainCarParams::SPECS)
        .max_episode_steps(999)
        .reward_threshold(90.0)
        .doc("Drive an underpowered car up a hill by rocking it (continuous engine)."),
    );
    registry.register(
        EnvEntry::new("Pendulum-v1", |p| Pendulum::new(PendulumParams::from_overrides(p)?))
            .params(PendulumParams::SPECS)
            .max_episode_steps(200)
            .doc("Swing a pendulum up and hold it upright with a bounded torque."),
    );
}
