//! MinAtar Seaquest (`minatar/environments/seaquest.py`).
//!
//! The player's two-cell submarine moves in the four directions and fires sideways. Enemy fish
//! and submarines (which shoot) cross the rows; +1 per enemy shot. Divers cross too and are
//! picked up on contact (at most 6). Oxygen runs out under water; surfacing with a diver on board
//! refills it and drops one diver; surfacing with 6 drops them all and scores the oxygen left
//! (one point per tenth of the tank); surfacing with none ends the episode, as do an enemy, a
//! bullet or empty oxygen. Each surfacing (with ramping) spawns enemies faster and, every
//! second time, moves them faster.
//!
//! The package keeps its entities in Python lists that it edits while it walks them backwards,
//! removing elements by value (`list.remove` takes the first *equal* element, which need not be
//! the one being walked); [`Objects`] reproduces those semantics so that trajectories match
//! bit for bit, including after such coincidences. Like the package, the diver count drops to
//! -1 after a surfacing with six divers (its gauge then shows none, and a later surfacing with
//! no diver picked up does not end the episode).

use super::numpy_rng::RandomState;
use super::{Game, Grid, Move, flag, whole};
use crate::env::{EnvError, Params};

crate::physics_params! {
    /// Seaquest's parameters; defaults are the package's constants.
    pub struct SeaquestParams for "MinAtar/Seaquest" {
        /// Probability that the previous action is repeated instead of the chosen one.
        sticky_action_prob: 0.1, Within(0.0, 1.0);
        /// Whether enemies spawn and move faster after each surfacing (0 or 1).
        difficulty_ramping: 1.0, Flag;
        /// Frames of oxygen in a full tank.
        max_oxygen: 200.0, WholeWithin(1.0, 1.0e9);
        /// Frames between two enemy spawns at the start.
        init_spawn_speed: 20.0, WholeWithin(0.0, 1.0e9);
        /// Frames between two diver spawns.
        diver_spawn_speed: 30.0, WholeWithin(0.0, 1.0e9);
        /// Frames between two moves of an enemy at the start.
        init_move_interval: 5.0, WholeWithin(0.0, 1.0e9);
        /// Frames between two shots of the player.
        shot_cool_down: 5.0, WholeWithin(0.0, 1.0e9);
        /// Frames between two shots of an enemy submarine.
        enemy_shot_interval: 10.0, WholeWithin(0.0, 1.0e9);
        /// Frames between two moves of a diver.
        diver_move_interval: 5.0, WholeWithin(0.0, 1.0e9);
    }
}

pub(super) const DOC: &str = "shoot fish and submarines, rescue divers, and surface for oxygen.";

const SUB_FRONT: usize = 0;
const SUB_BACK: usize = 1;
const FRIENDLY_BULLET: usize = 2;
const TRAIL: usize = 3;
const ENEMY_BULLET: usize = 4;
const ENEMY_FISH: usize = 5;
const ENEMY_SUB: usize = 6;
const OXYGEN_GAUGE: usize = 7;
const DIVER_GAUGE: usize = 8;
const DIVER: usize = 9;

/// A Python list of mutable lists of integers: elements are compared by value, but each has an
/// identity, so that an element being walked keeps its place (or is known gone) when
/// `remove` takes an equal one before it.
#[derive(Clone, Debug, Default)]
pub struct Objects<const K: usize> {
    items: Vec<(u64, [i32; K])>,
    next_id: u64,
}

impl<const K: usize> Objects<K> {
    fn push(&mut self, value: [i32; K]) {
        self.items.push((self.next_id, value));
        self.next_id += 1;
    }

    /// `list.remove(value)`: the first element equal to `value`.
    fn remove(&mut self, value: &[i32; K]) {
        if let Some(k) = self.items.iter().position(|(_, v)| v == value) {
            self.items.remove(k);
        }
    }

    /// Writes an element's new value, if it is still in the list.
    fn store(&mut self, id: u64, value: [i32; K]) {
        if let Some(item) = self.items.iter_mut().find(|(i, _)| *i == id) {
            item.1 = value;
        }
    }

    /// Python's `reversed(list)` while the list changes: the index walks down from the end and
    /// stops when it falls outside the list.
    fn at_reversed(&self, index: isize) -> Option<(u64, [i32; K])> {
        usize::try_from(index).ok().and_then(|i| self.items.get(i)).copied()
    }

    /// The first element at `(x, y)` (the package's `v[0:2] == [x, y]`), copied.
    fn first_at(&self, x: i32, y: i32) -> Option<[i32; K]> {
        self.values().find(|v| v[0] == x && v[1] == y).copied()
    }

    fn values(&self) -> impl Iterator<Item = &[i32; K]> {
        self.items.iter().map(|(_, v)| v)
    }

    fn clear(&mut self) {
        self.items.clear();
    }
}

/// Walks `$list` as `for $item in reversed($list)` does while the body edits the list; the body
/// sees a copy `$item` of the element and its identity `$id`.
macro_rules! walk_reversed {
    ($self:ident . $list:ident, |$id:ident, $item:ident| $body:block) => {{
        let mut index = $self.$list.items.len() as isize - 1;
        while let Some(($id, mut $item)) = $self.$list.at_reversed(index) {
            index -= 1;
            $body
        }
    }};
}

/// Seaquest's state.
#[derive(Clone, Debug)]
pub struct Seaquest {
    ramping: bool,
    max_oxygen: i32,
    init_spawn_speed: i32,
    diver_spawn_speed: i32,
    init_move_interval: i32,
    shot_cool_down: i32,
    enemy_shot_interval: i32,
    diver_move_interval: i32,
    oxygen: i32,
    diver_count: i32,
    sub_x: i32,
    sub_y: i32,
    sub_or: bool,
    /// `[x, y, moves right]`.
    f_bullets: Objects<3>,
    /// `[x, y, moves right]`.
    e_bullets: Objects<3>,
    /// `[x, y, moves right, move timer]`.
    e_fish: Objects<4>,
    /// `[x, y, moves right, move timer, shot timer]`.
    e_subs: Objects<5>,
    /// `[x, y, moves right, move timer]`.
    divers: Objects<4>,
    e_spawn_speed: i32,
    e_spawn_timer: i32,
    d_spawn_timer: i32,
    move_speed: i32,
    ramp_index: i32,
    shot_timer: i32,
    surface: bool,
    terminal: bool,
}

fn step_x(x: i32, right: i32) -> i32 {
    x + if right != 0 { 1 } else { -1 }
}

fn off_screen(x: i32) -> bool {
    !(0..=9).contains(&x)
}

impl Seaquest {
    pub(super) fn from_params(p: &Params) -> Result<(Self, f64), EnvError> {
        let p = SeaquestParams::from_overrides(p)?;
        let game = Seaquest {
            ramping: flag(p.difficulty_ramping),
            max_oxygen: whole(p.max_oxygen),
            init_spawn_speed: whole(p.init_spawn_speed),
            diver_spawn_speed: whole(p.diver_spawn_speed),
            init_move_interval: whole(p.init_move_interval),
            shot_cool_down: whole(p.shot_cool_down),
            enemy_shot_interval: whole(p.enemy_shot_interval),
            diver_move_interval: whole(p.diver_move_interval),
            oxygen: 0,
            diver_count: 0,
            sub_x: 5,
            sub_y: 0,
            sub_or: false,
            f_bullets: Objects::default(),
            e_bullets: Objects::default(),
            e_fish: Objects::default(),
            e_subs: Objects::default(),
            divers: Objects::default(),
            e_spawn_speed: 0,
            e_spawn_timer: 0,
            d_spawn_timer: 0,
            move_speed: 0,
            ramp_index: 0,
            shot_timer: 0,
            surface: true,
            terminal: false,
        };
        Ok((game, p.sticky_action_prob))
    }

    /// The difficulty ramp's level (the package's `difficulty_ramp()`).
    pub fn ramp_index(&self) -> i32 {
        self.ramp_index
    }

    fn at_sub(&self, x: i32, y: i32) -> bool {
        x == self.sub_x && y == self.sub_y
    }

    fn spawn_enemy(&mut self, rng: &mut RandomState) {
        let lr = (rng.rand() < 1.0 / 2.0) as i32;
        let is_sub = rng.rand() < 1.0 / 3.0;
        let x = if lr != 0 { 0 } else { 9 };
        let y = rng.randint(1, 9) as i32;
        let rows = self.e_subs.values().map(|s| (s[1], s[2])).chain(self.e_fish.values().map(|f| (f[1], f[2])));
        if rows.into_iter().any(|(row, right)| row == y && right != lr) {
            return;
        }
        if is_sub {
            self.e_subs.push([x, y, lr, self.move_speed, self.enemy_shot_interval]);
        } else {
            self.e_fish.push([x, y, lr, self.move_speed]);
        }
    }

    fn spawn_diver(&mut self, rng: &mut RandomState) {
        let lr = (rng.rand() < 1.0 / 2.0) as i32;
        let x = if lr != 0 { 0 } else { 9 };
        let y = rng.randint(1, 9) as i32;
        self.divers.push([x, y, lr, self.diver_move_interval]);
    }

    fn surface(&mut self) -> f64 {
        self.surface = true;
        let r = if self.diver_count == 6 {
            self.diver_count = 0;
            (self.oxygen * 10).div_euclid(self.max_oxygen)
        } else {
            0
        };
        self.oxygen = self.max_oxygen;
        self.diver_count -= 1;
        if self.ramping && (self.e_spawn_speed > 1 || self.move_speed > 2) {
            if self.move_speed > 2 && self.ramp_index % 2 == 1 {
                self.move_speed -= 1;
            }
            if self.e_spawn_speed > 1 {
                self.e_spawn_speed -= 1;
            }
            self.ramp_index += 1;
        }
        f64::from(r)
    }

    fn update_friendly_bullets(&mut self, r: &mut f64) {
        walk_reversed!(self.f_bullets, |id, bullet| {
            bullet[0] = step_x(bullet[0], bullet[2]);
            self.f_bullets.store(id, bullet);
            if off_screen(bullet[0]) {
                self.f_bullets.remove(&bullet);
                continue;
            }
            if let Some(fish) = self.e_fish.first_at(bullet[0], bullet[1]) {
                self.e_fish.remove(&fish);
                self.f_bullets.remove(&bullet);
                *r += 1.0;
            } else if let Some(sub) = self.e_subs.first_at(bullet[0], bullet[1]) {
                self.e_subs.remove(&sub);
                self.f_bullets.remove(&bullet);
                *r += 1.0;
            }
        });
    }

    fn update_divers(&mut self) {
        walk_reversed!(self.divers, |id, diver| {
            if self.at_sub(diver[0], diver[1]) && self.diver_count < 6 {
                self.divers.remove(&diver);
                self.diver_count += 1;
            } else if diver[3] == 0 {
                diver[3] = self.diver_move_interval;
                diver[0] = step_x(diver[0], diver[2]);
                self.divers.store(id, diver);
                if off_screen(diver[0]) {
                    self.divers.remove(&diver);
                } else if self.at_sub(diver[0], diver[1]) && self.diver_count < 6 {
                    self.divers.remove(&diver);
                    self.diver_count += 1;
                }
            } else {
                diver[3] -= 1;
                self.divers.store(id, diver);
            }
        });
    }

    /// A moving enemy that reaches a friendly bullet is shot: both go, +1.
    fn shot_by_bullet(&mut self, x: i32, y: i32) -> bool {
        match self.f_bullets.first_at(x, y) {
            Some(bullet) => {
                self.f_bullets.remove(&bullet);
                true
            }
            None => false,
        }
    }

    /// One frame of an enemy (a fish or a sub) being walked: touching the player's sub ends the
    /// episode; when its move timer runs out it steps, and leaves the screen, reaches the sub or
    /// is shot by a friendly bullet (+1).
    fn advance_enemy<const K: usize>(
        &mut self,
        list: fn(&mut Self) -> &mut Objects<K>,
        id: u64,
        enemy: &mut [i32; K],
        r: &mut f64,
    ) {
        if self.at_sub(enemy[0], enemy[1]) {
            self.terminal = true;
        }
        if enemy[3] == 0 {
            enemy[3] = self.move_speed;
            enemy[0] = step_x(enemy[0], enemy[2]);
            list(self).store(id, *enemy);
            if off_screen(enemy[0]) {
                list(self).remove(enemy);
            } else if self.at_sub(enemy[0], enemy[1]) {
                self.terminal = true;
            } else if self.shot_by_bullet(enemy[0], enemy[1]) {
                list(self).remove(enemy);
                *r += 1.0;
            }
        } else {
            enemy[3] -= 1;
            list(self).store(id, *enemy);
        }
    }

    fn update_subs(&mut self, r: &mut f64) {
        walk_reversed!(self.e_subs, |id, sub| {
            self.advance_enemy(|s| &mut s.e_subs, id, &mut sub, r);
            // The package goes on with the object even when it was just removed: it still shoots.
            if sub[4] == 0 {
                sub[4] = self.enemy_shot_interval;
                self.e_bullets.push([sub[0], sub[1], sub[2]]);
            } else {
                sub[4] -= 1;
            }
            self.e_subs.store(id, sub);
        });
    }

    fn update_enemy_bullets(&mut self) {
        walk_reversed!(self.e_bullets, |id, bullet| {
            if self.at_sub(bullet[0], bullet[1]) {
                self.terminal = true;
            }
            bullet[0] = step_x(bullet[0], bullet[2]);
            self.e_bullets.store(id, bullet);
            if off_screen(bullet[0]) {
                self.e_bullets.remove(&bullet);
            } else if self.at_sub(bullet[0], bullet[1]) {
                self.terminal = true;
            }
        });
    }

    fn update_fish(&mut self, r: &mut f64) {
        walk_reversed!(self.e_fish, |id, fish| {
            self.advance_enemy(|s| &mut s.e_fish, id, &mut fish, r);
        });
    }
}

impl Game for Seaquest {
    const CHANNELS: usize = 10;
    const MINIMAL: &'static [Move] = &[Move::Noop, Move::Left, Move::Up, Move::Right, Move::Down, Move::Fire];

    fn reset(&mut self, _rng: &mut RandomState) {
        self.oxygen = self.max_oxygen;
        self.diver_count = 0;
        self.sub_x = 5;
        self.sub_y = 0;
        self.sub_or = false;
        self.f_bullets.clear();
        self.e_bullets.clear();
        self.e_fish.clear();
        self.e_subs.clear();
        self.divers.clear();
        self.e_spawn_speed = self.init_spawn_speed;
        self.e_spawn_timer = self.e_spawn_speed;
        self.d_spawn_timer = self.diver_spawn_speed;
        self.move_speed = self.init_move_interval;
        self.ramp_index = 0;
        self.shot_timer = 0;
        self.surface = true;
        self.terminal = false;
    }

    fn act(&mut self, action: Move, rng: &mut RandomState) -> (f64, bool) {
        let mut r = 0.0;
        if self.terminal {
            return (r, true);
        }
        if self.e_spawn_timer == 0 {
            self.spawn_enemy(rng);
            self.e_spawn_timer = self.e_spawn_speed;
        }
        if self.d_spawn_timer == 0 {
            self.spawn_diver(rng);
            self.d_spawn_timer = self.diver_spawn_speed;
        }
        match action {
            Move::Fire if self.shot_timer == 0 => {
                self.f_bullets.push([self.sub_x, self.sub_y, self.sub_or as i32]);
                self.shot_timer = self.shot_cool_down;
            }
            Move::Left => {
                self.sub_x = (self.sub_x - 1).max(0);
                self.sub_or = false;
            }
            Move::Right => {
                self.sub_x = (self.sub_x + 1).min(9);
                self.sub_or = true;
            }
            Move::Up => self.sub_y = (self.sub_y - 1).max(0),
            Move::Down => self.sub_y = (self.sub_y + 1).min(8),
            _ => {}
        }
        self.update_friendly_bullets(&mut r);
        self.update_divers();
        self.update_subs(&mut r);
        self.update_enemy_bullets();
        self.update_fish(&mut r);

        self.e_spawn_timer -= (self.e_spawn_timer > 0) as i32;
        self.d_spawn_timer -= (self.d_spawn_timer > 0) as i32;
        self.shot_timer -= (self.shot_timer > 0) as i32;
        if self.oxygen <= 0 {
            self.terminal = true;
        }
        if self.sub_y > 0 {
            self.oxygen -= 1;
            self.surface = false;
        } else if !self.surface {
            if self.diver_count == 0 {
                self.terminal = true;
            } else {
                r += self.surface();
            }
        }
        (r, self.terminal)
    }

    fn draw(&self, grid: &mut Grid<'_>) {
        grid.set(self.sub_y, self.sub_x, SUB_FRONT);
        let back_x = if self.sub_or { self.sub_x - 1 } else { self.sub_x + 1 };
        grid.set(self.sub_y, back_x, SUB_BACK);
        for x in 0..(self.oxygen.max(0) * 10).div_euclid(self.max_oxygen).min(10) {
            grid.set(9, x, OXYGEN_GAUGE);
        }
        for x in (9 - self.diver_count).max(0)..9 {
            grid.set(9, x, DIVER_GAUGE);
        }
        for b in self.f_bullets.values() {
            grid.set(b[1], b[0], FRIENDLY_BULLET);
        }
        for b in self.e_bullets.values() {
            grid.set(b[1], b[0], ENEMY_BULLET);
        }
        let movers = [
            (self.e_fish.values().map(|f| [f[0], f[1], f[2]]).collect::<Vec<_>>(), ENEMY_FISH),
            (self.e_subs.values().map(|s| [s[0], s[1], s[2]]).collect(), ENEMY_SUB),
            (self.divers.values().map(|d| [d[0], d[1], d[2]]).collect(), DIVER),
        ];
        for (entities, channel) in movers {
            for [x, y, right] in entities {
                grid.set(y, x, channel);
                let back_x = if right != 0 { x - 1 } else { x + 1 };
                if (0..=9).contains(&back_x) {
                    grid.set(y, back_x, TRAIL);
                }
            }
        }
    }
}
