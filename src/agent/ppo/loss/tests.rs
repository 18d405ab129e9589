use super::super::PpoConfig;
use super::*;
use crate::agent::nn::MlpConfig;
use crate::agent::{Agent, Distill};
use crate::env::{EnvSpec, Registry};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The hand-written gradient equals autograd's, for a discrete and a continuous policy,
/// with clipping, value clipping and the entropy bonus all active, without and with a
/// distillation teacher (a copy of the actor taken before its weights were perturbed), with
/// separate networks and with a shared trunk (an MLP's, and a convolutional one on images),
/// and on a dictionary observation (an image through its encoder, a vector and a one-hot
/// part as they are).
#[test]
fn manual_gradients_match_autograd() {
    use crate::env::Space;
    let dict = Space::Dict {
        spaces: vec![
            ("dir".into(), Space::Discrete { n: 4 }),
            ("pixels".into(), Space::Box { low: vec![0.0; 72], high: vec![1.0; 72], shape: vec![6, 6, 2] }),
            ("pos".into(), Space::uniform_box(-1.0, 1.0, 3)),
        ],
    };
    let image = MlpConfig {
        encoder: Some(crate::agent::nn::Encoder::MinAtar),
        ..MlpConfig { ortho_init: true, ..MlpConfig::relu(&[16]) }
    };
    for (env_id, with_teacher, share_trunk) in [
        ("CartPole-v1", false, false),
        ("Pendulum-v1", false, false),
        ("CartPole-v1", true, false),
        ("Pendulum-v1", true, false),
        ("CartPole-v1", false, true),
        ("Pendulum-v1", true, true),
        ("MinAtar/Breakout-v1", true, true),
        ("dict", true, false),
        ("dict", false, true),
    ] {
        let _alone = crate::agent::engine::testing::libtorch_alone();
        let (obs_space, action_space) = match env_id {
            "dict" => (dict.clone(), Space::Discrete { n: 3 }),
            _ => {
                let env = Registry::builtin().make(&EnvSpec::new(env_id)).unwrap();
                (env.observation_space().clone(), env.action_space().clone())
            }
        };
        let net = if env_id.starts_with("MinAtar") || env_id == "dict" { image.clone() } else { MlpConfig::default() };
        let cfg = PpoConfig { ent_coef: 0.05, clip_range_vf: Some(0.1), share_trunk, net, ..Default::default() };
        let mut ppo = Ppo::new(cfg, &obs_space, &action_space, 1).unwrap();
        if env_id == "dict" {
            let names = ppo.weight_names();
            let prefix = if share_trunk { "shared" } else { "critic" };
            assert!(names.contains(&format!("{prefix}.encoder.pixels.conv.0.weight")), "{names:?}");
            assert_eq!(ppo.cfg.net.trunk_inputs(ppo.obs_dim), 4 + 16 * 4 * 4 + 3, "the parts joined");
        }
        if with_teacher {
            ppo.set_teacher(Distill { weight: 2.0, decay_steps: 100 }).unwrap();
            // Under `with_seed`: other tests reseed libtorch's generator concurrently.
            crate::agent::nn::with_seed(12, || {
                tch::no_grad(|| {
                    for (name, mut t) in ppo.vs.variables() {
                        if name.starts_with("actor.") || name.starts_with("shared.") {
                            let _ = t.g_add_(&(t.randn_like() * 0.3));
                        }
                    }
                })
            });
            assert!(ppo.distill_loss(&vec![0.0; 2 * ppo.obs_dim]).is_some());
        }
        let mut rng = StdRng::seed_from_u64(2);
        let b = 64;
        let obs: Vec<f32> = (0..b * ppo.obs_dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        if share_trunk {
            let names = ppo.weight_names();
            assert!(names.iter().any(|n| n.starts_with("shared.")), "{names:?}");
            assert!(!names.iter().any(|n| n.starts_with("actor.trunk") || n.starts_with("critic.trunk")), "{names:?}");
        }
        let (out, _) = ppo.policy_out(&obs);
        let (mut actions, mut log_probs) = (Vec::new(), Vec::new());
        ppo.sample(&out, &[], &mut actions, &mut log_probs);
        // Old log-probs away from the current ones, so that some ratios leave the clip range.
        let old_log_probs = log_probs.iter().map(|lp| lp + rng.random_range(-0.5..0.5)).collect();
        let mb = Minibatch {
            obs: obs.clone(),
            actions,
            old_log_probs,
            old_values: (0..b).map(|_| rng.random_range(-1.0..1.0)).collect(),
            advantages: (0..b).map(|_| rng.random_range(-2.0..2.0)).collect(),
            returns: (0..b).map(|_| rng.random_range(-1.0..1.0)).collect(),
        };
        let (loss, auto_terms) = ppo.loss(&mb, 0.2);
        ppo.opt.compute_gradients(&loss);
        let auto = ppo.opt.gradients().copy();
        let manual_terms = ppo.manual_gradients(&mb, 0.2);
        let manual = ppo.opt.gradients().copy();
        let err = (&auto - &manual).abs().max().double_value(&[]);
        let scale = auto.abs().max().double_value(&[]);
        assert!(scale > 1e-3, "{env_id}: gradients vanish");
        assert!(err <= 1e-4 * scale.max(1.0), "{env_id}: max difference {err} (largest gradient {scale})");
        // The logged terms agree too, the whole loss with autograd's (less distillation).
        let (a, m) = (auto_terms, manual_terms);
        for (name, x, y) in [
            ("kl", a.kl, m.kl),
            ("policy", a.policy, m.policy),
            ("value", a.value, m.value),
            ("entropy", a.entropy, m.entropy),
            ("clip_fraction", a.clip_fraction, m.clip_fraction),
            ("a2c_policy", a.a2c_policy, m.a2c_policy),
        ] {
            assert!((x - y).abs() < 1e-5 * x.abs().max(1.0), "{env_id}: {name} {x} vs {y}");
        }
        assert!(m.clip_fraction > 0.0 && m.clip_fraction < 1.0, "{env_id}: some ratios clip");
        if !with_teacher {
            let cfg = &ppo.cfg;
            let whole = m.policy + cfg.vf_coef * m.value - cfg.ent_coef * m.entropy;
            let autograd = loss.double_value(&[]);
            assert!((whole - autograd).abs() < 1e-5 * autograd.abs().max(1.0), "{env_id}: loss {whole} vs {autograd}");
        }
    }
}

/// The direct networks the hand-written step runs are views of the named parameters: after
/// another agent's weights are loaded in place (as a checkpoint or a transfer loads them),
/// they compute that agent's outputs, and a step moves both together.
#[test]
fn direct_networks_are_the_named_networks() {
    let env = Registry::builtin().make(&EnvSpec::new("CartPole-v1")).unwrap();
    let (obs_space, action_space) = (env.observation_space(), env.action_space());
    let source = Ppo::new(PpoConfig::default(), obs_space, action_space, 1).unwrap();
    let mut ppo = Ppo::new(PpoConfig::default(), obs_space, action_space, 2).unwrap();
    let weights: std::collections::HashMap<String, Tensor> = source.tensors().into_iter().collect();
    ppo.restore(&mut |name| weights.get(name).map(|t| t.shallow_clone()), 0).unwrap();
    let obs = [0.1, -0.2, 0.3, 0.05, -0.4, 0.2, 0.0, 0.1];
    let same = |ppo: &Ppo, other: &Ppo| {
        let (out, _, values) = ppo.policy_and_values(&obs);
        (out, values) == (other.policy_out(&obs).0, other.values(&obs))
    };
    assert!(same(&ppo, &source), "the loaded weights");
    let mut rng = StdRng::seed_from_u64(3);
    let mb = Minibatch {
        obs: obs.to_vec(),
        actions: vec![0.0, 1.0],
        old_log_probs: vec![-0.7, -0.6],
        old_values: vec![0.0, 0.1],
        advantages: (0..2).map(|_| rng.random_range(-2.0..2.0)).collect(),
        returns: vec![1.0, -1.0],
    };
    ppo.manual_gradients(&mb, 0.2);
    ppo.opt.step_with_gradients(0.1, None);
    assert!(!same(&ppo, &source), "the step changed the networks");
    assert!(same(&ppo, &ppo), "and the named parameters with them");
}
