//! MinAtar (Young & Tian, 2019): five Atari games on a 10x10 grid with one boolean channel per
//! kind of object, ported exactly from the `minatar` package (1.0.15) in native Rust.
//!
//! | id | channels | actions (`-v0` / `-v1`) | ramps |
//! |---|---|---|---|
//! | `MinAtar/Asterix-v0`, `-v1` | 4: player, enemy, trail, gold | 6 / 5 | spawn and move speeds, every `ramp_interval` frames |
//! | `MinAtar/Breakout-v0`, `-v1` | 4: paddle, ball, trail, brick | 6 / 3 | no |
//! | `MinAtar/Freeway-v0`, `-v1` | 7: chicken, car, speed 1-5 | 6 / 3 | no |
//! | `MinAtar/Seaquest-v0`, `-v1` | 10: sub front and back, bullets, trail, enemies, gauges, diver | 6 / 6 | at every surfacing |
//! | `MinAtar/SpaceInvaders-v0`, `-v1` | 6: cannon, alien, alien left/right, bullets | 6 / 4 | each wave faster |
//!
//! As the package's Gymnasium registration: `-v0` takes the six actions `n l u r d f` (no-op,
//! left, up, right, down, fire), `-v1` the game's minimal set; the observation is
//! `Box(0, 1, (10, 10, channels))` in the package's `(row, column, channel)` order, flattened
//! row-major; no time limit (Freeway ends itself after `time_limit` frames). Every parameter is a
//! variant's: `sticky_action_prob` (default 0.1: with that probability the previous action is
//! repeated), `difficulty_ramping` (0 or 1), and each game's speeds and intervals under the
//! package's names.
//!
//! Randomness is NumPy's legacy `RandomState` ([`numpy_rng`]), one stream shared by sticky
//! actions and the game, seeded at `reset(Some(seed))` as `env.reset(seed=seed)` seeds the
//! package's: the same seed and actions give the package's trajectory bit for bit
//! (`tests/minatar.rs`, golden trajectories recorded from the package, and the package itself
//! through the Gymnasium bridge on other seeds). Like the package, the previous action (for
//! sticky actions) carries over from one episode to the next.

pub mod asterix;
pub mod breakout;
pub mod freeway;
pub mod numpy_rng;
pub mod seaquest;
pub mod space_invaders;

use numpy_rng::RandomState;

use super::registry::{EnvEntry, Registry};
use crate::env::{Action, Env, EnvError, Info, Obs, Params, Space, Step};

/// The grid's side.
pub const SIZE: usize = 10;

/// The six actions of the full set, in the package's order (`action_map`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Move {
    Noop = 0,
    Left = 1,
    Up = 2,
    Right = 3,
    Down = 4,
    Fire = 5,
}

impl Move {
    const ALL: [Move; 6] = [Move::Noop, Move::Left, Move::Up, Move::Right, Move::Down, Move::Fire];
}

/// One MinAtar game: its state and rules, as the package's `Env` class of that game.
pub trait Game: Send + 'static {
    /// The number of channels of the observation.
    const CHANNELS: usize;
    /// The minimal action set (`-v1`), as indices of [`Move`].
    const MINIMAL: &'static [Move];
    /// A new episode (the game's `reset`), drawing from `rng`.
    fn reset(&mut self, rng: &mut RandomState);
    /// One frame (the game's `act`): the reward and whether the episode ended.
    fn act(&mut self, action: Move, rng: &mut RandomState) -> (f64, bool);
    /// Writes the observation (the game's `state()`) into `obs`, all zeros on entry.
    fn draw(&self, grid: &mut Grid<'_>);
}

/// The observation being drawn: `(row, column, channel)` cells of a flat buffer.
pub struct Grid<'a> {
    cells: &'a mut [f32],
    channels: usize,
}

impl Grid<'_> {
    /// Sets a cell. Columns and rows index as NumPy does: `-1` is the last.
    pub fn set(&mut self, row: i32, col: i32, channel: usize) {
        let wrap = |i: i32| i.rem_euclid(SIZE as i32) as usize;
        self.cells[(wrap(row) * SIZE + wrap(col)) * self.channels + channel] = 1.0;
    }
}

/// A MinAtar game as an environment: sticky actions around the game, as the package's
/// `Environment` wraps it, and its Gymnasium `BaseEnv`'s action set.
pub struct MinAtar<G: Game> {
    game: G,
    rng: RandomState,
    sticky_action_prob: f64,
    last_action: Move,
    action_set: &'static [Move],
    observation_space: Space,
    action_space: Space,
}

impl<G: Game> MinAtar<G> {
    /// The game `game` with sticky actions of probability `sticky_action_prob`, taking the full
    /// set of six actions or the game's minimal set.
    pub fn new(game: G, sticky_action_prob: f64, minimal: bool) -> Self {
        let action_set = if minimal { G::MINIMAL } else { &Move::ALL };
        let cells = SIZE * SIZE * G::CHANNELS;
        MinAtar {
            game,
            rng: RandomState::new(rand::random::<u32>().into()),
            sticky_action_prob,
            last_action: Move::Noop,
            action_set,
            observation_space: Space::Box {
                low: vec![0.0; cells],
                high: vec![1.0; cells],
                shape: vec![SIZE, SIZE, G::CHANNELS],
            },
            action_space: Space::Discrete { n: action_set.len() },
        }
    }

    /// The game's state (for tests).
    pub fn game(&self) -> &G {
        &self.game
    }

    fn obs(&self) -> Obs {
        let mut obs = Obs::from_elem(0.0, SIZE * SIZE * G::CHANNELS);
        self.game.draw(&mut Grid { cells: &mut obs, channels: G::CHANNELS });
        obs
    }
}

impl<G: Game> Env for MinAtar<G> {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        if let Some(seed) = seed {
            self.rng = RandomState::new(seed);
        }
        self.game.reset(&mut self.rng);
        Ok((self.obs(), Info::new()))
    }

    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        let mut action = match action {
            Action::Discrete(a) if *a < self.action_set.len() => self.action_set[*a],
            _ => return Err(self.action_space.reject(action)),
        };
        // The package draws even when the probability is zero: the stream stays the package's.
        if self.rng.rand() < self.sticky_action_prob {
            action = self.last_action;
        }
        self.last_action = action;
        let (reward, terminated) = self.game.act(action, &mut self.rng);
        Ok(Step { obs: self.obs(), reward, terminated, truncated: false, info: Info::new() })
    }
}

/// Whether the game ramps its difficulty (the `difficulty_ramping` parameter).
fn flag(value: f64) -> bool {
    value != 0.0
}

/// A whole-number parameter as the game's integer (ranges are checked as whole numbers first).
fn whole(value: f64) -> i32 {
    value as i32
}

fn register<G: Game>(
    registry: &mut Registry,
    name: &str,
    specs: &'static [crate::env::ParamSpec],
    doc: &str,
    make: fn(&Params) -> Result<(G, f64), EnvError>,
) {
    for (version, minimal) in [("v0", false), ("v1", true)] {
        let set = if minimal { "the minimal action set" } else { "all six actions" };
        registry.register(
            EnvEntry::new(format!("MinAtar/{name}-{version}"), move |p| {
                let (game, sticky) = make(p)?;
                Ok(MinAtar::new(game, sticky, minimal))
            })
            .params(specs)
            .doc(format!("MinAtar {name} ({set}): {doc}")),
        );
    }
}

/// Registers the five games, each as `-v0` (six actions) and `-v1` (minimal action set).
pub(crate) fn register_all(registry: &mut Registry) {
    register(registry, "Asterix", asterix::AsterixParams::SPECS, asterix::DOC, asterix::Asterix::from_params);
    register(registry, "Breakout", breakout::BreakoutParams::SPECS, breakout::DOC, breakout::Breakout::from_params);
    register(registry, "Freeway", freeway::FreewayParams::SPECS, freeway::DOC, freeway::Freeway::from_params);
    register(registry, "Seaquest", seaquest::SeaquestParams::SPECS, seaquest::DOC, seaquest::Seaquest::from_params);
    register(
        registry,
        "SpaceInvaders",
        space_invaders::SpaceInvadersParams::SPECS,
        space_invaders::DOC,
        space_invaders::SpaceInvaders::from_params,
    );
}
