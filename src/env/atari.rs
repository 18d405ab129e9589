//! The standard Atari preprocessing (Stable-Baselines3's `AtariWrapper`, after Mnih et al. 2015
//! and Machado et al. 2018), over an Arcade Learning Environment game from the bridge
//! (`gym:ALE/Breakout-v5` with `frameskip: 1`, or `gym:BreakoutNoFrameskip-v4`), in SB3's order:
//!
//! 1. **noop reset**: each game starts with 1 to `noop_max` no-op actions (action 0), drawn
//!    from the wrapper's generator (seeded by `reset(Some(seed))`);
//! 2. **frame skip**: each action repeated `frame_skip` times, the rewards summed, the
//!    observation the pixel-wise maximum of the last two frames (Atari sprites flicker);
//! 3. **episodic life**: losing a life ends the episode for the agent (`terminated`) while the
//!    game goes on: the next `reset` takes one no-op step instead of restarting the game;
//! 4. **fire reset** (off by default; SB3 turns it on where action 1 is `FIRE`): actions 1
//!    then 2 after each reset;
//! 5. **warp**: RGB to grey as OpenCV's `COLOR_RGB2GRAY` (fixed point), resized to
//!    `screen_size`² by area averaging as `INTER_AREA`: an image `(screen, screen, 1)` of bytes;
//! 6. **clipped reward**: the reward's sign.
//!
//! Every step's info carries `raw_reward`, the unclipped reward, and `game_over` (0 where the
//! episode ended on a lost life, 1 where the game ended): evaluation sums raw rewards over
//! whole games ([`crate::agent::evaluate`]), as SB3's `Monitor` below the wrapper reports them.

use serde::{Deserialize, Serialize};

use super::{Action, Env, EnvError, EnvRng, Info, Obs, Space, Step};

/// The preprocessing's settings (SB3's `AtariWrapper` defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtariConfig {
    /// The most no-op actions at the start of a game (0: none).
    #[serde(default = "noop_max")]
    pub noop_max: usize,
    /// Frames each action is repeated for (1: no skipping).
    #[serde(default = "frame_skip")]
    pub frame_skip: usize,
    /// The side of the square grey image.
    #[serde(default = "screen_size")]
    pub screen_size: usize,
    /// A lost life ends the agent's episode.
    #[serde(default = "yes")]
    pub terminal_on_life_loss: bool,
    /// Rewards clipped to their sign.
    #[serde(default = "yes")]
    pub clip_reward: bool,
    /// Actions 1 (`FIRE`) then 2 after each reset, for games that wait for it.
    #[serde(default)]
    pub fire_reset: bool,
}

fn noop_max() -> usize {
    30
}
fn frame_skip() -> usize {
    4
}
fn screen_size() -> usize {
    84
}
fn yes() -> bool {
    true
}

impl Default for AtariConfig {
    fn default() -> Self {
        AtariConfig {
            noop_max: noop_max(),
            frame_skip: frame_skip(),
            screen_size: screen_size(),
            terminal_on_life_loss: true,
            clip_reward: true,
            fire_reset: false,
        }
    }
}

impl AtariConfig {
    /// SB3's `AtariWrapper()` as the RL Zoo applies it: the defaults, and FIRE after resets
    /// (which SB3 presses where the game's action 1 is FIRE, as in nearly every game: set
    /// `fire_reset: false` for those without it, such as Freeway).
    pub fn zoo() -> Self {
        AtariConfig { fire_reset: true, ..AtariConfig::default() }
    }
}

/// An ALE game wearing the preprocessing.
pub struct Atari {
    inner: Box<dyn Env>,
    config: AtariConfig,
    /// The game's frames: height, width, channels (3: RGB, 1: grey).
    frame: [usize; 3],
    observation_space: Space,
    rng: EnvRng,
    /// Screens to `screen_size`².
    resize: AreaResize,
    /// The last two frames of a skipped step (SB3's `_obs_buffer`).
    frames: [Obs; 2],
    /// Lives at the last step, and whether the game itself ended there.
    lives: f64,
    game_over: bool,
    env: String,
}

impl Atari {
    /// Wraps `inner`, whose observations are the game's screens `(210, 160, 3)` (RGB) or grey
    /// `(210, 160)` / `(210, 160, 1)`, and whose info reports `lives`; `env` names it in errors.
    pub fn new(inner: Box<dyn Env>, config: AtariConfig, env: &str) -> Result<Self, EnvError> {
        let invalid = |message: String| EnvError::InvalidParams { env: env.to_string(), message };
        let frame = match inner.observation_space() {
            Space::Box { shape, .. } => match shape.as_slice() {
                &[h, w] => [h, w, 1],
                &[h, w, c @ (1 | 3)] => [h, w, c],
                other => {
                    return Err(invalid(format!(
                        "Atari(..) reads screens (height, width[, 1 or 3]); this environment observes {other:?}"
                    )));
                }
            },
            other => return Err(invalid(format!("Atari(..) reads screens; this environment observes {other}"))),
        };
        if !matches!(inner.action_space(), Space::Discrete { n } if *n >= 3 || !config.fire_reset) {
            return Err(invalid(format!(
                "Atari(..) needs Discrete actions (and 3 of them for fire_reset); this environment's are {}",
                inner.action_space()
            )));
        }
        let s = config.screen_size;
        if !(1..=frame[0].min(frame[1])).contains(&s) || config.frame_skip == 0 {
            return Err(invalid(format!(
                "Atari(screen_size: {s}, frame_skip: {}): the screen side must lie in 1..={} and frames skip at least 1",
                config.frame_skip,
                frame[0].min(frame[1])
            )));
        }
        let observation_space = Space::Box { low: vec![0.0; s * s], high: vec![255.0; s * s], shape: vec![s, s, 1] };
        let blank = Obs::from_elem(0.0, frame.iter().product());
        Ok(Atari {
            inner,
            config,
            frame,
            observation_space,
            resize: AreaResize::new(frame[0], frame[1], s, s),
            rng: EnvRng::default(),
            frames: [blank.clone(), blank],
            lives: 0.0,
            game_over: true,
            env: env.to_string(),
        })
    }

    /// The inner environment's step; whether it ended the game is remembered.
    fn step_inner(&mut self, action: usize) -> Result<Step, EnvError> {
        let step = self.inner.step(&Action::Discrete(action))?;
        if step.done() {
            self.game_over = true;
        }
        Ok(step)
    }

    /// A new game: reset, then the no-ops.
    fn new_game(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        let (mut obs, mut info) = self.inner.reset(seed)?;
        self.game_over = false;
        if self.config.noop_max > 0 {
            let noops = rand::Rng::random_range(self.rng.reseed(None), 1..=self.config.noop_max);
            for _ in 0..noops {
                let step = self.step_inner(0)?;
                (obs, info) = if step.done() { self.inner.reset(None)? } else { (step.obs, step.info) };
                self.game_over = false;
            }
        }
        Ok((obs, info))
    }

    /// One action repeated `frame_skip` times: the rewards summed, the screen the maximum of
    /// the last two frames. As SB3's `MaxAndSkipEnv`, the two frames are kept from step to step:
    /// a game that ends before the last frame shows frames of the step before.
    fn skip_step(&mut self, action: usize) -> Result<Step, EnvError> {
        let (skip, mut reward, mut last) = (self.config.frame_skip, 0.0, None::<Step>);
        for i in 0..skip {
            let step = self.step_inner(action)?;
            reward += step.reward;
            if i + 2 >= skip {
                self.frames[i + 2 - skip].clone_from(&step.obs);
            }
            let done = step.done();
            last = Some(step);
            if done {
                break;
            }
        }
        let mut step = last.expect("frame_skip is at least 1");
        let [a, b] = &self.frames;
        step.obs = a.iter().zip(b).map(|(x, y)| x.max(*y)).collect();
        step.reward = reward;
        Ok(step)
    }

    /// A (skipped) step taken while resetting: its screen and info, or a new game where it
    /// ended the game.
    fn reset_step(&mut self, action: usize) -> Result<(Obs, Info), EnvError> {
        let step = self.skip_step(action)?;
        if step.done() { self.new_game(None) } else { Ok((step.obs, step.info)) }
    }

    /// The screen as the agent sees it: grey, resized.
    fn warp(&self, obs: &[f32]) -> Result<Obs, EnvError> {
        let [h, w, c] = self.frame;
        if obs.len() != h * w * c {
            return Err(EnvError::InvalidParams {
                env: self.env.clone(),
                message: format!("Atari(..): a screen of {} values, where {h}x{w}x{c} were announced", obs.len()),
            });
        }
        let grey: Vec<f32> = match c {
            3 => rgb_to_grey(obs),
            _ => obs.to_vec(),
        };
        Ok(self.resize.apply(&grey).into())
    }
}

/// An RGB image `(h, w, 3)` in grey, as OpenCV's `COLOR_RGB2GRAY` on bytes:
/// `(4899 R + 9617 G + 1868 B + 2¹³) >> 14`.
pub fn rgb_to_grey(rgb: &[f32]) -> Vec<f32> {
    rgb.chunks_exact(3).map(|p| grey(p[0], p[1], p[2])).collect()
}

fn grey(r: f32, g: f32, b: f32) -> f32 {
    let byte = |v: f32| v.clamp(0.0, 255.0) as u32;
    ((byte(r) * 4899 + byte(g) * 9617 + byte(b) * 1868 + (1 << 13)) >> 14) as f32
}

/// Area averaging (OpenCV's `INTER_AREA` when shrinking): each output pixel the mean of the
/// source it covers, partly covered pixels weighted by the part. OpenCV's arithmetic: weights in
/// `f32` from its tables, each row summed across then rows summed down in `f32`, rounded half to
/// even into a byte.
pub fn resize_area(src: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    AreaResize::new(h, w, out_h, out_w).apply(src)
}

/// [`resize_area`]'s tables for one size, made once (an `Atari` environment resizes every
/// screen to the same size).
struct AreaResize {
    rows: Vec<Vec<(usize, f32)>>,
    cols: Vec<Vec<(usize, f32)>>,
    width: usize,
}

impl AreaResize {
    fn new(h: usize, w: usize, out_h: usize, out_w: usize) -> Self {
        AreaResize { rows: area_weights(h, out_h), cols: area_weights(w, out_w), width: w }
    }

    fn apply(&self, src: &[f32]) -> Vec<f32> {
        let (rows, cols, w, out_w) = (&self.rows, &self.cols, self.width, self.cols.len());
        let mut out = vec![0.0f32; rows.len() * out_w];
        let mut across = vec![0.0f32; out_w];
        for (dy, row) in rows.iter().enumerate() {
            let sum = &mut out[dy * out_w..(dy + 1) * out_w];
            for (k, &(sy, beta)) in row.iter().enumerate() {
                across.fill(0.0);
                for (dx, col) in cols.iter().enumerate() {
                    for &(sx, alpha) in col {
                        across[dx] += src[sy * w + sx] * alpha;
                    }
                }
                for (s, a) in sum.iter_mut().zip(&across) {
                    *s = if k == 0 { beta * a } else { *s + beta * a };
                }
            }
        }
        out.iter().map(|v| v.round_ties_even().clamp(0.0, 255.0)).collect()
    }
}

/// OpenCV's table for shrinking `n` cells into `out` (`computeResizeAreaTab`): for each output
/// cell, the source cells it covers with the fraction of the cell's span each takes.
fn area_weights(n: usize, out: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = n as f64 / out as f64;
    (0..out)
        .map(|d| {
            let (fs1, fs2) = (d as f64 * scale, d as f64 * scale + scale);
            let cell = scale.min(n as f64 - fs1);
            let s2 = (fs2.floor() as usize).min(n - 1);
            let s1 = (fs1.ceil() as usize).min(s2);
            let mut cells = Vec::new();
            if s1 as f64 - fs1 > 1e-3 {
                cells.push((s1 - 1, ((s1 as f64 - fs1) / cell) as f32));
            }
            cells.extend((s1..s2).map(|s| (s, (1.0 / cell) as f32)));
            if fs2 - s2 as f64 > 1e-3 {
                cells.push((s2, ((fs2 - s2 as f64).min(1.0).min(cell) / cell) as f32));
            }
            cells
        })
        .collect()
}

impl Env for Atari {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        self.inner.action_space()
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        self.rng.reseed(seed.map(|s| s ^ 0x5851_f42d_4c95_7f2d));
        let mut screen = if self.game_over || !self.config.terminal_on_life_loss || seed.is_some() {
            self.new_game(seed)?
        } else {
            // A life was lost: the game goes on from a no-op.
            self.reset_step(0)?
        };
        if self.config.fire_reset {
            for action in [1, 2] {
                screen = self.reset_step(action)?;
            }
        }
        self.lives = screen.1.get("lives").unwrap_or(0.0);
        Ok((self.warp(&screen.0)?, screen.1))
    }

    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        self.inner.action_space().check_action(action)?;
        let Action::Discrete(a) = *action else { unreachable!("checked against a Discrete space") };
        let mut step = self.skip_step(a)?;
        let lives = step.info.get("lives").unwrap_or(0.0);
        let life_lost = self.config.terminal_on_life_loss && lives > 0.0 && lives < self.lives;
        self.lives = lives;
        step.terminated |= life_lost;
        let reward = step.reward;
        step.info.insert("raw_reward", reward);
        step.info.insert("game_over", if self.game_over { 1.0 } else { 0.0 });
        step.reward = match self.config.clip_reward {
            true if reward > 0.0 => 1.0,
            true if reward < 0.0 => -1.0,
            true => 0.0,
            false => reward,
        };
        step.obs = self.warp(&step.obs)?;
        Ok(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_weights_cover_each_cell_once() {
        for (n, out) in [(210, 84), (160, 84), (10, 10), (7, 3)] {
            let weights = area_weights(n, out);
            let mut total = vec![0.0; n];
            for cells in &weights {
                let sum: f32 = cells.iter().map(|c| c.1).sum();
                assert!((sum - 1.0).abs() < 1e-5, "{n}->{out}: {sum}");
                for &(k, w) in cells {
                    total[k] += f64::from(w) * n as f64 / out as f64;
                }
            }
            assert!(total.iter().all(|t| (t - 1.0).abs() < 1e-5), "{n}->{out}: every source cell counted once");
        }
        // Halving averages pairs.
        assert_eq!(resize_area(&[0.0, 2.0, 4.0, 6.0], 1, 4, 1, 2), vec![1.0, 5.0]);
    }
}
