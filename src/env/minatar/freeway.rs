//! MinAtar Freeway (`minatar/environments/freeway.py`).
//!
//! The chicken starts at the bottom and moves only up and down, at most once every
//! `player_speed` frames; +1 on reaching the top, after which it returns to the bottom and the
//! cars' speeds are drawn again. Eight cars, one per lane, move horizontally and wrap around; a
//! car that hits the chicken sends it back to the bottom. A car's trail channel (speed 1 to 5,
//! behind it) gives its direction and how often it moves. The episode ends after `time_limit`
//! frames.

use super::numpy_rng::RandomState;
use super::{Game, Grid, Move, whole};
use crate::env::{EnvError, Params};

crate::physics_params! {
    /// Freeway's parameters; defaults are the package's constants.
    pub struct FreewayParams for "MinAtar/Freeway" {
        /// Probability that the previous action is repeated instead of the chosen one.
        sticky_action_prob: 0.1, Within(0.0, 1.0);
        /// Whether the game speeds up as it goes (0 or 1; Freeway does not ramp).
        difficulty_ramping: 1.0, Flag;
        /// Frames between two moves of the chicken.
        player_speed: 3.0, WholeWithin(0.0, 1000.0);
        /// Frames until the episode ends.
        time_limit: 2500.0, WholeWithin(1.0, 1.0e9);
    }
}

pub(super) const DOC: &str = "cross a road of eight lanes of traffic, again and again.";

const CHICKEN: usize = 0;
const CAR: usize = 1;
const SPEED1: usize = 2;

/// A car: `[x, lane, frames until it moves, signed speed]`.
type Car = [i32; 4];

/// Freeway's state.
#[derive(Clone, Debug)]
pub struct Freeway {
    player_speed: i32,
    time_limit: i32,
    cars: [Car; 8],
    pos: i32,
    move_timer: i32,
    terminate_timer: i32,
    terminal: bool,
}

impl Freeway {
    pub(super) fn from_params(p: &Params) -> Result<(Self, f64), EnvError> {
        let p = FreewayParams::from_overrides(p)?;
        let game = Freeway {
            player_speed: whole(p.player_speed),
            time_limit: whole(p.time_limit),
            cars: [[0; 4]; 8],
            pos: 9,
            move_timer: 0,
            terminate_timer: 0,
            terminal: false,
        };
        Ok((game, p.sticky_action_prob))
    }

    fn randomize_cars(&mut self, rng: &mut RandomState, initialize: bool) {
        let speeds: [i32; 8] = std::array::from_fn(|_| rng.randint(1, 6) as i32);
        // np.sign(rand - 0.5): an exact 0.5 (probability 2^-53) gives a car that never moves.
        let directions: [i32; 8] = std::array::from_fn(|_| {
            let u = rng.rand() - 0.5;
            (u > 0.0) as i32 - (u < 0.0) as i32
        });
        for (i, car) in self.cars.iter_mut().enumerate() {
            let speed = speeds[i] * directions[i];
            if initialize {
                *car = [0, i as i32 + 1, speed.abs(), speed];
            } else {
                car[2] = speed.abs();
                car[3] = speed;
            }
        }
    }
}

impl Game for Freeway {
    const CHANNELS: usize = 7;
    const MINIMAL: &'static [Move] = &[Move::Noop, Move::Up, Move::Down];

    fn reset(&mut self, rng: &mut RandomState) {
        self.randomize_cars(rng, true);
        self.pos = 9;
        self.move_timer = self.player_speed;
        self.terminate_timer = self.time_limit;
        self.terminal = false;
    }

    fn act(&mut self, action: Move, rng: &mut RandomState) -> (f64, bool) {
        let mut r = 0.0;
        if self.terminal {
            return (r, true);
        }
        if action == Move::Up && self.move_timer == 0 {
            self.move_timer = self.player_speed;
            self.pos = (self.pos - 1).max(0);
        } else if action == Move::Down && self.move_timer == 0 {
            self.move_timer = self.player_speed;
            self.pos = (self.pos + 1).min(9);
        }
        if self.pos == 0 {
            r += 1.0;
            self.randomize_cars(rng, false);
            self.pos = 9;
        }
        for car in &mut self.cars {
            if car[0] == 4 && car[1] == self.pos {
                self.pos = 9;
            }
            if car[2] == 0 {
                car[2] = car[3].abs();
                car[0] += if car[3] > 0 { 1 } else { -1 };
                if car[0] < 0 {
                    car[0] = 9;
                } else if car[0] > 9 {
                    car[0] = 0;
                }
                if car[0] == 4 && car[1] == self.pos {
                    self.pos = 9;
                }
            } else {
                car[2] -= 1;
            }
        }
        self.move_timer -= (self.move_timer > 0) as i32;
        self.terminate_timer -= 1;
        if self.terminate_timer < 0 {
            self.terminal = true;
        }
        (r, self.terminal)
    }

    fn draw(&self, grid: &mut Grid<'_>) {
        grid.set(self.pos, 4, CHICKEN);
        for car in &self.cars {
            grid.set(car[1], car[0], CAR);
            let mut back_x = if car[3] > 0 { car[0] - 1 } else { car[0] + 1 };
            if back_x < 0 {
                back_x = 9;
            } else if back_x > 9 {
                back_x = 0;
            }
            let speed = car[3].unsigned_abs() as usize;
            if (1..=5).contains(&speed) {
                grid.set(car[1], back_x, SPEED1 + speed - 1);
            }
        }
    }
}
