//! Reading a Stable-Baselines3 model: the `.zip` that `model.save` writes (`data`, a JSON of the
//! algorithm's attributes, some of them cloudpickled; `policy.pth`, the policy's state dict;
//! `pytorch_variables.pth`); the files beside it in an RL Zoo folder are [`super::zoo`]'s.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;

use base64::Engine;
use serde_json::Value as Json;

use super::pickle::{self, Pickle, Value};
use super::torch_file::{self, StateTensor};
use super::zoo::{self, Files};
use super::{Model, Problem, Sb3Error};
use crate::agent::dqn::DqnConfig;
use crate::agent::nn::{Activation, MlpConfig};
use crate::agent::ppo::PpoConfig;
use crate::agent::sac::{EntCoef, SacConfig};
use crate::agent::schedule::Schedule;
use crate::agent::{AgentConfig, Algo};
use crate::env::Space;

/// Decodes a cloudpickled entry of `data` (`{":type:": ..., ":serialized:": base64}`).
fn unpickle(value: &Json) -> Option<Result<Pickle, Problem>> {
    let text = value.get(":serialized:")?.as_str()?;
    Some(
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| Problem(e.to_string()))
            .and_then(|bytes| pickle::parse(&bytes).map_err(|e| Problem(e.to_string()))),
    )
}

/// A Gymnasium space from its pickle.
fn space(value: Value<'_>) -> Result<Space, Problem> {
    let class = value.class().unwrap_or_default();
    match class.rsplit('.').next().unwrap_or_default() {
        "Discrete" => {
            let n = value.attr("n").and_then(|n| n.float()).ok_or("a Discrete space without `n`")?;
            let start = value.attr("start").and_then(|s| s.float()).unwrap_or(0.0);
            if start != 0.0 {
                return Err(format!("a Discrete space starting at {start} (headstart's start at 0)").into());
            }
            Ok(Space::Discrete { n: n as usize })
        }
        "Box" => {
            let (shape, low) = value.attr("low").and_then(|v| v.numpy_array()).ok_or("a Box without `low`")?;
            let (_, high) = value.attr("high").and_then(|v| v.numpy_array()).ok_or("a Box without `high`")?;
            if low.len() != high.len() {
                return Err("a Box whose `low` and `high` differ in size".into());
            }
            Ok(Space::Box {
                low: low.iter().map(|&v| v as f32).collect(),
                high: high.iter().map(|&v| v as f32).collect(),
                shape,
            })
        }
        other => Err(format!("a {other} space (Box and Discrete are supported)").into()),
    }
}

/// A schedule of SB3 2.x (`FloatSchedule(ConstantSchedule(val))`, `LinearSchedule` to zero over
/// the whole run), or a plain number.
fn schedule(value: &Json) -> Option<Schedule> {
    if let Some(v) = value.as_f64() {
        return Some(Schedule::Constant(v));
    }
    let pickle = unpickle(value)?.ok()?;
    let mut node = pickle.root();
    if node.class()?.ends_with("FloatSchedule") {
        node = node.attr("value_schedule")?;
    }
    match node.class()?.rsplit('.').next()? {
        "ConstantSchedule" => Some(Schedule::Constant(node.attr("val")?.float()?)),
        "LinearSchedule" => {
            let (start, end, fraction) =
                (node.attr("start")?.float()?, node.attr("end")?.float()?, node.attr("end_fraction")?.float()?);
            (end == 0.0 && fraction == 1.0).then_some(Schedule::Linear(start))
        }
        _ => None,
    }
}

/// `train_freq` (`TrainFreq(frequency, TrainFrequencyUnit.STEP)`) as steps.
fn train_freq(value: &Json) -> Option<u64> {
    if let Some(v) = value.as_u64() {
        return Some(v);
    }
    let pickle = unpickle(value)?.ok()?;
    let args = pickle.root().args()?;
    let [frequency, unit] = args.as_slice() else { return None };
    let unit = unit.args()?.first()?.str()?.to_string();
    (unit == "step").then(|| frequency.int().and_then(|f| u64::try_from(f).ok())).flatten()
}

/// Sets `slot` from a field of `data` as read (`found`), or notes `what` as not carried over
/// (a field absent or of a form headstart has no counterpart for).
fn carry<T>(slot: &mut T, found: Option<Option<T>>, what: &str, not_carried: &mut Vec<String>) {
    match found {
        Some(Some(value)) => *slot = value,
        _ => not_carried.push(what.to_string()),
    }
}

/// The state dict by name, taken from as tensors find their place.
struct StateDict {
    entry: String,
    tensors: BTreeMap<String, StateTensor>,
}

impl StateDict {
    /// The linear layers `{prefix}.{k}` in order of `k` (a `Sequential` of linears and activations).
    fn linears(&mut self, prefix: &str) -> Vec<(StateTensor, StateTensor)> {
        let mut indices: Vec<(usize, String)> = self
            .tensors
            .keys()
            .filter_map(|k| {
                let rest = k.strip_prefix(prefix)?.strip_prefix('.')?;
                let index = rest.strip_suffix(".weight")?;
                Some((index.parse().ok()?, index.to_string()))
            })
            .collect();
        indices.sort();
        indices
            .into_iter()
            .filter_map(|(_, i)| {
                let w = self.tensors.remove(&format!("{prefix}.{i}.weight"))?;
                let b = self.tensors.remove(&format!("{prefix}.{i}.bias"))?;
                Some((w, b))
            })
            .collect()
    }

    fn take(&mut self, name: &str) -> Result<StateTensor, Problem> {
        self.tensors.remove(name).ok_or_else(|| Problem(format!("has no `{name}`")))
    }
}

/// Puts layers under headstart's names: `{to}.trunk.{i}` for the hidden layers and `{to}.head`
/// for `head` (or the last layer when `head` is `None`); returns the hidden widths.
fn place(
    out: &mut BTreeMap<String, StateTensor>,
    mut layers: Vec<(StateTensor, StateTensor)>,
    head: Option<(StateTensor, StateTensor)>,
    to: &str,
) -> Result<Vec<usize>, Problem> {
    let head = match head {
        Some(h) => h,
        None => layers.pop().ok_or_else(|| Problem(format!("no layers for `{to}`")))?,
    };
    let mut hidden = Vec::new();
    let mut put = |name: String, mut t: StateTensor| {
        t.name = name.clone();
        out.insert(name, t);
    };
    for (i, (w, b)) in layers.into_iter().enumerate() {
        hidden.push(*w.shape.first().ok_or("a weight without rows")?);
        put(format!("{to}.trunk.{i}.weight"), w);
        put(format!("{to}.trunk.{i}.bias"), b);
    }
    put(format!("{to}.head.weight"), head.0);
    put(format!("{to}.head.bias"), head.1);
    Ok(hidden)
}

/// Reads the model at `path` (a `.zip`, or an RL-Zoo-style folder holding one).
pub fn read(path: &Path) -> Result<Model, Sb3Error> {
    let files: Files = zoo::locate(path)?;
    let zip_path = files.zip.clone();
    let at = |entry: &str, message: String| Sb3Error::new(&zip_path, Some(entry), message);
    let bytes = std::fs::read(&zip_path).map_err(|e| Sb3Error::new(&zip_path, None, e.to_string()))?;
    let sha256 = crate::util::sha256(&bytes);
    let mut archive = zip::ZipArchive::new(Cursor::new(&bytes[..]))
        .map_err(|e| Sb3Error::new(&zip_path, None, format!("not a readable zip (truncated or damaged?): {e}")))?;
    let mut entry = |name: &str| -> Result<Option<Vec<u8>>, Sb3Error> {
        torch_file::read_entry(&mut archive, name).map_err(|e| at(name, e.message))
    };
    let data_bytes = entry("data")?.ok_or_else(|| at("data", "missing: not a Stable-Baselines3 model".into()))?;
    let policy_bytes = entry("policy.pth")?.ok_or_else(|| at("policy.pth", "missing".into()))?;
    let variables = entry("pytorch_variables.pth")?;
    let version = entry("_stable_baselines3_version")?.map(|v| String::from_utf8_lossy(&v).trim().to_string());
    let data: Json = serde_json::from_slice(&data_bytes).map_err(|e| at("data", format!("not JSON: {e}")))?;
    let field = |name: &str| data.get(name).filter(|v| !v.is_null());

    // The algorithm, from the policy class.
    let policy_class = field("policy_class")
        .and_then(unpickle)
        .ok_or_else(|| at("data", "field `policy_class` is missing".into()))?
        .map_err(|e| at("data", format!("field `policy_class`: {e}")))?;
    let class = policy_class.root().class().unwrap_or_default();
    let class_name = class.rsplit('.').next().unwrap_or_default().to_string();
    let algo = match class_name.as_str() {
        "ActorCriticPolicy" | "MlpPolicy" if class.contains(".common.") || class.contains(".ppo.") => {
            if field("clip_range").is_none() || field("n_epochs").is_none() {
                return Err(at(
                    "data",
                    format!("a {class} without `clip_range` and `n_epochs`: not a PPO model (A2C?)"),
                ));
            }
            Algo::Ppo
        }
        "DQNPolicy" | "MlpPolicy" if class.contains(".dqn.") => Algo::Dqn,
        "SACPolicy" | "MlpPolicy" if class.contains(".sac.") => Algo::Sac,
        _ if class_name.contains("Cnn") || class_name.contains("MultiInput") => {
            return Err(at("data", format!("policy `{class}`: only MlpPolicy models can be imported")));
        }
        _ => return Err(at("data", format!("policy `{class}`: PPO, DQN and SAC MlpPolicy models can be imported"))),
    };
    let space_of = |name: &str| -> Result<Space, Sb3Error> {
        let pickle = field(name)
            .and_then(unpickle)
            .ok_or_else(|| at("data", format!("field `{name}` is missing")))?
            .map_err(|e| at("data", format!("field `{name}`: {e}")))?;
        space(pickle.root()).map_err(|e| at("data", format!("field `{name}`: {e}")))
    };
    let observation_space = space_of("observation_space")?;
    let action_space = space_of("action_space")?;
    if let Space::Box { shape, .. } = &observation_space
        && shape.len() != 1
    {
        return Err(at(
            "data",
            format!(
                "observation shape {shape:?}: images and other non-flat observations need a CNN or a flattening wrapper"
            ),
        ));
    }

    // policy_kwargs: plain JSON, or a cloudpickled dict when it holds classes.
    let kwargs_pickle = field("policy_kwargs")
        .and_then(unpickle)
        .transpose()
        .map_err(|e| at("data", format!("field `policy_kwargs`: {e}")))?;
    let kwargs_json = field("policy_kwargs").cloned().unwrap_or(Json::Null);
    let kwarg_f64 = |name: &str| -> Option<f64> {
        kwargs_pickle.as_ref().and_then(|p| p.root().get(name)?.float()).or_else(|| kwargs_json.get(name)?.as_f64())
    };
    let kwarg_bool = |name: &str| -> Option<bool> {
        kwargs_pickle.as_ref().and_then(|p| p.root().get(name)?.bool()).or_else(|| kwargs_json.get(name)?.as_bool())
    };
    let activation = match kwargs_pickle.as_ref().and_then(|p| p.root().get("activation_fn")?.class()) {
        None if algo == Algo::Ppo => Activation::Tanh,
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
    if let Some(c) = kwargs_pickle.as_ref().and_then(|p| p.root().get("features_extractor_class")?.class())
        && !c.ends_with("FlattenExtractor")
    {
        return Err(at(
            "data",
            format!("policy_kwargs.features_extractor_class `{c}`: only the flattening extractor has a counterpart"),
        ));
    }
    for (flag, wanted) in
        [("use_expln", false), ("squash_output", false), ("full_std", true), ("learn_features", false)]
    {
        if kwarg_bool(flag).is_some_and(|v| v != wanted) {
            return Err(at(
                "data",
                format!("policy_kwargs.{flag} = {}: headstart's gSDE has {flag} = {wanted}", !wanted),
            ));
        }
    }

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
    let mut not_carried = vec!["optimiser state (Adam's moments start at zero)".to_string()];
    // An off-policy model's `train_freq` and `learning_rate`, taken or noted.
    let carry_cadence = |freq: &mut u64, lr: &mut Schedule, not_carried: &mut Vec<String>| {
        let freq_note = "train_freq (counted in episodes: defaults kept)";
        carry(freq, field("train_freq").map(train_freq), freq_note, not_carried);
        carry(lr, field("learning_rate").map(schedule), "learning_rate (a schedule: defaults kept)", not_carried);
    };
    let num = |name: &str| field(name).and_then(Json::as_f64);
    let int = |name: &str| field(name).and_then(Json::as_u64);
    let config = match algo {
        Algo::Ppo => {
            let mut c = PpoConfig::default();
            let pi = sd.linears("mlp_extractor.policy_net");
            let vf = sd.linears("mlp_extractor.value_net");
            let action = (sd.take("action_net.weight"), sd.take("action_net.bias"));
            let value = (sd.take("value_net.weight"), sd.take("value_net.bias"));
            let pair = |p: (Result<StateTensor, Problem>, Result<StateTensor, Problem>)| Ok::<_, Problem>((p.0?, p.1?));
            let (action, value) =
                (pair(action).map_err(|e| at("policy.pth", e.0))?, pair(value).map_err(|e| at("policy.pth", e.0))?);
            let hidden = place(&mut weights, pi, Some(action), "actor").map_err(|e| at("policy.pth", e.0))?;
            let critic_hidden = place(&mut weights, vf, Some(value), "critic").map_err(|e| at("policy.pth", e.0))?;
            if hidden != critic_hidden {
                return Err(at(
                    "data",
                    format!(
                        "actor {hidden:?} and critic {critic_hidden:?} differ: headstart's PPO networks share one shape"
                    ),
                ));
            }
            if let Space::Box { .. } = action_space {
                let mut log_std = sd.take("log_std").map_err(|e| at("policy.pth", e.0))?;
                log_std.name = "actor.log_std".into();
                weights.insert(log_std.name.clone(), log_std);
            }
            c.net = MlpConfig { hidden, activation, ortho_init: kwarg_bool("ortho_init").unwrap_or(true) };
            c.log_std_init = kwarg_f64("log_std_init").unwrap_or(0.0);
            c.n_envs = int("n_envs").map_or(c.n_envs, |v| v as usize);
            c.n_steps = int("n_steps").map_or(c.n_steps, |v| v as usize);
            c.batch_size = int("batch_size").map_or(c.batch_size, |v| v as usize);
            c.n_epochs = int("n_epochs").map_or(c.n_epochs, |v| v as usize);
            c.gamma = num("gamma").unwrap_or(c.gamma);
            c.gae_lambda = num("gae_lambda").unwrap_or(c.gae_lambda);
            c.ent_coef = num("ent_coef").unwrap_or(c.ent_coef);
            c.vf_coef = num("vf_coef").unwrap_or(c.vf_coef);
            c.max_grad_norm = num("max_grad_norm").unwrap_or(c.max_grad_norm);
            c.target_kl = num("target_kl");
            c.normalize_advantage = field("normalize_advantage").and_then(Json::as_bool).unwrap_or(true);
            c.use_sde = field("use_sde").and_then(Json::as_bool).unwrap_or(false);
            c.sde_sample_freq = field("sde_sample_freq").and_then(Json::as_i64).unwrap_or(-1);
            carry(
                &mut c.clip_range,
                field("clip_range").map(schedule),
                "clip_range (a schedule headstart has no counterpart for: defaults kept)",
                &mut not_carried,
            );
            match field("clip_range_vf").map(schedule) {
                None => c.clip_range_vf = None,
                Some(Some(Schedule::Constant(v))) => c.clip_range_vf = Some(v),
                Some(_) => not_carried.push("clip_range_vf (a schedule)".into()),
            }
            carry(
                &mut c.learning_rate,
                field("learning_rate").map(schedule),
                "learning_rate (a schedule headstart has no counterpart for: defaults kept)",
                &mut not_carried,
            );
            AgentConfig::Ppo(c)
        }
        Algo::Dqn => {
            let mut c = DqnConfig::default();
            let q = sd.linears("q_net.q_net");
            let target = sd.linears("q_net_target.q_net");
            let hidden = place(&mut weights, q, None, "q").map_err(|e| at("policy.pth", e.0))?;
            if !target.is_empty() {
                place(&mut weights, target, None, "q_target").map_err(|e| at("policy.pth", e.0))?;
            }
            c.net = MlpConfig { hidden, activation, ortho_init: false };
            c.double_q = false;
            c.n_envs = int("n_envs").map_or(c.n_envs, |v| v as usize);
            c.buffer_size = int("buffer_size").map_or(c.buffer_size, |v| v as usize);
            c.learning_starts = int("learning_starts").unwrap_or(c.learning_starts);
            c.batch_size = int("batch_size").map_or(c.batch_size, |v| v as usize);
            c.tau = num("tau").unwrap_or(c.tau);
            c.gamma = num("gamma").unwrap_or(c.gamma);
            c.gradient_steps = field("gradient_steps").and_then(Json::as_i64).unwrap_or(c.gradient_steps);
            // SB3 2.9 stores the interval in environment steps, as given, and divides it by n_envs
            // where it uses it (`_on_step`), as headstart's DQN does.
            c.target_update_interval = int("target_update_interval").unwrap_or(c.target_update_interval);
            c.exploration_fraction = num("exploration_fraction").unwrap_or(c.exploration_fraction);
            c.exploration_initial_eps = num("exploration_initial_eps").unwrap_or(c.exploration_initial_eps);
            c.exploration_final_eps = num("exploration_final_eps").unwrap_or(c.exploration_final_eps);
            c.max_grad_norm = num("max_grad_norm").unwrap_or(c.max_grad_norm);
            carry_cadence(&mut c.train_freq, &mut c.learning_rate, &mut not_carried);
            not_carried.push("the replay buffer (SB3 saves it apart, with save_replay_buffer)".into());
            AgentConfig::Dqn(c)
        }
        Algo::Sac => {
            let mut c = SacConfig::default();
            if field("use_sde").and_then(Json::as_bool) == Some(true) {
                return Err(at(
                    "data",
                    "a SAC model with gSDE: not supported (its noise is parameterised differently)".into(),
                ));
            }
            let latent = sd.linears("actor.latent_pi");
            let mu = (sd.take("actor.mu.weight"), sd.take("actor.mu.bias"));
            let mu = (mu.0.map_err(|e| at("policy.pth", e.0))?, mu.1.map_err(|e| at("policy.pth", e.0))?);
            let hidden = place(&mut weights, latent, Some(mu), "actor").map_err(|e| at("policy.pth", e.0))?;
            for part in ["weight", "bias"] {
                let mut t = sd.take(&format!("actor.log_std.{part}")).map_err(|e| at("policy.pth", e.0))?;
                t.name = format!("actor.log_std.{part}");
                weights.insert(t.name.clone(), t);
            }
            for (from, to) in [("critic", "critic"), ("critic_target", "critic_target")] {
                for k in 0..2 {
                    let layers = sd.linears(&format!("{from}.qf{k}"));
                    let h =
                        place(&mut weights, layers, None, &format!("{to}.q{k}")).map_err(|e| at("policy.pth", e.0))?;
                    if h != hidden {
                        return Err(at(
                            "data",
                            format!(
                                "actor {hidden:?} and {from} {h:?} differ: headstart's SAC networks share one shape"
                            ),
                        ));
                    }
                }
            }
            c.net = MlpConfig { hidden, activation, ortho_init: false };
            c.n_envs = int("n_envs").map_or(c.n_envs, |v| v as usize);
            c.buffer_size = int("buffer_size").map_or(c.buffer_size, |v| v as usize);
            c.learning_starts = int("learning_starts").unwrap_or(c.learning_starts);
            c.batch_size = int("batch_size").map_or(c.batch_size, |v| v as usize);
            c.tau = num("tau").unwrap_or(c.tau);
            c.gamma = num("gamma").unwrap_or(c.gamma);
            c.gradient_steps = int("gradient_steps").map_or(c.gradient_steps, |v| v as usize);
            c.target_update_interval = int("target_update_interval").map_or(c.target_update_interval, |v| v as usize);
            carry_cadence(&mut c.train_freq, &mut c.learning_rate, &mut not_carried);
            let act_dim = action_space.flat_dim() as f64;
            c.target_entropy = num("target_entropy").filter(|&t| t != -act_dim);
            let mut vars = match &variables {
                Some(bytes) => torch_file::read_state_dict(bytes)
                    .map_err(|e| at(&format!("pytorch_variables.pth, {}", e.entry), e.message))?,
                None => Vec::new(),
            };
            let ent = field("ent_coef").cloned().unwrap_or(Json::String("auto".into()));
            c.ent_coef = match (ent.as_str(), ent.as_f64()) {
                (Some(s), _) if s.starts_with("auto") => {
                    let log = vars.iter_mut().find(|t| t.name == "log_ent_coef").ok_or_else(|| {
                        at(
                            "pytorch_variables.pth",
                            "has no `log_ent_coef`, which an automatic entropy coefficient keeps".into(),
                        )
                    })?;
                    let mut log = log.clone();
                    log.shape = vec![1];
                    weights.insert("log_ent_coef".into(), log);
                    let start = s.strip_prefix("auto_").and_then(|v| v.parse().ok()).unwrap_or(1.0);
                    EntCoef::Auto(start)
                }
                (_, Some(v)) => EntCoef::Fixed(v),
                _ => return Err(at("data", format!("field `ent_coef` is {ent}"))),
            };
            not_carried.push("the replay buffer (SB3 saves it apart, with save_replay_buffer)".into());
            AgentConfig::Sac(c)
        }
    };
    if let Some(extra) = sd.tensors.keys().next() {
        return Err(at(&sd.entry, format!("tensor `{extra}` has no place in a headstart {algo} MLP policy")));
    }

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
        steps: int("num_timesteps").unwrap_or(0),
        source: files.zip.clone(),
        sha256,
        sb3_version: version,
        not_carried,
    };
    if let Some(path) = &files.vec_normalize {
        zoo::read_vec_normalize(path, &mut model)?;
    }
    if let Some(path) = &files.config {
        zoo::check_zoo_config(path, &mut model)?;
    }
    if let Some(path) = &files.env_kwargs {
        model.env_kwargs = zoo::read_env_kwargs(path)?;
    }
    Ok(model)
}
