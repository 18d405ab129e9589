//! What an algorithm is called on each side, one table per algorithm, read both ways: the import
//! reads SB3's names into headstart's, the export writes headstart's under SB3's.
//!
//! - [`networks`]: each network's headstart prefix (`actor`: `actor.trunk.{i}`, `actor.head`), its
//!   SB3 `Sequential` (`mlp_extractor.policy_net.{2i}`) and where SB3 keeps its last layer (apart,
//!   `action_net`, or as the `Sequential`'s last linear); [`singles`]: tensors that are no layer.
//! - [`hyperparameters`]: the fields `data` holds as plain JSON under the names headstart's
//!   configuration gives them (through a [`Mapper`], which reads them with their types or writes
//!   them). Schedules, `train_freq`, SAC's entropy coefficient and TD3's action noise have forms of
//!   their own, read and written beside the table.

use std::fmt::Debug;

use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::Problem;
use super::fields::{Fields, FromJson};
use crate::agent::{A2cConfig, AgentConfig, Algo};

/// One network under both names.
pub(super) struct Network {
    /// Headstart's prefix: `{ours}.trunk.{i}`, `{ours}.head`.
    pub(super) ours: String,
    /// SB3's `Sequential`: `{theirs}.{2i}` (linear layers between activations).
    pub(super) theirs: String,
    /// Where SB3 keeps the last layer: apart (`action_net`), or `None` for the `Sequential`'s last
    /// linear.
    pub(super) head: Option<String>,
    /// A target network, which SB3 may leave out (then copied from its online network).
    pub(super) target: bool,
}

fn net(ours: &str, theirs: &str, head: Option<&str>) -> Network {
    Network {
        ours: ours.into(),
        theirs: theirs.into(),
        head: head.map(str::to_string),
        target: ours.contains("target"),
    }
}

/// The twin critics and their targets of SAC and TD3 (`critic.q{k}` is SB3's `critic.qf{k}`).
fn twin_critics() -> Vec<Network> {
    ["critic", "critic_target"]
        .iter()
        .flat_map(|c| (0..2).map(move |k| net(&format!("{c}.q{k}"), &format!("{c}.qf{k}"), None)))
        .collect()
}

/// Every network of `algo`'s policy under both names, in SB3's state-dict order.
pub(super) fn networks(algo: Algo) -> Vec<Network> {
    match algo {
        Algo::Ppo | Algo::A2c => vec![
            net("actor", "mlp_extractor.policy_net", Some("action_net")),
            net("critic", "mlp_extractor.value_net", Some("value_net")),
        ],
        Algo::Dqn => vec![net("q", "q_net.q_net", None), net("q_target", "q_net_target.q_net", None)],
        Algo::Sac => std::iter::once(net("actor", "actor.latent_pi", Some("actor.mu"))).chain(twin_critics()).collect(),
        Algo::Td3 => [net("actor", "actor.mu", None), net("actor_target", "actor_target.mu", None)]
            .into_iter()
            .chain(twin_critics())
            .collect(),
    }
}

/// The tensors of `algo`'s policy that are no layer of a network, `(ours, theirs)`: the `log σ`
/// of PPO's and A2C's Gaussian (`box_actions`), SAC's `log σ` head.
pub(super) fn singles(algo: Algo, box_actions: bool) -> Vec<(&'static str, &'static str)> {
    match algo {
        Algo::Ppo | Algo::A2c if box_actions => vec![("actor.log_std", "log_std")],
        Algo::Sac => {
            vec![("actor.log_std.weight", "actor.log_std.weight"), ("actor.log_std.bias", "actor.log_std.bias")]
        }
        _ => Vec::new(),
    }
}

/// Reads a hyperparameter from `data` into headstart's configuration, or writes it there.
pub(super) enum Mapper<'a, 'b> {
    /// The import: each field used with its type, refused, or listed as absent.
    Read(&'a mut Fields<'b>),
    /// The export: each field written as JSON.
    Write(&'a mut Map<String, Json>),
}

impl Mapper<'_, '_> {
    /// An off-policy `gradient_steps`: SB3's `-1` ("as many as the steps collected") has no
    /// counterpart in headstart's fixed count, and is listed as not carried.
    fn gradient_steps(&mut self, slot: &mut usize) -> Result<(), Problem> {
        if let Mapper::Read(fields) = self
            && fields.get("gradient_steps").and_then(Json::as_i64) == Some(-1)
        {
            fields.not_carried.push(format!(
                "gradient_steps -1 (as many as the steps each round collected: headstart trains a fixed number, its {slot} kept)"
            ));
            return Ok(());
        }
        self.field("gradient_steps", slot)
    }

    fn field<T: FromJson + Serialize + Debug>(&mut self, name: &str, slot: &mut T) -> Result<(), Problem> {
        match self {
            Mapper::Read(fields) => fields.set(slot, name),
            Mapper::Write(data) => {
                let value = serde_json::to_value(&*slot).map_err(|e| Problem(format!("`{name}`: {e}")))?;
                data.insert(name.to_string(), value);
                Ok(())
            }
        }
    }
}

/// The plain hyperparameters of `config` through `m` (see the module's docs).
pub(super) fn hyperparameters(config: &mut AgentConfig, m: &mut Mapper<'_, '_>) -> Result<(), Problem> {
    match config {
        AgentConfig::Ppo(c) => {
            m.field("n_envs", &mut c.n_envs)?;
            m.field("n_steps", &mut c.n_steps)?;
            m.field("batch_size", &mut c.batch_size)?;
            m.field("n_epochs", &mut c.n_epochs)?;
            m.field("gamma", &mut c.gamma)?;
            m.field("gae_lambda", &mut c.gae_lambda)?;
            m.field("ent_coef", &mut c.ent_coef)?;
            m.field("vf_coef", &mut c.vf_coef)?;
            m.field("max_grad_norm", &mut c.max_grad_norm)?;
            m.field("normalize_advantage", &mut c.normalize_advantage)?;
            m.field("use_sde", &mut c.use_sde)?;
            m.field("sde_sample_freq", &mut c.sde_sample_freq)
        }
        AgentConfig::A2c(c) => a2c(c, m),
        AgentConfig::Dqn(c) => {
            m.field("n_envs", &mut c.n_envs)?;
            m.field("buffer_size", &mut c.buffer_size)?;
            m.field("learning_starts", &mut c.learning_starts)?;
            m.field("batch_size", &mut c.batch_size)?;
            m.field("tau", &mut c.tau)?;
            m.field("gamma", &mut c.gamma)?;
            m.field("gradient_steps", &mut c.gradient_steps)?;
            // SB3 2.9 stores the interval in environment steps, as given, and divides it by
            // n_envs where it uses it (`_on_step`), as headstart's DQN does.
            m.field("target_update_interval", &mut c.target_update_interval)?;
            m.field("exploration_fraction", &mut c.exploration_fraction)?;
            m.field("exploration_initial_eps", &mut c.exploration_initial_eps)?;
            m.field("exploration_final_eps", &mut c.exploration_final_eps)?;
            m.field("max_grad_norm", &mut c.max_grad_norm)
        }
        AgentConfig::Sac(c) => {
            m.field("n_envs", &mut c.n_envs)?;
            m.field("buffer_size", &mut c.buffer_size)?;
            m.field("learning_starts", &mut c.learning_starts)?;
            m.field("batch_size", &mut c.batch_size)?;
            m.field("tau", &mut c.tau)?;
            m.field("gamma", &mut c.gamma)?;
            m.gradient_steps(&mut c.gradient_steps)?;
            m.field("target_update_interval", &mut c.target_update_interval)
        }
        AgentConfig::Td3(c) => {
            m.field("n_envs", &mut c.n_envs)?;
            m.field("buffer_size", &mut c.buffer_size)?;
            m.field("learning_starts", &mut c.learning_starts)?;
            m.field("batch_size", &mut c.batch_size)?;
            m.field("tau", &mut c.tau)?;
            m.field("gamma", &mut c.gamma)?;
            m.gradient_steps(&mut c.gradient_steps)?;
            m.field("policy_delay", &mut c.policy_delay)?;
            m.field("target_policy_noise", &mut c.target_policy_noise)?;
            m.field("target_noise_clip", &mut c.target_noise_clip)
        }
    }
}

fn a2c(c: &mut A2cConfig, m: &mut Mapper<'_, '_>) -> Result<(), Problem> {
    m.field("n_envs", &mut c.n_envs)?;
    m.field("n_steps", &mut c.n_steps)?;
    m.field("gamma", &mut c.gamma)?;
    m.field("gae_lambda", &mut c.gae_lambda)?;
    m.field("ent_coef", &mut c.ent_coef)?;
    m.field("vf_coef", &mut c.vf_coef)?;
    m.field("max_grad_norm", &mut c.max_grad_norm)?;
    m.field("normalize_advantage", &mut c.normalize_advantage)?;
    m.field("use_sde", &mut c.use_sde)?;
    m.field("sde_sample_freq", &mut c.sde_sample_freq)
}
