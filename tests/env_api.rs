//! The environment contract: spaces, seeding, time limits, misuse errors, parameters, the
//! vector of environments and `check_env`.

use headstart::env::registry::EnvEntry;
use headstart::env::{Action, Env, EnvError, EnvSpec, Info, Obs, Registry, Space, Step, Variant, VecEnv, check_env};
use rand::SeedableRng;
use rand::rngs::StdRng;

const IDS: [&str; 5] = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"];

fn make(id: &str) -> headstart::env::registry::RegisteredEnv {
    Registry::builtin().make(&EnvSpec::new(id)).unwrap()
}

/// Runs one seeded episode with seeded random actions; returns every step.
fn episode(env: &mut dyn Env, seed: u64) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    env.reset(Some(seed)).unwrap();
    let mut steps = Vec::new();
    loop {
        let action = env.action_space().sample(&mut rng);
        let step = env.step(&action).unwrap();
        let done = step.done();
        steps.push(step);
        if done {
            return steps;
        }
    }
}

#[test]
fn same_seed_same_trajectory_and_different_seeds_differ() {
    for id in IDS {
        let mut env = make(id);
        let a = episode(&mut env, 7);
        let b = episode(&mut env, 7);
        let c = episode(&mut env, 8);
        assert_eq!(a, b, "{id}: seed 7 twice");
        assert_ne!(a, c, "{id}: seeds 7 and 8");
    }
}

#[test]
fn reset_without_seed_continues_the_stream() {
    let mut env = make("CartPole-v1");
    let (first, _) = env.reset(Some(3)).unwrap();
    let (second, _) = env.reset(None).unwrap();
    let (again_first, _) = env.reset(Some(3)).unwrap();
    let (again_second, _) = env.reset(None).unwrap();
    assert_ne!(first, second);
    assert_eq!((first, second), (again_first, again_second));
}

#[test]
fn observations_stay_in_their_space_and_samples_in_theirs() {
    for id in IDS {
        let mut env = make(id);
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..20 {
            assert!(env.action_space().contains(&env.action_space().sample(&mut rng)), "{id}");
        }
        for step in episode(&mut env, 1) {
            assert!(env.observation_space().contains_obs(&step.obs), "{id}: {:?}", step.obs);
        }
    }
}

#[test]
fn time_limits_truncate_at_gymnasium_episode_lengths() {
    // Pendulum never terminates and MountainCar under random actions almost never does.
    for (id, limit) in [("Pendulum-v1", 200), ("MountainCarContinuous-v0", 999), ("Acrobot-v1", 500)] {
        let steps = episode(&mut make(id), 0);
        assert_eq!(steps.len(), limit, "{id}");
        assert!(steps.last().unwrap().truncated && !steps.last().unwrap().terminated, "{id}");
        assert!(steps[..limit - 1].iter().all(|s| !s.truncated), "{id}");
    }
    let mut short =
        Registry::builtin().make(&EnvSpec { max_episode_steps: Some(3), ..EnvSpec::new("Pendulum-v1") }).unwrap();
    assert_eq!(episode(&mut short, 0).len(), 3);
}

#[test]
fn cartpole_terminates_when_the_pole_falls() {
    let mut env = make("CartPole-v1");
    env.reset(Some(0)).unwrap();
    let mut steps = 0;
    loop {
        steps += 1;
        let step = env.step(&Action::Discrete(1)).unwrap();
        if step.done() {
            assert!(step.terminated && !step.truncated);
            assert_eq!(step.reward, 1.0, "Gymnasium rewards the terminating step too");
            break;
        }
    }
    assert!((5..30).contains(&steps), "always pushing right fails fast, took {steps}");
}

#[test]
fn invalid_actions_are_errors_that_name_the_action_and_space() {
    let mut cartpole = make("CartPole-v1");
    cartpole.reset(Some(0)).unwrap();
    let err = cartpole.step(&Action::Discrete(2)).unwrap_err().to_string();
    assert!(err.contains("invalid action 2 for Discrete(2)"), "{err}");
    assert!(cartpole.step(&Action::continuous(&[1.0])).is_err());

    let mut pendulum = make("Pendulum-v1");
    pendulum.reset(Some(0)).unwrap();
    let err = pendulum.step(&Action::continuous(&[0.1, 0.2])).unwrap_err().to_string();
    assert!(err.contains("2 values where the space has 1"), "{err}");
    let err = pendulum.step(&Action::continuous(&[f32::NAN])).unwrap_err().to_string();
    assert!(err.contains("NaN"), "{err}");
    assert!(pendulum.step(&Action::Discrete(0)).is_err());
    // Out-of-bounds values are clipped, as in Gymnasium, not refused.
    assert!(pendulum.step(&Action::continuous(&[7.0])).is_ok());

    // The bare environments refuse invalid actions as well.
    for id in IDS {
        let mut env = Registry::builtin().make_bare(&EnvSpec::new(id)).unwrap();
        env.reset(Some(0)).unwrap();
        let bad = match env.action_space() {
            Space::Discrete { n } => Action::Discrete(*n),
            Space::Box { .. } => Action::continuous(&[f32::INFINITY]),
            Space::Dict { .. } => unreachable!("{id}: no registered environment acts in a Dict"),
        };
        assert!(env.step(&bad).is_err(), "{id}");
    }
}

#[test]
fn stepping_out_of_order_is_an_error() {
    let mut env = make("CartPole-v1");
    let err = env.step(&Action::Discrete(0)).unwrap_err();
    assert!(matches!(err, EnvError::NeedsReset { .. }), "{err}");
    env.reset(Some(0)).unwrap();
    while !env.step(&Action::Discrete(0)).unwrap().done() {}
    let err = env.step(&Action::Discrete(0)).unwrap_err().to_string();
    assert!(err.contains("after the episode ended"), "{err}");
    env.reset(None).unwrap();
    assert!(env.step(&Action::Discrete(0)).is_ok());
}

#[test]
fn parameters_change_the_physics_and_bad_values_are_refused() {
    let registry = Registry::builtin();
    let run = |spec: EnvSpec| episode(&mut registry.make(&spec).unwrap(), 5);
    assert_ne!(run(EnvSpec::new("CartPole-v1")), run(EnvSpec::new("CartPole-v1").with("length", 0.75)));
    assert_ne!(run(EnvSpec::new("Pendulum-v1")), run(EnvSpec::new("Pendulum-v1").with("g", 14.0)));

    let refuse = |spec: EnvSpec, needle: &str| {
        let err = registry.make(&spec).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    };
    refuse(
        EnvSpec::new("CartPole-v1").with("masspole", -0.1),
        "masspole = -0.1 is out of range: it must be finite and > 0",
    );
    refuse(EnvSpec::new("CartPole-v1").with("length", 0.0), "length = 0 is out of range");
    refuse(EnvSpec::new("Pendulum-v1").with("m", f64::NAN), "m = NaN is out of range");
    refuse(EnvSpec::new("Acrobot-v1").with("link_lenght_1", 1.0), "did you mean \"link_length_1\"");
    refuse(EnvSpec::new("MountainCar-v0").with("min_position", 1.0), "need min_position < max_position");
    refuse(EnvSpec::new("Cartpole-v1"), "did you mean \"CartPole-v1\"");
    refuse(EnvSpec::new("Nope-v0"), "known ids: Acrobot-v1, CartPole-v1");
}

#[test]
fn parameters_bound_the_observation_space() {
    let env = Registry::builtin().make(&EnvSpec::new("CartPole-v1").with("x_threshold", 3.0)).unwrap();
    match env.observation_space() {
        Space::Box { high, .. } => assert_eq!(high[0], 6.0),
        other => panic!("{other}"),
    }
}

#[test]
fn every_variant_file_loads_and_makes_its_environment() {
    let registry = Registry::builtin();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("envs");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "ron") {
            let variant = Variant::load(&path).unwrap_or_else(|e| panic!("{e}"));
            // A variant changes the environment, or declares how another one's policies read it.
            let changed =
                !variant.env.params.is_empty() || !variant.env.transforms.is_empty() || !variant.maps.is_empty();
            assert!(changed, "{}: a variant overrides, transforms or maps something", path.display());
            let mut env = registry.make(&variant.env).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!episode(&mut env, 0).is_empty());
            count += 1;
        }
    }
    assert!(count >= 8, "found {count} variants");
}

#[test]
fn malformed_variant_files_name_the_file_and_position() {
    let dir = std::env::temp_dir().join(format!("headstart-variant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.ron");
    std::fs::write(&bad, "(\n  name: \"x\",\n  env: (id: \"CartPole-v1\", params: {\"length\": }),\n)").unwrap();
    let err = Variant::load(&bad).unwrap_err().to_string();
    assert!(err.contains("bad.ron") && err.contains("3:"), "{err}");
    std::fs::write(&bad, "(name: \"x\", env: (id: \"CartPole-v1\"), colour: \"red\")").unwrap();
    let err = Variant::load(&bad).unwrap_err().to_string();
    assert!(err.contains("colour"), "{err}");
    let err = Variant::load(&dir.join("missing.ron")).unwrap_err().to_string();
    assert!(err.contains("missing.ron"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn vector_env_matches_single_envs_and_hands_back_final_observations() {
    let registry = Registry::builtin();
    let spec = EnvSpec::new("CartPole-v1");
    let n = 4;
    let mut venv = registry.make_vec(&spec, n).unwrap();
    let mut singles: Vec<_> = (0..n).map(|_| registry.make(&spec).unwrap()).collect();
    let obs = venv.reset(Some(10)).unwrap().to_vec();
    for (i, env) in singles.iter_mut().enumerate() {
        assert_eq!(&obs[i * 4..(i + 1) * 4], env.reset(Some(10 + i as u64)).unwrap().0.as_slice());
    }
    let mut rng = StdRng::seed_from_u64(0);
    let mut finished = 0;
    for _ in 0..300 {
        let actions: Vec<Action> = (0..n).map(|_| venv.action_space().sample(&mut rng)).collect();
        let step = venv.step(&actions).unwrap();
        for (i, env) in singles.iter_mut().enumerate() {
            let single = env.step(&actions[i]).unwrap();
            assert_eq!(step.rewards[i], single.reward);
            assert_eq!((step.terminated[i], step.truncated[i]), (single.terminated, single.truncated));
            if single.done() {
                assert_eq!(step.final_obs[i].as_ref(), Some(&single.obs));
                assert!(step.episodes.iter().any(|e| e.env == i));
                let (first, _) = env.reset(None).unwrap();
                assert_eq!(&step.obs[i * 4..(i + 1) * 4], first.as_slice(), "auto-reset observation");
                finished += 1;
            } else {
                assert!(step.final_obs[i].is_none());
                assert_eq!(&step.obs[i * 4..(i + 1) * 4], single.obs.as_slice());
            }
        }
    }
    assert!(finished > 10, "random CartPole episodes are short: {finished}");
}

#[test]
fn vector_env_refuses_mismatched_input() {
    let registry = Registry::builtin();
    let mut venv = registry.make_vec(&EnvSpec::new("CartPole-v1"), 2).unwrap();
    venv.reset(Some(0)).unwrap();
    let err = venv.step(&[Action::Discrete(0)]).unwrap_err().to_string();
    assert!(err.contains("1 actions given for 2 environments"), "{err}");
    let err = venv.step(&[Action::Discrete(0), Action::Discrete(5)]).unwrap_err().to_string();
    assert!(err.contains("environment 1 of the vector") && err.contains("Discrete(2)"), "{err}");

    let mixed =
        vec![registry.make(&EnvSpec::new("CartPole-v1")).unwrap(), registry.make(&EnvSpec::new("Acrobot-v1")).unwrap()];
    assert!(VecEnv::new(mixed).is_err());
    // Variants with equal spaces stack (multitask training).
    let variants = vec![
        registry.make(&EnvSpec::new("Pendulum-v1")).unwrap(),
        registry.make(&EnvSpec::new("Pendulum-v1").with("m", 1.5)).unwrap(),
    ];
    assert!(VecEnv::new(variants).is_ok());
}

#[test]
fn check_env_passes_every_builtin() {
    for id in IDS {
        let mut env = Registry::builtin().make_bare(&EnvSpec::new(id)).unwrap();
        check_env(&mut env).unwrap_or_else(|e| panic!("{id}: {e}"));
    }
}

/// An environment with every mistake `check_env` looks for.
struct Sloppy {
    calls: u32,
    space: Space,
    actions: Space,
}

impl Env for Sloppy {
    fn observation_space(&self) -> &Space {
        &self.space
    }
    fn action_space(&self) -> &Space {
        &self.actions
    }
    fn reset(&mut self, _seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        self.calls += 1; // not seeded: every reset differs
        Ok((Obs::from_slice(&[self.calls as f32 * 0.01]), Info::new()))
    }
    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        let Action::Discrete(a) = action else { return Err(EnvError::Custom("continuous".into())) };
        let table = [0.5f32, 2.0]; // action 1 leaves the observation space; action 2 panics
        Ok(Step {
            obs: Obs::from_slice(&[table[*a]]),
            reward: 0.0,
            terminated: false,
            truncated: false,
            info: Info::new(),
        })
    }
}

#[test]
fn check_env_reports_what_is_wrong_with_a_custom_environment() {
    let mut env = Sloppy { calls: 0, space: Space::uniform_box(0.0, 1.0, 1), actions: Space::Discrete { n: 2 } };
    let failure = check_env(&mut env).unwrap_err();
    let all = failure.to_string();
    assert!(all.contains("seeding must make reset deterministic"), "{all}");
    assert!(all.contains("outside the observation space"), "{all}");
    assert!(all.contains("step(2) (one past the last discrete action) panicked"), "{all}");

    let mut bad_space = Sloppy {
        calls: 0,
        space: Space::Box { low: vec![1.0], high: vec![0.0], shape: vec![1] },
        actions: Space::Discrete { n: 2 },
    };
    assert!(check_env(&mut bad_space).unwrap_err().to_string().contains("observation space is malformed"));
}

#[test]
fn custom_environments_join_the_registry() {
    let mut registry = Registry::builtin();
    registry.register(
        EnvEntry::new("Constant-v0", |p| {
            Ok(Sloppy {
                calls: 0,
                space: Space::uniform_box(0.0, p["scale"] as f32, 1),
                actions: Space::Discrete { n: 2 },
            })
        })
        .params(&[headstart::env::ParamSpec {
            name: "scale",
            default: 1.0,
            bound: headstart::env::Bound::Positive,
            doc: "",
        }])
        .max_episode_steps(4),
    );
    let mut env = registry.make(&EnvSpec::new("Constant-v0")).unwrap();
    env.reset(Some(0)).unwrap();
    // The registry's guard stops the out-of-range action before the environment can panic on it.
    assert!(env.step(&Action::Discrete(2)).is_err());
    let steps: Vec<bool> = (0..4).map(|_| env.step(&Action::Discrete(0)).unwrap().truncated).collect();
    assert_eq!(steps, [false, false, false, true]);
    assert!(registry.make(&EnvSpec::new("Constant-v0").with("scale", -1.0)).is_err());
}
