//! Procgen through the bridge (feature `python`; `make setup-python` installs the package):
//! `gym:procgen-<game>-v0` replays Procgen's own gym3 environment step for step, its level
//! options are parameters (the training levels and the unseen ones of Cobbe et al. 2020), and
//! options Procgen would abort on are errors naming them.
#![cfg(feature = "python")]

mod common;

use headstart::env::{Action, Env, EnvSpec, Registry, Space};

/// Procgen's own environment (`tests/python/procgen_direct.py`) with the actions `(7 t + 3) mod 15`.
fn direct(game: &str, seed: u64, num_levels: u32, mode: &str, steps: usize) -> serde_json::Value {
    let args = [game.to_string(), seed.to_string(), num_levels.to_string(), "0".into(), mode.into(), steps.to_string()];
    common::python_json("procgen_direct.py", &args)
}

/// A frame's checksum, as `procgen_direct.py` computes it: each byte (read as a float) times
/// its index mod 7919, plus one, summed (a transposed or reordered frame sums otherwise).
fn sum(obs: &[f32]) -> i64 {
    obs.iter().enumerate().map(|(i, &v)| v as i64 * (i as i64 % 7919 + 1)).sum()
}

fn make(spec: &EnvSpec) -> Box<dyn Env> {
    Registry::builtin().make(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

/// Starpilot on Procgen's 200 training levels, easy mode, seed 5: 1 000 steps through the bridge
/// give Procgen's rewards, episode ends (14 of them, each a termination, with whether the level
/// was completed) and frames, after every end the next level's first frame as gym3 gives it.
#[test]
fn the_bridge_replays_procgen_itself() {
    let spec = EnvSpec::new("gym:procgen-starpilot-v0?distribution_mode=easy").with("num_levels", 200.0);
    let mut env = make(&spec);
    assert_eq!(env.action_space(), &Space::Discrete { n: 15 });
    assert!(matches!(env.observation_space(), Space::Box { shape, .. } if shape == &[64, 64, 3]));
    let reference = direct("starpilot", 5, 200, "easy", 1000);
    let (mut obs, _) = env.reset(Some(5)).unwrap();
    assert_eq!(sum(&obs), reference["first"].as_i64().unwrap());
    let (mut ends, mut total) = (0, 0.0);
    for t in 0..1000 {
        let step = env.step(&Action::Discrete((7 * t + 3) % 15)).unwrap();
        let (reward, done) = (step.reward, step.done());
        assert_eq!(reward, reference["rewards"][t].as_f64().unwrap(), "reward at step {t}");
        assert_eq!(done, reference["firsts"][t].as_bool().unwrap(), "episode end at step {t}");
        assert!(!step.truncated, "every end is a termination");
        if done {
            let complete = reference["complete"][t].as_bool().unwrap();
            assert_eq!(step.info.get("level_complete"), Some(f64::from(u8::from(complete))), "step {t}");
        }
        obs = if done { env.reset(None).unwrap().0 } else { step.obs };
        assert_eq!(sum(&obs), reference["sums"][t].as_i64().unwrap(), "frame at step {t}");
        (ends, total) = (ends + usize::from(done), total + reward);
    }
    assert!(ends > 3 && total > 0.0, "the check saw episodes end ({ends}) and rewards ({total})");
}

/// One level (`num_levels: 1`) starts every seed on the same level; all levels (0) start seeds
/// on different ones; `start_level` picks where the levels begin. Options Procgen would end the
/// process on (negative ones, a mode the game lacks) and an unknown mode are errors naming them.
#[test]
fn levels_are_parameters_and_bad_options_errors() {
    let first = |num_levels: f64, start_level: f64, seed: u64| {
        let spec = EnvSpec::new("gym:procgen-coinrun-v0").with("num_levels", num_levels).with("start_level", start_level);
        sum(&make(&spec).reset(Some(seed)).unwrap().0)
    };
    assert_eq!(first(1.0, 7.0, 1), first(1.0, 7.0, 2), "one level: the same start");
    assert_ne!(first(1.0, 7.0, 1), first(1.0, 8.0, 1), "another level");
    assert_ne!(first(0.0, 0.0, 1), first(0.0, 0.0, 2), "every level: seeds differ");
    let error = |spec: EnvSpec| Registry::builtin().make(&spec).err().expect("refused").to_string();
    let e = error(EnvSpec::new("gym:procgen-coinrun-v0").with("num_levels", -1.0));
    assert!(e.contains("num_levels") && e.contains("procgen-coinrun-v0"), "{e}");
    let e = error(EnvSpec::new("gym:procgen-coinrun-v0?distribution_mode=medium"));
    assert!(e.contains("medium") && e.contains("distribution mode"), "{e}");
    let e = error(EnvSpec::new("gym:procgen-coinrun-v0?distribution_mode=memory"));
    assert!(e.contains("memory") && e.contains("coinrun has no such mode"), "{e}");
    let e = error(EnvSpec::new("gym:procgen-coinrun-v0?distribution_mode=exploration").with("num_levels", 5.0));
    assert!(e.contains("exploration") && e.contains("num_levels"), "{e}");
    // Seeds beyond Procgen's 32 bits (a mixture draws 64-bit ones) are folded into them.
    let mut env = make(&EnvSpec::new("gym:procgen-coinrun-v0"));
    let mut first = |seed: u64| sum(&env.reset(Some(seed)).unwrap().0);
    let high = first(u64::MAX);
    assert_eq!(high, first(u64::MAX % (1 << 31)));
    assert_ne!(high, first(3), "another seed, another level");
}
