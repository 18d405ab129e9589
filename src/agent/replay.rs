//! A replay buffer of transitions for the off-policy agents (DQN, SAC).
//!
//! A transition's `next_obs` is the observation the action led to: on the step that ends an
//! episode, the episode's last observation (`final_obs`), never the reset observation, and `done`
//! is set only on termination, so that truncated episodes are bootstrapped.
//!
//! Observations that are whole numbers from 0 to 255 (images: MinAtar's grids, Atari's and
//! MiniGrid's bytes) are kept as bytes, a quarter of the memory (an Atari replay of 100 000
//! transitions: 5.6 GB instead of 22.6), and read back exactly; the first observation that is not
//! one turns the storage to `f32`. Nothing an agent computes depends on which.
//!
//! With [`ReplayBuffer::sharing_frames`] (DQN's `optimize_memory_usage`), next observations are
//! read from the rows their environments wrote one vector step later instead of being stored
//! again ([`shared`]): half the memory of an image replay, the same transitions bit for bit.

mod shared;

use std::borrow::Cow;

use rand::Rng;
use tch::Tensor;

use super::error::AgentError;
use super::tensors::to_vec;
use shared::{Shared, same_bits};

use crate::env::vector::VecStep;

/// A ring buffer of transitions `(obs, action, reward, next_obs, done)`, sampled uniformly.
pub struct ReplayBuffer {
    capacity: usize,
    obs_dim: usize,
    act_dim: usize,
    obs: Frames,
    /// Next observations, one per transition; empty when they are shared with `obs`.
    next_obs: Frames,
    /// Next observations shared with `obs` (`None`: each stored in `next_obs`).
    shared: Option<Shared>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    dones: Vec<f32>,
    len: usize,
    pos: usize,
}

/// Observations in rows: bytes while every value is a whole number from 0 to 255, else `f32`.
#[derive(Debug)]
enum Frames {
    Bytes(Vec<u8>),
    Floats(Vec<f32>),
}

impl Frames {
    fn new(bytes: bool) -> Self {
        if bytes { Frames::Bytes(Vec::new()) } else { Frames::Floats(Vec::new()) }
    }

    /// Stores `row` at `at` (values from there on), appending at the end; turns to `f32` for a
    /// row that bytes cannot hold exactly.
    fn write(&mut self, at: usize, row: &[f32]) {
        if let Frames::Bytes(bytes) = self
            && !row.iter().all(|&v| (0.0..=255.0).contains(&v) && v.fract() == 0.0)
        {
            *self = Frames::Floats(bytes.iter().map(|&b| f32::from(b)).collect());
        }
        match self {
            Frames::Bytes(bytes) if at == bytes.len() => bytes.extend(row.iter().map(|&v| v as u8)),
            Frames::Bytes(bytes) => bytes[at..at + row.len()].iter_mut().zip(row).for_each(|(b, &v)| *b = v as u8),
            Frames::Floats(floats) if at == floats.len() => floats.extend_from_slice(row),
            Frames::Floats(floats) => floats[at..at + row.len()].copy_from_slice(row),
        }
    }

    /// Appends the values `range` to `out`.
    fn read_into(&self, range: std::ops::Range<usize>, out: &mut Vec<f32>) {
        match self {
            Frames::Bytes(bytes) => out.extend(bytes[range].iter().map(|&b| f32::from(b))),
            Frames::Floats(floats) => out.extend_from_slice(&floats[range]),
        }
    }

    fn floats(&self) -> Cow<'_, [f32]> {
        match self {
            Frames::Bytes(bytes) => Cow::Owned(bytes.iter().map(|&b| f32::from(b)).collect()),
            Frames::Floats(floats) => Cow::Borrowed(floats),
        }
    }

    fn is_bytes(&self) -> bool {
        matches!(self, Frames::Bytes(_))
    }

    /// Bytes it takes.
    fn bytes(&self) -> usize {
        match self {
            Frames::Bytes(b) => b.len(),
            Frames::Floats(v) => 4 * v.len(),
        }
    }

    /// `values` stored as this storage would hold them.
    fn from_floats(values: Vec<f32>, bytes: bool) -> Self {
        let mut out = Frames::new(bytes);
        out.write(0, &values);
        out
    }
}

/// A sampled minibatch as rows in Rust (what the engine reads).
pub struct Rows {
    /// Observations, `[n, obs_dim]` row-major.
    pub obs: Vec<f32>,
    /// Actions taken, `[n, act_dim]`.
    pub actions: Vec<f32>,
    /// Rewards.
    pub rewards: Vec<f32>,
    /// The next observations (final observations where an episode ended).
    pub next_obs: Vec<f32>,
    /// 1 where the episode terminated.
    pub dones: Vec<f32>,
}

/// A sampled minibatch as tensors: `obs`/`next_obs` `[n, obs_dim]`, `actions` `[n, act_dim]`,
/// `rewards`/`dones` `[n, 1]` (what autograd paths read).
pub struct Batch {
    /// Observations.
    pub obs: Tensor,
    /// Actions taken.
    pub actions: Tensor,
    /// Rewards.
    pub rewards: Tensor,
    /// The next observations (final observations where an episode ended).
    pub next_obs: Tensor,
    /// 1 where the episode terminated.
    pub dones: Tensor,
}

impl ReplayBuffer {
    /// An empty buffer of `capacity` transitions. Storage grows as transitions arrive, so a
    /// large capacity costs nothing until it is used.
    pub fn new(capacity: usize, obs_dim: usize, act_dim: usize) -> Self {
        Self::with_storage(capacity, obs_dim, act_dim, false)
    }

    /// An empty buffer that keeps observations as bytes while they are whole numbers from 0 to
    /// 255 (for observation spaces within those bounds: images).
    pub fn for_bytes(capacity: usize, obs_dim: usize, act_dim: usize) -> Self {
        Self::with_storage(capacity, obs_dim, act_dim, true)
    }

    fn with_storage(capacity: usize, obs_dim: usize, act_dim: usize, bytes: bool) -> Self {
        ReplayBuffer {
            capacity,
            obs_dim,
            act_dim,
            obs: Frames::new(bytes),
            next_obs: Frames::new(bytes),
            shared: None,
            actions: Vec::new(),
            rewards: Vec::new(),
            dones: Vec::new(),
            len: 0,
            pos: 0,
        }
    }

    /// The same buffer reading each transition's next observation from the row its environment
    /// wrote one vector step of `n_envs` environments later, when that row holds it (see
    /// [`shared`]); a buffer too small to hold two vector steps stores them all.
    pub fn sharing_frames(mut self, n_envs: usize) -> Self {
        if n_envs >= 1 && self.capacity >= 2 * n_envs && self.is_empty() {
            self.shared = Some(Shared::new(n_envs, self.obs.is_bytes()));
        }
        self
    }

    /// Drops every transition (the capacity, the kind of storage and the sharing stay).
    pub fn clear(&mut self) {
        let stride = self.shared.as_ref().map(|s| s.stride);
        *self = Self::with_storage(self.capacity, self.obs_dim, self.act_dim, self.obs.is_bytes());
        self.shared = stride.map(|n| Shared::new(n, self.obs.is_bytes()));
    }

    /// Bytes its transitions take (observations, actions, rewards, flags).
    pub fn memory_bytes(&self) -> usize {
        let kept = self.shared.as_ref().map_or(0, |s| s.rows().map(Frames::bytes).sum());
        let frames = Frames::bytes;
        frames(&self.obs) + frames(&self.next_obs) + kept + 4 * (self.actions.len() + self.rewards.len() + self.dones.len())
    }

    /// The number of transitions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no transition is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds one transition, overwriting the oldest when full.
    pub fn push(&mut self, obs: &[f32], action: &[f32], reward: f32, next_obs: &[f32], done: bool) {
        let p = self.pos;
        match &mut self.shared {
            // Not a vector step's row: its next observation, and any waiting one, kept as given.
            Some(shared) => {
                shared.settle_all();
                shared.forget(p);
                shared.keep(p, next_obs);
            }
            None => self.next_obs.write(p * self.obs_dim, next_obs),
        }
        self.write_row(obs, action, reward, done);
    }

    /// Writes a transition's observation, action, reward and flag at the write position and
    /// moves it on (the next observation is the caller's).
    fn write_row(&mut self, obs: &[f32], action: &[f32], reward: f32, done: bool) {
        let (o, a, p) = (self.obs_dim, self.act_dim, self.pos);
        let done = if done { 1.0 } else { 0.0 };
        self.obs.write(p * o, obs);
        if p == self.rewards.len() {
            self.actions.extend_from_slice(action);
            self.rewards.push(reward);
            self.dones.push(done);
        } else {
            self.actions[p * a..(p + 1) * a].copy_from_slice(action);
            self.rewards[p] = reward;
            self.dones[p] = done;
        }
        self.pos = (p + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
    }

    /// Stores the transitions of one vector step: environment `i`'s row of `obs` (the
    /// observations acted on) and of `actions`, its reward, the observation its action led to
    /// (the episode's final one when it ended) and whether it terminated.
    pub fn push_step(&mut self, obs: &[f32], actions: &[f32], step: &VecStep<'_>) {
        let (d, a, capacity) = (self.obs_dim, self.act_dim, self.capacity);
        let sharing = self.shared.as_ref().is_some_and(|s| s.stride == step.final_obs.len());
        for (i, final_obs) in step.final_obs.iter().enumerate() {
            let next = match final_obs {
                Some(last) => &last[..],
                None => &step.obs[i * d..(i + 1) * d],
            };
            let row = &obs[i * d..(i + 1) * d];
            let (action, reward, done) = (&actions[i * a..(i + 1) * a], step.rewards[i] as f32, step.terminated[i]);
            match &mut self.shared {
                Some(shared) if sharing => {
                    // This row is the next observation of the environment's previous transition.
                    let p = self.pos;
                    shared.settle((p + capacity - shared.stride) % capacity, row);
                    shared.forget(p);
                    match final_obs {
                        Some(last) => shared.keep(p, last),
                        None => shared.wait(p, next),
                    }
                    self.write_row(row, action, reward, done);
                }
                _ => self.push(row, action, reward, next, done),
            }
        }
    }

    /// Appends transition `i`'s next observation to `out`.
    fn read_next(&self, i: usize, out: &mut Vec<f32>) {
        let o = self.obs_dim;
        match &self.shared {
            Some(shared) => match shared.kept(i) {
                Some(next) => next.read_into(0..o, out),
                None => {
                    let later = (i + shared.stride) % self.capacity;
                    self.obs.read_into(later * o..(later + 1) * o, out)
                }
            },
            None => self.next_obs.read_into(i * o..(i + 1) * o, out),
        }
    }

    /// Every stored transition's next observation, in storage order.
    fn next_floats(&self) -> Cow<'_, [f32]> {
        if self.shared.is_none() {
            return self.next_obs.floats();
        }
        let mut out = Vec::with_capacity(self.rewards.len() * self.obs_dim);
        for i in 0..self.rewards.len() {
            self.read_next(i, &mut out);
        }
        Cow::Owned(out)
    }

    /// The transitions, oldest first, as `replay.obs` `[n, obs_dim]`, `replay.actions`
    /// `[n, act_dim]`, `replay.rewards`, `replay.next_obs` and `replay.dones` (what checkpoints
    /// save beside the weights).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let order: Vec<usize> = if self.len < self.capacity {
            (0..self.len).collect()
        } else {
            (self.pos..self.len).chain(0..self.pos).collect()
        };
        let n = order.len() as i64;
        let gather = |v: &[f32], w: usize| -> Tensor {
            let rows: Vec<f32> = order.iter().flat_map(|&i| v[i * w..(i + 1) * w].iter().copied()).collect();
            Tensor::from_slice(&rows).view([n, w as i64])
        };
        vec![
            ("replay.obs".into(), gather(&self.obs.floats(), self.obs_dim)),
            ("replay.actions".into(), gather(&self.actions, self.act_dim)),
            ("replay.rewards".into(), gather(&self.rewards, 1).view([n])),
            ("replay.next_obs".into(), gather(&self.next_floats(), self.obs_dim)),
            ("replay.dones".into(), gather(&self.dones, 1).view([n])),
        ]
    }

    /// Appends the transitions [`ReplayBuffer::state`] saved, oldest first (the oldest are
    /// overwritten when they exceed the capacity). Widths must match this buffer's.
    pub fn extend_from_state(&mut self, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<usize, AgentError> {
        let mut take = |name: &str, width: Option<usize>| -> Result<Vec<f32>, AgentError> {
            let t = get(name).ok_or_else(|| AgentError::MissingTensor { name: name.to_string() })?;
            let ok = match width {
                Some(w) => t.dim() == 2 && t.size()[1] == w as i64,
                None => t.dim() == 1,
            };
            if !ok {
                return Err(AgentError::TensorShape {
                    name: name.to_string(),
                    found: t.size(),
                    expected: format!("[n{}]", width.map(|w| format!(", {w}")).unwrap_or_default()),
                });
            }
            Ok(to_vec(&t.to_kind(tch::Kind::Float)))
        };
        let (o, a) = (self.obs_dim, self.act_dim);
        let obs = take("replay.obs", Some(o))?;
        let actions = take("replay.actions", Some(a))?;
        let rewards = take("replay.rewards", None)?;
        let next_obs = take("replay.next_obs", Some(o))?;
        let dones = take("replay.dones", None)?;
        let n = rewards.len();
        if obs.len() != n * o || actions.len() != n * a || next_obs.len() != n * o || dones.len() != n {
            return Err(AgentError::State("the replay tensors hold different numbers of transitions".into()));
        }
        for i in 0..n {
            let (obs, next) = (&obs[i * o..(i + 1) * o], &next_obs[i * o..(i + 1) * o]);
            self.push(obs, &actions[i * a..(i + 1) * a], rewards[i], next, dones[i] != 0.0);
        }
        Ok(n)
    }

    /// The storage as it lies in memory (`obs`, `actions`, `rewards`, `next_obs`, `dones`), the
    /// number of transitions held and the next write position: what resuming needs, since
    /// sampling draws storage positions.
    pub(crate) fn ring(&self) -> ([Cow<'_, [f32]>; 5], usize, usize) {
        let arrays = [&self.actions, &self.rewards, &self.dones].map(|v| Cow::Borrowed(v.as_slice()));
        let [actions, rewards, dones] = arrays;
        ([self.obs.floats(), actions, rewards, self.next_floats(), dones], self.len, self.pos)
    }

    /// Restores what [`ReplayBuffer::ring`] gave, refusing storage that does not fit this
    /// buffer's widths and capacity.
    pub(crate) fn set_ring(&mut self, arrays: [Vec<f32>; 5], len: usize, pos: usize) -> Result<(), AgentError> {
        let [obs, actions, rewards, next_obs, dones] = arrays;
        let rows = rewards.len();
        let fits = rows <= self.capacity
            && len == rows
            && pos <= rows
            && pos < self.capacity
            && obs.len() == rows * self.obs_dim
            && next_obs.len() == rows * self.obs_dim
            && actions.len() == rows * self.act_dim
            && dones.len() == rows;
        if !fits {
            return Err(AgentError::State(format!(
                "the replay buffer's saved storage ({rows} rows, length {len}, position {pos}) does not fit a buffer of \
                 {} transitions of {} + {} values",
                self.capacity, self.obs_dim, self.act_dim
            )));
        }
        let bytes = self.obs.is_bytes();
        match self.shared.as_ref().map(|s| s.stride) {
            // Each next observation kept apart unless the row `stride` on holds it; the newest
            // step's wait for the next step's rows.
            Some(stride) => {
                let (o, mut shared) = (self.obs_dim, Shared::new(stride, bytes));
                for s in 0..rows {
                    let (next, later) = (&next_obs[s * o..(s + 1) * o], (s + stride) % self.capacity);
                    let newest = (pos + self.capacity - 1 - s) % self.capacity < stride;
                    if newest || later >= rows {
                        shared.wait(s, next);
                    } else if !same_bits(next, &obs[later * o..(later + 1) * o]) {
                        shared.keep(s, next);
                    }
                }
                (self.next_obs, self.shared) = (Frames::new(bytes), Some(shared));
            }
            None => self.next_obs = Frames::from_floats(next_obs, bytes),
        }
        self.obs = Frames::from_floats(obs, bytes);
        (self.actions, self.rewards, self.dones) = (actions, rewards, dones);
        (self.len, self.pos) = (len, pos);
        Ok(())
    }

    /// `n` transitions drawn uniformly with replacement, as rows.
    pub fn sample_rows(&self, n: usize, rng: &mut impl Rng) -> Rows {
        let (o, a) = (self.obs_dim, self.act_dim);
        let mut rows = Rows {
            obs: Vec::with_capacity(n * o),
            actions: Vec::with_capacity(n * a),
            rewards: Vec::with_capacity(n),
            next_obs: Vec::with_capacity(n * o),
            dones: Vec::with_capacity(n),
        };
        for _ in 0..n {
            let i = rng.random_range(0..self.len);
            self.obs.read_into(i * o..(i + 1) * o, &mut rows.obs);
            self.read_next(i, &mut rows.next_obs);
            rows.actions.extend_from_slice(&self.actions[i * a..(i + 1) * a]);
            rows.rewards.push(self.rewards[i]);
            rows.dones.push(self.dones[i]);
        }
        rows
    }

    /// `n` transitions drawn uniformly with replacement (the draws of [`ReplayBuffer::sample_rows`]),
    /// as tensors.
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Batch {
        Batch::from_rows(&self.sample_rows(n, rng))
    }
}

impl Batch {
    /// The tensors of sampled rows.
    pub fn from_rows(r: &Rows) -> Self {
        let n = r.rewards.len() as i64;
        let tensor = |v: &[f32]| Tensor::from_slice(v).view([n, -1]);
        Batch {
            obs: tensor(&r.obs),
            actions: tensor(&r.actions),
            rewards: tensor(&r.rewards),
            next_obs: tensor(&r.next_obs),
            dones: tensor(&r.dones),
        }
    }
}

#[cfg(test)]
mod tests;
