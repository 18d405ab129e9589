//! The Atari preprocessing (`Transform::Atari`, SB3's `AtariWrapper`): its screens against
//! OpenCV's, and, through the bridge, ALE games under it.

use std::path::Path;

use base64::Engine;
use serde_json::Value;

use headstart::env::atari::{resize_area, rgb_to_grey};

fn golden() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/atari/warp.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn bytes(v: &Value) -> Vec<f32> {
    base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap().into_iter().map(f32::from).collect()
}

/// Grey as OpenCV's `COLOR_RGB2GRAY`, 84x84 as its `INTER_AREA`, bit for bit (recorded by
/// tests/python/atari_warp_golden.py from Breakout and Space Invaders).
#[test]
fn screens_are_warped_as_opencv_warps_them() {
    for frame in golden()["frames"].as_array().unwrap() {
        let game = frame["game"].as_str().unwrap();
        let grey = rgb_to_grey(&bytes(&frame["rgb"]));
        assert_eq!(grey, bytes(&frame["grey"]), "{game}: grey");
        let ours = resize_area(&grey, 210, 160, 84, 84);
        let theirs = bytes(&frame["warped"]);
        let differ = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 0, "{game}: {differ} of {} pixels differ from OpenCV's", ours.len());
    }
}

#[cfg(feature = "python")]
mod bridge {
    use headstart::env::atari::AtariConfig;
    use headstart::env::{Action, Env, EnvSpec, Registry, Space, Transform};

    use super::*;

    fn atari(id: &str, config: AtariConfig) -> EnvSpec {
        EnvSpec { transforms: vec![Transform::Atari(config), Transform::FrameStack(4)], ..EnvSpec::new(id) }
    }

    /// Breakout under headstart's `Atari` transform replays the trajectory SB3's `AtariWrapper`
    /// recorded (tests/python/atari_wrapper_golden.py): the same clipped rewards, lost lives as
    /// terminations, game overs, and screens bit for bit, through four games.
    #[test]
    fn breakout_replays_sb3s_atari_wrapper() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/atari/breakout-sb3.json");
        let golden: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let config = AtariConfig { noop_max: 0, fire_reset: true, ..AtariConfig::default() };
        let spec = EnvSpec { transforms: vec![Transform::Atari(config)], ..EnvSpec::new(format!("gym:{}", golden["env_id"].as_str().unwrap())) };
        let mut env = Registry::builtin().make(&spec).unwrap();
        assert!(matches!(env.observation_space(), Space::Box { shape, .. } if shape == &[84, 84, 1]));
        let sum = |obs: &[f32]| obs.iter().map(|&v| v as u64).sum::<u64>();
        let (obs, _) = env.reset(Some(golden["seed"].as_u64().unwrap())).unwrap();
        assert_eq!(obs.to_vec(), bytes(&golden["reset"]["screen"]), "the first screen");
        let (mut lives_lost, mut games) = (0, 0);
        for (t, want) in golden["steps"].as_array().unwrap().iter().enumerate() {
            let step = env.step(&Action::Discrete(want["action"].as_u64().unwrap() as usize)).unwrap();
            assert_eq!(step.reward, want["reward"].as_f64().unwrap(), "step {t}: clipped reward");
            assert_eq!((step.terminated, step.truncated), (want["terminated"] == true, want["truncated"] == true), "step {t}");
            assert_eq!(step.info.get("lives"), want["lives"].as_f64(), "step {t}: lives");
            assert_eq!(sum(&step.obs), want["sum"].as_u64().unwrap(), "step {t}: screen");
            if let Some(screen) = want.get("screen") {
                assert_eq!(step.obs.to_vec(), bytes(screen), "step {t}: screen");
            }
            assert_eq!(step.info.get("raw_reward").unwrap().signum(), step.reward.signum(), "step {t}");
            if step.done() {
                lives_lost += 1;
                games += usize::from(step.info.get("game_over") == Some(1.0));
                let (obs, _) = env.reset(None).unwrap();
                assert_eq!(sum(&obs), want["reset_sum"].as_u64().unwrap(), "step {t}: the screen after reset");
            }
        }
        assert_eq!(games, golden["games_over"].as_u64().unwrap() as usize);
        assert!(games >= 2 && lives_lost > 4 * games, "{games} games over, {lives_lost} episodes ended");
    }

    /// ALE's `mode` and `difficulty` are parameters (Machado et al.'s flavours); a mode the game
    /// lacks is refused with ALE's list; the stacked screens are bytes, (84, 84, 4).
    #[test]
    fn modes_and_difficulties_are_parameters() {
        let registry = Registry::builtin();
        let spec = |mode: f64| atari("gym:ALE/Breakout-v5", AtariConfig::default()).with("frameskip", 1.0).with("mode", mode);
        let mut env = registry.make(&spec(4.0).with("difficulty", 1.0)).unwrap();
        let Space::Box { shape, low, high } = env.observation_space().clone() else { panic!("a box") };
        assert_eq!((shape, low[0], high[0]), (vec![84, 84, 4], 0.0, 255.0));
        let (obs, _) = env.reset(Some(1)).unwrap();
        assert!(obs.iter().all(|&v| v.fract() == 0.0 && (0.0..=255.0).contains(&v)));
        let e = registry.make(&spec(3.0)).and_then(|mut env| env.reset(Some(0)).map(|_| ())).unwrap_err().to_string();
        assert!(e.contains("mode") && e.contains("3"), "{e}");
    }
}
