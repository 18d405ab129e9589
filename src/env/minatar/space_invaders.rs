//! MinAtar Space Invaders (`minatar/environments/space_invaders.py`).
//!
//! The player's cannon moves along the bottom row and fires upwards (one shot every
//! `shot_cool_down` frames) at a block of aliens that moves sideways, stepping down and turning
//! at the edges; +1 per alien shot. The nearest alien fires back every `enemy_shot_interval`
//! frames. Aliens move once every `min(aliens left, enemy_move_interval)` frames; each new wave
//! (with ramping) one frame faster, down to 6. An alien or a bullet reaching the cannon ends the
//! episode. Two channels give the aliens' direction.

use super::numpy_rng::RandomState;
use super::{Game, Grid, Move, flag, whole};
use crate::env::{EnvError, Params};

crate::physics_params! {
    /// Space Invaders' parameters; defaults are the package's constants.
    pub struct SpaceInvadersParams for "MinAtar/SpaceInvaders" {
        /// Probability that the previous action is repeated instead of the chosen one.
        sticky_action_prob: 0.1, Within(0.0, 1.0);
        /// Whether each new wave of aliens moves faster (0 or 1).
        difficulty_ramping: 1.0, Flag;
        /// Frames between two shots of the cannon.
        shot_cool_down: 5.0, WholeWithin(0.0, 1.0e9);
        /// Frames between two moves of the first wave of aliens (at most).
        enemy_move_interval: 12.0, WholeWithin(1.0, 1.0e9);
        /// Frames between two shots of the aliens.
        enemy_shot_interval: 10.0, WholeWithin(1.0, 1.0e9);
    }
}

pub(super) const DOC: &str = "shoot a block of aliens that shoots back.";

const CANNON: usize = 0;
const ALIEN: usize = 1;
const ALIEN_LEFT: usize = 2;
const ALIEN_RIGHT: usize = 3;
const FRIENDLY_BULLET: usize = 4;
const ENEMY_BULLET: usize = 5;

type Map = [[bool; 10]; 10];

/// `np.roll(map, shift, axis=0)`: rows move down by `shift`, wrapping.
fn roll_rows(map: &Map, shift: i32) -> Map {
    std::array::from_fn(|i| map[(i as i32 - shift).rem_euclid(10) as usize])
}

/// `np.roll(map, shift, axis=1)`: columns move right by `shift`, wrapping.
fn roll_cols(map: &Map, shift: i32) -> Map {
    map.map(|row| std::array::from_fn(|j| row[(j as i32 - shift).rem_euclid(10) as usize]))
}

fn count(map: &Map) -> i32 {
    map.iter().flatten().filter(|&&b| b).count() as i32
}

fn column_has(map: &Map, col: usize) -> bool {
    map.iter().any(|row| row[col])
}

/// Space Invaders' state.
#[derive(Clone, Debug)]
pub struct SpaceInvaders {
    ramping: bool,
    shot_cool_down: i32,
    first_move_interval: i32,
    enemy_shot_interval: i32,
    pos: i32,
    f_bullets: Map,
    e_bullets: Map,
    aliens: Map,
    alien_dir: i32,
    enemy_move_interval: i32,
    alien_move_timer: i32,
    alien_shot_timer: i32,
    ramp_index: i32,
    shot_timer: i32,
    terminal: bool,
}

impl SpaceInvaders {
    pub(super) fn from_params(p: &Params) -> Result<(Self, f64), EnvError> {
        let p = SpaceInvadersParams::from_overrides(p)?;
        let game = SpaceInvaders {
            ramping: flag(p.difficulty_ramping),
            shot_cool_down: whole(p.shot_cool_down),
            first_move_interval: whole(p.enemy_move_interval),
            enemy_shot_interval: whole(p.enemy_shot_interval),
            pos: 5,
            f_bullets: [[false; 10]; 10],
            e_bullets: [[false; 10]; 10],
            aliens: [[false; 10]; 10],
            alien_dir: -1,
            enemy_move_interval: 0,
            alien_move_timer: 0,
            alien_shot_timer: 0,
            ramp_index: 0,
            shot_timer: 0,
            terminal: false,
        };
        Ok((game, p.sticky_action_prob))
    }

    /// The difficulty ramp's level (the package's `difficulty_ramp()`).
    pub fn ramp_index(&self) -> i32 {
        self.ramp_index
    }

    fn new_wave(&mut self) {
        for row in &mut self.aliens[0..4] {
            row[2..8].fill(true);
        }
    }

    /// The alien that shoots: in the nearest column to `pos` that has one (ties to the left),
    /// the lowest.
    fn nearest_alien(&self) -> Option<(usize, usize)> {
        let mut order: Vec<i32> = (0..10).collect();
        order.sort_by_key(|&x| (x - self.pos).abs());
        order.into_iter().map(|c| c as usize).find(|&c| column_has(&self.aliens, c)).map(|c| {
            let row = (0..10).rev().find(|&r| self.aliens[r][c]).unwrap_or(0);
            (row, c)
        })
    }
}

impl Game for SpaceInvaders {
    const CHANNELS: usize = 6;
    const MINIMAL: &'static [Move] = &[Move::Noop, Move::Left, Move::Right, Move::Fire];

    fn reset(&mut self, _rng: &mut RandomState) {
        self.pos = 5;
        self.f_bullets = [[false; 10]; 10];
        self.e_bullets = [[false; 10]; 10];
        self.aliens = [[false; 10]; 10];
        self.new_wave();
        self.alien_dir = -1;
        self.enemy_move_interval = self.first_move_interval;
        self.alien_move_timer = self.enemy_move_interval;
        self.alien_shot_timer = self.enemy_shot_interval;
        self.ramp_index = 0;
        self.shot_timer = 0;
        self.terminal = false;
    }

    fn act(&mut self, action: Move, _rng: &mut RandomState) -> (f64, bool) {
        let mut r = 0.0;
        if self.terminal {
            return (r, true);
        }
        let pos = |s: &Self| s.pos as usize;
        if action == Move::Fire && self.shot_timer == 0 {
            self.f_bullets[9][pos(self)] = true;
            self.shot_timer = self.shot_cool_down;
        } else if action == Move::Left {
            self.pos = (self.pos - 1).max(0);
        } else if action == Move::Right {
            self.pos = (self.pos + 1).min(9);
        }

        self.f_bullets = roll_rows(&self.f_bullets, -1);
        self.f_bullets[9] = [false; 10];
        self.e_bullets = roll_rows(&self.e_bullets, 1);
        self.e_bullets[0] = [false; 10];
        if self.e_bullets[9][pos(self)] {
            self.terminal = true;
        }

        if self.aliens[9][pos(self)] {
            self.terminal = true;
        }
        if self.alien_move_timer == 0 {
            self.alien_move_timer = count(&self.aliens).min(self.enemy_move_interval);
            if (column_has(&self.aliens, 0) && self.alien_dir < 0) || (column_has(&self.aliens, 9) && self.alien_dir > 0)
            {
                self.alien_dir = -self.alien_dir;
                if self.aliens[9].iter().any(|&a| a) {
                    self.terminal = true;
                }
                self.aliens = roll_rows(&self.aliens, 1);
            } else {
                self.aliens = roll_cols(&self.aliens, self.alien_dir);
            }
            if self.aliens[9][pos(self)] {
                self.terminal = true;
            }
        }
        if self.alien_shot_timer == 0 {
            self.alien_shot_timer = self.enemy_shot_interval;
            // The package indexes the result unchecked; the block is never empty here (a
            // cleared wave is replaced at the end of the frame that cleared it).
            if let Some((row, col)) = self.nearest_alien() {
                self.e_bullets[row][col] = true;
            }
        }

        for (aliens, bullets) in self.aliens.iter_mut().zip(&mut self.f_bullets) {
            for (alien, bullet) in aliens.iter_mut().zip(bullets.iter_mut()) {
                if *alien && *bullet {
                    r += 1.0;
                    *alien = false;
                    *bullet = false;
                }
            }
        }

        self.shot_timer -= (self.shot_timer > 0) as i32;
        self.alien_move_timer -= 1;
        self.alien_shot_timer -= 1;
        if count(&self.aliens) == 0 {
            if self.enemy_move_interval > 6 && self.ramping {
                self.enemy_move_interval -= 1;
                self.ramp_index += 1;
            }
            self.new_wave();
        }
        (r, self.terminal)
    }

    fn draw(&self, grid: &mut Grid<'_>) {
        grid.set(9, self.pos, CANNON);
        let direction = if self.alien_dir < 0 { ALIEN_LEFT } else { ALIEN_RIGHT };
        for (y, ((aliens, fb), eb)) in self.aliens.iter().zip(&self.f_bullets).zip(&self.e_bullets).enumerate() {
            for x in 0..10 {
                let (yi, xi) = (y as i32, x as i32);
                if aliens[x] {
                    grid.set(yi, xi, ALIEN);
                    grid.set(yi, xi, direction);
                }
                if fb[x] {
                    grid.set(yi, xi, FRIENDLY_BULLET);
                }
                if eb[x] {
                    grid.set(yi, xi, ENEMY_BULLET);
                }
            }
        }
    }
}
