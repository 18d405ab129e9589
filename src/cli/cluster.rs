//! `status`, `prepare`, `slurm` and `run --workers`: a study beyond one process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::study::{RunArgs, finish};
use crate::env::Registry;
use crate::study::slurm::SlurmOptions;
use crate::study::status::State;
use crate::study::{self, plan::Plan};

#[derive(clap::Args)]
pub(crate) struct StatusArgs {
    /// The results folder.
    dir: PathBuf,
    /// List every unit, not only those running, stalled, interrupted or failed.
    #[arg(long)]
    all: bool,
    /// Seconds after their last heartbeat at which claims count as stalled (as `run
    /// --claim-timeout`).
    #[arg(long, value_name = "SECS")]
    claim_timeout: Option<u64>,
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// `headstart status`: where a study stands.
pub(super) fn status(args: &StatusArgs) -> Result<()> {
    if args.dir.join("sequence.ron").exists() {
        return super::sequence::status(&args.dir, args.claim_timeout, args.all);
    }
    let st = study::status::status(&args.dir, args.claim_timeout.map(Duration::from_secs))?;
    let total = st.units.len();
    let count = |f: fn(&State) -> bool| st.count(f);
    let stopped = count(|s| matches!(s, State::Stopped { .. }));
    println!(
        "{}: {total} units: {} finished, {}{} failed, {} running, {} stalled, {} interrupted, {} pending",
        st.experiment,
        count(|s| matches!(s, State::Finished)),
        if stopped > 0 { format!("{stopped} stopped by the guard, ") } else { String::new() },
        count(|s| matches!(s, State::Failed(_))),
        count(|s| matches!(s, State::Running { .. })),
        count(|s| matches!(s, State::Stalled { .. })),
        count(|s| matches!(s, State::Interrupted { .. })),
        count(|s| matches!(s, State::Pending)),
    );
    for (target, decided, looks, stopped) in &st.guards {
        let stops: Vec<String> = stopped.iter().map(|(arm, step)| format!("{arm} stopped at step {step}")).collect();
        let stops = if stops.is_empty() { String::new() } else { format!("; {}", stops.join(", ")) };
        println!("  guard on {target}: {decided} of {looks} looks decided{stops}");
    }
    let owner = |o: &Option<(String, u32)>| o.as_ref().map_or_else(|| "?".into(), |(h, p)| format!("{h}:{p}"));
    let at = |step: &Option<u64>| step.map_or_else(String::new, |s| format!(", checkpoint at step {s}/{}", st.budget));
    for (unit, state) in &st.units {
        let line = match state {
            State::Running { owner: o, heartbeat, step } => {
                format!("running on {} (heartbeat {} ago{})", owner(o), human(*heartbeat), at(step))
            }
            State::Stalled { owner: o, step } => {
                format!("stalled: {} stopped answering; the next run takes it over{}", owner(o), at(step))
            }
            State::Interrupted { step } => {
                format!("interrupted at step {step}/{}; the next run continues it", st.budget)
            }
            State::Failed(e) => format!("FAILED: {e}"),
            State::Stopped { step } if args.all => format!("stopped by the guard at step {step}/{}", st.budget),
            State::Finished if args.all => "finished".into(),
            State::Pending if args.all => "pending".into(),
            State::Finished | State::Pending | State::Stopped { .. } => continue,
        };
        println!("  {unit}: {line}");
    }
    match (st.mean_seconds, st.eta) {
        (Some(mean), Some(eta)) => println!("{mean:.1} s a unit; about {} left at this pace", human(eta)),
        (Some(mean), None) if count(|s| matches!(s, State::Finished | State::Failed(_) | State::Stopped { .. })) < total => {
            println!("{mean:.1} s a unit; nothing is running (run `headstart run` to continue)")
        }
        _ => {}
    }
    Ok(())
}

/// `headstart prepare`: the results folder set up and the sources pretrained.
pub(super) fn prepare(registry: &Registry, args: &RunArgs) -> Result<()> {
    let (experiment, opts) = args.options()?;
    let stop = super::interrupt_flag(None);
    let units = study::prepare(&experiment, registry, &opts, &stop)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    println!("{}: ready, {units} units, sources in {}", opts.out.display(), opts.sources.display());
    Ok(())
}

/// `run --workers N`: the sources prepared here, the units in N processes of this binary (each
/// one unit at a time, claiming them), the report at the end.
pub(super) fn run_workers(registry: &Registry, args: &RunArgs, workers: usize) -> Result<()> {
    if workers == 0 {
        bail!("--workers 0: give at least one worker");
    }
    let (experiment, opts) = args.options()?;
    let stop =
        super::interrupt_flag(Some("stopping: the workers save their units' checkpoints; run again to continue"));
    let total = study::prepare(&experiment, registry, &opts, &stop)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let exe = std::env::current_exe().context("the path of this program")?;
    let mut command = Command::new(exe);
    command.arg("run").arg(&args.file).arg("--out").arg(&opts.out).args(["--jobs", "1", "--no-summary", "--quiet"]);
    // This process reports; the workers' own summaries of where they stopped would only repeat it.
    command.stdout(std::process::Stdio::null());
    command.arg("--claim-timeout").arg(args.claim_timeout.to_string());
    command.arg("--checkpoint-every").arg(args.checkpoint_every.to_string());
    if let Some(shard) = args.shard {
        command.arg("--shard").arg(shard.to_string());
    }
    let mut children = Vec::with_capacity(workers);
    for _ in 0..workers {
        children.push(command.spawn().context("starting a worker process")?);
    }
    if !args.quiet {
        eprintln!("{}: {total} units in {workers} worker processes -> {}", experiment.name, opts.out.display());
    }
    let bar = crate::util::progress(total as u64, args.quiet, "units");
    let mut failed = 0;
    // This process writes the partial reports while the workers train (as `run` does).
    let (reported, mut seen) = (std::sync::Mutex::new((std::time::Instant::now(), Duration::ZERO)), 0);
    for mut child in children {
        loop {
            if let Some(code) = child.try_wait()? {
                failed += usize::from(!code.success());
                break;
            }
            let done = study::read_units(&opts.out).map_or(0, |u| u.len());
            bar.set_position(done as u64);
            if done > seen && done < total {
                study::report_partial(&opts.out, &reported);
                seen = done;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    bar.finish_and_clear();
    let done = study::read_units(&opts.out)?.len();
    if stop.load(Ordering::SeqCst) || done < total {
        let outcome = if stop.load(Ordering::SeqCst) {
            study::RunOutcome::Interrupted { done, total }
        } else {
            study::RunOutcome::Incomplete { done, total, elsewhere: 0 }
        };
        finish(outcome, &opts.out, &args.file)?;
        if failed > 0 {
            bail!("{failed} of {workers} workers failed (their errors are above)");
        }
        return Ok(());
    }
    let summary = study::report(&opts.out)?;
    finish(study::RunOutcome::Complete(Box::new(summary)), &opts.out, &args.file)
}

#[derive(clap::Args)]
pub(crate) struct SlurmArgs {
    /// The experiment file (RON).
    file: PathBuf,
    /// The results folder, on a filesystem the compute nodes share [default: runs/<name>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Array tasks run at once.
    #[arg(long, value_name = "K")]
    array_parallel: Option<usize>,
    /// Time limit of each job (`--time` of sbatch, e.g. 04:00:00).
    #[arg(long)]
    time: Option<String>,
    /// The partition.
    #[arg(long)]
    partition: Option<String>,
    /// A further sbatch option for every job, e.g. `--sbatch=--account=rl`; repeat for several.
    #[arg(long = "sbatch", value_name = "OPTION")]
    extra: Vec<String>,
    /// The least seconds between two checkpoints of a unit.
    #[arg(long, value_name = "SECS", default_value_t = 180)]
    checkpoint_every: u64,
    /// Seconds after its last heartbeat at which another task takes a claim over.
    #[arg(long, value_name = "SECS", default_value_t = study::claim::DEFAULT_TIMEOUT.as_secs())]
    claim_timeout: u64,
    /// Submit the jobs with sbatch (else only write the scripts).
    #[arg(long)]
    submit: bool,
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("{}: its absolute path", path.display()))
}

/// `headstart slurm`: the sbatch scripts of a study, and with `--submit` the jobs.
pub(super) fn slurm(registry: &Registry, args: &SlurmArgs) -> Result<()> {
    let experiment = study::experiment::Experiment::load(&args.file)?;
    let out = absolute(&args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&experiment.name)))?;
    let plan = Plan::resolve_in(&experiment, registry, Some(&out))
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let options = SlurmOptions {
        name: experiment.name.clone(),
        exe: std::env::current_exe().context("the path of this program")?,
        file: absolute(&args.file)?,
        out: out.clone(),
        workdir: std::env::current_dir().context("the working folder")?,
        units: plan.units().len(),
        array_parallel: args.array_parallel,
        time: args.time.clone(),
        partition: args.partition.clone(),
        extra: args.extra.clone(),
        checkpoint_every: args.checkpoint_every,
        claim_timeout: args.claim_timeout,
    };
    let jobs = options.scripts();
    let dir = out.join("slurm");
    let scripts = [("prepare.sbatch", &jobs.prepare), ("units.sbatch", &jobs.units), ("report.sbatch", &jobs.report)];
    for (name, text) in scripts {
        crate::util::write_atomic(&dir.join(name), text)?;
    }
    println!(
        "{}: {} units in an array of {} tasks; scripts in {}",
        experiment.name,
        options.units,
        jobs.tasks,
        dir.display()
    );
    if !args.submit {
        println!(
            "submit them in order, each after the previous one succeeds:\n  a=$(sbatch --parsable {0}/prepare.sbatch)\n  \
             b=$(sbatch --parsable --dependency=afterok:$a {0}/units.sbatch)\n  \
             sbatch --dependency=afterok:$b {0}/report.sbatch\n(or run `headstart slurm ... --submit`)",
            dir.display()
        );
        return Ok(());
    }
    let mut previous: Option<String> = None;
    let mut ids = Vec::new();
    for (name, _) in scripts {
        let mut sbatch = Command::new("sbatch");
        sbatch.arg("--parsable");
        if let Some(id) = &previous {
            sbatch.arg(format!("--dependency=afterok:{id}"));
        }
        let output = sbatch.arg(dir.join(name)).output().context("running sbatch (is SLURM installed here?)")?;
        if !output.status.success() {
            bail!("sbatch {name}: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let id = text.trim().split(';').next().unwrap_or("").to_string();
        if id.is_empty() {
            bail!("sbatch {name} printed no job id");
        }
        ids.push((name.trim_end_matches(".sbatch"), id.clone()));
        previous = Some(id);
    }
    for (job, id) in &ids {
        println!("{job}: job {id}");
    }
    println!(
        "follow: squeue -j {} ; headstart status {}\n(a job left PENDING with reason DependencyNeverSatisfied means the one \
         before it failed: see {}/*.out, fix, and run this again; finished units are kept)",
        ids.iter().map(|(_, id)| id.as_str()).collect::<Vec<_>>().join(","),
        out.display(),
        dir.display()
    );
    Ok(())
}
