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

use crate::env::{Env, EnvSpec, Registry, Variant, check_env};

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
        let mut spec =
            if self.env.ends_with(".ron") { Variant::load(Path::new(&self.env))?.env } else { EnvSpec::new(&self.env) };
        for param in &self.params {
            let (name, value) =
                param.split_once('=').with_context(|| format!("--param {param:?}: expected NAME=VALUE"))?;
            let value: f64 =
                value.trim().parse().with_context(|| format!("--param {param:?}: {value:?} is not a number"))?;
            spec.params.insert(name.trim().to_string(), value);
        }
        Ok(spec)
    }
}

/// Parses the command line and runs it against `registry`. Errors are printed with their causes;
/// the exit code is 1 on error, 2 on a usage error.
pub fn run(registry: Registry) -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Envs => list_envs(&registry),
        Command::Demo { episodes, seed, variants } => demo(&registry, episodes, seed, variants.as_deref()),
        Command::Check { env } => check(&registry, &env),
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
