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
use crate::agent::{AgentConfig, Algo};

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
    /// A `CnnPolicy`'s `NatureCNN` in front (`{extractor}.cnn.{2i}`, `{extractor}.linear.0`):
    /// headstart's `{ours}.encoder.conv.{i}` and `{ours}.trunk.0`, the `Sequential`'s layers
    /// following as `{ours}.trunk.{1 + i}`.
    pub(super) extractor: Option<String>,
}

fn net(ours: &str, theirs: &str, head: Option<&str>) -> Network {
    Network {
        ours: ours.into(),
        theirs: theirs.into(),
        head: head.map(str::to_string),
        target: ours.contains("target"),
        extractor: None,
    }
}

/// `network` behind the Nature CNN at `extractor`.
fn cnn(network: Network, extractor: &str) -> Network {
    Network { extractor: Some(extractor.into()), ..network }
}

/// The twin critics and their targets of SAC and TD3 (`critic.q{k}` is SB3's `critic.qf{k}`).
fn twin_critics() -> Vec<Network> {
    ["critic", "critic_target"]
        .iter()
        .flat_map(|c| (0..2).map(move |k| net(&format!("{c}.q{k}"), &format!("{c}.qf{k}"), None)))
        .collect()
}

/// Every network of `algo`'s policy under both names, in SB3's state-dict order; `image`: a
/// `CnnPolicy`'s (PPO, A2C and DQN), whose networks read the Nature CNN first. A PPO's shared
/// extractor is `features_extractor` too, the actor's (see [`super::cnn`]).
pub(super) fn networks(algo: Algo, image: bool) -> Vec<Network> {
    match algo {
        Algo::Ppo | Algo::A2c if image => vec![
            cnn(net("actor", "mlp_extractor.policy_net", Some("action_net")), "pi_features_extractor"),
            cnn(net("critic", "mlp_extractor.value_net", Some("value_net")), "vf_features_extractor"),
        ],
        Algo::Dqn if image => vec![
            cnn(net("q", "q_net.q_net", None), "q_net.features_extractor"),
            cnn(net("q_target", "q_net_target.q_net", None), "q_net_target.features_extractor"),
        ],
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

    /// DQN's `optimize_memory_usage`: read as it is (headstart's is exact), written `false`
    /// (SB3's own refuses it beside `handle_timeout_termination`, its default, and drops a
    /// truncated episode's final observation; memory use is not part of a model).
    fn optimize_memory_usage(&mut self, slot: &mut bool) -> Result<(), Problem> {
        match self {
            Mapper::Read(fields) => fields.set(slot, "optimize_memory_usage"),
            Mapper::Write(data) => {
                data.insert("optimize_memory_usage".to_string(), Json::Bool(false));
                Ok(())
            }
        }
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

/// Maps the fields of `c` named alike on both sides through `m`, in order.
macro_rules! same_names {
    ($m:ident, $c:ident: $($field:ident),+ $(,)?) => {
        $( $m.field(stringify!($field), &mut $c.$field)?; )+
    };
}

/// The plain hyperparameters of `config` through `m` (see the module's docs).
pub(super) fn hyperparameters(config: &mut AgentConfig, m: &mut Mapper<'_, '_>) -> Result<(), Problem> {
    match config {
        AgentConfig::Ppo(c) => {
            same_names!(m, c: n_envs, n_steps, batch_size, n_epochs, gamma, gae_lambda, ent_coef, vf_coef,
                max_grad_norm, normalize_advantage, use_sde, sde_sample_freq);
        }
        AgentConfig::A2c(c) => {
            same_names!(m, c: n_envs, n_steps, gamma, gae_lambda, ent_coef, vf_coef, max_grad_norm,
                normalize_advantage, use_sde, sde_sample_freq);
        }
        // SB3 2.9 stores DQN's target_update_interval in environment steps, as given, and divides
        // it by n_envs where it uses it (`_on_step`), as headstart's DQN does.
        AgentConfig::Dqn(c) => {
            same_names!(m, c: n_envs, buffer_size, learning_starts, batch_size, tau, gamma, gradient_steps,
                target_update_interval, exploration_fraction, exploration_initial_eps, exploration_final_eps,
                max_grad_norm);
            m.optimize_memory_usage(&mut c.optimize_memory_usage)?;
        }
        AgentConfig::Sac(c) => {
            same_names!(m, c: n_envs, buffer_size, learning_starts, batch_size, tau, gamma);
            m.gradient_steps(&mut c.gradient_steps)?;
            same_names!(m, c: target_update_interval);
        }
        AgentConfig::Td3(c) => {
            same_names!(m, c: n_envs, buffer_size, learning_starts, batch_size, tau, gamma);
            m.gradient_steps(&mut c.gradient_steps)?;
            same_names!(m, c: policy_delay, target_policy_noise, target_noise_clip);
        }
    }
    Ok(())
}
