//! Writing a headstart checkpoint as a Stable-Baselines3 model: the `.zip` that `PPO.load`,
//! `A2C.load`, `DQN.load`, `SAC.load` and `TD3.load` read (the policy's state dict under SB3's
//! names, empty optimiser states of the right shape, `data` with the spaces, the policy's keyword
//! arguments and the hyperparameters), and `vec_normalize.pkl` beside it when the agent
//! normalises observations. The pickles are [`super::writer`]'s.

use std::collections::HashMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};

use tch::Tensor;

use super::{Sb3Error, cnn};
use super::pickle::op;
use super::table::{self, Mapper};
use super::torch_file::{StateTensor, write_state_dict};
use super::writer::{Rule, activation_class, mlp_kwargs, optimizer_of, schedule, serialized, vec_normalize};
use crate::agent::{AgentConfig, Algo};
use crate::agent::checkpoint;
use crate::agent::nn;
use crate::agent::sac::EntCoef;
use crate::env::Space;

/// The Stable-Baselines3 version whose file layout this writes.
const SB3_VERSION: &str = "2.9.2";

/// Writes the checkpoint in `dir` as the SB3 model `out` (a `.zip`), and `vec_normalize.pkl`
/// beside it when the agent normalises observations; returns the files written.
pub fn export(dir: &Path, out: &Path) -> Result<Vec<PathBuf>, Sb3Error> {
    let loaded = checkpoint::load(dir).map_err(|e| Sb3Error::new(dir, None, e.to_string()))?;
    let (card, agent) = (loaded.card, loaded.agent);
    let mut tensors: HashMap<String, Tensor> = agent.tensors().into_iter().collect();
    let fail = |m: String| Sb3Error::new(dir, None, m);
    if card.config.objective().skills() > 0 || card.config.tasks().is_some() {
        return Err(fail(
            "a skill-discovery or multitask network reads a skill or task id that SB3's policies have no input for: \
             transfer it to a single task first (`headstart transfer`, which folds the skill or task in), then export that"
                .into(),
        ));
    }
    // A dictionary observation is written for SB3's MultiInputPolicy, whose extractor flattens
    // vector and discrete parts as headstart reads them; its images go through a CNN and a linear
    // layer of their own, which headstart's encoders have no counterpart for.
    let multi = matches!(card.observation_space, Space::Dict { .. });
    if multi && card.config.net().encoder.is_some() {
        return Err(fail(format!(
            "the observation is a dictionary with image parts read by encoders ({}): SB3's MultiInputPolicy adds a \
             linear layer after each image's CNN, which headstart's networks do not have",
            card.observation_space.brief()
        )));
    }
    let normalize_obs = match &card.config {
        AgentConfig::Ppo(c) => c.normalize_obs,
        AgentConfig::A2c(a) => a.normalize_obs,
        _ => false,
    };
    if multi && normalize_obs {
        return Err(fail(
            "normalize_obs over a dictionary observation: SB3's VecNormalize keeps statistics for each key of a Dict, \
             headstart one set for the flat observation"
                .into(),
        ));
    }
    fold_added(dir, &card.config.net().added, &mut tensors)?;
    let image = cnn::ImagePolicy::of(&card.config, &card.observation_space).map_err(|e| fail(e.0))?;
    let shared = card.config.share_trunk();
    if shared {
        // SB3 shares the features extractor alone: the Nature CNN and its linear layer.
        if image.is_none() || card.config.net().hidden.len() != 1 {
            return Err(fail(
                "the actor and the critic share a trunk (`share_trunk`) that is not SB3's features extractor (the \
                 Nature CNN and its linear layer, `hidden: [features_dim]`): SB3 2.9 shares nothing else, and a copy \
                 for each would train apart there"
                    .into(),
            ));
        }
        // Under the names of separate networks; written once more as SB3's shared extractor.
        let trunk: Vec<(String, Tensor)> = tensors
            .iter()
            .filter_map(|(n, t)| Some((n.strip_prefix("shared.")?.to_string(), t.shallow_clone())))
            .collect();
        for (rest, t) in trunk {
            tensors.insert(format!("actor.{rest}"), t.shallow_clone());
            tensors.insert(format!("critic.{rest}"), t);
        }
    }
    let take = |from: &str, to: &str| -> Result<StateTensor, Sb3Error> {
        let t = tensors.get(from).ok_or_else(|| fail(format!("the checkpoint has no `{from}`")))?;
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let values =
            Vec::<f32>::try_from(t.to_kind(tch::Kind::Float).flatten(0, -1)).map_err(|e| fail(e.to_string()))?;
        Ok(StateTensor { name: to.to_string(), shape, values })
    };
    // `{from}.trunk.{i}` from `first` on and `{from}.head` as a Sequential (`{to}.{2i}`), the
    // head last at `{to}.{2n}` or apart at `head_to`.
    let mlp = |state: &mut Vec<StateTensor>, from: &str, to: &str, first: usize, layers: usize, head_to: Option<&str>| {
        for i in first..layers {
            for part in ["weight", "bias"] {
                state.push(take(&format!("{from}.trunk.{i}.{part}"), &format!("{to}.{}.{part}", 2 * (i - first)))?);
            }
        }
        for part in ["weight", "bias"] {
            let target = match head_to {
                Some(h) => format!("{h}.{part}"),
                None => format!("{to}.{}.{part}", 2 * (layers - first)),
            };
            state.push(take(&format!("{from}.head.{part}"), &target)?);
        }
        Ok::<(), Sb3Error>(())
    };
    let mut state = Vec::new();
    let mut extra: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut variables = Vec::new();
    let mut data = serde_json::Map::new();
    if let AgentConfig::Sac(c) = &card.config
        && c.use_sde
    {
        return Err(fail("a SAC agent with gSDE: its noise has no SB3 counterpart to export to".into()));
    }
    // The networks and single tensors under SB3's names, by the algorithm's table.
    let algo = card.config.algo();
    for n in table::networks(algo, image.is_some()) {
        let depth = (0..).take_while(|i| tensors.contains_key(&format!("{}.trunk.{i}.weight", n.ours))).count();
        if let Some(extractor) = &n.extractor {
            for (ours, theirs) in cnn::names(&n.ours, extractor) {
                state.push(take(&ours, &theirs)?);
            }
        }
        mlp(&mut state, &n.ours, &n.theirs, usize::from(n.extractor.is_some()), depth, n.head.as_deref())?;
    }
    if image.is_some() && matches!(algo, Algo::Ppo | Algo::A2c) {
        // SB3's `features_extractor` is the actor's under a second name (not an optimised
        // parameter of its own).
        let alias: Vec<StateTensor> = state
            .iter()
            .filter_map(|t| Some(StateTensor { name: t.name.strip_prefix("pi_")?.to_string(), ..t.clone() }))
            .collect();
        state.extend(alias);
    }
    for (ours, theirs) in table::singles(algo, matches!(card.action_space, Space::Box { .. })) {
        state.push(take(ours, theirs)?);
    }
    // An optimiser's parameters: those of the networks under an SB3 prefix.
    let count = |prefix: &str| state.iter().filter(|t| t.name.starts_with(prefix)).count();
    // (a shared extractor is one module under three names; separate ones, the actor's under two).
    let aliases = count("features_extractor.") + if shared { count("vf_features_extractor.") } else { 0 };
    let parameters = state.len() - aliases;
    table::hyperparameters(&mut card.config.clone(), &mut Mapper::Write(&mut data)).map_err(|e| fail(e.0))?;
    // DQN's, SAC's and TD3's policy over a Dict is their MultiInputPolicy.
    let mlp_class = |class: &'static str| if multi { "MultiInputPolicy" } else { class };
    let (policy_module, policy_class, net, lr) = match &card.config {
        AgentConfig::Ppo(_) | AgentConfig::A2c(_) => {
            let (c, a2c) = match &card.config {
                AgentConfig::A2c(a) => (a.as_ppo(), Some(a)),
                AgentConfig::Ppo(c) => (c.clone(), None),
                _ => unreachable!("matched PPO or A2C"),
            };
            let critic_hidden = c.critic_net().hidden;
            let lr = c.learning_rate;
            let rms_prop = a2c.filter(|a| a.use_rms_prop).map(|a| a.rms_prop_eps);
            let group = match rms_prop {
                Some(eps) => optimizer_of(Rule::RmsProp, parameters, lr.at(0.0), eps),
                None => optimizer_of(Rule::Adam, parameters, lr.at(0.0), 1e-5),
            };
            extra.push(("policy.optimizer.pth", group));
            // A2C has neither epochs nor clipping (the import tells them apart so).
            if a2c.is_none() {
                for (k, v) in [
                    ("clip_range", schedule(&c.clip_range)),
                    ("clip_range_vf", json!(c.clip_range_vf)),
                    ("target_kl", json!(c.target_kl)),
                ] {
                    data.insert(k.into(), v);
                }
            }
            let (hidden, activation, ortho, log_std_init) =
                (c.net.hidden.clone(), c.net.activation, c.net.ortho_init, c.log_std_init);
            let skip = usize::from(image.is_some());
            let kwargs = serialized("<class 'dict'>", |p| {
                p.op(op::EMPTY_DICT);
                p.op(op::MARK);
                p.string("net_arch");
                p.op(op::EMPTY_DICT);
                p.op(op::MARK);
                for (key, widths) in [("pi", &hidden), ("vf", &critic_hidden)] {
                    p.string(key);
                    p.list_of(&widths[skip.min(widths.len())..], |p, &h| p.int(h as i64));
                }
                p.op(op::SETITEMS);
                p.string("activation_fn");
                activation_class(p, activation);
                p.string("ortho_init");
                p.op(if ortho { op::NEWTRUE } else { op::NEWFALSE });
                p.string("log_std_init");
                p.float(log_std_init);
                if let Some(eps) = rms_prop {
                    // SB3's A2C hands RMSprop to its policy this way.
                    p.string("optimizer_class");
                    p.global("torch.optim.rmsprop", "RMSprop");
                    p.string("optimizer_kwargs");
                    p.op(op::EMPTY_DICT);
                    p.op(op::MARK);
                    for (k, v) in [("alpha", 0.99), ("eps", eps)] {
                        p.string(k);
                        p.float(v);
                    }
                    p.string("weight_decay");
                    p.int(0);
                    p.op(op::SETITEMS);
                }
                if let Some(image) = &image {
                    image.kwargs(p);
                    p.string("share_features_extractor");
                    p.op(if shared { op::NEWTRUE } else { op::NEWFALSE });
                }
                p.op(op::SETITEMS);
            });
            let class = match (&image, multi) {
                (Some(_), _) => "ActorCriticCnnPolicy",
                (None, true) => "MultiInputActorCriticPolicy",
                (None, false) => "ActorCriticPolicy",
            };
            ("stable_baselines3.common.policies", class, kwargs, lr)
        }
        AgentConfig::Dqn(c) => {
            let lr = c.learning_rate;
            extra.push(("policy.optimizer.pth", optimizer_of(Rule::Adam, count("q_net."), lr.at(0.0), 1e-8)));
            data.insert("train_freq".into(), json!(c.train_freq));
            match &image {
                Some(image) => {
                    let net = nn::MlpConfig { hidden: c.net.hidden[1..].to_vec(), ..c.net.clone() };
                    ("stable_baselines3.dqn.policies", "CnnPolicy", mlp_kwargs(&net, |p| image.kwargs(p)), lr)
                }
                None => ("stable_baselines3.dqn.policies", mlp_class("DQNPolicy"), mlp_kwargs(&c.net, |_| {}), lr),
            }
        }
        AgentConfig::Sac(c) => {
            let (actor, critic) = (count("actor."), count("critic."));
            let lr = c.learning_rate;
            extra.push(("actor.optimizer.pth", optimizer_of(Rule::Adam, actor, lr.at(0.0), 1e-8)));
            extra.push(("critic.optimizer.pth", optimizer_of(Rule::Adam, critic, lr.at(0.0), 1e-8)));
            let ent_coef = match c.ent_coef {
                EntCoef::Auto(start) => {
                    extra.push(("ent_coef_optimizer.pth", optimizer_of(Rule::Adam, 1, lr.at(0.0), 1e-8)));
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
                ("train_freq", json!(c.train_freq)),
                ("ent_coef", ent_coef),
                ("target_entropy", json!(target_entropy)),
                ("use_sde", json!(false)),
            ] {
                data.insert(k.into(), v);
            }
            let kwargs = mlp_kwargs(&c.net, |p| {
                p.string("use_sde");
                p.op(op::NEWFALSE);
            });
            ("stable_baselines3.sac.policies", mlp_class("SACPolicy"), kwargs, lr)
        }
        AgentConfig::Td3(c) => {
            let (actor, critic) = (count("actor."), count("critic."));
            let lr = c.learning_rate;
            extra.push(("actor.optimizer.pth", optimizer_of(Rule::Adam, actor, lr.at(0.0), 1e-8)));
            extra.push(("critic.optimizer.pth", optimizer_of(Rule::Adam, critic, lr.at(0.0), 1e-8)));
            let act_dim = card.action_space.flat_dim();
            let noise = match c.action_noise {
                None => Json::Null,
                Some(sigma) => serialized("<class 'stable_baselines3.common.noise.NormalActionNoise'>", |p| {
                    p.object("stable_baselines3.common.noise", "NormalActionNoise", |p| {
                        p.string("_mu");
                        p.array(&vec![0.0; act_dim], "float64");
                        p.string("_sigma");
                        p.array(&vec![sigma; act_dim], "float64");
                        p.string("_dtype");
                        p.global("numpy", "float32");
                    })
                }),
            };
            data.insert("train_freq".into(), json!(c.train_freq));
            data.insert("action_noise".into(), noise);
            ("stable_baselines3.td3.policies", mlp_class("TD3Policy"), mlp_kwargs(&c.net, |_| {}), lr)
        }
    };
    data.insert("policy_class".into(), serialized("<class 'abc.ABCMeta'>", |p| p.global(policy_module, policy_class)));
    data.insert("policy_kwargs".into(), net);
    data.insert("learning_rate".into(), schedule(&lr));
    let observation_space = match &image {
        Some(image) => serialized("<class 'gymnasium.spaces.box.Box'>", |p| p.image_space(&image.space, image.bytes)),
        None if multi => serialized("<class 'gymnasium.spaces.dict.Dict'>", |p| p.space(&card.observation_space)),
        None => serialized("<class 'gymnasium.spaces.box.Box'>", |p| p.space(&card.observation_space)),
    };
    data.insert("observation_space".into(), observation_space);
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
    let on_policy = match &card.config {
        AgentConfig::Ppo(c) => Some(c.clone()),
        AgentConfig::A2c(a) => Some(a.as_ppo()),
        _ => None,
    };
    if let Some(c) = on_policy.filter(|c| c.normalize_obs || c.normalize_reward) {
        let path = out.with_file_name("vec_normalize.pkl");
        let pickle = vec_normalize(&tensors, &card, c.gamma, dir)?;
        crate::util::write_atomic(&path, &pickle).map_err(|e| Sb3Error::new(&path, None, e.error.to_string()))?;
        written.push(path);
    }
    Ok(written)
}

/// Folds the layers a transfer added into the base layers where the arithmetic allows, so that
/// SB3's `MlpPolicy` computes the same function: LoRA merged (`W + (alpha/r) B A`), an input
/// layer into the first layer (`W₀ W_in`, `W₀ b_in + b₀`), an output layer into the head. Adapters,
/// extra depth and progressive columns have no place in SB3's network: refused, naming them.
fn fold_added(dir: &Path, added: &nn::Added, tensors: &mut HashMap<String, Tensor>) -> Result<(), Sb3Error> {
    let kept = [
        (!added.adapters.is_empty(), "bottleneck adapters"),
        (!added.depth.is_empty(), "extra depth"),
        (!added.widen.is_empty(), "widened layers"),
        (added.input_hidden.is_some(), "an input MLP"),
        (added.progressive, "a progressive column"),
    ];
    if let Some((_, what)) = kept.iter().find(|(has, _)| *has) {
        let message = format!(
            "the network carries {what}, added by a transfer: SB3's MlpPolicy has no place for it (LoRA, input and \
             output layers fold into SB3's layers and are exported merged)"
        );
        return Err(Sb3Error::new(dir, None, message));
    }
    let nets: Vec<String> = tensors.keys().filter_map(|n| n.strip_suffix(".head.weight")).map(String::from).collect();
    tch::no_grad(|| {
        for net in &nets {
            let get = |t: &HashMap<String, Tensor>, n: &str| t.get(&format!("{net}.{n}")).map(|t| t.detach().copy());
            let layers: Vec<String> =
                tensors.keys().filter_map(|n| n.strip_prefix(&format!("{net}.lora.")).and_then(|l| l.strip_suffix(".a"))).map(String::from).collect();
            if let Some(lora) = &added.lora {
                let scale = lora.alpha / lora.rank as f64;
                for layer in layers {
                    if let (Some(w), Some(a), Some(b)) =
                        (get(tensors, &format!("{layer}.weight")), get(tensors, &format!("lora.{layer}.a")), get(tensors, &format!("lora.{layer}.b")))
                    {
                        tensors.insert(format!("{net}.{layer}.weight"), w + b.matmul(&a) * scale);
                    }
                }
            }
            // The layers that read the input layer's output: the first, and without hidden layers
            // every head (SAC's log σ head too).
            let readers: &[&str] =
                if tensors.contains_key(&format!("{net}.trunk.0.weight")) { &["trunk.0"] } else { &["head", "log_std"] };
            for first in readers {
                if let (Some(wi), Some(bi), Some(w), Some(b)) = (
                    get(tensors, "input.weight"),
                    get(tensors, "input.bias"),
                    get(tensors, &format!("{first}.weight")),
                    get(tensors, &format!("{first}.bias")),
                ) {
                    tensors.insert(format!("{net}.{first}.bias"), w.matmul(&bi) + b);
                    tensors.insert(format!("{net}.{first}.weight"), w.matmul(&wi));
                }
            }
            if let (Some(wo), Some(bo), Some(w), Some(b)) =
                (get(tensors, "output.weight"), get(tensors, "output.bias"), get(tensors, "head.weight"), get(tensors, "head.bias"))
            {
                tensors.insert(format!("{net}.head.bias"), wo.matmul(&b) + bo);
                tensors.insert(format!("{net}.head.weight"), wo.matmul(&w));
            }
        }
    });
    Ok(())
}
