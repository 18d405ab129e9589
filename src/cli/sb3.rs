//! `headstart import sb3` and `headstart export sb3`: Stable-Baselines3 models in and out.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::agent::{evaluate, sb3};
use crate::env::Registry;

/// The formats models are imported from and exported to.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Format {
    /// Stable-Baselines3 (`model.save`'s `.zip`; RL Zoo folders with `vec_normalize.pkl`).
    Sb3,
}

#[derive(clap::Args)]
pub(crate) struct ImportArgs {
    /// The format of the model.
    format: Format,
    /// The model: an SB3 `.zip`, or an RL-Zoo-style folder holding one (with `vec_normalize.pkl`,
    /// `config.yml`, `env_kwargs.yml`).
    path: PathBuf,
    /// The environment it was trained on: an id or a variant file [default: the id in the file's
    /// name (`ppo-CartPole-v1.zip`), with the Zoo's `env_kwargs.yml`; a headstart port when there
    /// is one, else `gym:<id>`].
    #[arg(long)]
    env: Option<String>,
    /// A parameter override of that environment, `NAME=VALUE`; repeat for several.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// The `VecNormalize` statistics (`vec_normalize.pkl`) [default: the file beside the model
    /// or in its RL Zoo folder, if any].
    #[arg(long, value_name = "PKL")]
    vec_normalize: Option<PathBuf>,
    /// The checkpoint folder [default: runs/<algo>-<env>-sb3].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Deterministic evaluation episodes recorded in the card (0: none).
    #[arg(long, default_value_t = 10)]
    eval_episodes: usize,
}

#[derive(clap::Args)]
pub(crate) struct ExportArgs {
    /// The format to write.
    format: Format,
    /// The headstart checkpoint folder.
    checkpoint: PathBuf,
    /// The model file to write (`.zip`); `vec_normalize.pkl` goes beside it when the agent
    /// normalises observations.
    #[arg(long)]
    out: PathBuf,
}

pub(crate) fn import(registry: &Registry, args: &ImportArgs) -> Result<()> {
    let Format::Sb3 = args.format;
    let model = sb3::read_with(&args.path, &sb3::ReadOptions { vec_normalize: args.vec_normalize.clone() })?;
    let spec = match &args.env {
        Some(env) => super::env_spec(env, &args.params)?,
        None => {
            let Some(mut spec) = model.env_spec(registry) else {
                bail!(
                    "{}: the file name does not say which environment the model was trained on: pass --env",
                    args.path.display()
                )
            };
            spec.params.extend(super::env_spec(&spec.id, &args.params)?.params);
            spec
        }
    };
    let mut env = registry.make(&spec).with_context(|| format!("the model's environment {spec}"))?;
    model.check_env(env.as_ref(), &spec)?;
    let eval = match args.eval_episodes {
        0 => None,
        n => Some(evaluate(model.agent(0)?.as_ref(), env.as_mut(), n, true, 0)?),
    };
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("{}-{}-sb3", model.algo.name(), crate::util::file_safe(&spec.id)))
    });
    let card = model.save(&spec, &out, eval)?;
    println!(
        "imported {} ({}, {} {} steps) for {spec} -> {}",
        args.path.display(),
        card.origin.as_ref().map_or("", |o| o.library.as_str()),
        card.algorithm,
        card.steps,
        out.display()
    );
    if let Some(e) = &card.eval {
        println!("  deterministic return over {} episodes: {:.1} +/- {:.1}", e.episodes, e.mean, e.std);
    }
    for file in card.origin.iter().flat_map(|o| &o.also_read) {
        println!("  also read: {}", file.file);
    }
    if model.obs_rms.is_some() {
        println!("  observations normalised with the VecNormalize statistics read");
    }
    for item in card.origin.iter().flat_map(|o| &o.not_carried) {
        println!("  not carried: {item}");
    }
    Ok(())
}

pub(crate) fn export(args: &ExportArgs) -> Result<()> {
    let Format::Sb3 = args.format;
    for path in sb3::export(&args.checkpoint, &args.out)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}
