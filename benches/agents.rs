//! Training speed side by side with Stable-Baselines3 2.9 (`../shared/peers/sb3_*.py`): the same
//! algorithm, hyperparameters (the RL Zoo presets), budget and seed, one libtorch thread each,
//! run one after the other in this process's session, reported as a ratio of wall times with
//! both evaluation returns. `make bench-agents` runs it with the peers installed.
//!
//! `HEADSTART_BENCH=ppo,dqn,sac` picks rows; `HEADSTART_SAC_STEPS` sets SAC's budget (default
//! 5000: SAC on Pendulum-v1 is bound by its 256-wide matrix products, about 25 ms a step on
//! both sides).

use std::ops::ControlFlow;
use std::time::Instant;

mod common;

use headstart::agent::train::{Curve, Task, train};
use headstart::agent::{Algo, evaluate, presets};
use headstart::env::{EnvSpec, Registry};

struct Row {
    algo: Algo,
    env: &'static str,
    steps: u64,
    script: &'static str,
    eval_episodes: usize,
}

/// Trains headstart's agent and returns (seconds, mean deterministic return).
fn ours(row: &Row, seed: u64) -> (f64, f64) {
    let registry = Registry::builtin();
    let spec = EnvSpec::new(row.env);
    let config = presets::get(row.algo, row.env).expect("a preset").config;
    let probe = registry.make(&spec).unwrap();
    let mut agent = config.build(probe.observation_space(), probe.action_space(), seed).unwrap();
    let mut curve = Curve::default();
    let start = Instant::now();
    train(&registry, &Task::Env(spec.clone()), agent.as_mut(), row.steps, &mut curve, &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    let secs = start.elapsed().as_secs_f64();
    let mut env = registry.make(&spec).unwrap();
    let ret = evaluate(agent.as_ref(), env.as_mut(), row.eval_episodes, true, seed).unwrap().mean;
    (secs, ret)
}

/// Runs the peer script and returns (seconds, mean deterministic return).
fn peer(row: &Row, seed: u64) -> Result<(f64, f64), String> {
    let json = common::run_peer(row.script, &[row.steps.to_string(), seed.to_string()])?;
    let secs = json["train_s"].as_f64().ok_or_else(|| format!("no train_s in {json}"))?;
    let ret = json["eval_mean"].as_f64().ok_or_else(|| format!("no eval_mean in {json}"))?;
    Ok((secs, ret))
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`: nothing to time then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benches/agents.rs: run with `cargo bench --bench agents` (or `make bench-agents`)");
        return;
    }
    tch::set_num_threads(1);
    let sac_steps = std::env::var("HEADSTART_SAC_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(5000);
    let rows = [
        Row { algo: Algo::Ppo, env: "CartPole-v1", steps: 100_000, script: "sb3_ppo_cartpole.py", eval_episodes: 20 },
        Row { algo: Algo::Dqn, env: "CartPole-v1", steps: 50_000, script: "sb3_dqn_cartpole.py", eval_episodes: 20 },
        Row { algo: Algo::Sac, env: "Pendulum-v1", steps: sac_steps, script: "sb3_sac_pendulum.py", eval_episodes: 10 },
    ];
    let only = std::env::var("HEADSTART_BENCH").ok();
    println!("training wall time, seed 0, one libtorch thread each (ratio = SB3 / headstart):");
    println!(
        "{:<22} {:>8} {:>12} {:>10} {:>12} {:>10} {:>7}",
        "task", "steps", "headstart s", "return", "SB3 s", "return", "ratio"
    );
    for row in rows.iter().filter(|r| only.as_ref().is_none_or(|o| o.split(',').any(|k| k == r.algo.name()))) {
        let (secs, ret) = ours(row, 0);
        let task = format!("{} {}", row.algo, row.env);
        match peer(row, 0) {
            Ok((peer_secs, peer_ret)) => println!(
                "{task:<22} {:>8} {secs:>12.1} {ret:>10.1} {peer_secs:>12.1} {peer_ret:>10.1} {:>6.2}x",
                row.steps,
                peer_secs / secs
            ),
            Err(e) => println!("{task:<22} {:>8} {secs:>12.1} {ret:>10.1}   peer not run: {e}", row.steps),
        }
    }
}
