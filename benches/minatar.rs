//! MinAtar's step rate, side by side in one run: the native port (`MinAtar/<Game>-v0` from the
//! registry, an observation per step) against the `minatar` package (1.0.15) in the bridge's
//! virtualenv, driven the way its own examples drive it (`Environment(game)`, `act`, `state()`),
//! with the same pre-drawn actions and the default sticky actions, reset when an episode ends;
//! the ratio of steps per second (medians of three alternated runs). `make bench-minatar` runs it;
//! the README reports it.

use std::process::Command;
use std::time::Instant;

use headstart::env::{Action, Env, EnvSpec, Registry};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PYTHON_LOOP: &str = r#"
import sys, time, numpy as np
from minatar import Environment
game, path = sys.argv[1], sys.argv[2]
actions = [int(a) for a in np.loadtxt(path, dtype=np.int64, ndmin=1)]
env = Environment(game)
env.seed(0)
env.reset()
start = time.perf_counter()
for a in actions:
    r, terminal = env.act(a)
    obs = env.state()
    if terminal:
        env.reset()
print(len(actions) / (time.perf_counter() - start))
"#;

const GAMES: [(&str, &str); 5] = [
    ("asterix", "Asterix"),
    ("breakout", "Breakout"),
    ("freeway", "Freeway"),
    ("seaquest", "Seaquest"),
    ("space_invaders", "SpaceInvaders"),
];

fn native_rate(registry: &Registry, id: &str, actions: &[Action]) -> f64 {
    let mut env = registry.make(&EnvSpec::new(id)).unwrap();
    env.reset(Some(0)).unwrap();
    let start = Instant::now();
    for a in actions {
        let step = env.step(a).unwrap();
        if step.done() {
            env.reset(None).unwrap();
        }
        std::hint::black_box(&step.obs);
    }
    actions.len() as f64 / start.elapsed().as_secs_f64()
}

fn python_rate(game: &str, actions: &[Action]) -> f64 {
    let path = std::env::temp_dir().join(format!("headstart-bench-minatar-{}.txt", std::process::id()));
    let rows: Vec<String> = actions.iter().map(|a| a.to_string()).collect();
    std::fs::write(&path, rows.join("\n")).unwrap();
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-gym/bin/python");
    let out = Command::new(python)
        .args(["-W", "ignore", "-c", PYTHON_LOOP, game, path.to_str().unwrap()])
        .output()
        .expect("the bridge's virtualenv (make setup-python)");
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().parse().unwrap()
}

fn main() {
    let registry = Registry::builtin();
    let steps: usize = std::env::var("HEADSTART_BENCH_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let mut rng = StdRng::seed_from_u64(0);
    let actions: Vec<Action> = (0..steps).map(|_| Action::Discrete(rng.random_range(0..6))).collect();
    println!("| game | headstart steps/s | minatar (Python) steps/s | ratio |");
    println!("|---|---|---|---|");
    for (game, name) in GAMES {
        let id = format!("MinAtar/{name}-v0");
        native_rate(&registry, &id, &actions[..steps / 10]); // warm up
        let (mut ours, mut theirs): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            ours.push(native_rate(&registry, &id, &actions));
            theirs.push(python_rate(game, &actions[..steps / 4]));
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[1]
        };
        let (ours, theirs) = (median(&mut ours), median(&mut theirs));
        println!("| {name} | {ours:.0} | {theirs:.0} | {:.0}x |", ours / theirs);
    }
}
