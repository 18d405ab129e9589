//! What sharing PPO's trunk saves on pixels, side by side in one run: the RL Zoo's Atari PPO
//! (the Nature CNN and its 512-wide layer over four stacked 84x84 screens, 8 environments of 128
//! steps, 4 epochs of minibatches of 256) on Breakout through the ALE (`envs/atari-breakout.ron`),
//! trained with a trunk each for the actor and the critic and with one trunk they share
//! (`share_trunk`, the Zoo's and SB3's own network), alternated over three rounds; the median
//! ratio of agent steps per second. `make bench-pixels` runs it (about 3 minutes on one core;
//! `HEADSTART_BENCH_STEPS` sets the steps a run, 2 048 by default: two rollouts and updates).

use std::ops::ControlFlow;
use std::time::Instant;

use headstart::agent::train::{Curve, Task, train};
use headstart::agent::{AgentConfig, Algo, presets};
use headstart::env::{Registry, Variant};

/// Agent steps per second of one run.
fn rate(registry: &Registry, variant: &Variant, config: &AgentConfig, steps: u64) -> f64 {
    let probe = registry.make(&variant.env).expect("the ALE through the bridge (make setup-python)");
    let mut agent = config.build(probe.observation_space(), probe.action_space(), 0).unwrap();
    let mut curve = Curve::default();
    let start = Instant::now();
    train(registry, &Task::Env(variant.env.clone()), agent.as_mut(), steps, &mut curve, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    steps as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    tch::set_num_threads(1);
    let registry = Registry::builtin();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("envs/atari-breakout.ron");
    let variant = Variant::load(&path).unwrap();
    let steps: u64 = std::env::var("HEADSTART_BENCH_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(2048);
    let shared = presets::get(Algo::Ppo, "atari").expect("the atari preset").config;
    let AgentConfig::Ppo(c) = &shared else { panic!("a PPO preset") };
    assert!(c.share_trunk, "the atari preset shares its trunk");
    let apart = AgentConfig::Ppo(headstart::agent::PpoConfig { share_trunk: false, ..c.clone() });
    let (mut a, mut s) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        a.push(rate(&registry, &variant, &apart, steps));
        s.push(rate(&registry, &variant, &shared, steps));
    }
    let (a, s) = (median(a), median(s));
    println!("| PPO atari preset on {} ({steps} steps, one core) | agent steps/s |", variant.env.id);
    println!("|---|---|");
    println!("| a trunk each (actor, critic) | {a:.1} |");
    println!("| one shared trunk (`share_trunk`) | {s:.1} |");
    println!("| ratio (shared / apart) | {:.2} |", s / a);
}
