//! headstart: transfer learning for reinforcement learning.
//!
//! Policies are pretrained on **source** environments and their weights are transferred into
//! agents for related **target** environments (different physics, dimensions, reward scales);
//! harnesses measure the learning speed-up and detect negative transfer.
//!
//! This crate holds:
//! - [`env`]: a Gymnasium-faithful environment API, exact ports of the classic-control
//!   environments with every physics constant a named parameter, a registry of environments by
//!   id, and named variants;
//! - [`nn`]: networks whose parameters carry stable dotted names (the contract of checkpoints
//!   and transfer);
//! - [`cli`]: the `headstart` command line, which a user's own binary can reuse after
//!   registering custom environments.
//!
//! ```
//! use headstart::env::{Action, Env, EnvSpec, Registry};
//!
//! let registry = Registry::builtin();
//! let mut env = registry.make(&EnvSpec::new("Pendulum-v1").with("g", 9.81))?;
//! env.reset(Some(0))?;
//! let step = env.step(&Action::continuous(&[0.5]))?;
//! assert!(step.reward <= 0.0);
//! # Ok::<(), headstart::env::EnvError>(())
//! ```

pub mod agent;
pub mod cli;
pub mod env;
pub mod study;
pub mod transfer;
pub mod util;
