//! MinAtar Asterix (`minatar/environments/asterix.py`).
//!
//! The player moves in the four directions between rows 1 and 8. Enemies and gold spawn at
//! either side of a free row and cross it; +1 per gold picked up; touching an enemy ends the
//! episode. A trail channel behind each entity gives its direction. With ramping, every
//! `ramp_interval` frames the spawn interval shrinks by one, and every second time the move
//! interval too, down to 1.

use super::numpy_rng::RandomState;
use super::{Game, Grid, Move, flag, whole};
use crate::env::{EnvError, Params};

crate::physics_params! {
    /// Asterix's parameters; defaults are the package's constants.
    pub struct AsterixParams for "MinAtar/Asterix" {
        /// Probability that the previous action is repeated instead of the chosen one.
        sticky_action_prob: 0.1, Within(0.0, 1.0);
        /// Whether spawning and moving speed up as the episode goes (0 or 1).
        difficulty_ramping: 1.0, Flag;
        /// Frames between two steps of the difficulty ramp.
        ramp_interval: 100.0, WholeWithin(0.0, 1.0e9);
        /// Frames between two spawns at the start.
        init_spawn_speed: 10.0, WholeWithin(1.0, 1.0e9);
        /// Frames between two moves of the entities at the start.
        init_move_interval: 5.0, WholeWithin(1.0, 1.0e9);
    }
}

pub(super) const DOC: &str = "collect gold and dodge enemies that cross the screen.";

const PLAYER: usize = 0;
const ENEMY: usize = 1;
const TRAIL: usize = 2;
const GOLD: usize = 3;

/// An entity: `[x, row, moves right, is gold]`.
type Entity = [i32; 4];

/// Asterix's state.
#[derive(Clone, Debug)]
pub struct Asterix {
    ramping: bool,
    ramp_interval: i32,
    init_spawn_speed: i32,
    init_move_interval: i32,
    player_x: i32,
    player_y: i32,
    entities: [Option<Entity>; 8],
    spawn_speed: i32,
    spawn_timer: i32,
    move_speed: i32,
    move_timer: i32,
    ramp_timer: i32,
    ramp_index: i32,
    terminal: bool,
}

impl Asterix {
    pub(super) fn from_params(p: &Params) -> Result<(Self, f64), EnvError> {
        let p = AsterixParams::from_overrides(p)?;
        let game = Asterix {
            ramping: flag(p.difficulty_ramping),
            ramp_interval: whole(p.ramp_interval),
            init_spawn_speed: whole(p.init_spawn_speed),
            init_move_interval: whole(p.init_move_interval),
            player_x: 5,
            player_y: 5,
            entities: [None; 8],
            spawn_speed: 0,
            spawn_timer: 0,
            move_speed: 0,
            move_timer: 0,
            ramp_timer: 0,
            ramp_index: 0,
            terminal: false,
        };
        Ok((game, p.sticky_action_prob))
    }

    /// The difficulty ramp's level (the package's `difficulty_ramp()`).
    pub fn ramp_index(&self) -> i32 {
        self.ramp_index
    }

    fn spawn_entity(&mut self, rng: &mut RandomState) {
        let lr = rng.rand() < 1.0 / 2.0;
        let is_gold = rng.rand() < 1.0 / 3.0;
        let x = if lr { 0 } else { 9 };
        let free: Vec<usize> = (0..8).filter(|&i| self.entities[i].is_none()).collect();
        if free.is_empty() {
            return;
        }
        let slot = free[rng.randint(0, free.len() as i64) as usize];
        self.entities[slot] = Some([x, slot as i32 + 1, lr as i32, is_gold as i32]);
    }

    /// An entity at the player's cell: gold is collected, an enemy ends the episode.
    fn touch(&mut self, i: usize, r: &mut f64) {
        if let Some(e) = self.entities[i]
            && e[0] == self.player_x
            && e[1] == self.player_y
        {
            if e[3] != 0 {
                self.entities[i] = None;
                *r += 1.0;
            } else {
                self.terminal = true;
            }
        }
    }
}

impl Game for Asterix {
    const CHANNELS: usize = 4;
    const MINIMAL: &'static [Move] = &[Move::Noop, Move::Left, Move::Up, Move::Right, Move::Down];

    fn reset(&mut self, _rng: &mut RandomState) {
        self.player_x = 5;
        self.player_y = 5;
        self.entities = [None; 8];
        self.spawn_speed = self.init_spawn_speed;
        self.spawn_timer = self.spawn_speed;
        self.move_speed = self.init_move_interval;
        self.move_timer = self.move_speed;
        self.ramp_timer = self.ramp_interval;
        self.ramp_index = 0;
        self.terminal = false;
    }

    fn act(&mut self, action: Move, rng: &mut RandomState) -> (f64, bool) {
        let mut r = 0.0;
        if self.terminal {
            return (r, true);
        }
        if self.spawn_timer == 0 {
            self.spawn_entity(rng);
            self.spawn_timer = self.spawn_speed;
        }
        match action {
            Move::Left => self.player_x = (self.player_x - 1).max(0),
            Move::Right => self.player_x = (self.player_x + 1).min(9),
            Move::Up => self.player_y = (self.player_y - 1).max(1),
            Move::Down => self.player_y = (self.player_y + 1).min(8),
            _ => {}
        }
        for i in 0..8 {
            self.touch(i, &mut r);
        }
        if self.move_timer == 0 {
            self.move_timer = self.move_speed;
            for i in 0..8 {
                if let Some(e) = &mut self.entities[i] {
                    e[0] += if e[2] != 0 { 1 } else { -1 };
                    if !(0..=9).contains(&e[0]) {
                        self.entities[i] = None;
                    }
                    self.touch(i, &mut r);
                }
            }
        }
        self.spawn_timer -= 1;
        self.move_timer -= 1;

        if self.ramping && (self.spawn_speed > 1 || self.move_speed > 1) {
            if self.ramp_timer >= 0 {
                self.ramp_timer -= 1;
            } else {
                if self.move_speed > 1 && self.ramp_index % 2 == 1 {
                    self.move_speed -= 1;
                }
                if self.spawn_speed > 1 {
                    self.spawn_speed -= 1;
                }
                self.ramp_index += 1;
                self.ramp_timer = self.ramp_interval;
            }
        }
        (r, self.terminal)
    }

    fn draw(&self, grid: &mut Grid<'_>) {
        grid.set(self.player_y, self.player_x, PLAYER);
        for e in self.entities.iter().flatten() {
            grid.set(e[1], e[0], if e[3] != 0 { GOLD } else { ENEMY });
            let back_x = if e[2] != 0 { e[0] - 1 } else { e[0] + 1 };
            if (0..=9).contains(&back_x) {
                grid.set(e[1], back_x, TRAIL);
            }
        }
    }
}
