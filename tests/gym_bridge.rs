//! The Gymnasium bridge (feature `python`) from a user's side: a Python environment of their
//! own (`tests/python/headstart_test_envs.py`) checked, trained and transferred with no Rust
//! written; MuJoCo physics parameters; and the errors: unknown ids and parameters, unsupported
//! spaces, exceptions, non-finite observations.
#![cfg(feature = "python")]

use std::path::Path;
use std::process::{Command, Output};

use headstart::env::{Action, Env, EnvSpec, Registry};

const BIN: &str = env!("CARGO_BIN_EXE_headstart");
const CORRIDOR: &str = "gym:headstart_test_envs:HeadstartCorridor-v0";

fn python_path() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python").display().to_string()
}

/// Puts the test module on the embedded interpreter's path, before it starts.
fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: set once, before any thread of this test binary starts the interpreter.
    ONCE.call_once(|| unsafe { std::env::set_var("PYTHONPATH", python_path()) });
}

fn headstart(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env("PYTHONPATH", python_path()).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn a_python_environment_of_ones_own_is_an_environment_like_any() {
    init();
    let registry = Registry::builtin();
    let entry = registry.entry(CORRIDOR).unwrap();
    // Its constructor's keyword arguments are its parameters; Gymnasium's limit is registered.
    let names: Vec<&str> = entry.param_specs().iter().map(|p| p.name).collect();
    assert_eq!(names, ["length", "slip"]);
    assert_eq!(entry.episode_limit(), Some(50));
    let mut env = registry.make(&EnvSpec::new(CORRIDOR).with("length", 3.0)).unwrap();
    // Discrete(2, start=-1): headstart's actions 0 and 1 are Gymnasium's -1 and 0.
    env.reset(Some(1)).unwrap();
    let mut last = None;
    for _ in 0..3 {
        last = Some(env.step(&Action::Discrete(1)).unwrap());
    }
    let last = last.unwrap();
    assert!(last.terminated && last.reward == 1.0 && last.info.get("pos") == Some(3.0), "{last:?}");
    assert!(env.step(&Action::Discrete(2)).is_err(), "an action outside the space is refused before Python");
    // The time limit is Gymnasium's, applied once: truncated at step 50.
    let mut env = registry.make(&EnvSpec::new(CORRIDOR).with("length", 100.0)).unwrap();
    env.reset(Some(0)).unwrap();
    let ends: Vec<usize> = (1..=50).filter(|_| env.step(&Action::Discrete(0)).unwrap().truncated).collect();
    assert_eq!(ends, [50]);
    // An unknown parameter gets the nearest name.
    let e = registry.make(&EnvSpec::new(CORRIDOR).with("lenght", 3.0)).err().unwrap().to_string();
    assert!(e.contains("lenght") && e.contains("length"), "{e}");
}

/// A dictionary observation of Box and Discrete parts is read as Gymnasium's `spaces.flatten`
/// lays it out (parts in the Dict's order, which sorts its keys; a Discrete part one-hot), checked
/// against its space like any observation, and trained on; MiniGrid's dict (the image and the
/// agent's direction) is one with `observe_direction`.
#[test]
fn dictionary_observations_are_read_flat_in_their_parts_order() {
    init();
    let registry = Registry::builtin();
    let mut env = registry.make(&EnvSpec::new("gym:headstart_test_envs:HeadstartDictObs-v0")).unwrap();
    let space = env.observation_space().clone();
    assert!(space.to_string().starts_with("Dict(last: Discrete(2), pos: Box("), "{space}");
    assert_eq!(space.flat_dim(), 3);
    let (obs, _) = env.reset(Some(0)).unwrap();
    assert_eq!(obs.as_slice(), [1.0, 0.0, 0.0]);
    let step = env.step(&Action::Discrete(1)).unwrap();
    assert_eq!(step.obs.as_slice(), [0.0, 1.0, 0.125]);
    assert!(space.contains_obs(&step.obs) && !space.contains_obs(&[1.0, 1.0, 0.125]), "one-hot parts");
    let out = headstart(&["check", "gym:headstart_test_envs:HeadstartDictObs-v0"]);
    assert!(out.status.success(), "{}", text(&out));

    let spec = EnvSpec::new("gym:MiniGrid-Empty-5x5-v0").with("observe_direction", 1.0);
    let env = registry.make(&spec).unwrap();
    assert_eq!(env.observation_space().brief(), "Dict(direction: Discrete(4), image: Box(7, 7, 3))");
    let plain = registry.make(&EnvSpec::new("gym:MiniGrid-Empty-5x5-v0")).unwrap();
    assert_eq!(plain.observation_space().brief(), "Box(7, 7, 3)", "the image alone by default");
}

/// A Python environment's parameters are typed by their defaults (a whole number for an `int`,
/// 0 or 1 for a `bool`), bounded where the class declares `param_bounds`, passed to its
/// constructor as their type, and listed by `envs`.
#[test]
fn python_parameters_are_typed_and_bounded() {
    init();
    const TYPED: &str = "gym:headstart_test_envs:HeadstartTyped-v0";
    let registry = Registry::builtin();
    let entry = registry.entry(TYPED).unwrap();
    let bounds: Vec<String> = entry.param_specs().iter().map(|p| format!("{} {}", p.name, p.bound)).collect();
    assert_eq!(
        bounds,
        ["n_cells a whole number in [2, 20]", "reward_scale in [0.1, 10]", "slippery 0 or 1 (false or true)"]
    );
    // The constructor raises unless each argument arrives as its type.
    let spec = EnvSpec::new(TYPED).with("n_cells", 5.0).with("reward_scale", 2.0).with("slippery", 1.0);
    registry.make(&spec).unwrap().reset(Some(0)).unwrap();
    for (name, value, what) in [
        ("n_cells", 2.5, "must be a whole number in [2, 20]"),
        ("n_cells", 30.0, "must be a whole number in [2, 20]"),
        ("reward_scale", -1.0, "must be in [0.1, 10]"),
        ("slippery", 0.5, "must be 0 or 1"),
    ] {
        let e = registry.make(&EnvSpec::new(TYPED).with(name, value)).err().expect("refused").to_string();
        assert!(e.contains(&format!("{name} = {value} is out of range")) && e.contains(what), "{e}");
    }
    let envs = headstart(&["envs", TYPED]);
    assert!(envs.status.success() && text(&envs).contains("a whole number in [2, 20]"), "{}", text(&envs));
    assert!(text(&envs).contains("layout (str, default \"plain\")"), "{}", text(&envs));
    // A str argument is set in the id; it reaches the constructor as a string.
    let long = registry.make(&EnvSpec::new(format!("{TYPED}?layout=long")).with("n_cells", 5.0)).unwrap();
    assert_eq!(long.observation_space().flat_dim(), 1);
    let walk = |spec: &EnvSpec| -> usize {
        let mut env = registry.make(spec).unwrap();
        env.reset(Some(0)).unwrap();
        (1..=50).find(|_| env.step(&headstart::env::Action::Discrete(1)).unwrap().terminated).unwrap_or(99)
    };
    let plain = EnvSpec::new(TYPED).with("n_cells", 5.0);
    assert_eq!(walk(&EnvSpec::new(format!("{TYPED}?layout=long")).with("n_cells", 5.0)), 2 * walk(&plain));
    for (id, what) in [
        (format!("{TYPED}?layout=wide"), "layout must be 'plain' or 'long'"),
        (format!("{TYPED}?lay=long"), "did you mean `layout`?"),
        (format!("{TYPED}?n_cells=4"), "`n_cells` is a number: give it as a parameter"),
        (format!("{TYPED}?layout"), "string arguments are `name=value`"),
    ] {
        let e = registry.make(&EnvSpec::new(&id)).err().expect("refused").to_string();
        assert!(e.contains(what), "{id}: {e}");
    }
}

#[test]
fn check_train_and_transfer_through_the_bridge() {
    let dir = std::env::temp_dir().join(format!("headstart-gym-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let check = headstart(&["check", CORRIDOR, "-p", "length=6"]);
    assert!(check.status.success() && text(&check).contains("all checks passed"), "{}", text(&check));
    let check = headstart(&["check", "gym:CartPole-v1"]);
    assert!(check.status.success(), "{}", text(&check));
    let source = dir.join("source");
    let train = headstart(&[
        "train",
        "--algo",
        "ppo",
        CORRIDOR,
        "-p",
        "length=6",
        "--steps",
        "6000",
        "--eval-episodes",
        "5",
        "--quiet",
        "--out",
        source.to_str().unwrap(),
    ]);
    assert!(train.status.success(), "{}", text(&train));
    let eval = headstart(&["eval", source.to_str().unwrap()]);
    let out = text(&eval);
    // The shortest walk: five steps of -0.01, then +1 (0.95, printed to one decimal).
    assert!(eval.status.success() && out.contains(": 0.9 +/- 0.0 over"), "the corridor of 6 solved: {out}");
    let target = dir.join("target");
    let transfer = headstart(&[
        "transfer",
        source.to_str().unwrap(),
        CORRIDOR,
        "-p",
        "length=8",
        "--steps",
        "2048",
        "--quiet",
        "--out",
        target.to_str().unwrap(),
    ]);
    let out = text(&transfer);
    assert!(transfer.status.success() && target.join("card.ron").exists(), "{out}");
    eprintln!("{out}");
    // Added layers through the bridge: the same zero-shot as plain fine-tuning (they start as
    // the identity), only the added weights train, and the augmented checkpoint evaluates.
    let zero_shot = |out: &str| out.lines().find(|l| l.starts_with("zero-shot")).map(String::from);
    let added = dir.join("added");
    let strategy = r#"(add: [Adapter(after: 0, width: 8), Lora(layers: ["trunk.1"], rank: 2, alpha: 4.0)], train: Added)"#;
    let args = ["--strategy", strategy, "--steps", "2048", "--quiet", "--out", added.to_str().unwrap()];
    let adapted = headstart(&[&["transfer", source.to_str().unwrap(), CORRIDOR, "-p", "length=8"][..], &args[..]].concat());
    let adapted_out = text(&adapted);
    assert!(adapted.status.success() && adapted_out.contains("weights trained"), "{adapted_out}");
    assert_eq!(zero_shot(&adapted_out), zero_shot(&out), "{adapted_out}");
    let eval = headstart(&["eval", added.to_str().unwrap()]);
    assert!(eval.status.success(), "{}", text(&eval));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mujoco_physics_are_parameters() {
    init();
    let registry = Registry::builtin();
    let entry = registry.entry("gym:HalfCheetah-v5").unwrap();
    let spec = |name: &str| entry.param_specs().iter().find(|p| p.name == name).copied();
    assert_eq!(spec("gravity").unwrap().default, -9.81);
    assert!(spec("mass.torso").unwrap().default > 6.0, "the torso's mass, read from the model");
    assert!(spec("forward_reward_weight").is_some(), "a keyword argument of the constructor");
    for name in ["mass_scale", "friction_scale", "damping_scale", "gear_scale"] {
        assert_eq!(spec(name).unwrap().default, 1.0, "{name}");
    }
    // Heavier and in stronger gravity, the same actions end elsewhere.
    let run = |spec: EnvSpec| {
        let mut env = registry.make(&spec).unwrap();
        env.reset(Some(3)).unwrap();
        let mut obs = Vec::new();
        for _ in 0..20 {
            obs = env.step(&Action::continuous(&[0.5; 6])).unwrap().obs.to_vec();
        }
        obs
    };
    let base = run(EnvSpec::new("gym:HalfCheetah-v5"));
    assert_eq!(base, run(EnvSpec::new("gym:HalfCheetah-v5")), "seeded runs repeat");
    assert_ne!(base, run(EnvSpec::new("gym:HalfCheetah-v5").with("gravity", -14.0)));
    assert_ne!(base, run(EnvSpec::new("gym:HalfCheetah-v5").with("mass.torso", 9.0)));
    let e = registry.make(&EnvSpec::new("gym:HalfCheetah-v5").with("mass_scale", -1.0)).err().unwrap().to_string();
    assert!(e.contains("mass_scale"), "{e}");
}

#[test]
fn errors_name_the_environment_and_what_python_said() {
    init();
    let registry = Registry::builtin();
    let error = |id: &str| registry.make(&EnvSpec::new(id)).err().map(|e| e.to_string()).unwrap_or_default();
    let unknown = error("gym:NoSuchEnv-v0");
    assert!(unknown.contains("gym:NoSuchEnv-v0") && unknown.contains("NoSuchEnv"), "{unknown}");
    let missing = error("gym:no_such_package:Env-v0");
    assert!(missing.contains("ModuleNotFoundError") && missing.contains("make setup-python"), "{missing}");
    assert!(missing.contains("PYTHONPATH"), "{missing}");
    let dict = error("gym:headstart_test_envs:HeadstartDictText-v0");
    assert!(dict.contains("observation space") && dict.contains("'note' is a Text") && dict.contains("FilterObservation"), "{dict}");

    let mut broken = registry.make(&EnvSpec::new("gym:headstart_test_envs:HeadstartBroken-v0")).unwrap();
    broken.reset(Some(0)).unwrap();
    broken.step(&Action::Discrete(0)).unwrap();
    broken.step(&Action::Discrete(0)).unwrap();
    let e = broken.step(&Action::Discrete(0)).err().unwrap().to_string();
    assert!(
        e.contains("HeadstartBroken-v0")
            && e.contains("FloatingPointError: the simulator diverged")
            && e.contains("headstart_test_envs.py"),
        "{e}"
    );
    let mut nan = registry.make(&EnvSpec::new("gym:headstart_test_envs:HeadstartNotFinite-v0")).unwrap();
    nan.reset(Some(0)).unwrap();
    let e = nan.step(&Action::Discrete(0)).err().unwrap().to_string();
    assert!(e.contains("non-finite observation"), "{e}");

    // The contract holds for Python environments too: an empty last observation, a NaN reward.
    for (id, what) in [
        ("gym:headstart_test_envs:HeadstartShortLast-v0(length=2)", "returned its last observation of 0 values"),
        ("gym:headstart_test_envs:HeadstartNanReward-v0", "returned the reward NaN"),
    ] {
        let mut env = registry.make(&EnvSpec::new(id.split('(').next().unwrap()).with("length", 2.0)).unwrap();
        env.reset(Some(0)).unwrap();
        let e = (0..3).find_map(|_| env.step(&Action::Discrete(1)).err()).expect("the bug met").to_string();
        assert!(e.starts_with(id) && e.contains(what) && e.contains("not the agent"), "{e}");
    }

    // From the command line the exception is said once, and the run folder it names exists.
    let dir = std::env::temp_dir().join(format!("headstart-gym-broken-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let train = headstart(&[
        "train",
        "--algo",
        "ppo",
        "gym:headstart_test_envs:HeadstartBroken-v0",
        "--steps",
        "100",
        "-q",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let said = text(&train);
    assert_eq!(train.status.code(), Some(1));
    assert_eq!(said.matches("the simulator diverged").count(), 1, "{said}");
    assert!(said.contains("the agent as it was then is saved") && dir.join("card.ron").exists(), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Python environment that breaks the contract at random in Python's ways (wrong lengths,
/// NaN/inf, strings, `None` and objects for observations, a reward that is no number, flags that
/// are no bools, an info that is no dict, a short tuple, exceptions) drives training, evaluation
/// and a study: each fault is an error naming the environment, never a panic. `make fuzz` runs
/// more cases (`HEADSTART_FUZZ_CASES`).
#[test]
fn a_python_environment_breaking_its_contract_never_panics() {
    use headstart::agent::train::{Curve, Task, train};
    use headstart::agent::{AgentConfig, PpoConfig, evaluate};
    use std::panic::{AssertUnwindSafe, catch_unwind};
    init();
    let cases: u64 = std::env::var("HEADSTART_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(12).min(200);
    let registry = Registry::builtin();
    let (mut failed, mut clean) = (0, 0);
    for case in 0..cases {
        let id = "gym:headstart_test_envs:HeadstartChaotic-v0";
        // Half the cases break often, half rarely (some then run clean).
        let p = if case % 2 == 0 { 0.02 } else { 0.0005 };
        let spec = EnvSpec::new(id).with("fault_seed", case as f64).with("p", p);
        let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
            let probe = registry.make(&spec).map_err(|e| e.to_string())?;
            let config = AgentConfig::Ppo(PpoConfig { n_steps: 64, batch_size: 64, n_epochs: 1, ..Default::default() });
            let mut agent =
                config.build(probe.observation_space(), probe.action_space(), case).map_err(|e| e.to_string())?;
            train(&registry, &Task::Env(spec.clone()), agent.as_mut(), 256, &mut Curve::default(), &mut |_| {
                std::ops::ControlFlow::Continue(())
            })
            .map_err(|e| e.to_string())?;
            let mut env = registry.make(&spec).map_err(|e| e.to_string())?;
            evaluate(agent.as_ref(), env.as_mut(), 3, true, case).map_err(|e| e.to_string())?;
            Ok(())
        }));
        match outcome {
            Err(_) => panic!("case {case}: a panic"),
            Ok(Ok(())) => clean += 1,
            Ok(Err(e)) => {
                assert!(e.contains("HeadstartChaotic-v0"), "case {case}: the error does not name the environment: {e}");
                failed += 1;
            }
        }
    }
    eprintln!("{cases} cases: {failed} stopped by the environment's error, {clean} clean");
    assert!(failed > 0, "no case broke: the faults never fired");
}
