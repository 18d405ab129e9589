//! Interface transforms (`EnvSpec::transforms`) and mixtures of variants.

use headstart::env::{Action, Env, EnvSpec, Mixture, Registry, Transform};

fn with(transforms: Vec<Transform>) -> EnvSpec {
    let mut spec = EnvSpec::new("CartPole-v1");
    spec.transforms = transforms;
    spec
}

/// Steps `env` with `actions` from `reset(seed)`; the observations and rewards.
fn rollout(env: &mut dyn Env, seed: u64, actions: &[Action]) -> (Vec<Vec<f32>>, Vec<f64>) {
    let (obs, _) = env.reset(Some(seed)).unwrap();
    let mut seen = vec![obs.to_vec()];
    let mut rewards = Vec::new();
    for a in actions {
        let step = env.step(a).unwrap();
        seen.push(step.obs.to_vec());
        rewards.push(step.reward);
        if step.done() {
            break;
        }
    }
    (seen, rewards)
}

#[test]
fn transforms_change_only_what_they_say() {
    let registry = Registry::builtin();
    let pushes: Vec<usize> = (0..30).map(|i| (i * 7 % 3 == 0) as usize).collect();
    let plain: Vec<Action> = pushes.iter().map(|&a| Action::Discrete(a)).collect();
    let swapped: Vec<Action> = pushes.iter().map(|&a| Action::Discrete(1 - a)).collect();
    let mut base = registry.make(&EnvSpec::new("CartPole-v1")).unwrap();
    let (obs, rewards) = rollout(base.as_mut(), 3, &plain);

    let mut env = registry.make(&with(vec![Transform::PermuteActions(vec![1, 0])])).unwrap();
    assert_eq!(rollout(env.as_mut(), 3, &swapped).0, obs, "swapped actions, same trajectory");

    let mut env = registry.make(&with(vec![Transform::SelectObs(vec![2, 0])])).unwrap();
    let (selected, _) = rollout(env.as_mut(), 3, &plain);
    assert_eq!(selected, obs.iter().map(|o| vec![o[2], o[0]]).collect::<Vec<_>>());
    assert_eq!(env.observation_space().flat_dim(), 2);

    let noisy = with(vec![Transform::NoiseObs { count: 2, std: 1.0 }, Transform::ScaleReward(-0.5)]);
    let mut env = registry.make(&noisy).unwrap();
    let (seen, scaled) = rollout(env.as_mut(), 3, &plain);
    assert_eq!(seen.iter().map(|o| o[..4].to_vec()).collect::<Vec<_>>(), obs);
    assert!(seen.iter().all(|o| o.len() == 6 && o[4] != o[5]));
    assert_eq!(scaled, rewards.iter().map(|r| r * -0.5).collect::<Vec<_>>());
    let (again, _) = rollout(env.as_mut(), 3, &plain);
    assert_eq!(again, seen, "the noise is seeded by reset");
    assert_ne!(rollout(env.as_mut(), 4, &plain).0[0][4], seen[0][4]);
}

#[test]
fn invalid_transforms_are_refused_by_name() {
    let registry = Registry::builtin();
    let err = |t: Transform| registry.make(&with(vec![t])).err().expect("refused").to_string();
    assert!(
        err(Transform::PermuteActions(vec![0, 0])).contains("PermuteActions([0, 0]) must list each of the 2 actions")
    );
    assert!(err(Transform::SelectObs(vec![7])).contains("SelectObs([7]) must name at least one of the 4"));
    assert!(err(Transform::NoiseObs { count: 0, std: 1.0 }).contains("count >= 1"));
    assert!(err(Transform::ScaleReward(f64::NAN)).contains("ScaleReward"));
    // An action outside the permuted space is an error, not a panic.
    let mut env = registry.make(&with(vec![Transform::PermuteActions(vec![1, 0])])).unwrap();
    env.reset(Some(0)).unwrap();
    assert!(env.step(&Action::Discrete(2)).is_err());
}

#[test]
fn a_mixture_draws_its_variants_episode_by_episode() {
    let registry = Registry::builtin();
    let mix = Mixture {
        variants: vec![EnvSpec::new("CartPole-v1"), with(vec![Transform::ScaleReward(2.0)])],
        randomize: [("length".to_string(), (0.3, 0.7))].into(),
    };
    let run = || {
        let mut envs = registry.make_vec_mixture(&mix, 2).unwrap();
        envs.reset(Some(5)).unwrap();
        let mut scales = Vec::new();
        for _ in 0..600 {
            let step = envs.step(&[Action::Discrete(0), Action::Discrete(1)]).unwrap();
            scales.push(step.rewards[0]);
        }
        scales
    };
    let scales = run();
    assert!(scales.contains(&1.0) && scales.contains(&2.0), "both variants are drawn");
    assert_eq!(run(), scales, "the same seed draws the same tasks");

    let bad = |mix: Mixture| registry.make_vec_mixture(&mix, 1).err().expect("refused").to_string();
    let e = bad(Mixture {
        variants: vec![EnvSpec::new("CartPole-v1")],
        randomize: [("length".to_string(), (0.7, 0.3))].into(),
    });
    assert!(e.contains("randomize length: low 0.7 is above high 0.3"), "{e}");
    let e = bad(Mixture {
        variants: vec![EnvSpec::new("CartPole-v1")],
        randomize: [("length".to_string(), (-1.0, 0.3))].into(),
    });
    assert!(e.contains("length") && e.contains("out of range"), "{e}");
    let e = bad(Mixture {
        variants: vec![EnvSpec::new("CartPole-v1"), EnvSpec::new("Acrobot-v1")],
        randomize: Default::default(),
    });
    assert!(e.contains("Acrobot-v1 has spaces"), "{e}");
    assert!(bad(Mixture { variants: vec![], randomize: Default::default() }).contains("at least one variant"));
}

/// A custom environment observing a Discrete state (one integer), as a user may register.
struct Counter {
    obs_space: headstart::env::Space,
    act_space: headstart::env::Space,
    state: usize,
}

impl Env for Counter {
    fn observation_space(&self) -> &headstart::env::Space {
        &self.obs_space
    }

    fn action_space(&self) -> &headstart::env::Space {
        &self.act_space
    }

    fn reset(
        &mut self,
        _seed: Option<u64>,
    ) -> Result<(headstart::env::Obs, headstart::env::Info), headstart::env::EnvError> {
        self.state = 0;
        Ok((headstart::env::Obs::from_slice(&[0.0]), headstart::env::Info::new()))
    }

    fn step(&mut self, action: &Action) -> Result<headstart::env::Step, headstart::env::EnvError> {
        self.act_space.check_action(action)?;
        self.state += 1;
        Ok(headstart::env::Step {
            obs: headstart::env::Obs::from_slice(&[self.state as f32]),
            reward: 1.0,
            terminated: self.state >= 3,
            truncated: false,
            info: headstart::env::Info::new(),
        })
    }
}

/// Observation transforms on an environment with a Discrete observation space are refused with
/// an error naming the transform and the space (they used to panic).
#[test]
fn observation_transforms_refuse_a_discrete_observation_space() {
    use headstart::env::{EnvEntry, Space};
    let mut registry = Registry::builtin();
    registry.register(EnvEntry::new("Counter-v0", |_| {
        Ok(Counter { obs_space: Space::Discrete { n: 4 }, act_space: Space::Discrete { n: 2 }, state: 0 })
    }));
    for transform in [Transform::SelectObs(vec![0]), Transform::NoiseObs { count: 1, std: 1.0 }] {
        let mut spec = EnvSpec::new("Counter-v0");
        spec.transforms = vec![transform.clone()];
        let e = registry.make(&spec).err().expect("refused").to_string();
        assert!(e.contains("Box observation space") && e.contains("Discrete"), "{transform}: {e}");
    }
    // The actions may still be permuted.
    let mut spec = EnvSpec::new("Counter-v0");
    spec.transforms = vec![Transform::PermuteActions(vec![1, 0])];
    let mut env = registry.make(&spec).unwrap();
    env.reset(Some(0)).unwrap();
    assert_eq!(env.step(&Action::Discrete(0)).unwrap().reward, 1.0);
}

/// `FrameStack(n)` keeps the last `n` observations along the last axis, oldest first, from zeros
/// at each reset, as Stable-Baselines3's `VecFrameStack` (channels last): a vector's frames one
/// after the other, an image's interleaved per cell.
#[test]
fn frame_stacks_hold_the_last_observations_along_the_last_axis() {
    use headstart::env::Space;
    let registry = Registry::builtin();
    let actions: Vec<Action> = (0..12).map(|i| Action::Discrete(i % 2)).collect();
    let (plain, _) = rollout(registry.make(&EnvSpec::new("CartPole-v1")).unwrap().as_mut(), 5, &actions);
    let (stacked, _) = rollout(registry.make(&with(vec![Transform::FrameStack(3)])).unwrap().as_mut(), 5, &actions);
    let zeros = vec![0.0f32; 4];
    for (t, obs) in stacked.iter().enumerate() {
        let frame = |k: usize| if t + k >= 2 { plain[t + k - 2].clone() } else { zeros.clone() };
        assert_eq!(obs, &[frame(0), frame(1), frame(2)].concat(), "step {t}");
    }

    let mut spec = EnvSpec::new("MinAtar/Breakout-v1");
    spec.transforms = vec![Transform::FrameStack(2)];
    let mut env = registry.make(&spec).unwrap();
    let Space::Box { shape, .. } = env.observation_space() else { panic!("a Box") };
    assert_eq!(shape, &[10, 10, 8]);
    let mut base = registry.make(&EnvSpec::new("MinAtar/Breakout-v1")).unwrap();
    let (first, _) = env.reset(Some(1)).unwrap();
    let (b0, _) = base.reset(Some(1)).unwrap();
    let step = env.step(&Action::Discrete(1)).unwrap().obs;
    let b1 = base.step(&Action::Discrete(1)).unwrap().obs;
    for cell in 0..100 {
        assert_eq!(&first[cell * 8..cell * 8 + 4], &[0.0; 4], "cell {cell}: zeros before the first frame");
        assert_eq!(&first[cell * 8 + 4..cell * 8 + 8], &b0[cell * 4..cell * 4 + 4], "cell {cell}");
        assert_eq!(&step[cell * 8..cell * 8 + 4], &b0[cell * 4..cell * 4 + 4], "cell {cell}: the older frame first");
        assert_eq!(&step[cell * 8 + 4..cell * 8 + 8], &b1[cell * 4..cell * 4 + 4], "cell {cell}");
    }
    let (again, _) = env.reset(Some(1)).unwrap();
    assert_eq!(again, first, "a reset starts from zeros again");

    for bad in [Transform::FrameStack(1), Transform::FrameStack(65)] {
        let e = registry.make(&with(vec![bad])).err().unwrap().to_string();
        assert!(e.contains("FrameStack") && e.contains("2 to 64"), "{e}");
    }
}
