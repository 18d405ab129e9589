//! The worked example in `envs/corridor`: it passes `check_env`, is made by id through the
//! registry with its parameters checked, and is stepped by the same code as the built-ins.

#[path = "../envs/corridor/corridor.rs"]
mod corridor;

use headstart::env::{Action, Env, EnvSpec, Registry, check_env};

fn registry() -> Registry {
    let mut registry = Registry::builtin();
    registry.register(corridor::entry());
    registry
}

#[test]
fn corridor_passes_check_env() {
    for length in [2.0, 8.0, 20.0] {
        let mut env = corridor::Corridor::new(corridor::CorridorParams { length, slip: 0.2 }).unwrap();
        check_env(&mut env).unwrap_or_else(|e| panic!("length {length}: {e}"));
    }
}

#[test]
fn corridor_is_made_by_id_with_checked_parameters() {
    let registry = registry();
    let mut env = registry.make(&EnvSpec::new("Corridor-v0").with("length", 5.0).with("slip", 0.0)).unwrap();
    assert_eq!(env.observation_space().flat_dim(), 5);
    let (obs, _) = env.reset(Some(0)).unwrap();
    assert_eq!(obs.as_slice(), [1.0, 0.0, 0.0, 0.0, 0.0]);
    let mut total = 0.0;
    let mut steps = 0;
    loop {
        let step = env.step(&Action::Discrete(1)).unwrap();
        total += step.reward;
        steps += 1;
        if step.done() {
            assert!(step.terminated);
            break;
        }
    }
    assert_eq!(steps, 4, "without slip, walking right takes length - 1 steps");
    assert!((total - (1.0 - 3.0 * 0.01)).abs() < 1e-12);

    let err = registry.make(&EnvSpec::new("Corridor-v0").with("length", 100.0)).err().unwrap().to_string();
    assert!(err.contains("length = 100 is out of range: it must be in [2, 64]"), "{err}");
    let err = registry.make(&EnvSpec::new("Corridor-v0").with("slipp", 0.5)).err().unwrap().to_string();
    assert!(err.contains("did you mean \"slip\""), "{err}");
}

#[test]
fn corridor_steps_in_a_vector_like_the_builtins() {
    let mut venv = registry().make_vec(&EnvSpec::new("Corridor-v0"), 3).unwrap();
    venv.reset(Some(1)).unwrap();
    let mut episodes = 0;
    for _ in 0..200 {
        episodes += venv.step(&[Action::Discrete(1), Action::Discrete(1), Action::Discrete(0)]).unwrap().episodes.len();
    }
    // Two walk right (about 9 steps per episode with 10 % slip); one walks into the wall until truncated.
    assert!(episodes > 30, "{episodes}");
}
