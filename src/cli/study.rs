//! `run`, `validate` and `report`: transfer studies.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;

use crate::env::Registry;
use crate::study::{self, experiment::Experiment};

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The experiment file (RON).
    pub(super) file: PathBuf,
    /// The results folder [default: runs/<name>]. Any number of processes, on this machine or
    /// others sharing the folder, may run into it at once: each unit runs once.
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// Units run at once, as threads [default: the number of cores].
    #[arg(long)]
    pub(super) jobs: Option<usize>,
    /// Run the units in N worker processes instead of threads (for environments that hold a
    /// lock of their own, such as Python's); this process pretrains the sources first and
    /// writes the report at the end.
    #[arg(long, value_name = "N", conflicts_with = "jobs")]
    pub(super) workers: Option<usize>,
    /// Only the units of shard I of N (position in the plan modulo N); `auto` takes I and N
    /// from a SLURM job array, `auto/N` takes I from SLURM or a Kubernetes Indexed Job.
    #[arg(long, value_name = "I/N")]
    pub(super) shard: Option<study::Shard>,
    /// Seconds after its last heartbeat at which another process takes a claim over.
    #[arg(long, value_name = "SECS", default_value_t = study::claim::DEFAULT_TIMEOUT.as_secs())]
    pub(super) claim_timeout: u64,
    /// The least seconds between two preemption checkpoints of a unit (0: at every evaluation).
    #[arg(long, value_name = "SECS", default_value_t = 180)]
    pub(super) checkpoint_every: u64,
    /// Do not write the summary and report when the last unit finishes (a worker or an array
    /// task; `headstart report` writes them).
    #[arg(long)]
    pub(super) no_summary: bool,
    /// No progress display.
    #[arg(long, short)]
    pub(super) quiet: bool,
    /// Every unit writes TensorBoard event files into <out>/tensorboard/<target>/<arm>/seed<k>
    /// (a sequence's into <out>/tensorboard/<method>/seed<k>), as the file's
    /// `log: (tensorboard: true)`.
    #[arg(long)]
    pub(super) tensorboard: bool,
}

impl RunArgs {
    /// The experiment and the run's options.
    pub(super) fn options(&self) -> Result<(Experiment, study::RunOptions)> {
        let experiment = Experiment::load(&self.file)?;
        let out = self.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&experiment.name));
        let mut opts = study::RunOptions::new(out);
        if let Some(jobs) = self.jobs {
            opts.jobs = jobs;
        }
        opts.quiet = self.quiet;
        opts.shard = self.shard;
        opts.claim_timeout = std::time::Duration::from_secs(self.claim_timeout.max(1));
        opts.checkpoint_every = std::time::Duration::from_secs(self.checkpoint_every);
        opts.summarize = !self.no_summary;
        opts.tensorboard = self.tensorboard;
        Ok((experiment, opts))
    }
}

/// `headstart validate`: an experiment file checked without running it.
pub(super) fn validate(registry: &Registry, file: &Path) -> Result<()> {
    if study::continual::Sequence::is_sequence_file(file) {
        return super::sequence::validate(registry, file);
    }
    let experiment = Experiment::load(file)?;
    let validated =
        study::validate::validate(&experiment, registry).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    for w in &validated.warnings {
        eprintln!("warning: {w}");
    }
    let targets = validated.targets;
    let strategy_arms = experiment.strategy_arms();
    let arms = 1 + strategy_arms.len();
    println!(
        "{}: valid; targets: {} ({}); arms: {arms} (scratch, {}); seeds: {}; {} units of {} steps",
        file.display(),
        targets.len(),
        targets.iter().map(|t| t.key.as_str()).collect::<Vec<_>>().join(", "),
        strategy_arms.iter().map(|(id, _, _)| id.as_str()).collect::<Vec<_>>().join(", "),
        experiment.seeds,
        targets.len() as u64 * arms as u64 * experiment.seeds,
        experiment.budget
    );
    Ok(())
}

/// `headstart run`: a study run (or continued) into its results folder.
pub(super) fn run(registry: &Registry, args: &RunArgs) -> Result<()> {
    if study::continual::Sequence::is_sequence_file(&args.file) {
        return super::sequence::run(registry, args);
    }
    if let Some(workers) = args.workers {
        return super::cluster::run_workers(registry, args, workers);
    }
    let (experiment, opts) = args.options()?;
    // Python environments hold the GIL: threads would take turns, processes use the cores.
    let python = experiment.resolve_targets(None).is_ok_and(|t| t.iter().any(|t| t.env.id.starts_with("gym:")));
    if python && opts.jobs > 1 && args.shard.is_none() && !args.no_summary {
        if !args.quiet {
            eprintln!(
                "Python environments: the units run in {} worker processes (Python's GIL serialises threads)",
                opts.jobs
            );
        }
        return super::cluster::run_workers(registry, args, opts.jobs);
    }
    let stop = super::interrupt_flag(Some(
        "stopping: the units in flight save a checkpoint at their next update; run again to continue",
    ));
    let started = Instant::now();
    let outcome =
        study::run(&experiment, registry, &opts, &stop).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    finish(outcome, &opts.out, &args.file)?;
    if !args.quiet {
        eprintln!("({:.0} s)", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Prints how a run ended: the summary, or what is left and how to continue.
pub(super) fn finish(outcome: study::RunOutcome, out: &Path, file: &Path) -> Result<()> {
    match outcome {
        // An error, so that a scheduler sees that the task did not finish (and requeues it).
        study::RunOutcome::Interrupted { done, total } => anyhow::bail!(
            "interrupted: {done} of {total} units are saved in {}, the others' checkpoints too; run `headstart run {}` \
             again to continue",
            out.display(),
            file.display()
        ),
        study::RunOutcome::Incomplete { done, total, elsewhere } => {
            let others =
                if elsewhere > 0 { format!("; {elsewhere} are running in other processes") } else { String::new() };
            println!(
                "{done} of {total} units are recorded in {}{others}; `headstart status {}` follows them, and the \
                 process that records the last one (or `headstart report`) writes the report",
                out.display(),
                out.display()
            )
        }
        study::RunOutcome::Complete(summary) => print_summary(&summary, out),
    }
    Ok(())
}

fn print_summary(summary: &study::Summary, out: &Path) {
    if let Some(p) = summary.partial {
        println!("PARTIAL: {} of {} units have finished; these numbers will change", p.done, p.total);
    }
    println!("{}", study::report::verdict_table(summary));
    let aggregate = study::report::aggregate_table(summary);
    if !aggregate.is_empty() {
        println!("across targets:\n{aggregate}");
    }
    for t in &summary.targets {
        for c in &t.comparisons {
            let (what, baseline) = match c.baseline.as_str() {
                "scratch" => ("NEGATIVE TRANSFER", "scratch"),
                other => ("WORSE", other),
            };
            if c.verdict == study::summary::Verdict::Negative {
                let stopped = c.stopped_at().map(|s| format!("; stopped by the guard at step {s}")).unwrap_or_default();
                println!(
                    "{what}: {} on {}: its {} is significantly below {baseline}'s (Holm-corrected over the study's {} verdicts){stopped}",
                    c.strategy, t.key, c.primary, summary.family
                );
            }
            if c.verdict == study::summary::Verdict::Mixed {
                println!(
                    "MIXED: {} on {}: one metric significantly better than {baseline}'s and another significantly worse",
                    c.strategy, t.key
                );
            }
            for n in &c.notes {
                println!("{} on {}: {n}", c.label(), t.key);
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
    if dir.join("sequence.ron").exists() {
        return super::sequence::report(dir);
    }
    let summary = study::report(dir)?;
    print_summary(&summary, dir);
    Ok(())
}

#[derive(clap::Args)]
pub(crate) struct PowerArgs {
    /// A results folder (`runs/<name>`), e.g. of a pilot run with a few seeds.
    dir: PathBuf,
    /// The difference of the primary metric to detect (normalised units; steps for times)
    /// [default: the experiment's `effect`, 0.1 normalised or a tenth of the budget for times].
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
    if args.effect.is_some_and(|e| !(e.is_finite() && e > 0.0)) {
        anyhow::bail!("--effect {}: must be a positive difference", args.effect.unwrap_or_default());
    }
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
            let effect = args.effect.unwrap_or(p.effect);
            let mde = study::stats::min_detectable_effect_of(p.design, p.sd, p.replicates, alpha, args.power);
            let needed = study::stats::replicates_needed(p.design, effect, p.sd, alpha, args.power, 10_000)
                .map_or_else(|| "more than 10000".to_string(), |n| n.to_string());
            println!(
                "| {} | {} | {} {} | {:.3} | {mde:.3} | {effect:+.3} | {needed} |",
                t.key,
                c.label(),
                p.replicates,
                p.unit(),
                p.sd
            );
        }
    }
    Ok(())
}
