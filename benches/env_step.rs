//! Stepping speed of CartPole-v1 under random actions, and the side-by-side comparison with
//! Gymnasium's Python CartPole-v1 (`../shared/peers/gym_step_rate.py`).
//!
//! `make bench-env` runs it with the peer installed. The criterion groups measure:
//! - `bare`: the ported environment in its `TimeLimit`, stepped through a concrete type;
//! - `dyn_bare`, `guard_bare`: the same behind `Box<dyn Env>`, then also inside `EpisodeGuard`
//!   (where the time between `bare` and `registry` goes);
//! - `registry`: what `Registry::make` returns (the guard and one dynamic call);
//! - `vec8` and `loop8`: eight environments stepped by `VecEnv` or by a plain loop.
//!
//! The side-by-side part then times the `registry` loop and the Python peer in the same run, the
//! way the peer measures itself (200 000 pre-drawn actions, reset on episode end), and prints the
//! ratio; likewise `VecEnv` against the plain loop.

use std::hint::black_box;
use std::time::Instant;

mod common;

use criterion::{Criterion, Throughput};
use headstart::env::classic::{CartPole, CartPoleParams};
use headstart::env::{Action, Env, EnvSpec, Registry, TimeLimit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const STEPS: usize = 200_000;

fn actions(n: usize) -> Vec<Action> {
    let mut rng = StdRng::seed_from_u64(0);
    (0..n).map(|_| Action::Discrete(rng.random_range(0..2))).collect()
}

/// Steps `env` through `actions`, resetting when an episode ends, as the peer does.
fn run_single(env: &mut impl Env, actions: &[Action]) {
    for a in actions {
        let step = env.step(a).unwrap();
        if step.terminated || step.truncated {
            env.reset(None).unwrap();
        }
        black_box(&step.obs);
    }
}

fn run_loop(envs: &mut [impl Env], actions: &[Action]) {
    for chunk in actions.chunks_exact(envs.len()) {
        for (env, a) in envs.iter_mut().zip(chunk) {
            let step = env.step(a).unwrap();
            if step.done() {
                env.reset(None).unwrap();
            }
            black_box(&step.obs);
        }
    }
}

fn run_vec(venv: &mut headstart::env::VecEnv, actions: &[Action]) {
    for chunk in actions.chunks_exact(venv.num_envs()) {
        black_box(venv.step(chunk).unwrap().obs);
    }
}

fn bare() -> TimeLimit<CartPole> {
    let mut env = TimeLimit::new(CartPole::new(CartPoleParams::default()).unwrap(), 500);
    env.reset(Some(0)).unwrap();
    env
}

fn registered() -> headstart::env::registry::RegisteredEnv {
    let mut env = Registry::builtin().make(&EnvSpec::new("CartPole-v1")).unwrap();
    env.reset(Some(0)).unwrap();
    env
}

fn vec8() -> headstart::env::VecEnv {
    let mut venv = Registry::builtin().make_vec(&EnvSpec::new("CartPole-v1"), 8).unwrap();
    venv.reset(Some(0)).unwrap();
    venv
}

fn loop8() -> Vec<headstart::env::registry::RegisteredEnv> {
    (0..8).map(|_| registered()).collect()
}

fn criterion_groups(c: &mut Criterion) {
    let acts = actions(STEPS);
    let mut group = c.benchmark_group("cartpole_random");
    group.throughput(Throughput::Elements(STEPS as u64));
    group.sample_size(20);
    let mut env = bare();
    group.bench_function("bare", |b| b.iter(|| run_single(&mut env, &acts)));
    let mut env: Box<dyn Env> = Box::new(bare());
    group.bench_function("dyn_bare", |b| b.iter(|| run_single(&mut env, &acts)));
    let mut env: Box<dyn Env> = Box::new(headstart::env::EpisodeGuard::new(bare()));
    env.reset(Some(0)).unwrap();
    group.bench_function("guard_bare", |b| b.iter(|| run_single(&mut env, &acts)));
    let mut env = registered();
    group.bench_function("registry", |b| b.iter(|| run_single(&mut env, &acts)));
    let mut venv = vec8();
    group.bench_function("vec8", |b| b.iter(|| run_vec(&mut venv, &acts)));
    let mut envs = loop8();
    group.bench_function("loop8", |b| b.iter(|| run_loop(&mut envs, &acts)));
    group.finish();
}

/// Steps per second of `f` over `STEPS` steps, best of several runs (the least disturbed).
fn best_rate(mut f: impl FnMut()) -> f64 {
    (0..7)
        .map(|_| {
            let t = Instant::now();
            f();
            STEPS as f64 / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

fn gymnasium_rate() -> Result<f64, String> {
    let json = common::run_peer("gym_step_rate.py", &[])?;
    json["steps_per_s"].as_f64().ok_or_else(|| format!("no steps_per_s in {json}"))
}

fn side_by_side() {
    let acts = actions(STEPS);
    println!("\nside by side, CartPole-v1, {STEPS} random steps, best of 7:");
    let mut registry_env = registered();
    let mut bare_env = bare();
    let mut ours = || {
        let r = best_rate(|| run_single(&mut registry_env, &acts));
        let b = best_rate(|| run_single(&mut bare_env, &acts));
        (r, b)
    };
    let (r1, b1) = ours();
    let peer = gymnasium_rate();
    let (r2, b2) = ours();
    let (registry_rate, bare_rate) = (r1.max(r2), b1.max(b2));
    println!("  headstart, Registry::make env:   {registry_rate:>12.0} steps/s");
    println!("  headstart, TimeLimit<CartPole>:  {bare_rate:>12.0} steps/s");
    match peer {
        Ok(peer) => {
            println!("  Gymnasium 1.4.0 (Python):        {peer:>12.0} steps/s");
            println!(
                "  ratio: {:.0}x through the registry, {:.0}x for the concrete type (target: 500x)",
                registry_rate / peer,
                bare_rate / peer
            );
        }
        Err(e) => println!("  peer not run: {e}"),
    }
    let mut venv = vec8();
    let mut envs = loop8();
    let vec_rate = best_rate(|| run_vec(&mut venv, &acts));
    let loop_rate = best_rate(|| run_loop(&mut envs, &acts));
    println!("  VecEnv of 8: {vec_rate:.0} steps/s; plain loop over 8: {loop_rate:.0} steps/s");
    println!("  VecEnv / loop: {:.2} (target: at least 0.5)", vec_rate / loop_rate);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    criterion_groups(&mut c);
    c.final_summary();
    // `cargo test --benches` runs this binary with `--bench` absent: keep that quick.
    if std::env::args().any(|a| a == "--bench") {
        side_by_side();
    }
}
