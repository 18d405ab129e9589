//! Writing a headstart checkpoint as a Stable-Baselines3 model: the `.zip` that `PPO.load`,
//! `DQN.load` and `SAC.load` read (the policy's state dict under SB3's names, empty optimiser
//! states of the right shape, `data` with the spaces, the policy's keyword arguments and the
//! hyperparameters), and `vec_normalize.pkl` beside it when the agent normalises observations.
//!
//! Pickles are written by hand with classes named, not executed: `gymnasium.spaces.box.Box` and
//! `Discrete` rebuilt from their state, arrays as `numpy.array(list, dtype)`, the policy class and
//! activation as globals, `VecNormalize` and `RunningMeanStd` from their state.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Value as Json, json};
use tch::Tensor;

use super::Sb3Error;
use super::torch_file::{PickleWriter, StateTensor, torch_zip, write_state_dict};
use crate::agent::AgentConfig;
use crate::agent::checkpoint;
use crate::agent::nn::Activation;
use crate::agent::sac::EntCoef;
use crate::agent::schedule::Schedule;
use crate::env::Space;

/// The Stable-Baselines3 version whose file layout this writes.
const SB3_VERSION: &str = "2.9.2";

impl PickleWriter {
    fn list_of<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Self, &T)) {
        self.op(b']');
        self.op(b'(');
        for item in items {
            each(self, item);
        }
        self.op(b'e');
    }

    /// `numpy.array([...], dtype)`.
    fn array(&mut self, values: &[f64], dtype: &str) {
        self.global("numpy", "array");
        self.list_of(values, |p, &v| p.float(v));
        self.string(dtype);
        self.op(0x86);
        self.op(b'R');
    }

    /// `numpy.dtype(name)`.
    fn dtype(&mut self, name: &str) {
        self.global("numpy", "dtype");
        self.string(name);
        self.op(0x85);
        self.op(b'R');
    }

    /// `cls.__new__(cls)` with its `__dict__` (or `__setstate__`) from `fields`.
    fn object(&mut self, module: &str, class: &str, fields: impl FnOnce(&mut Self)) {
        self.global(module, class);
        self.op(b')');
        self.op(0x81);
        self.op(b'}');
        self.op(b'(');
        fields(self);
        self.op(b'u');
        self.op(b'b');
    }

    fn space(&mut self, space: &Space) {
        match space {
            Space::Discrete { n } => self.object("gymnasium.spaces.discrete", "Discrete", |p| {
                p.string("dtype");
                p.dtype("int64");
                p.string("_shape");
                p.op(b')');
                p.string("n");
                p.int(*n as i64);
                p.string("start");
                p.int(0);
                p.string("_np_random");
                p.op(b'N');
            }),
            Space::Box { low, high, shape } => self.object("gymnasium.spaces.box", "Box", |p| {
                let finite = |v: &[f32], sign: f32| -> Vec<f64> {
                    v.iter().map(|&x| if x.is_infinite() && x.signum() == sign { 0.0 } else { 1.0 }).collect()
                };
                p.string("dtype");
                p.dtype("float32");
                p.string("_shape");
                p.int_tuple(shape);
                p.string("low");
                p.array(&low.iter().map(|&v| v as f64).collect::<Vec<_>>(), "float32");
                p.string("high");
                p.array(&high.iter().map(|&v| v as f64).collect::<Vec<_>>(), "float32");
                p.string("bounded_below");
                p.array(&finite(low, -1.0), "bool");
                p.string("bounded_above");
                p.array(&finite(high, 1.0), "bool");
                p.string("_np_random");
                p.op(b'N');
            }),
        }
    }
}

/// A cloudpickled entry of `data`: `{":type:": ..., ":serialized:": base64}`.
fn serialized(type_name: &str, write: impl FnOnce(&mut PickleWriter)) -> Json {
    let mut p = PickleWriter::default();
    p.proto();
    write(&mut p);
    p.op(b'.');
    json!({":type:": type_name, ":serialized:": base64::engine::general_purpose::STANDARD.encode(&p.out)})
}

/// An optimiser state dict with no per-parameter state and one group of `count` parameters.
fn optimizer(count: usize, lr: f64, eps: f64) -> Vec<u8> {
    let mut p = PickleWriter::default();
    p.proto();
    p.op(b'}');
    p.op(b'(');
    p.string("state");
    p.op(b'}');
    p.string("param_groups");
    p.op(b']');
    p.op(b'}');
    p.op(b'(');
    p.string("lr");
    p.float(lr);
    p.string("betas");
    p.float(0.9);
    p.float(0.999);
    p.op(0x86);
    p.string("eps");
    p.float(eps);
    p.string("weight_decay");
    p.int(0);
    p.string("amsgrad");
    p.op(0x89);
    p.string("params");
    p.list_of(&(0..count).collect::<Vec<_>>(), |p, &i| p.int(i as i64));
    p.op(b'u');
    p.op(b'a');
    p.op(b'u');
    p.op(b'.');
    // torch.save's zip around a pickle without tensors.
    torch_zip("archive", &p.out, &[])
}

fn activation_class(p: &mut PickleWriter, activation: Activation) {
    let name = match activation {
        Activation::Tanh => "Tanh",
        Activation::Relu => "ReLU",
    };
    p.global("torch.nn.modules.activation", name);
}

/// A schedule as `data` holds it: a constant as a number, headstart's linear schedule (to zero
/// over the run) as SB3's own `LinearSchedule(start, 0, 1)`, pickled, which SB3 2.x calls with
/// the progress remaining as headstart calls its schedule with the progress made.
fn schedule(schedule: &Schedule) -> Json {
    match *schedule {
        Schedule::Constant(v) => json!(v),
        Schedule::Linear(start) => serialized("<class 'stable_baselines3.common.utils.LinearSchedule'>", |p| {
            p.object("stable_baselines3.common.utils", "LinearSchedule", |p| {
                for (field, value) in [("start", start), ("end", 0.0), ("end_fraction", 1.0)] {
                    p.string(field);
                    p.float(value);
                }
            })
        }),
    }
}

/// Writes the checkpoint in `dir` as the SB3 model `out` (a `.zip`), and `vec_normalize.pkl`
/// beside it when the agent normalises observations; returns the files written.
pub fn export(dir: &Path, out: &Path) -> Result<Vec<PathBuf>, Sb3Error> {
    let loaded = checkpoint::load(dir).map_err(|e| Sb3Error::new(dir, None, e.to_string()))?;
    let (card, agent) = (loaded.card, loaded.agent);
    let tensors: std::collections::HashMap<String, Tensor> = agent.tensors().into_iter().collect();
    let fail = |m: String| Sb3Error::new(dir, None, m);
    let take = |from: &str, to: &str| -> Result<StateTensor, Sb3Error> {
        let t = tensors.get(from).ok_or_else(|| fail(format!("the checkpoint has no `{from}`")))?;
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let values =
            Vec::<f32>::try_from(t.to_kind(tch::Kind::Float).flatten(0, -1)).map_err(|e| fail(e.to_string()))?;
        Ok(StateTensor { name: to.to_string(), shape, values })
    };
    // `{from}.trunk.{i}` and `{from}.head` as a Sequential (`{to}.{2i}`), the head last at
    // `{to}.{2n}` or apart at `head_to`.
    let mlp = |state: &mut Vec<StateTensor>, from: &str, to: &str, layers: usize, head_to: Option<&str>| {
        for i in 0..layers {
            for part in ["weight", "bias"] {
                state.push(take(&format!("{from}.trunk.{i}.{part}"), &format!("{to}.{}.{part}", 2 * i))?);
            }
        }
        for part in ["weight", "bias"] {
            let target = match head_to {
                Some(h) => format!("{h}.{part}"),
                None => format!("{to}.{}.{part}", 2 * layers),
            };
            state.push(take(&format!("{from}.head.{part}"), &target)?);
        }
        Ok::<(), Sb3Error>(())
    };
    let mut state = Vec::new();
    let mut extra: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut variables = Vec::new();
    let mut data = serde_json::Map::new();
    let (policy_module, policy_class, net, lr) = match &card.config {
        AgentConfig::Ppo(c) => {
            let critic_hidden = c.critic_net().hidden;
            mlp(&mut state, "actor", "mlp_extractor.policy_net", c.net.hidden.len(), Some("action_net"))?;
            mlp(&mut state, "critic", "mlp_extractor.value_net", critic_hidden.len(), Some("value_net"))?;
            if let Space::Box { .. } = card.action_space {
                state.push(take("actor.log_std", "log_std")?);
            }
            let lr = c.learning_rate;
            extra.push(("policy.optimizer.pth", optimizer(state.len(), lr.at(0.0), 1e-5)));
            for (k, v) in [
                ("n_envs", json!(c.n_envs)),
                ("n_steps", json!(c.n_steps)),
                ("batch_size", json!(c.batch_size)),
                ("n_epochs", json!(c.n_epochs)),
                ("gamma", json!(c.gamma)),
                ("gae_lambda", json!(c.gae_lambda)),
                ("ent_coef", json!(c.ent_coef)),
                ("vf_coef", json!(c.vf_coef)),
                ("max_grad_norm", json!(c.max_grad_norm)),
                ("clip_range", schedule(&c.clip_range)),
                ("clip_range_vf", json!(c.clip_range_vf)),
                ("normalize_advantage", json!(c.normalize_advantage)),
                ("target_kl", json!(c.target_kl)),
                ("use_sde", json!(c.use_sde)),
                ("sde_sample_freq", json!(c.sde_sample_freq)),
            ] {
                data.insert(k.into(), v);
            }
            let (hidden, activation, ortho, log_std_init) =
                (c.net.hidden.clone(), c.net.activation, c.net.ortho_init, c.log_std_init);
            let kwargs = serialized("<class 'dict'>", |p| {
                p.op(b'}');
                p.op(b'(');
                p.string("net_arch");
                p.op(b'}');
                p.op(b'(');
                for (key, widths) in [("pi", &hidden), ("vf", &critic_hidden)] {
                    p.string(key);
                    p.list_of(widths, |p, &h| p.int(h as i64));
                }
                p.op(b'u');
                p.string("activation_fn");
                activation_class(p, activation);
                p.string("ortho_init");
                p.op(if ortho { 0x88 } else { 0x89 });
                p.string("log_std_init");
                p.float(log_std_init);
                p.op(b'u');
            });
            ("stable_baselines3.common.policies", "ActorCriticPolicy", kwargs, lr)
        }
        AgentConfig::Dqn(c) => {
            let n = c.net.hidden.len();
            mlp(&mut state, "q", "q_net.q_net", n, None)?;
            let online = state.len();
            mlp(&mut state, "q_target", "q_net_target.q_net", n, None)?;
            let lr = c.learning_rate;
            extra.push(("policy.optimizer.pth", optimizer(online, lr.at(0.0), 1e-8)));
            let interval = (c.target_update_interval / c.n_envs as u64).max(1);
            for (k, v) in [
                ("n_envs", json!(c.n_envs)),
                ("buffer_size", json!(c.buffer_size)),
                ("learning_starts", json!(c.learning_starts)),
                ("batch_size", json!(c.batch_size)),
                ("tau", json!(c.tau)),
                ("gamma", json!(c.gamma)),
                ("train_freq", json!(c.train_freq)),
                ("gradient_steps", json!(c.gradient_steps)),
                ("target_update_interval", json!(interval)),
                ("exploration_fraction", json!(c.exploration_fraction)),
                ("exploration_initial_eps", json!(c.exploration_initial_eps)),
                ("exploration_final_eps", json!(c.exploration_final_eps)),
                ("max_grad_norm", json!(c.max_grad_norm)),
            ] {
                data.insert(k.into(), v);
            }
            let (hidden, activation) = (c.net.hidden.clone(), c.net.activation);
            let kwargs = serialized("<class 'dict'>", |p| {
                p.op(b'}');
                p.op(b'(');
                p.string("net_arch");
                p.list_of(&hidden, |p, &h| p.int(h as i64));
                p.string("activation_fn");
                activation_class(p, activation);
                p.op(b'u');
            });
            ("stable_baselines3.dqn.policies", "DQNPolicy", kwargs, lr)
        }
        AgentConfig::Sac(c) => {
            if c.use_sde {
                return Err(fail("a SAC agent with gSDE: its noise has no SB3 counterpart to export to".into()));
            }
            let n = c.net.hidden.len();
            mlp(&mut state, "actor", "actor.latent_pi", n, Some("actor.mu"))?;
            for part in ["weight", "bias"] {
                state.push(take(&format!("actor.log_std.{part}"), &format!("actor.log_std.{part}"))?);
            }
            let actor = state.len();
            for k in 0..2 {
                mlp(&mut state, &format!("critic.q{k}"), &format!("critic.qf{k}"), n, None)?;
            }
            let critic = state.len() - actor;
            for k in 0..2 {
                mlp(&mut state, &format!("critic_target.q{k}"), &format!("critic_target.qf{k}"), n, None)?;
            }
            let lr = c.learning_rate;
            extra.push(("actor.optimizer.pth", optimizer(actor, lr.at(0.0), 1e-8)));
            extra.push(("critic.optimizer.pth", optimizer(critic, lr.at(0.0), 1e-8)));
            let ent_coef = match c.ent_coef {
                EntCoef::Auto(start) => {
                    extra.push(("ent_coef_optimizer.pth", optimizer(1, lr.at(0.0), 1e-8)));
                    variables.push(take("log_ent_coef", "log_ent_coef")?);
                    if start == 1.0 { json!("auto") } else { json!(format!("auto_{start}")) }
                }
                EntCoef::Fixed(v) => {
                    variables.push(StateTensor {
                        name: "ent_coef_tensor".into(),
                        shape: vec![],
                        values: vec![v as f32],
                    });
                    json!(v)
                }
            };
            let target_entropy = c.target_entropy.unwrap_or(-(card.action_space.flat_dim() as f64));
            for (k, v) in [
                ("n_envs", json!(c.n_envs)),
                ("buffer_size", json!(c.buffer_size)),
                ("learning_starts", json!(c.learning_starts)),
                ("batch_size", json!(c.batch_size)),
                ("tau", json!(c.tau)),
                ("gamma", json!(c.gamma)),
                ("train_freq", json!(c.train_freq)),
                ("gradient_steps", json!(c.gradient_steps)),
                ("target_update_interval", json!(c.target_update_interval)),
                ("ent_coef", ent_coef),
                ("target_entropy", json!(target_entropy)),
                ("use_sde", json!(false)),
            ] {
                data.insert(k.into(), v);
            }
            let (hidden, activation) = (c.net.hidden.clone(), c.net.activation);
            let kwargs = serialized("<class 'dict'>", |p| {
                p.op(b'}');
                p.op(b'(');
                p.string("net_arch");
                p.list_of(&hidden, |p, &h| p.int(h as i64));
                p.string("activation_fn");
                activation_class(p, activation);
                p.string("use_sde");
                p.op(0x89);
                p.op(b'u');
            });
            ("stable_baselines3.sac.policies", "SACPolicy", kwargs, lr)
        }
    };
    data.insert("policy_class".into(), serialized("<class 'abc.ABCMeta'>", |p| p.global(policy_module, policy_class)));
    data.insert("policy_kwargs".into(), net);
    data.insert("learning_rate".into(), schedule(&lr));
    data.insert(
        "observation_space".into(),
        serialized("<class 'gymnasium.spaces.box.Box'>", |p| p.space(&card.observation_space)),
    );
    data.insert("action_space".into(), serialized("<class 'gymnasium.spaces.Space'>", |p| p.space(&card.action_space)));
    data.insert("num_timesteps".into(), json!(card.steps));
    data.insert("seed".into(), json!(card.seed));
    data.insert("verbose".into(), json!(0));

    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut add = |name: &str, bytes: &[u8]| -> Result<(), Sb3Error> {
        zip.start_file(name, options).map_err(|e| Sb3Error::new(out, Some(name), e.to_string()))?;
        zip.write_all(bytes).map_err(|e| Sb3Error::new(out, Some(name), e.to_string()))
    };
    let text = serde_json::to_vec_pretty(&Json::Object(data)).map_err(|e| fail(e.to_string()))?;
    add("data", &text)?;
    add("pytorch_variables.pth", &write_state_dict(&variables, "archive"))?;
    add("policy.pth", &write_state_dict(&state, "archive"))?;
    for (name, bytes) in &extra {
        add(name, bytes)?;
    }
    add("_stable_baselines3_version", SB3_VERSION.as_bytes())?;
    add(
        "system_info.txt",
        format!("- headstart: {}\n- exported from: {}\n", env!("CARGO_PKG_VERSION"), dir.display()).as_bytes(),
    )?;
    let bytes = zip.finish().map_err(|e| Sb3Error::new(out, None, e.to_string()))?.into_inner();
    crate::util::write_atomic(out, &bytes).map_err(|e| Sb3Error::new(out, None, e.error.to_string()))?;
    let mut written = vec![out.to_path_buf()];
    if let AgentConfig::Ppo(c) = &card.config
        && (c.normalize_obs || c.normalize_reward)
    {
        let path = out.with_file_name("vec_normalize.pkl");
        let pickle = vec_normalize(&tensors, &card, c.gamma, dir)?;
        crate::util::write_atomic(&path, &pickle).map_err(|e| Sb3Error::new(&path, None, e.error.to_string()))?;
        written.push(path);
    }
    Ok(written)
}

/// `vec_normalize.pkl`: a `VecNormalize` (without its environment) holding the statistics.
fn vec_normalize(
    tensors: &std::collections::HashMap<String, Tensor>,
    card: &checkpoint::Card,
    gamma: f64,
    dir: &Path,
) -> Result<Vec<u8>, Sb3Error> {
    let read = |name: &str| -> Result<Vec<f64>, Sb3Error> {
        let t = tensors.get(name).ok_or_else(|| Sb3Error::new(dir, None, format!("the checkpoint has no `{name}`")))?;
        Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1))
            .map_err(|e| Sb3Error::new(dir, Some(name), e.to_string()))
    };
    let dim = card.observation_space.flat_dim();
    let stats = |prefix: &str, n: usize| -> Result<(Vec<f64>, Vec<f64>, f64), Sb3Error> {
        match tensors.contains_key(&format!("{prefix}.mean")) {
            true => Ok((
                read(&format!("{prefix}.mean"))?,
                read(&format!("{prefix}.var"))?,
                read(&format!("{prefix}.count"))?[0],
            )),
            false => Ok((vec![0.0; n], vec![1.0; n], 1e-4)),
        }
    };
    let obs = stats("obs_rms", dim)?;
    let ret = stats("ret_rms", 1)?;
    let norm_obs = tensors.contains_key("obs_rms.mean");
    let norm_reward = tensors.contains_key("ret_rms.mean");
    let mut p = PickleWriter::default();
    p.proto();
    let rms = |p: &mut PickleWriter, (mean, var, count): &(Vec<f64>, Vec<f64>, f64)| {
        p.object("stable_baselines3.common.running_mean_std", "RunningMeanStd", |p| {
            p.string("mean");
            p.array(mean, "float64");
            p.string("var");
            p.array(var, "float64");
            p.string("count");
            p.float(*count);
        });
    };
    p.object("stable_baselines3.common.vec_env.vec_normalize", "VecNormalize", |p| {
        p.string("num_envs");
        p.int(1);
        p.string("observation_space");
        p.space(&card.observation_space);
        p.string("action_space");
        p.space(&card.action_space);
        p.string("obs_rms");
        rms(p, &obs);
        p.string("ret_rms");
        rms(p, &ret);
        for (k, v) in [("clip_obs", 10.0), ("clip_reward", 10.0), ("gamma", gamma), ("epsilon", 1e-8)] {
            p.string(k);
            p.float(v);
        }
        for (k, v) in [("training", false), ("norm_obs", norm_obs), ("norm_reward", norm_reward)] {
            p.string(k);
            p.op(if v { 0x88 } else { 0x89 });
        }
        p.string("norm_obs_keys");
        p.op(b'N');
        p.string("returns");
        p.array(&[0.0], "float64");
    });
    p.op(b'.');
    Ok(p.out)
}
