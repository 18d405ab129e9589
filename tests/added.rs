//! Added layers (`add` and `train` in a strategy): each starts as the source's network, only
//! what trains changes, checkpoints keep them, learned maps cross observation spaces, and bad
//! settings are refused naming the field.

mod common;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use headstart::agent::checkpoint::{self, Loaded};
use headstart::agent::nn::MlpConfig;
use headstart::agent::sb3;
use headstart::agent::train::{Curve, Task, train};
use headstart::agent::{A2cConfig, Agent, AgentConfig, Td3Config};
use headstart::env::{EnvSpec, Registry, Variant};
use headstart::transfer::{self, Addition, Fate, Frozen, Strategy, Train, TransferReport};
use tch::Tensor;

fn policy(name: &str) -> Loaded {
    checkpoint::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies").join(name)).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("headstart-added-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A checkpoint of a freshly built agent of `config` for `spec` (an untrained source).
fn fresh_source(config: AgentConfig, spec: &EnvSpec, dir: &Path) -> Loaded {
    let env = Registry::builtin().make(spec).unwrap();
    let agent = config.build(env.observation_space(), env.action_space(), 7).unwrap();
    common::save_checkpoint(agent.as_ref(), spec, dir, "tests/added.rs");
    checkpoint::load(dir).unwrap()
}

fn prepare(src: &Loaded, target: &EnvSpec, strategy: &Strategy) -> (Box<dyn Agent>, TransferReport) {
    tch::set_num_threads(1);
    transfer::prepare(&Registry::builtin(), src, "source", target, strategy, None, 3).unwrap_or_else(|e| panic!("{e}"))
}

fn with(add: Vec<Addition>) -> Strategy {
    Strategy { add, ..Strategy::finetune() }
}

fn lora(rank: usize) -> Addition {
    Addition::Lora { layers: vec!["trunk.0".into(), "trunk.1".into()], rank, alpha: 2.0 * rank as f64, merge: false }
}

/// Every addition alone and all together.
fn additions() -> Vec<Vec<Addition>> {
    let all = vec![
        Addition::Input,
        Addition::Output,
        Addition::Adapter { after: 0, width: 8 },
        Addition::Depth { after: 1 },
        Addition::Widen { layer: 0, units: 8 },
        lora(2),
        Addition::Progressive,
    ];
    let alone = all.iter().map(|a| vec![a.clone()]).chain([vec![Addition::InputMlp { hidden: 16 }]]);
    alone.chain([all.clone()]).collect()
}

/// Observations spread over the space: `rows` rows of `dim`.
fn observations(rows: usize, dim: usize) -> Vec<f32> {
    (0..rows * dim).map(|i| ((i * 7919 % 997) as f32 / 997.0 - 0.5) * 2.0).collect()
}

fn bits(outputs: Vec<(&'static str, Vec<f32>)>) -> Vec<(&'static str, Vec<u32>)> {
    outputs.into_iter().map(|(n, v)| (n, v.iter().map(|x| x.to_bits()).collect())).collect()
}

/// Moves the network tensors `pick` names (not the optimiser's) off their starting values by
/// Gaussian noise of standard deviation `scale`.
fn nudge(agent: &dyn Agent, pick: impl Fn(&str) -> bool, scale: f64) {
    tch::no_grad(|| {
        for (name, t) in agent.tensors() {
            if pick(&name) && !name.starts_with("optim") {
                let _ = t.shallow_clone().g_add_(&(t.randn_like() * scale));
            }
        }
    });
}

fn values(agent: &dyn Agent) -> HashMap<String, Tensor> {
    agent.tensors().into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
}

/// Each addition, alone and with all the others, starts as the source: the same outputs bit
/// for bit (actions or probabilities, values, Q-values of both critics) for PPO, A2C, DQN, SAC
/// and TD3, with the source's spaces.
#[test]
fn every_addition_starts_as_the_source() {
    let dir = tmp("sources");
    let pendulum = EnvSpec::new("Pendulum-v1");
    let small = MlpConfig::relu(&[32, 32]);
    let sources = [
        (policy("cartpole-ppo"), EnvSpec::new("CartPole-v1")),
        (policy("mountaincar-dqn"), EnvSpec::new("MountainCar-v0")),
        (policy("pendulum-sac"), pendulum.clone()),
        (
            fresh_source(AgentConfig::A2c(A2cConfig::default()), &EnvSpec::new("Acrobot-v1"), &dir.join("a2c")),
            EnvSpec::new("Acrobot-v1"),
        ),
        (fresh_source(AgentConfig::Td3(Td3Config { net: small, ..Default::default() }), &pendulum, &dir.join("td3")), pendulum),
    ];
    for (src, spec) in &sources {
        let obs_dim = src.card.observation_space.flat_dim();
        let obs = observations(9, obs_dim);
        let expected = bits(src.agent.outputs(&obs));
        for add in additions() {
            let (agent, report) = prepare(src, spec, &with(add.clone()));
            assert_eq!(bits(agent.outputs(&obs)), expected, "{} with {add:?}", src.card.algorithm);
            assert!(report.parameters.iter().any(|p| p.fate == Fate::Added), "{add:?}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `train: Added` trains the added layers alone: every other tensor is bit-identical after
/// training (PPO, and SAC through its twin critics and targets), the added ones moved; a
/// progressive network's column never trains, whatever `train` says.
#[test]
fn only_the_added_layers_train() {
    let registry = Registry::builtin();
    let cases = [
        (policy("cartpole-ppo"), EnvSpec::new("CartPole-v1").with("length", 0.75), 2048u64),
        (policy("pendulum-sac"), EnvSpec::new("Pendulum-v1").with("m", 1.3), 300),
    ];
    for (src, spec, steps) in cases {
        for (add, train_) in [
            (vec![Addition::Adapter { after: 1, width: 8 }, lora(2)], Train::Added),
            (vec![Addition::Progressive], Train::All),
        ] {
            let strategy = Strategy { add: add.clone(), train: train_, ..Strategy::finetune() };
            let (mut agent, report) = prepare(&src, &spec, &strategy);
            let before = values(agent.as_ref());
            train(&registry, &Task::Env(spec.clone()), agent.as_mut(), steps, &mut Curve::default(), &mut |_| {
                ControlFlow::Continue(())
            })
            .unwrap();
            let after = values(agent.as_ref());
            let frozen: Vec<&str> =
                report.parameters.iter().filter(|p| p.frozen == Frozen::Always).map(|p| p.name.as_str()).collect();
            assert!(!frozen.is_empty(), "{add:?}");
            for name in &frozen {
                assert!(before[*name].equal(&after[*name]), "{name} is frozen but changed ({add:?})");
                let target = name.replacen("actor.", "actor_target.", 1).replacen("critic.", "critic_target.", 1);
                if let (Some(b), Some(a)) = (before.get(&target), after.get(&target)) {
                    assert!(b.equal(a), "{target} follows a frozen tensor but changed");
                }
            }
            let trained = report.parameters.iter().filter(|p| p.frozen == Frozen::No && p.fate == Fate::Added);
            assert!(trained.clone().any(|p| !before[&p.name].equal(&after[&p.name])), "no added tensor trained ({add:?})");
            if train_ == Train::Added {
                // Every network weight not added is frozen; SAC's temperature is not a network's.
                let network = report.parameters.iter().filter(|p| p.name.contains('.'));
                assert!(network.clone().all(|p| (p.frozen == Frozen::Always) == (p.fate != Fate::Added)), "{add:?}");
            }
            let (total, trained) = report.parameter_counts();
            assert!(trained < total && report.table().contains(&format!("{trained} of {total} weights trained")));
        }
    }
}

/// Gradual unfreezing: the head and the added layers from the start, then the last hidden
/// layer, then the first, every `n` steps; before the first release the trunk does not move.
#[test]
fn gradual_unfreezing_releases_the_layers_from_the_head_down() {
    let src = policy("cartpole-ppo");
    let spec = EnvSpec::new("CartPole-v1").with("length", 0.75);
    let strategy = Strategy { train: Train::Gradual(4096), ..Strategy::finetune() };
    let (mut agent, report) = prepare(&src, &spec, &strategy);
    let frozen = |name: &str| report.parameters.iter().find(|p| p.name == name).unwrap().frozen;
    assert_eq!(frozen("actor.head.weight"), Frozen::No);
    assert_eq!(frozen("actor.trunk.1.weight"), Frozen::Until(4096));
    assert_eq!(frozen("actor.trunk.0.bias"), Frozen::Until(8192));
    assert_eq!(frozen("critic.trunk.0.weight"), Frozen::Until(8192));
    let before = values(agent.as_ref());
    train(&Registry::builtin(), &Task::Env(spec.clone()), agent.as_mut(), 2048, &mut Curve::default(), &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    let after = values(agent.as_ref());
    assert!(before["actor.trunk.1.weight"].equal(&after["actor.trunk.1.weight"]));
    assert!(!before["actor.head.weight"].equal(&after["actor.head.weight"]));
}

/// A checkpoint of an augmented agent keeps its layers: the card's configuration lists them,
/// loading gives the same outputs bit for bit, and it is a source like any other (finetuned
/// again, or given one more adapter).
#[test]
fn augmented_checkpoints_round_trip_and_transfer_again() {
    let src = policy("cartpole-ppo");
    let spec = EnvSpec::new("CartPole-v1").with("length", 0.75);
    let all = additions().pop().unwrap();
    let (mut agent, _) = prepare(&src, &spec, &with(all));
    train(&Registry::builtin(), &Task::Env(spec.clone()), agent.as_mut(), 1024, &mut Curve::default(), &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    let dir = tmp("round-trip");
    common::save_checkpoint(agent.as_ref(), &spec, &dir, "tests/added.rs");
    let loaded = checkpoint::load(&dir).unwrap();
    assert!(!loaded.card.config.net().added.is_empty());
    assert!(loaded.card.weights.iter().any(|w| w == "actor.lora.trunk.0.b"));
    let obs = observations(5, 4);
    assert_eq!(bits(loaded.agent.outputs(&obs)), bits(agent.outputs(&obs)));
    let (again, report) = prepare(&loaded, &spec, &Strategy::finetune());
    assert_eq!(bits(again.outputs(&obs)), bits(agent.outputs(&obs)));
    assert!(report.parameters.iter().all(|p| p.fate == Fate::Copied), "an augmented source copies whole");
    let (more, _) = prepare(&loaded, &spec, &with(vec![Addition::Adapter { after: 1, width: 4 }]));
    assert_eq!(bits(more.outputs(&obs)), bits(agent.outputs(&obs)));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A learned input layer maps a 5-feature observation (CartPole with a noise sensor) into the
/// source's 4: it starts as the variant's written map (so the agent acts as the source on the
/// four real features, whatever the noise), and it trains.
#[test]
fn a_learned_input_map_crosses_observation_sizes() {
    let src = policy("cartpole-ppo");
    let variant = Variant::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("envs/cartpole-noise-sensor.ron")).unwrap();
    let map = variant.maps.get("CartPole-v1").cloned();
    let strategy = Strategy { train: Train::AddedThenAll(1024), ..with(vec![Addition::Input]) };
    tch::set_num_threads(1);
    let (mut agent, report) =
        transfer::prepare(&Registry::builtin(), &src, "source", &variant.env, &strategy, map.as_ref(), 3).unwrap();
    let row = report.parameters.iter().find(|p| p.name == "actor.input.weight").unwrap();
    assert_eq!((row.shape.clone(), row.fate), (vec![4, 5], Fate::Added));
    assert!(report.state.iter().any(|s| s.contains("actor.input.weight: starts as the written map")), "{:?}", report.state);
    let four = observations(6, 4);
    let five: Vec<f32> = four.chunks(4).flat_map(|r| r.iter().copied().chain([123.0])).collect();
    assert_eq!(bits(agent.outputs(&five)), bits(src.agent.outputs(&four)));
    let before = values(agent.as_ref());
    train(&Registry::builtin(), &Task::Env(variant.env.clone()), agent.as_mut(), 2048, &mut Curve::default(), &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    let after = values(agent.as_ref());
    assert!(!before["actor.input.weight"].equal(&after["actor.input.weight"]));
    // Released at step 1024: the trunk trained after it.
    assert!(!before["actor.trunk.0.weight"].equal(&after["actor.trunk.0.weight"]));
}

/// `add_to` puts the additions on chosen networks: an input layer on the actor alone, so the
/// critic's first layer still takes the written map.
#[test]
fn additions_go_to_the_networks_named() {
    let src = policy("cartpole-ppo");
    let variant = Variant::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("envs/cartpole-noise-sensor.ron")).unwrap();
    let map = variant.maps.get("CartPole-v1").cloned();
    let strategy = Strategy { add_to: vec!["actor".into()], ..with(vec![Addition::InputMlp { hidden: 8 }, lora(2)]) };
    tch::set_num_threads(1);
    let (agent, report) =
        transfer::prepare(&Registry::builtin(), &src, "source", &variant.env, &strategy, map.as_ref(), 3).unwrap();
    let fate = |name: &str| report.parameters.iter().find(|p| p.name == name).map(|p| p.fate);
    assert_eq!(fate("actor.input.mlp.up.weight"), Some(Fate::Added));
    assert_eq!(fate("actor.lora.trunk.1.b"), Some(Fate::Added));
    assert_eq!(fate("critic.input.weight"), None);
    assert_eq!(fate("critic.trunk.0.weight"), Some(Fate::Mapped));
    assert_eq!(fate("actor.trunk.0.weight"), Some(Fate::Copied));
    let four = observations(6, 4);
    let five: Vec<f32> = four.chunks(4).flat_map(|r| r.iter().copied().chain([9.0])).collect();
    assert_eq!(bits(agent.outputs(&five)), bits(src.agent.outputs(&four)));
    let wrong = Strategy { add_to: vec!["critc".into()], ..with(vec![Addition::Input]) };
    let e = transfer::prepare(&Registry::builtin(), &src, "source", &variant.env, &wrong, map.as_ref(), 3).err().unwrap();
    assert!(e.to_string().contains("`add_to`") && e.to_string().contains("did you mean `critic`"), "{e}");
}

/// SAC's critics read the observation and the action: their input layer maps the observation
/// block through the written map and passes the action through, so the Q-values start as the
/// source's too.
#[test]
fn a_learned_input_map_passes_a_critics_actions_through() {
    let src = policy("pendulum-sac");
    let mut spec = EnvSpec::new("Pendulum-v1");
    spec.transforms.push(headstart::env::Transform::NoiseObs { count: 1, std: 1.0 });
    let obs = Some(headstart::transfer::ObsMap::Index(vec![Some(0), Some(1), Some(2), None]));
    let map = headstart::transfer::Map { obs, actions: Some(vec![Some(0)]) };
    tch::set_num_threads(1);
    let (agent, report) =
        transfer::prepare(&Registry::builtin(), &src, "source", &spec, &with(vec![Addition::Input]), Some(&map), 3).unwrap();
    let row = report.parameters.iter().find(|p| p.name == "critic.q0.input.weight").unwrap();
    assert_eq!(row.shape, vec![4, 5], "source obs + action from target obs + action");
    let three = observations(6, 3);
    let four: Vec<f32> = three.chunks(3).flat_map(|r| r.iter().copied().chain([-7.0])).collect();
    assert_eq!(bits(agent.outputs(&four)), bits(src.agent.outputs(&three)));
}

/// Bad settings are refused before any training, naming the field and the nearest valid layer.
#[test]
fn bad_additions_are_refused_by_name() {
    let src = policy("cartpole-ppo");
    let spec = EnvSpec::new("CartPole-v1");
    let refused = |strategy: Strategy, words: &[&str]| {
        let e = transfer::prepare(&Registry::builtin(), &src, "source", &spec, &strategy, None, 0).err().expect("refused");
        let text = e.to_string();
        assert!(words.iter().all(|w| text.contains(w)), "{text}");
    };
    let lora_on = |layer: &str, rank| with(vec![Addition::Lora { layers: vec![layer.into()], rank, alpha: 1.0, merge: false }]);
    refused(lora_on("trunk.7", 2), &["`add`", "trunk.7", "did you mean `trunk.1`"]);
    refused(lora_on("trunk.1", 65), &["`add`", "rank", "[1, 64]"]);
    refused(lora_on("head", 2), &["`add`", "critic.head", "[1, 1]"]);
    refused(with(vec![Addition::Adapter { after: 2, width: 4 }]), &["`add`", "hidden layer 2", "0 to 1"]);
    refused(with(vec![Addition::Adapter { after: 0, width: 0 }]), &["`add`", "width"]);
    refused(with(vec![Addition::Depth { after: 1 }, Addition::Depth { after: 1 }]), &["`add`", "deep.1", "twice"]);
    refused(Strategy { train: Train::Added, ..Strategy::finetune() }, &["`train`", "adds none"]);
    refused(Strategy { copy: false, ..with(vec![Addition::Input]) }, &["`copy`"]);
    let mut ron = Strategy::from_ron("(add: [Adapter(after: 0, width: 8)], train: AddedThenAll(5000))").unwrap();
    assert_eq!(ron.train, Train::AddedThenAll(5000));
    ron.add.push(Addition::Progressive);
    assert_eq!(Strategy::from_ron(&ron.to_ron()).unwrap(), ron);
    assert!(Strategy::from_ron("(add: [Adaptor(after: 0, width: 8)])").is_err());
}

/// LoRA marked `merge` is merged into the weights when the checkpoint is saved: the card lists a
/// plain network, and the loaded agent computes the augmented one's outputs (within rounding).
#[test]
fn lora_marked_merge_is_saved_merged() {
    let src = policy("cartpole-ppo");
    let spec = EnvSpec::new("CartPole-v1");
    let merge = Addition::Lora { layers: vec!["trunk.0".into(), "head".into()], rank: 1, alpha: 3.0, merge: true };
    let (agent, _) = prepare(&src, &spec, &with(vec![merge]));
    nudge(agent.as_ref(), |n| n.contains(".lora."), 0.2);
    let dir = tmp("merge");
    common::save_checkpoint(agent.as_ref(), &spec, &dir, "tests/added.rs");
    let loaded = checkpoint::load(&dir).unwrap();
    assert!(loaded.card.config.net().added.is_empty(), "{:?}", loaded.card.config.net().added);
    assert!(loaded.card.weights.iter().all(|w| !w.contains("lora")));
    let obs = observations(8, 4);
    let (ours, merged) = (agent.outputs(&obs), loaded.agent.outputs(&obs));
    assert_ne!(bits(ours.clone()), bits(src.agent.outputs(&obs)), "the factors moved the outputs");
    for ((name, a), (_, b)) in ours.into_iter().zip(merged) {
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5), "{name}: {a:?} vs {b:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With SAC, the target networks' factors are merged too.
#[test]
fn lora_merge_covers_target_networks() {
    let src = policy("pendulum-sac");
    let spec = EnvSpec::new("Pendulum-v1");
    let merge = Addition::Lora { layers: vec!["trunk.1".into()], rank: 2, alpha: 4.0, merge: true };
    let (agent, _) = prepare(&src, &spec, &with(vec![merge]));
    nudge(agent.as_ref(), |n| n.contains(".lora."), 0.2);
    let before = values(agent.as_ref());
    let dir = tmp("merge-sac");
    common::save_checkpoint(agent.as_ref(), &spec, &dir, "tests/added.rs");
    let after = values(checkpoint::load(&dir).unwrap().agent.as_ref());
    for net in ["critic.q0", "critic_target.q1", "actor"] {
        let (w, a, b) = (&before[&format!("{net}.trunk.1.weight")], &before[&format!("{net}.lora.trunk.1.a")], &before[&format!("{net}.lora.trunk.1.b")]);
        let expected = w + b.matmul(a) * 2.0;
        let got = &after[&format!("{net}.trunk.1.weight")];
        assert!((got - &expected).abs().max().double_value(&[]) < 1e-6, "{net} merged");
        assert!(!after.contains_key(&format!("{net}.lora.trunk.1.a")));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The SB3 export folds LoRA, input and output layers into SB3's layers (SB3's function, within
/// rounding) and refuses adapters, naming them.
#[test]
fn sb3_export_folds_what_it_can_and_refuses_the_rest() {
    let src = policy("cartpole-ppo");
    let spec = EnvSpec::new("CartPole-v1");
    let dir = tmp("export");
    let (agent, _) = prepare(&src, &spec, &with(vec![Addition::Input, Addition::Output, lora(2)]));
    // Move the added tensors off their identity start, so the fold has something to fold.
    nudge(agent.as_ref(), headstart::agent::nn::is_added, 0.1);
    common::save_checkpoint(agent.as_ref(), &spec, &dir.join("lora"), "tests/added.rs");
    let zip = dir.join("ppo-CartPole-v1.zip");
    sb3::export(&dir.join("lora"), &zip).unwrap_or_else(|e| panic!("{e}"));
    let imported = sb3::read(&zip).unwrap().agent(0).unwrap();
    let obs = observations(7, 4);
    for ((name, ours), (_, theirs)) in agent.outputs(&obs).into_iter().zip(imported.outputs(&obs)) {
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() < 1e-5, "{name}: {a} vs {b} exported");
        }
    }
    let (adapted, _) = prepare(&src, &spec, &with(vec![Addition::Adapter { after: 0, width: 4 }]));
    common::save_checkpoint(adapted.as_ref(), &spec, &dir.join("adapter"), "tests/added.rs");
    let e = sb3::export(&dir.join("adapter"), &dir.join("adapter.zip")).expect_err("refused").to_string();
    assert!(e.contains("bottleneck adapters") && e.contains("no place"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Gradient clipping measures the norm over what trains: a frozen parameter (learning-rate scale
/// 0) does not shrink the others' steps, as in PyTorch, where it has no gradient.
#[test]
fn clipping_ignores_frozen_parameters() {
    use headstart::agent::optim::Optimizer;
    let x = Tensor::from_slice(&[0.0f32; 2]).set_requires_grad(true);
    let y = Tensor::from_slice(&[0.0f32; 2]).set_requires_grad(true);
    let mut opt = Optimizer::adam(vec![("x".into(), x.shallow_clone()), ("y".into(), y.shallow_clone())], 1e-8);
    opt.set_lr_scale(|n| n == "y", 0.0);
    let loss = (&x * Tensor::from_slice(&[0.3f32, 0.4])).sum(tch::Kind::Float) + (&y * 1000.0).sum(tch::Kind::Float);
    opt.backward_step(&loss, 0.0, Some(1.0));
    let g: Vec<f32> = Vec::try_from(opt.gradients()).unwrap();
    assert!((g[0] - 0.3).abs() < 1e-6 && (g[1] - 0.4).abs() < 1e-6, "x's gradient (norm 0.5) is not clipped: {g:?}");
}

/// Without hidden layers, an input layer feeds SAC's mean and log σ heads both: the export folds
/// it into each, so SB3's actor is ours.
#[test]
fn sb3_export_folds_an_input_layer_into_every_head_it_feeds() {
    let dir = tmp("export-sac");
    let spec = EnvSpec::new("Pendulum-v1");
    let config = AgentConfig::Sac(headstart::agent::SacConfig { net: MlpConfig::relu(&[]), ..Default::default() });
    let src = fresh_source(config, &spec, &dir.join("source"));
    let (agent, _) = prepare(&src, &spec, &with(vec![Addition::Input]));
    nudge(agent.as_ref(), |n| n.contains(".input."), 0.1);
    common::save_checkpoint(agent.as_ref(), &spec, &dir.join("added"), "tests/added.rs");
    let zip = dir.join("sac-Pendulum-v1.zip");
    sb3::export(&dir.join("added"), &zip).unwrap_or_else(|e| panic!("{e}"));
    let imported = sb3::read(&zip).unwrap().agent(0).unwrap();
    let obs = observations(5, 3);
    for ((name, ours), (_, theirs)) in agent.outputs(&obs).into_iter().zip(imported.outputs(&obs)) {
        assert!(ours.iter().zip(&theirs).all(|(a, b)| (a - b).abs() < 1e-5), "{name}: {ours:?} vs {theirs:?}");
    }
    // The log σ head (not among the outputs): W_σ W_in and W_σ b_in + b_σ.
    let (ours, theirs) = (values(agent.as_ref()), values(imported.as_ref()));
    let expected = ours["actor.log_std.weight"].matmul(&ours["actor.input.weight"]);
    assert!((&theirs["actor.log_std.weight"] - expected).abs().max().double_value(&[]) < 1e-6);
    std::fs::remove_dir_all(&dir).unwrap();
}
