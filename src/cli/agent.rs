//! `train` and `eval`: one agent on one task.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::env_spec;
use crate::agent::checkpoint;
use crate::agent::session::Session;
use crate::agent::train::{self, Curve, Task};
use crate::agent::{self, Agent, AgentConfig, Algo, Event, Objective, Outcome, evaluate, presets};
use crate::env::{EnvSpec, Mixture, Registry};

/// The algorithms as the command line names them.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum AlgoArg {
    /// Proximal Policy Optimisation.
    Ppo,
    /// Deep Q-Networks.
    Dqn,
    /// Soft Actor-Critic.
    Sac,
    /// Advantage Actor-Critic.
    A2c,
    /// Twin Delayed DDPG.
    Td3,
}

impl From<AlgoArg> for Algo {
    fn from(a: AlgoArg) -> Algo {
        match a {
            AlgoArg::Ppo => Algo::Ppo,
            AlgoArg::Dqn => Algo::Dqn,
            AlgoArg::Sac => Algo::Sac,
            AlgoArg::A2c => Algo::A2c,
            AlgoArg::Td3 => Algo::Td3,
        }
    }
}

#[derive(clap::Args)]
pub(crate) struct TrainArgs {
    /// The algorithm.
    #[arg(long, value_enum)]
    algo: AlgoArg,
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
    /// Overwrite the output folder when it holds a run already.
    #[arg(long)]
    force: bool,
    /// Deterministic evaluation episodes after training.
    #[arg(long, default_value_t = 20)]
    eval_episodes: usize,
    /// libtorch threads (1 makes runs reproducible bit for bit).
    #[arg(long, default_value_t = 1)]
    threads: i32,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// A mixture (domain randomisation over variants; named tasks with a head each are an
    /// experiment's `Tasks` source): each episode draws the environment or one of these (ids or variant
    /// files); repeat for several.
    #[arg(long = "mix", value_name = "ENV")]
    mix: Vec<String>,
    /// Save the policy alone: no replay buffer and no training state (a policy to ship or
    /// transfer; a target that keeps the replay buffer needs it, and `--resume` cannot continue it).
    #[arg(long)]
    policy_only: bool,
    /// Domain randomisation: each episode draws parameter NAME uniformly from [LO, HI]; repeat
    /// for several.
    #[arg(long, value_name = "NAME=LO:HI")]
    randomize: Vec<String>,
    /// What the agent maximises: `reward` (the task's), or without reward (PPO only) `rnd`
    /// (random network distillation) or `diayn` (skill discovery); settings in `--config` as
    /// `objective: Rnd(...)` or `Diayn(...)` [default: the configuration's].
    #[arg(long, value_parser = ["reward", "rnd", "diayn"], conflicts_with = "resume")]
    objective: Option<String>,
    /// Write TensorBoard event files into DIR/<the output folder's name> (episode returns and
    /// lengths, their running means, steps a second, the evaluation).
    #[arg(long, value_name = "DIR")]
    tensorboard: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct EvalArgs {
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

/// Where the hyperparameters of a training run come from, and its default budget.
fn training_config(args: &TrainArgs, spec: &EnvSpec) -> Result<presets::Resolved> {
    let explicit = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let config = AgentConfig::from_ron(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Some((config, path.display().to_string()))
        }
        None => None,
    };
    let preset = args.preset.as_deref();
    presets::resolve(args.algo.into(), explicit, preset, &spec.id).map_err(|e| match e {
        presets::PresetError::AlgorithmMismatch { config, algo } => {
            let file = args.config.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            anyhow::anyhow!("{file}: a {config} configuration, but --algo is {algo}")
        }
        presets::PresetError::UnknownPreset { algo, id, known } => {
            anyhow::anyhow!("--preset {id}: no {algo} preset for that id (presets: {})", known.join(", "))
        }
    })
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

/// How a session that [`train_and_save`] ran ended.
pub(super) struct Finished {
    /// Finished or stopped (Ctrl-C).
    pub(super) outcome: Outcome,
    /// The evaluation after a finished run.
    pub(super) eval: Option<agent::EvalStats>,
    /// Wall-clock seconds of training.
    pub(super) seconds: f64,
}

/// What `train` and `transfer` share: trains `session` with a progress bar (steps per second,
/// ETA, recent return) unless `quiet`, Ctrl-C stopping it at a consistent point; evaluates a
/// finished run on `eval_episodes` deterministic episodes of a fresh environment of its task;
/// and saves it, resumable, into `out`. An error in the middle of training (a custom
/// environment failing, say) keeps what was learned: the agent's state is consistent between
/// steps, so it is saved and the error says so.
pub(super) fn train_and_save(
    registry: &Registry,
    session: &mut Session<'_>,
    eval_episodes: usize,
    quiet: bool,
    out: &std::path::Path,
    tensorboard: Option<&std::path::Path>,
) -> Result<Finished> {
    let interrupted = super::interrupt_flag(None);
    let bar = crate::util::progress(session.total(), quiet, "steps, {per_sec}");
    let start_steps = session.agent().steps();
    bar.set_position(start_steps);
    let run = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
    let mut log = tensorboard.map(|dir| agent::tensorboard::TrainLog::create(&dir.join(&run), start_steps)).transpose()?;
    let mut recent: std::collections::VecDeque<f64> = Default::default();
    let mut on_event = |event: Event<'_>| {
        if let Some(log) = &mut log {
            log.event(&event);
        }
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
            Event::Intrinsic { reward, .. } => bar.set_message(format!("intrinsic {reward:.3}")),
            Event::Update { .. } | Event::Checkpoint { .. } => {}
        }
        if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    };
    let start = Instant::now();
    let outcome = session.train(&mut on_event);
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            let steps = session.agent().steps();
            return Err(super::stopped_training(e, start_steps, steps, out, || {
                session.save_run(None, super::produced_by(), out)?;
                Ok(())
            }));
        }
    };
    let eval = if outcome == Outcome::Finished && eval_episodes > 0 {
        let mut env = session.task().make(registry)?;
        let seed = 1_000_000 + session.agent().seed();
        Some(evaluate(session.agent(), env.as_mut(), eval_episodes, true, seed)?)
    } else {
        None
    };
    if let Some(log) = &mut log {
        if let Some(e) = &eval {
            log.eval(session.agent().steps(), e.mean, e.std, None);
        }
        log.flush();
    }
    session.save(eval.clone(), super::produced_by(), out)?;
    Ok(Finished { outcome, eval, seconds })
}

/// `headstart train`: an agent trained (or resumed) and saved with its card and curve.
pub(super) fn train(registry: &Registry, args: &TrainArgs) -> Result<()> {
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
    // With a resumed checkpoint's training state, the environments' action log to replay.
    let mut continuation = None;
    let (mut agent, source, default_steps): (Box<dyn Agent>, String, Option<u64>) = match resumed {
        Some(loaded) => {
            let card = &loaded.card;
            if card.algorithm != Algo::from(args.algo) {
                bail!("--resume: the checkpoint is {}, --algo is {}", card.algorithm, Algo::from(args.algo));
            }
            if card.observation_space != obs_space || card.action_space != action_space {
                bail!(
                    "--resume: {spec} has spaces {obs_space} / {action_space}, the checkpoint was trained on {} / {}",
                    card.observation_space,
                    card.action_space
                );
            }
            let source = format!("resumed from {} at step {}", args.resume.as_ref().unwrap().display(), card.steps);
            let mut agent = loaded.agent;
            continuation = train::load_training(agent.as_mut(), args.resume.as_ref().unwrap())?;
            (agent, source, None)
        }
        None => {
            let resolved = training_config(args, &spec)?;
            let mut config = resolved.config;
            let mut origin = resolved.origin;
            if let Some(name) = &args.objective {
                let objective = Objective::named(name).expect("clap checks the name");
                // `--config` may set the objective's settings; the flag names it.
                if config.objective().name() != objective.name() {
                    config = config.with_objective(objective).map_err(|e| anyhow::anyhow!("--objective {name}: {e}"))?;
                }
                origin = format!("{origin}, objective {name}");
            }
            (config.build(&obs_space, &action_space, args.seed)?, origin, resolved.steps)
        }
    };
    let total = args.steps.or(default_steps).context("--steps is needed: no preset gives a budget")?;
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "runs/{}-{}-seed{}",
            Algo::from(args.algo).name(),
            crate::util::file_safe(&spec.id),
            agent.seed()
        ))
    });
    super::check_out(&out, args.force, args.resume.as_deref())?;
    eprintln!(
        "{} on {task}, {total} steps, seed {} ({source}) -> {}",
        Algo::from(args.algo),
        agent.seed(),
        out.display()
    );

    let start_steps = agent.steps();
    let mut session = Session::new(registry, &task, agent.as_mut(), total)?;
    // A resumed run continues the checkpoint's curve, and its environments where it kept their log.
    if let Some(dir) = &args.resume {
        let curve = resumed_curve(dir)?;
        match &continuation {
            Some(log) => session.resume(log, curve)?,
            None => session.curve = curve,
        }
    }
    let Finished { outcome, eval, seconds } = train_and_save(registry, &mut session, args.eval_episodes, args.quiet, &out, args.tensorboard.as_deref())?;
    if args.policy_only && outcome == Outcome::Finished {
        if let Some(buffer) = session.agent_mut().replay_mut() {
            buffer.clear();
        }
        session.save_run(eval.clone(), super::produced_by(), &out)?;
        for file in [checkpoint::REPLAY_FILE, train::TRAINING_FILE] {
            let _ = std::fs::remove_file(out.join(file));
        }
    }
    drop(session);
    let rate = (agent.steps() - start_steps) as f64 / seconds.max(1e-9);
    match (outcome, eval) {
        (Outcome::Stopped, _) => println!(
            "interrupted at step {} of {total}; saved {} (continue with --resume {} --steps {total})",
            agent.steps(),
            out.display(),
            out.display()
        ),
        (Outcome::Finished, Some(e)) => println!(
            "{} {spec} seed {}: {} steps in {seconds:.1} s ({rate:.0} steps/s); eval {:.1} +/- {:.1} over {} deterministic episodes; saved {}",
            Algo::from(args.algo),
            agent.seed(),
            agent.steps(),
            e.mean,
            e.std,
            e.episodes,
            out.display()
        ),
        (Outcome::Finished, None) => println!(
            "{} {spec} seed {}: {} steps in {seconds:.1} s ({rate:.0} steps/s); saved {}",
            Algo::from(args.algo),
            agent.seed(),
            agent.steps(),
            out.display()
        ),
    }
    Ok(())
}

/// The curve (and intrinsic rewards) a checkpoint folder holds; empty where it holds none.
fn resumed_curve(dir: &std::path::Path) -> Result<Curve> {
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok().map(|text| (dir.join(file), text));
    let mut curve = match read("curve.csv") {
        Some((path, text)) => Curve::from_csv(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        None => Curve::default(),
    };
    if let Some((path, text)) = read(train::INTRINSIC_FILE) {
        curve.intrinsic = Curve::intrinsic_from_csv(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    Ok(curve)
}

/// `headstart eval`: a checkpoint evaluated on its environment or another with the same spaces.
pub(super) fn eval(registry: &Registry, args: &EvalArgs) -> Result<()> {
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
