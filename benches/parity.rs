//! Learning quality side by side with Stable-Baselines3 2.9.2, on seeds that no preset was tuned
//! on (`make parity`): for each task, both tools train with the same RL Zoo hyperparameters and
//! budget on seeds 5-19 (one libtorch thread each).
//!
//! **The score is not a snapshot.** A final agent's return swings: DQN on CartPole-v1 moves
//! between 500 and 50-180 from one training round to the next late in training, in both tools,
//! so a table of final snapshots can neither show parity nor hide a gap. Each seed's score is the
//! mean of ten evaluations at the last ten hundredths of the budget (steps `budget * 91/100`,
//! ..., `budget`), each 20 deterministic episodes. Both tools are evaluated at the same points
//! (the agent after the first update that ends at or after the point: headstart's
//! `Event::Checkpoint`, SB3's `_on_rollout_start`) with one protocol: headstart's `evaluate` on
//! the same environment, evaluation seeds and episode count; SB3's snapshots are imported
//! through `headstart::agent::sb3`, which reproduces SB3's outputs (`tests/sb3.rs`). A one-sided
//! Welch test at 5 % asks whether headstart's scores are below SB3's.
//!
//! SB3's side is `benches/parity/sb3_train.py`, run with the peers' Python on one core while
//! headstart trains on the other; each tool's results are kept in `target/parity/` so that a
//! re-run continues. `HEADSTART_BENCH=ppo,dqn,sac,a2c,td3` picks tasks; `HEADSTART_SEEDS=5-19` (or
//! `5,6,7`) the seeds.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use headstart::agent::train::Task;
use headstart::agent::{Agent, Algo, Event, Outcome, evaluate, presets};
use headstart::env::{EnvSpec, Registry};
use headstart::study::stats::welch;

struct Row {
    key: &'static str,
    algo: Algo,
    env: &'static str,
    steps: u64,
}

const ROWS: [Row; 5] = [
    Row { key: "ppo-cartpole", algo: Algo::Ppo, env: "CartPole-v1", steps: 100_000 },
    Row { key: "dqn-cartpole", algo: Algo::Dqn, env: "CartPole-v1", steps: 50_000 },
    Row { key: "sac-pendulum", algo: Algo::Sac, env: "Pendulum-v1", steps: 10_000 },
    Row { key: "a2c-cartpole", algo: Algo::A2c, env: "CartPole-v1", steps: 200_000 },
    Row { key: "td3-pendulum", algo: Algo::Td3, env: "Pendulum-v1", steps: 20_000 },
];

/// Evaluation episodes per point, from seeds `EVAL_SEED + 1000 * seed + i` (the same at every
/// point, so that points differ by the agent alone).
const EPISODES: usize = 20;
const EVAL_SEED: u64 = 7_000_000;

/// The evaluation points: the last ten hundredths of the budget (sb3_train.py: `points`).
fn points(budget: u64) -> Vec<u64> {
    (91..=100).map(|i| budget * i / 100).collect()
}

fn seeds() -> Vec<u64> {
    let spec = std::env::var("HEADSTART_SEEDS").unwrap_or_else(|_| "5-19".into());
    match spec.split_once('-') {
        Some((a, b)) => {
            (a.trim().parse().expect("HEADSTART_SEEDS")..=b.trim().parse().expect("HEADSTART_SEEDS")).collect()
        }
        None => spec.split(',').map(|s| s.trim().parse().expect("HEADSTART_SEEDS")).collect(),
    }
}

fn score(agent: &dyn Agent, env: &str, seed: u64) -> f64 {
    let mut env = Registry::builtin().make(&EnvSpec::new(env)).expect("a built-in environment");
    evaluate(agent, env.as_mut(), EPISODES, true, EVAL_SEED + 1000 * seed).expect("evaluation").mean
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// headstart's evaluations at the points on `seed` (cached in `dir`).
fn ours(row: &Row, seed: u64, dir: &Path) -> Vec<f64> {
    let cache = dir.join(format!("headstart/{}-seed{seed}.json", row.key));
    if let Some(evals) = std::fs::read_to_string(&cache)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| serde_json::from_value::<Vec<f64>>(v["evaluations"].clone()).ok())
    {
        return evals;
    }
    let registry = Registry::builtin();
    let spec = EnvSpec::new(row.env);
    let config = presets::get(row.algo, row.env).expect("a preset").config;
    let probe = registry.make(&spec).expect("a built-in environment");
    let mut agent = config.build(probe.observation_space(), probe.action_space(), seed).expect("the preset builds");
    let mut envs = Task::Env(spec).make_vec(&registry, config.num_envs()).expect("a built-in environment");
    let start = Instant::now();
    let mut evals = Vec::new();
    let mut pending = points(row.steps).into_iter().peekable();
    while pending.peek().is_some() {
        let next = *pending.peek().expect("a point");
        let outcome = agent
            .learn(&mut envs, row.steps, &mut |event| match event {
                Event::Checkpoint { step } if step >= next => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            })
            .expect("training");
        let ret = score(agent.as_ref(), row.env, seed);
        while pending.next_if(|&p| p <= agent.steps() || outcome == Outcome::Finished).is_some() {
            evals.push(ret);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    std::fs::create_dir_all(cache.parent().expect("a folder")).expect("target/parity");
    let json = serde_json::json!({ "task": row.key, "seed": seed, "evaluations": evals, "train_s": seconds });
    std::fs::write(&cache, json.to_string()).expect("target/parity");
    evals
}

/// SB3's evaluations at the points on `seed`: its snapshots imported and scored like headstart's.
fn theirs(row: &Row, seed: u64, dir: &Path) -> Result<Vec<f64>, String> {
    points(row.steps)
        .into_iter()
        .map(|p| {
            let path = dir.join(format!("sb3/{}-seed{seed}/step{p}.zip", row.key));
            let model = headstart::agent::sb3::read(&path).map_err(|e| e.to_string())?;
            let agent = model.agent(seed).map_err(|e| e.to_string())?;
            Ok(score(agent.as_ref(), row.env, seed))
        })
        .collect()
}

/// Trains SB3's missing seeds of every row, one process after another.
fn train_sb3(rows: &[&Row], seeds: &[u64], dir: &Path) -> Result<(), String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python =
        std::env::var_os("HEADSTART_PEER_PYTHON").map(PathBuf::from).unwrap_or(root.join(".venv-peers/bin/python"));
    for row in rows {
        let missing: Vec<String> = seeds
            .iter()
            .filter(|s| !dir.join(format!("sb3/{}-seed{s}/done.json", row.key)).exists())
            .map(|s| s.to_string())
            .collect();
        if missing.is_empty() {
            continue;
        }
        eprintln!("training SB3 {} on seeds {}", row.key, missing.join(", "));
        let status = Command::new(&python)
            .arg(root.join("benches/parity/sb3_train.py"))
            .arg(dir.join("sb3"))
            .arg(row.key)
            .args(&missing)
            .status()
            .map_err(|e| format!("{}: {e} (run `make peers`)", python.display()))?;
        if !status.success() {
            return Err(format!("sb3_train.py {}: {status}", row.key));
        }
    }
    Ok(())
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
    let rows: Vec<&Row> =
        ROWS.iter().filter(|r| only.as_ref().is_none_or(|o| o.split(',').any(|k| r.key.starts_with(k)))).collect();
    // SB3 trains on one core while headstart trains on the other.
    let (sb3, ours) = std::thread::scope(|scope| {
        let sb3 = scope.spawn(|| train_sb3(&rows, &seeds, &dir));
        let ours: Vec<Vec<Vec<f64>>> =
            rows.iter().map(|row| seeds.iter().map(|&s| ours(row, s, &dir)).collect()).collect();
        (sb3.join().expect("the SB3 thread"), ours)
    });
    if let Err(e) = sb3 {
        println!("SB3 not run: {e}");
        return;
    }
    let mut table = String::from(
        "| task | steps | headstart score mean ± sd | SB3 2.9.2 score mean ± sd | difference | one-sided p (headstart < SB3) | verdict |\n|---|---|---|---|---|---|---|\n",
    );
    let mut per_seed = String::new();
    for (row, ours) in rows.iter().zip(ours) {
        let theirs: Vec<Vec<f64>> = match seeds.iter().map(|&s| theirs(row, s, &dir)).collect() {
            Ok(v) => v,
            Err(e) => {
                println!("{}: SB3 snapshot not read: {e}", row.key);
                continue;
            }
        };
        let a: Vec<f64> = ours.iter().map(|e| mean(e)).collect();
        let b: Vec<f64> = theirs.iter().map(|e| mean(e)).collect();
        let w = welch(&a, &b).expect("at least two seeds");
        let one_sided = if w.difference < 0.0 { w.p / 2.0 } else { 1.0 - w.p / 2.0 };
        let verdict = if one_sided < 0.05 { "below SB3" } else { "not below SB3" };
        let (m, sd) = mean_sd(&a);
        let (ms, sds) = mean_sd(&b);
        table += &format!(
            "| {} {} | {} | {m:.1} ± {sd:.1} | {ms:.1} ± {sds:.1} | {:+.1} | {one_sided:.3} | {verdict} |\n",
            row.algo, row.env, row.steps, w.difference
        );
        let list = |v: &[f64]| v.iter().map(|r| format!("{r:.1}")).collect::<Vec<_>>().join(", ");
        let last = |v: &[Vec<f64>]| v.iter().map(|e| e[e.len() - 1]).collect::<Vec<_>>();
        per_seed += &format!(
            "- {} {} (seeds {}): scores headstart {}; SB3 {}. Final snapshots alone: headstart {}; SB3 {}\n",
            row.algo,
            row.env,
            seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
            list(&a),
            list(&b),
            list(&last(&ours)),
            list(&last(&theirs)),
        );
    }
    let report = format!("{table}\n{per_seed}");
    println!(
        "score: the mean of ten evaluations over the last tenth of the budget, {EPISODES} deterministic episodes each, one protocol for both tools:\n\n{report}"
    );
    std::fs::create_dir_all(&dir).expect("target/parity");
    std::fs::write(dir.join("parity.md"), report).expect("target/parity/parity.md");
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let m = mean(v);
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() as f64 - 1.0)).sqrt())
}
