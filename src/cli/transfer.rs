//! `transfer` and `suggest`: source policies on a target.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{EnvArg, env_spec};
use crate::agent::checkpoint;
use crate::agent::session::Session;
use crate::agent::train::Task;
use crate::agent::{self, Outcome, evaluate};
use crate::env::{Map, Registry, Variant};
use crate::transfer::{self as xfer, Strategy};

#[derive(clap::Args)]
pub(crate) struct TransferArgs {
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
    /// Overwrite the run folder when it holds a run already.
    #[arg(long)]
    force: bool,
    /// Deterministic evaluation episodes, zero-shot and after training.
    #[arg(long, default_value_t = 20)]
    eval_episodes: usize,
    #[arg(long, default_value_t = 1)]
    threads: i32,
    #[arg(long, short)]
    quiet: bool,
    /// Write TensorBoard event files into DIR/<the output folder's name> (as `train`; not with
    /// `--watch`).
    #[arg(long, value_name = "DIR")]
    tensorboard: Option<PathBuf>,
    /// Watch for collapse: evaluate every `--watch-every` steps on the zero-shot evaluation's
    /// episodes and warn when the return falls significantly below the zero-shot return (the
    /// rule: README, "Collapse watch").
    #[arg(long)]
    watch: bool,
    /// Steps between the watch's evaluations [default: a tenth of the budget].
    #[arg(long, value_name = "STEPS")]
    watch_every: Option<u64>,
    /// On a collapse confirmed at two looks in a row: `source` saves the agent as transferred
    /// (before any update), `scratch` trains from scratch on the budget instead [default: none,
    /// warn only]. Needs `--watch`.
    #[arg(long, default_value = "none")]
    fallback: xfer::watch::Fallback,
}

#[derive(clap::Args)]
pub(crate) struct SuggestArgs {
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
    /// A transfer matrix's predictor validation (`predictors.ron`, from `headstart predict`);
    /// repeat for several [default: every `runs/*/predictors.ron`].
    #[arg(long, value_name = "FILE")]
    validated: Vec<PathBuf>,
}

/// The map for a source trained on `source_id`: the `--map` file, else the one the target's
/// variant file declares for that id.
fn resolve_map(map: Option<&Path>, target: &str, source_id: &str) -> Result<Option<Map>> {
    if let Some(path) = map {
        return Ok(Some(Map::load(path)?));
    }
    if target.ends_with(".ron") {
        return Ok(Variant::load(Path::new(target))?.maps.get(source_id).cloned());
    }
    Ok(None)
}

/// `headstart transfer`: a source policy moved onto a target, trained, and reported.
pub(super) fn transfer(registry: &Registry, args: &TransferArgs) -> Result<()> {
    tch::set_num_threads(args.threads.max(1));
    let strategy = Strategy::from_arg(&args.strategy)?;
    if args.fallback != xfer::watch::Fallback::None && !args.watch {
        anyhow::bail!("--fallback {:?} needs --watch", args.fallback);
    }
    if args.watch && args.eval_episodes < 2 {
        anyhow::bail!("--watch compares evaluation episodes: give --eval-episodes 2 or more");
    }
    let source = checkpoint::load(&args.source)?;
    let target = env_spec(&args.target, &args.params)?;
    let map = resolve_map(args.map.as_deref(), &args.target, &source.card.env.id)?;
    let source_name = args.source.display().to_string();
    let (mut agent, report) =
        xfer::prepare(registry, &source, &source_name, &target, &strategy, map.as_ref(), args.seed)?;
    let label = report.strategy.clone();
    let total = match args.steps {
        Some(steps) => steps,
        None => agent::presets::get(report.algorithm, &target.id).map(|p| p.steps).with_context(|| {
            format!("--steps is needed: no {} preset gives a budget for {}", report.algorithm, target.id)
        })?,
    };
    let out = args.out.clone().unwrap_or_else(|| {
        let clean = crate::util::file_safe;
        let target_name = if args.target.ends_with(".ron") {
            super::file_name(Path::new(&args.target)).replace(".ron", "")
        } else {
            target.id.clone()
        };
        PathBuf::from(format!(
            "runs/transfer-{}-{}-{}-seed{}",
            clean(&super::file_name(&args.source)),
            clean(&target_name),
            clean(&label),
            args.seed
        ))
    });
    super::check_out(&out, args.force, None)?;
    print!("{}", report.table());
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let report_path = out.join("transfer.ron");
    std::fs::write(&report_path, report.to_ron()).with_context(|| format!("writing {}", report_path.display()))?;

    let mut env = registry.make(&target)?;
    let eval_seed = 1_000_000 + args.seed;
    let zero_shot = if args.eval_episodes > 0 {
        let stats = evaluate(agent.as_ref(), env.as_mut(), args.eval_episodes, true, eval_seed)?;
        println!(
            "zero-shot on {target}: {:.1} +/- {:.1} over {} deterministic episodes",
            stats.mean, stats.std, stats.episodes
        );
        Some(stats)
    } else {
        None
    };
    eprintln!("{} {label} on {target}, {total} steps, seed {} -> {}", report.algorithm, args.seed, out.display());
    let task = Task::Env(target.clone());
    let (outcome, eval, seconds) = match (args.watch, &zero_shot) {
        (true, Some(zero)) => {
            let every = args.watch_every.unwrap_or(total.div_ceil(10)).max(1);
            let random = crate::env::random_policy_return(
                env.as_mut(),
                &target.to_string(),
                (0..args.eval_episodes as u64).map(|i| eval_seed + i),
                &mut rand::SeedableRng::seed_from_u64(args.seed),
            )?;
            // The looks: one per `every` steps and the last evaluation.
            let watch = xfer::watch::Watch::new(zero.returns.clone(), random, (total / every) as usize + 1);
            let rebuild = |scratch: bool| -> Result<Box<dyn agent::Agent>> {
                let strategy = if scratch { Strategy::scratch() } else { strategy.clone() };
                Ok(xfer::prepare(registry, &source, &source_name, &target, &strategy, map.as_ref(), args.seed)?.0)
            };
            let sizes = (total, every, args.eval_episodes, eval_seed);
            let w = super::watch::run(registry, &task, agent.as_mut(), sizes, &watch, args.fallback, &rebuild, args.quiet, &out)?;
            (w.outcome, w.eval, w.seconds)
        }
        _ => {
            let mut session = Session::new(registry, &task, agent.as_mut(), total)?;
            let super::agent::Finished { outcome, eval, seconds } =
                super::agent::train_and_save(registry, &mut session, args.eval_episodes, args.quiet, &out, args.tensorboard.as_deref())?;
            println!("learning curve on {target} (mean training return per window):");
            println!("  {:>10}  {:>10}  episodes", "step", "return");
            for (step, mean, n) in session.curve.binned(total, 10) {
                let mean = mean.map(|m| format!("{m:.1}")).unwrap_or_else(|| "-".into());
                println!("  {step:>10}  {mean:>10}  {n}");
            }
            (outcome, eval, seconds)
        }
    };
    match (outcome, eval) {
        (Outcome::Stopped, _) => println!("interrupted at step {} of {total}; saved {}", agent.steps(), out.display()),
        (Outcome::Finished, eval) => {
            let after = eval.map(|e| format!("; eval {:.1} +/- {:.1}", e.mean, e.std)).unwrap_or_default();
            let before = zero_shot.map(|z| format!(" (zero-shot {:.1})", z.mean)).unwrap_or_default();
            println!(
                "{} steps in {seconds:.1} s{after}{before}; saved {} (report: {})",
                agent.steps(),
                out.display(),
                report_path.display()
            );
        }
    }
    Ok(())
}

/// `headstart suggest`: the policies of a folder ranked by their zero-shot return on a target.
pub(super) fn suggest(registry: &Registry, args: &SuggestArgs) -> Result<()> {
    let target = args.target.spec()?;
    let maps = if args.target.env.ends_with(".ron") {
        Variant::load(Path::new(&args.target.env))?.maps
    } else {
        Default::default()
    };
    let mut ranking = xfer::suggest::rank(registry, &target, &maps, &args.policies, args.episodes, args.seed)?;
    let chosen = choose_predictor(&args.validated)?;
    if let Some((predictor, how)) = &chosen
        && predictor == "zero_shot"
    {
        println!("ranked by zero-shot return, the predictor that validated best ({how})");
    }
    if let Some((predictor, how)) = &chosen
        && predictor != "zero_shot"
    {
        let threshold = registry.entry(&target.id).ok().and_then(|e| e.threshold());
        let Some(threshold) = threshold else {
            anyhow::bail!("{target}: no registered threshold to normalise the predictors with");
        };
        let mut scored = Vec::new();
        for c in ranking.ranked.drain(..) {
            let dir = args.policies.join(&c.name);
            let source = checkpoint::load(&dir)?;
            let map = maps.get(&source.card.env.id);
            let p = xfer::predict::predict(registry, &source, &c.name, &target, map, (threshold, ranking.random_return), args.seed)?;
            scored.push((p.get(predictor), c));
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        println!("ranked by `{predictor}` ({how}); its value, then the zero-shot return:");
        for (i, (v, c)) in scored.iter().enumerate() {
            println!("  {:<4} {:<22} {predictor} {v:>+9.3}   zero-shot {:.1}", i + 1, c.name, c.stats.mean);
        }
        ranking.ranked = scored.into_iter().map(|(_, c)| c).collect();
        println!();
    }
    println!(
        "zero-shot on {target}, {} deterministic episodes each (random actions: {:.1}):",
        args.episodes, ranking.random_return
    );
    println!("  {:<4} {:<22} {:<5} {:<8} {:>16}  source", "rank", "policy", "algo", "fit", "return");
    for (i, c) in ranking.ranked.iter().enumerate() {
        let ret = format!("{:.1} +/- {:.1}", c.stats.mean, c.stats.std);
        let fit = match c.fit {
            xfer::suggest::Fit::Direct => "direct",
            xfer::suggest::Fit::Map => "map",
        };
        println!(
            "  {:<4} {:<22} {:<5} {:<8} {:>16}  {}",
            i + 1,
            c.name,
            c.algorithm.to_string(),
            fit,
            ret,
            c.source_env
        );
    }
    if ranking.ranked.is_empty() {
        println!("  (no policy in {} fits this target)", args.policies.display());
    }
    for s in &ranking.skipped {
        println!("skipped {s}");
    }
    Ok(())
}

/// The predictor `suggest` ranks by: the one with the highest Spearman correlation on any
/// validation in `files` (default: every `runs/*/predictors.ron`), with what it achieved where;
/// a warning when none beats zero-shot return there; `None` without any validation.
fn choose_predictor(files: &[PathBuf]) -> Result<Option<(String, String)>> {
    let files: Vec<PathBuf> = if files.is_empty() {
        std::fs::read_dir("runs")
            .map(|d| d.flatten().map(|e| e.path().join("predictors.ron")).filter(|p| p.exists()).collect())
            .unwrap_or_default()
    } else {
        files.to_vec()
    };
    let mut best: Option<(f64, String, String)> = None;
    for file in &files {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let v: crate::study::predictors::Validated =
            crate::util::ron_options().from_str(&text).with_context(|| format!("{}: not a predictors.ron", file.display()))?;
        let Some((top, zero)) = v.best() else { continue };
        let how = format!(
            "Spearman {:+.2} [{:+.2}, {:+.2}] with the measured transfer over the {} cells of `{}`; zero-shot return {:+.2} there",
            top.spearman, top.spearman_ci95.0, top.spearman_ci95.1, v.cells, v.matrix, zero.spearman
        );
        if top.predictor == "zero_shot" {
            eprintln!("warning: on `{}` no predictor beats zero-shot return (Spearman {:+.2})", v.matrix, zero.spearman);
        }
        if best.as_ref().is_none_or(|(s, _, _)| top.spearman > *s) {
            best = Some((top.spearman, top.predictor.clone(), how));
        }
    }
    if best.is_none() && !files.is_empty() {
        eprintln!("warning: no validation in {} has a correlation; ranking by zero-shot return", files.len());
    }
    Ok(best.map(|(_, p, how)| (p, how)))
}

/// `headstart predict DIR`: the predictors validated on a finished transfer matrix.
pub(super) fn predict(registry: &Registry, dir: &Path) -> Result<()> {
    tch::set_num_threads(1);
    let v = crate::study::predictors::validate(dir, registry).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    println!("transferability predictors against the measured transfer of `{}` ({} cells):", v.matrix, v.cells);
    println!("  {:<10} {:>24} {:>24} {:>16}", "predictor", "Spearman [95 % CI]", "Kendall [95 % CI]", "within target");
    for p in &v.predictors {
        println!(
            "  {:<10} {:>+7.2} [{:+.2}, {:+.2}]   {:>+7.2} [{:+.2}, {:+.2}]   {:>+13.2}",
            p.predictor, p.spearman, p.spearman_ci95.0, p.spearman_ci95.1, p.kendall, p.kendall_ci95.0, p.kendall_ci95.1, p.within_target_kendall
        );
    }
    if let Some((best, zero)) = v.best() {
        if best.predictor == "zero_shot" {
            println!("no predictor beats zero-shot return here");
        } else {
            println!("best: {} (Spearman {:+.2}; zero-shot return {:+.2})", best.predictor, best.spearman, zero.spearman);
        }
    }
    println!("written: {}, {}", dir.join("predictors.csv").display(), dir.join("predictors.ron").display());
    Ok(())
}
