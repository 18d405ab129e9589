//! MinAtar Breakout (`minatar/environments/breakout.py`).
//!
//! The player moves a paddle along the bottom row to bounce a ball, which travels only along
//! diagonals, into three rows of bricks at the top; +1 per brick broken. When every brick is
//! gone, three new rows appear. The ball's last cell is the trail channel. The episode ends when
//! the ball reaches the bottom row past the paddle. The ball starts at row 3 in the left or
//! right column, moving down and away from its wall (one `randint(2)`).

use super::numpy_rng::RandomState;
use super::{Game, Grid, Move};
use crate::env::{EnvError, Params};

crate::physics_params! {
    /// Breakout's parameters (it has no difficulty ramp: `difficulty_ramping` is accepted and
    /// changes nothing, as in the package).
    pub struct BreakoutParams for "MinAtar/Breakout" {
        /// Probability that the previous action is repeated instead of the chosen one.
        sticky_action_prob: 0.1, Within(0.0, 1.0);
        /// Whether the game speeds up as it goes (0 or 1).
        difficulty_ramping: 1.0, Flag;
    }
}

pub(super) const DOC: &str = "bounce a ball into bricks with a paddle.";

const PADDLE: usize = 0;
const BALL: usize = 1;
const TRAIL: usize = 2;
const BRICK: usize = 3;

/// Breakout's state.
#[derive(Clone, Debug, Default)]
pub struct Breakout {
    ball_x: i32,
    ball_y: i32,
    ball_dir: usize,
    pos: i32,
    bricks: [[bool; 10]; 10],
    strike: bool,
    last_x: i32,
    last_y: i32,
    terminal: bool,
}

impl Breakout {
    pub(super) fn from_params(p: &Params) -> Result<(Self, f64), EnvError> {
        let p = BreakoutParams::from_overrides(p)?;
        Ok((Breakout::default(), p.sticky_action_prob))
    }

    fn fill_bricks(&mut self) {
        for row in &mut self.bricks[1..4] {
            *row = [true; 10];
        }
    }
}

impl Game for Breakout {
    const CHANNELS: usize = 4;
    const MINIMAL: &'static [Move] = &[Move::Noop, Move::Left, Move::Right];

    fn reset(&mut self, rng: &mut RandomState) {
        self.ball_y = 3;
        (self.ball_x, self.ball_dir) = if rng.randint(0, 2) == 0 { (0, 2) } else { (9, 3) };
        self.pos = 4;
        self.bricks = [[false; 10]; 10];
        self.fill_bricks();
        self.strike = false;
        self.last_x = self.ball_x;
        self.last_y = self.ball_y;
        self.terminal = false;
    }

    fn act(&mut self, action: Move, _rng: &mut RandomState) -> (f64, bool) {
        let mut r = 0.0;
        if self.terminal {
            return (r, true);
        }
        match action {
            Move::Left => self.pos = (self.pos - 1).max(0),
            Move::Right => self.pos = (self.pos + 1).min(9),
            _ => {}
        }
        self.last_x = self.ball_x;
        self.last_y = self.ball_y;
        let (dx, dy) = [(-1, -1), (1, -1), (1, 1), (-1, 1)][self.ball_dir];
        let (mut new_x, mut new_y) = (self.ball_x + dx, self.ball_y + dy);

        let mut strike_toggle = false;
        if !(0..=9).contains(&new_x) {
            new_x = new_x.clamp(0, 9);
            self.ball_dir = [1, 0, 3, 2][self.ball_dir];
        }
        if new_y < 0 {
            new_y = 0;
            self.ball_dir = [3, 2, 1, 0][self.ball_dir];
        } else if self.bricks[new_y as usize][new_x as usize] {
            strike_toggle = true;
            if !self.strike {
                r += 1.0;
                self.strike = true;
                self.bricks[new_y as usize][new_x as usize] = false;
                new_y = self.last_y;
                self.ball_dir = [3, 2, 1, 0][self.ball_dir];
            }
        } else if new_y == 9 {
            if self.bricks.iter().flatten().all(|b| !b) {
                self.fill_bricks();
            }
            if self.ball_x == self.pos {
                self.ball_dir = [3, 2, 1, 0][self.ball_dir];
                new_y = self.last_y;
            } else if new_x == self.pos {
                self.ball_dir = [2, 3, 0, 1][self.ball_dir];
                new_y = self.last_y;
            } else {
                self.terminal = true;
            }
        }
        if !strike_toggle {
            self.strike = false;
        }
        self.ball_x = new_x;
        self.ball_y = new_y;
        (r, self.terminal)
    }

    fn draw(&self, grid: &mut Grid<'_>) {
        grid.set(self.ball_y, self.ball_x, BALL);
        grid.set(9, self.pos, PADDLE);
        grid.set(self.last_y, self.last_x, TRAIL);
        for (y, row) in self.bricks.iter().enumerate() {
            for (x, &brick) in row.iter().enumerate() {
                if brick {
                    grid.set(y as i32, x as i32, BRICK);
                }
            }
        }
    }
}
