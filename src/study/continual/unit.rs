//! One unit of a sequence study: a method trained along the whole sequence with one seed. At
//! every task change the agent at the end of the last task is saved (a checkpoint with the
//! method's protection: importance, PackNet's owners) and is the source of the next task; every
//! evaluation point evaluates every task of the sequence. A unit that stops (Ctrl-C, kill -9)
//! continues from its last task change, and a task is a function of that checkpoint and the
//! seed, so the record is the same.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::agent::checkpoint;
use crate::agent::session::Session;
use crate::agent::tensorboard::TrainLog;
use crate::agent::train::{EpisodeRecord, Task};
use crate::agent::{Agent, AgentConfig, Event, Outcome};
use crate::env::Registry;
use crate::study::StudyError;
use crate::study::records::UnitStatus;
use crate::transfer::TransferReport;
use crate::transfer::continual::{self as protect, Importance, Owners, Protect};
use crate::util::{FileError, to_ron, write_atomic};

use super::evaluate::{Evaluator, log_eval};
use super::preempt::{CHECKPOINT_EVERY, resume_in, save_in};
use super::sequence::{Method, Sequence, TaskInfo};

/// A unit's record (`units/<method>/seed<k>.ron`), written once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequenceRecord {
    /// The method.
    pub method: String,
    /// The seed.
    pub seed: u64,
    /// Finished, or failed with the error (the evaluations so far are kept).
    pub status: UnitStatus,
    /// The phases trained (a task of a pass over the sequence), in order.
    pub phases: Vec<PhaseRecord>,
    /// Every task's mean evaluation return at every evaluation point, in order.
    pub evals: Vec<SequenceEval>,
}

/// A phase: one task trained with the budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// The phase's position (`task + pass * tasks`).
    pub phase: usize,
    /// The task trained.
    pub task: usize,
    /// Environment steps trained.
    pub steps: u64,
    /// The transfer from the previous phase's agent (none for the first phase and for the
    /// single-task reference, which start from scratch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<TransferReport>,
    /// What the method's protection did at the phase's start and end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protect: Vec<String>,
}

/// An evaluation point: every task's mean return.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequenceEval {
    /// The phase.
    pub phase: usize,
    /// The grid step within the phase (0, every, 2 every, ..., budget).
    pub nominal: u64,
    /// Every task's mean return, in the sequence's order.
    pub returns: Vec<f64>,
}

/// What a unit's run needs besides the unit.
pub struct Context<'a> {
    /// The sequence.
    pub sequence: &'a Sequence,
    /// Its tasks.
    pub tasks: &'a [TaskInfo],
    /// The agent's hyperparameters.
    pub config: &'a AgentConfig,
    /// Where environments come from.
    pub registry: &'a Registry,
    /// Ctrl-C.
    pub stop: &'a AtomicBool,
    /// Where units write TensorBoard runs (`<method>/seed<k>`), when they log.
    pub tensorboard: Option<&'a Path>,
}

impl Context<'_> {
    /// The tasks as a network with task ids sees them, if the sequence has them.
    pub(super) fn named_tasks(&self) -> Option<crate::env::tasks::Tasks> {
        self.sequence.named_tasks(self.tasks)
    }

    /// What task `j` trains on: its environment, or (with task ids) the task in the shared spaces.
    pub(super) fn task(&self, j: usize) -> Task {
        match self.named_tasks() {
            Some(tasks) => Task::One(tasks, j),
            None => Task::Env(self.tasks[j].task.env.clone()),
        }
    }

    /// One environment of task `j`, as the agent sees it.
    pub(super) fn make(&self, j: usize) -> Result<Box<dyn crate::env::Env>, StudyError> {
        self.task(j).make(self.registry).map_err(|error| StudyError::Task { index: j, error })
    }
}

/// What a phase checkpoint holds besides the agent.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Progress {
    phases: Vec<PhaseRecord>,
    evals: Vec<SequenceEval>,
    /// Training episodes: (phase, episode).
    episodes: Vec<(usize, EpisodeRecord)>,
}

/// A method's protection as it stands between phases.
#[derive(Default)]
pub(super) struct Protection {
    importance: Importance,
    pub(super) owners: Owners,
    /// PackNet: each task's normaliser statistics at its end, named `task<j>.<name>`.
    pub(super) stats: Vec<(String, Tensor)>,
}

impl Protection {
    /// Task `j`'s normaliser statistics under their own names (none without normalisers).
    pub(super) fn stats_of(&self, j: usize) -> Vec<(String, Tensor)> {
        let prefix = format!("task{j}.");
        self.stats.iter().filter_map(|(n, t)| n.strip_prefix(&prefix).map(|n| (n.to_string(), t.shallow_clone()))).collect()
    }
}

impl Protection {
    fn tensors(&self) -> Vec<(String, Tensor)> {
        let named = |prefix: &str, list: &[(String, Tensor)]| {
            list.iter().map(|(n, t)| (format!("{prefix}.{n}"), t.shallow_clone())).collect::<Vec<_>>()
        };
        let mut out = named("importance", &self.importance);
        out.extend(named("owners", &self.owners));
        out.extend(named("stats", &self.stats));
        out
    }

    fn from_tensors(tensors: HashMap<String, Tensor>) -> Protection {
        let mut p = Protection::default();
        let mut names: Vec<_> = tensors.into_iter().collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, t) in names {
            if let Some(n) = name.strip_prefix("importance.") {
                p.importance.push((n.to_string(), t));
            } else if let Some(n) = name.strip_prefix("owners.") {
                p.owners.push((n.to_string(), t));
            } else if let Some(n) = name.strip_prefix("stats.") {
                p.stats.push((n.to_string(), t));
            }
        }
        p
    }
}

/// Where a unit's phase checkpoints live: `seed<k>.phases/phase<p>` beside its record.
pub fn phase_dir(record: &Path, phase: usize) -> PathBuf {
    record.with_extension("phases").join(format!("phase{phase}"))
}

/// How a unit's run ended.
pub enum Ran {
    /// Its record (finished or failed) and its training curve (`phase,task,step,return,length`).
    Recorded(Box<SequenceRecord>, String),
    /// Ctrl-C: the phases done are saved.
    Interrupted,
    /// Another process took the unit's claim over.
    Lost,
}

/// Runs `method` with `seed` along the sequence, from its last saved phase.
pub fn run(
    cx: &Context<'_>,
    method: &Method,
    seed: u64,
    record: &Path,
    lost: &dyn Fn() -> bool,
) -> Result<Ran, StudyError> {
    let (start, mut progress, mut protection) = latest(record, cx.sequence.phases());
    let mut failure = None;
    for phase in start..cx.sequence.phases() {
        if lost() {
            return Ok(Ran::Lost);
        }
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_phase(cx, method, seed, record, phase, &mut progress, &mut protection)
        }));
        match ran {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return Ok(Ran::Interrupted),
            Ok(Err(e)) => {
                failure = Some(format!("phase {phase}: {e}"));
                break;
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
                failure = Some(format!("phase {phase}: panicked: {}", message.unwrap_or_default()));
                break;
            }
        }
    }
    let mut csv = String::from("phase,task,step,return,length\n");
    let tasks = cx.tasks.len();
    for (phase, e) in &progress.episodes {
        csv.push_str(&format!("{phase},{},{},{},{}\n", phase % tasks, e.step, e.ret, e.len));
    }
    let status = failure.map_or(UnitStatus::Finished, UnitStatus::Failed);
    let record =
        SequenceRecord { method: method.name.clone(), seed, status, phases: progress.phases, evals: progress.evals };
    Ok(Ran::Recorded(Box::new(record), csv))
}

/// The last phase saved completely (its `progress.ron` is written last), or a fresh start. A
/// phase checkpoint that does not read is ignored with a warning: the phase runs again.
fn latest(record: &Path, phases: usize) -> (usize, Progress, Protection) {
    for phase in (0..phases).rev() {
        let dir = phase_dir(record, phase);
        if !dir.join("progress.ron").exists() {
            continue;
        }
        let read = || -> Result<(Progress, Protection), StudyError> {
            let path = dir.join("progress.ron");
            let text = std::fs::read_to_string(&path).map_err(|e| FileError::new(&path, e))?;
            let progress: Progress =
                crate::util::ron_options().from_str(&text).map_err(|e| StudyError::resume(&path, e))?;
            let file = checkpoint::read_tensors(&dir.join("protect.safetensors"))?;
            Ok((progress, Protection::from_tensors(file.tensors)))
        };
        match read() {
            Ok((progress, protection)) => return (phase + 1, progress, protection),
            Err(e) => eprintln!("warning: {e}; phase {phase} runs again"),
        }
    }
    (0, Progress::default(), Protection::default())
}

/// The agent a phase starts from: fresh for the first phase and the single-task reference, else
/// the previous phase's agent moved into this task by the method's strategy.
fn start(
    cx: &Context<'_>,
    method: &Method,
    seed: u64,
    record: &Path,
    phase: usize,
) -> Result<(Box<dyn Agent>, Option<TransferReport>), StudyError> {
    let task = &cx.tasks[phase % cx.tasks.len()];
    if phase == 0 || method.is_single() {
        let env = cx.make(phase % cx.tasks.len())?;
        let agent = cx
            .config
            .build(env.observation_space(), env.action_space(), seed)
            .map_err(|e| StudyError::Training { message: e.to_string() })?;
        return Ok((agent, None));
    }
    let previous = checkpoint::load(&phase_dir(record, phase - 1))?;
    let name = format!("phase {} ({})", phase - 1, cx.tasks[(phase - 1) % cx.tasks.len()].task.key);
    let spaces = (&previous.card.observation_space, &previous.card.action_space);
    let task_ids = cx.sequence.heads.is_some();
    let (agent, report) = hop(cx.registry, &previous, &name, &task.task.env, spaces, &method.strategy, task_ids, seed)
        .map_err(|e| StudyError::Training { message: format!("the transfer into {}: {e}", task.task.key) })?;
    Ok((agent, Some(report)))
}

/// The agent at the end of one task moved into the next by `strategy`: [`crate::transfer::prepare`]
/// onto the task's environment, or, with task ids, into a network of the same tasks' shared
/// `spaces` (every weight kept where it is: the tasks' input layers and heads too).
#[allow(clippy::too_many_arguments)]
pub(super) fn hop(
    registry: &Registry,
    previous: &checkpoint::Loaded,
    name: &str,
    env: &crate::env::EnvSpec,
    spaces: (&crate::env::Space, &crate::env::Space),
    strategy: &crate::transfer::Strategy,
    task_ids: bool,
    seed: u64,
) -> Result<(Box<dyn Agent>, TransferReport), crate::transfer::TransferError> {
    if !task_ids {
        return crate::transfer::prepare(registry, previous, name, env, strategy, None, seed);
    }
    let mut agent = previous.card.config.build(spaces.0, spaces.1, seed)?;
    let report = crate::transfer::transfer(previous, name, agent.as_mut(), env, spaces.0, spaces.1, strategy, None)?;
    Ok((agent, report))
}

/// Trains one phase, evaluating every task on the grid, and saves its checkpoint; `false` when
/// Ctrl-C stopped it (nothing of the phase is kept).
fn run_phase(
    cx: &Context<'_>,
    method: &Method,
    seed: u64,
    record: &Path,
    phase: usize,
    progress: &mut Progress,
    protection: &mut Protection,
) -> Result<bool, StudyError> {
    let failed = |e: &dyn std::fmt::Display| StudyError::Training { message: e.to_string() };
    let tasks = cx.tasks.len();
    let task = phase % tasks;
    let (mut agent, report) = start(cx, method, seed, record, phase)?;
    let mut notes = Vec::new();
    match &method.protect {
        Some(Protect::Ewc { lambda, .. } | Protect::Mas { lambda, .. }) if phase > 0 => {
            protect::anchor(agent.as_mut(), &protection.importance, *lambda);
            notes.push(format!("anchored at the previous weights, importance of {} task(s), lambda {lambda}", phase));
        }
        Some(Protect::PackNet { .. }) => {
            if protection.owners.is_empty() {
                protection.owners = protect::free_owners(agent.as_ref());
            }
            protect::freeze(agent.as_mut(), &protection.owners, task);
        }
        _ => {}
    }
    let mut evaluator = Evaluator::new(cx, seed)?;
    let (every, budget) = (cx.sequence.eval.every, cx.sequence.budget);
    let env_task = cx.task(task);
    let mut session = Session::new(cx.registry, &env_task, agent.as_mut(), budget).map_err(|e| failed(&e))?;
    // Within a task: a preemption checkpoint (at a stop, and at most every three minutes), from
    // which the task continues bit for bit; one that does not load is set aside.
    let resume_path = phase_dir(record, phase).with_extension("resume");
    let (mut evals, mut next) = match resume_in(&mut session, &resume_path) {
        Some(at) => at,
        None => {
            let first = SequenceEval {
                phase,
                nominal: 0,
                returns: evaluator.all(session.agent_mut(), method, protection, task)?,
            };
            (vec![first], every)
        }
    };
    // TensorBoard's run of the unit, its steps along the whole sequence; a folder that cannot be
    // made is a warning, not a failure.
    let mut log = cx.tensorboard.and_then(|dir| {
        let run = dir.join(&method.name).join(format!("seed{seed}"));
        let log = TrainLog::create(&run, session.agent().steps());
        let log = log.map_err(|e| eprintln!("warning: no TensorBoard log: {e}")).ok();
        log.map(|l| l.with_offset(phase as u64 * budget))
    });
    if let Some(log) = &mut log {
        evals.iter().for_each(|e| log_eval(log, cx.tasks, e));
    }
    let mut saved = std::time::Instant::now();
    loop {
        let mut due = false;
        let outcome = session
            .train(&mut |event| {
                if let Some(log) = &mut log {
                    log.event(&event);
                }
                match event {
                    Event::Progress { step } => due |= step >= next,
                    Event::Checkpoint { .. } if due || cx.stop.load(Ordering::SeqCst) => return ControlFlow::Break(()),
                    _ => {}
                }
                ControlFlow::Continue(())
            })
            .map_err(|e| failed(&e))?;
        if outcome == Outcome::Finished {
            break;
        }
        if !due {
            save_in(&session, &resume_path, &evals, next);
            return Ok(false);
        }
        let steps = session.agent().steps();
        let nominal = (steps / every * every).min(budget);
        if nominal < budget {
            let returns = evaluator.all(session.agent_mut(), method, protection, task)?;
            evals.push(SequenceEval { phase, nominal, returns });
            if let Some(log) = &mut log {
                log_eval(log, cx.tasks, evals.last().expect("just pushed"));
            }
        }
        while next <= steps {
            next += every;
        }
        let stopping = cx.stop.load(Ordering::SeqCst);
        if stopping || saved.elapsed() >= CHECKPOINT_EVERY {
            save_in(&session, &resume_path, &evals, next);
            saved = std::time::Instant::now();
        }
        if stopping {
            return Ok(false);
        }
    }
    // The end of the task: the protection takes its measure, then the last evaluation.
    match &method.protect {
        Some(p @ (Protect::Ewc { samples, .. } | Protect::Mas { samples, .. })) => {
            let states = protect::visited_states(
                cx.make(task)?.as_mut(),
                session.agent(),
                *samples,
                3_000_000 + 10_000 * seed,
            )
            .map_err(|e| failed(&e))?;
            let importance = protect::importance(session.agent(), p, &states).map_err(|e| failed(&e))?;
            let total: f64 = importance.iter().map(|(_, t)| t.sum(tch::Kind::Double).double_value(&[])).sum();
            notes.push(format!(
                "{} importance on {samples} visited states (sum {total:.4e}), added to the earlier tasks'",
                p.name()
            ));
            protect::accumulate(&mut protection.importance, importance);
        }
        Some(Protect::PackNet { keep, retrain }) => {
            let share = keep.filter(|_| task + 1 < tasks).unwrap_or(1.0 / (tasks - task) as f64);
            protect::prune(session.agent_mut(), &mut protection.owners, task, share);
            let owned: i64 =
                protection.owners.iter().map(|(_, o)| o.eq(task as f64).sum(tch::Kind::Int64).int64_value(&[])).sum();
            let retrain = retrain.unwrap_or(budget / 10);
            notes.push(format!(
                "PackNet: {owned} weights kept for this task (a share {share:.3} of the free ones), the rest set to zero; the kept \
                 ones retrained alone for {retrain} steps"
            ));
            if retrain > 0 {
                protect::retrain_only(session.agent_mut(), &protection.owners, task);
                session.extend(budget + retrain);
                let stop = cx.stop;
                let outcome = session
                    .train(&mut |event| match event {
                        Event::Checkpoint { .. } if stop.load(Ordering::SeqCst) => ControlFlow::Break(()),
                        _ => ControlFlow::Continue(()),
                    })
                    .map_err(|e| failed(&e))?;
                if outcome == Outcome::Stopped {
                    return Ok(false);
                }
            }
            let stats = protect::normalizers(session.agent());
            protection.stats.extend(stats.into_iter().map(|(n, t)| (format!("task{task}.{n}"), t)));
        }
        None => {}
    }
    let returns = evaluator.all(session.agent_mut(), method, protection, task)?;
    evals.push(SequenceEval { phase, nominal: budget, returns });
    if let Some(log) = &mut log {
        log_eval(log, cx.tasks, evals.last().expect("just pushed"));
        log.flush();
    }
    let steps = session.agent().steps();
    progress.episodes.extend(session.curve.episodes.iter().map(|e| (phase, e.clone())));
    progress.phases.push(PhaseRecord { phase, task, steps, report, protect: notes });
    progress.evals.extend(evals);
    save_phase(&session, record, phase, progress, protection)?;
    let _ = std::fs::remove_file(&resume_path);
    Ok(true)
}

/// Writes a phase's checkpoint into a temporary folder and renames it into place, its
/// `progress.ron` last.
fn save_phase(
    session: &Session<'_>,
    record: &Path,
    phase: usize,
    progress: &Progress,
    protection: &Protection,
) -> Result<(), StudyError> {
    let dir = phase_dir(record, phase);
    let tmp = dir.with_extension(format!("tmp-{}-{}", crate::util::host(), std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    session.save_run(None, format!("sequence phase {phase}"), &tmp)?;
    checkpoint::write_tensors(&tmp.join("protect.safetensors"), &protection.tensors(), HashMap::new())?;
    write_atomic(&tmp.join("progress.ron"), to_ron(progress))?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(|e| FileError::new(&dir, e))?;
    Ok(())
}
