//! The RL Zoo's side of a model: the folder's files (`vec_normalize.pkl`, `config.yml`,
//! `env_kwargs.yml`) and the environment id in a model's file name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::pickle;
use super::{Model, Problem, Sb3Error, Statistics};
use crate::agent::AgentConfig;
use crate::env::{Space, Transform};
use crate::env::atari::AtariConfig;

/// Where the parts of a model lie: the zip, and in a Zoo folder the files beside it.
pub(super) struct Files {
    pub(super) zip: PathBuf,
    pub(super) vec_normalize: Option<PathBuf>,
    pub(super) config: Option<PathBuf>,
    pub(super) env_kwargs: Option<PathBuf>,
}

/// The parts of the model at `path`: a `.zip`, or a folder: the flat layout (`model.zip`,
/// `vec_normalize.pkl`, `config.yml`, `env_kwargs.yml` side by side) or the RL Zoo's run folder
/// (`CartPole-v1.zip`, perhaps `best_model.zip` and checkpoints, and `CartPole-v1/` holding
/// `config.yml`, `env_kwargs.yml` and `vecnormalize.pkl`). Of several models the final one is
/// taken, as the Zoo's `enjoy` does; otherwise the user names one.
pub(super) fn locate(path: &Path) -> Result<Files, Sb3Error> {
    if !path.is_dir() {
        // A zip: the same files beside it as its folder would give.
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        return Ok(beside(folder, path.to_path_buf()));
    }
    let fail = |m: String| Sb3Error::new(path, None, m);
    let mut zips: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| fail(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "zip"))
        .collect();
    zips.sort();
    let is_final = |p: &PathBuf| {
        let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        stem != "best_model" && !(stem.starts_with("rl_model_") && stem.ends_with("_steps"))
    };
    let finals: Vec<PathBuf> = zips.iter().filter(|p| is_final(p)).cloned().collect();
    let zip = match (zips.as_slice(), finals.as_slice()) {
        ([], _) => return Err(fail("holds no model (.zip)".into())),
        ([one], _) | (_, [one]) => one.clone(),
        (many, _) => {
            let names: Vec<String> =
                many.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into()).collect();
            return Err(fail(format!("holds several models ({}): name the one to import", names.join(", "))));
        }
    };
    Ok(beside(path, zip))
}

/// The files beside the model `zip` in `folder`, or in the Zoo's parameter folder
/// `folder/<env id>/` (named like the final model's zip; `best_model.zip` and the checkpoints
/// share it: the one subfolder holding a `config.yml` and no model).
fn beside(folder: &Path, zip: PathBuf) -> Files {
    let mut params: Vec<PathBuf> = zip.file_stem().map(|stem| folder.join(stem)).into_iter().collect();
    // The Zoo's parameter folder holds `config.yml` and no model; only one such is unambiguous.
    let holds_zip = |p: &Path| {
        std::fs::read_dir(p)
            .is_ok_and(|mut e| e.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "zip"))))
    };
    if let Ok(entries) = std::fs::read_dir(folder) {
        let zoo: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("config.yml").is_file() && !holds_zip(p))
            .collect();
        if let [one] = zoo.as_slice() {
            params.push(one.clone());
        }
    }
    let find = |names: &[&str]| {
        let folders = std::iter::once(folder.to_path_buf()).chain(params.iter().cloned());
        folders.flat_map(|f| names.iter().map(move |n| f.join(n))).find(|p| p.is_file())
    };
    Files {
        vec_normalize: find(&["vec_normalize.pkl", "vecnormalize.pkl"]),
        config: find(&["config.yml"]),
        env_kwargs: find(&["env_kwargs.yml"]),
        zip,
    }
}

/// The environment id in the model's file name (`ppo-CartPole-v1.zip`, the Zoo's
/// `CartPole-v1.zip`), when it looks like one.
pub(super) fn guess_env_id(zip: &Path) -> Option<String> {
    let stem = zip.file_stem()?.to_str()?;
    let id =
        ["ppo", "a2c", "dqn", "sac", "td3"].iter().find_map(|a| stem.strip_prefix(&format!("{a}-"))).unwrap_or(stem);
    let version = id.rsplit_once("-v")?.1;
    (!version.is_empty() && version.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

pub(super) fn read_vec_normalize(path: &Path, model: &mut Model) -> Result<(), Sb3Error> {
    let fail = |m: String| Sb3Error::new(path, None, m);
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let pickle = pickle::parse(&bytes).map_err(|e| fail(e.to_string()))?;
    let root = pickle.root();
    if !root.class().is_some_and(|c| c.ends_with("VecNormalize")) {
        return Err(fail(format!("holds a `{}`, not a VecNormalize", root.class().unwrap_or_default())));
    }
    let number = |name: &str| root.attr(name).and_then(|v| v.float()).ok_or_else(|| fail(format!("has no `{name}`")));
    let flag = |name: &str| root.attr(name).and_then(|v| v.bool()).ok_or_else(|| fail(format!("has no `{name}`")));
    let (clip_obs, epsilon) = (number("clip_obs")?, number("epsilon")?);
    if clip_obs != 10.0 || epsilon != 1e-8 {
        return Err(fail(format!(
            "clip_obs {clip_obs} and epsilon {epsilon}: headstart normalises with clip 10 and epsilon 1e-8 (SB3's defaults)"
        )));
    }
    let stats = |name: &str| -> Result<Statistics, Sb3Error> {
        let rms = root.attr(name).ok_or_else(|| fail(format!("has no `{name}`")))?;
        // An array, or for a scalar statistic (`ret_rms`) a NumPy scalar.
        let array = |field: &str| {
            rms.attr(field)
                .and_then(|v| v.numpy_array().map(|a| a.1).or_else(|| v.float().map(|x| vec![x])))
                .ok_or_else(|| fail(format!("`{name}.{field}` is not an array")))
        };
        let count =
            rms.attr("count").and_then(|v| v.float()).ok_or_else(|| fail(format!("`{name}.count` is missing")))?;
        Ok(Statistics { mean: array("mean")?, var: array("var")?, count })
    };
    let (normalize_obs, normalize_reward, agent_gamma) = match &mut model.config {
        AgentConfig::Ppo(c) => (&mut c.normalize_obs, &mut c.normalize_reward, c.gamma),
        AgentConfig::A2c(c) => (&mut c.normalize_obs, &mut c.normalize_reward, c.gamma),
        _ => {
            return Err(fail(format!(
                "observation normalisation is imported for PPO and A2C models, not {}",
                model.algo
            )));
        }
    };
    if flag("norm_obs")? {
        if let Space::Dict { .. } = model.observation_space {
            return Err(fail(
                "norm_obs over a Dict observation (statistics for each key): headstart normalises one flat \
                 observation"
                    .into(),
            ));
        }
        let s = stats("obs_rms")?;
        if s.mean.len() != model.observation_space.flat_dim() {
            return Err(fail(format!(
                "obs_rms has {} values for observations of {}",
                s.mean.len(),
                model.observation_space.flat_dim()
            )));
        }
        *normalize_obs = true;
        model.obs_rms = Some(s);
    }
    if flag("norm_reward")? {
        *normalize_reward = true;
        model.ret_rms = Some(stats("ret_rms")?);
        if number("gamma")? != agent_gamma {
            model
                .not_carried
                .push(format!("VecNormalize's gamma {} (headstart scales rewards with the agent's)", number("gamma")?));
        }
    }
    Ok(())
}

/// Refuses what a Zoo `config.yml` asks for that headstart cannot represent.
pub(super) fn check_zoo_config(path: &Path, model: &mut Model) -> Result<(), Sb3Error> {
    let fail = |m: String| Sb3Error::new(path, None, m);
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let pairs = yaml_pairs(&text).map_err(|p| fail(p.0))?;
    let (mut wrapper, mut stack) = (None, None);
    for (key, value) in pairs {
        let value = value.trim().trim_matches('\'').trim_matches('"');
        let set = !matches!(value, "" | "null" | "None" | "~");
        match key.as_str() {
            // SB3's AtariWrapper with its defaults, alone (as the Zoo's Atari presets name it).
            "env_wrapper" if value == ATARI_WRAPPER => wrapper = Some(Transform::Atari(AtariConfig::zoo())),
            "frame_stack" if set => match value.parse::<usize>() {
                Ok(n) if n >= 2 => stack = Some(Transform::FrameStack(n)),
                _ => return Err(fail(format!("`frame_stack: {value}`: not a number of frames (2 or more)"))),
            },
            "env_wrapper" | "vec_env_wrapper" if set => {
                return Err(fail(format!(
                    "`{key}: {value}`: of the wrappers, headstart carries SB3's AtariWrapper with its defaults alone"
                )));
            }
            "policy" if !matches!(value, "MlpPolicy" | "CnnPolicy") => {
                return Err(fail(format!("`policy: {value}`: MlpPolicy and CnnPolicy models are imported")));
            }
            "policy" if (value == "CnnPolicy") != model.config.net().encoder.is_some() => {
                return Err(fail(format!("`policy: {value}`, but the model beside it is not one")));
            }
            "normalize"
                if !matches!(value, "false" | "False") && model.obs_rms.is_none() && model.ret_rms.is_none() =>
            {
                return Err(fail(
                    "`normalize` is set but vec_normalize.pkl is missing beside it: the statistics are needed".into(),
                ));
            }
            _ => {}
        }
    }
    if let Some(Transform::FrameStack(n)) = stack {
        let last = match &model.observation_space {
            crate::env::Space::Box { shape, .. } => shape.last().copied().unwrap_or(1),
            crate::env::Space::Discrete { .. } | crate::env::Space::Dict { .. } => 1,
        };
        if last % n != 0 {
            return Err(fail(format!(
                "`frame_stack: {n}`, but the model's observations hold {last} values along their last axis, not {n} frames"
            )));
        }
    }
    model.transforms = wrapper.into_iter().chain(stack).collect();
    Ok(())
}

/// SB3's `AtariWrapper`, which an `env_wrapper` naming it alone (without arguments) applies.
const ATARI_WRAPPER: &str = "stable_baselines3.common.atari_wrappers.AtariWrapper";

pub(super) fn read_env_kwargs(path: &Path) -> Result<BTreeMap<String, f64>, Sb3Error> {
    let fail = |m: String| Sb3Error::new(path, None, m);
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    yaml_numbers(&text).map_err(|p| fail(p.0))
}

/// The `[key, value]` pairs of an RL Zoo `config.yml` (a dumped `OrderedDict`), values as text.
fn yaml_pairs(text: &str) -> Result<Vec<(String, String)>, Problem> {
    let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let Some(doc) = docs.first() else { return Ok(Vec::new()) };
    // A list of one value is the value (the Zoo writes `env_wrapper` as a list of one class).
    fn scalar(y: &yaml_rust2::Yaml) -> String {
        match y {
            yaml_rust2::Yaml::Real(s) | yaml_rust2::Yaml::String(s) => s.clone(),
            yaml_rust2::Yaml::Integer(i) => i.to_string(),
            yaml_rust2::Yaml::Boolean(b) => b.to_string(),
            yaml_rust2::Yaml::Null => "null".into(),
            yaml_rust2::Yaml::Array(one) if one.len() == 1 => scalar(&one[0]),
            other => format!("{other:?}"),
        }
    }
    // `!!python/object/apply:collections.OrderedDict` holds `[[[key, value], ...]]`.
    let list = match doc {
        yaml_rust2::Yaml::Array(outer) if outer.len() == 1 && matches!(outer[0], yaml_rust2::Yaml::Array(_)) => {
            &outer[0]
        }
        yaml_rust2::Yaml::Hash(h) => return Ok(h.iter().map(|(k, v)| (scalar(k), scalar(v))).collect()),
        other => other,
    };
    let yaml_rust2::Yaml::Array(items) = list else { return Err("not a list of [key, value] pairs".into()) };
    items
        .iter()
        .map(|pair| match pair {
            yaml_rust2::Yaml::Array(kv) if kv.len() == 2 => Ok((scalar(&kv[0]), scalar(&kv[1]))),
            _ => Err("not a list of [key, value] pairs".into()),
        })
        .collect()
}

/// A YAML mapping of numbers (the Zoo's `env_kwargs.yml`).
fn yaml_numbers(text: &str) -> Result<BTreeMap<String, f64>, Problem> {
    let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let mut out = BTreeMap::new();
    match docs.first() {
        None | Some(yaml_rust2::Yaml::Null) => {}
        Some(yaml_rust2::Yaml::Hash(h)) => {
            for (k, v) in h {
                let key = k.as_str().ok_or("a key that is not a string")?.to_string();
                let value = match v {
                    yaml_rust2::Yaml::Integer(i) => *i as f64,
                    yaml_rust2::Yaml::Real(_) => v.as_f64().ok_or(format!("`{key}` is not a number"))?,
                    yaml_rust2::Yaml::Boolean(b) => *b as u8 as f64,
                    _ => {
                        return Err(format!(
                            "`{key}` is not a number (headstart's environment parameters are numbers)"
                        )
                        .into());
                    }
                };
                out.insert(key, value);
            }
        }
        Some(_) => return Err("not a mapping of keyword arguments".into()),
    }
    Ok(out)
}
