//! Agents: seeded runs repeat bit for bit, checkpoints round-trip, bad checkpoints and
//! mismatched configurations get errors that name the file and the field or tensor.

mod common;

use std::fs;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use headstart::agent::checkpoint::{self, CARD_FILE, WEIGHTS_FILE};
use headstart::agent::nn::MlpConfig;
use headstart::agent::train::{Curve, Task, train};
use headstart::agent::{
    A2cConfig, Agent, AgentConfig, Algo, DqnConfig, Event, Outcome, PpoConfig, SacConfig, Td3Config, evaluate,
};
use headstart::env::{EnvSpec, Registry};

fn small(algo: Algo) -> AgentConfig {
    match algo {
        Algo::Ppo => {
            AgentConfig::Ppo(PpoConfig { n_envs: 4, n_steps: 64, batch_size: 64, n_epochs: 2, ..Default::default() })
        }
        Algo::Dqn => AgentConfig::Dqn(DqnConfig {
            learning_starts: 200,
            train_freq: 4,
            target_update_interval: 100,
            net: MlpConfig::relu(&[32, 32]),
            ..Default::default()
        }),
        Algo::Sac => {
            AgentConfig::Sac(SacConfig { batch_size: 32, net: MlpConfig::relu(&[32, 32]), ..Default::default() })
        }
        Algo::A2c => AgentConfig::A2c(A2cConfig { n_envs: 4, n_steps: 8, ..Default::default() }),
        Algo::Td3 => AgentConfig::Td3(Td3Config {
            batch_size: 32,
            action_noise: Some(0.1),
            net: MlpConfig::relu(&[32, 32]),
            ..Default::default()
        }),
    }
}

fn env_for(algo: Algo) -> EnvSpec {
    EnvSpec::new(if matches!(algo, Algo::Sac | Algo::Td3) { "Pendulum-v1" } else { "CartPole-v1" })
}

fn build(config: &AgentConfig, spec: &EnvSpec, seed: u64) -> Box<dyn Agent> {
    let env = Registry::builtin().make(spec).unwrap();
    config.build(env.observation_space(), env.action_space(), seed).unwrap()
}

fn run(agent: &mut dyn Agent, spec: &EnvSpec, steps: u64) -> Curve {
    let mut curve = Curve::default();
    train(&Registry::builtin(), &Task::Env(spec.clone()), agent, steps, &mut curve, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    curve
}

fn weights(agent: &dyn Agent) -> Vec<(String, Vec<f64>)> {
    agent
        .tensors()
        .into_iter()
        .map(|(name, t)| (name, Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1)).unwrap()))
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("headstart-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

/// The engine's instruction sets give the same training run bit for bit: PPO (discrete and
/// continuous), DQN, SAC, A2C (RMSprop) and TD3 trained with the portable kernels and with every vector instruction set
/// this CPU has end with the same weights, Adam moments and learning curve.
#[test]
fn every_instruction_set_trains_the_same_agent() {
    use headstart::agent::engine::{Isa, force, supported};
    tch::set_num_threads(1);
    let cases = [
        (Algo::Ppo, EnvSpec::new("CartPole-v1"), 2048),
        (Algo::Ppo, EnvSpec::new("Pendulum-v1"), 1024),
        (Algo::Dqn, EnvSpec::new("CartPole-v1"), 1500),
        (Algo::Sac, EnvSpec::new("Pendulum-v1"), 600),
        (Algo::A2c, EnvSpec::new("CartPole-v1"), 1024),
        (Algo::Td3, EnvSpec::new("Pendulum-v1"), 600),
    ];
    for (algo, spec, steps) in cases {
        let config = small(algo);
        let trained = |isa| {
            force(isa, || {
                let mut agent = build(&config, &spec, 3);
                let curve = run(agent.as_mut(), &spec, steps);
                (curve, weights(agent.as_ref()))
            })
        };
        let portable = trained(Isa::Portable);
        assert!(!portable.0.episodes.is_empty(), "{algo} {}: no episode ended", spec.id);
        for isa in [Isa::Avx2, Isa::Avx512].into_iter().filter(|&i| supported(i)) {
            assert!(trained(isa) == portable, "{algo} {}: {isa:?} differs from the portable kernels", spec.id);
        }
    }
}

#[test]
fn same_seed_same_learning_curve_bit_for_bit() {
    tch::set_num_threads(1);
    for algo in Algo::ALL {
        let (config, spec) = (small(algo), env_for(algo));
        let steps = if matches!(algo, Algo::Sac | Algo::Td3) { 800 } else { 3000 };
        let mut a = build(&config, &spec, 7);
        let mut b = build(&config, &spec, 7);
        let (ca, cb) = (run(a.as_mut(), &spec, steps), run(b.as_mut(), &spec, steps));
        assert!(!ca.episodes.is_empty(), "{algo}: no episode ended");
        assert_eq!(ca, cb, "{algo}: curves differ");
        assert_eq!(weights(a.as_ref()), weights(b.as_ref()), "{algo}: final state differs");
        let mut c = build(&config, &spec, 8);
        assert_ne!(run(c.as_mut(), &spec, steps), ca, "{algo}: another seed gave the same curve");
    }
}

/// Stopping at every checkpoint event and calling `learn` again gives the run that never
/// stopped, bit for bit: what lets the harness evaluate between updates without changing them.
#[test]
fn stopping_at_checkpoints_changes_nothing() {
    tch::set_num_threads(1);
    for algo in Algo::ALL {
        let (config, spec) = (small(algo), env_for(algo));
        let registry = Registry::builtin();
        let mut straight = build(&config, &spec, 4);
        let mut envs = registry.make_vec(&spec, config.num_envs()).unwrap();
        straight.learn(&mut envs, 700, &mut |_| ControlFlow::Continue(())).unwrap();
        let mut stopped = build(&config, &spec, 4);
        let mut envs = registry.make_vec(&spec, config.num_envs()).unwrap();
        let mut stops = 0;
        while stopped
            .learn(&mut envs, 700, &mut |e| match e {
                Event::Checkpoint { .. } => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            })
            .unwrap()
            == Outcome::Stopped
        {
            stops += 1;
        }
        assert!(stops > 1, "{algo}: {stops} checkpoints");
        assert_eq!(weights(stopped.as_ref()), weights(straight.as_ref()), "{algo}: stopping changed the run");
    }
}

/// A run stopped at a checkpoint, saved to disk with its training state (as `train` saves it),
/// loaded in a fresh agent and continued (as `train --resume` does) ends with the weights, the
/// Adam moments and the learning curve of the run that was never stopped, for every algorithm.
#[test]
fn a_resumed_run_equals_an_uninterrupted_one() {
    use headstart::agent::train::{Task, load_training, save_training, train_logged};
    tch::set_num_threads(1);
    let registry = Registry::builtin();
    for algo in Algo::ALL {
        let (config, spec) = (small(algo), env_for(algo));
        let task = Task::Env(spec.clone());
        let total = 1200;
        let mut straight = build(&config, &spec, 5);
        let mut straight_curve = Curve::default();
        train_logged(&registry, &task, straight.as_mut(), total, &mut straight_curve, None, &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap();

        let mut first = build(&config, &spec, 5);
        let mut curve = Curve::default();
        let mut checkpoints = 0;
        let (outcome, log) = train_logged(&registry, &task, first.as_mut(), total, &mut curve, None, &mut |e| {
            checkpoints += matches!(e, Event::Checkpoint { .. }) as usize;
            if checkpoints == 3 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        })
        .unwrap();
        assert_eq!(outcome, Outcome::Stopped, "{algo}");
        let dir = scratch(&format!("resume-{}", algo.name()));
        save(first.as_ref(), &spec, &dir);
        save_training(first.as_ref(), &log, &dir).unwrap();
        drop(first);

        let mut resumed = checkpoint::load(&dir).unwrap().agent;
        let log = load_training(resumed.as_mut(), &dir).unwrap().expect("a training state");
        train_logged(&registry, &task, resumed.as_mut(), total, &mut curve, Some(&log), &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(curve, straight_curve, "{algo}: curves differ");
        assert_eq!(weights(resumed.as_ref()), weights(straight.as_ref()), "{algo}: the resumed run differs");
        let _ = fs::remove_dir_all(&dir);
    }
}

fn save(agent: &dyn Agent, spec: &EnvSpec, dir: &Path) {
    common::save_checkpoint(agent, spec, dir, "tests/agents.rs");
}

#[test]
fn checkpoints_round_trip_and_resume() {
    tch::set_num_threads(1);
    for algo in Algo::ALL {
        let (config, spec) = (small(algo), env_for(algo));
        let mut agent = build(&config, &spec, 3);
        run(agent.as_mut(), &spec, 1000);
        let dir = scratch(&format!("roundtrip-{}", algo.name()));
        save(agent.as_ref(), &spec, &dir);
        let loaded = checkpoint::load(&dir).unwrap();
        assert_eq!(loaded.card.algorithm, algo);
        assert_eq!(loaded.card.steps, agent.steps());
        assert_eq!(weights(loaded.agent.as_ref()), weights(agent.as_ref()), "{algo}: state differs after loading");
        // Off-policy agents keep their replay buffer, transition for transition.
        match (agent.replay(), loaded.agent.replay()) {
            (Some(a), Some(b)) => {
                assert!(!a.is_empty() && a.len() == b.len());
                for ((name, x), (_, y)) in a.state().iter().zip(b.state()) {
                    assert!(x.equal(&y), "{algo}: {name} differs after loading");
                }
                // A damaged buffer file is refused by its checksum.
                let path = dir.join(checkpoint::REPLAY_FILE);
                let mut bytes = fs::read(&path).unwrap();
                let last = bytes.len() - 2;
                bytes[last] ^= 1;
                fs::write(&path, &bytes).unwrap();
                let e = load_error(&dir);
                assert!(e.contains(checkpoint::REPLAY_FILE) && e.contains("replay.sha256"), "{e}");
                save(agent.as_ref(), &spec, &dir);
            }
            (None, None) => assert!(!dir.join(checkpoint::REPLAY_FILE).exists()),
            _ => panic!("{algo}: replay buffer lost"),
        }
        for deterministic in [true, false] {
            let mut env = Registry::builtin().make(&spec).unwrap();
            let before = evaluate(agent.as_ref(), env.as_mut(), 3, deterministic, 5).unwrap();
            let after = evaluate(loaded.agent.as_ref(), env.as_mut(), 3, deterministic, 5).unwrap();
            assert_eq!(before, after, "{algo}: evaluation differs after loading");
        }
        // Training resumes from the saved step count.
        let mut resumed = loaded.agent;
        run(resumed.as_mut(), &spec, 1600);
        assert!(resumed.steps() >= 1600);
        let _ = fs::remove_dir_all(&dir);
    }
}

/// A saved PPO checkpoint to damage.
fn checkpoint_to_damage(name: &str) -> PathBuf {
    let spec = EnvSpec::new("CartPole-v1");
    let agent = build(&small(Algo::Ppo), &spec, 0);
    let dir = scratch(name);
    save(agent.as_ref(), &spec, &dir);
    dir
}

fn load_error(dir: &Path) -> String {
    match checkpoint::load(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn truncated_or_corrupt_weights_are_refused() {
    let dir = checkpoint_to_damage("truncated");
    let path = dir.join(WEIGHTS_FILE);
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_error(&dir);
    assert!(e.contains(WEIGHTS_FILE) && e.contains("truncated or corrupt"), "{e}");

    let mut flipped = bytes.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x40;
    fs::write(&path, &flipped).unwrap();
    let e = load_error(&dir);
    assert!(e.contains(WEIGHTS_FILE) && e.contains("SHA-256"), "{e}");

    fs::remove_file(&path).unwrap();
    assert!(load_error(&dir).contains(WEIGHTS_FILE));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn cards_that_do_not_match_are_refused_naming_the_field_or_tensor() {
    let dir = checkpoint_to_damage("card");
    let card_path = dir.join(CARD_FILE);
    let card = fs::read_to_string(&card_path).unwrap();

    // A tensor the card lists with another shape.
    let edited = card.replacen(
        "name: \"actor.head.bias\",\n            shape: [\n                2,",
        "name: \"actor.head.bias\",\n            shape: [\n                3,",
        1,
    );
    assert_ne!(edited, card, "the card layout changed; update this test");
    fs::write(&card_path, &edited).unwrap();
    let e = load_error(&dir);
    assert!(e.contains("actor.head.bias") && e.contains("[2]") && e.contains("[3]"), "{e}");

    // An unknown field.
    fs::write(&card_path, card.replacen("seed:", "seeed:", 1)).unwrap();
    let e = load_error(&dir);
    assert!(e.contains(CARD_FILE) && e.contains("seeed"), "{e}");

    // A configuration whose networks differ from the weights.
    let edited = card.replacen(
        "hidden: [\n                64,\n                64,",
        "hidden: [\n                32,\n                32,",
        1,
    );
    assert_ne!(edited, card, "the card layout changed; update this test");
    fs::write(&card_path, edited).unwrap();
    let e = load_error(&dir);
    assert!(e.contains("tensor `actor.") && e.contains("`config`"), "{e}");

    // An algorithm that contradicts the configuration.
    fs::write(&card_path, card.replacen("algorithm: Ppo", "algorithm: Sac", 1)).unwrap();
    let e = load_error(&dir);
    assert!(e.contains("algorithm") && e.contains("PPO"), "{e}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn algorithms_refuse_spaces_they_cannot_handle() {
    let registry = Registry::builtin();
    let pendulum = registry.make(&EnvSpec::new("Pendulum-v1")).unwrap();
    let e = AgentConfig::Dqn(DqnConfig::default())
        .build(pendulum.observation_space(), pendulum.action_space(), 0)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("DQN supports Discrete"), "{e}");
    let cartpole = registry.make(&EnvSpec::new("CartPole-v1")).unwrap();
    let e = AgentConfig::Sac(SacConfig::default())
        .build(cartpole.observation_space(), cartpole.action_space(), 0)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("SAC supports Box"), "{e}");
}

#[test]
fn configs_refuse_unknown_fields_and_bad_values() {
    let e = AgentConfig::from_ron("Ppo(n_stepz: 32)").unwrap_err().to_string();
    assert!(e.contains("n_stepz"), "{e}");
    let config = AgentConfig::from_ron("Ppo(n_steps: 0)").unwrap();
    let env = Registry::builtin().make(&EnvSpec::new("CartPole-v1")).unwrap();
    let e = config.build(env.observation_space(), env.action_space(), 0).err().unwrap().to_string();
    assert!(e.contains("n_steps"), "{e}");
    // What is written reads back.
    let config = AgentConfig::from_ron("Sac(ent_coef: Fixed(0.1), use_sde: true)").unwrap();
    assert_eq!(AgentConfig::from_ron(&config.to_ron()).unwrap(), config);
}

#[test]
fn training_on_environments_with_other_spaces_is_an_error() {
    let registry = Registry::builtin();
    let mut agent = build(&small(Algo::Ppo), &EnvSpec::new("CartPole-v1"), 0);
    let mut curve = Curve::default();
    let e = train(&registry, &Task::Env(EnvSpec::new("Acrobot-v1")), agent.as_mut(), 100, &mut curve, &mut |_| {
        ControlFlow::Continue(())
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("observations of 4 values") && e.contains("6"), "{e}");
}
