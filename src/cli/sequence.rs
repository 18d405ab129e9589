//! `run`, `validate` and `report` of sequence experiments (files with a `sequence:` field):
//! transfer along a sequence of tasks.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;

use crate::env::Registry;
use crate::study::continual::{self, ContinualSummary, Sequence, output};

/// `headstart validate` of a sequence file.
pub(super) fn validate(registry: &Registry, file: &Path) -> Result<()> {
    let sequence = Sequence::load(file)?;
    let checked =
        continual::sequence::check(&sequence, registry, None).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let methods: Vec<String> = sequence.methods().into_iter().map(|m| m.name).collect();
    println!(
        "{}: valid; a sequence of {} tasks ({}){}; methods: {}; seeds: {}; {} units of {} phases x {} steps",
        file.display(),
        checked.tasks.len(),
        checked.tasks.iter().map(|t| t.task.key.as_str()).collect::<Vec<_>>().join(", "),
        if sequence.repeats > 1 { format!(" x {} passes", sequence.repeats) } else { String::new() },
        methods.join(", "),
        sequence.seeds,
        methods.len() as u64 * sequence.seeds,
        sequence.phases(),
        sequence.budget
    );
    Ok(())
}

/// `headstart run` of a sequence file.
pub(super) fn run(registry: &Registry, args: &super::study::RunArgs) -> Result<()> {
    if args.workers.is_some() || args.shard.is_some() {
        anyhow::bail!(
            "{}: a sequence runs its units under claims: start more `headstart run` processes on the same --out (here or on \
             other machines) instead of --workers or --shard",
            args.file.display()
        );
    }
    let mut sequence = Sequence::load(&args.file)?;
    sequence.log.tensorboard |= args.tensorboard;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&sequence.name));
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let stop =
        super::interrupt_flag(Some("stopping: each unit keeps the task changes it saved; run again to continue"));
    let started = Instant::now();
    let timeout = std::time::Duration::from_secs(args.claim_timeout.max(1));
    let finished = continual::run(&sequence, registry, &out, (jobs, args.quiet, timeout), &stop)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    match finished {
        continual::Finished::Complete(summary) => print(&summary, &out),
        continual::Finished::Incomplete { done, total } if stop.load(std::sync::atomic::Ordering::SeqCst) => {
            anyhow::bail!(
                "interrupted: {done} of {total} units are saved in {}, the others' task changes too; run `headstart run {}` again \
             to continue",
                out.display(),
                args.file.display()
            )
        }
        continual::Finished::Incomplete { done, total } => println!(
            "{done} of {total} units are recorded in {}; other processes hold the rest, and the one that records the last \
             (or `headstart report`) writes the report",
            out.display()
        ),
    }
    if !args.quiet {
        eprintln!("({:.0} s)", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// `headstart report` of a sequence's results folder.
pub(super) fn report(dir: &Path) -> Result<()> {
    let summary = continual::report(dir)?;
    print(&summary, dir);
    Ok(())
}

fn print(summary: &ContinualSummary, out: &Path) {
    if let Some((done, total)) = summary.partial {
        println!("PARTIAL: {done} of {total} units are recorded; these numbers will change");
    }
    println!("{}", output::metrics_table(summary));
    println!("{}", output::verdict_table(summary));
    println!("report: {}", out.join("report.md").display());
}

/// `headstart status` of a sequence's results folder.
pub(super) fn status(dir: &Path, timeout: Option<u64>, all: bool) -> Result<()> {
    use continual::UnitState;
    let timeout = std::time::Duration::from_secs(timeout.unwrap_or(crate::study::claim::DEFAULT_TIMEOUT.as_secs()));
    let (sequence, units) = continual::status(dir, timeout)?;
    let count = |f: fn(&UnitState) -> bool| units.iter().filter(|(_, s)| f(s)).count();
    println!(
        "{}: {} units of {} phases: {} finished, {} failed, {} running, {} stalled, {} interrupted, {} pending",
        sequence.name,
        units.len(),
        sequence.phases(),
        count(|s| matches!(s, UnitState::Finished)),
        count(|s| matches!(s, UnitState::Failed(_))),
        count(|s| matches!(s, UnitState::Running(..))),
        count(|s| matches!(s, UnitState::Stalled(..))),
        count(|s| matches!(s, UnitState::Interrupted(_))),
        count(|s| matches!(s, UnitState::Pending)),
    );
    for (unit, state) in &units {
        let line = match state {
            UnitState::Running(owner, saved) => format!("running on {owner} ({saved} task changes saved)"),
            UnitState::Stalled(owner, saved) => {
                format!("stalled: {owner} stopped answering; the next run takes it over ({saved} task changes saved)")
            }
            UnitState::Interrupted(saved) => {
                format!("interrupted after {saved} task changes; the next run continues it")
            }
            UnitState::Failed(e) => format!("FAILED: {e}"),
            UnitState::Finished if all => "finished".into(),
            UnitState::Pending if all => "pending".into(),
            UnitState::Finished | UnitState::Pending => continue,
        };
        println!("  {unit}: {line}");
    }
    Ok(())
}
