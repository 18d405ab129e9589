//! Preemption checkpoints of a unit: `units/<target>/<arm>/seed<k>.resume`, one safetensors
//! file written atomically at an evaluation point (at most every `checkpoint_every`, and when
//! the run is stopped). It holds everything the unit continues from:
//!
//! - the agent's tensors and its training state (`training.*`: generator, counters, the
//!   observations in hand, the replay buffer as it lies in memory),
//! - the training environments' action log (`log.*`), which a fresh vector of environments
//!   replays from the same seed into the same state,
//! - the unit's progress: evaluations so far, the training episodes (`curve.*`), the next
//!   evaluation point, the time spent.
//!
//! What transfer installed (frozen parts, anchors, the teacher, scheduled unfreezing) is not in
//! the file: a resumed unit runs the transfer again, which is deterministic, and then restores
//! the checkpoint over it. The result is the record an uninterrupted unit writes, byte for byte.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::agent::Agent;
use crate::agent::checkpoint::{self, TensorFile};
use crate::agent::train::{self, EpisodeRecord};
use crate::env::vector::ActionLog;
use crate::util::{ron_options, to_ron};

use super::StudyError;
use super::records::EvalPoint;

const FORMAT: &str = "headstart-unit-resume-1";

/// Where a unit's preemption checkpoint lives, beside its record.
pub fn resume_path(record: &Path) -> PathBuf {
    record.with_extension("resume")
}

/// A unit's progress at a checkpoint (the file's `progress` metadata, in RON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Environment steps trained.
    pub steps: u64,
    /// The unit's evaluations so far.
    pub evals: Vec<EvalPoint>,
    /// The next evaluation point.
    pub next: u64,
    /// Wall-clock seconds spent on the unit so far, by every process that ran it.
    pub seconds: f64,
    /// What else the caller keeps (RON; a sequence's evaluations of every task).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub extra: String,
}

/// A loaded preemption checkpoint.
pub struct Checkpoint {
    /// The unit's progress.
    pub progress: Progress,
    /// Its training episodes so far.
    pub episodes: Vec<EpisodeRecord>,
    /// The training environments' actions.
    pub log: ActionLog,
    file: TensorFile,
}

impl Checkpoint {
    /// Restores `agent` (built and transferred as the unit was) to the checkpoint.
    pub fn restore(&self, agent: &mut dyn Agent) -> Result<(), crate::agent::AgentError> {
        let mut get = |name: &str| self.file.get(name);
        agent.restore(&mut get, self.progress.steps)?;
        agent.restore_training(&mut get)
    }
}

/// Writes the checkpoint of a unit at `path`.
pub fn save(
    path: &Path,
    agent: &dyn Agent,
    log: &ActionLog,
    episodes: &[EpisodeRecord],
    progress: &Progress,
) -> Result<(), StudyError> {
    let mut tensors = agent.tensors();
    tensors.extend(agent.training_state());
    tensors.extend(train::log_tensors(log));
    let steps: Vec<i64> = episodes.iter().map(|e| e.step as i64).collect();
    let returns: Vec<f64> = episodes.iter().map(|e| e.ret).collect();
    let lengths: Vec<i64> = episodes.iter().map(|e| e.len as i64).collect();
    tensors.push(("curve.step".into(), Tensor::from_slice(&steps)));
    tensors.push(("curve.return".into(), Tensor::from_slice(&returns)));
    tensors.push(("curve.length".into(), Tensor::from_slice(&lengths)));
    let metadata =
        HashMap::from([("unit".to_string(), FORMAT.to_string()), ("progress".to_string(), to_ron(progress))]);
    checkpoint::write_tensors(path, &tensors, metadata).map_err(|e| StudyError::resume(path, e))
}

/// Reads the checkpoint at `path`; `None` when there is none. A damaged one is an error naming
/// the file (remove it to run the unit from the start).
pub fn load(path: &Path) -> Result<Option<Checkpoint>, StudyError> {
    if !path.exists() {
        return Ok(None);
    }
    let damaged = |what: String| StudyError::resume(path, what);
    let file = checkpoint::read_tensors(path).map_err(|e| damaged(e.to_string()))?;
    if file.metadata.get("unit").map(String::as_str) != Some(FORMAT) {
        return Err(damaged(format!("not a unit checkpoint (metadata `unit` is not {FORMAT:?})")));
    }
    let progress: Progress = ron_options()
        .from_str(file.metadata.get("progress").map_or("", String::as_str))
        .map_err(|e| damaged(format!("metadata `progress`: {e}")))?;
    let i64s = |name: &str| train::i64s(&file, name).map_err(|e| damaged(e.to_string()));
    let log = train::log_from(&file).map_err(|e| damaged(e.to_string()))?;
    let (steps, lengths) = (i64s("curve.step")?, i64s("curve.length")?);
    let returns = train::vector(&file, "curve.return", tch::Kind::Double).map_err(|e| damaged(e.to_string()))?;
    let returns = Vec::<f64>::try_from(&returns).map_err(|e| damaged(e.to_string()))?;
    if steps.len() != lengths.len() || steps.len() != returns.len() {
        return Err(damaged("the `curve.*` tensors differ in length".into()));
    }
    let episodes = steps
        .iter()
        .zip(&returns)
        .zip(&lengths)
        .map(|((&step, &ret), &len)| EpisodeRecord { step: step as u64, ret, len: len as usize })
        .collect();
    Ok(Some(Checkpoint { progress, episodes, log, file }))
}

/// The progress recorded in a checkpoint, from the file's header alone (the tensors, a replay
/// buffer among them, can be large); `None` when there is no readable checkpoint.
pub fn peek(path: &Path) -> Option<Progress> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).ok()?;
    let len = u64::from_le_bytes(len);
    if len > 100_000_000 {
        return None;
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&header).ok()?;
    let progress = header.get("__metadata__")?.get("progress")?.as_str()?;
    ron_options().from_str(progress).ok()
}
