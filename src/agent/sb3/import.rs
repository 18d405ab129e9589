//! Reading a Stable-Baselines3 model: the `.zip` that `model.save` writes (`data`, a JSON of the
//! algorithm's attributes, some of them cloudpickled; `policy.pth`, the policy's state dict;
//! `pytorch_variables.pth`); the files beside it in an RL Zoo folder are [`super::zoo`]'s.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::fields::{Fields, Form, action_noise, carry_schedule, carry_train_freq, describe, schedule, space};
use super::kwargs::PolicyKwargs;
use super::names::{StateDict, place};
use super::cnn;
use super::table::{self, Mapper};
use super::torch_file;
use super::zoo::{self, Files};
use super::{AlsoRead, Model, Problem, Sb3Error};
use crate::agent::dqn::DqnConfig;
use crate::agent::nn::{Activation, Encoder, MlpConfig};
use crate::agent::ppo::PpoConfig;
use crate::agent::sac::{EntCoef, SacConfig};
use crate::agent::schedule::Schedule;
use crate::agent::td3::Td3Config;
use crate::agent::{A2cConfig, AgentConfig, Algo};
use crate::env::Space;

/// How to read a model: where its `VecNormalize` statistics are, when not beside it.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// A `vec_normalize.pkl` to use instead of the one found beside the model.
    pub vec_normalize: Option<PathBuf>,
}

/// Reads the model at `path` (a `.zip`, or an RL-Zoo-style folder holding one): a `.zip` inside
/// such a folder reads the same files beside it (`vec_normalize.pkl`, `config.yml`,
/// `env_kwargs.yml`) as the folder does.
pub fn read(path: &Path) -> Result<Model, Sb3Error> {
    read_with(path, &ReadOptions::default())
}

/// [`read`] with [`ReadOptions`].
pub fn read_with(path: &Path, options: &ReadOptions) -> Result<Model, Sb3Error> {
    let mut files: Files = zoo::locate(path)?;
    if let Some(stats) = &options.vec_normalize {
        if !stats.is_file() {
            return Err(Sb3Error::new(stats, None, "the VecNormalize statistics named are not a file".into()));
        }
        files.vec_normalize = Some(stats.clone());
    }
    let zip_path = files.zip.clone();
    let at = |entry: &str, message: String| Sb3Error::new(&zip_path, Some(entry), message);
    let bytes = std::fs::read(&zip_path).map_err(|e| Sb3Error::new(&zip_path, None, e.to_string()))?;
    let sha256 = crate::util::sha256(&bytes);
    if let Some(problem) = torch_file::zip_end_problem(&bytes) {
        return Err(Sb3Error::new(&zip_path, None, format!("the archive is truncated or corrupt: {problem}")));
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(&bytes[..]))
        .map_err(|e| Sb3Error::new(&zip_path, None, format!("the archive is truncated or corrupt: {e}")))?;
    let mut entry = |name: &str| -> Result<Option<Vec<u8>>, Sb3Error> {
        torch_file::read_entry(&mut archive, name).map_err(|e| at(name, e.message))
    };
    let data_bytes = entry("data")?.ok_or_else(|| at("data", "missing: not a Stable-Baselines3 model".into()))?;
    let policy_bytes = entry("policy.pth")?.ok_or_else(|| at("policy.pth", "missing".into()))?;
    let variables = entry("pytorch_variables.pth")?;
    let version = entry("_stable_baselines3_version")?.map(|v| String::from_utf8_lossy(&v).trim().to_string());
    let data: Json = serde_json::from_slice(&data_bytes).map_err(|e| at("data", format!("not JSON: {e}")))?;
    let mut f = Fields::new(&data);
    let in_data = |p: Problem| at("data", p.0);

    // The algorithm, from the policy class.
    let policy_class = f.required_pickle("policy_class").map_err(in_data)?;
    let class = policy_class
        .root()
        .class()
        .ok_or_else(|| at("data", "field `policy_class` holds no class (a pickled value of another kind)".into()))?;
    let class_name = class.rsplit('.').next().unwrap_or_default().to_string();
    let algo = match class_name.as_str() {
        // PPO and A2C share the policy class; PPO's `data` has its epochs and clip range.
        "ActorCriticPolicy" | "MlpPolicy" | "ActorCriticCnnPolicy" | "CnnPolicy" | "MultiInputActorCriticPolicy"
        | "MultiInputPolicy"
            if class.contains(".common.") || class.contains(".ppo.") || class.contains(".a2c.") =>
        {
            if f.get("clip_range").is_some() || f.get("n_epochs").is_some() { Algo::Ppo } else { Algo::A2c }
        }
        "DQNPolicy" | "MlpPolicy" | "CnnPolicy" | "MultiInputPolicy" if class.contains(".dqn.") => Algo::Dqn,
        "SACPolicy" | "MlpPolicy" | "MultiInputPolicy" if class.contains(".sac.") => Algo::Sac,
        "TD3Policy" | "MlpPolicy" | "MultiInputPolicy" if class.contains(".td3.") => Algo::Td3,
        _ => {
            return Err(at(
                "data",
                format!(
                    "policy `{class}`: PPO, A2C, DQN, SAC and TD3 MlpPolicy and MultiInputPolicy models, and PPO, \
                     A2C and DQN CnnPolicy models, can be imported"
                ),
            ));
        }
    };
    let space_of = |f: &Fields<'_>, name: &str| -> Result<Space, Sb3Error> {
        let pickle = f.required_pickle(name).map_err(in_data)?;
        space(pickle.root()).map_err(|e| at("data", format!("field `{name}`: {e}")))
    };
    let mut observation_space = space_of(&f, "observation_space")?;
    let action_space = space_of(&f, "action_space")?;
    if let Space::Dict { .. } = action_space {
        return Err(at("data", "field `action_space`: a Dict (headstart's actions are Box or Discrete)".into()));
    }
    let kwargs = PolicyKwargs::read(&mut f).map_err(in_data)?;
    // A CnnPolicy, or any policy naming the Nature CNN: images, channel-first in SB3.
    let image = class_name.contains("Cnn") || kwargs.extractor.as_deref().is_some_and(|c| c.ends_with(".NatureCNN"));
    // A MultiInputPolicy: a Dict, each part flattened (no image parts: see below) and joined in
    // the Dict's order, as Gymnasium's `flatten` lays it out.
    let multi = class_name.starts_with("MultiInput");
    let wanted = match (image, multi) {
        (true, _) => ".NatureCNN",
        (false, true) => ".CombinedExtractor",
        (false, false) => ".FlattenExtractor",
    };
    if let Some(c) = kwargs.extractor.as_deref().filter(|c| !c.ends_with(wanted)) {
        return Err(at(
            "data",
            format!(
                "policy_kwargs.features_extractor_class `{c}`: headstart reads SB3's FlattenExtractor, NatureCNN and \
                 CombinedExtractor"
            ),
        ));
    }
    match (&observation_space, multi) {
        (Space::Dict { .. }, true) => {
            let pickle = f.required_pickle("observation_space").map_err(in_data)?;
            let images = super::fields::image_parts(pickle.root());
            if !images.is_empty() {
                return Err(at(
                    "data",
                    format!(
                        "observation_space: the Dict's parts {images:?} are images, which SB3's MultiInputPolicy reads \
                         through a CNN and a linear layer of their own (CombinedExtractor): headstart imports \
                         MultiInputPolicy models whose parts are vectors and discrete values"
                    ),
                ));
            }
        }
        (Space::Dict { .. }, false) => {
            let hint = "SB3 reads one with a MultiInputPolicy";
            return Err(at("data", format!("policy `{class}` over a Dict observation ({hint})")));
        }
        (_, true) => return Err(at("data", format!("policy `{class}`: field `observation_space` is not a Dict"))),
        (_, false) => {}
    }
    if image && matches!(algo, Algo::Sac | Algo::Td3) {
        return Err(at("data", format!("policy `{class}`: headstart's {algo} takes no convolutional encoder")));
    }
    let divisor = match &observation_space {
        Space::Box { shape, .. } if image && shape.len() == 3 => {
            let bytes = f.required_pickle("observation_space").ok().and_then(|p| super::fields::dtype(p.root()));
            observation_space = cnn::channels_last(&observation_space).map_err(in_data)?;
            // SB3 divides images of bytes by 255 (and builds no NatureCNN over other images
            // unless told not to divide).
            (matches!(bytes.as_deref(), Some("u1" | "uint8")) && kwargs.normalize_images != Some(false)).then_some(cnn::BYTE_SCALE)
        }
        Space::Box { shape, .. } if shape.len() != 1 => {
            return Err(at(
                "data",
                format!(
                    "observation shape {shape:?}: images need a CnnPolicy, other non-flat observations a flattening wrapper"
                ),
            ));
        }
        _ if image => return Err(at("data", "a CnnPolicy whose observation space is not an image".into())),
        _ => None,
    };

    let activation = match kwargs.activation.as_deref() {
        None if matches!(algo, Algo::Ppo | Algo::A2c) => Activation::Tanh,
        None => Activation::Relu,
        Some(c) if c.ends_with(".Tanh") => Activation::Tanh,
        Some(c) if c.ends_with(".ReLU") => Activation::Relu,
        Some(c) => {
            return Err(at(
                "data",
                format!("policy_kwargs.activation_fn `{c}`: headstart's networks use Tanh or ReLU"),
            ));
        }
    };

    // The tensors.
    let mut sd = StateDict {
        entry: "policy.pth".into(),
        tensors: torch_file::read_state_dict(&policy_bytes)
            .map_err(|e| at(&format!("policy.pth, {}", e.entry), e.message))?
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect(),
    };
    let mut weights = BTreeMap::new();
    f.not_carried.push("optimiser state (its moments start at zero)".to_string());
    let in_policy = |p: Problem| at("policy.pth", p.0);
    // The networks and single tensors, by the algorithm's table; every network's hidden widths.
    let mut widths: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    if image && matches!(algo, Algo::Ppo | Algo::A2c) {
        cnn::drop_alias(&mut sd).map_err(in_policy)?;
    }
    for n in table::networks(algo, image) {
        let mut layers = Vec::new();
        if let Some(extractor) = &n.extractor {
            layers.extend(cnn::take_encoder(&mut sd, extractor, &n.ours, &mut weights).map_err(in_policy)?);
        }
        layers.extend(sd.linears(&n.theirs));
        if n.target && layers.is_empty() {
            continue; // SB3 left the target out: the agent copies its online network
        }
        let head = match &n.head {
            Some(h) => {
                let (w, b) = (sd.take(&format!("{h}.weight")), sd.take(&format!("{h}.bias")));
                Some((w.map_err(in_policy)?, b.map_err(in_policy)?))
            }
            None => None,
        };
        widths.insert(n.ours.clone(), place(&mut weights, layers, head, &n.ours).map_err(in_policy)?);
    }
    for (ours, theirs) in table::singles(algo, matches!(action_space, Space::Box { .. })) {
        let mut t = sd.take(theirs).map_err(in_policy)?;
        t.name = ours.to_string();
        weights.insert(t.name.clone(), t);
    }
    let hidden = widths.get("actor").or_else(|| widths.get("q")).cloned().unwrap_or_default();
    let critic_hidden =
        widths.get("critic").or_else(|| widths.get("critic.q0")).cloned().unwrap_or_else(|| hidden.clone());
    // A shared extractor (SB3's default) with nothing after it but the heads is headstart's
    // shared trunk; with layers of the actor's and the critic's own after it, each starts from
    // a copy of it.
    let share_trunk = image && matches!(algo, Algo::Ppo | Algo::A2c) && kwargs.share_features_extractor != Some(false);
    let share_trunk = share_trunk && match (hidden.len(), critic_hidden.len()) {
        (1, 1) => {
            cnn::share(&mut weights).map_err(in_policy)?;
            true
        }
        _ => {
            f.not_carried.push(
                "the features extractor actor and critic share, with layers of their own after it: each starts from a \
                 copy of it, trained apart from here on"
                    .into(),
            );
            false
        }
    };
    // SAC's and TD3's critics have the actor's shape in headstart.
    if matches!(algo, Algo::Sac | Algo::Td3)
        && let Some((name, h)) = widths.iter().find(|(_, h)| **h != hidden)
    {
        return Err(at(
            "data",
            format!("actor {hidden:?} and {name} {h:?} differ: headstart's {algo} networks share one shape"),
        ));
    }
    let (pi, other) = if algo == Algo::Dqn {
        ("qf", "pi")
    } else {
        ("pi", if matches!(algo, Algo::Ppo | Algo::A2c) { "vf" } else { "qf" })
    };
    // `net_arch` is what follows the Nature CNN's linear layer.
    let skip = usize::from(image);
    let arch = |h: &[usize]| h.get(skip..).unwrap_or_default().to_vec();
    super::kwargs::check_net_arch(kwargs.net_arch.as_ref(), &[(pi, &arch(&hidden)), (other, &arch(&critic_hidden))])
        .map_err(in_data)?;
    let activation = if image {
        let features = hidden.first().copied().unwrap_or(0);
        if kwargs.features_dim.is_some_and(|d| d != features) {
            return Err(at(
                "data",
                format!("policy_kwargs.features_extractor_kwargs.features_dim is {:?}, but policy.pth's is {features}", kwargs.features_dim),
            ));
        }
        // The Nature CNN's linear layer has a ReLU: so must the layers after it.
        if activation != Activation::Relu && (hidden.len() > 1 || critic_hidden.len() > 1) {
            return Err(at(
                "data",
                format!(
                    "policy_kwargs.activation_fn {activation:?} after the Nature CNN's ReLU: headstart's networks have \
                     one activation"
                ),
            ));
        }
        Activation::Relu
    } else {
        activation
    };
    let encoder = image.then_some(Encoder::Nature);
    let plain = MlpConfig {
        hidden: hidden.clone(),
        activation,
        ortho_init: false,
        encoder,
        input_divisor: divisor,
        ..Default::default()
    };
    let mut config = match algo {
        Algo::Ppo | Algo::A2c => {
            let net = MlpConfig { ortho_init: kwargs.ortho_init.unwrap_or(true), ..plain };
            let critic_hidden = (critic_hidden != hidden).then_some(critic_hidden);
            let log_std_init = kwargs.log_std_init.unwrap_or(0.0);
            if algo == Algo::A2c {
                AgentConfig::A2c(A2cConfig { net, critic_hidden, log_std_init, share_trunk, ..A2cConfig::default() })
            } else {
                AgentConfig::Ppo(PpoConfig { net, critic_hidden, log_std_init, share_trunk, ..PpoConfig::default() })
            }
        }
        Algo::Dqn => AgentConfig::Dqn(DqnConfig { net: plain, double_q: false, ..DqnConfig::default() }),
        Algo::Sac => {
            if f.typed::<bool>("use_sde").map_err(in_data)? == Some(true) {
                return Err(at(
                    "data",
                    "a SAC model with gSDE: not supported (its noise is parameterised differently)".into(),
                ));
            }
            AgentConfig::Sac(SacConfig { net: plain, ..SacConfig::default() })
        }
        Algo::Td3 => AgentConfig::Td3(Td3Config { net: plain, ..Td3Config::default() }),
    };
    table::hyperparameters(&mut config, &mut Mapper::Read(&mut f)).map_err(in_data)?;
    // The fields of forms of their own.
    match &mut config {
        AgentConfig::Ppo(c) => {
            (|| -> Result<(), Problem> {
                c.target_kl = f.optional("target_kl")?;
                carry_schedule(&mut f, &mut c.clip_range, "clip_range")?;
                match schedule(&f, "clip_range_vf")? {
                    None => c.clip_range_vf = None,
                    Some(Form::Known(Schedule::Constant(v))) => c.clip_range_vf = Some(v),
                    Some(Form::Known(_)) => f
                        .not_carried
                        .push("clip_range_vf (a linear schedule: headstart clips with a constant; none kept)".into()),
                    Some(Form::Other(what)) => f.not_carried.push(format!("clip_range_vf ({what}: none kept)")),
                }
                carry_schedule(&mut f, &mut c.learning_rate, "learning_rate")
            })()
            .map_err(in_data)?;
            if kwargs.optimizer.as_deref().is_some_and(|o| !o.ends_with(".Adam")) {
                f.not_carried.push("policy_kwargs.optimizer_class (headstart's PPO uses Adam)".into());
            }
            for (k, v) in &kwargs.optimizer_kwargs {
                if !(k == "eps" && *v == 1e-5 || k == "weight_decay" && *v == 0.0) {
                    f.not_carried.push(format!(
                        "policy_kwargs.optimizer_kwargs.{k} = {v} (headstart's PPO uses Adam with eps 1e-5)"
                    ));
                }
            }
        }
        AgentConfig::A2c(c) => {
            carry_schedule(&mut f, &mut c.learning_rate, "learning_rate").map_err(in_data)?;
            // SB3's A2C hands RMSprop to its policy through policy_kwargs; without it, Adam.
            c.use_rms_prop = kwargs.optimizer.as_deref().is_some_and(|o| o.ends_with("RMSprop"));
            if c.use_rms_prop
                && let Some(eps) = kwargs.optimizer_number("eps")
            {
                c.rms_prop_eps = eps;
            }
            for (k, v) in &kwargs.optimizer_kwargs {
                let kept = match k.as_str() {
                    "eps" => c.use_rms_prop || *v == 1e-5,
                    "alpha" => *v == 0.99,
                    "weight_decay" | "momentum" => *v == 0.0,
                    _ => false,
                };
                if !kept {
                    f.not_carried.push(format!(
                        "policy_kwargs.optimizer_kwargs.{k} = {v} (headstart's RMSprop has α 0.99, no momentum or \
                         weight decay; its Adam eps 1e-5)"
                    ));
                }
            }
        }
        AgentConfig::Dqn(c) => {
            (|| -> Result<(), Problem> {
                carry_train_freq(&mut f, &mut c.train_freq)?;
                carry_schedule(&mut f, &mut c.learning_rate, "learning_rate")
            })()
            .map_err(in_data)?;
            f.not_carried.push("the replay buffer (SB3 saves it apart, with save_replay_buffer)".into());
        }
        AgentConfig::Sac(c) => {
            let act_dim = action_space.flat_dim() as f64;
            (|| -> Result<(), Problem> {
                carry_train_freq(&mut f, &mut c.train_freq)?;
                carry_schedule(&mut f, &mut c.learning_rate, "learning_rate")?;
                c.target_entropy = match f.get("target_entropy") {
                    None => None,
                    Some(Json::String(s)) if s == "auto" => None,
                    Some(v) => match v.as_f64() {
                        Some(t) => Some(t).filter(|&t| t != -act_dim),
                        None => {
                            return Err(Problem(format!(
                                "field `target_entropy` is {}, where SB3 stores a number or \"auto\"",
                                describe(v)
                            )));
                        }
                    },
                };
                Ok(())
            })()
            .map_err(in_data)?;
            let vars = match &variables {
                Some(bytes) => torch_file::read_state_dict(bytes)
                    .map_err(|e| at(&format!("pytorch_variables.pth, {}", e.entry), e.message))?,
                None => Vec::new(),
            };
            let ent = f.get("ent_coef").cloned().unwrap_or(Json::String("auto".into()));
            c.ent_coef = match (ent.as_str(), ent.as_f64()) {
                (Some(s), _) if s.starts_with("auto") => {
                    let log = vars.iter().find(|t| t.name == "log_ent_coef").ok_or_else(|| {
                        at(
                            "pytorch_variables.pth",
                            "has no `log_ent_coef`, which an automatic entropy coefficient keeps".into(),
                        )
                    })?;
                    let mut log = log.clone();
                    log.shape = vec![1];
                    weights.insert("log_ent_coef".into(), log);
                    let start = match s.strip_prefix("auto_") {
                        None => 1.0,
                        Some(v) => v.parse().map_err(|_| {
                            at("data", format!("field `ent_coef` is {s:?}: not \"auto\" or \"auto_<number>\""))
                        })?,
                    };
                    EntCoef::Auto(start)
                }
                (_, Some(v)) => EntCoef::Fixed(v),
                _ => {
                    return Err(at(
                        "data",
                        format!("field `ent_coef` is {}, where SB3 stores a number or \"auto\"", describe(&ent)),
                    ));
                }
            };
            f.not_carried.push("the replay buffer (SB3 saves it apart, with save_replay_buffer)".into());
        }
        AgentConfig::Td3(c) => {
            (|| -> Result<(), Problem> {
                carry_train_freq(&mut f, &mut c.train_freq)?;
                carry_schedule(&mut f, &mut c.learning_rate, "learning_rate")?;
                match action_noise(&f)? {
                    Form::Known(sigma) => c.action_noise = sigma,
                    Form::Other(what) => f.not_carried.push(format!("action_noise ({what}: none kept)")),
                }
                Ok(())
            })()
            .map_err(in_data)?;
            f.not_carried.push("the replay buffer (SB3 saves it apart, with save_replay_buffer)".into());
        }
    }
    if let Some(extra) = sd.tensors.keys().next() {
        let kind = if image { "CNN" } else { "MLP" };
        return Err(at(&sd.entry, format!("tensor `{extra}` has no place in a headstart {algo} {kind} policy")));
    }
    f.not_carried.extend(kwargs.not_carried);
    let steps = f.typed::<u64>("num_timesteps").map_err(in_data)?.unwrap_or(0);

    let mut also_read = Vec::new();
    let mut model = Model {
        algo,
        config,
        observation_space,
        action_space,
        weights: weights.into_values().collect(),
        obs_rms: None,
        ret_rms: None,
        env_id: zoo::guess_env_id(&files.zip),
        env_kwargs: BTreeMap::new(),
        transforms: Vec::new(),
        steps,
        source: files.zip.clone(),
        sha256,
        also_read: Vec::new(),
        sb3_version: version,
        not_carried: f.not_carried,
    };
    if let Some(path) = &files.vec_normalize {
        zoo::read_vec_normalize(path, &mut model)?;
        also_read.push(path.clone());
    }
    if let Some(path) = &files.config {
        zoo::check_zoo_config(path, &mut model)?;
        also_read.push(path.clone());
    }
    if let Some(path) = &files.env_kwargs {
        model.env_kwargs = zoo::read_env_kwargs(path)?;
        also_read.push(path.clone());
    }
    for path in also_read {
        let bytes = std::fs::read(&path).map_err(|e| Sb3Error::new(&path, None, e.to_string()))?;
        model.also_read.push(AlsoRead { file: path.display().to_string(), sha256: crate::util::sha256(&bytes) });
    }
    Ok(model)
}
