//! The `headstart` command line. A user with custom environments writes a few-line binary that
//! registers them and calls [`run`] (see `envs/corridor/main.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::agent::{self, Agent, AgentConfig, Algo, Event, Outcome, evaluate};
use crate::checkpoint::{self, CardInfo};
use crate::env::{Env, EnvSpec, Mixture, Registry, Space, Variant, check_env};
use crate::experiment::Experiment;
use crate::harness;
use crate::train::{Curve, Task};
use crate::transfer::{self as xfer, Map, Strategy};

#[derive(Parser)]
#[command(name = "headstart", version, about = "Transfer learning for reinforcement learning")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the registered environments with their parameters.
    Envs,
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
    /// Train an agent and save a checkpoint (weights, card, learning curve).
    Train(TrainArgs),
    /// Evaluate a checkpoint on its environment or another one.
    Eval(EvalArgs),
    /// Start an agent for a target environment from a source policy, train it, and report what
    /// was transferred, the zero-shot return and the learning curve.
    Transfer(TransferArgs),
    /// Rank the policies in a folder by their zero-shot return on a target environment.
    Suggest(SuggestArgs),
    /// Run a transfer study (an experiment file): every target, strategy and seed against
    /// scratch, then metrics, verdicts, figures and a report. Re-running continues.
    Run(RunArgs),
    /// Check an experiment file without running it.
    Validate {
        file: PathBuf,
    },
    /// Render the summary, figures and report of a results folder again, without training.
    Report {
        dir: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
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

#[derive(clap::Args)]
struct TransferArgs {
    /// The source policy: a checkpoint folder (`policies/cartpole-ppo`).
    source: PathBuf,
    /// The target: an environment id or variant file.
    target: String,
    /// A parameter override of the target, `NAME=VALUE`; repeat for several.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// `finetune`, `scratch`, a strategy file (`.ron`) or a strategy in RON
    /// (`(freeze: ["actor.trunk"], freeze_until: 20000)`).
    #[arg(long, default_value = "finetune")]
    strategy: String,
    /// A map file (RON, `(obs: Index([...]), actions: [...])`) [default: the one the target's
    /// variant file declares for the source's environment, if any].
    #[arg(long)]
    map: Option<PathBuf>,
    /// Target environment steps [default: the RL Zoo budget of the target's id].
    #[arg(long)]
    steps: Option<u64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The run folder [default: runs/transfer-<source>-<target>-<strategy>-seed<seed>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Deterministic evaluation episodes, zero-shot and after training.
    #[arg(long, default_value_t = 20)]
    eval_episodes: usize,
    #[arg(long, default_value_t = 1)]
    threads: i32,
    #[arg(long, short)]
    quiet: bool,
}

#[derive(clap::Args)]
struct SuggestArgs {
    #[command(flatten)]
    target: EnvArg,
    /// The folder of policies.
    #[arg(long, default_value = "policies")]
    policies: PathBuf,
    /// Deterministic evaluation episodes per policy.
    #[arg(long, default_value_t = 20)]
    episodes: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// The algorithm.
    #[arg(long, value_enum)]
    algo: Algo,
    /// An environment id or variant file [default with --resume: the checkpoint's].
    #[arg(required_unless_present = "resume")]
    env: Option<String>,
    /// A parameter override, `NAME=VALUE`; repeat for several.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Hyperparameters: a RON file (`Ppo(n_steps: 32, ...)`) [default: the RL Zoo preset for the
    /// environment's id, else the algorithm's defaults].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Use the RL Zoo preset of another environment id.
    #[arg(long, conflicts_with = "config")]
    preset: Option<String>,
    /// Environment steps [default: the preset's budget].
    #[arg(long)]
    steps: Option<u64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The checkpoint folder [default: runs/<algo>-<env>-seed<seed>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue training the checkpoint in this folder (up to --steps in all).
    #[arg(long, conflicts_with_all = ["config", "preset"])]
    resume: Option<PathBuf>,
    /// Deterministic evaluation episodes after training.
    #[arg(long, default_value_t = 20)]
    eval_episodes: usize,
    /// libtorch threads (1 makes runs reproducible bit for bit).
    #[arg(long, default_value_t = 1)]
    threads: i32,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Multitask training: each episode draws the environment or one of these (ids or variant
    /// files); repeat for several.
    #[arg(long = "mix", value_name = "ENV")]
    mix: Vec<String>,
    /// Domain randomisation: each episode draws parameter NAME uniformly from [LO, HI]; repeat
    /// for several.
    #[arg(long, value_name = "NAME=LO:HI")]
    randomize: Vec<String>,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// The checkpoint folder.
    checkpoint: PathBuf,
    /// An environment id or variant file [default: the checkpoint's environment].
    env: Option<String>,
    /// A parameter override, `NAME=VALUE`; repeat for several.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    #[arg(long, default_value_t = 20)]
    episodes: usize,
    /// Sample actions instead of taking the greedy / mean action.
    #[arg(long)]
    stochastic: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// An environment named on the command line: an id or a variant file, plus overrides.
#[derive(clap::Args)]
struct EnvArg {
    /// An environment id (`CartPole-v1`) or a variant file (`envs/cartpole-long-pole.ron`).
    env: String,
    /// A parameter override, `NAME=VALUE`; repeat for several.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
}

impl EnvArg {
    fn spec(&self) -> Result<EnvSpec> {
        env_spec(&self.env, &self.params)
    }
}

/// An environment id or variant file plus `NAME=VALUE` overrides.
fn env_spec(env: &str, params: &[String]) -> Result<EnvSpec> {
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
        Command::Envs => list_envs(&registry),
        Command::Demo { episodes, seed, variants } => demo(&registry, episodes, seed, variants.as_deref()),
        Command::Check { env } => check(&registry, &env),
        Command::Train(args) => train(&registry, &args),
        Command::Eval(args) => eval(&registry, &args),
        Command::Transfer(args) => transfer(&registry, &args),
        Command::Suggest(args) => suggest(&registry, &args),
        Command::Run(args) => run_experiment(&registry, &args),
        Command::Validate { file } => validate_experiment(&registry, &file),
        Command::Report { dir } => report(&dir),
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

fn list_envs(registry: &Registry) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for id in registry.ids() {
        let entry = registry.entry(id)?;
        let env = registry.make(&EnvSpec::new(id))?;
        writeln!(out, "{id}: {}", entry.description())?;
        writeln!(out, "  observation {}", env.observation_space())?;
        writeln!(out, "  action      {}", env.action_space())?;
        let limit = entry.episode_limit().map_or("none".into(), |l| l.to_string());
        let threshold = entry.threshold().map_or("none".into(), |t| t.to_string());
        writeln!(out, "  episode limit {limit}, solved at {threshold}")?;
        for p in entry.param_specs() {
            writeln!(out, "  {:<24} {:<12} {:<18} {}", p.name, p.default, p.bound.to_string(), p.doc)?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn demo(registry: &Registry, episodes: usize, seed: u64, variants_dir: Option<&Path>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut specs: Vec<(String, EnvSpec)> = registry.ids().map(|id| (id.to_string(), EnvSpec::new(id))).collect();
    let default_dir = Path::new("envs");
    if let Some(variants_dir) = variants_dir.or(default_dir.is_dir().then_some(default_dir)) {
        let mut files: Vec<PathBuf> = std::fs::read_dir(variants_dir)
            .with_context(|| format!("reading {}", variants_dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "ron"))
            .collect();
        files.sort();
        for file in files {
            let variant = Variant::load(&file)?;
            specs.push((format!("{} ({})", variant.name, file.display()), variant.env));
        }
    }
    writeln!(
        out,
        "Stepping {} environments with uniformly random actions, {episodes} episodes each, seed {seed}:\n",
        specs.len()
    )?;
    let width = specs.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    writeln!(
        out,
        "{:<width$} {:>9} {:>11} {:>9} {:>12}",
        "environment", "episodes", "mean return", "mean len", "steps/s"
    )?;
    for (name, spec) in specs {
        let mut env = registry.make(&spec).with_context(|| format!("making {name}"))?;
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut total_return, mut total_steps) = (0.0, 0usize);
        let start = Instant::now();
        for episode in 0..episodes {
            env.reset(if episode == 0 { Some(seed) } else { None })?;
            loop {
                let action = env.action_space().sample(&mut rng);
                let step = env.step(&action)?;
                total_return += step.reward;
                total_steps += 1;
                if step.done() {
                    break;
                }
            }
        }
        let rate = total_steps as f64 / start.elapsed().as_secs_f64();
        let n = episodes.max(1) as f64;
        writeln!(
            out,
            "{name:<width$} {episodes:>9} {:>11.1} {:>9.1} {rate:>12.0}",
            total_return / n,
            total_steps as f64 / n
        )?;
    }
    Ok(())
}

fn check(registry: &Registry, arg: &EnvArg) -> Result<()> {
    let spec = arg.spec()?;
    // The registry's guard would hide a missing action check: check the bare environment.
    let mut env = registry.make_bare(&spec)?;
    match check_env(&mut env) {
        Ok(()) => {
            println!("{spec}: all checks passed");
            Ok(())
        }
        Err(failure) => bail!("{spec}: {failure}"),
    }
}

/// Where the hyperparameters of a training run come from, and its default budget.
fn training_config(args: &TrainArgs, spec: &EnvSpec) -> Result<(AgentConfig, Option<u64>, String)> {
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let config = AgentConfig::from_ron(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if config.algo() != args.algo {
            bail!("{}: a {} configuration, but --algo is {}", path.display(), config.algo(), args.algo);
        }
        return Ok((config, None, path.display().to_string()));
    }
    let id = args.preset.as_deref().unwrap_or(&spec.id);
    match agent::presets::get(args.algo, id) {
        Some(preset) => Ok((preset.config, Some(preset.steps), format!("RL Zoo preset {} {id}", args.algo))),
        None if args.preset.is_some() => {
            let known: Vec<String> = agent::presets::all(args.algo).into_keys().collect();
            bail!("--preset {id}: no {} preset for that id (presets: {})", args.algo, known.join(", "))
        }
        None => Ok((AgentConfig::default_for(args.algo), None, format!("{} defaults", args.algo))),
    }
}

/// The training task the arguments describe: the environment, or a mixture with it.
fn training_task(spec: &EnvSpec, args: &TrainArgs) -> Result<Task> {
    if args.mix.is_empty() && args.randomize.is_empty() {
        return Ok(Task::Env(spec.clone()));
    }
    let mut variants = vec![spec.clone()];
    for env in &args.mix {
        variants.push(env_spec(env, &[])?);
    }
    let mut randomize = std::collections::BTreeMap::new();
    for r in &args.randomize {
        let parsed = r.split_once('=').and_then(|(name, range)| {
            let (lo, hi) = range.split_once(':')?;
            Some((name.trim().to_string(), (lo.trim().parse().ok()?, hi.trim().parse().ok()?)))
        });
        let (name, range) = parsed.with_context(|| format!("--randomize {r:?}: expected NAME=LO:HI"))?;
        randomize.insert(name, range);
    }
    Ok(Task::Mixture(Mixture { variants, randomize }))
}

/// Trains to `total` steps with a progress bar (steps per second, ETA, recent return) unless
/// `quiet`; Ctrl-C stops at a consistent point, with the state safe to save.
fn train_with_progress(
    registry: &Registry,
    task: &Task,
    agent: &mut dyn Agent,
    total: u64,
    curve: &mut Curve,
    quiet: bool,
) -> Result<Outcome, agent::AgentError> {
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // A second handler cannot be installed (a test binary may train twice): then Ctrl-C
        // keeps its default meaning.
        let _ = ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
    }
    let bar = harness::progress(total, quiet, "steps, {per_sec}");
    bar.set_position(agent.steps());
    let mut recent: std::collections::VecDeque<f64> = Default::default();
    let mut on_event = |event: Event<'_>| {
        match event {
            Event::Episode { episode, .. } => {
                recent.push_back(episode.ret);
                if recent.len() > 20 {
                    recent.pop_front();
                }
                let mean = recent.iter().sum::<f64>() / recent.len() as f64;
                bar.set_message(format!("return {mean:.1}"));
            }
            Event::Progress { step } => bar.set_position(step),
            Event::Checkpoint { .. } => {}
        }
        if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    };
    let outcome = crate::train::train(registry, task, agent, total, curve, &mut on_event);
    bar.finish_and_clear();
    outcome
}

fn produced_by() -> String {
    format!("headstart {}", std::env::args().skip(1).collect::<Vec<_>>().join(" "))
}

/// Saves a checkpoint and its learning curve into `out`.
fn save_run(agent: &dyn Agent, task: &Task, eval: Option<agent::EvalStats>, curve: &Curve, out: &Path, spaces: (&Space, &Space)) -> Result<()> {
    let mixture = match task {
        Task::Mixture(mix) => Some(mix),
        Task::Env(_) => None,
    };
    let info = CardInfo {
        env: task.nominal(),
        mixture,
        observation_space: spaces.0,
        action_space: spaces.1,
        eval,
        produced_by: produced_by(),
    };
    checkpoint::save(agent, info, out)?;
    std::fs::write(out.join("curve.csv"), curve.to_csv()).with_context(|| format!("writing {}", out.join("curve.csv").display()))
}

fn train(registry: &Registry, args: &TrainArgs) -> Result<()> {
    tch::set_num_threads(args.threads.max(1));
    let resumed = args.resume.as_ref().map(|dir| checkpoint::load(dir)).transpose()?;
    let task = match (&args.env, &resumed) {
        (Some(env), _) => training_task(&env_spec(env, &args.params)?, args)?,
        (None, Some(loaded)) => match &loaded.card.mixture {
            Some(mix) => Task::Mixture(mix.clone()),
            None => Task::Env(loaded.card.env.clone()),
        },
        (None, None) => bail!("name an environment (an id or a variant file)"),
    };
    if let Task::Mixture(mix) = &task {
        mix.validate(registry)?;
    }
    let spec = task.nominal().clone();
    let probe = registry.make(&spec)?;
    let (obs_space, action_space) = (probe.observation_space().clone(), probe.action_space().clone());
    let (mut agent, source, default_steps): (Box<dyn Agent>, String, Option<u64>) = match resumed {
        Some(loaded) => {
            let card = &loaded.card;
            if card.algorithm != args.algo {
                bail!("--resume: the checkpoint is {}, --algo is {}", card.algorithm, args.algo);
            }
            if card.observation_space != obs_space || card.action_space != action_space {
                bail!(
                    "--resume: {spec} has spaces {obs_space} / {action_space}, the checkpoint was trained on {} / {}",
                    card.observation_space,
                    card.action_space
                );
            }
            let source = format!("resumed from {} at step {}", args.resume.as_ref().unwrap().display(), card.steps);
            (loaded.agent, source, None)
        }
        None => {
            let (config, steps, source) = training_config(args, &spec)?;
            (config.build(&obs_space, &action_space, args.seed)?, source, steps)
        }
    };
    let total = args.steps.or(default_steps).context("--steps is needed: no preset gives a budget")?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/{}-{}-seed{}", args.algo.name(), spec.id, agent.seed())));
    eprintln!("{} on {task}, {total} steps, seed {} ({source}) -> {}", args.algo, agent.seed(), out.display());

    // A resumed run continues the checkpoint's curve.
    let mut curve = match &args.resume {
        Some(dir) => match std::fs::read_to_string(dir.join("curve.csv")) {
            Ok(text) => {
                Curve::from_csv(&text).map_err(|e| anyhow::anyhow!("{}: {e}", dir.join("curve.csv").display()))?
            }
            Err(_) => Curve::default(),
        },
        None => Curve::default(),
    };
    let start = Instant::now();
    let start_steps = agent.steps();
    let outcome = train_with_progress(registry, &task, agent.as_mut(), total, &mut curve, args.quiet);
    let spaces = (&obs_space, &action_space);
    // An error in the middle of training (a custom environment failing, say) keeps what was
    // learned: the agent's state is consistent between steps.
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            save_run(agent.as_ref(), &task, None, &curve, &out, spaces)?;
            return Err(anyhow::Error::new(e).context(format!(
                "training stopped at step {}; what was learned is saved in {}",
                agent.steps(),
                out.display()
            )));
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let trained = agent.steps() - start_steps;
    let eval = if outcome == Outcome::Finished && args.eval_episodes > 0 {
        let mut env = registry.make(&spec)?;
        Some(evaluate(agent.as_ref(), env.as_mut(), args.eval_episodes, true, 1_000_000 + agent.seed())?)
    } else {
        None
    };
    save_run(agent.as_ref(), &task, eval.clone(), &curve, &out, spaces)?;
    let rate = trained as f64 / seconds.max(1e-9);
    match (outcome, eval) {
        (Outcome::Stopped, _) => println!(
            "interrupted at step {} of {total}; saved {} (continue with --resume {} --steps {total})",
            agent.steps(),
            out.display(),
            out.display()
        ),
        (Outcome::Finished, Some(e)) => println!(
            "{} {spec} seed {}: {} steps in {seconds:.1} s ({rate:.0} steps/s); eval {:.1} +/- {:.1} over {} deterministic episodes; saved {}",
            args.algo,
            agent.seed(),
            agent.steps(),
            e.mean,
            e.std,
            e.episodes,
            out.display()
        ),
        (Outcome::Finished, None) => println!(
            "{} {spec} seed {}: {} steps in {seconds:.1} s ({rate:.0} steps/s); saved {}",
            args.algo,
            agent.seed(),
            agent.steps(),
            out.display()
        ),
    }
    Ok(())
}

fn eval(registry: &Registry, args: &EvalArgs) -> Result<()> {
    let loaded = checkpoint::load(&args.checkpoint)?;
    let spec = match &args.env {
        Some(env) => env_spec(env, &args.params)?,
        None => {
            let mut spec = loaded.card.env.clone();
            spec.params.extend(env_spec(&spec.id, &args.params)?.params);
            spec
        }
    };
    let mut env = registry.make(&spec)?;
    if env.observation_space() != &loaded.card.observation_space || env.action_space() != &loaded.card.action_space {
        bail!(
            "{spec} has spaces {} / {}, the checkpoint was trained on {} / {} (`headstart suggest TARGET` \
             evaluates through the map a target's variant file declares)",
            env.observation_space(),
            env.action_space(),
            loaded.card.observation_space,
            loaded.card.action_space
        );
    }
    let stats = evaluate(loaded.agent.as_ref(), env.as_mut(), args.episodes, !args.stochastic, args.seed)?;
    println!(
        "{} ({} steps) on {spec}: {:.1} +/- {:.1} over {} {} episodes",
        loaded.card.algorithm,
        loaded.card.steps,
        stats.mean,
        stats.std,
        stats.episodes,
        if args.stochastic { "stochastic" } else { "deterministic" }
    );
    Ok(())
}

/// The map for a source trained on `source_id`: the `--map` file, else the one the target's
/// variant file declares for that id.
fn resolve_map(map: Option<&Path>, target: &str, source_id: &str) -> Result<Option<Map>> {
    if let Some(path) = map {
        return Ok(Some(Map::load(path).map_err(anyhow::Error::msg)?));
    }
    if target.ends_with(".ron") {
        return Ok(Variant::load(Path::new(target))?.maps.get(source_id).cloned());
    }
    Ok(None)
}

fn file_stem(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "source".into())
}

fn transfer(registry: &Registry, args: &TransferArgs) -> Result<()> {
    tch::set_num_threads(args.threads.max(1));
    let strategy = Strategy::from_arg(&args.strategy).map_err(anyhow::Error::msg)?;
    let source = checkpoint::load(&args.source)?;
    let target = env_spec(&args.target, &args.params)?;
    let map = resolve_map(args.map.as_deref(), &args.target, &source.card.env.id)?;
    let source_name = args.source.display().to_string();
    let (mut agent, report) =
        xfer::prepare(registry, &source, &source_name, &target, &strategy, map.as_ref(), args.seed)?;
    let label = report.strategy.clone();
    let total = match args.steps {
        Some(steps) => steps,
        None => agent::presets::get(report.algorithm, &target.id)
            .map(|p| p.steps)
            .with_context(|| format!("--steps is needed: no {} preset gives a budget for {}", report.algorithm, target.id))?,
    };
    let out = args.out.clone().unwrap_or_else(|| {
        let clean = |s: &str| s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect::<String>();
        let target_name = if args.target.ends_with(".ron") { file_stem(Path::new(&args.target)).replace(".ron", "") } else { target.id.clone() };
        PathBuf::from(format!(
            "runs/transfer-{}-{}-{}-seed{}",
            clean(&file_stem(&args.source)),
            clean(&target_name),
            clean(&label),
            args.seed
        ))
    });
    print!("{}", report.table());
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let report_path = out.join("transfer.ron");
    std::fs::write(&report_path, report.to_ron()).with_context(|| format!("writing {}", report_path.display()))?;

    let mut env = registry.make(&target)?;
    let eval_seed = 1_000_000 + args.seed;
    let zero_shot = if args.eval_episodes > 0 {
        let stats = evaluate(agent.as_ref(), env.as_mut(), args.eval_episodes, true, eval_seed)?;
        println!("zero-shot on {target}: {:.1} +/- {:.1} over {} deterministic episodes", stats.mean, stats.std, stats.episodes);
        Some(stats)
    } else {
        None
    };
    eprintln!("{} {label} on {target}, {total} steps, seed {} -> {}", report.algorithm, args.seed, out.display());
    let task = Task::Env(target.clone());
    let mut curve = Curve::default();
    let start = Instant::now();
    let outcome = train_with_progress(registry, &task, agent.as_mut(), total, &mut curve, args.quiet);
    let spaces = (env.observation_space().clone(), env.action_space().clone());
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            save_run(agent.as_ref(), &task, None, &curve, &out, (&spaces.0, &spaces.1))?;
            return Err(anyhow::Error::new(e)
                .context(format!("training stopped at step {}; what was learned is saved in {}", agent.steps(), out.display())));
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    println!("learning curve on {target} (mean training return per window):");
    println!("  {:>10}  {:>10}  episodes", "step", "return");
    for (step, mean, n) in curve.binned(total, 10) {
        let mean = mean.map(|m| format!("{m:.1}")).unwrap_or_else(|| "-".into());
        println!("  {step:>10}  {mean:>10}  {n}");
    }
    let eval = if outcome == Outcome::Finished && args.eval_episodes > 0 {
        Some(evaluate(agent.as_ref(), env.as_mut(), args.eval_episodes, true, eval_seed)?)
    } else {
        None
    };
    save_run(agent.as_ref(), &task, eval.clone(), &curve, &out, (&spaces.0, &spaces.1))?;
    match (outcome, eval) {
        (Outcome::Stopped, _) => println!("interrupted at step {} of {total}; saved {}", agent.steps(), out.display()),
        (Outcome::Finished, eval) => {
            let after = eval.map(|e| format!("; eval {:.1} +/- {:.1}", e.mean, e.std)).unwrap_or_default();
            let before = zero_shot.map(|z| format!(" (zero-shot {:.1})", z.mean)).unwrap_or_default();
            println!("{} steps in {seconds:.1} s{after}{before}; saved {} (report: {})", agent.steps(), out.display(), report_path.display());
        }
    }
    Ok(())
}

/// One policy's standing in `suggest`.
struct Candidate {
    name: String,
    algorithm: agent::Algo,
    source_env: String,
    fit: &'static str,
    stats: agent::EvalStats,
}

fn suggest(registry: &Registry, args: &SuggestArgs) -> Result<()> {
    let target = args.target.spec()?;
    let mut env = registry.make(&target)?;
    let (obs_space, action_space) = (env.observation_space().clone(), env.action_space().clone());
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&args.policies)
        .with_context(|| format!("reading {}", args.policies.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(checkpoint::CARD_FILE).exists())
        .collect();
    dirs.sort();
    let eval_seed = 1_000_000 + args.seed;
    let mut ranked = Vec::new();
    let mut skipped = Vec::new();
    for dir in &dirs {
        let name = file_stem(dir);
        let card = match checkpoint::read_card(dir) {
            Ok(card) => card,
            Err(e) => {
                skipped.push(format!("{name}: {e}"));
                continue;
            }
        };
        let direct = card.observation_space == obs_space && card.action_space == action_space;
        let map = if direct { None } else { resolve_map(None, &args.target.env, &card.env.id)? };
        if !direct && map.is_none() {
            skipped.push(format!(
                "{name}: trained on {} ({} / {}), the target has {obs_space} / {action_space} and declares no map for {}",
                card.env, card.observation_space, card.action_space, card.env.id
            ));
            continue;
        }
        let source = checkpoint::load(dir)?;
        let prepared = xfer::prepare(registry, &source, &name, &target, &Strategy::finetune(), map.as_ref(), args.seed);
        let agent = match prepared {
            Ok((agent, _)) => agent,
            Err(e) => {
                skipped.push(format!("{name}: {e}"));
                continue;
            }
        };
        let stats = evaluate(agent.as_ref(), env.as_mut(), args.episodes, true, eval_seed)?;
        ranked.push(Candidate {
            name,
            algorithm: card.algorithm,
            source_env: card.env.to_string(),
            fit: if direct { "direct" } else { "map" },
            stats,
        });
    }
    ranked.sort_by(|a, b| b.stats.mean.total_cmp(&a.stats.mean));
    // What acting at random scores, for scale.
    let random = {
        let mut rng = StdRng::seed_from_u64(args.seed);
        let mut returns = Vec::with_capacity(args.episodes);
        for i in 0..args.episodes {
            let (mut ret, mut done) = (0.0, false);
            env.reset(Some(eval_seed + i as u64))?;
            while !done {
                let step = env.step(&action_space.sample(&mut rng))?;
                ret += step.reward;
                done = step.done();
            }
            returns.push(ret);
        }
        returns.iter().sum::<f64>() / returns.len().max(1) as f64
    };
    println!("zero-shot on {target}, {} deterministic episodes each (random actions: {random:.1}):", args.episodes);
    println!("  {:<4} {:<22} {:<5} {:<8} {:>16}  source", "rank", "policy", "algo", "fit", "return");
    for (i, c) in ranked.iter().enumerate() {
        let ret = format!("{:.1} +/- {:.1}", c.stats.mean, c.stats.std);
        println!("  {:<4} {:<22} {:<5} {:<8} {:>16}  {}", i + 1, c.name, c.algorithm.to_string(), c.fit, ret, c.source_env);
    }
    if ranked.is_empty() {
        println!("  (no policy in {} fits this target)", args.policies.display());
    }
    for s in &skipped {
        println!("skipped {s}");
    }
    Ok(())
}

fn validate_experiment(registry: &Registry, file: &Path) -> Result<()> {
    let experiment = Experiment::load(file)?;
    let targets = crate::experiment::validate(&experiment, registry).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
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

fn run_experiment(registry: &Registry, args: &RunArgs) -> Result<()> {
    let experiment = Experiment::load(&args.file)?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&experiment.name));
    let sources = out.parent().map(|p| p.join("sources")).unwrap_or_else(|| PathBuf::from("runs/sources"));
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let flag = stop.clone();
        let _ = ctrlc::set_handler(move || {
            eprintln!("stopping: the units in flight end at their next update and are not kept; run again to continue");
            flag.store(true, std::sync::atomic::Ordering::SeqCst)
        });
    }
    let opts = harness::RunOptions { out: out.clone(), sources, jobs, quiet: args.quiet };
    let started = Instant::now();
    match harness::run(&experiment, registry, &opts, &stop).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))? {
        harness::RunOutcome::Interrupted { done, total } => {
            println!(
                "interrupted: {done} of {total} units are saved in {}; run `headstart run {}` again to continue",
                out.display(),
                args.file.display()
            );
            Ok(())
        }
        harness::RunOutcome::Complete(summary) => {
            print_summary(&summary, &out);
            eprintln!("({:.0} s)", started.elapsed().as_secs_f64());
            Ok(())
        }
    }
}

fn print_summary(summary: &harness::Summary, out: &Path) {
    println!("{}", harness::summary::verdict_table(summary));
    for t in &summary.targets {
        for c in t.comparisons.iter().filter(|c| c.verdict == harness::summary::Verdict::Negative) {
            println!("NEGATIVE TRANSFER: {} on {}: the area under the curve is below scratch's, with 95 % confidence", c.strategy, t.key);
        }
    }
    for f in &summary.failures {
        println!("failed unit: {f}");
    }
    println!("report: {}", out.join("report.md").display());
}

fn report(dir: &Path) -> Result<()> {
    let summary = harness::report(dir).map_err(anyhow::Error::msg)?;
    print_summary(&summary, dir);
    Ok(())
}
