//! The `headstart` command line. A user with custom environments writes a few-line binary that
//! registers them and calls [`run`] (see `envs/corridor/main.rs`).
//!
//! One file per command group: `env` (`envs`, `demo`, `check`), `agent` (`train`,
//! `eval`), `transfer` (`transfer`, `suggest`, `predict`), `study` (`run`, `validate`, `report`, `power`)
//! `cluster` (`status`, `prepare`, `slurm`, and `run --workers`), `sb3` (`import`, `export`) and
//! `new` (`new env`: a crate of the user's own).
//! The commands parse arguments, call the library and print; what they compute lives below.

mod agent;
mod cluster;
mod env;
mod new;
mod sb3;
mod sequence;
mod study;
mod transfer;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::env::{EnvSpec, Registry, Variant};
use agent::{EvalArgs, TrainArgs};
use study::{PowerArgs, RunArgs};
use transfer::{SuggestArgs, TransferArgs};

#[derive(Parser)]
#[command(name = "headstart", version, about = "Transfer learning for reinforcement learning")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the registered environments with their parameters.
    Envs {
        /// Only this environment: a registered id, or a Python one (`gym:module:Id-v0`) whose
        /// constructor's parameters are read from its signature.
        id: Option<String>,
    },
    /// Step every registered environment and every variant in a folder with random actions,
    /// and report what happened.
    Demo {
        /// Episodes per environment.
        #[arg(long, default_value_t = 5)]
        episodes: usize,
        /// Seed of the first episode (later episodes continue the stream).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Folder of variant files to step too [default: envs, when it exists].
        #[arg(long)]
        variants: Option<PathBuf>,
    },
    /// Check that an environment keeps the contract agents rely on (see `check_env`).
    Check {
        #[command(flatten)]
        env: EnvArg,
    },
    /// Train an agent and save a checkpoint (weights, card, learning curve); `pretrain` is the
    /// same command (with `--objective rnd`, reward-free).
    #[command(visible_alias = "pretrain")]
    Train(TrainArgs),
    /// Evaluate a checkpoint on its environment or another one.
    Eval(EvalArgs),
    /// Start an agent for a target environment from a source policy, train it, and report what
    /// was transferred, the zero-shot return and the learning curve.
    Transfer(TransferArgs),
    /// Rank the policies in a folder for a target environment: by the transferability predictor
    /// that validated best on a transfer matrix (`predict`), else by zero-shot return.
    Suggest(SuggestArgs),
    /// Validate the transferability predictors on a finished transfer matrix (its results
    /// folder): each predictor for every cell, its rank correlation with the measured transfer.
    Predict {
        /// The results folder of a `source: Matrix([...])` study.
        dir: PathBuf,
    },
    /// Run a transfer study (an experiment file): every target, strategy and seed against
    /// scratch, then metrics, verdicts, figures and a report. Re-running continues.
    Run(RunArgs),
    /// Check an experiment file without running it.
    Validate { file: PathBuf },
    /// Render the summary, figures and report of a results folder again, without training; while
    /// a study runs, from the units finished so far (marked partial).
    Report { dir: PathBuf },
    /// Where a study stands: finished, failed, running (host, age, step), stalled and pending
    /// units, and the time left.
    Status(cluster::StatusArgs),
    /// Set up a study's results folder and pretrain its sources, once, before processes run its
    /// units (what a cluster's first job does).
    Prepare(RunArgs),
    /// Write (and with --submit, submit) the SLURM jobs of a study: a prepare job, a job array
    /// over the units and a report job that waits for them.
    Slurm(cluster::SlurmArgs),
    /// How many seeds a study needs: from a results folder (a pilot run), per comparison the
    /// smallest difference its seeds detect and the seeds an effect needs, with 80 % power.
    Power(PowerArgs),
    /// Import a pretrained model as a headstart checkpoint: `import sb3 MODEL.zip` (or an RL Zoo
    /// folder with its `vec_normalize.pkl`).
    Import(sb3::ImportArgs),
    /// Export a headstart checkpoint for another library: `export sb3 CHECKPOINT --out MODEL.zip`,
    /// which Stable-Baselines3's `PPO.load` / `DQN.load` / `SAC.load` read.
    Export(sb3::ExportArgs),
    /// Make a crate of your own: `new env NAME` creates a crate (outside this repository) whose
    /// binary is headstart's command line with your environment registered, ready to build and
    /// run without `LD_LIBRARY_PATH`.
    New(new::NewArgs),
}

/// An environment named on the command line: an id or a variant file, plus overrides.
#[derive(clap::Args)]
pub(crate) struct EnvArg {
    /// An environment id (`CartPole-v1`) or a variant file (`envs/cartpole-long-pole.ron`).
    pub(crate) env: String,
    /// A parameter override, `NAME=VALUE`; repeat for several.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
}

impl EnvArg {
    pub(crate) fn spec(&self) -> Result<EnvSpec> {
        env_spec(&self.env, &self.params)
    }
}

/// An environment id or variant file plus `NAME=VALUE` overrides.
pub(crate) fn env_spec(env: &str, params: &[String]) -> Result<EnvSpec> {
    let mut spec = if env.ends_with(".ron") { Variant::load(Path::new(env))?.env } else { EnvSpec::new(env) };
    for param in params {
        let (name, value) = param.split_once('=').with_context(|| format!("--param {param:?}: expected NAME=VALUE"))?;
        let value: f64 =
            value.trim().parse().with_context(|| format!("--param {param:?}: {value:?} is not a number"))?;
        spec.params.insert(name.trim().to_string(), value);
    }
    Ok(spec)
}

/// Parses the command line and runs it against `registry`. Errors are printed with their causes;
/// the exit code is 1 on error, 2 on a usage error.
pub fn run(registry: Registry) -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Envs { id } => env::list(&registry, id.as_deref()),
        Command::Demo { episodes, seed, variants } => env::demo(&registry, episodes, seed, variants.as_deref()),
        Command::Check { env } => env::check(&registry, &env),
        Command::Train(args) => agent::train(&registry, &args),
        Command::Eval(args) => agent::eval(&registry, &args),
        Command::Transfer(args) => transfer::transfer(&registry, &args),
        Command::Suggest(args) => transfer::suggest(&registry, &args),
        Command::Predict { dir } => transfer::predict(&registry, &dir),
        Command::Run(args) => study::run(&registry, &args),
        Command::Validate { file } => study::validate(&registry, &file),
        Command::Report { dir } => study::report(&dir),
        Command::Status(args) => cluster::status(&args),
        Command::Prepare(args) => cluster::prepare(&registry, &args),
        Command::Slurm(args) => cluster::slurm(&registry, &args),
        Command::Power(args) => study::power(&args),
        Command::Import(args) => sb3::import(&registry, &args),
        Command::Export(args) => sb3::export(&args),
        Command::New(args) => new::new(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `headstart envs | head`: the reader left; that is not an error.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A training or transfer run's `produced_by`: the command line that made it.
fn produced_by() -> String {
    format!("headstart {}", std::env::args().skip(1).collect::<Vec<_>>().join(" "))
}

/// Refuses to write a run into a folder that holds one already, unless `force` (or the folder is
/// the run being resumed). With `force` the old run's files are removed first, so that nothing of
/// it (a replay buffer, a training state, a transfer report) is left beside the new run to be
/// mistaken for its own.
fn check_out(out: &Path, force: bool, resumed: Option<&Path>) -> Result<()> {
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if resumed.is_some_and(|r| same(r, out)) {
        return Ok(());
    }
    use crate::agent::checkpoint::{CARD_FILE, REPLAY_FILE, WEIGHTS_FILE};
    use crate::agent::train::{INTRINSIC_FILE, TRAINING_FILE};
    let run_files = [CARD_FILE, WEIGHTS_FILE, REPLAY_FILE, TRAINING_FILE, "curve.csv", INTRINSIC_FILE, "transfer.ron"];
    let held: Vec<PathBuf> = run_files.iter().map(|f| out.join(f)).filter(|p| p.exists()).collect();
    if held.is_empty() {
        return Ok(());
    }
    if !force {
        anyhow::bail!(
            "{} holds a run already: pass --force to overwrite it, or --out to write elsewhere",
            out.display()
        );
    }
    for path in held {
        std::fs::remove_file(&path).with_context(|| format!("--force: removing {}", path.display()))?;
    }
    Ok(())
}

/// The error of a training run that failed part way: the agent as it was then is saved when it
/// took any step since `start` (`save` writes it), and the message says which.
fn stopped_training(
    error: impl Into<anyhow::Error>,
    start: u64,
    steps: u64,
    out: &Path,
    save: impl FnOnce() -> Result<()>,
) -> anyhow::Error {
    let error = error.into();
    if steps == start {
        return error.context(format!("training stopped at step {steps} before taking a step; nothing new was saved"));
    }
    match save() {
        Ok(()) => error.context(format!(
            "training stopped at step {steps}; the agent as it was then is saved in {}",
            out.display()
        )),
        Err(save_error) => error.context(format!(
            "training stopped at step {steps}; the agent as it was then could not be saved in {}: {save_error:#}",
            out.display()
        )),
    }
}

/// The last component of a path, for names in output.
fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "source".into())
}

/// A flag set by Ctrl-C. A second handler cannot be installed (a test binary may train twice):
/// then Ctrl-C keeps its default meaning. `message` is printed when it fires.
fn interrupt_flag(message: Option<&'static str>) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let set = flag.clone();
    let _ = ctrlc::set_handler(move || {
        if let Some(message) = message {
            eprintln!("{message}");
        }
        set.store(true, std::sync::atomic::Ordering::SeqCst)
    });
    flag
}
