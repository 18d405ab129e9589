//! `envs`, `demo` and `check`: the environments on their own.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::EnvArg;
use crate::env::{EnvSpec, Registry, Variant, check_registered};

/// `headstart envs`: every registered environment with its spaces, limits and parameters.
pub(super) fn list(registry: &Registry, only: Option<&str>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let ids: Vec<&str> = match only {
        Some(id) => vec![id],
        None => registry.ids().collect(),
    };
    for id in ids {
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

/// `headstart demo`: random actions on every environment and variant, with their returns and speed.
pub(super) fn demo(registry: &Registry, episodes: usize, seed: u64, variants_dir: Option<&Path>) -> Result<()> {
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

/// `headstart check`: the environment contract (see [`check_registered`]).
pub(super) fn check(registry: &Registry, arg: &EnvArg) -> Result<()> {
    let spec = arg.spec()?;
    // An unknown id is an error of the command line, not a failed check.
    registry.entry(&spec.id)?;
    match check_registered(registry, &spec) {
        Ok(()) => {
            println!("{spec}: all checks passed");
            Ok(())
        }
        Err(failure) => bail!("{spec}: {failure}"),
    }
}
