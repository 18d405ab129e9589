//! Transfer: what each strategy does to the target agent's parameters and training, the report,
//! the refusals, and the evidence with the shipped policies (jumpstart, maps, negative transfer).

mod common;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use headstart::agent::checkpoint::{self, Loaded};
use headstart::agent::nn::MlpConfig;
use headstart::agent::train::{Curve, Task, train};
use headstart::agent::{
    A2cConfig, Agent, AgentConfig, Algo, Distill, DqnConfig, PpoConfig, SacConfig, Td3Config, evaluate,
};
use headstart::env::{EnvSpec, Registry, Transform, Variant};
use headstart::transfer::{self, Fate, Frozen, Map, ObsMap, Strategy, TransferError};
use tch::Tensor;

fn policy(name: &str) -> Loaded {
    checkpoint::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies").join(name)).unwrap()
}

fn variant(name: &str) -> Variant {
    Variant::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("envs").join(name)).unwrap()
}

/// A source checkpoint: `config` built for `spec`, trained `steps` steps, saved and loaded back.
fn source(config: AgentConfig, spec: &EnvSpec, steps: u64, dir: &Path) -> Loaded {
    let registry = Registry::builtin();
    let env = registry.make(spec).unwrap();
    let mut agent = config.build(env.observation_space(), env.action_space(), 7).unwrap();
    if steps > 0 {
        train(&registry, &Task::Env(spec.clone()), agent.as_mut(), steps, &mut Curve::default(), &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    }
    common::save_checkpoint(agent.as_ref(), spec, dir, "tests/transfer.rs");
    checkpoint::load(dir).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("headstart-transfer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn values(agent: &dyn Agent) -> HashMap<String, Tensor> {
    agent.tensors().into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
}

fn equal(a: &Tensor, b: &Tensor) -> bool {
    a.size() == b.size() && a.equal(b)
}

fn prepare(
    src: &Loaded,
    target: &EnvSpec,
    strategy: &Strategy,
    map: Option<&Map>,
) -> Result<(Box<dyn Agent>, transfer::TransferReport), TransferError> {
    // One libtorch thread: the numbers below are then the same on every machine.
    tch::set_num_threads(1);
    transfer::prepare(&Registry::builtin(), src, "source", target, strategy, map, 3)
}

fn ppo_small() -> AgentConfig {
    AgentConfig::Ppo(PpoConfig { n_steps: 64, batch_size: 64, n_epochs: 2, ..Default::default() })
}

fn train_for(agent: &mut dyn Agent, spec: &EnvSpec, steps: u64) -> Curve {
    let mut curve = Curve::default();
    train(&Registry::builtin(), &Task::Env(spec.clone()), agent, steps, &mut curve, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    curve
}

#[test]
fn finetune_copies_every_matching_parameter_and_reports_it() {
    let dir = tmp("finetune");
    let spec = EnvSpec::new("CartPole-v1");
    let src = source(ppo_small(), &spec, 256, &dir);
    let target = spec.clone().with("length", 0.75);
    let (agent, report) = prepare(&src, &target, &Strategy::finetune(), None).unwrap();
    let (s, t) = (values(src.agent.as_ref()), values(agent.as_ref()));
    assert_eq!(report.parameters.len(), agent.weight_names().len());
    for p in &report.parameters {
        assert_eq!(p.fate, Fate::Copied, "{}", p.name);
        assert!(equal(&s[&p.name], &t[&p.name]), "{} not copied", p.name);
        assert_eq!(p.shape, t[&p.name].size());
        assert_eq!(p.source_shape.as_ref(), Some(&s[&p.name].size()));
    }
    // The optimiser starts fresh by default; the step count too.
    assert_eq!(t["optim.steps"].int64_value(&[0]), 0);
    assert!(s["optim.steps"].int64_value(&[0]) > 0);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let table = report.table();
    assert!(table.contains("12 of 12 parameters from the source") && table.contains("actor.trunk.0.weight"), "{table}");
    let back = transfer::TransferReport::from_ron(&report.to_ron()).unwrap();
    assert_eq!(back, report);
    // Carrying the optimiser state instead.
    let keep = Strategy { reset: transfer::Resets { optimizer: false, ..Default::default() }, ..Strategy::finetune() };
    let (agent, _) = prepare(&src, &target, &keep, None).unwrap();
    let t = values(agent.as_ref());
    assert_eq!(t["optim.steps"].int64_value(&[0]), s["optim.steps"].int64_value(&[0]));
    assert!(equal(&t["optim.actor.trunk.0.weight.exp_avg"], &s["optim.actor.trunk.0.weight.exp_avg"]));
}

#[test]
fn finetune_starts_from_the_sources_normalisers() {
    // acrobot-ppo normalises observations: the fine-tuned agent must act as the source does
    // before training (its statistics carried, not only reported as carried), and a reset
    // must start them fresh.
    let src = policy("acrobot-ppo");
    let target = EnvSpec::new("Acrobot-v1").with("link_length_1", 0.8);
    let (agent, report) = prepare(&src, &target, &Strategy::finetune(), None).unwrap();
    assert!(report.state.iter().any(|s| s.contains("statistics carried")), "{:?}", report.state);
    let obs = [0.9f32, 0.1, 0.8, -0.6, 1.5, -2.0, 1.0, 0.0, 0.99, 0.1, 0.3, 4.0];
    assert_eq!(agent.outputs(&obs), src.agent.outputs(&obs));
    let (s, t) = (values(src.agent.as_ref()), values(agent.as_ref()));
    assert!(equal(&s["obs_rms.mean"], &t["obs_rms.mean"]) && equal(&s["obs_rms.var"], &t["obs_rms.var"]));
    let fresh = Strategy { reset: transfer::Resets { obs_rms: true, ..Default::default() }, ..Strategy::finetune() };
    let (agent, _) = prepare(&src, &target, &fresh, None).unwrap();
    assert_ne!(agent.outputs(&obs), src.agent.outputs(&obs));
    assert_eq!(values(agent.as_ref())["obs_rms.count"].double_value(&[0]), 1e-4);
}

#[test]
fn reinit_keeps_the_fresh_initialisation_of_the_named_parts() {
    let dir = tmp("reinit");
    let spec = EnvSpec::new("CartPole-v1");
    let src = source(ppo_small(), &spec, 0, &dir);
    let fresh = ppo_small().build(&src.card.observation_space, &src.card.action_space, 3).unwrap();
    let strategy = Strategy { reinit: vec!["actor.head".into(), "critic".into()], ..Strategy::finetune() };
    let (agent, report) = prepare(&src, &spec, &strategy, None).unwrap();
    let (s, f, t) = (values(src.agent.as_ref()), values(fresh.as_ref()), values(agent.as_ref()));
    for p in &report.parameters {
        let reinit = p.name.starts_with("actor.head") || p.name.starts_with("critic");
        assert_eq!(p.fate, if reinit { Fate::Reinit } else { Fate::Copied }, "{}", p.name);
        let expected = if reinit { &f[&p.name] } else { &s[&p.name] };
        assert!(equal(expected, &t[&p.name]), "{}", p.name);
    }
    assert_eq!(report.transferred(), 4);
}

#[test]
fn freeze_holds_parts_until_their_step_and_lr_scale_zero_holds_copied_parts() {
    let dir = tmp("freeze");
    let spec = EnvSpec::new("CartPole-v1");
    let src = source(ppo_small(), &spec, 0, &dir);
    let trunk = |n: &str| n.starts_with("actor.trunk");
    // Frozen for the whole run.
    let strategy = Strategy { freeze: vec!["actor.trunk".into()], ..Strategy::finetune() };
    let (mut agent, report) = prepare(&src, &spec, &strategy, None).unwrap();
    assert!(report.parameters.iter().all(|p| (p.frozen == Frozen::Always) == trunk(&p.name)));
    let before = values(agent.as_ref());
    train_for(agent.as_mut(), &spec, 512);
    let after = values(agent.as_ref());
    for name in agent.weight_names() {
        assert_eq!(equal(&before[&name], &after[&name]), trunk(&name), "{name}");
    }
    // Frozen until step 256 of 1024: the updates at steps 64 to 192 leave the trunk alone.
    let strategy = Strategy { freeze_until: Some(256), ..strategy };
    let (mut agent, report) = prepare(&src, &spec, &strategy, None).unwrap();
    assert!(report.parameters.iter().any(|p| p.frozen == Frozen::Until(256)));
    let mut envs = Registry::builtin().make_vec(&spec, 1).unwrap();
    agent.learn(&mut envs, 192, &mut |_| ControlFlow::Continue(())).unwrap();
    assert!(equal(&before["actor.trunk.0.weight"], &values(agent.as_ref())["actor.trunk.0.weight"]));
    agent.learn(&mut envs, 1024, &mut |_| ControlFlow::Continue(())).unwrap();
    assert!(!equal(&before["actor.trunk.0.weight"], &values(agent.as_ref())["actor.trunk.0.weight"]));
    // A learning-rate factor of zero for what was copied: only new parameters could move, and
    // there are none.
    let strategy = Strategy { lr_scale: 0.0, ..Strategy::finetune() };
    let (mut agent, report) = prepare(&src, &spec, &strategy, None).unwrap();
    assert!(report.parameters.iter().all(|p| p.lr_scale == 0.0));
    train_for(agent.as_mut(), &spec, 512);
    let after = values(agent.as_ref());
    assert!(agent.weight_names().iter().all(|n| equal(&before[n], &after[n])));
}

/// Mean squared distance of the weights from the source's.
fn drift(agent: &dyn Agent, src: &HashMap<String, Tensor>) -> f64 {
    let t = values(agent);
    agent.weight_names().iter().map(|n| (&t[n] - &src[n]).square().sum(tch::Kind::Float).double_value(&[])).sum()
}

#[test]
fn l2_init_keeps_the_weights_near_the_source() {
    let dir = tmp("l2");
    let spec = EnvSpec::new("CartPole-v1");
    let src = source(ppo_small(), &spec, 0, &dir);
    let s = values(src.agent.as_ref());
    let target = spec.clone().with("length", 0.75);
    let mut drifts = Vec::new();
    for coef in [0.0, 1.0] {
        let (mut agent, report) =
            prepare(&src, &target, &Strategy { l2_init: coef, ..Strategy::finetune() }, None).unwrap();
        assert_eq!(report.parameters.iter().all(|p| p.anchored), coef > 0.0);
        train_for(agent.as_mut(), &target, 2048);
        drifts.push(drift(agent.as_ref(), &s));
    }
    assert!(drifts[1] < 0.5 * drifts[0], "drift without and with L2-SP: {drifts:?}");
}

/// Mean KL(π_source ‖ π) of the discrete policies over `obs` rows.
fn kl_from(source: &dyn Agent, agent: &dyn Agent, obs: &[f32]) -> f64 {
    let probs = |a: &dyn Agent| -> Vec<f64> {
        // Action frequencies under many stochastic draws stand in for the probabilities.
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let mut counts = vec![1.0f64; obs.len() / 4 * 2];
        for _ in 0..200 {
            for (i, act) in a.act(obs, false, &mut rng).iter().enumerate() {
                if let headstart::env::Action::Discrete(k) = act {
                    counts[i * 2 + k] += 1.0;
                }
            }
        }
        counts.iter().map(|c| c / 202.0).collect()
    };
    let (p, q) = (probs(source), probs(agent));
    p.iter().zip(&q).map(|(p, q)| p * (p / q).ln()).sum::<f64>() / (obs.len() / 4) as f64
}

#[test]
fn distill_keeps_the_policy_near_the_source_while_its_weight_lasts() {
    let dir = tmp("distill");
    let spec = EnvSpec::new("CartPole-v1");
    let src = source(ppo_small(), &spec, 4096, &dir);
    let target = EnvSpec::new("CartPole-v1").with("length", 0.75);
    let obs: Vec<f32> =
        (0..64).flat_map(|i| [0.0, 0.1 * (i % 8) as f32 - 0.4, 0.01 * (i / 8) as f32 - 0.04, 0.0]).collect();
    let mut kls = Vec::new();
    for distill in [None, Some(Distill { weight: 5.0, decay_steps: 100_000 })] {
        let strategy = Strategy { distill, ..Strategy::finetune() };
        let (mut agent, report) = prepare(&src, &target, &strategy, None).unwrap();
        assert_eq!(report.state.iter().any(|s| s.starts_with("distill")), distill.is_some());
        train_for(agent.as_mut(), &target, 4096);
        kls.push(kl_from(src.agent.as_ref(), agent.as_ref(), &obs));
    }
    assert!(kls[1] < 0.5 * kls[0], "KL from the source without and with distillation: {kls:?}");
}

#[test]
fn dqn_and_sac_transfer_with_their_target_networks_in_step() {
    let registry = Registry::builtin();
    // DQN: the target network equals the transferred online network.
    let dir = tmp("dqn");
    let spec = EnvSpec::new("CartPole-v1");
    let cfg = AgentConfig::Dqn(DqnConfig { net: MlpConfig::relu(&[32]), learning_starts: 100, ..Default::default() });
    let src = source(cfg, &spec, 500, &dir);
    let strategy = Strategy { freeze: vec!["q.trunk".into()], l2_init: 0.1, ..Strategy::finetune() };
    let (mut agent, report) = transfer::prepare(&registry, &src, "dqn", &spec, &strategy, None, 1).unwrap();
    let t = values(agent.as_ref());
    let s = values(src.agent.as_ref());
    for name in agent.weight_names() {
        assert!(equal(&t[&name], &s[&name]), "{name}");
        assert!(equal(&t[&name], &t[&name.replacen("q.", "q_target.", 1)]), "target of {name}");
    }
    assert!(report.state.iter().any(|s| s == "replay buffer: starts empty"));
    assert_eq!(agent.replay().unwrap().len(), 0);
    // The checkpoint kept the source's buffer; `reset.replay: false` starts the target with it.
    assert_eq!(src.agent.replay().unwrap().len(), 500);
    assert_eq!(src.card.replay.as_ref().unwrap().transitions, 500);
    let keep = Strategy { reset: transfer::Resets { replay: false, ..Default::default() }, ..Strategy::finetune() };
    let (kept, report) = transfer::prepare(&registry, &src, "dqn", &spec, &keep, None, 1).unwrap();
    assert_eq!(kept.replay().unwrap().state()[0].1.size(), src.agent.replay().unwrap().state()[0].1.size());
    assert!(kept.replay().unwrap().state()[2].1.equal(&src.agent.replay().unwrap().state()[2].1));
    assert!(
        report.state.iter().any(|s| s == "replay buffer: starts with the source's 500 transitions"),
        "{:?}",
        report.state
    );
    train_for(agent.as_mut(), &spec, 1000);
    let after = values(agent.as_ref());
    assert!(equal(&after["q.trunk.0.weight"], &s["q.trunk.0.weight"]), "frozen trunk moved");
    assert!(!equal(&after["q.head.weight"], &s["q.head.weight"]), "the head trains");
    // DQN has no action distribution to distil.
    let err = transfer::prepare(
        &registry,
        &src,
        "dqn",
        &spec,
        &Strategy { distill: Some(Distill { weight: 1.0, decay_steps: 10 }), ..Strategy::finetune() },
        None,
        1,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("distill needs a policy with an action distribution"), "{err}");

    // SAC: critics' targets in step; the temperature carried, or reset.
    let dir = tmp("sac");
    let spec = EnvSpec::new("Pendulum-v1");
    let cfg = AgentConfig::Sac(SacConfig { net: MlpConfig::relu(&[16]), learning_starts: 50, ..Default::default() });
    let src = source(cfg, &spec, 200, &dir);
    let s = values(src.agent.as_ref());
    let target = spec.clone().with("m", 1.5);
    let (agent, report) = transfer::prepare(&registry, &src, "sac", &target, &Strategy::finetune(), None, 1).unwrap();
    let t = values(agent.as_ref());
    assert!(equal(&t["critic_target.q0.trunk.0.weight"], &s["critic.q0.trunk.0.weight"]));
    assert!(equal(&t["log_ent_coef"], &s["log_ent_coef"]));
    assert!(report.state.iter().any(|s| s.contains("entropy temperature: carried")));
    let reset = Strategy { reset: transfer::Resets { ent_coef: true, ..Default::default() }, ..Strategy::finetune() };
    let (agent, report) = transfer::prepare(&registry, &src, "sac", &target, &reset, None, 1).unwrap();
    assert_eq!(values(agent.as_ref())["log_ent_coef"].double_value(&[0]), 1.0f64.ln());
    assert_eq!(report.parameters.iter().find(|p| p.name == "log_ent_coef").unwrap().fate, Fate::Reinit);
}

/// TD3 transfers with its four target networks in step, freezes and anchors like the others,
/// and refuses distillation by name; A2C transfers as PPO does, distillation included.
#[test]
fn td3_and_a2c_transfer_with_every_strategy_they_support() {
    let registry = Registry::builtin();
    let dir = tmp("td3");
    let spec = EnvSpec::new("Pendulum-v1");
    let cfg = AgentConfig::Td3(Td3Config {
        net: MlpConfig::relu(&[16]),
        learning_starts: 50,
        action_noise: Some(0.1),
        ..Default::default()
    });
    let src = source(cfg, &spec, 200, &dir);
    let s = values(src.agent.as_ref());
    let target = spec.clone().with("m", 1.5);
    let strategy = Strategy { freeze: vec!["actor.trunk".into()], l2_init: 0.01, ..Strategy::finetune() };
    let (mut agent, _) = transfer::prepare(&registry, &src, "td3", &target, &strategy, None, 1).unwrap();
    let t = values(agent.as_ref());
    for name in agent.weight_names() {
        assert!(equal(&t[&name], &s[&name]), "{name}");
        let target_name = name.replacen("actor.", "actor_target.", 1).replacen("critic.", "critic_target.", 1);
        assert!(equal(&t[&target_name], &t[&name]), "target of {name}");
    }
    train_for(agent.as_mut(), &target, 400);
    let after = values(agent.as_ref());
    assert!(equal(&after["actor.trunk.0.weight"], &s["actor.trunk.0.weight"]), "frozen trunk moved");
    assert!(!equal(&after["actor.head.weight"], &s["actor.head.weight"]), "the head trains");
    let distill = Strategy { distill: Some(Distill { weight: 1.0, decay_steps: 10 }), ..Strategy::finetune() };
    let err = transfer::prepare(&registry, &src, "td3", &target, &distill, None, 1).err().unwrap();
    assert!(err.to_string().contains("TD3's deterministic actor has none"), "{err}");

    let dir = tmp("a2c");
    let spec = EnvSpec::new("CartPole-v1");
    let src = source(AgentConfig::A2c(A2cConfig { n_envs: 4, ..Default::default() }), &spec, 400, &dir);
    let s = values(src.agent.as_ref());
    let target = spec.clone().with("length", 0.65);
    let (mut agent, report) = transfer::prepare(&registry, &src, "a2c", &target, &distill, None, 1).unwrap();
    assert_eq!(agent.algo(), Algo::A2c);
    let t = values(agent.as_ref());
    for name in agent.weight_names() {
        assert!(equal(&t[&name], &s[&name]), "{name}");
    }
    assert!(!report.parameters.is_empty());
    train_for(agent.as_mut(), &target, 200);
}

#[test]
fn a_map_carries_weights_across_observation_and_action_spaces() {
    let registry = Registry::builtin();
    // SAC on Pendulum into Pendulum with a noise sensor: the critics read [obs, action], so the
    // action column moves right and the new feature's column is zero.
    let dir = tmp("sac-map");
    let spec = EnvSpec::new("Pendulum-v1");
    let cfg = AgentConfig::Sac(SacConfig { net: MlpConfig::relu(&[8]), ..Default::default() });
    let src = source(cfg, &spec, 0, &dir);
    let mut target = spec.clone();
    target.transforms = vec![Transform::NoiseObs { count: 1, std: 1.0 }];
    let err = transfer::prepare(&registry, &src, "sac", &target, &Strategy::finetune(), None, 1).err().unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("actor.trunk.0.weight") && msg.contains("[8, 3]") && msg.contains("[8, 4]") && msg.contains("map"),
        "{msg}"
    );
    let map = Map { obs: Some(ObsMap::Index(vec![Some(0), Some(1), Some(2), None])), actions: None };
    let (agent, report) =
        transfer::prepare(&registry, &src, "sac", &target, &Strategy::finetune(), Some(&map), 1).unwrap();
    let (s, t) = (values(src.agent.as_ref()), values(agent.as_ref()));
    let (ws, wt) = (&s["critic.q0.trunk.0.weight"], &t["critic.q0.trunk.0.weight"]);
    assert_eq!(wt.size(), [8, 5]);
    assert!(equal(&wt.narrow(1, 0, 3), &ws.narrow(1, 0, 3)));
    assert!(equal(&wt.narrow(1, 3, 1), &ws.narrow(1, 0, 1).zeros_like()));
    assert!(equal(&wt.narrow(1, 4, 1), &ws.narrow(1, 3, 1)));
    let fate = |n: &str| report.parameters.iter().find(|p| p.name == n).unwrap().fate;
    assert_eq!(fate("critic.q0.trunk.0.weight"), Fate::Mapped);
    assert_eq!(fate("actor.trunk.0.weight"), Fate::Mapped);
    assert_eq!(fate("actor.trunk.0.bias"), Fate::Copied);

    // PPO: an action map permutes the rows of the policy head.
    let dir = tmp("ppo-map");
    let spec = EnvSpec::new("CartPole-v1");
    let src = source(ppo_small(), &spec, 0, &dir);
    let map = Map { obs: None, actions: Some(vec![Some(1), Some(0)]) };
    let (agent, _) = transfer::prepare(&registry, &src, "ppo", &spec, &Strategy::finetune(), Some(&map), 1).unwrap();
    let (s, t) = (values(src.agent.as_ref()), values(agent.as_ref()));
    assert!(equal(&t["actor.head.weight"].narrow(0, 0, 1), &s["actor.head.weight"].narrow(0, 1, 1)));
    assert!(equal(&t["actor.head.bias"].narrow(0, 1, 1), &s["actor.head.bias"].narrow(0, 0, 1)));
    assert!(equal(&t["critic.head.weight"], &s["critic.head.weight"]), "the value head has no action axis");

    // A linear map: target feature 0 is twice source feature 0, and so on.
    let rows: Vec<Vec<f64>> = (0..4).map(|i| (0..4).map(|j| if i == j { 0.5 } else { 0.0 }).collect()).collect();
    let map = Map { obs: Some(ObsMap::Linear(rows)), actions: None };
    let (agent, _) = transfer::prepare(&registry, &src, "ppo", &spec, &Strategy::finetune(), Some(&map), 1).unwrap();
    let t = values(agent.as_ref());
    assert!(equal(&t["actor.trunk.0.weight"], &(&s["actor.trunk.0.weight"] * 0.5)));
}

#[test]
fn refusals_name_the_tensor_field_or_part() {
    let registry = Registry::builtin();
    let dir = tmp("refusals");
    let spec = EnvSpec::new("CartPole-v1");
    let src = source(ppo_small(), &spec, 0, &dir);
    let err = |strategy: Strategy, map: Option<&Map>, target: &EnvSpec| -> String {
        transfer::prepare(&registry, &src, "ppo", target, &strategy, map, 1).err().expect("refused").to_string()
    };
    let e = err(Strategy { freeze: vec!["actor.trnk".into()], ..Strategy::finetune() }, None, &spec);
    assert!(
        e.contains("`freeze`") && e.contains("\"actor.trnk\"") && e.contains("did you mean \"actor.trunk\""),
        "{e}"
    );
    let e = err(Strategy { reinit: vec!["actor".into(), "critic".into()], ..Strategy::finetune() }, None, &spec);
    assert!(e.contains("copies nothing"), "{e}");
    let e = err(Strategy { freeze_until: Some(5), ..Strategy::finetune() }, None, &spec);
    assert!(e.contains("freeze_until"), "{e}");
    let e = err(Strategy { l2_init: 0.1, ..Strategy::scratch() }, None, &spec);
    assert!(e.contains("`copy`"), "{e}");
    let map = Map { obs: Some(ObsMap::Index(vec![Some(0), Some(9), None])), actions: None };
    let noisy = variant("cartpole-noise-sensor.ron").env;
    let e = err(Strategy::finetune(), Some(&map), &noisy);
    assert!(e.contains("map") && e.contains("lists 3 target features") && e.contains("actor.trunk.0.weight"), "{e}");
    let map = Map { obs: Some(ObsMap::Index(vec![Some(0), Some(1), Some(2), Some(9), None])), actions: None };
    let e = err(Strategy::finetune(), Some(&map), &noisy);
    assert!(e.contains("map.obs[3] = 9"), "{e}");
    // Another algorithm.
    let dqn = AgentConfig::Dqn(DqnConfig { net: MlpConfig::relu(&[8]), ..Default::default() });
    let mut agent = dqn.build(&src.card.observation_space, &src.card.action_space, 0).unwrap();
    let e = transfer::transfer(
        &src,
        "ppo",
        agent.as_mut(),
        &spec,
        &src.card.observation_space,
        &src.card.action_space,
        &Strategy::finetune(),
        None,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("the source is a PPO policy and the target agent is DQN") && e.contains("Discrete and Box"),
        "{e}"
    );
    // Another environment family, through a map: allowed, with a warning the report keeps.
    let acrobot = variant("acrobot-one-link-sensor.ron").env;
    let map = Map {
        obs: Some(ObsMap::Index(vec![Some(0), Some(1), Some(2), Some(3)])),
        actions: Some(vec![Some(0), None, Some(1)]),
    };
    let (_, report) =
        transfer::prepare(&registry, &src, "ppo", &acrobot, &Strategy::finetune(), Some(&map), 1).unwrap();
    assert!(report.warnings.iter().any(|w| w.contains("another environment family")), "{:?}", report.warnings);
    assert!(report.table().contains("warning: the source was trained on CartPole-v1"));
}

#[test]
fn strategies_parse_from_ron_and_names() {
    let s = Strategy::from_ron(r#"(name: "freeze-trunk", freeze: ["actor.trunk"], freeze_until: 20000, distill: (weight: 1.0, decay_steps: 5000))"#)
        .unwrap();
    assert_eq!(s.freeze_until, Some(20000));
    assert_eq!(s.label(), "freeze-trunk");
    assert_eq!(Strategy::from_ron(&s.to_ron()).unwrap(), s);
    assert_eq!(Strategy::from_ron("()").unwrap().label(), "finetune");
    assert_eq!(Strategy::from_ron("(copy: false)").unwrap().label(), "scratch");
    assert!(Strategy::from_ron("(frezee: [])").unwrap_err().to_string().contains("frezee"));
    assert_eq!(Strategy::from_arg("scratch").unwrap(), Strategy::scratch());
    let e = Strategy::from_arg("(lr_scale: )").unwrap_err().to_string();
    assert!(e.contains("strategy: 1:"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Evidence with the shipped policies.

/// The step at which the mean of the last 10 training returns first reaches `threshold`.
fn time_to(curve: &Curve, threshold: f64) -> Option<u64> {
    let e = &curve.episodes;
    (9..e.len()).find(|&i| e[i - 9..=i].iter().map(|r| r.ret).sum::<f64>() / 10.0 >= threshold).map(|i| e[i].step)
}

fn zero_shot(agent: &dyn Agent, spec: &EnvSpec) -> f64 {
    let mut env = Registry::builtin().make(spec).unwrap();
    evaluate(agent, env.as_mut(), 10, true, 1_000_000).unwrap().mean
}

#[test]
fn shipped_policies_load_and_match_their_cards() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("card.ron").exists() {
            continue;
        }
        let loaded = checkpoint::load(&dir).unwrap_or_else(|e| panic!("{e}"));
        let card = &loaded.card;
        assert!(card.produced_by.starts_with("headstart train"), "{}: {}", dir.display(), card.produced_by);
        let eval = card.eval.as_ref().expect("the card holds its evaluation");
        // 100 episodes, or 50 for the MuJoCo locomotion policy (1000-step episodes).
        assert!(eval.episodes >= 50 && eval.deterministic, "{}: {} episodes", dir.display(), eval.episodes);
        names.push(dir.file_name().unwrap().to_string_lossy().into_owned());
    }
    names.sort();
    for expected in ["acrobot-ppo", "cartpole-ppo", "cartpole-ppo-randomized", "mountaincar-dqn", "pendulum-sac"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
}

/// The mean zero-shot return of untrained agents (seeds 0 to 4) built like the source's.
fn scratch_zero_shot(src: &Loaded, target: &EnvSpec) -> f64 {
    let registry = Registry::builtin();
    let returns: Vec<f64> = (0..5)
        .map(|seed| {
            let (agent, _) =
                transfer::prepare(&registry, src, "scratch", target, &Strategy::scratch(), None, seed).unwrap();
            zero_shot(agent.as_ref(), target)
        })
        .collect();
    returns.iter().sum::<f64>() / 5.0
}

/// Positive transfer: the CartPole-v1 source on a longer pole (0.65 m half-length) starts far
/// above scratch and reaches 475 sooner; the source trained with randomised pole lengths does
/// the same on the 0.75 m pole.
#[test]
fn positive_transfer_to_a_longer_pole() {
    let src = policy("cartpole-ppo");
    let target = EnvSpec::new("CartPole-v1").with("length", 0.65);
    let (mut transferred, _) = prepare(&src, &target, &Strategy::finetune(), None).unwrap();
    let (jt, js) = (zero_shot(transferred.as_ref(), &target), scratch_zero_shot(&src, &target));
    let (mut scratch, _) = prepare(&src, &target, &Strategy::scratch(), None).unwrap();
    let (ct, cs) = (train_for(transferred.as_mut(), &target, 30_000), train_for(scratch.as_mut(), &target, 30_000));
    let (tt, ts) = (time_to(&ct, 475.0), time_to(&cs, 475.0));
    eprintln!("length 0.65: zero-shot transferred {jt:.1}, scratch {js:.1} (5 seeds); steps to 475: {tt:?} vs {ts:?}");
    assert!(jt > 2.0 * js, "zero-shot: transferred {jt}, scratch {js}");
    assert!(tt.is_some_and(|t| ts.is_none_or(|s| t < s)), "steps to 475: transferred {tt:?}, scratch {ts:?}");

    let randomized = policy("cartpole-ppo-randomized");
    let long = variant("cartpole-long-pole.ron").env;
    let (agent, _) = prepare(&randomized, &long, &Strategy::finetune(), None).unwrap();
    let (jr, js) = (zero_shot(agent.as_ref(), &long), scratch_zero_shot(&randomized, &long));
    eprintln!("length 0.75, randomised source: zero-shot {jr:.1}, scratch {js:.1} (5 seeds)");
    assert!(jr >= 475.0 && js < 200.0, "the randomised source on the 0.75 m pole: {jr} (scratch {js})");
}

/// A source whose observation is shorter transfers through the map its target declares.
#[test]
fn transfer_through_a_map_to_a_longer_observation() {
    let src = policy("cartpole-ppo");
    let noisy = variant("cartpole-noise-sensor.ron");
    let err = prepare(&src, &noisy.env, &Strategy::finetune(), None).err().unwrap().to_string();
    assert!(err.contains("[64, 4] in the source but [64, 5]"), "{err}");
    let (agent, report) = prepare(&src, &noisy.env, &Strategy::finetune(), noisy.maps.get("CartPole-v1")).unwrap();
    assert_eq!(report.parameters.iter().filter(|p| p.fate == Fate::Mapped).count(), 2);
    let (jt, js) = (zero_shot(agent.as_ref(), &noisy.env), scratch_zero_shot(&src, &noisy.env));
    eprintln!("noise sensor through the map: zero-shot {jt:.1}, scratch {js:.1}");
    assert!(jt >= 475.0 && js < 100.0, "zero-shot through the map {jt}, scratch {js}");
    // Acrobot without the second joint's angle: the map drops the source's features for it.
    let src = policy("acrobot-ppo");
    let blind = variant("acrobot-one-link-sensor.ron");
    let (agent, _) = prepare(&src, &blind.env, &Strategy::finetune(), blind.maps.get("Acrobot-v1")).unwrap();
    let (jt, js) = (zero_shot(agent.as_ref(), &blind.env), scratch_zero_shot(&src, &blind.env));
    eprintln!("Acrobot one-link sensor through the map: zero-shot {jt:.1}, scratch {js:.1}");
    assert!(jt > js + 200.0, "Acrobot through the map {jt}, scratch {js}");
}

/// Pendulum-v1 SAC on a heavier bob and under stronger gravity: a jumpstart over scratch.
#[test]
fn pendulum_jumpstart_on_heavier_and_stronger_gravity() {
    let src = policy("pendulum-sac");
    for name in ["pendulum-heavy.ron", "pendulum-strong-gravity.ron"] {
        let target = variant(name).env;
        let (agent, _) = prepare(&src, &target, &Strategy::finetune(), None).unwrap();
        let (jt, js) = (zero_shot(agent.as_ref(), &target), scratch_zero_shot(&src, &target));
        eprintln!("{name}: zero-shot transferred {jt:.1}, scratch {js:.1}");
        assert!(jt > js + 250.0, "{name}: zero-shot transferred {jt}, scratch {js}");
    }
}

/// Negative transfer: swapped actions make the source push the wrong way with confidence; it
/// starts below scratch and, its entropy spent, does not recover within the budget that scratch
/// needs to learn.
#[test]
fn negative_transfer_with_swapped_actions() {
    let src = policy("cartpole-ppo");
    let swapped = variant("cartpole-swapped-actions.ron").env;
    let (mut transferred, _) = prepare(&src, &swapped, &Strategy::finetune(), None).unwrap();
    let (mut scratch, _) = prepare(&src, &swapped, &Strategy::scratch(), None).unwrap();
    let (ct, cs) = (train_for(transferred.as_mut(), &swapped, 20_000), train_for(scratch.as_mut(), &swapped, 20_000));
    let first = |c: &Curve| c.episodes[..20].iter().map(|e| e.ret).sum::<f64>() / 20.0;
    let (ft, fs) = (first(&ct), first(&cs));
    assert!(ft < fs - 5.0, "first 20 training episodes: transferred {ft}, scratch {fs}");
    let (lt, ls) = (ct.recent_mean(20).unwrap(), cs.recent_mean(20).unwrap());
    eprintln!(
        "swapped actions: first 20 episodes {ft:.1} vs scratch {fs:.1}; last 20 after 20000 steps {lt:.1} vs {ls:.1}"
    );
    assert!(lt < ls - 50.0, "last 20 training episodes: transferred {lt}, scratch {ls}");
    // The map that undoes the swap makes it a perfect transfer.
    let map = Map { obs: None, actions: Some(vec![Some(1), Some(0)]) };
    let (mapped, _) = prepare(&src, &swapped, &Strategy::finetune(), Some(&map)).unwrap();
    assert!(zero_shot(mapped.as_ref(), &swapped) >= 475.0);
}
