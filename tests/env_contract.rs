//! The environment's side of the contract, enforced at the registry's boundary for every command:
//! an observation of the wrong length (at reset, at a step, as an episode's last), a non-finite
//! observation or reward is an error that names the environment and the step, never a panic, never
//! blamed on the agent; in a study the broken target's units fail and every other target still
//! gets its verdict.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use headstart::agent::train::{Curve, Task, train};
use headstart::agent::{AgentConfig, Algo, evaluate, presets};
use headstart::env::registry::EnvEntry;
use headstart::env::{Action, Env, EnvError, EnvSpec, Info, Obs, Registry, Space, Step};
use headstart::study::experiment::{Experiment, Target};
use headstart::study::{self, RunOptions, RunOutcome, UnitStatus};

/// How an environment breaks its contract.
#[derive(Clone, Copy, Debug)]
enum Bug {
    /// The last observation of an episode that terminates has one value too few.
    ShortFinal,
    /// The reward of the 30th step (counted across episodes) is NaN.
    NanReward,
    /// Every step's observation has one value too few (the reset's is right).
    ShortObs,
    /// The 10th step's observation holds infinity.
    InfObs,
    /// The 30th step after a reset with seed 8 (of the smoke experiment's 8 environments per
    /// unit, seed 1's has one; validation's random episodes never do) has the reward NaN.
    NanRewardOnSeed8,
    /// The 30th step after a reset with a seed below 100 (every training environment of a unit;
    /// never validation's random episodes) has the reward NaN.
    NanRewardOnSmallSeeds,
}

const BUGS: [(&str, Bug); 4] = [
    ("ShortFinal-v0", Bug::ShortFinal),
    ("NanReward-v0", Bug::NanReward),
    ("ShortObs-v0", Bug::ShortObs),
    ("InfObs-v0", Bug::InfObs),
];

/// CartPole-v1 (bare: the registry's own wrappers go around this) with a bug.
struct Buggy {
    inner: Box<dyn Env>,
    bug: Bug,
    steps: usize,
    doomed: Option<usize>,
}

impl Env for Buggy {
    fn observation_space(&self) -> &Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.inner.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        let doomed = match self.bug {
            Bug::NanRewardOnSeed8 => seed == Some(8),
            Bug::NanRewardOnSmallSeeds => seed.is_some_and(|s| s < 100),
            _ => false,
        };
        if doomed {
            self.doomed = Some(self.steps);
        }
        self.inner.reset(seed)
    }
    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        let mut step = self.inner.step(action)?;
        self.steps += 1;
        match self.bug {
            Bug::ShortFinal if step.terminated => {
                step.obs.pop();
            }
            Bug::NanReward if self.steps == 30 => step.reward = f64::NAN,
            Bug::ShortObs => {
                step.obs.pop();
            }
            Bug::InfObs if self.steps == 10 => step.obs[0] = f32::INFINITY,
            Bug::NanRewardOnSeed8 | Bug::NanRewardOnSmallSeeds
                if self.doomed.is_some_and(|at| self.steps == at + 30) =>
            {
                step.reward = f64::NAN
            }
            _ => {}
        }
        Ok(step)
    }
}

fn registry() -> Registry {
    let mut registry = Registry::builtin();
    let more =
        [("NanRewardOnSeed8-v0", Bug::NanRewardOnSeed8), ("NanRewardOnSmallSeeds-v0", Bug::NanRewardOnSmallSeeds)];
    for (id, bug) in BUGS.into_iter().chain(more) {
        registry.register(
            EnvEntry::new(id, move |_| {
                let inner = Registry::builtin().make_bare(&EnvSpec::new("CartPole-v1"))?;
                Ok(Buggy { inner, bug, steps: 0, doomed: None })
            })
            .max_episode_steps(200)
            .reward_threshold(195.0),
        );
    }
    registry
}

/// The error the bug `id` raises when stepped with alternating actions from `reset(seed)`.
fn first_error(registry: &Registry, id: &str) -> EnvError {
    let mut env = registry.make(&EnvSpec::new(id)).unwrap();
    env.reset(Some(3)).unwrap();
    for k in 0..10_000 {
        match env.step(&Action::Discrete(k % 2)) {
            Ok(step) if step.done() => {
                env.reset(None).unwrap();
            }
            Ok(_) => {}
            Err(e) => return e,
        }
    }
    panic!("{id}: no error in 10 000 steps");
}

#[test]
fn every_breach_is_an_environment_error_naming_the_environment_and_step() {
    let registry = registry();
    let expected = [
        ("ShortFinal-v0", "its last observation of 3 values where its observation space holds 4"),
        ("NanReward-v0", "returned the reward NaN"),
        ("ShortObs-v0", "at step 1 of the episode: returned an observation of 3 values"),
        ("InfObs-v0", "returned an observation with inf at index 0"),
    ];
    for (id, what) in expected {
        let e = first_error(&registry, id);
        assert!(matches!(e, EnvError::Broken { .. }), "{id}: {e:?}");
        let text = e.to_string();
        assert!(text.starts_with(id), "{id}: {text}");
        assert!(text.contains(what) && text.contains("not the agent"), "{id}: {text}");
        assert!(text.contains("at step "), "{id}: {text}");
    }
    // A broken environment cannot be stepped on: the episode is over until the next reset.
    let mut env = registry.make(&EnvSpec::new("ShortObs-v0")).unwrap();
    env.reset(Some(0)).unwrap();
    assert!(env.step(&Action::Discrete(0)).is_err());
    assert!(matches!(env.step(&Action::Discrete(0)), Err(EnvError::NeedsReset { .. })));
}

#[test]
fn training_and_evaluation_stop_with_the_environment_named() {
    let registry = registry();
    for algo in [Algo::Ppo, Algo::Dqn] {
        for (id, _) in BUGS {
            let spec = EnvSpec::new(id);
            let probe = registry.make(&spec).unwrap();
            let config: AgentConfig = presets::get(algo, "CartPole-v1").unwrap().config;
            let mut agent = config.build(probe.observation_space(), probe.action_space(), 0).unwrap();
            let result =
                train(&registry, &Task::Env(spec.clone()), agent.as_mut(), 3_000, &mut Curve::default(), &mut |_| {
                    ControlFlow::Continue(())
                });
            let text = result.err().unwrap_or_else(|| panic!("{algo} on {id} trained")).to_string();
            assert!(text.contains(id) && text.contains("not the agent"), "{algo} on {id}: {text}");

            let mut env = registry.make(&spec).unwrap();
            let text = evaluate(agent.as_ref(), env.as_mut(), 50, true, 0).err().map(|e| e.to_string());
            // An evaluation meets the bug unless its episodes avoid it (a short final observation
            // needs a pole that falls; the deterministic policy may balance it to the limit).
            if let Some(text) = text {
                assert!(text.contains(id), "{algo} evaluating {id}: {text}");
            }
        }
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn out(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("headstart-contract-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn smoke(name: &str, broken: &str) -> (Experiment, RunOptions) {
    std::env::set_current_dir(root()).unwrap();
    let mut experiment = Experiment::load(&root().join("experiments/smoke.ron")).unwrap();
    experiment.name = name.into();
    experiment.targets.push(Target::Env(EnvSpec::new(broken)));
    let dir = out(name);
    let mut opts = RunOptions::new(dir.clone());
    (opts.sources, opts.jobs, opts.quiet) = (dir.join("sources"), 2, true);
    (experiment, opts)
}

#[test]
fn a_study_with_a_broken_target_still_reports_the_healthy_one() {
    let (experiment, opts) = smoke("contract", "NanRewardOnSeed8-v0");
    let summary = match study::run(&experiment, &registry(), &opts, &AtomicBool::new(false)).unwrap() {
        RunOutcome::Complete(summary) => *summary,
        RunOutcome::Interrupted { done, total } => panic!("interrupted at {done}/{total}"),
        RunOutcome::Incomplete { done, total, .. } => panic!("incomplete at {done}/{total}"),
    };
    let units = study::read_units(&opts.out).unwrap();
    for unit in &units {
        let broken = unit.target.as_str().starts_with("NanReward") && unit.seed == 1;
        match &unit.status {
            UnitStatus::Failed(e) => {
                assert!(broken, "{}: {e}", unit.target.as_str());
                assert!(e.contains("NanRewardOnSeed8-v0") && e.contains("returned the reward NaN"), "{e}");
                assert!(e.contains("not the agent"), "{e}");
            }
            status => assert!(!broken, "{} seed {}: {status:?}", unit.target.as_str(), unit.seed),
        }
    }
    assert_eq!(summary.failures.len(), 3, "seed 1 of each arm on the broken target");
    let healthy = summary.targets.iter().find(|t| t.key.starts_with("CartPole")).expect("the healthy target");
    assert!(healthy.curves.iter().all(|c| c.failed == 0 && c.finished == 2));
    let report = std::fs::read_to_string(opts.out.join("report.md")).unwrap();
    assert!(report.contains("CartPole-v1-length=0.65") && report.contains("## Failed units"), "{report}");
    let _ = std::fs::remove_dir_all(&opts.out);
}

/// A target whose environment breaks under random actions stops the study at validation, before
/// anything is trained, with the environment and the step named.
#[test]
fn a_target_broken_under_random_actions_is_refused_before_training() {
    let (experiment, opts) = smoke("contract-validation", "NanReward-v0");
    let e = study::run(&experiment, &registry(), &opts, &AtomicBool::new(false)).err().expect("refused").to_string();
    assert!(e.contains("random-policy return on NanReward-v0") && e.contains("at step"), "{e}");
    assert!(e.contains("returned the reward NaN"), "{e}");
    assert!(!opts.out.join("sources").exists(), "nothing pretrained or trained");
    let _ = std::fs::remove_dir_all(&opts.out);
}

/// `check` (the full contract test) finds every bug above, and passes the built-in environments
/// at their parameters and at the ends of every declared range.
#[test]
fn check_finds_every_breach_and_passes_the_builtins() {
    let registry = registry();
    for (id, what) in [
        ("ShortFinal-v0", "an observation of 3 values"),
        ("NanReward-v0", "the reward NaN"),
        ("ShortObs-v0", "an observation of 3 values"),
        ("InfObs-v0", "with inf at index 0"),
    ] {
        let failure = headstart::env::check_registered(&registry, &EnvSpec::new(id)).err();
        let text = failure.unwrap_or_else(|| panic!("{id} passed check")).to_string();
        assert!(text.contains(what), "{id}: {text}");
    }
    for id in ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"] {
        headstart::env::check_registered(&registry, &EnvSpec::new(id)).unwrap_or_else(|e| panic!("{id}: {e}"));
    }
}

/// A target every unit of which fails is left out of the aggregate across targets (and said so),
/// and a threshold no run reaches gets a note instead of a silent "not estimable".
#[test]
fn a_target_whose_units_all_fail_is_left_out_of_the_aggregate() {
    let (mut experiment, opts) = smoke("contract-aggregate", "NanRewardOnSmallSeeds-v0");
    experiment.threshold = Some(600.0);
    let summary = match study::run(&experiment, &registry(), &opts, &AtomicBool::new(false)).unwrap() {
        RunOutcome::Complete(summary) => *summary,
        RunOutcome::Interrupted { done, total } => panic!("interrupted at {done}/{total}"),
        RunOutcome::Incomplete { done, total, .. } => panic!("incomplete at {done}/{total}"),
    };
    let broken = summary.targets.iter().find(|t| t.key.starts_with("NanReward")).expect("the broken target");
    assert!(broken.curves.iter().all(|c| c.finished == 0), "every unit failed");
    assert!(!summary.aggregate.is_empty());
    for row in &summary.aggregate {
        assert_eq!(row.excluded, std::slice::from_ref(&broken.key), "{}", row.strategy);
    }
    let healthy = summary.targets.iter().find(|t| t.key.starts_with("CartPole")).expect("the healthy target");
    for c in &healthy.comparisons {
        assert!(c.notes.iter().any(|n| n.contains("no run of either arm reached the threshold 600")), "{:?}", c.notes);
    }
    let report = std::fs::read_to_string(opts.out.join("report.md")).unwrap();
    assert!(report.contains("left out of the aggregate"), "{report}");
    let _ = std::fs::remove_dir_all(&opts.out);
}
