//! Transfer along a sequence of tasks (continual learning): a `sequence:` experiment trains
//! each method's agent on task after task, the agent at the end of one task being the source of
//! the next, evaluates every task at every evaluation point, and reports the performance matrix,
//! forgetting, backward and forward transfer, and verdicts against fine-tuning and single-task
//! training.
//!
//! The results folder: `sequence.ron` (the experiment), `tasks.ron` (thresholds and random
//! returns), `units/<method>/seed<k>.ron` (records, each written once) with `seed<k>.csv`
//! (training episodes) and `seed<k>.phases/phase<p>/` (the checkpoint at each task change),
//! `journal/`, and what [`output`] writes. Units are (method, seed) sequences, claimed like a
//! study's units, so any number of processes on any number of machines run one folder.

mod evaluate;
pub mod metrics;
pub mod output;
mod preempt;
pub mod sequence;
pub mod unit;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::env::Registry;
use crate::util::{FileError, to_ron, write_atomic};

use super::StudyError;
use super::claim::{self, Claimer};
use super::journal::Journal;
pub use metrics::ContinualSummary;
pub use sequence::{Method, Sequence, TaskInfo};
use unit::{Context, Ran, SequenceRecord};

/// The record path of a unit.
pub fn record_path(out: &Path, method: &str, seed: u64) -> PathBuf {
    out.join("units").join(method).join(format!("seed{seed}.ron"))
}

/// How a run ended.
pub enum Finished {
    /// Every unit has a record: the summary.
    Complete(Box<ContinualSummary>),
    /// Some units are not recorded (Ctrl-C, or other processes still hold them).
    Incomplete {
        /// Units recorded.
        done: usize,
        /// Units of the study.
        total: usize,
    },
}

/// Runs a sequence into `out` with `jobs` threads, beside any other processes running it into
/// the same folder; the process that finds every unit recorded writes the outputs.
pub fn run(
    sequence: &Sequence,
    registry: &Registry,
    out: &Path,
    (jobs, quiet, claim_timeout): (usize, bool, std::time::Duration),
    stop: &AtomicBool,
) -> Result<Finished, StudyError> {
    let checked = sequence::check(sequence, registry, Some(out))?;
    std::fs::create_dir_all(out).map_err(|e| FileError::new(out, e))?;
    let spec = out.join("sequence.ron");
    let text = sequence.to_ron();
    match std::fs::read_to_string(&spec) {
        Ok(existing) if existing != text => return Err(StudyError::DifferentExperiment { dir: out.to_path_buf() }),
        Ok(_) => {}
        Err(_) => write_atomic(&spec, &text)?,
    }
    let tasks_path = out.join("tasks.ron");
    let tasks_text = to_ron(&checked.tasks);
    if std::fs::read_to_string(&tasks_path).ok().as_deref() != Some(tasks_text.as_str()) {
        write_atomic(&tasks_path, tasks_text)?;
    }
    let claimer = Claimer::new(claim_timeout);
    let journal = Journal::open(out, claimer.owner())?;
    let methods = sequence.methods();
    let units: Vec<(&Method, u64, PathBuf)> = methods
        .iter()
        .flat_map(|m| (0..sequence.seeds).map(move |s| (m, s)))
        .map(|(m, s)| (m, s, record_path(out, &m.name, s)))
        .collect();
    let pending: Vec<&(&Method, u64, PathBuf)> = units.iter().filter(|u| !u.2.exists()).collect();
    if !quiet {
        eprintln!(
            "{}: {} methods x {} seeds = {} sequences of {} phases ({} tasks x {} steps), {} already done, {jobs} jobs -> {}",
            sequence.name,
            methods.len(),
            sequence.seeds,
            units.len(),
            sequence.phases(),
            sequence.sequence.len(),
            sequence.budget,
            units.len() - pending.len(),
            out.display()
        );
    }
    let tensorboard = sequence.log.tensorboard.then(|| out.join("tensorboard"));
    let (tasks, config, tensorboard) = (&checked.tasks, &checked.config, tensorboard.as_deref());
    let cx = Context { sequence, tasks, config, registry, stop, tensorboard };
    let errors = Mutex::new(Vec::new());
    tch::set_num_threads(1);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs.max(1)).build().map_err(StudyError::Pool)?;
    pool.install(|| {
        pending.par_iter().for_each(|(method, seed, path)| {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            if let Err(e) = run_claimed(&cx, method, *seed, path, (&claimer, &journal, out), quiet) {
                errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
            }
        })
    });
    if let Some(e) = errors.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().next() {
        return Err(e);
    }
    let done = units.iter().filter(|u| u.2.exists()).count();
    if done < units.len() {
        return Ok(Finished::Incomplete { done, total: units.len() });
    }
    Ok(Finished::Complete(Box::new(report(out)?)))
}

/// Claims a unit, runs it from its last task change, and publishes its record once.
fn run_claimed(
    cx: &Context<'_>,
    method: &Method,
    seed: u64,
    path: &Path,
    (claimer, journal, out): (&Claimer, &Journal, &Path),
    quiet: bool,
) -> Result<(), StudyError> {
    let Some(claim) = claimer.try_claim(&claim::claim_path(path))? else { return Ok(()) };
    if path.exists() {
        return Ok(());
    }
    let name = path.strip_prefix(out).unwrap_or(path).display().to_string();
    journal.write("claimed", &name, "")?;
    let started = std::time::Instant::now();
    match unit::run(cx, method, seed, path, &|| claim.is_lost())? {
        Ran::Interrupted => Ok(journal.write("stopped", &name, "")?),
        Ran::Lost => Ok(journal.write("lost", &name, "")?),
        Ran::Recorded(record, csv) => {
            write_atomic(&path.with_extension("csv"), csv)?;
            let published = claim::publish_once(path, to_ron(&record))?;
            let seconds = started.elapsed().as_secs_f64();
            journal.write(if published { "recorded" } else { "duplicate" }, &name, format!("{seconds:.3}"))?;
            // The agent at the end of the sequence stays; the earlier task changes served the run.
            let last = unit::phase_dir(path, cx.sequence.phases() - 1);
            let entries = std::fs::read_dir(path.with_extension("phases")).into_iter().flatten().flatten();
            for dir in entries.map(|e| e.path()).filter(|p| *p != last) {
                let _ = std::fs::remove_dir_all(dir);
            }
            if !quiet {
                let status = match &record.status {
                    super::UnitStatus::Failed(e) => format!("FAILED: {e}"),
                    _ => format!("{} phases", record.phases.len()),
                };
                eprintln!("{} seed {seed}: {status} ({seconds:.1} s)", method.name);
            }
            Ok(())
        }
    }
}

/// The records of a results folder.
pub fn read_records(out: &Path) -> Result<Vec<SequenceRecord>, StudyError> {
    let mut records = Vec::new();
    let units = out.join("units");
    let Ok(methods) = std::fs::read_dir(&units) else { return Ok(records) };
    let mut paths: Vec<PathBuf> = Vec::new();
    for dir in methods.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
        let entries = std::fs::read_dir(&dir).map_err(|e| FileError::new(&dir, e))?;
        paths.extend(entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "ron")));
    }
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| FileError::new(&path, e))?;
        let record: SequenceRecord = crate::util::ron_options()
            .from_str(&text)
            .map_err(|e| StudyError::Record { path: path.clone(), message: e.to_string() })?;
        records.push(record);
    }
    Ok(records)
}

/// Summarises a results folder and writes its outputs (at any moment: partial while units
/// are missing).
pub fn report(out: &Path) -> Result<ContinualSummary, StudyError> {
    let read = |name: &str| -> Result<String, StudyError> {
        let path = out.join(name);
        std::fs::read_to_string(&path).map_err(|e| StudyError::from(FileError::new(&path, e)))
    };
    let parse = |name: &str, text: &str| StudyError::Record { path: out.join(name), message: text.to_string() };
    let sequence: Sequence = crate::util::ron_options()
        .from_str(&read("sequence.ron")?)
        .map_err(|e| parse("sequence.ron", &e.to_string()))?;
    let tasks: Vec<TaskInfo> =
        crate::util::ron_options().from_str(&read("tasks.ron")?).map_err(|e| parse("tasks.ron", &e.to_string()))?;
    let records = read_records(out)?;
    let methods: Vec<String> = sequence.methods().into_iter().map(|m| m.name).collect();
    let shape = metrics::Shape { tasks: tasks.len(), phases: sequence.phases(), budget: sequence.budget };
    let mut summary = metrics::summarize(&methods, &records, &tasks, shape);
    let total = methods.len() * sequence.seeds as usize;
    summary.partial = (records.len() < total).then_some((records.len(), total));
    output::write(out, &sequence, &tasks, &records, &summary)?;
    Ok(summary)
}

/// Where a sequence's unit stands.
#[derive(Clone, Debug, PartialEq)]
pub enum UnitState {
    /// Recorded.
    Finished,
    /// Recorded as failed, with the error.
    Failed(String),
    /// A live process holds it: its owner (`host:pid`), and the task changes saved.
    Running(String, usize),
    /// Its process stopped answering; the next run takes it over from the task changes saved.
    Stalled(String, usize),
    /// Nobody holds it; the next run continues it from the task changes saved.
    Interrupted(usize),
    /// Not started.
    Pending,
}

/// Every unit of the sequence in `out` with its state, from the folder alone (records, claims
/// whose heartbeat is older than `timeout` counting as stalled, phase checkpoints).
pub fn status(out: &Path, timeout: std::time::Duration) -> Result<(Sequence, Vec<(String, UnitState)>), StudyError> {
    let path = out.join("sequence.ron");
    let text = std::fs::read_to_string(&path).map_err(|e| FileError::new(&path, e))?;
    let sequence: Sequence =
        crate::util::ron_options().from_str(&text).map_err(|e| StudyError::Record { path, message: e.to_string() })?;
    let records = read_records(out)?;
    let mut units = Vec::new();
    for method in sequence.methods() {
        for seed in 0..sequence.seeds {
            let path = record_path(out, &method.name, seed);
            let saved =
                (0..sequence.phases()).filter(|p| unit::phase_dir(&path, *p).join("progress.ron").exists()).count();
            let within = (0..sequence.phases()).any(|p| unit::phase_dir(&path, p).with_extension("resume").exists());
            let record = records.iter().find(|r| r.method == method.name && r.seed == seed);
            let state = match (record, claim::ClaimInfo::read(&claim::claim_path(&path))) {
                (Some(r), _) => match &r.status {
                    super::UnitStatus::Failed(e) => UnitState::Failed(e.clone()),
                    _ => UnitState::Finished,
                },
                (None, Some(c)) => {
                    let owner = c.owner.as_ref().map_or_else(|| "?".to_string(), |o| format!("{}:{}", o.host, o.pid));
                    if c.is_stale(timeout) {
                        UnitState::Stalled(owner, saved)
                    } else {
                        UnitState::Running(owner, saved)
                    }
                }
                (None, None) if saved > 0 || within => UnitState::Interrupted(saved),
                (None, None) => UnitState::Pending,
            };
            units.push((format!("{}/seed{seed}", method.name), state));
        }
    }
    Ok((sequence, units))
}
