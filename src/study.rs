//! The experiment harness: runs every (target, arm, seed) unit of an [`Experiment`] in parallel,
//! crash-safe and resumable, then summarises, plots and reports.
//!
//! A run goes in stages: the experiment is resolved once into a [`Plan`] ([`plan`]: targets,
//! arms, thresholds, random-policy returns, the source policy when it is a checkpoint); the
//! results folder is locked ([`lock`]); the source is loaded or pretrained and cached once
//! ([`source`]); the units run from the plan ([`unit`](mod@unit)) and leave records ([`records`]); the
//! summary ([`summary`]), figures ([`figures`]) and report ([`report`](mod@report)) are computed from
//! the results folder alone, which is all that [`report()`] reads.
//!
//! Results folder (`runs/<name>` unless told otherwise):
//!
//! | path | what |
//! |---|---|
//! | `experiment.ron` | the experiment as parsed (a re-run must match it) |
//! | `targets.ron` | each target's spec, map, threshold and random-policy return |
//! | `source.ron` | the source's name and training steps |
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

pub mod aggregate;
pub mod decision;
pub mod error;
pub mod experiment;
pub mod figures;
pub mod lock;
pub mod plan;
pub mod records;
pub mod report;
pub mod scores;
pub mod source;
pub mod speed;
pub mod stats;
pub mod summary;
pub mod unit;
pub mod validate;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use crate::agent::checkpoint;
use crate::env::Registry;
use crate::util::{read_to_string, ron_options, to_ron, write_atomic};

pub use error::StudyError;
pub use plan::{Arm, ArmId, Plan, TargetId, TargetInfo, arms};
pub use records::{EvalPoint, UnitResult, UnitStatus, read_units, unit_path};
pub use report::write_outputs;
pub use source::SourceRecord;
pub use summary::Summary;

use experiment::{Experiment, Source};
use lock::Lock;
use unit::{Unit, UnitContext, run_unit};

/// Options of a run.
pub struct RunOptions {
    /// The results folder.
    pub out: PathBuf,
    /// Where pretrained sources are cached, by the hash of their spec.
    pub sources: PathBuf,
    /// Units run at once [default: the number of cores].
    pub jobs: usize,
    /// No progress display and no log.
    pub quiet: bool,
}

/// How a run ended.
pub enum RunOutcome {
    /// Every unit has a record; the summary of them all.
    Complete(Box<Summary>),
    /// Ctrl-C: the finished units are saved; running again continues.
    Interrupted {
        /// Units with a record.
        done: usize,
        /// Units of the study.
        total: usize,
    },
}

/// Runs an experiment into `opts.out`, skipping the units already there, then writes the
/// summary, figures and report.
pub fn run(
    experiment: &Experiment,
    registry: &Registry,
    opts: &RunOptions,
    stop: &AtomicBool,
) -> Result<RunOutcome, StudyError> {
    let mut plan = Plan::resolve(experiment, registry)?;
    if !opts.quiet {
        for w in &plan.warnings {
            eprintln!("warning: {w}");
        }
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| crate::util::FileError::new(&opts.out, e))?;
    let _lock = Lock::take(&opts.out)?;
    let spec_path = opts.out.join("experiment.ron");
    let text = experiment.to_ron();
    match std::fs::read_to_string(&spec_path) {
        Ok(existing) if existing != text => return Err(StudyError::DifferentExperiment { dir: opts.out.clone() }),
        Ok(_) => {}
        Err(_) => write_atomic(&spec_path, &text)?,
    }
    let sources = source::obtain(&mut plan, registry, &opts.sources, opts.quiet, stop)?;
    write_atomic(&opts.out.join("targets.ron"), to_ron(&plan.targets))?;
    sources[0].record.write(&opts.out)?;

    let all: Vec<Unit<'_>> = plan
        .units()
        .map(|(target, arm, seed)| Unit {
            target,
            arm,
            seed,
            path: unit_path(&opts.out, target.target.key.as_str(), arm.id.as_str(), seed),
        })
        .collect();
    let total = all.len();
    let pending: Vec<&Unit<'_>> = all.iter().filter(|u| !u.path.exists()).collect();
    let skipped = total - pending.len();
    if !opts.quiet {
        eprintln!(
            "{}: {} targets x {} arms x {} seeds = {total} units ({skipped} already done), {} jobs -> {}",
            experiment.name,
            plan.targets.len(),
            plan.arms.len(),
            experiment.seeds,
            opts.jobs,
            opts.out.display()
        );
    }
    let bar = crate::util::progress(total as u64, opts.quiet, "units");
    bar.set_position(skipped as u64);
    let log = !opts.quiet && bar.is_hidden();
    let steps_done = AtomicU64::new(0);
    let cx = UnitContext { experiment, registry, sources: &sources, stop, steps_done: &steps_done };
    let started = Instant::now();
    let errors = Mutex::new(Vec::new());
    tch::set_num_threads(1);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(opts.jobs.max(1)).build().map_err(StudyError::Pool)?;
    pool.install(|| {
        pending.par_iter().for_each(|unit| {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let Ok((result, curve)) = run_unit(unit, &cx) else {
                return;
            };
            let written = write_atomic(&unit.path.with_extension("csv"), curve.to_csv())
                .and_then(|_| write_atomic(&unit.path, to_ron(&result)));
            if let Err(e) = written {
                errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
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
                eprintln!(
                    "[{}/{total}] {} {} seed {}: {status} ({:.1} s)",
                    bar.position(),
                    result.target,
                    result.arm,
                    result.seed,
                    result.seconds
                );
            }
        })
    });
    bar.finish_and_clear();
    if let Some(e) = errors.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().next() {
        return Err(e.into());
    }
    let units = read_units(&opts.out)?;
    let done = units.len();
    if stop.load(Ordering::SeqCst) || done < total {
        return Ok(RunOutcome::Interrupted { done, total });
    }
    let summary = summary::summarize(experiment, &plan.targets, &units, &sources[0].record);
    write_outputs(&opts.out, experiment, &summary, &units)?;
    Ok(RunOutcome::Complete(Box::new(summary)))
}

/// Reads a RON file of a results folder.
fn read_ron<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, StudyError> {
    ron_options().from_str(&read_to_string(path)?).map_err(|e| StudyError::record(path, e))
}

/// Renders summary, figures and report again from a results folder, without training.
pub fn report(out: &Path) -> Result<Summary, StudyError> {
    let _lock = Lock::take(out)?;
    let experiment: Experiment = read_ron(&out.join("experiment.ron"))?;
    experiment.check_fields()?;
    let infos: Vec<TargetInfo> = read_ron(&out.join("targets.ron"))?;
    // Normalisation divides by threshold - random: a hand-edited targets.ron must keep them apart.
    if let Some(t) =
        infos.iter().find(|t| t.threshold.partial_cmp(&t.random_return) != Some(std::cmp::Ordering::Greater))
    {
        return Err(StudyError::record(
            &out.join("targets.ron"),
            format!(
                "target {}: threshold {} is not above the random return {}",
                t.target.key, t.threshold, t.random_return
            ),
        ));
    }
    let units = read_units(out)?;
    let source = match SourceRecord::read(out)? {
        Some(record) => record,
        None => legacy_source(&experiment, &units)?,
    };
    let summary = summary::summarize(&experiment, &infos, &units, &source);
    write_outputs(out, &experiment, &summary, &units)?;
    Ok(summary)
}

/// The source of a results folder written before `source.ron` existed: its name from the units'
/// transfer reports (else the policy's folder, or `pretrained`), its steps from the policy's card
/// (an error naming the card when it is gone) or the pretraining spec.
fn legacy_source(experiment: &Experiment, units: &[UnitResult]) -> Result<SourceRecord, StudyError> {
    let (name, steps) = match &experiment.source {
        Source::Policy(dir) => (dir.display().to_string(), checkpoint::read_card(dir)?.steps),
        Source::Policies(dirs) => {
            let dir = dirs.first().ok_or_else(|| StudyError::field("source", "Policies lists no checkpoint"))?;
            (dir.display().to_string(), checkpoint::read_card(dir)?.steps)
        }
        Source::Pretrain(p) => ("pretrained".to_string(), p.steps),
    };
    let name = units.iter().find_map(|u| u.report.as_ref().map(|r| r.source.clone())).unwrap_or(name);
    Ok(SourceRecord { name, steps, replicates: Vec::new() })
}
