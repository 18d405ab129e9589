//! Reward-free (unsupervised) sources: RND pretraining never reads the task's reward, resumes
//! bit for bit, round-trips through checkpoints with a card that says so, transfers like any
//! source, and runs through the harness with its intrinsic curve in the report.

mod common;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use headstart::agent::checkpoint;
use headstart::agent::train::{Curve, Task, load_training, save_training, train_logged};
use headstart::agent::{Agent, AgentConfig, DiaynConfig, DqnConfig, Event, Objective, Outcome, PpoConfig, RndConfig};
use headstart::env::registry::EnvEntry;
use headstart::env::{Action, Env, EnvError, EnvSpec, Info, Obs, Registry, Space, Step};
use headstart::study::experiment::Experiment;
use headstart::study::{self, RunOptions, RunOutcome};
use headstart::transfer::{self, Strategy};

fn rnd_config() -> AgentConfig {
    AgentConfig::Ppo(PpoConfig {
        n_envs: 4,
        n_steps: 64,
        batch_size: 64,
        n_epochs: 2,
        normalize_obs: true,
        normalize_reward: true,
        objective: Objective::Rnd(RndConfig::default()),
        ..Default::default()
    })
}

/// MountainCar-v0 whose every reward is `f64::MAX`: any arithmetic on it (a return, an
/// advantage, a normaliser's variance) overflows to infinity and then NaN, so an agent that reads
/// it learns NaN. (NaN itself is refused at the environment's boundary: the contract holds an
/// environment that returns it broken, whoever reads the reward.)
struct Poisoned(Box<dyn Env>);

impl Env for Poisoned {
    fn observation_space(&self) -> &Space {
        self.0.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.0.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        self.0.reset(seed)
    }
    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        Ok(Step { reward: f64::MAX, ..self.0.step(action)? })
    }
}

/// `Poisoned-v0` (MountainCar-v0) and `PoisonedCartPole-v0`, their rewards poisoned.
fn poisoned_registry() -> Registry {
    let mut registry = Registry::builtin();
    registry.register(EnvEntry::new("Poisoned-v0", |_| {
        Ok(Poisoned(Registry::builtin().make(&EnvSpec::new("MountainCar-v0"))?))
    }));
    registry.register(EnvEntry::new("PoisonedCartPole-v0", |_| {
        Ok(Poisoned(Registry::builtin().make(&EnvSpec::new("CartPole-v1"))?))
    }));
    registry
}

fn train(registry: &Registry, config: &AgentConfig, spec: &EnvSpec, steps: u64) -> (Box<dyn Agent>, Curve) {
    let env = registry.make(spec).unwrap();
    let mut agent = config.build(env.observation_space(), env.action_space(), 0).unwrap();
    let mut curve = Curve::default();
    let task = Task::Env(spec.clone());
    train_logged(registry, &task, agent.as_mut(), steps, &mut curve, None, &mut |_| ControlFlow::Continue(())).unwrap();
    (agent, curve)
}

fn all_finite(agent: &dyn Agent) -> bool {
    agent.tensors().iter().all(|(_, t)| t.isfinite().all().int64_value(&[]) == 1)
}

fn values(agent: &dyn Agent) -> Vec<(String, Vec<f64>)> {
    let tensors = agent.tensors().into_iter();
    tensors.map(|(n, t)| (n, Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1)).unwrap())).collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("headstart-rf-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Every reward is poisoned, and RND pretraining trains on regardless, its weights finite and its
/// intrinsic reward recorded; the same agent with the task's reward as objective is poisoned.
#[test]
fn reward_free_pretraining_never_reads_the_reward() {
    tch::set_num_threads(1);
    let registry = poisoned_registry();
    let spec = EnvSpec::new("Poisoned-v0");
    let (agent, curve) = train(&registry, &rnd_config(), &spec, 3000);
    assert!(all_finite(agent.as_ref()), "a reward-free agent read the reward");
    assert!(curve.intrinsic.len() >= 10 && curve.intrinsic.iter().all(|(_, r)| r.is_finite() && *r > 0.0));
    let reward = rnd_config().with_objective(Objective::Reward).unwrap();
    let (agent, _) = train(&registry, &reward, &spec, 3000);
    assert!(!all_finite(agent.as_ref()), "the contrast: an agent that reads the reward learns NaN");
}

/// Only PPO trains on a reward-free objective; bad settings are refused naming the field.
#[test]
fn objectives_are_refused_where_they_do_not_apply() {
    let e = AgentConfig::Dqn(DqnConfig::default()).with_objective(Objective::Rnd(RndConfig::default())).unwrap_err();
    assert!(e.to_string().contains("objective") && e.to_string().contains("DQN"), "{e}");
    let bad = AgentConfig::from_ron("Ppo(objective: Rnd(embedding: 0))").unwrap();
    let env = Registry::builtin().make(&EnvSpec::new("MountainCar-v0")).unwrap();
    let e = bad.build(env.observation_space(), env.action_space(), 0).err().unwrap().to_string();
    assert!(e.contains("objective.embedding"), "{e}");
    let e = AgentConfig::from_ron("Ppo(objective: Rnd(embeding: 8))").unwrap_err().to_string();
    assert!(e.contains("embeding"), "{e}");
}

/// Stopped at a checkpoint, saved with its training state, loaded and continued: the same
/// weights, predictor, statistics and intrinsic curve as the run that never stopped.
#[test]
fn a_resumed_reward_free_run_equals_an_uninterrupted_one() {
    tch::set_num_threads(1);
    let registry = Registry::builtin();
    let spec = EnvSpec::new("MountainCar-v0");
    let task = Task::Env(spec.clone());
    let (straight, straight_curve) = train(&registry, &rnd_config(), &spec, 2000);
    let env = registry.make(&spec).unwrap();
    let mut first = rnd_config().build(env.observation_space(), env.action_space(), 0).unwrap();
    let mut curve = Curve::default();
    let mut checkpoints = 0;
    let (outcome, log) = train_logged(&registry, &task, first.as_mut(), 2000, &mut curve, None, &mut |e| {
        checkpoints += matches!(e, Event::Checkpoint { .. }) as usize;
        if checkpoints == 3 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    })
    .unwrap();
    assert_eq!(outcome, Outcome::Stopped);
    let dir = scratch("resume");
    common::save_checkpoint(first.as_ref(), &spec, &dir, "tests/reward_free.rs");
    save_training(first.as_ref(), &log, &dir).unwrap();
    let mut resumed = checkpoint::load(&dir).unwrap().agent;
    let log = load_training(resumed.as_mut(), &dir).unwrap().expect("a training state");
    train_logged(&registry, &task, resumed.as_mut(), 2000, &mut curve, Some(&log), &mut |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(curve, straight_curve);
    assert_eq!(values(resumed.as_ref()), values(straight.as_ref()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The checkpoint keeps RND's networks and statistics, its card says reward-free with the
/// objective's settings, and transfer builds a target that trains on its own reward, copying
/// the policy and saying that the source was pretrained without reward.
#[test]
fn a_reward_free_checkpoint_round_trips_and_transfers_like_any_source() {
    tch::set_num_threads(1);
    let registry = Registry::builtin();
    let spec = EnvSpec::new("MountainCar-v0");
    let (agent, _) = train(&registry, &rnd_config(), &spec, 1000);
    let names: Vec<String> = agent.tensors().into_iter().map(|(n, _)| n).collect();
    for part in ["rnd.target.head.weight", "rnd.predictor.head.weight", "rnd.optim.", "rnd.obs_rms.mean", "rnd.ret_rms.var"] {
        assert!(names.iter().any(|n| n.starts_with(part)), "{part} missing from {names:?}");
    }
    let dir = scratch("card");
    common::save_checkpoint(agent.as_ref(), &spec, &dir, "tests/reward_free.rs");
    let loaded = checkpoint::load(&dir).unwrap();
    assert!(loaded.card.reward_free);
    assert_eq!(loaded.card.config, rnd_config());
    assert!(loaded.card.weights.iter().all(|w| !w.starts_with("rnd.")), "RND's networks are not the policy's weights");
    assert!(std::fs::read_to_string(dir.join(checkpoint::CARD_FILE)).unwrap().contains("reward_free: true"));
    assert_eq!(values(loaded.agent.as_ref()), values(agent.as_ref()));

    let target = EnvSpec::new("MountainCar-v0").with("gravity", 0.0035);
    let strategy = Strategy::from_ron("(name: \"finetune\")").unwrap();
    let config = transfer::target_config(&loaded, &strategy).unwrap();
    assert!(config.objective().is_reward(), "the target trains on its reward");
    let (target_agent, report) = transfer::prepare(&registry, &loaded, "rnd", &target, &strategy, None, 0).unwrap();
    assert!(report.state.iter().any(|s| s.contains("without reward")), "{:?}", report.state);
    assert!(target_agent.tensors().iter().all(|(n, _)| !n.starts_with("rnd.")));
    let source_actor = &values(loaded.agent.as_ref()).into_iter().find(|(n, _)| n == "actor.head.weight").unwrap();
    assert!(values(target_agent.as_ref()).contains(source_actor), "the policy is copied");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A study with a reward-free `Pretrain` source: the source is pretrained once, cached, its
/// card says reward-free, and the report shows the objective and the intrinsic curve.
#[test]
fn a_study_transfers_from_a_reward_free_source_and_reports_its_pretraining() {
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
    let text = r#"(version: 1, name: "rf", source: Pretrain(algorithm: Ppo, env: Env(id: "MountainCar-v0"), steps: 2048,
        config: Ppo(n_envs: 4, n_steps: 64, batch_size: 64, n_epochs: 2), objective: Rnd(embedding: 16)),
        targets: [Variant("envs/mountaincar-steep-hill.ron")], strategies: [(name: "finetune")], seeds: 3,
        budget: 1024, threshold: -150.0, eval: (every: 512, episodes: 2))"#;
    let experiment: Experiment = headstart::util::ron_options().from_str(text).unwrap();
    let dir = scratch("study");
    let mut options = RunOptions::new(dir.clone());
    (options.sources, options.jobs, options.quiet) = (dir.join("sources"), 2, true);
    let outcome = study::run(&experiment, &Registry::builtin(), &options, &AtomicBool::new(false)).unwrap();
    assert!(matches!(outcome, RunOutcome::Complete(_)));
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(report.contains("pretrained **without reward** (objective `rnd`"), "{report}");
    assert!(dir.join("source-intrinsic.png").exists() && dir.join("source-intrinsic.svg").exists());
    let sources: Vec<PathBuf> = std::fs::read_dir(dir.join("sources")).unwrap().flatten().map(|e| e.path()).collect();
    let card = checkpoint::read_card(&sources[0]).unwrap();
    assert!(card.reward_free && card.config.objective().name() == "rnd");
    assert!(Path::new(&sources[0]).join("intrinsic.csv").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

fn diayn_config(skills: usize, skill: usize) -> AgentConfig {
    let objective = Objective::Diayn(DiaynConfig { skills, skill, ..DiaynConfig::default() });
    rnd_config().with_objective(objective).unwrap()
}

/// DIAYN on CartPole with poisoned rewards: the discriminator's reward (`log q(z | s') + log K`,
/// 0 at chance) rises well above chance within a short run, and the weights stay finite.
#[test]
fn diayn_skills_become_distinguishable_without_reading_the_reward() {
    tch::set_num_threads(1);
    let registry = poisoned_registry();
    let config = AgentConfig::from_ron(
        "Ppo(n_envs: 16, n_steps: 16, batch_size: 64, n_epochs: 4, gae_lambda: 0.98, normalize_obs: true, \
         objective: Diayn(skills: 4))",
    )
    .unwrap();
    let (agent, curve) = train(&registry, &config, &EnvSpec::new("PoisonedCartPole-v0"), 20_000);
    assert!(all_finite(agent.as_ref()));
    let early = curve.intrinsic[..5].iter().map(|(_, r)| r).sum::<f64>() / 5.0;
    let n = curve.intrinsic.len();
    let late = curve.intrinsic[n - 5..].iter().map(|(_, r)| r).sum::<f64>() / 5.0;
    // log q(z|s') + log 4 is 0 at chance and ln 4 = 1.39 when every skill is told apart.
    assert!(early.abs() < 0.3 && late > 0.5, "discriminator reward {early:.3} -> {late:.3}");
}

/// Transfer from a DIAYN source fixes a skill: the target, whose networks read the observation
/// alone, acts as the source with that skill; by default the best skill on the target's reward is
/// chosen and its steps are counted.
#[test]
fn a_diayn_source_transfers_with_a_skill_folded_in() {
    tch::set_num_threads(1);
    let registry = Registry::builtin();
    let spec = EnvSpec::new("MountainCar-v0");
    let (agent, _) = train(&registry, &diayn_config(4, 0), &spec, 3000);
    let dir = scratch("diayn");
    common::save_checkpoint(agent.as_ref(), &spec, &dir, "tests/reward_free.rs");
    let loaded = checkpoint::load(&dir).unwrap();
    let obs: Vec<f32> = vec![-0.5, 0.0, -1.0, 0.03, 0.2, -0.05];
    for z in 0..4 {
        let strategy = Strategy::from_ron(&format!("(skill: Fixed({z}))")).unwrap();
        let (target, report) = transfer::prepare(&registry, &loaded, "diayn", &spec, &strategy, None, 0).unwrap();
        assert!(report.state.iter().any(|s| s.contains(&format!("skill {z} of the source's 4"))), "{:?}", report.state);
        // The source acting with skill z.
        let env = registry.make(&spec).unwrap();
        let mut with_z = diayn_config(4, z).build(env.observation_space(), env.action_space(), 0).unwrap();
        let tensors: std::collections::HashMap<String, tch::Tensor> = loaded.agent.tensors().into_iter().collect();
        with_z.restore(&mut |n| tensors.get(n).map(|t| t.shallow_clone()), loaded.card.steps).unwrap();
        for ((name, a), (_, b)) in target.outputs(&obs).iter().zip(with_z.outputs(&obs)) {
            assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5), "skill {z} {name}: {a:?} vs {b:?}");
        }
    }
    let (_, report) =
        transfer::prepare(&registry, &loaded, "diayn", &spec, &Strategy::from_ron("()").unwrap(), None, 0).unwrap();
    assert!(report.extra_steps >= 4 * 3 && report.state.iter().any(|s| s.contains("chosen: the best mean return")));
    let e = transfer::prepare(&registry, &loaded, "diayn", &spec, &Strategy::from_ron("(skill: Fixed(4))").unwrap(), None, 0)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("skill") && e.contains("4 skills"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
