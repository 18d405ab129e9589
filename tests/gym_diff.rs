//! Differential tests of the native classic-control ports against live Gymnasium, through the
//! bridge (feature `python`): for each of the five tasks, trajectories with random seeds, random
//! actions and random physics across the declared ranges; observations, rewards, `terminated`
//! and `truncated` equal step by step. `HEADSTART_DIFF_TRAJECTORIES` sets the trajectories per
//! task (200 here).
#![cfg(feature = "python")]

use headstart::env::classic::*;
use headstart::env::python::GymEnv;
use headstart::env::{Action, Env, EnvSpec, Params, Registry, Space};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A native parameter, the Gymnasium attribute it is, and the range drawn from.
struct Param {
    native: &'static str,
    gym: &'static str,
    range: (f64, f64),
}

const fn p(native: &'static str, gym: &'static str, lo: f64, hi: f64) -> Param {
    Param { native, gym, range: (lo, hi) }
}

/// The parameters Gymnasium reads from attributes (Acrobot's and MountainCarContinuous's
/// gravity are constants inside Gymnasium's step, so they stay at their defaults here).
fn params(id: &str) -> Vec<Param> {
    match id {
        "CartPole-v1" => vec![
            p("gravity", "gravity", 4.0, 15.0),
            p("masscart", "masscart", 0.5, 2.0),
            p("masspole", "masspole", 0.05, 0.5),
            p("length", "length", 0.25, 1.0),
            p("force_mag", "force_mag", 5.0, 15.0),
            p("tau", "tau", 0.01, 0.03),
        ],
        "Acrobot-v1" => vec![
            p("link_length_1", "LINK_LENGTH_1", 0.5, 1.5),
            p("link_mass_1", "LINK_MASS_1", 0.5, 2.0),
            p("link_mass_2", "LINK_MASS_2", 0.5, 2.0),
            p("link_com_pos_1", "LINK_COM_POS_1", 0.3, 0.7),
            p("link_com_pos_2", "LINK_COM_POS_2", 0.3, 0.7),
            p("link_moi", "LINK_MOI", 0.5, 2.0),
        ],
        "MountainCar-v0" => vec![p("force", "force", 0.0005, 0.002), p("gravity", "gravity", 0.001, 0.004)],
        "MountainCarContinuous-v0" => vec![p("power", "power", 0.0008, 0.003)],
        "Pendulum-v1" => vec![
            p("g", "g", 2.0, 15.0),
            p("m", "m", 0.5, 2.0),
            p("l", "l", 0.5, 1.5),
            p("max_speed", "max_speed", 4.0, 12.0),
        ],
        _ => unreachable!(),
    }
}

fn random_action(space: &Space, rng: &mut StdRng) -> Action {
    match space {
        Space::Discrete { n } => Action::Discrete(rng.random_range(0..*n)),
        Space::Box { low, high, .. } => {
            let v: Vec<f32> = low.iter().zip(high).map(|(&l, &h)| rng.random_range(l..=h)).collect();
            Action::continuous(&v)
        }
        Space::Dict { .. } => unreachable!("an action space is never a Dict"),
    }
}

/// A native port whose state can be set to Gymnasium's (the two draw start states from different
/// generators).
trait Port: Env {
    fn put(&mut self, s: &[f64]);
}

macro_rules! port {
    ($ty:ty, $n:literal) => {
        impl Port for $ty {
            fn put(&mut self, s: &[f64]) {
                self.set_state(<[f64; $n]>::try_from(s).expect("the state's size"));
            }
        }
    };
}
port!(CartPole, 4);
port!(Acrobot, 4);
port!(MountainCar, 2);
port!(ContinuousMountainCar, 2);
port!(Pendulum, 2);

fn native(id: &str, params: &Params) -> Box<dyn Port> {
    match id {
        "CartPole-v1" => Box::new(CartPole::new(CartPoleParams::from_overrides(params).unwrap()).unwrap()),
        "Acrobot-v1" => Box::new(Acrobot::new(AcrobotParams::from_overrides(params).unwrap()).unwrap()),
        "MountainCar-v0" => Box::new(MountainCar::new(MountainCarParams::from_overrides(params).unwrap()).unwrap()),
        "MountainCarContinuous-v0" => {
            Box::new(ContinuousMountainCar::new(ContinuousMountainCarParams::from_overrides(params).unwrap()).unwrap())
        }
        "Pendulum-v1" => Box::new(Pendulum::new(PendulumParams::from_overrides(params).unwrap()).unwrap()),
        _ => unreachable!(),
    }
}

#[test]
fn native_ports_step_as_live_gymnasium_does() {
    let trajectories: usize =
        std::env::var("HEADSTART_DIFF_TRAJECTORIES").ok().and_then(|t| t.parse().ok()).unwrap_or(200);
    let mut rng = StdRng::seed_from_u64(2026);
    for id in ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"] {
        let mut steps = 0;
        for trajectory in 0..trajectories {
            let mut spec = EnvSpec::new(id);
            let mut gym = GymEnv::make(&format!("gym:{id}"), &Default::default(), &[], &[], None).unwrap();
            // Half the trajectories at the defaults, half with every parameter drawn.
            if trajectory % 2 == 1 {
                for param in params(id) {
                    let value = rng.random_range(param.range.0..param.range.1);
                    spec = spec.with(param.native, value);
                    gym.set_attribute(param.gym, value).unwrap();
                }
                if id == "CartPole-v1" {
                    // Gymnasium derives these in its constructor.
                    let (mc, mp, l) = (spec.params["masscart"], spec.params["masspole"], spec.params["length"]);
                    gym.set_attribute("total_mass", mp + mc).unwrap();
                    gym.set_attribute("polemass_length", mp * l).unwrap();
                }
            }
            let seed = rng.random::<u32>() as u64;
            gym.reset(Some(seed)).unwrap();
            let mut port = native(id, &spec.params);
            let limit = Registry::builtin().entry(id).unwrap().episode_limit().unwrap();
            port.put(&gym.attribute("state").unwrap());
            for t in 0..limit {
                // Acrobot is chaotic: a last-bit libm difference grows over hundreds of steps, so
                // each of its steps starts from Gymnasium's state (the others' states are float32
                // after a step, as Gymnasium keeps them, and run free).
                if id == "Acrobot-v1" && t > 0 {
                    port.put(&gym.attribute("state").unwrap());
                }
                let action = random_action(port.action_space(), &mut rng);
                let x = port.step(&action).unwrap();
                let y = gym.step(&action).unwrap();
                let at = format!("{spec}, seed {seed}, step {t}, action {action:?}");
                assert_eq!(x.obs, y.obs, "{id} observation at {at}");
                assert_eq!(x.reward as f32, y.reward as f32, "{id} reward at {at}");
                let truncated = t + 1 == limit && !x.terminated;
                assert_eq!((x.terminated, truncated), (y.terminated, y.truncated), "{id} end at {at}");
                steps += 1;
                if y.done() {
                    break;
                }
            }
        }
        eprintln!("{id}: {trajectories} trajectories, {steps} steps bit for bit as Gymnasium's");
    }
}
