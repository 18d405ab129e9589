//! Environments that break their contract at random, driving training (PPO, DQN, SAC),
//! evaluation and a study: every fault is an error that names the environment, never a panic, and
//! a study still completes. Faults: observations one value short or long, NaN or infinite values,
//! NaN or infinite rewards, and errors raised mid-episode, each with some probability per step.
//! `HEADSTART_FUZZ_CASES` sets the cases (environments with their own fault seeds; 24 here,
//! `make fuzz` runs 600).

use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::AtomicBool;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use headstart::agent::train::{Curve, Task, train};
use headstart::agent::{AgentConfig, Algo, evaluate, presets};
use headstart::env::registry::EnvEntry;
use headstart::env::{Action, Env, EnvError, EnvSpec, Info, Obs, Registry, Space, Step};
use headstart::study::experiment::{Experiment, Target};
use headstart::study::{self, RunOptions, RunOutcome};

fn cases() -> u64 {
    std::env::var("HEADSTART_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(24)
}

/// A built-in environment (bare) that breaks the contract with probability `p` per step.
struct Chaos {
    inner: Box<dyn Env>,
    rng: StdRng,
    p: f64,
}

impl Env for Chaos {
    fn observation_space(&self) -> &Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.inner.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        let (mut obs, info) = self.inner.reset(seed)?;
        if self.rng.random_bool(self.p) {
            obs.push(0.5);
        }
        Ok((obs, info))
    }
    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        let mut step = self.inner.step(action)?;
        if self.rng.random_bool(self.p) {
            match self.rng.random_range(0..7) {
                0 => {
                    step.obs.pop();
                }
                1 => step.obs.push(1.0),
                2 => step.obs[0] = f32::NAN,
                3 => step.obs[0] = f32::NEG_INFINITY,
                4 => step.reward = f64::NAN,
                5 => step.reward = f64::INFINITY,
                _ => return Err(EnvError::Custom("the simulator lost contact".into())),
            }
        }
        Ok(step)
    }
}

/// `Chaos-<inner>-<case>-v0` for each case: CartPole-v1 (discrete) and Pendulum-v1 (continuous)
/// underneath, a fault rate between 1 in 20 and 1 in 2000 per step.
fn registry(inner: &'static str, case: u64) -> (Registry, String) {
    let id = format!("Chaos{case}-v0");
    let mut registry = Registry::builtin();
    let p = 10f64.powf(-1.3 - 2.0 * StdRng::seed_from_u64(case).random::<f64>());
    registry.register(
        EnvEntry::new(id.clone(), move |_| {
            let inner = Registry::builtin().make_bare(&EnvSpec::new(inner))?;
            Ok(Chaos { inner, rng: StdRng::seed_from_u64(case * 7919), p })
        })
        .max_episode_steps(200)
        .reward_threshold(100.0),
    );
    (registry, id)
}

/// Runs `f`, failing the test on a panic (with what `case` was).
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| panic!("{what} panicked"))
}

#[test]
fn training_and_evaluation_meet_random_faults_with_errors() {
    let mut errors = 0;
    for case in 0..cases() {
        let (algo, inner) =
            [(Algo::Ppo, "CartPole-v1"), (Algo::Dqn, "CartPole-v1"), (Algo::Sac, "Pendulum-v1")][(case % 3) as usize];
        let (registry, id) = registry(inner, case);
        let spec = EnvSpec::new(&id);
        let what = format!("case {case}: {algo} on {inner}");
        let probe = registry.make_bare(&spec).unwrap();
        let config: AgentConfig = presets::get(algo, inner).unwrap().config;
        let config = match config {
            // SAC's preset on Pendulum trains from the first steps; keep the case short.
            AgentConfig::Sac(mut c) => {
                c.learning_starts = 100;
                AgentConfig::Sac(c)
            }
            other => other,
        };
        let mut agent = config.build(probe.observation_space(), probe.action_space(), case).unwrap();
        let steps = if algo == Algo::Sac { 400 } else { 3_000 };
        let result = no_panic(&what, || {
            train(&registry, &Task::Env(spec.clone()), agent.as_mut(), steps, &mut Curve::default(), &mut |_| {
                ControlFlow::Continue(())
            })
        });
        if let Err(e) = result {
            let text = e.to_string();
            assert!(text.contains(&id), "{what}: {text}");
            errors += 1;
        }
        let mut env = registry.make(&spec).unwrap();
        if let Err(e) = no_panic(&what, || evaluate(agent.as_ref(), env.as_mut(), 5, true, case)) {
            assert!(e.to_string().contains(&id), "{what}: {e}");
        }
    }
    assert!(errors > 0, "some case met a fault");
}

#[test]
fn a_study_on_a_faulty_environment_completes() {
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
    for case in 0..(cases() / 8).max(1) {
        let (registry, id) = registry("CartPole-v1", 1000 + case);
        let mut experiment = Experiment::load(std::path::Path::new("experiments/smoke.ron")).unwrap();
        experiment.name = format!("fuzz-{case}");
        experiment.targets.push(Target::Env(EnvSpec::new(&id)));
        let dir = std::env::temp_dir().join(format!("headstart-fuzz-envs-{}-{case}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut opts = RunOptions::new(dir.clone());
        (opts.sources, opts.jobs, opts.quiet) = (dir.join("sources"), 2, true);
        let outcome = no_panic(&format!("study case {case}"), || {
            study::run(&experiment, &registry, &opts, &AtomicBool::new(false)).map_err(|e| e.to_string())
        });
        match outcome {
            // Validation's random episodes may meet a fault first: then nothing ran.
            Err(e) => assert!(e.contains(&id), "case {case}: {e}"),
            Ok(RunOutcome::Complete(_)) => assert!(dir.join("report.md").exists()),
            Ok(_) => panic!("case {case}: the study did not complete"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
