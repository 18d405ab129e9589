//! Training speed side by side with Stable-Baselines3 2.9 (`../shared/peers/sb3_*.py`): the same
//! algorithm, hyperparameters (the RL Zoo presets), budget and seed, one libtorch thread each,
//! run one after the other in this process's session, reported as a ratio of wall times with
//! both evaluation returns. `make bench-agents` runs it with the peers installed.
//!
//! Each row also reports how close headstart comes to the machine's floor: the useful
//! floating-point work of the run (the matrix products of every forward and backward pass that
//! the algorithm needs, counted from its hyperparameters: [`useful_flops`]) divided by the wall
//! time, as a fraction of the rate this machine achieves, in the same run, on those same layer
//! products at the training batch size ([`matmul_rate`]).
//!
//! `HEADSTART_BENCH=ppo,dqn,sac` picks rows; `HEADSTART_SAC_STEPS` sets SAC's budget (default
//! 20 000, the RL Zoo's for Pendulum-v1). Built with `--features python` it has a SAC
//! HalfCheetah-v5 row through the bridge (`HEADSTART_BENCH=halfcheetah`, budget
//! `HEADSTART_CHEETAH_STEPS`, default 1e5; its peer is `benches/peers/sb3_sac_halfcheetah.py`).

use std::ops::ControlFlow;
use std::time::Instant;

mod common;

use headstart::agent::train::{Curve, Task, train};
use headstart::agent::{AgentConfig, Algo, evaluate, presets};
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
    let sac_steps = std::env::var("HEADSTART_SAC_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let mut rows = vec![
        Row { algo: Algo::Ppo, env: "CartPole-v1", steps: 100_000, script: "sb3_ppo_cartpole.py", eval_episodes: 20 },
        Row { algo: Algo::Dqn, env: "CartPole-v1", steps: 50_000, script: "sb3_dqn_cartpole.py", eval_episodes: 20 },
        Row { algo: Algo::Sac, env: "Pendulum-v1", steps: sac_steps, script: "sb3_sac_pendulum.py", eval_episodes: 10 },
    ];
    // MuJoCo through the bridge (`--features python`; `HEADSTART_BENCH=halfcheetah` picks it).
    if cfg!(feature = "python") {
        let steps = std::env::var("HEADSTART_CHEETAH_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
        rows.push(Row {
            algo: Algo::Sac,
            env: "gym:HalfCheetah-v5",
            steps,
            script: "peers/sb3_sac_halfcheetah.py",
            eval_episodes: 10,
        });
    }
    let only = std::env::var("HEADSTART_BENCH").ok();
    println!("training wall time, seed 0, one libtorch thread each (ratio = SB3 / headstart):");
    println!(
        "{:<22} {:>8} {:>12} {:>10} {:>12} {:>10} {:>7} {:>9} {:>9} {:>7}",
        "task", "steps", "headstart s", "return", "SB3 s", "return", "ratio", "GFLOP/s", "floor", "of it"
    );
    let picked = |r: &Row| {
        only.as_ref().is_none_or(|o| {
            o.split(',')
                .any(|k| if r.env.starts_with("gym:") { r.env.to_lowercase().contains(k) } else { k == r.algo.name() })
        })
    };
    for row in rows.iter().filter(|r| picked(r)) {
        let (secs, ret) = ours(row, 0);
        let config = presets::get(row.algo, row.env).expect("a preset").config;
        let (flops, shapes) = useful_flops(&config, row.env, row.steps);
        let floor = matmul_rate(&shapes);
        let rate = flops / secs;
        let task = format!("{} {}", row.algo, row.env);
        let floor_cols = format!("{:>9.1} {:>9.1} {:>6.0}%", rate / 1e9, floor / 1e9, 100.0 * rate / floor);
        match peer(row, 0) {
            Ok((peer_secs, peer_ret)) => println!(
                "{task:<22} {:>8} {secs:>12.1} {ret:>10.1} {peer_secs:>12.1} {peer_ret:>10.1} {:>6.2}x {floor_cols}",
                row.steps,
                peer_secs / secs
            ),
            Err(e) => println!("{task:<22} {:>8} {secs:>12.1} {ret:>10.1}   peer not run: {e} {floor_cols}", row.steps),
        }
    }
}

/// A network's layers as `(inputs, outputs)`.
fn layers(input: usize, hidden: &[usize], output: usize) -> Vec<(usize, usize)> {
    let widths: Vec<usize> = std::iter::once(input).chain(hidden.iter().copied()).chain([output]).collect();
    widths.windows(2).map(|w| (w[0], w[1])).collect()
}

/// Multiply-adds ×2 of a forward pass of `rows` rows.
fn forward(rows: usize, net: &[(usize, usize)]) -> f64 {
    net.iter().map(|(i, o)| 2.0 * (rows * i * o) as f64).sum()
}

/// A backward pass: every layer's weight gradient, and the gradient of every layer's input but
/// the first's (with `first_input`, the first's too: SAC's actor loss needs the critics' action
/// gradient).
fn backward(rows: usize, net: &[(usize, usize)], first_input: bool) -> f64 {
    let inputs = if first_input { forward(rows, net) } else { forward(rows, &net[1..]) };
    forward(rows, net) + inputs
}

/// The floating-point operations a training run of `steps` needs (matrix products only:
/// activations, losses and the optimiser are linear in the parameters and small beside them),
/// and the layer shapes `(rows, inputs, outputs)` of its gradient steps.
///
/// - PPO: per update `n_envs × n_steps / batch_size × n_epochs` minibatches, each a forward and
///   backward pass of the actor and the critic; acting: both networks on `n_envs` rows a step.
/// - DQN: per gradient step a forward pass of the target network (and of the online network with
///   Double DQN) on the next observations, a forward and backward pass of the online network;
///   acting: one forward pass a step.
/// - SAC: per gradient step the actor (mean and `log σ` heads) on the observations and on the
///   next observations, both target critics, both critics forward and backward, both critics
///   again for the actor's loss with their input gradients, the actor backward; acting: the
///   actor on one row a step.
fn useful_flops(config: &AgentConfig, env: &str, steps: u64) -> (f64, Vec<(usize, usize, usize)>) {
    let probe = Registry::builtin().make(&EnvSpec::new(env)).expect("a built-in environment");
    let obs = probe.observation_space().flat_dim();
    let actions = match probe.action_space() {
        headstart::env::Space::Discrete { n } => *n,
        space => space.flat_dim(),
    };
    let steps = steps as f64;
    let shapes = |rows: usize, net: &[(usize, usize)]| net.iter().map(|&(i, o)| (rows, i, o)).collect::<Vec<_>>();
    match config {
        AgentConfig::Ppo(c) => {
            let critic = c.critic_hidden.as_ref().unwrap_or(&c.net.hidden);
            on_policy(obs, actions, steps, (&c.net.hidden, critic), (c.n_envs, c.n_steps), c.batch_size, c.n_epochs)
        }
        // A2C: PPO's machinery, one pass over one minibatch that is the whole rollout.
        AgentConfig::A2c(c) => {
            let critic = c.critic_hidden.as_ref().unwrap_or(&c.net.hidden);
            on_policy(obs, actions, steps, (&c.net.hidden, critic), (c.n_envs, c.n_steps), c.n_envs * c.n_steps, 1)
        }
        AgentConfig::Dqn(c) => {
            let q = layers(obs, &c.net.hidden, actions);
            let updates = (steps - c.learning_starts as f64).max(0.0) / c.train_freq as f64;
            let gradient_steps =
                updates * if c.gradient_steps < 0 { c.train_freq as f64 } else { c.gradient_steps as f64 };
            let next = if c.double_q { 2.0 } else { 1.0 } * forward(c.batch_size, &q);
            let per_step = next + forward(c.batch_size, &q) + backward(c.batch_size, &q, false);
            (gradient_steps * per_step + steps * forward(1, &q), shapes(c.batch_size, &q))
        }
        AgentConfig::Sac(c) => {
            let n = c.batch_size;
            let mut actor = layers(obs, &c.net.hidden, actions);
            actor.push((*c.net.hidden.last().unwrap_or(&obs), actions));
            let critic = layers(obs + actions, &c.net.hidden, 1);
            let gradient_steps =
                (steps - c.learning_starts as f64).max(0.0) / c.train_freq as f64 * c.gradient_steps as f64;
            let per_step = 2.0 * forward(n, &actor)
                + 2.0 * forward(n, &critic)
                + 2.0 * (forward(n, &critic) + backward(n, &critic, false))
                + 2.0 * (forward(n, &critic) + (backward(n, &critic, true) - forward(n, &critic)))
                + backward(n, &actor, false);
            (gradient_steps * per_step + steps * forward(1, &actor), shapes(n, &critic))
        }
        AgentConfig::Td3(c) => {
            let n = c.batch_size;
            let actor = layers(obs, &c.net.hidden, actions);
            let critic = layers(obs + actions, &c.net.hidden, 1);
            let gradient_steps =
                (steps - c.learning_starts as f64).max(0.0) / c.train_freq as f64 * c.gradient_steps as f64;
            // Every step: the target actor, both target critics, both critics forward and backward;
            // every `policy_delay`-th: the actor, the first critic with its input gradient, the
            // actor backward.
            let critics = forward(n, &actor)
                + 2.0 * forward(n, &critic)
                + 2.0 * (forward(n, &critic) + backward(n, &critic, false));
            let actor_step = forward(n, &actor)
                + forward(n, &critic)
                + (backward(n, &critic, true) - forward(n, &critic))
                + backward(n, &actor, false);
            let per_step = critics + actor_step / c.policy_delay as f64;
            (gradient_steps * per_step + steps * forward(c.n_envs, &actor), shapes(n, &critic))
        }
    }
}

/// PPO's and A2C's useful work: per minibatch the actor and the critic forward and backward, and
/// both networks on `n_envs` rows a step while acting.
fn on_policy(
    obs: usize,
    actions: usize,
    steps: f64,
    (actor_hidden, critic_hidden): (&[usize], &[usize]),
    (n_envs, n_steps): (usize, usize),
    batch_size: usize,
    n_epochs: usize,
) -> (f64, Vec<(usize, usize, usize)>) {
    let actor = layers(obs, actor_hidden, actions);
    let critic = layers(obs, critic_hidden, 1);
    let rollout = (n_envs * n_steps) as f64;
    let minibatches = (rollout / batch_size as f64).ceil() * n_epochs as f64 * (steps / rollout);
    let per_minibatch = forward(batch_size, &actor)
        + backward(batch_size, &actor, false)
        + forward(batch_size, &critic)
        + backward(batch_size, &critic, false);
    let acting = steps / n_envs as f64 * (forward(n_envs, &actor) + forward(n_envs, &critic));
    let shapes = |rows: usize, net: &[(usize, usize)]| net.iter().map(|&(i, o)| (rows, i, o)).collect::<Vec<_>>();
    let mut s = shapes(batch_size, &actor);
    s.extend(shapes(batch_size, &critic));
    (minibatches * per_minibatch + acting, s)
}

/// The rate (FLOP/s) of this machine's matrix products `[rows, in] × [in, out]` for the given
/// shapes, one after the other, on one thread: the floor a run made only of them would reach.
fn matmul_rate(shapes: &[(usize, usize, usize)]) -> f64 {
    let pairs: Vec<(tch::Tensor, tch::Tensor)> = shapes
        .iter()
        .map(|&(r, i, o)| {
            (
                tch::Tensor::randn([r as i64, i as i64], tch::kind::FLOAT_CPU),
                tch::Tensor::randn([o as i64, i as i64], tch::kind::FLOAT_CPU),
            )
        })
        .collect();
    let flops: f64 = shapes.iter().map(|&(r, i, o)| 2.0 * (r * i * o) as f64).sum();
    let round = || {
        for (x, w) in &pairs {
            let _ = x.mm(&w.tr());
        }
    };
    for _ in 0..50 {
        round();
    }
    let start = Instant::now();
    let mut rounds = 0;
    while start.elapsed().as_secs_f64() < 1.0 {
        round();
        rounds += 1;
    }
    flops * rounds as f64 / start.elapsed().as_secs_f64()
}
