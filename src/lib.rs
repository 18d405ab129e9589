//! headstart: transfer learning for reinforcement learning.
//!
//! Policies are pretrained on **source** environments and their weights are transferred into
//! agents for related **target** environments (different physics, dimensions, reward scales);
//! harnesses measure the learning speed-up and detect negative transfer.
//!
//! The crate is a house of six floors; each module uses only the floors below it (checked by
//! `tests/layers.rs`):
//! - [`util`]: the RON dialect of headstart's files, atomic writes, file errors, file-safe names,
//!   hashes, "did you mean", progress bars;
//! - [`env`](mod@env): a Gymnasium-faithful environment API (no tensors), exact ports of the
//!   classic-control environments with every physics constant a named parameter, a registry by
//!   id, named variants, interface transforms, mixtures, maps between spaces, random-policy
//!   returns;
//! - [`agent`]: networks whose parameters carry stable dotted names, action distributions, PPO,
//!   DQN and SAC on libtorch, RL Zoo presets, checkpoints that describe themselves, training
//!   runs, and Stable-Baselines3 models imported and exported;
//! - [`transfer`]: strategies that start a target agent from a source policy (copy, map,
//!   re-initialise, freeze, learning-rate scales, L2-SP, distillation, state resets), the report
//!   of what moved, and the ranking of source policies for a target;
//! - [`study`]: transfer studies: the experiment schema, units run in parallel and resumably,
//!   records, statistics, verdicts, figures and the report;
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

#![warn(missing_docs)]

pub mod agent;
pub mod cli;
pub mod env;
pub mod study;
pub mod transfer;
pub mod util;
