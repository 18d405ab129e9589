//! `run`, `validate` and `report`: transfer studies.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;

use crate::env::Registry;
use crate::study::{self, experiment::Experiment};
use crate::transfer::Strategy;

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The experiment file (RON).
    file: PathBuf,
    /// The results folder [default: runs/<name>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Units run at once [default: the number of cores].
    #[arg(long)]
    jobs: Option<usize>,
    /// No progress display.
    #[arg(long, short)]
    quiet: bool,
}


/// `headstart validate`: an experiment file checked without running it.
pub(super) fn validate(registry: &Registry, file: &Path) -> Result<()> {
    let experiment = Experiment::load(file)?;
    let validated = study::experiment::validate(&experiment, registry).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    for w in &validated.warnings {
        eprintln!("warning: {w}");
    }
    let targets = validated.targets;
    let arms = 1 + experiment.strategies.len();
    println!(
        "{}: valid; targets: {} ({}); arms: {arms} (scratch, {}); seeds: {}; {} units of {} steps",
        file.display(),
        targets.len(),
        targets.iter().map(|t| t.key.as_str()).collect::<Vec<_>>().join(", "),
        experiment.strategies.iter().map(Strategy::label).collect::<Vec<_>>().join(", "),
        experiment.seeds,
        targets.len() as u64 * arms as u64 * experiment.seeds,
        experiment.budget
    );
    Ok(())
}

/// `headstart run`: a study run (or continued) into its results folder.
pub(super) fn run(registry: &Registry, args: &RunArgs) -> Result<()> {
    let experiment = Experiment::load(&args.file)?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&experiment.name));
    let sources = out.parent().map(|p| p.join("sources")).unwrap_or_else(|| PathBuf::from("runs/sources"));
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let stop = super::interrupt_flag(Some(
        "stopping: the units in flight end at their next update and are not kept; run again to continue",
    ));
    let opts = study::RunOptions { out: out.clone(), sources, jobs, quiet: args.quiet };
    let started = Instant::now();
    match study::run(&experiment, registry, &opts, &stop).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))? {
        study::RunOutcome::Interrupted { done, total } => {
            println!(
                "interrupted: {done} of {total} units are saved in {}; run `headstart run {}` again to continue",
                out.display(),
                args.file.display()
            );
            Ok(())
        }
        study::RunOutcome::Complete(summary) => {
            print_summary(&summary, &out);
            eprintln!("({:.0} s)", started.elapsed().as_secs_f64());
            Ok(())
        }
    }
}

fn print_summary(summary: &study::Summary, out: &Path) {
    println!("{}", study::report::verdict_table(summary));
    let aggregate = study::report::aggregate_table(summary);
    if !aggregate.is_empty() {
        println!("across targets:\n{aggregate}");
    }
    for t in &summary.targets {
        for c in &t.comparisons {
            if c.verdict == study::summary::Verdict::Negative {
                println!(
                    "NEGATIVE TRANSFER: {} on {}: its {} is significantly below scratch's (Holm-corrected over the study's {} verdicts)",
                    c.strategy, t.key, c.primary, summary.family
                );
            }
            for n in &c.notes {
                println!("{} on {}: {n}", c.strategy, t.key);
            }
        }
    }
    for f in &summary.failures {
        println!("failed unit: {f}");
    }
    println!("report: {}", out.join("report.md").display());
}

/// `headstart report`: summary, figures and report rendered again from a results folder.
pub(super) fn report(dir: &Path) -> Result<()> {
    let summary = study::report(dir)?;
    print_summary(&summary, dir);
    Ok(())
}
