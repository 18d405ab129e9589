//! Learning quality side by side with Stable-Baselines3 2.9.2, on seeds that no preset was tuned
//! on (`make parity`): for each task, both tools train with the same RL Zoo hyperparameters and
//! budget on seeds 5-14 (one libtorch thread each), and both tools' final agents are scored by
//! one evaluation protocol: headstart's `evaluate` on the same environment, with the same
//! evaluation seeds and episode count (SB3's models are imported through `headstart::agent::sb3`,
//! which reproduces SB3's outputs; `tests/sb3.rs`). A one-sided Welch test at 5 % asks whether
//! headstart's final returns are below SB3's.
//!
//! SB3's side is `benches/parity/sb3_train.py` (run here with the peers' Python when a model is
//! missing); each tool's results are kept in `target/parity/` so that a re-run continues.
//! `HEADSTART_BENCH=ppo,dqn,sac` picks tasks; `HEADSTART_SEEDS=5-14` (or `5,6,7`) the seeds.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use headstart::agent::train::{Curve, Task, train};
use headstart::agent::{Algo, evaluate, presets};
use headstart::env::{EnvSpec, Registry};
use headstart::study::stats::welch;
use rayon::prelude::*;

struct Row {
    key: &'static str,
    algo: Algo,
    env: &'static str,
    steps: u64,
}

const ROWS: [Row; 3] = [
    Row { key: "ppo-cartpole", algo: Algo::Ppo, env: "CartPole-v1", steps: 100_000 },
    Row { key: "dqn-cartpole", algo: Algo::Dqn, env: "CartPole-v1", steps: 50_000 },
    Row { key: "sac-pendulum", algo: Algo::Sac, env: "Pendulum-v1", steps: 10_000 },
];

/// Evaluation episodes per agent, from seeds `EVAL_SEED + 1000 * seed + i`.
const EPISODES: usize = 20;
const EVAL_SEED: u64 = 7_000_000;

fn seeds() -> Vec<u64> {
    let spec = std::env::var("HEADSTART_SEEDS").unwrap_or_else(|_| "5-14".into());
    match spec.split_once('-') {
        Some((a, b)) => {
            (a.trim().parse().expect("HEADSTART_SEEDS")..=b.trim().parse().expect("HEADSTART_SEEDS")).collect()
        }
        None => spec.split(',').map(|s| s.trim().parse().expect("HEADSTART_SEEDS")).collect(),
    }
}

fn score(agent: &dyn headstart::agent::Agent, env: &str, seed: u64) -> f64 {
    let mut env = Registry::builtin().make(&EnvSpec::new(env)).expect("a built-in environment");
    evaluate(agent, env.as_mut(), EPISODES, true, EVAL_SEED + 1000 * seed).expect("evaluation").mean
}

/// headstart's final return on `seed` (cached in `dir`).
fn ours(row: &Row, seed: u64, dir: &Path) -> f64 {
    let cache = dir.join(format!("headstart/{}-seed{seed}.json", row.key));
    if let Some(ret) = std::fs::read_to_string(&cache)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["return"].as_f64())
    {
        return ret;
    }
    let registry = Registry::builtin();
    let spec = EnvSpec::new(row.env);
    let config = presets::get(row.algo, row.env).expect("a preset").config;
    let probe = registry.make(&spec).expect("a built-in environment");
    let mut agent = config.build(probe.observation_space(), probe.action_space(), seed).expect("the preset builds");
    let start = Instant::now();
    train(&registry, &Task::Env(spec), agent.as_mut(), row.steps, &mut Curve::default(), &mut |_| {
        ControlFlow::Continue(())
    })
    .expect("training");
    let seconds = start.elapsed().as_secs_f64();
    let ret = score(agent.as_ref(), row.env, seed);
    std::fs::create_dir_all(cache.parent().expect("a folder")).expect("target/parity");
    let json = serde_json::json!({ "task": row.key, "seed": seed, "return": ret, "train_s": seconds });
    std::fs::write(&cache, json.to_string()).expect("target/parity");
    ret
}

/// SB3's final return on `seed`: its saved model imported and scored like headstart's.
fn theirs(row: &Row, seed: u64, dir: &Path) -> Result<f64, String> {
    let model = dir.join(format!("sb3/{}-seed{seed}.zip", row.key));
    let model = headstart::agent::sb3::read(&model).map_err(|e| e.to_string())?;
    let agent = model.agent(seed).map_err(|e| e.to_string())?;
    Ok(score(agent.as_ref(), row.env, seed))
}

/// Trains SB3's missing models (one process, seed after seed).
fn train_sb3(row: &Row, seeds: &[u64], dir: &Path) -> Result<(), String> {
    let missing: Vec<String> = seeds
        .iter()
        .filter(|s| !dir.join(format!("sb3/{}-seed{s}.zip", row.key)).exists())
        .map(|s| s.to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python =
        std::env::var_os("HEADSTART_PEER_PYTHON").map(PathBuf::from).unwrap_or(root.join(".venv-peers/bin/python"));
    eprintln!("training SB3 {} on seeds {}", row.key, missing.join(", "));
    let status = Command::new(&python)
        .arg(root.join("benches/parity/sb3_train.py"))
        .arg(dir.join("sb3"))
        .arg(row.key)
        .args(&missing)
        .status()
        .map_err(|e| format!("{}: {e} (run `make peers`)", python.display()))?;
    if status.success() { Ok(()) } else { Err(format!("sb3_train.py {}: {status}", row.key)) }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("benches/parity.rs: run with `cargo bench --bench parity` (or `make parity`)");
        return;
    }
    tch::set_num_threads(1);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/parity");
    let seeds = seeds();
    let only = std::env::var("HEADSTART_BENCH").ok();
    let mut table = String::from(
        "| task | steps | headstart mean ± sd | SB3 2.9.2 mean ± sd | difference | one-sided p (headstart < SB3) | verdict |\n|---|---|---|---|---|---|---|\n",
    );
    let mut per_seed = String::new();
    for row in ROWS.iter().filter(|r| only.as_ref().is_none_or(|o| o.split(',').any(|k| r.key.starts_with(k)))) {
        if let Err(e) = train_sb3(row, &seeds, &dir) {
            println!("{}: SB3 not run: {e}", row.key);
            continue;
        }
        let ours: Vec<f64> = seeds.par_iter().map(|&s| ours(row, s, &dir)).collect();
        let theirs: Vec<f64> = match seeds.iter().map(|&s| theirs(row, s, &dir)).collect() {
            Ok(v) => v,
            Err(e) => {
                println!("{}: SB3 model not read: {e}", row.key);
                continue;
            }
        };
        let w = welch(&ours, &theirs).expect("at least two seeds");
        let one_sided = if w.difference < 0.0 { w.p / 2.0 } else { 1.0 - w.p / 2.0 };
        let verdict = if one_sided < 0.05 { "below SB3" } else { "not below SB3" };
        let (m, sd) = mean_sd(&ours);
        let (ms, sds) = mean_sd(&theirs);
        table += &format!(
            "| {} {} | {} | {m:.1} ± {sd:.1} | {ms:.1} ± {sds:.1} | {:+.1} | {one_sided:.3} | {verdict} |\n",
            row.algo, row.env, row.steps, w.difference
        );
        let list = |v: &[f64]| v.iter().map(|r| format!("{r:.1}")).collect::<Vec<_>>().join(", ");
        per_seed += &format!(
            "- {} {} (seeds {}): headstart {}; SB3 {}\n",
            row.algo,
            row.env,
            seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
            list(&ours),
            list(&theirs)
        );
    }
    let report = format!("{table}\n{per_seed}");
    println!(
        "final returns, {EPISODES} deterministic episodes each, one evaluation protocol for both tools:\n\n{report}"
    );
    std::fs::create_dir_all(&dir).expect("target/parity");
    std::fs::write(dir.join("parity.md"), report).expect("target/parity/parity.md");
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() as f64 - 1.0)).sqrt())
}
