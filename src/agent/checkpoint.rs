//! Checkpoints: a folder holding `weights.safetensors` (every tensor of the agent's state: network
//! weights, target networks, optimiser moments, normaliser statistics) and `card.ron`, which says
//! what the file holds: algorithm and hyperparameters, environment and spaces, training steps,
//! seed, evaluation, the name and shape of every tensor, and the SHA-256 of the weights file.
//!
//! Loading trusts nothing: the card must parse, the weights file must parse as safetensors, hash
//! to the card's checksum, and hold exactly the card's tensors with their shapes, which must be
//! those of the agent the card describes. Every refusal names the file and the field or tensor.
//! Writing goes through temporary files renamed into place, so an interrupted save never leaves a
//! half-written checkpoint under the final names.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::{Agent, AgentConfig, AgentError, Algo, EvalStats};
use crate::env::{EnvSpec, Mixture, Space, Tasks};
use crate::util::{ron_options, sha256};

/// The file of the agent's named tensors.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// The file of the card (RON).
pub const CARD_FILE: &str = "card.ron";
/// The file of an off-policy agent's replay buffer.
pub const REPLAY_FILE: &str = "replay.safetensors";
const FORMAT: u32 = 1;

/// One tensor of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorInfo {
    /// The tensor's name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its element type (`F32`, `F64`, `I64`).
    pub dtype: String,
}

/// What a checkpoint holds, in RON beside the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    /// The card format's version.
    pub format: u32,
    /// The version of headstart that wrote the checkpoint.
    pub headstart_version: String,
    /// The agent's algorithm.
    pub algorithm: Algo,
    /// The agent's hyperparameters.
    pub config: AgentConfig,
    /// The environment the policy was trained on.
    pub env: EnvSpec,
    /// The mixture of variants the policy was trained on, when it was (`env` is its first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mixture: Option<Mixture>,
    /// The named tasks a multitask network was trained on, when it was (`env` is the first
    /// task's; the spaces are the tasks' shared ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Tasks>,
    /// The observation space the agent was built for.
    pub observation_space: Space,
    /// The action space the agent was built for.
    pub action_space: Space,
    /// Environment steps trained.
    pub steps: u64,
    /// The seed the agent was built with.
    pub seed: u64,
    /// Trained without the task's reward: `config`'s `objective` says with what instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reward_free: bool,
    #[serde(default)]
    /// The evaluation made when the checkpoint was saved.
    pub eval: Option<EvalStats>,
    /// How the checkpoint was made (for example the command line).
    #[serde(default)]
    pub produced_by: String,
    /// SHA-256 of `weights.safetensors`, hex.
    pub sha256: String,
    /// The network weights (what transfer moves), by name.
    pub weights: Vec<String>,
    /// Every tensor of the weights file.
    pub tensors: Vec<TensorInfo>,
    /// The replay buffer saved beside the weights (off-policy agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayInfo>,
    /// Where the weights came from when they were not trained by headstart (an imported model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// The provenance of imported weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// The library and version that wrote them (`Stable-Baselines3 2.9.2`).
    pub library: String,
    /// The file they were read from.
    pub file: String,
    /// SHA-256 of that file, hex.
    pub sha256: String,
    /// The other files read with it (`vec_normalize.pkl`, the Zoo's `config.yml` and
    /// `env_kwargs.yml`), with their SHA-256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_read: Vec<AlsoRead>,
    /// What the file held that the checkpoint does not carry.
    pub not_carried: Vec<String>,
}

/// A file an import read besides the model, with its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlsoRead {
    /// The file.
    pub file: String,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// The replay buffer file of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayInfo {
    /// How many transitions the buffer holds.
    pub transitions: usize,
    /// SHA-256 of `replay.safetensors`, hex.
    pub sha256: String,
}

/// Why a checkpoint could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{}: {message}", path.display())]
    /// Reading or writing a file failed, or its contents are damaged.
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    #[error("{}: {source}", path.display())]
    /// The agent refused the checkpoint's contents.
    Agent {
        /// The checkpoint's directory or file.
        path: PathBuf,
        /// The agent's error.
        source: AgentError,
    },
}

fn file_error(path: &Path, message: impl Into<String>) -> CheckpointError {
    CheckpointError::File { path: path.to_path_buf(), message: message.into() }
}

/// The facts a card records beyond the agent itself.
pub struct CardInfo<'a> {
    /// The environment the agent was trained on.
    pub env: &'a EnvSpec,
    /// The mixture it was trained on, if any.
    pub mixture: Option<&'a Mixture>,
    /// The named tasks a multitask network was trained on, if any.
    pub tasks: Option<&'a Tasks>,
    /// The observation space.
    pub observation_space: &'a Space,
    /// The action space.
    pub action_space: &'a Space,
    /// An evaluation to record.
    pub eval: Option<EvalStats>,
    /// How the checkpoint was made (for example the command line).
    pub produced_by: String,
    /// Where imported weights came from.
    pub origin: Option<Origin>,
}

fn dtype_of(kind: Kind) -> Option<(Dtype, &'static str)> {
    match kind {
        Kind::Float => Some((Dtype::F32, "F32")),
        Kind::Double => Some((Dtype::F64, "F64")),
        Kind::Int64 => Some((Dtype::I64, "I64")),
        _ => None,
    }
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    match dtype {
        Dtype::F32 => Some(Kind::Float),
        Dtype::F64 => Some(Kind::Double),
        Dtype::I64 => Some(Kind::Int64),
        _ => None,
    }
}

/// Writes `bytes` to `path` through a temporary file renamed into place.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    crate::util::write_atomic(path, bytes).map_err(|e| file_error(path, e.error.to_string()))
}

/// Serialises named tensors as safetensors bytes, with their descriptions; `path` names the
/// file in errors.
fn serialize(tensors: &[(String, Tensor)], path: &Path) -> Result<(Vec<u8>, Vec<TensorInfo>), CheckpointError> {
    serialize_with(tensors, HashMap::new(), path)
}

/// [`serialize`] with text metadata beside `format: headstart`.
fn serialize_with(
    tensors: &[(String, Tensor)],
    mut metadata: HashMap<String, String>,
    path: &Path,
) -> Result<(Vec<u8>, Vec<TensorInfo>), CheckpointError> {
    let mut infos = Vec::with_capacity(tensors.len());
    let mut buffers = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let (dtype, dtype_name) = dtype_of(tensor.kind())
            .ok_or_else(|| file_error(path, format!("tensor `{name}` has unsupported kind {:?}", tensor.kind())))?;
        let t = tensor.detach().contiguous();
        let mut bytes = vec![0u8; t.numel() * dtype.bitsize() / 8];
        t.copy_data_u8(&mut bytes, t.numel());
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        infos.push(TensorInfo { name: name.clone(), shape: shape.clone(), dtype: dtype_name.to_string() });
        buffers.push((name.clone(), dtype, shape, bytes));
    }
    let views = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| file_error(path, e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    metadata.insert("format".to_string(), "headstart".to_string());
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| file_error(path, e.to_string()))?;
    Ok((bytes, infos))
}

/// Refuses a file whose SHA-256 is not the card's `field`.
fn check_digest(path: &Path, bytes: &[u8], expected: &str, field: &str) -> Result<(), CheckpointError> {
    let digest = sha256(bytes);
    if digest != expected {
        return Err(file_error(
            path,
            format!(
                "SHA-256 {digest} differs from the card's `{field}` {expected}: the file is corrupt or not this card's"
            ),
        ));
    }
    Ok(())
}

/// Looks tensors of a parsed safetensors file up by name.
fn getter<'a>(file: &'a SafeTensors<'a>) -> impl FnMut(&str) -> Option<Tensor> + 'a {
    move |name: &str| {
        let view = file.tensor(name).ok()?;
        let kind = kind_of(view.dtype())?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        Some(Tensor::from_data_size(view.data(), &shape, kind))
    }
}

/// Writes named tensors (`F32`, `F64`, `I64`) and text metadata into one safetensors file,
/// atomically.
pub fn write_tensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    let (bytes, _) = serialize_with(tensors, metadata, path)?;
    write_atomic(path, &bytes)
}

/// The tensors and metadata of a safetensors file.
pub struct TensorFile {
    /// The text metadata.
    pub metadata: HashMap<String, String>,
    /// The tensors, by name.
    pub tensors: HashMap<String, Tensor>,
}

impl TensorFile {
    /// A tensor by name (a shallow copy), as restoring functions look them up.
    pub fn get(&self, name: &str) -> Option<Tensor> {
        self.tensors.get(name).map(Tensor::shallow_clone)
    }
}

/// Reads what [`write_tensors`] wrote; a damaged file is an error naming it.
pub fn read_tensors(path: &Path) -> Result<TensorFile, CheckpointError> {
    let bytes = fs::read(path).map_err(|e| file_error(path, e.to_string()))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| file_error(path, format!("not a readable safetensors file (truncated or corrupt?): {e}")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| file_error(path, format!("not a readable safetensors file (truncated or corrupt?): {e}")))?;
    let mut get = getter(&file);
    let mut tensors = HashMap::new();
    for name in file.names() {
        let tensor = get(name).ok_or_else(|| file_error(path, format!("tensor `{name}` has an unsupported type")))?;
        tensors.insert(name.to_string(), tensor);
    }
    Ok(TensorFile { metadata, tensors })
}

/// Saves `agent` into the folder `dir` (created if missing); returns the card written. An
/// off-policy agent's replay buffer goes to `replay.safetensors` beside the weights.
pub fn save(agent: &dyn Agent, info: CardInfo<'_>, dir: &Path) -> Result<Card, CheckpointError> {
    fs::create_dir_all(dir).map_err(|e| file_error(dir, e.to_string()))?;
    let merged = merge_lora(agent, info.observation_space, info.action_space)
        .map_err(|source| CheckpointError::Agent { path: dir.to_path_buf(), source })?;
    // The weights, configuration and names saved: the merged network's when LoRA asks to be merged.
    let network: &dyn Agent = merged.as_deref().unwrap_or(agent);
    let weights_path = dir.join(WEIGHTS_FILE);
    let (bytes, infos) = serialize(&network.tensors(), &weights_path)?;
    let replay = match agent.replay().filter(|b| !b.is_empty()) {
        Some(buffer) => {
            let path = dir.join(REPLAY_FILE);
            let (replay_bytes, _) = serialize(&buffer.state(), &path)?;
            write_atomic(&path, &replay_bytes)?;
            Some(ReplayInfo { transitions: buffer.len(), sha256: sha256(&replay_bytes) })
        }
        None => None,
    };
    let card = Card {
        format: FORMAT,
        headstart_version: env!("CARGO_PKG_VERSION").to_string(),
        algorithm: agent.algo(),
        config: network.config(),
        env: info.env.clone(),
        mixture: info.mixture.cloned(),
        tasks: info.tasks.cloned(),
        observation_space: info.observation_space.clone(),
        action_space: info.action_space.clone(),
        steps: agent.steps(),
        seed: agent.seed(),
        reward_free: !network.config().objective().is_reward(),
        eval: info.eval,
        produced_by: info.produced_by,
        sha256: sha256(&bytes),
        weights: network.weight_names(),
        tensors: infos,
        replay,
        origin: info.origin,
    };
    write_atomic(&weights_path, &bytes)?;
    let text = ron_options()
        .to_string_pretty(&card, ron::ser::PrettyConfig::default())
        .map_err(|e| file_error(&dir.join(CARD_FILE), e.to_string()))?;
    write_atomic(&dir.join(CARD_FILE), text.as_bytes())?;
    Ok(card)
}

/// Reads and parses a checkpoint's card.
pub fn read_card(dir: &Path) -> Result<Card, CheckpointError> {
    let path = dir.join(CARD_FILE);
    let text = fs::read_to_string(&path).map_err(|e| file_error(&path, e.to_string()))?;
    let card: Card = ron_options().from_str(&text).map_err(|e| file_error(&path, e.to_string()))?;
    if card.format != FORMAT {
        return Err(file_error(
            &path,
            format!("field `format`: {} is not a format this version reads ({FORMAT})", card.format),
        ));
    }
    if card.algorithm != card.config.algo() {
        return Err(file_error(
            &path,
            format!("field `algorithm` says {} but `config` is a {} configuration", card.algorithm, card.config.algo()),
        ));
    }
    Ok(card)
}

/// A loaded checkpoint: the card and the agent with its state restored.
pub struct Loaded {
    /// The checkpoint's card.
    pub card: Card,
    /// The agent, restored.
    pub agent: Box<dyn Agent>,
}

/// Loads a checkpoint folder, checking the card against the weights file and the agent.
pub fn load(dir: &Path) -> Result<Loaded, CheckpointError> {
    let card = read_card(dir)?;
    let card_path = dir.join(CARD_FILE);
    let weights_path = dir.join(WEIGHTS_FILE);
    let bytes = fs::read(&weights_path).map_err(|e| file_error(&weights_path, e.to_string()))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| {
        file_error(&weights_path, format!("not a readable safetensors file (truncated or corrupt?): {e}"))
    })?;
    check_digest(&weights_path, &bytes, &card.sha256, "sha256")?;
    // The file holds exactly the card's tensors.
    let mut in_file: HashMap<String, TensorView<'_>> = file.tensors().into_iter().collect();
    for info in &card.tensors {
        let view = in_file.remove(&info.name).ok_or_else(|| {
            file_error(&weights_path, format!("tensor `{}` listed in the card is missing", info.name))
        })?;
        if view.shape() != info.shape.as_slice() {
            return Err(file_error(
                &weights_path,
                format!("tensor `{}` has shape {:?}, the card says {:?}", info.name, view.shape(), info.shape),
            ));
        }
    }
    if let Some(extra) = in_file.keys().min() {
        return Err(file_error(&weights_path, format!("tensor `{extra}` is not listed in the card")));
    }
    // The card's tensors are exactly the agent's.
    let mut agent = card
        .config
        .build(&card.observation_space, &card.action_space, card.seed)
        .map_err(|source| CheckpointError::Agent { path: card_path.clone(), source })?;
    let expected = agent.tensors();
    let listed: HashMap<&str, &TensorInfo> = card.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    for (name, tensor) in &expected {
        let shape: Vec<usize> = tensor.size().iter().map(|&d| d as usize).collect();
        match listed.get(name.as_str()) {
            None => {
                return Err(file_error(
                    &card_path,
                    format!("field `tensors` lacks `{name}`, which a {} agent with this `config` has", card.algorithm),
                ));
            }
            Some(info) if info.shape != shape => {
                return Err(file_error(
                    &card_path,
                    format!(
                        "tensor `{name}` is {:?} in the checkpoint but {:?} for the card's `config` and spaces",
                        info.shape, shape
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    if expected.len() != card.tensors.len() {
        let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
        let extra =
            card.tensors.iter().find(|t| !known.contains(t.name.as_str())).map(|t| t.name.clone()).unwrap_or_default();
        return Err(file_error(&card_path, format!("tensor `{extra}` does not belong to a {} agent", card.algorithm)));
    }
    agent
        .restore(&mut getter(&file), card.steps)
        .map_err(|source| CheckpointError::Agent { path: weights_path.clone(), source })?;
    if let Some(info) = &card.replay {
        let path = dir.join(REPLAY_FILE);
        let bytes = fs::read(&path).map_err(|e| file_error(&path, e.to_string()))?;
        check_digest(&path, &bytes, &info.sha256, "replay.sha256")?;
        let file = SafeTensors::deserialize(&bytes)
            .map_err(|e| file_error(&path, format!("not a readable safetensors file (truncated or corrupt?): {e}")))?;
        let algo = card.algorithm;
        let buffer = agent
            .replay_mut()
            .ok_or_else(|| file_error(&card_path, format!("field `replay`: a {algo} agent has no replay buffer")))?;
        let n = buffer.extend_from_state(&mut getter(&file)).map_err(|e| file_error(&path, e.to_string()))?;
        if n != info.transitions {
            return Err(file_error(
                &path,
                format!("holds {n} transitions, the card's `replay.transitions` says {}", info.transitions),
            ));
        }
    }
    Ok(Loaded { card, agent })
}

/// With LoRA factors marked `merge`, the agent with each factored weight merged
/// (`W + (alpha/r) B A`, in `f32` by libtorch) and the factors dropped, built for the same
/// spaces: what a checkpoint then saves. The optimiser's moments are the base weights'.
fn merge_lora(agent: &dyn Agent, obs: &Space, actions: &Space) -> Result<Option<Box<dyn Agent>>, AgentError> {
    let config = agent.config();
    let Some(lora) = config.net().added.lora.clone().filter(|l| l.merge) else { return Ok(None) };
    let mut plain = config;
    plain.net_mut().added.lora = None;
    let mut merged = plain.build(obs, actions, agent.seed())?;
    let tensors: HashMap<String, Tensor> = agent.tensors().into_iter().collect();
    let weights = agent.weight_names();
    let scale = lora.alpha / lora.rank as f64;
    let mut get = |name: &str| -> Option<Tensor> {
        let value = tensors.get(name)?.detach().copy();
        // A network's weight (online, or a target network's), never an optimiser's moment.
        let network = weights.iter().any(|w| w == name) || name.split('.').next().is_some_and(|c| c.ends_with("_target"));
        let factored = network.then(|| name.strip_suffix(".weight")).flatten();
        let factors = factored.and_then(|base| {
            let layer = lora.layers.iter().find(|l| base.ends_with(&format!(".{l}")))?;
            let net = &base[..base.len() - layer.len() - 1];
            Some((tensors.get(&format!("{net}.lora.{layer}.a"))?, tensors.get(&format!("{net}.lora.{layer}.b"))?))
        });
        Some(match factors {
            Some((a, b)) => tch::no_grad(|| value + b.matmul(a) * scale),
            None => value,
        })
    };
    merged.restore(&mut get, agent.steps())?;
    Ok(Some(merged))
}
