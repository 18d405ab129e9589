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
    let validated =
        study::validate::validate(&experiment, registry).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
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
    match study::run(&experiment, registry, &opts, &stop)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?
    {
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

#[derive(clap::Args)]
pub(crate) struct PowerArgs {
    /// A results folder (`runs/<name>`), e.g. of a pilot run with a few seeds.
    dir: PathBuf,
    /// The difference of the primary metric to detect (normalised units; steps for times)
    /// [default: each comparison's observed difference].
    #[arg(long)]
    effect: Option<f64>,
    /// The probability of detecting it.
    #[arg(long, default_value_t = 0.8)]
    power: f64,
}

/// `headstart power`: seeds needed, from a study's own spread.
pub(super) fn power(args: &PowerArgs) -> Result<()> {
    if !(args.power > 0.0 && args.power < 1.0) {
        anyhow::bail!("--power {}: must lie in (0, 1)", args.power);
    }
    let path = args.dir.join("summary.ron");
    let text = crate::util::read_to_string(&path)?;
    let summary: study::Summary = crate::util::ron_options()
        .from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e} (run `headstart report` to write it anew)", path.display()))?;
    let alpha = study::decision::ALPHA / summary.family.max(1) as f64;
    println!(
        "{}: {} at level {alpha:.4} (5 % over the study's {} verdicts), {:.0} % power; sd pooled over both arms",
        summary.experiment,
        summary.primary,
        summary.family,
        args.power * 100.0
    );
    println!("| target | strategy | replicates | sd | detects with them | effect | replicates needed |");
    println!("|---|---|---|---|---|---|---|");
    for t in &summary.targets {
        for c in &t.comparisons {
            let p = c.power;
            let effect = args
                .effect
                .unwrap_or_else(|| c.metrics.iter().find(|m| m.metric == c.primary).map_or(f64::NAN, |m| m.difference));
            let mde = study::stats::min_detectable_effect_of(p.design, p.sd, p.replicates, alpha, args.power);
            let needed = study::stats::replicates_needed(p.design, effect, p.sd, alpha, args.power, 10_000)
                .map_or_else(|| "more than 10000 (or no effect)".to_string(), |n| n.to_string());
            println!(
                "| {} | {} | {} {} | {:.3} | {mde:.3} | {effect:+.3} | {needed} |",
                t.key,
                c.strategy,
                p.replicates,
                p.unit(),
                p.sd
            );
        }
    }
    Ok(())
}
