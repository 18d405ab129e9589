//! A task's preemption checkpoint within a phase: saved at a stop and at most every three
//! minutes, from which the task continues bit for bit; one that does not load is set aside.

use std::path::Path;

use crate::agent::session::Session;
use crate::study::StudyError;
use crate::study::resume;
use crate::util::to_ron;

use super::unit::SequenceEval;

/// The least time between two preemption checkpoints within a task.
pub(super) const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(180);

/// Continues a task from its preemption checkpoint: the agent restored (built, transferred and
/// protected as the task started), the environments replayed; the evaluations so far and the
/// next evaluation step. `None` without a usable checkpoint.
pub(super) fn resume_in(session: &mut Session<'_>, path: &Path) -> Option<(Vec<SequenceEval>, u64)> {
    let loaded = resume::load(path).and_then(|c| {
        let Some(c) = c else { return Ok(None) };
        let evals: Vec<SequenceEval> =
            crate::util::ron_options().from_str(&c.progress.extra).map_err(|e| StudyError::resume(path, e))?;
        c.restore(session.agent_mut()).map_err(|e| StudyError::resume(path, e))?;
        let curve = crate::agent::train::Curve { episodes: c.episodes, intrinsic: Vec::new() };
        session.resume(&c.log, curve).map_err(|e| StudyError::resume(path, e))?;
        Ok(Some((evals, c.progress.next)))
    });
    loaded.unwrap_or_else(|e| {
        eprintln!("warning: {e}; the task starts over");
        let _ = std::fs::rename(path, path.with_extension("resume.damaged"));
        None
    })
}

/// Saves a task's preemption checkpoint; one that cannot be written is a warning (it only saves
/// time).
pub(super) fn save_in(session: &Session<'_>, path: &Path, evals: &[SequenceEval], next: u64) {
    let progress = resume::Progress {
        steps: session.agent().steps(),
        evals: Vec::new(),
        next,
        seconds: 0.0,
        extra: to_ron(&evals),
    };
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Err(e) = resume::save(path, session.agent(), session.log(), &session.curve.episodes, &progress) {
        eprintln!("warning: no checkpoint: {e}");
    }
}
