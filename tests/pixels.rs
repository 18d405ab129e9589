//! Agents on images: DQN and PPO with convolutional encoders on MinAtar's games train, learn,
//! round-trip through checkpoints, and refuse encoders that do not fit, naming the field.

mod common;

use std::ops::ControlFlow;

use headstart::agent::nn::{Encoder, MlpConfig};
use headstart::agent::train::{Curve, Task, train};
use headstart::agent::{AgentConfig, DqnConfig, PpoConfig, SacConfig, checkpoint, evaluate, presets};
use headstart::env::{Env, EnvSpec, Map, ObsMap, Registry, random_policy_return};
use headstart::transfer::{Strategy, prepare};
use rand::SeedableRng;

fn minatar_net() -> MlpConfig {
    MlpConfig { encoder: Some(Encoder::MinAtar), ..MlpConfig::relu(&[128]) }
}

fn train_for(config: &AgentConfig, spec: &EnvSpec, steps: u64, seed: u64) -> Box<dyn headstart::agent::Agent> {
    let registry = Registry::builtin();
    let env = registry.make(spec).unwrap();
    let mut agent = config.build(env.observation_space(), env.action_space(), seed).unwrap();
    let mut curve = Curve::default();
    let task = Task::Env(spec.clone());
    train(&registry, &task, agent.as_mut(), steps, &mut curve, &mut |_| ControlFlow::Continue(())).unwrap();
    agent
}

/// The MinAtar paper's DQN (its preset here) on Breakout for 30 000 frames, seed 0: the greedy
/// policy scores well above a random one (0.7 on these seeds; 3.85 here, and the paper's DQN is near 4
/// after as many frames).
#[test]
fn dqn_with_minatars_network_learns_breakout() {
    let spec = EnvSpec::new("MinAtar/Breakout-v0");
    let preset = presets::resolve(headstart::agent::Algo::Dqn, None, None, &spec.id).unwrap();
    let AgentConfig::Dqn(config) = preset.config else { panic!("a DQN preset") };
    assert_eq!(config.net.encoder, Some(Encoder::MinAtar));
    let agent = train_for(&AgentConfig::Dqn(config), &spec, 30_000, 0);
    let registry = Registry::builtin();
    let mut env = registry.make(&spec).unwrap();
    let learned = evaluate(agent.as_ref(), &mut env, 20, true, 1_000).unwrap().mean;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let random = random_policy_return(&mut env, "MinAtar/Breakout-v0", 1_000..1_020, &mut rng).unwrap();
    println!("Breakout after 30 000 frames: greedy {learned}, random {random}");
    assert!(learned >= random + 1.5, "greedy {learned} against random {random}");
}

/// `optimize_memory_usage` changes where next observations come from, not what they are: DQN
/// with MinAtar's network on Breakout (4 environments, episodes ending, a replay that wraps)
/// trains to the same weights and the same replay, bit for bit.
#[test]
fn sharing_the_replays_frames_trains_the_same_bits() {
    let spec = EnvSpec::new("MinAtar/Breakout-v0");
    let run = |optimize_memory_usage| {
        let config = DqnConfig {
            n_envs: 4,
            buffer_size: 1_000,
            learning_starts: 200,
            train_freq: 4,
            optimize_memory_usage,
            net: minatar_net(),
            ..Default::default()
        };
        let agent = train_for(&AgentConfig::Dqn(config), &spec, 4_000, 3);
        let state = agent.tensors().into_iter().chain(agent.training_state());
        state.map(|(name, t)| (name, Vec::<f32>::try_from(t.to_kind(tch::Kind::Float).view([-1])).unwrap())).collect::<Vec<_>>()
    };
    let (plain, shared) = (run(false), run(true));
    assert!(shared.iter().any(|(name, _)| name == "training.buffer.next_obs"), "the replay is part of the state");
    assert_eq!(plain, shared);
}

/// DQN and PPO with an encoder: a checkpoint holds the encoder's tensors under their names and
/// the image in the card, and the loaded agent acts as the saved one on every observation.
#[test]
fn convolutional_agents_round_trip_through_checkpoints() {
    let spec = EnvSpec::new("MinAtar/SpaceInvaders-v1");
    let configs = [
        AgentConfig::Dqn(DqnConfig { learning_starts: 200, net: minatar_net(), ..Default::default() }),
        AgentConfig::Ppo(PpoConfig {
            n_envs: 2,
            n_steps: 64,
            batch_size: 32,
            net: MlpConfig { encoder: Some(Encoder::MinAtar), ..MlpConfig::default() },
            ..Default::default()
        }),
    ];
    let registry = Registry::builtin();
    for config in configs {
        let agent = train_for(&config, &spec, 1_000, 4);
        let dir = std::env::temp_dir().join(format!("headstart-test-{}-pixels-{}", std::process::id(), config.algo()));
        let _ = std::fs::remove_dir_all(&dir);
        common::save_checkpoint(agent.as_ref(), &spec, &dir, "tests/pixels.rs");
        let card = std::fs::read_to_string(dir.join(checkpoint::CARD_FILE)).unwrap();
        assert!(card.contains("encoder: MinAtar") && card.contains("image: (10, 10, 6)"), "{card}");
        let loaded = checkpoint::load(&dir).unwrap();
        let names: Vec<String> = loaded.agent.tensors().into_iter().map(|(n, _)| n).collect();
        let conv = if matches!(config, AgentConfig::Dqn(_)) { "q" } else { "actor" };
        assert!(names.contains(&format!("{conv}.encoder.conv.0.weight")), "{names:?}");
        let mut env = registry.make(&spec).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let (mut obs, _) = env.reset(Some(9)).unwrap();
        for _ in 0..200 {
            let a = agent.act(&obs, true, &mut rng);
            assert_eq!(a, loaded.agent.act(&obs, true, &mut rng), "the same greedy action");
            let step = env.step(&a[0]).unwrap();
            obs = if step.done() { env.reset(None).unwrap().0 } else { step.obs };
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn encoders_that_do_not_fit_are_errors_naming_the_field() {
    let registry = Registry::builtin();
    let build = |config: AgentConfig, id: &str| {
        let env = registry.make(&EnvSpec::new(id)).unwrap();
        config.build(env.observation_space(), env.action_space(), 0).err().map(|e| e.to_string()).unwrap_or_default()
    };
    let e = build(AgentConfig::Dqn(DqnConfig { net: minatar_net(), ..Default::default() }), "CartPole-v1");
    assert!(e.contains("net.encoder") && e.contains("images"), "{e}");
    let nature = MlpConfig { encoder: Some(Encoder::Nature), ..MlpConfig::relu(&[512]) };
    let e = build(AgentConfig::Dqn(DqnConfig { net: nature, ..Default::default() }), "MinAtar/Breakout-v1");
    assert!(e.contains("net.encoder") && e.contains("does not fit"), "{e}");
    let e = build(AgentConfig::Sac(SacConfig { net: minatar_net(), ..Default::default() }), "Pendulum-v1");
    assert!(e.contains("net.encoder") && e.contains("SAC"), "{e}");
}

/// Between games, the first convolution reads other channels: a map lists, for each target
/// channel, the source channel it takes (here Breakout's paddle, ball and brick as Space
/// Invaders' cannon, friendly bullet and alien); without one, that layer is learned afresh
/// (`reinit`), and without either the transfer is refused with a hint.
#[test]
fn a_channel_map_carries_the_first_convolution_between_games() {
    let registry = Registry::builtin();
    let source_spec = EnvSpec::new("MinAtar/Breakout-v0");
    let config = AgentConfig::Dqn(DqnConfig { learning_starts: 100, net: minatar_net(), ..Default::default() });
    let source = train_for(&config, &source_spec, 300, 2);
    let dir = std::env::temp_dir().join(format!("headstart-test-{}-pixels-map", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    common::save_checkpoint(source.as_ref(), &source_spec, &dir, "tests/pixels.rs");
    let loaded = checkpoint::load(&dir).unwrap();
    let target = EnvSpec::new("MinAtar/SpaceInvaders-v0");
    // Space Invaders: cannon, alien, alien left, alien right, friendly bullet, enemy bullet.
    let map = Map { obs: Some(ObsMap::Index(vec![Some(0), Some(3), None, None, Some(1), None])), actions: None };
    let (agent, report) = prepare(&registry, &loaded, "breakout", &target, &Strategy::default(), Some(&map), 0).unwrap();
    let tensor = |agent: &dyn headstart::agent::Agent, name: &str| {
        let t = agent.tensors().into_iter().find(|(n, _)| n == name).unwrap().1;
        (t.size(), Vec::<f32>::try_from(t.flatten(0, -1)).unwrap())
    };
    let (shape, mapped) = tensor(agent.as_ref(), "q.encoder.conv.0.weight");
    let (source_shape, original) = tensor(loaded.agent.as_ref(), "q.encoder.conv.0.weight");
    assert_eq!((shape, source_shape), (vec![16, 6, 3, 3], vec![16, 4, 3, 3]));
    for o in 0..16 {
        for (t, s) in [(0, Some(0)), (1, Some(3)), (2, None), (3, None), (4, Some(1)), (5, None)] {
            let got = &mapped[(o * 6 + t) * 9..][..9];
            match s {
                Some(s) => assert_eq!(got, &original[(o * 4 + s) * 9..][..9], "filter {o}, channel {t}"),
                None => assert!(got.iter().all(|&v| v == 0.0), "filter {o}, channel {t}: unmapped"),
            }
        }
    }
    assert_eq!(tensor(agent.as_ref(), "q.trunk.0.weight").1, tensor(loaded.agent.as_ref(), "q.trunk.0.weight").1);
    let fate = |name: &str| report.parameters.iter().find(|p| p.name == name).map(|p| p.fate);
    assert_eq!(fate("q.encoder.conv.0.weight"), Some(headstart::transfer::Fate::Mapped));
    assert_eq!(fate("q.trunk.0.weight"), Some(headstart::transfer::Fate::Copied));

    let wrong = Map { obs: Some(ObsMap::Index(vec![Some(0), Some(1)])), actions: None };
    let e = prepare(&registry, &loaded, "breakout", &target, &Strategy::default(), Some(&wrong), 0).err().unwrap();
    assert!(e.to_string().contains("6 channels"), "{e}");
    let e = prepare(&registry, &loaded, "breakout", &target, &Strategy::default(), None, 0).err().unwrap();
    assert!(e.to_string().contains("q.encoder.conv.0.weight") && e.to_string().contains("reinit"), "{e}");
    let learned = Strategy { reinit: vec!["q.encoder.conv.0".into()], ..Strategy::default() };
    assert!(prepare(&registry, &loaded, "breakout", &target, &learned, None, 0).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

/// MiniGrid through the bridge: its dict observation read as the 7x7 egocentric image (as
/// MiniGrid's `ImgObsWrapper` gives it), its room `size` a parameter, and PPO with a small
/// convolutional encoder learning the 5x5 empty room in 20 000 steps: the greedy policy reaches
/// the goal in every game, near the optimum of 0.95, where a random policy scores about 0.2.
#[cfg(feature = "python")]
#[test]
fn ppo_learns_minigrid_from_its_image() {
    use headstart::agent::nn::ConvLayer;
    let spec = EnvSpec::new("gym:MiniGrid-Empty-5x5-v0");
    let registry = Registry::builtin();
    let mut env = registry.make(&spec).unwrap();
    assert_eq!(env.observation_space().to_string(), "Box(low=0.0, high=255.0, shape=(7, 7, 3))");
    let mut big = registry.make(&spec.clone().with("size", 8.0)).unwrap();
    let (small_obs, _) = env.reset(Some(0)).unwrap();
    let (big_obs, _) = big.reset(Some(0)).unwrap();
    assert_ne!(small_obs, big_obs, "an 8x8 room looks otherwise from its corner");
    let convs = [16, 32, 64].map(|channels| ConvLayer { channels, kernel: 2, stride: 1 }).to_vec();
    let net = MlpConfig { encoder: Some(Encoder::Convs(convs)), ..MlpConfig::relu(&[64]) };
    let agent = train_for(&minigrid_ppo(net), &spec, 20_000, 0);
    let stats = evaluate(agent.as_ref(), &mut env, 20, true, 1_000).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let random = random_policy_return(&mut env, &spec.id, 1_000..1_020, &mut rng).unwrap();
    println!("MiniGrid-Empty-5x5 after 20 000 steps: greedy {} (games {:?}), random {random}", stats.mean, stats.returns);
    assert!(stats.returns.iter().all(|&r| r > 0.8), "every greedy game reaches the goal fast: {:?}", stats.returns);
    assert!(random < 0.5, "random {random}");
}

/// PPO for MiniGrid's small rooms with the network `net`: 8 environments, 128 steps each.
#[cfg(feature = "python")]
fn minigrid_ppo(net: MlpConfig) -> AgentConfig {
    let learning_rate = headstart::agent::schedule::Schedule::Constant(2.5e-4);
    let (n_envs, n_steps, batch_size, n_epochs, ent_coef) = (8, 128, 256, 4, 0.01);
    AgentConfig::Ppo(PpoConfig { n_envs, n_steps, batch_size, n_epochs, ent_coef, learning_rate, net, ..Default::default() })
}

/// The IMPALA network (a padded convolution, max pooling and two residual blocks: one stage of
/// 16 channels) learns the same room with the same PPO: every greedy game reaches the goal after
/// 20 000 steps (seeds 0-3 all do; two stages of 32 channels, which pool the 7x7 image to 2x2,
/// learn it on two seeds of four at this budget). Its inputs are divided by 10 (MiniGrid's
/// values are object, colour and state indices up to 10): unscaled, its residual blocks start
/// with values near 5 where returns are at most 1 (a value loss of 20 and gradient norms of 500
/// at the first update).
#[cfg(feature = "python")]
#[test]
fn ppo_with_the_impala_network_learns_minigrid() {
    let spec = EnvSpec::new("gym:MiniGrid-Empty-5x5-v0");
    let mut env = Registry::builtin().make(&spec).unwrap();
    let net = MlpConfig { encoder: Some(Encoder::Impala(vec![16])), input_divisor: Some(10.0), ..MlpConfig::relu(&[64]) };
    let agent = train_for(&minigrid_ppo(net), &spec, 20_000, 0);
    let names = agent.weight_names();
    assert_eq!(names.iter().filter(|n| n.starts_with("actor.encoder.conv.") && n.ends_with(".weight")).count(), 5);
    let stats = evaluate(agent.as_ref(), &mut env, 20, true, 1_000).unwrap();
    println!("MiniGrid-Empty-5x5 with IMPALA after 20 000 steps: greedy {} (games {:?})", stats.mean, stats.returns);
    assert!(stats.returns.iter().all(|&r| r > 0.8), "every greedy game reaches the goal fast: {:?}", stats.returns);
}

/// PPO with one trunk shared by its actor and critic (`share_trunk`, SB3's `CnnPolicy` default)
/// learns the same room with the same small encoder in 20 000 steps (every greedy game at the
/// optimum on seeds 0-3, 5 s each): the trunk's parameters are `shared.*`, the actor and the
/// critic are heads.
#[cfg(feature = "python")]
#[test]
fn ppo_with_a_shared_trunk_learns_minigrid() {
    use headstart::agent::nn::ConvLayer;
    let spec = EnvSpec::new("gym:MiniGrid-Empty-5x5-v0");
    let mut env = Registry::builtin().make(&spec).unwrap();
    let convs = [16, 32, 64].map(|channels| ConvLayer { channels, kernel: 2, stride: 1 }).to_vec();
    let net = MlpConfig { encoder: Some(Encoder::Convs(convs)), ..MlpConfig::relu(&[64]) };
    let AgentConfig::Ppo(ppo) = minigrid_ppo(net) else { unreachable!() };
    let agent = train_for(&AgentConfig::Ppo(PpoConfig { share_trunk: true, ..ppo }), &spec, 20_000, 0);
    let names = agent.weight_names();
    let expected = ["actor.head.bias", "actor.head.weight", "critic.head.bias", "critic.head.weight"];
    assert_eq!(names.iter().filter(|n| !n.starts_with("shared.")).collect::<Vec<_>>(), expected);
    assert!(names.contains(&"shared.encoder.conv.2.weight".to_string()) && names.contains(&"shared.trunk.0.weight".to_string()));
    let stats = evaluate(agent.as_ref(), &mut env, 20, true, 1_000).unwrap();
    println!("MiniGrid-Empty-5x5 with a shared trunk after 20 000 steps: greedy {} (games {:?})", stats.mean, stats.returns);
    assert!(stats.returns.iter().all(|&r| r > 0.8), "every greedy game reaches the goal fast: {:?}", stats.returns);
}

/// A source with a trunk each and a target with one shared trunk transfer into each other: the
/// shared trunk starts from the source actor's, separate trunks each from the source's shared
/// one, and the report says so. A shared trunk needs something to share, and has the critic's
/// layers as its own: each mistake names its field.
#[test]
fn shared_and_separate_trunks_transfer_into_each_other() {
    let spec = EnvSpec::new("MinAtar/Breakout-v0");
    let registry = Registry::builtin();
    let env = registry.make(&spec).unwrap();
    let (obs, actions) = (env.observation_space(), env.action_space());
    let apart = PpoConfig { net: minatar_net(), ..Default::default() };
    let shared = PpoConfig { share_trunk: true, ..apart.clone() };
    let tensor = |agent: &dyn headstart::agent::Agent, name: &str| {
        let t = agent.tensors().into_iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name}")).1;
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    };
    for (from, to, seed) in [(&apart, &shared, 1), (&shared, &apart, 2)] {
        let source = AgentConfig::Ppo(from.clone()).build(obs, actions, seed).unwrap();
        let dir = std::env::temp_dir().join(format!("headstart-test-{}-shared-trunk-{seed}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        common::save_checkpoint(source.as_ref(), &spec, &dir, "tests/pixels.rs");
        let loaded = checkpoint::load(&dir).unwrap();
        let mut target = AgentConfig::Ppo(to.clone()).build(obs, actions, 7).unwrap();
        let strategy = Strategy::default();
        let report =
            headstart::transfer::transfer(&loaded, "source", target.as_mut(), &spec, obs, actions, &strategy, None).unwrap();
        let pairs: &[(&str, &str)] = if from.share_trunk {
            &[("actor.encoder.conv.0.weight", "shared.encoder.conv.0.weight"), ("critic.trunk.0.weight", "shared.trunk.0.weight")]
        } else {
            &[("shared.encoder.conv.0.weight", "actor.encoder.conv.0.weight"), ("shared.trunk.0.bias", "actor.trunk.0.bias")]
        };
        for (ours, theirs) in pairs {
            assert_eq!(tensor(target.as_ref(), ours), tensor(loaded.agent.as_ref(), theirs), "{ours} from {theirs}");
        }
        assert_eq!(tensor(target.as_ref(), "critic.head.weight"), tensor(loaded.agent.as_ref(), "critic.head.weight"));
        assert!(report.state.iter().any(|s| s.contains("trunk")), "{:?}", report.state);
        assert!(report.parameters.iter().all(|p| p.fate == headstart::transfer::Fate::Copied), "{}", report.table());
        // The critic's own trunk has no place in a shared target; the actor's does.
        assert_eq!(report.dropped.iter().any(|n| n.starts_with("critic.trunk")), !from.share_trunk, "{:?}", report.dropped);
        assert!(!report.dropped.iter().any(|n| n.starts_with("actor.trunk")), "{:?}", report.dropped);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let build = |c: PpoConfig| AgentConfig::Ppo(c).build(obs, actions, 0).err().unwrap().to_string();
    let e = build(PpoConfig { critic_hidden: Some(vec![32]), ..shared.clone() });
    assert!(e.contains("critic_hidden") && e.contains("share_trunk"), "{e}");
    let e = build(PpoConfig { share_trunk: true, net: MlpConfig::relu(&[]), ..Default::default() });
    assert!(e.contains("share_trunk") && e.contains("net.hidden"), "{e}");
    let diayn = headstart::agent::Objective::Diayn(Default::default());
    let e = build(PpoConfig { share_trunk: true, objective: diayn, net: MlpConfig::relu(&[16]), ..Default::default() });
    assert!(e.contains("share_trunk") && e.contains("skill"), "{e}");
}

/// Layers added after a convolutional encoder (DQN's `q`, PPO's actor and critic): every kind
/// that works on the trunk and head starts as the source bit for bit, and with `train: Added`
/// the encoder and the base layers stay as they came while the added ones learn; gradual
/// unfreezing releases the encoder after the first hidden layer. An input layer
/// (which would read the image) and a progressive column (which would need the encoder's
/// column) are refused by name.
#[test]
fn layers_added_after_an_encoder_start_as_the_source_and_train_alone() {
    use headstart::transfer::{Addition, Fate, Frozen, Train};
    let spec = EnvSpec::new("MinAtar/SpaceInvaders-v1");
    let registry = Registry::builtin();
    let env = registry.make(&spec).unwrap();
    let (obs, actions) = (env.observation_space(), env.action_space());
    let configs = [
        AgentConfig::Dqn(DqnConfig { learning_starts: 100, net: minatar_net(), ..Default::default() }),
        AgentConfig::Ppo(PpoConfig {
            n_envs: 2,
            n_steps: 64,
            batch_size: 32,
            net: MlpConfig { encoder: Some(Encoder::MinAtar), ..MlpConfig::relu(&[32, 32]) },
            ..Default::default()
        }),
    ];
    let add = vec![
        Addition::Output,
        Addition::Adapter { after: 0, width: 8 },
        Addition::Depth { after: 0 },
        Addition::Widen { layer: 0, units: 8 },
        Addition::Lora { layers: vec!["trunk.0".into()], rank: 2, alpha: 4.0, merge: false },
    ];
    let rows: Vec<f32> = (0..9 * obs.flat_dim()).map(|i| f32::from(u8::from(i * 7919 % 13 < 3))).collect();
    for (i, config) in configs.into_iter().enumerate() {
        let source = config.build(obs, actions, 5).unwrap();
        let dir = std::env::temp_dir().join(format!("headstart-test-{}-added-encoder-{i}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        common::save_checkpoint(source.as_ref(), &spec, &dir, "tests/pixels.rs");
        let loaded = checkpoint::load(&dir).unwrap();
        let strategy = Strategy { add: add.clone(), train: Train::Added, ..Strategy::finetune() };
        let (mut agent, report) = prepare(&registry, &loaded, "source", &spec, &strategy, None, 3).unwrap();
        let bits = |outputs: Vec<(&'static str, Vec<f32>)>| {
            outputs.into_iter().map(|(n, v)| (n, v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())).collect::<Vec<_>>()
        };
        assert_eq!(bits(agent.outputs(&rows)), bits(loaded.agent.outputs(&rows)), "{}", config.algo());
        let values = |agent: &dyn headstart::agent::Agent| {
            let tensors = agent.tensors().into_iter().map(|(n, t)| (n, t.detach().copy()));
            tensors.collect::<std::collections::HashMap<_, _>>()
        };
        let before = values(agent.as_ref());
        let (task, mut curve) = (Task::Env(spec.clone()), Curve::default());
        train(&registry, &task, agent.as_mut(), 600, &mut curve, &mut |_| ControlFlow::Continue(())).unwrap();
        let after = values(agent.as_ref());
        let encoder = report.parameters.iter().filter(|p| p.name.contains(".encoder.")).collect::<Vec<_>>();
        assert!(!encoder.is_empty(), "{}", report.table());
        // Every weight that came from the source, the encoder's among them, is frozen; the added ones train.
        for p in &report.parameters {
            assert_eq!(p.frozen == Frozen::Always, p.fate != Fate::Added, "{}: {:?}", p.name, p.frozen);
        }
        for p in &report.parameters {
            let moved = !before[&p.name].equal(&after[&p.name]);
            match p.frozen {
                Frozen::Always => assert!(!moved, "{} is frozen but changed", p.name),
                // A target network's copies follow at its next update, which 600 steps do not reach.
                _ if p.name.contains("adapter.") && !p.name.contains("_target") => {
                    assert!(moved, "{} did not train", p.name)
                }
                _ => {}
            }
        }
        // Gradual unfreezing releases the encoder last, one period after the first hidden layer.
        let strategy = Strategy { train: Train::Gradual(1000), ..Strategy::finetune() };
        let (_, report) = prepare(&registry, &loaded, "source", &spec, &strategy, None, 3).unwrap();
        let frozen = |name: &str| report.parameters.iter().find(|p| p.name.ends_with(name)).unwrap().frozen;
        let depth = if i == 0 { 1 } else { 2 };
        assert_eq!(frozen("trunk.0.weight"), Frozen::Until(1000 * depth), "{}", report.table());
        assert_eq!(frozen("encoder.conv.0.weight"), Frozen::Until(1000 * (depth + 1)), "{}", report.table());
        for (extra, words) in [(Addition::Input, "input layer"), (Addition::Progressive, "progressive")] {
            let strategy = Strategy { add: vec![extra], ..Strategy::finetune() };
            let e = prepare(&registry, &loaded, "source", &spec, &strategy, None, 3).err().expect("refused");
            let e = e.to_string();
            assert!(e.contains("`add`") && e.contains(words) && e.contains("encoder"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A dictionary observation (MiniGrid's image and the agent's direction, `observe_direction`):
/// the image through an encoder of its own (`actor.encoder.image.conv.{i}`), the direction's
/// one-hot as it is, both into the trunk. PPO learns the 5x5 room from it as from the image
/// alone (every greedy game at the optimum after 20 000 steps on seeds 0-3); DQN builds the
/// same parts.
#[cfg(feature = "python")]
#[test]
fn ppo_learns_minigrid_from_its_image_and_direction() {
    use headstart::agent::nn::ConvLayer;
    let spec = EnvSpec::new("gym:MiniGrid-Empty-5x5-v0").with("observe_direction", 1.0);
    let mut env = Registry::builtin().make(&spec).unwrap();
    let convs = [16, 32, 64].map(|channels| ConvLayer { channels, kernel: 2, stride: 1 }).to_vec();
    let net = MlpConfig { encoder: Some(Encoder::Convs(convs)), ..MlpConfig::relu(&[64]) };
    let agent = train_for(&minigrid_ppo(net.clone()), &spec, 20_000, 0);
    let names = agent.weight_names();
    assert!(names.contains(&"actor.encoder.image.conv.2.weight".to_string()), "{names:?}");
    let trunk = agent.tensors().into_iter().find(|(n, _)| n == "actor.trunk.0.weight").unwrap().1;
    assert_eq!(trunk.size(), [64, 4 + 64 * 4 * 4], "the direction's one-hot and the image's features");
    let stats = evaluate(agent.as_ref(), &mut env, 20, true, 1_000).unwrap();
    println!("MiniGrid-Empty-5x5 from image and direction after 20 000 steps: greedy {} ({:?})", stats.mean, stats.returns);
    assert!(stats.returns.iter().all(|&r| r > 0.8), "every greedy game reaches the goal fast: {:?}", stats.returns);
    let dqn = AgentConfig::Dqn(DqnConfig { net, ..Default::default() });
    let dqn = dqn.build(env.observation_space(), env.action_space(), 0).unwrap();
    assert!(dqn.weight_names().contains(&"q.encoder.image.conv.0.weight".to_string()));
}

/// What a dictionary observation refuses, by name: a malformed Dict (no parts, a repeated key, a
/// Dict inside, an empty part), an encoder without an image part to read, an image part whose
/// key cannot name its encoder, a kernel larger than a part's image (naming the part), a shared
/// trunk with no hidden layer to join the parts.
#[test]
fn dictionary_observations_refuse_by_name() {
    use headstart::env::Space;
    let image = |shape: Vec<usize>| {
        let n = shape.iter().product();
        Space::Box { low: vec![0.0; n], high: vec![1.0; n], shape }
    };
    let dict = |parts: Vec<(&str, Space)>| Space::Dict { spaces: parts.into_iter().map(|(k, s)| (k.to_string(), s)).collect() };
    let err = |s: Space| s.validate().unwrap_err().to_string();
    assert!(err(dict(vec![])).contains("no parts"));
    assert!(err(dict(vec![("a", Space::Discrete { n: 2 }), ("a", Space::Discrete { n: 3 })])).contains("repeated"));
    assert!(err(dict(vec![("a", dict(vec![("b", Space::Discrete { n: 2 })]))])).contains("Dict itself"));
    assert!(err(dict(vec![("a", image(vec![0, 5, 3]))])).contains("no values"));
    let ok = dict(vec![("dir", Space::Discrete { n: 4 }), ("image", image(vec![5, 5, 3]))]);
    assert_eq!((ok.validate(), ok.flat_dim()), (Ok(()), 4 + 75));
    let actions = Space::Discrete { n: 3 };
    let build = |obs: &Space, net: MlpConfig| {
        AgentConfig::Ppo(PpoConfig { net, ..Default::default() }).build(obs, &actions, 0).err().map(|e| e.to_string())
    };
    let net = MlpConfig { encoder: Some(Encoder::MinAtar), ..MlpConfig::relu(&[16]) };
    let vectors = dict(vec![("pos", Space::uniform_box(-1.0, 1.0, 3)), ("dir", Space::Discrete { n: 4 })]);
    let e = build(&vectors, net.clone()).unwrap();
    assert!(e.contains("net.encoder") && e.contains("no part"), "{e}");
    let e = build(&dict(vec![("my.image", image(vec![5, 5, 3]))]), net.clone()).unwrap();
    assert!(e.contains("net.encoder") && e.contains("my.image"), "{e}");
    for key in ["conv", "column", "adapter"] {
        // An added layer's name as a key would make the part's encoder count as that layer.
        let e = build(&dict(vec![(key, image(vec![5, 5, 3]))]), net.clone()).unwrap();
        assert!(e.contains("net.encoder") && e.contains(&format!("{key:?}")) && e.contains("plain key"), "{e}");
    }
    let joined = AgentConfig::Ppo(PpoConfig { share_trunk: true, net: MlpConfig { hidden: vec![], ..net.clone() }, ..Default::default() });
    let e = joined.build(&ok, &actions, 0).err().unwrap().to_string();
    assert!(e.contains("net.hidden") && e.contains("join"), "{e}");
    let nature = MlpConfig { encoder: Some(Encoder::Nature), ..net.clone() };
    let e = build(&ok, nature).unwrap();
    assert!(e.contains("net.encoder") && e.contains("\"image\""), "{e}");
    assert_eq!(build(&ok, net.clone()), None);
    assert_eq!(build(&vectors, MlpConfig::relu(&[16])), None, "without an encoder, a flat vector");
}

/// From the image to the image and the direction: a policy trained on MiniGrid's image alone
/// transfers into the dictionary observation, its encoder carried into the image part's
/// (`actor.encoder.image.*` from `actor.encoder.*`); the trunk's first layer, which now also
/// reads the direction, learned afresh (`reinit`), and without that the transfer says so. And
/// back from the dictionary to the image; and between a shared trunk on the image and a trunk
/// each on the dictionary, both ways (the trunk's and the image part's renamings at once).
#[cfg(feature = "python")]
#[test]
fn an_image_encoder_carries_into_a_dictionary_image_part() {
    use headstart::agent::nn::ConvLayer;
    let registry = Registry::builtin();
    let source_spec = EnvSpec::new("gym:MiniGrid-Empty-5x5-v0");
    let convs = [8, 16].map(|channels| ConvLayer { channels, kernel: 2, stride: 1 }).to_vec();
    let net = MlpConfig { encoder: Some(Encoder::Convs(convs)), ..MlpConfig::relu(&[32]) };
    let source = train_for(&minigrid_ppo(net.clone()), &source_spec, 1_024, 0);
    let dir = std::env::temp_dir().join(format!("headstart-test-{}-image-part", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    common::save_checkpoint(source.as_ref(), &source_spec, &dir, "tests/pixels.rs");
    let loaded = checkpoint::load(&dir).unwrap();
    let target = source_spec.clone().with("observe_direction", 1.0);
    let e = prepare(&registry, &loaded, "image", &target, &Strategy::default(), None, 0).err().unwrap().to_string();
    assert!(e.contains("actor.trunk.0.weight") && e.contains("reinit"), "{e}");
    let strategy = Strategy { reinit: vec!["actor.trunk.0".into(), "critic.trunk.0".into()], ..Strategy::default() };
    let (agent, report) = prepare(&registry, &loaded, "image", &target, &strategy, None, 0).unwrap();
    let tensor = |agent: &dyn headstart::agent::Agent, name: &str| {
        let t = agent.tensors().into_iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name}")).1;
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    };
    for (ours, theirs) in [("actor.encoder.image.conv.1.weight", "actor.encoder.conv.1.weight"), ("critic.encoder.image.conv.0.bias", "critic.encoder.conv.0.bias")] {
        assert_eq!(tensor(agent.as_ref(), ours), tensor(loaded.agent.as_ref(), theirs), "{ours}");
    }
    assert!(report.state.iter().any(|s| s.contains("actor.encoder.image.* from actor.encoder.*")), "{:?}", report.state);
    assert!(report.dropped.is_empty(), "{:?}", report.dropped);
    // And back: the dictionary's policy into the image alone (its card's parts set afresh).
    let back = dir.join("dict");
    common::save_checkpoint(agent.as_ref(), &target, &back, "tests/pixels.rs");
    let loaded_dict = checkpoint::load(&back).unwrap();
    let (image_agent, report) = prepare(&registry, &loaded_dict, "dict", &source_spec, &strategy, None, 0).unwrap();
    assert_eq!(
        tensor(image_agent.as_ref(), "actor.encoder.conv.1.weight"),
        tensor(loaded_dict.agent.as_ref(), "actor.encoder.image.conv.1.weight")
    );
    assert!(report.state.iter().any(|s| s.contains("actor.encoder.* from actor.encoder.image")), "{:?}", report.state);
    // Two layouts at once: a shared trunk on the image into a trunk each on the dictionary (each
    // part's encoder from the shared one), and back.
    let obs = registry.make(&source_spec).unwrap().observation_space().clone();
    let actions = registry.make(&source_spec).unwrap().action_space().clone();
    let shared_config = match minigrid_ppo(net.clone()) {
        AgentConfig::Ppo(c) => AgentConfig::Ppo(PpoConfig { share_trunk: true, ..c }),
        _ => unreachable!(),
    };
    let shared = shared_config.build(&obs, &actions, 3).unwrap();
    let shared_dir = dir.join("shared");
    common::save_checkpoint(shared.as_ref(), &source_spec, &shared_dir, "tests/pixels.rs");
    let loaded_shared = checkpoint::load(&shared_dir).unwrap();
    let dict_env = registry.make(&target).unwrap();
    let (dict_obs, dict_actions) = (dict_env.observation_space(), dict_env.action_space());
    let mut dict_agent = minigrid_ppo(net).build(dict_obs, dict_actions, 5).unwrap();
    let report = headstart::transfer::transfer(
        &loaded_shared, "shared", dict_agent.as_mut(), &target, dict_obs, dict_actions, &strategy, None,
    )
    .unwrap();
    for net in ["actor", "critic"] {
        assert_eq!(
            tensor(dict_agent.as_ref(), &format!("{net}.encoder.image.conv.1.weight")),
            tensor(loaded_shared.agent.as_ref(), "shared.encoder.conv.1.weight"),
            "{net}"
        );
    }
    let states = &report.state;
    assert!(states.iter().any(|s| s.contains("from shared.*")), "{states:?}");
    assert!(states.iter().any(|s| s.contains("actor.encoder.image.* from actor.encoder.*")), "{states:?}");
    assert!(!report.dropped.iter().any(|n| n.starts_with("shared.encoder")), "{:?}", report.dropped);
    let shared_strategy = Strategy { reinit: vec!["shared.trunk.0".into()], ..Strategy::default() };
    let mut shared_agent = shared_config.build(&obs, &actions, 4).unwrap();
    let report = headstart::transfer::transfer(
        &loaded_dict, "dict", shared_agent.as_mut(), &source_spec, &obs, &actions, &shared_strategy, None,
    )
    .unwrap();
    assert_eq!(
        tensor(shared_agent.as_ref(), "shared.encoder.conv.0.weight"),
        tensor(loaded_dict.agent.as_ref(), "actor.encoder.image.conv.0.weight")
    );
    assert!(report.state.iter().any(|s| s.contains("shared.* from actor.*")), "{:?}", report.state);
    let _ = std::fs::remove_dir_all(&dir);
}
