//! Every trajectory recorded from Gymnasium 1.4.0 in `../shared/golden/classic_control` is
//! replayed step by step: observations within 1e-5, rewards within 1e-6, `terminated` and
//! `truncated` exactly (the tolerances of that folder's README).

use std::path::PathBuf;

use headstart::env::classic::*;
use headstart::env::{Action, Env, Params, Registry, TimeLimit};
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    name: String,
    env_id: String,
    params: std::collections::BTreeMap<String, f64>,
    start_state: Vec<f64>,
    steps: Vec<GoldenStep>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum GoldenAction {
    Discrete(usize),
    Continuous(Vec<f32>),
}

#[derive(Deserialize)]
struct GoldenStep {
    action: GoldenAction,
    obs: Vec<f64>,
    reward: f64,
    terminated: bool,
    truncated: bool,
}

fn golden_dir() -> PathBuf {
    let dir = std::env::var_os("HEADSTART_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
        .join("golden/classic_control");
    assert!(
        dir.is_dir(),
        "golden trajectories not found at {}: put the shared folder beside the repository or set HEADSTART_SHARED",
        dir.display()
    );
    dir
}

/// The bare environment, in the recorded start state. Gymnasium's attribute names map to ours
/// by lower-casing (`LINK_LENGTH_1` is `link_length_1`).
fn make_at_start(g: &Golden) -> Box<dyn Env> {
    let params: Params = g.params.iter().map(|(k, v)| (k.to_lowercase(), *v)).collect();
    let s = &g.start_state;
    match g.env_id.as_str() {
        "CartPole-v1" => {
            let mut env = CartPole::new(CartPoleParams::from_overrides(&params).unwrap()).unwrap();
            env.set_state([s[0], s[1], s[2], s[3]]);
            Box::new(env)
        }
        "Acrobot-v1" => {
            let mut env = Acrobot::new(AcrobotParams::from_overrides(&params).unwrap()).unwrap();
            env.set_state([s[0], s[1], s[2], s[3]]);
            Box::new(env)
        }
        "MountainCar-v0" => {
            let mut env = MountainCar::new(MountainCarParams::from_overrides(&params).unwrap()).unwrap();
            env.set_state([s[0], s[1]]);
            Box::new(env)
        }
        "MountainCarContinuous-v0" => {
            let mut env =
                ContinuousMountainCar::new(ContinuousMountainCarParams::from_overrides(&params).unwrap()).unwrap();
            env.set_state([s[0], s[1]]);
            Box::new(env)
        }
        "Pendulum-v1" => {
            let mut env = Pendulum::new(PendulumParams::from_overrides(&params).unwrap()).unwrap();
            env.set_state([s[0], s[1]]);
            Box::new(env)
        }
        other => panic!("golden file {} has an unknown env_id {other}", g.name),
    }
}

fn replay(g: &Golden) -> Result<(), String> {
    let limit = Registry::builtin().entry(&g.env_id).unwrap().episode_limit().unwrap();
    let mut env = TimeLimit::new(make_at_start(g), limit);
    for (t, expected) in g.steps.iter().enumerate() {
        let action = match &expected.action {
            GoldenAction::Discrete(a) => Action::Discrete(*a),
            GoldenAction::Continuous(v) => Action::continuous(v),
        };
        let step = env.step(&action).map_err(|e| format!("step {t}: {e}"))?;
        let worst = step.obs.iter().zip(&expected.obs).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
        if step.obs.len() != expected.obs.len() || worst > 1e-5 {
            return Err(format!("step {t}: obs {:?}, expected {:?}", step.obs.as_slice(), expected.obs));
        }
        if (step.reward - expected.reward).abs() > 1e-6 {
            return Err(format!("step {t}: reward {}, expected {}", step.reward, expected.reward));
        }
        if (step.terminated, step.truncated) != (expected.terminated, expected.truncated) {
            return Err(format!(
                "step {t}: terminated/truncated {}/{}, expected {}/{}",
                step.terminated, step.truncated, expected.terminated, expected.truncated
            ));
        }
    }
    let last = g.steps.last().ok_or("no steps")?;
    if !(last.terminated || last.truncated) {
        return Err("the recorded episode does not end".into());
    }
    Ok(())
}

#[test]
fn every_golden_trajectory_is_reproduced() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 11, "expected the 11 recorded trajectories, found {}", files.len());
    let mut failures = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for file in &files {
        let g: Golden = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        ids.insert(g.env_id.clone());
        if let Err(e) = replay(&g) {
            failures.push(format!("{} ({} steps): {e}", g.name, g.steps.len()));
        }
    }
    assert_eq!(ids.len(), 5, "every classic-control environment has a recording: {ids:?}");
    assert!(
        failures.is_empty(),
        "{} of {} trajectories diverge:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
