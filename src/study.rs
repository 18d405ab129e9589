//! The experiment harness: runs every (target, arm, seed) unit of an [`Experiment`] in parallel,
//! crash-safe and resumable, then summarises, plots and reports.
//!
//! Results folder (`runs/<name>` unless told otherwise):
//!
//! | path | what |
//! |---|---|
//! | `experiment.ron` | the experiment as parsed (a re-run must match it) |
//! | `targets.ron` | each target's spec, map, threshold and random-policy return |
//! | `units/<target>/<arm>/seed<k>.ron` | one finished or failed unit: evaluations, transfer report, error |
//! | `units/<target>/<arm>/seed<k>.csv` | that unit's training episodes (`step,return,length`) |
//! | `evaluations.csv` | every evaluation of every finished unit, one row each (long format) |
//! | `summary.ron`, `summary.json` | metrics, intervals and verdicts ([`summary::Summary`]) |
//! | `curves-<target>.png/.svg`, `metrics.png/.svg` | figures drawn from the summary |
//! | `report.md` | setup, tables and figures |
//!
//! A unit's file is written atomically when it ends; a re-run skips the units that have one, so
//! an interrupted run loses at most the units in flight. Every unit is seeded by its seed alone
//! (its evaluations do not change its training: agents stop only at checkpoint events), so a
//! resumed run's results equal an uninterrupted run's.

pub mod experiment;
pub mod figures;
pub mod stats;
pub mod summary;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::agent::checkpoint::{self, Loaded};
use crate::agent::train::Curve;
use crate::agent::{Event, Outcome};
use crate::util::{file_safe, ron_options, sha256};
use crate::env::{EnvSpec, Registry};
use experiment::{Experiment, ResolvedTarget, Source, validate};
use crate::transfer::{Strategy, TransferReport};

pub use summary::Summary;

/// One evaluation of a unit: mean and standard deviation of the episodes' returns.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalPoint {
    /// The environment steps trained when it was taken.
    pub step: u64,
    /// The grid point it stands for: a multiple of `eval.every`, or the budget.
    pub nominal: u64,
    pub mean: f64,
    pub std: f64,
}

/// How a unit ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum UnitStatus {
    Finished,
    /// The unit's error; the other units carry on.
    Failed(String),
}

/// The record of one (target, arm, seed) run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitResult {
    pub target: String,
    pub arm: String,
    pub seed: u64,
    pub status: UnitStatus,
    pub evals: Vec<EvalPoint>,
    pub seconds: f64,
    pub steps: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<TransferReport>,
}

/// A target with what normalisation needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    #[serde(flatten)]
    pub target: ResolvedTarget,
    pub threshold: f64,
    /// The mean return of uniformly random actions (100 episodes).
    pub random_return: f64,
}

/// Options of a run.
pub struct RunOptions {
    /// The results folder.
    pub out: PathBuf,
    /// Where pretrained sources are cached, by the hash of their spec.
    pub sources: PathBuf,
    /// Units run at once [default: the number of cores].
    pub jobs: usize,
    pub quiet: bool,
}

/// How a run ended.
pub enum RunOutcome {
    Complete(Box<Summary>),
    /// Ctrl-C: the finished units are saved; running again continues.
    Interrupted { done: usize, total: usize },
}

/// Refuses a second run into the same folder while the first is alive; removed on drop.
struct Lock(PathBuf);

impl Lock {
    fn take(dir: &Path) -> Result<Lock, String> {
        let path = dir.join(".lock");
        let pid = std::process::id();
        if let Ok(text) = std::fs::read_to_string(&path) {
            let other: u32 = text.trim().parse().unwrap_or(0);
            if other != pid && Path::new(&format!("/proc/{other}")).exists() {
                return Err(format!("{}: another run (process {other}) is writing into this folder", dir.display()));
            }
            let _ = std::fs::remove_file(&path);
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| format!("{}: {e} (another run starting at the same time?)", path.display()))?;
        std::io::Write::write_all(&mut file, pid.to_string().as_bytes()).map_err(|e| e.to_string())?;
        Ok(Lock(path))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, path)).map_err(|e| format!("{}: {e}", path.display()))
}

fn to_ron<T: Serialize>(value: &T) -> String {
    ron_options().to_string_pretty(value, ron::ser::PrettyConfig::default()).expect("results serialise")
}

/// Where a unit's record lives.
pub fn unit_path(out: &Path, target: &str, arm: &str, seed: u64) -> PathBuf {
    out.join("units").join(file_safe(target)).join(file_safe(arm)).join(format!("seed{seed}.ron"))
}

/// The arms of an experiment: scratch first, then each strategy.
pub fn arms(experiment: &Experiment) -> Vec<Strategy> {
    std::iter::once(Strategy::scratch()).chain(experiment.strategies.iter().cloned()).collect()
}

/// The mean return of uniformly random actions over 100 seeded episodes.
fn random_return(registry: &Registry, spec: &EnvSpec) -> Result<f64, String> {
    let mut env = registry.make(spec).map_err(|e| e.to_string())?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    crate::env::random_policy_return(env.as_mut(), &spec.to_string(), (0..100).map(|i| 2_000_000 + i), &mut rng)
        .map_err(|e| e.to_string())
}

/// The source policy's folder: the policy's, or a pretrained one's (trained once: cached by the
/// hash of its spec). Units load it each (an agent is not shared between threads).
fn source(experiment: &Experiment, registry: &Registry, opts: &RunOptions, stop: &AtomicBool) -> Result<(Loaded, PathBuf), String> {
    let p = match &experiment.source {
        Source::Policy(dir) => {
            let loaded = checkpoint::load(dir).map_err(|e| format!("source: {e}"))?;
            return Ok((loaded, dir.clone()));
        }
        Source::Pretrain(p) => p,
    };
    let key = sha256(format!("{}\n{}", env!("CARGO_PKG_VERSION"), to_ron(p)).as_bytes());
    let task = p.task()?;
    let dir = opts.sources.join(format!("{}-{}-{}", p.algorithm.name(), file_safe(&task.nominal().id), &key[..16]));
    if let Ok(loaded) = checkpoint::load(&dir) {
        if !opts.quiet {
            eprintln!("source: cached {}", dir.display());
        }
        return Ok((loaded, dir));
    }
    let config = p.agent_config()?;
    let env = registry.make(task.nominal()).map_err(|e| e.to_string())?;
    let (obs, act) = (env.observation_space().clone(), env.action_space().clone());
    let mut agent = config.build(&obs, &act, p.seed).map_err(|e| e.to_string())?;
    eprintln!("source: pretraining {} on {task} for {} steps -> {}", p.algorithm, p.steps, dir.display());
    let bar = crate::util::progress(p.steps, opts.quiet, "source");
    let mut curve = Curve::default();
    let outcome = crate::agent::train::train(registry, &task, agent.as_mut(), p.steps, &mut curve, &mut |e| {
        if let Event::Progress { step } = e {
            bar.set_position(step);
        }
        if stop.load(Ordering::SeqCst) { std::ops::ControlFlow::Break(()) } else { std::ops::ControlFlow::Continue(()) }
    })
    .map_err(|e| format!("pretraining the source: {e}"))?;
    bar.finish_and_clear();
    if outcome == Outcome::Stopped {
        return Err("interrupted while pretraining the source (nothing saved; run again to start it over)".into());
    }
    let mut eval_env = registry.make(task.nominal()).map_err(|e| e.to_string())?;
    let eval = crate::agent::evaluate(agent.as_ref(), eval_env.as_mut(), 20, true, 1_000_000 + p.seed).map_err(|e| e.to_string())?;
    let produced_by = format!("headstart run (the source of experiment {:?})", experiment.name);
    crate::agent::train::save_run(agent.as_ref(), &task, (&obs, &act), Some(eval), &curve, produced_by, &dir)
        .map_err(|e| e.to_string())?;
    let loaded = checkpoint::load(&dir).map_err(|e| e.to_string())?;
    Ok((loaded, dir))
}

/// A unit to run.
struct Unit<'a> {
    target: &'a TargetInfo,
    arm: &'a Strategy,
    seed: u64,
    path: PathBuf,
}

struct Interrupted;

/// Runs one unit: transfer (or scratch), an evaluation before the first update and at every
/// grid point, training to the budget. Errors and panics become a failed record.
fn run_unit(
    unit: &Unit<'_>,
    experiment: &Experiment,
    registry: &Registry,
    source_dir: &Path,
    stop: &AtomicBool,
    steps_done: &AtomicU64,
) -> Result<(UnitResult, Curve), Interrupted> {
    let source_name = source_dir.display().to_string();
    let start = Instant::now();
    let mut curve = Curve::default();
    let mut evals = Vec::new();
    let mut report = None;
    let mut steps = 0;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<(), Result<String, Interrupted>> {
        let target = &unit.target.target;
        let source = checkpoint::load(source_dir).map_err(|e| Ok(e.to_string()))?;
        let (mut agent, r) = crate::transfer::prepare(registry, &source, &source_name, &target.env, unit.arm, target.map.as_ref(), unit.seed)
            .map_err(|e| Ok(e.to_string()))?;
        report = Some(r);
        let ev = &experiment.eval;
        let mut eval_env = registry.make(&target.env).map_err(|e| Ok(e.to_string()))?;
        let mut evaluate = |agent: &dyn crate::agent::Agent, nominal: u64| -> Result<EvalPoint, String> {
            let stats = crate::agent::evaluate(agent, eval_env.as_mut(), ev.episodes, ev.deterministic, 1_000_000 + 10_000 * unit.seed)
                .map_err(|e| e.to_string())?;
            if !stats.mean.is_finite() {
                return Err(format!("diverged: the evaluation return is {} at step {}", stats.mean, agent.steps()));
            }
            Ok(EvalPoint { step: agent.steps(), nominal, mean: stats.mean, std: stats.std })
        };
        evals.push(evaluate(agent.as_ref(), 0).map_err(Ok)?);
        let mut envs = registry.make_vec(&target.env, agent.config().num_envs()).map_err(|e| Ok(e.to_string()))?;
        let (every, budget) = (ev.every, experiment.budget);
        let mut next = every;
        loop {
            let mut due = false;
            let mut last = agent.steps();
            let outcome = agent
                .learn(&mut envs, budget, &mut |event| {
                    match event {
                        Event::Episode { step, episode } => {
                            curve.episodes.push(crate::agent::train::EpisodeRecord { step, ret: episode.ret, len: episode.len })
                        }
                        Event::Progress { step } => {
                            steps_done.fetch_add(step - last, Ordering::Relaxed);
                            last = step;
                            due |= step >= next;
                        }
                        Event::Checkpoint { .. } if due || stop.load(Ordering::SeqCst) => return std::ops::ControlFlow::Break(()),
                        Event::Checkpoint { .. } => {}
                    }
                    std::ops::ControlFlow::Continue(())
                })
                .map_err(|e| Ok(e.to_string()))?;
            steps = agent.steps();
            if outcome == Outcome::Stopped && !due {
                return Err(Err(Interrupted));
            }
            let nominal = if outcome == Outcome::Finished { budget } else { (steps / every * every).min(budget) };
            let point = evaluate(agent.as_ref(), nominal).map_err(Ok)?;
            match evals.last_mut() {
                Some(prev) if prev.nominal == nominal => *prev = point,
                _ => evals.push(point),
            }
            while next <= steps {
                next += every;
            }
            if outcome == Outcome::Finished {
                return Ok(());
            }
            if stop.load(Ordering::SeqCst) {
                return Err(Err(Interrupted));
            }
        }
    }));
    let status = match outcome {
        Ok(Ok(())) => UnitStatus::Finished,
        Ok(Err(Err(Interrupted))) => return Err(Interrupted),
        Ok(Err(Ok(message))) => UnitStatus::Failed(message),
        Err(panic) => UnitStatus::Failed(format!(
            "panicked: {}",
            panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
        )),
    };
    let result = UnitResult {
        target: unit.target.target.key.clone(),
        arm: unit.arm.label(),
        seed: unit.seed,
        status,
        evals,
        seconds: start.elapsed().as_secs_f64(),
        steps,
        report,
    };
    Ok((result, curve))
}

/// Reads the records of finished and failed units.
pub fn read_units(out: &Path) -> Result<Vec<UnitResult>, String> {
    let mut units = Vec::new();
    let root = out.join("units");
    let Ok(targets) = std::fs::read_dir(&root) else { return Ok(units) };
    for target in targets.flatten() {
        for arm in std::fs::read_dir(target.path()).map_err(|e| e.to_string())?.flatten() {
            for file in std::fs::read_dir(arm.path()).map_err(|e| e.to_string())?.flatten() {
                let path = file.path();
                if path.extension().is_some_and(|e| e == "ron") {
                    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                    let unit: UnitResult = ron_options().from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                    units.push(unit);
                }
            }
        }
    }
    units.sort_by(|a, b| (&a.target, &a.arm, a.seed).cmp(&(&b.target, &b.arm, b.seed)));
    Ok(units)
}

/// Runs an experiment into `opts.out`, skipping the units already there, then writes the
/// summary, figures and report.
pub fn run(experiment: &Experiment, registry: &Registry, opts: &RunOptions, stop: &AtomicBool) -> Result<RunOutcome, String> {
    let targets = validate(experiment, registry)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;
    let _lock = Lock::take(&opts.out)?;
    let spec_path = opts.out.join("experiment.ron");
    let text = experiment.to_ron();
    match std::fs::read_to_string(&spec_path) {
        Ok(existing) if existing != text => {
            return Err(format!(
                "{} holds the results of a different experiment file (its experiment.ron differs); use another --out or remove the folder",
                opts.out.display()
            ));
        }
        Ok(_) => {}
        Err(_) => write_atomic(&spec_path, &text)?,
    }
    let (source, source_dir) = source(experiment, registry, opts, stop)?;
    let source_steps = source.card.steps;
    drop(source);
    let infos: Vec<TargetInfo> = targets
        .into_iter()
        .map(|t| {
            let threshold = experiment
                .threshold
                .or_else(|| registry.entry(&t.env.id).ok().and_then(|e| e.threshold()))
                .expect("validate checked the threshold");
            let random_return = random_return(registry, &t.env)?;
            Ok(TargetInfo { target: t, threshold, random_return })
        })
        .collect::<Result<_, String>>()?;
    write_atomic(&opts.out.join("targets.ron"), &to_ron(&infos))?;

    let arms = arms(experiment);
    let all: Vec<Unit<'_>> = infos
        .iter()
        .flat_map(|t| arms.iter().flat_map(move |a| (0..experiment.seeds).map(move |seed| (t, a, seed))))
        .map(|(target, arm, seed)| Unit { target, arm, seed, path: unit_path(&opts.out, &target.target.key, &arm.label(), seed) })
        .collect();
    let total = all.len();
    let pending: Vec<&Unit<'_>> = all.iter().filter(|u| !u.path.exists()).collect();
    let skipped = total - pending.len();
    if !opts.quiet {
        eprintln!(
            "{}: {} targets x {} arms x {} seeds = {total} units ({skipped} already done), {} jobs -> {}",
            experiment.name,
            infos.len(),
            arms.len(),
            experiment.seeds,
            opts.jobs,
            opts.out.display()
        );
    }
    let bar = crate::util::progress(total as u64, opts.quiet, "units");
    bar.set_position(skipped as u64);
    let log = !opts.quiet && bar.is_hidden();
    let steps_done = AtomicU64::new(0);
    let started = Instant::now();
    let errors = Mutex::new(Vec::new());
    tch::set_num_threads(1);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(opts.jobs.max(1)).build().map_err(|e| e.to_string())?;
    pool.install(|| {
        pending.par_iter().for_each(|unit| {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let Ok((result, curve)) = run_unit(unit, experiment, registry, &source_dir, stop, &steps_done) else {
                return;
            };
            let written = write_atomic(&unit.path.with_extension("csv"), &curve.to_csv())
                .and_then(|_| write_atomic(&unit.path, &to_ron(&result)));
            if let Err(e) = written {
                errors.lock().expect("no poisoning").push(e);
            }
            bar.inc(1);
            let rate = steps_done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("{rate:.0} steps/s"));
            if log {
                let last = result.evals.last().map(|e| e.mean).unwrap_or(f64::NAN);
                let status = match &result.status {
                    UnitStatus::Finished => format!("return {last:.1}"),
                    UnitStatus::Failed(e) => format!("FAILED: {e}"),
                };
                eprintln!("[{}/{total}] {} {} seed {}: {status} ({:.1} s)", bar.position(), result.target, result.arm, result.seed, result.seconds);
            }
        })
    });
    bar.finish_and_clear();
    if let Some(e) = errors.into_inner().expect("no poisoning").into_iter().next() {
        return Err(e);
    }
    let units = read_units(&opts.out)?;
    let done = units.len();
    if stop.load(Ordering::SeqCst) || done < total {
        return Ok(RunOutcome::Interrupted { done, total });
    }
    let summary = summary::summarize(experiment, &infos, &units, &source_dir.display().to_string(), source_steps);
    write_outputs(&opts.out, experiment, &summary, &units)?;
    Ok(RunOutcome::Complete(Box::new(summary)))
}

/// Every evaluation of every finished unit, one row each, for plotting elsewhere.
fn evaluations_csv(units: &[UnitResult]) -> String {
    let mut out = String::from("target,arm,seed,step,nominal_step,mean_return,std_return\n");
    for u in units.iter().filter(|u| u.status == UnitStatus::Finished) {
        for e in &u.evals {
            out.push_str(&format!("{},{},{},{},{},{},{}\n", u.target, u.arm, u.seed, e.step, e.nominal, e.mean, e.std));
        }
    }
    out
}

/// Writes the evaluations (CSV), the summary (RON and JSON), the figures and the report.
pub fn write_outputs(out: &Path, experiment: &Experiment, summary: &Summary, units: &[UnitResult]) -> Result<(), String> {
    write_atomic(&out.join("evaluations.csv"), &evaluations_csv(units))?;
    write_atomic(&out.join("summary.ron"), &to_ron(summary))?;
    write_atomic(&out.join("summary.json"), &serde_json::to_string_pretty(summary).map_err(|e| e.to_string())?)?;
    let figures = figures::draw(out, summary)?;
    write_atomic(&out.join("report.md"), &summary::report_markdown(experiment, summary, &figures))?;
    Ok(())
}

/// Renders summary, figures and report again from a results folder, without training.
pub fn report(out: &Path) -> Result<Summary, String> {
    let _lock = Lock::take(out)?;
    let experiment: Experiment = ron_options()
        .from_str(&std::fs::read_to_string(out.join("experiment.ron")).map_err(|e| format!("{}: {e}", out.join("experiment.ron").display()))?)
        .map_err(|e| format!("{}: {e}", out.join("experiment.ron").display()))?;
    let infos: Vec<TargetInfo> = ron_options()
        .from_str(&std::fs::read_to_string(out.join("targets.ron")).map_err(|e| format!("{}: {e}", out.join("targets.ron").display()))?)
        .map_err(|e| format!("{}: {e}", out.join("targets.ron").display()))?;
    let units = read_units(out)?;
    let (source_name, source_steps) = match &experiment.source {
        Source::Policy(dir) => (dir.display().to_string(), checkpoint::read_card(dir).map(|c| c.steps).unwrap_or(0)),
        Source::Pretrain(p) => ("pretrained".to_string(), p.steps),
    };
    let source_name = units.iter().find_map(|u| u.report.as_ref().map(|r| r.source.clone())).unwrap_or(source_name);
    let summary = summary::summarize(&experiment, &infos, &units, &source_name, source_steps);
    write_outputs(out, &experiment, &summary, &units)?;
    Ok(summary)
}
