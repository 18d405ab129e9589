//! The Gymnasium bridge's cost, side by side in one run: Gymnasium environments stepped through
//! headstart (`gym:<id>`, the embedded interpreter) against the same loop written in Python in the
//! bridge's virtualenv (the same pre-drawn actions on both sides, reset when an episode ends), reported as a
//! ratio of steps per second (medians of three alternated runs). `make bench-gym` runs it; the
//! README reports it.

use std::process::Command;
use std::time::Instant;

use headstart::env::{Action, Env, EnvSpec, Registry, Space};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PYTHON_LOOP: &str = r#"
import sys, time, numpy as np, gymnasium as gym
name, path = sys.argv[1], sys.argv[2]
env = gym.make(name)
table = np.loadtxt(path, ndmin=2)
if isinstance(env.action_space, gym.spaces.Discrete):
    actions = [int(a) for a in table[:, 0]]
else:
    actions = [row.astype(env.action_space.dtype) for row in table]
steps = len(actions)
env.reset(seed=0)
start = time.perf_counter()
for a in actions:
    obs, r, term, trunc, info = env.step(a)
    if term or trunc:
        env.reset()
print(steps / (time.perf_counter() - start))
"#;

/// `steps` random actions of `id`'s action space: the same ones for both sides (MuJoCo's cost
/// depends on the contacts that the actions lead to).
fn actions(registry: &Registry, id: &str, steps: usize) -> Vec<Action> {
    let env = registry.make(&EnvSpec::new(format!("gym:{id}"))).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    (0..steps)
        .map(|_| match env.action_space() {
            Space::Discrete { n } => Action::Discrete(rng.random_range(0..*n)),
            Space::Box { low, high, .. } => {
                Action::continuous(&low.iter().zip(high).map(|(&l, &h)| rng.random_range(l..=h)).collect::<Vec<_>>())
            }
            Space::Dict { .. } => unreachable!("{id}: an action space is never a Dict"),
        })
        .collect()
}

fn headstart_rate(registry: &Registry, id: &str, actions: &[Action]) -> f64 {
    let mut env = registry.make(&EnvSpec::new(format!("gym:{id}"))).unwrap();
    env.reset(Some(0)).unwrap();
    let start = Instant::now();
    for a in actions {
        let step = env.step(a).unwrap();
        if step.done() {
            env.reset(None).unwrap();
        }
    }
    actions.len() as f64 / start.elapsed().as_secs_f64()
}

fn python_rate(id: &str, actions: &[Action]) -> f64 {
    let path = std::env::temp_dir().join(format!("headstart-bench-actions-{}.txt", std::process::id()));
    let rows: Vec<String> = actions
        .iter()
        .map(|a| match a {
            Action::Discrete(i) => i.to_string(),
            Action::Continuous(v) => v.iter().map(|x| format!("{x:e}")).collect::<Vec<_>>().join(" "),
        })
        .collect();
    std::fs::write(&path, rows.join("\n")).unwrap();
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-gym/bin/python");
    let out =
        Command::new(python).args(["-c", PYTHON_LOOP, id, path.to_str().unwrap()]).output().expect("the bridge's venv");
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn main() {
    let registry = Registry::builtin();
    println!("| environment | headstart (gym:) steps/s | Python loop steps/s | ratio |");
    println!("|---|---|---|---|");
    for (id, steps) in [("CartPole-v1", 100_000), ("Pendulum-v1", 50_000), ("HalfCheetah-v5", 20_000)] {
        let actions = actions(&registry, id, steps);
        headstart_rate(&registry, id, &actions[..steps / 10]); // warm up
        // Alternated three times (the machine is noisy); the medians.
        let (mut ours, mut theirs): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            ours.push(headstart_rate(&registry, id, &actions));
            theirs.push(python_rate(id, &actions));
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[1]
        };
        let (ours, theirs) = (median(&mut ours), median(&mut theirs));
        println!("| {id} | {ours:.0} | {theirs:.0} | {:.2}x |", ours / theirs);
    }
}
