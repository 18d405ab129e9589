//! The second stage of a run: the source policy, loaded once. A `Policy` source is the plan's;
//! a `Pretrain` source is trained once and cached under `sources/` by the hash of its spec (and
//! headstart's version), then loaded from the cache. Of several processes sharing the cache, the
//! one that claims `sources/<name>.claim` ([`super::claim`]) pretrains, into a temporary folder
//! renamed into place when complete; the others wait for it (or take the claim over if its
//! process dies). `source.ron` records the source's name and training steps in the results
//! folder, for `report`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::agent::checkpoint::{self, Loaded};
use crate::agent::sb3;
use crate::agent::session::Session;
use crate::agent::tensorboard::TrainLog;
use crate::agent::train::Task;
use crate::agent::{Event, Outcome};
use crate::env::{EnvSpec, Registry};
use crate::util::{file_safe, ron_options, sha256, to_ron};

use super::StudyError;
use super::claim::Claimer;
use super::experiment::{Experiment, Pretrain, Sb3Source, Source};

/// What `source.ron` holds: the source as the summary names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// The source's checkpoint folder, as units' transfer reports name it (the first one's when
    /// there are several).
    pub name: String,
    /// Its environment steps of training.
    pub steps: u64,
    /// With several sources (a `Pretrain` with `seeds`), every one's folder, in order: target
    /// seed `k` transferred from `replicates[k mod K]`. Empty with one source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicates: Vec<String>,
    /// In a transfer matrix, each source: its name in the matrix, its checkpoint folder, its
    /// training steps (the record's own name is then `matrix`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<(String, String, u64)>,
}

impl SourceRecord {
    /// How many sources each target seed's transfer may come from (several replicates of one
    /// source; 1 with one source, and in a matrix, where each arm has its own).
    pub fn count(&self) -> usize {
        self.replicates.len().max(1)
    }

    /// The training steps of the source a comparison's arm transferred from: its matrix source's
    /// (by name), else the study's source's.
    pub fn steps_of(&self, member: Option<&str>) -> u64 {
        member.and_then(|m| self.members.iter().find(|(n, _, _)| n == m)).map_or(self.steps, |(_, _, steps)| *steps)
    }
}

impl SourceRecord {
    /// The file in a results folder.
    pub const FILE: &'static str = "source.ron";

    /// Reads `source.ron` of a results folder; `None` when a run from before it existed made
    /// the folder.
    pub fn read(out: &Path) -> Result<Option<SourceRecord>, StudyError> {
        let path = out.join(Self::FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = crate::util::read_to_string(&path)?;
        ron_options().from_str(&text).map(Some).map_err(|e| StudyError::record(&path, e))
    }
}

/// The source policy of a run, shared by its units.
pub struct SourcePolicy {
    /// Its checkpoint folder.
    pub dir: PathBuf,
    /// Its name and training steps.
    pub record: SourceRecord,
    /// The policy. Units read it one at a time while they transfer from it (an agent is not
    /// shared between threads), each into an agent of its own.
    loaded: Mutex<Loaded>,
}

impl SourcePolicy {
    fn new(dir: PathBuf, loaded: Loaded) -> Self {
        let record =
            SourceRecord { name: dir.display().to_string(), steps: loaded.card.steps, replicates: Vec::new(), members: Vec::new() };
        SourcePolicy { dir, record, loaded: Mutex::new(loaded) }
    }

    /// The policy, for one unit's transfer. A unit that panicked while holding it left it
    /// unchanged (transfer only reads the source), so a poisoned lock is taken over.
    pub fn lock(&self) -> MutexGuard<'_, Loaded> {
        self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Imports an `Sb3` source into its cache folder ([`Sb3Source::dir`]) unless an import of the
/// same inputs is there: the zip and every file read with it (statistics, the Zoo's
/// configuration) by SHA-256, the configuration, and the environment with its parameters. The
/// environment is checked against the model's spaces, the checkpoint written to a temporary
/// folder and renamed into place (of processes that race, one rename wins and the others'
/// imports, identical, are dropped).
pub fn import_sb3(source: &Sb3Source, registry: &Registry) -> Result<PathBuf, StudyError> {
    let err = |message: String| StudyError::Source { message };
    let options = sb3::ReadOptions { vec_normalize: source.vec_normalize.clone() };
    let model = sb3::read_with(&source.model, &options).map_err(|e| err(e.to_string()))?;
    let dir = source.dir();
    let spec = match &source.env {
        Some(id) => EnvSpec::new(id),
        None => model.env_spec(registry).ok_or_else(|| {
            err(format!(
                "{}: the file name does not say which environment the model was trained on: give `env`",
                source.model.display()
            ))
        })?,
    };
    let same_inputs = |card: &checkpoint::Card| {
        card.origin.as_ref().is_some_and(|o| o.sha256 == model.sha256 && o.also_read == model.also_read)
            && card.config == model.config
            && card.env == spec
    };
    if checkpoint::read_card(&dir).is_ok_and(|card| same_inputs(&card)) {
        return Ok(dir);
    }
    let env = registry.make(&spec).map_err(|e| err(format!("{spec}: {e}")))?;
    model.check_env(env.as_ref(), &spec).map_err(|e| err(e.to_string()))?;
    let parent = dir.parent().expect("the cache folder has a parent");
    std::fs::create_dir_all(parent).map_err(|e| err(format!("{}: {e}", parent.display())))?;
    let temp = dir.with_extension(format!("tmp-{}-{}", crate::util::host(), std::process::id()));
    let _ = std::fs::remove_dir_all(&temp);
    model.save(&spec, &temp, None).map_err(|e| err(e.to_string()))?;
    // A stale import (other inputs at this path before) goes; a fresh one that another process
    // renamed into place first stays.
    if checkpoint::read_card(&dir).is_ok_and(|card| !same_inputs(&card)) {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if std::fs::rename(&temp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&temp);
    }
    checkpoint::read_card(&dir).map_err(|e| err(e.to_string()))?;
    Ok(dir)
}

/// The source policies of `experiment`: `policy` (its `Policy` source, loaded when the plan was
/// resolved) or the checkpoints it names, or the pretrained ones (one per pretraining seed; each
/// from the cache, or trained now by this process or another). Target seed `k` uses source
/// `k mod K`. `stop` interrupts pretraining and waiting.
pub fn obtain(
    experiment: &Experiment,
    mut policy: Option<Loaded>,
    registry: &Registry,
    sources: &Path,
    claimer: &Claimer,
    watch: Watch<'_>,
    stop: &AtomicBool,
) -> Result<Vec<SourcePolicy>, StudyError> {
    let quiet = watch.quiet;
    let mut out = Vec::new();
    let p = match &experiment.source {
        Source::Pretrain(p) => p,
        Source::Matrix(members) => {
            // Each source as a study of it alone would obtain it; the record names them all.
            for (_, member) in members {
                let mut single = experiment.clone();
                single.source = member.clone();
                if let Source::Sb3(model) = member {
                    import_sb3(model, registry)?;
                }
                out.extend(obtain(&single, None, registry, sources, claimer, watch, stop)?);
            }
            let names: Vec<(String, String, u64)> = members
                .iter()
                .zip(&out)
                .map(|((name, _), s)| (name.clone(), s.record.name.clone(), s.record.steps))
                .collect();
            for s in &mut out {
                s.record.members = names.clone();
            }
            return Ok(out);
        }
        source => {
            for (i, dir) in source.policy_dirs().into_iter().flatten().enumerate() {
                let loaded = match policy.take().filter(|_| i == 0) {
                    Some(loaded) => loaded,
                    None => checkpoint::load(&dir).map_err(|e| StudyError::Source { message: e.to_string() })?,
                };
                out.push(SourcePolicy::new(dir, loaded));
            }
            return Ok(with_replicates(out));
        }
    };
    for replicate in p.replicates() {
        let key = sha256(format!("{}\n{}", env!("CARGO_PKG_VERSION"), to_ron(&replicate)).as_bytes());
        let task = replicate.task()?;
        let dir =
            sources.join(format!("{}-{}-{}", replicate.algorithm.name(), file_safe(&task.nominal().id), &key[..16]));
        let mut waiting = false;
        let loaded = loop {
            if let Ok(loaded) = checkpoint::load(&dir) {
                if !quiet && !waiting {
                    eprintln!("source: cached {}", dir.display());
                }
                break loaded;
            }
            if stop.load(Ordering::SeqCst) {
                return Err(StudyError::PretrainInterrupted);
            }
            let claim_path = dir.with_extension("claim");
            let Some(_claim) = claimer.try_claim(&claim_path)? else {
                if !waiting {
                    let who = super::claim::ClaimInfo::read(&claim_path)
                        .and_then(|c| c.owner)
                        .map_or_else(|| "another process".to_string(), |o| format!("{} (process {})", o.host, o.pid));
                    eprintln!("source: waiting for {who}, which pretrains {}", dir.display());
                    waiting = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
                continue;
            };
            if checkpoint::load(&dir).is_ok() {
                continue;
            }
            // Under the claim: a folder that does not load is a save that did not finish.
            let _ = std::fs::remove_dir_all(&dir);
            let tmp = sources.join(format!(
                ".{}.{}.{}.tmp",
                dir.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
                crate::util::host(),
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&tmp);
            pretrain(experiment, &replicate, registry, (&tmp, &dir), watch, stop)?;
            std::fs::rename(&tmp, &dir).map_err(|e| crate::util::FileError::new(&dir, e))?;
        };
        out.push(SourcePolicy::new(dir, loaded));
    }
    Ok(with_replicates(out))
}

/// Several sources each name all of them in their record (what `source.ron` keeps).
fn with_replicates(mut out: Vec<SourcePolicy>) -> Vec<SourcePolicy> {
    if out.len() > 1 {
        let names: Vec<String> = out.iter().map(|s| s.record.name.clone()).collect();
        for s in &mut out {
            s.record.replicates = names.clone();
        }
    }
    out
}

/// How a process shows the sources it obtains.
#[derive(Clone, Copy, Debug)]
pub struct Watch<'a> {
    /// No progress bar.
    pub quiet: bool,
    /// Where a source this process pretrains logs its training for TensorBoard: run
    /// `source/<its cache folder's name>` in this folder.
    pub tensorboard: Option<&'a Path>,
}

/// Trains one source of `experiment` (the single-seed spec `p`) and saves it into `dirs.0`, a
/// temporary folder that the caller renames to `dirs.1`.
fn pretrain(
    experiment: &Experiment,
    p: &Pretrain,
    registry: &Registry,
    (dir, name): (&Path, &Path),
    watch: Watch<'_>,
    stop: &AtomicBool,
) -> Result<(), StudyError> {
    let task = p.task()?;
    let config = p.resolved_config(registry)?;
    let source_env = |e: crate::env::EnvError| StudyError::SourceEnv { message: e.to_string() };
    let env = task.make(registry).map_err(source_env)?;
    let (obs, act) = (env.observation_space().clone(), env.action_space().clone());
    let mut agent = config.build(&obs, &act, p.seed).map_err(|e| StudyError::Source { message: e.to_string() })?;
    eprintln!("source: pretraining {} on {task} for {} steps -> {}", p.algorithm, p.steps, name.display());
    let bar = crate::util::progress(p.steps, watch.quiet, "source");
    let mut session = Session::new(registry, &task, agent.as_mut(), p.steps).map_err(|error| StudyError::Pretrain { error })?;
    let mut log = watch.tensorboard.and_then(|tb| {
        let run = tb.join("source").join(name.file_name().unwrap_or_default());
        TrainLog::create(&run, 0).map_err(|e| eprintln!("warning: no TensorBoard log: {e}")).ok()
    });
    let outcome = session
        .train(&mut |e| {
            if let Some(log) = &mut log {
                log.event(&e);
            }
            if let Event::Progress { step } = e {
                bar.set_position(step);
            }
            if stop.load(Ordering::SeqCst) { std::ops::ControlFlow::Break(()) } else { std::ops::ControlFlow::Continue(()) }
        })
        .map_err(|error| StudyError::Pretrain { error })?;
    bar.finish_and_clear();
    if outcome == Outcome::Stopped {
        return Err(StudyError::PretrainInterrupted);
    }
    let mut eval_env = task.make(registry).map_err(source_env)?;
    let eval = crate::agent::evaluate(session.agent(), eval_env.as_mut(), 20, true, 1_000_000 + p.seed)
        .map_err(source_env)?;
    if let Some(log) = &mut log {
        log.eval(session.agent().steps(), eval.mean, eval.std, None);
        log.flush();
    }
    let produced_by = format!("headstart run (the source of experiment {:?})", experiment.name);
    session.save_run(Some(eval), produced_by, dir)?;
    drop(session);
    if let Task::Tasks(tasks) = &task {
        eprintln!("source: each of the {} tasks alone, for interference ({} steps each)", tasks.len(), p.steps / tasks.len() as u64);
        let run = (&config, p.steps, p.seed);
        super::interference::measure(registry, tasks, agent.as_ref(), run, &experiment.eval, dir, stop)?;
    }
    Ok(())
}
