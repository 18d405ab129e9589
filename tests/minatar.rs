//! MinAtar's five games against the `minatar` package (1.0.15): the golden trajectories of
//! `tests/golden/minatar` (recorded by `tests/python/minatar_golden.py`: every parameter, both
//! action sets, sticky actions, seeds above 2^32, continued streams) replayed bit for bit, and
//! with the `python` feature the package itself stepped beside the native port through the
//! Gymnasium bridge on seeds the golden files do not hold.

use std::path::Path;

use headstart::env::{Action, Env, EnvError, EnvSpec, Registry, Space, check_registered};
use serde::Deserialize;

const GAMES: [&str; 5] = ["Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders"];

#[derive(Deserialize)]
struct Golden {
    env_id: String,
    params: std::collections::BTreeMap<String, f64>,
    episodes: Vec<Episode>,
}

#[derive(Deserialize)]
struct Episode {
    seed: Option<u64>,
    reset_obs: String,
    steps: Vec<(usize, f64, bool, String)>,
    cut: bool,
}

/// An observation's bits as `np.packbits` packs them (first cell the top bit), in hex.
fn bits(obs: &[f32]) -> String {
    obs.chunks(8)
        .map(|byte| byte.iter().enumerate().fold(0u8, |acc, (i, &v)| acc | (u8::from(v != 0.0) << (7 - i))))
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn golden_trajectories_of_the_package_are_reproduced_bit_for_bit() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/minatar");
    let registry = Registry::builtin();
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 20, "four cases per game in {}", dir.display());
    let (mut steps, mut games) = (0, std::collections::BTreeSet::new());
    for path in files {
        let golden: Golden = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut spec = EnvSpec::new(&golden.env_id);
        spec.params = golden.params.clone();
        let mut env = registry.make(&spec).unwrap();
        games.insert(golden.env_id.clone());
        for (e, episode) in golden.episodes.iter().enumerate() {
            let at = |t: usize| format!("{} episode {e} step {t}", path.display());
            let (obs, _) = env.reset(episode.seed).unwrap();
            assert_eq!(bits(&obs), episode.reset_obs, "{}: the reset's observation", at(0));
            for (t, (action, reward, terminated, obs)) in episode.steps.iter().enumerate() {
                let step = env.step(&Action::Discrete(*action)).unwrap();
                assert_eq!(step.reward, *reward, "{}: reward", at(t));
                assert_eq!(step.terminated, *terminated, "{}: terminated", at(t));
                assert!(!step.truncated, "{}: MinAtar has no time limit", at(t));
                assert_eq!(&bits(&step.obs), obs, "{}: observation", at(t));
                steps += 1;
            }
            assert!(episode.cut || episode.steps.last().is_some_and(|s| s.2), "{}: ends terminated", at(0));
        }
    }
    assert_eq!(games.len(), 10, "every game in both action sets: {games:?}");
    assert!(steps > 15_000, "{steps} steps replayed");
}

#[test]
fn every_game_keeps_the_environment_contract() {
    let registry = Registry::builtin();
    for game in GAMES {
        for version in ["v0", "v1"] {
            let id = format!("MinAtar/{game}-{version}");
            check_registered(&registry, &EnvSpec::new(&id)).unwrap_or_else(|e| panic!("{id}: {e}"));
            let env = registry.make(&EnvSpec::new(&id)).unwrap();
            let Space::Box { shape, low, high } = env.observation_space() else { panic!("{id}: a Box") };
            assert_eq!(&shape[..2], [10, 10], "{id}");
            assert!(low.iter().all(|&l| l == 0.0) && high.iter().all(|&h| h == 1.0), "{id}");
            let n = match env.action_space() {
                Space::Discrete { n } => *n,
                other => panic!("{id}: {other:?}"),
            };
            let minimal = [("Asterix", 5), ("Breakout", 3), ("Freeway", 3), ("Seaquest", 6), ("SpaceInvaders", 4)];
            let expected = if version == "v0" { 6 } else { minimal.iter().find(|m| m.0 == game).unwrap().1 };
            assert_eq!(n, expected, "{id}: actions");
        }
    }
}

#[test]
fn bad_parameters_and_actions_are_errors_that_name_them() {
    let registry = Registry::builtin();
    let make = |id: &str, name: &str, value: f64| registry.make(&EnvSpec::new(id).with(name, value)).err();
    let error = make("MinAtar/Breakout-v1", "sticky_action_prob", 1.5).unwrap().to_string();
    assert!(error.contains("sticky_action_prob") && error.contains("[0, 1]"), "{error}");
    let error = make("MinAtar/Asterix-v0", "ramp_intervall", 5.0).unwrap().to_string();
    assert!(error.contains("ramp_interval"), "did you mean: {error}");
    let error = make("MinAtar/Seaquest-v0", "max_oxygen", 2.5).unwrap().to_string();
    assert!(error.contains("max_oxygen") && error.contains("whole"), "{error}");
    assert!(make("MinAtar/SpaceInvaders-v0", "difficulty_ramping", 0.5).is_some());

    let mut env = registry.make(&EnvSpec::new("MinAtar/Breakout-v1")).unwrap();
    env.reset(Some(0)).unwrap();
    let error = env.step(&Action::Discrete(3)).unwrap_err();
    assert!(matches!(&error, EnvError::InvalidAction { action, .. } if action == "3"), "{error}");
}

#[test]
fn the_same_seed_gives_the_same_episode_and_parameters_change_the_game() {
    let registry = Registry::builtin();
    let play = |spec: &EnvSpec, seed: u64| -> (usize, f64, Vec<String>) {
        let mut env = registry.make(spec).unwrap();
        env.reset(Some(seed)).unwrap();
        let (mut steps, mut total, mut frames) = (0, 0.0, Vec::new());
        // A fixed action cycle: the games differ only through the seed and the parameters.
        for t in 0..5_000 {
            let n = match env.action_space() {
                Space::Discrete { n } => *n,
                _ => unreachable!(),
            };
            let step = env.step(&Action::Discrete((t * 7 + t / 3) % n)).unwrap();
            steps += 1;
            total += step.reward;
            frames.push(bits(&step.obs));
            if step.done() {
                break;
            }
        }
        (steps, total, frames)
    };
    for game in GAMES {
        let spec = EnvSpec::new(format!("MinAtar/{game}-v0"));
        assert_eq!(play(&spec, 3), play(&spec, 3), "{game}: same seed, same episode");
        let seeds: Vec<_> = (0..6).map(|s| play(&spec, s).2).collect();
        assert!(seeds.windows(2).any(|w| w[0] != w[1]), "{game}: seeds change the episode");
    }
    // A game's speeds are parameters that change it.
    let fast = EnvSpec::new("MinAtar/Asterix-v0").with("init_spawn_speed", 1.0);
    assert_ne!(play(&fast, 0).2, play(&EnvSpec::new("MinAtar/Asterix-v0"), 0).2);
}

#[cfg(feature = "python")]
mod against_the_package {
    use super::*;
    use std::sync::Once;

    fn bridge_registry() -> Registry {
        static ONCE: Once = Once::new();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
        // SAFETY: set once, before the embedded interpreter starts, by whichever test comes first.
        ONCE.call_once(|| unsafe { std::env::set_var("PYTHONPATH", path) });
        Registry::builtin()
    }

    /// The package (through the bridge) and the port, side by side: the same seeds (none of the
    /// golden files'), random actions, every step equal; a second episode continues the stream.
    #[test]
    fn the_package_through_the_bridge_steps_as_the_port() {
        use rand::{Rng, SeedableRng};
        let registry = bridge_registry();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2024);
        let episodes: usize =
            std::env::var("HEADSTART_MINATAR_EPISODES").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
        for game in GAMES {
            for version in ["v0", "v1"] {
                let id = format!("MinAtar/{game}-{version}");
                let mut native = registry.make(&EnvSpec::new(&id)).unwrap();
                let mut package = registry.make(&EnvSpec::new(format!("gym:minatar_gym:{id}"))).unwrap();
                assert_eq!(native.observation_space(), package.observation_space(), "{id}");
                assert_eq!(native.action_space(), package.action_space(), "{id}");
                let Space::Discrete { n } = *native.action_space() else { unreachable!() };
                for e in 0..episodes {
                    let seed = (e % 2 == 0).then(|| 1_000 + rng.random_range(0..1_000_000));
                    let (a, _) = native.reset(seed).unwrap();
                    let (b, _) = package.reset(seed).unwrap();
                    assert_eq!(a, b, "{id} episode {e} seed {seed:?}: reset");
                    for t in 0..3_000 {
                        let action = Action::Discrete(rng.random_range(0..n));
                        let (x, y) = (native.step(&action).unwrap(), package.step(&action).unwrap());
                        let at = format!("{id} episode {e} seed {seed:?} step {t}");
                        assert_eq!((x.reward, x.terminated, x.truncated), (y.reward, y.terminated, y.truncated), "{at}");
                        assert_eq!(x.obs, y.obs, "{at}: observation");
                        if x.done() {
                            break;
                        }
                    }
                }
            }
        }
    }
}
