//! A replay buffer of transitions for the off-policy agents (DQN, SAC).
//!
//! A transition's `next_obs` is the observation the action led to: on the step that ends an
//! episode, the episode's last observation (`final_obs`), never the reset observation, and `done`
//! is set only on termination, so that truncated episodes are bootstrapped.

use rand::Rng;
use tch::Tensor;

use super::error::AgentError;
use super::tensors::to_vec;

use crate::env::vector::VecStep;

/// A ring buffer of transitions `(obs, action, reward, next_obs, done)`, sampled uniformly.
pub struct ReplayBuffer {
    capacity: usize,
    obs_dim: usize,
    act_dim: usize,
    obs: Vec<f32>,
    next_obs: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    dones: Vec<f32>,
    len: usize,
    pos: usize,
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
        ReplayBuffer {
            capacity,
            obs_dim,
            act_dim,
            obs: Vec::new(),
            next_obs: Vec::new(),
            actions: Vec::new(),
            rewards: Vec::new(),
            dones: Vec::new(),
            len: 0,
            pos: 0,
        }
    }

    /// Drops every transition (the capacity stays).
    pub fn clear(&mut self) {
        *self = ReplayBuffer::new(self.capacity, self.obs_dim, self.act_dim);
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
        let (o, a, p) = (self.obs_dim, self.act_dim, self.pos);
        let done = if done { 1.0 } else { 0.0 };
        if p == self.rewards.len() {
            self.obs.extend_from_slice(obs);
            self.next_obs.extend_from_slice(next_obs);
            self.actions.extend_from_slice(action);
            self.rewards.push(reward);
            self.dones.push(done);
        } else {
            self.obs[p * o..(p + 1) * o].copy_from_slice(obs);
            self.next_obs[p * o..(p + 1) * o].copy_from_slice(next_obs);
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
        let (d, a) = (self.obs_dim, self.act_dim);
        for (i, final_obs) in step.final_obs.iter().enumerate() {
            let next = match final_obs {
                Some(last) => &last[..],
                None => &step.obs[i * d..(i + 1) * d],
            };
            let row = &obs[i * d..(i + 1) * d];
            self.push(row, &actions[i * a..(i + 1) * a], step.rewards[i] as f32, next, step.terminated[i]);
        }
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
            ("replay.obs".into(), gather(&self.obs, self.obs_dim)),
            ("replay.actions".into(), gather(&self.actions, self.act_dim)),
            ("replay.rewards".into(), gather(&self.rewards, 1).view([n])),
            ("replay.next_obs".into(), gather(&self.next_obs, self.obs_dim)),
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
    pub(crate) fn ring(&self) -> ([&[f32]; 5], usize, usize) {
        ([&self.obs, &self.actions, &self.rewards, &self.next_obs, &self.dones], self.len, self.pos)
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
        (self.obs, self.actions, self.rewards, self.next_obs, self.dones) = (obs, actions, rewards, next_obs, dones);
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
            rows.obs.extend_from_slice(&self.obs[i * o..(i + 1) * o]);
            rows.next_obs.extend_from_slice(&self.next_obs[i * o..(i + 1) * o]);
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
mod tests {
    use super::*;

    #[test]
    fn a_full_buffer_overwrites_the_oldest_transition() {
        let mut buffer = ReplayBuffer::new(3, 1, 1);
        for i in 0..5 {
            buffer.push(&[i as f32], &[0.0], i as f32, &[i as f32 + 1.0], false);
        }
        assert_eq!(buffer.len(), 3);
        let mut rewards = buffer.rewards.clone();
        rewards.sort_by(f32::total_cmp);
        assert_eq!(rewards, [2.0, 3.0, 4.0]);
        // A huge capacity allocates nothing up front.
        assert!(ReplayBuffer::new(usize::MAX / 64, 4, 1).obs.capacity() == 0);
    }

    #[test]
    fn state_round_trips_oldest_first() {
        let mut buffer = ReplayBuffer::new(3, 1, 1);
        for i in 0..5 {
            buffer.push(&[i as f32], &[0.5], i as f32, &[i as f32 + 1.0], i == 4);
        }
        let state: std::collections::HashMap<String, Tensor> = buffer.state().into_iter().collect();
        assert_eq!(Vec::<f32>::try_from(&state["replay.rewards"]).unwrap(), [2.0, 3.0, 4.0]);
        let mut copy = ReplayBuffer::new(2, 1, 1);
        let n = copy.extend_from_state(&mut |n| state.get(n).map(Tensor::shallow_clone)).unwrap();
        assert_eq!((n, copy.len()), (3, 2));
        let mut rewards = copy.rewards.clone();
        rewards.sort_by(f32::total_cmp);
        assert_eq!(rewards, [3.0, 4.0], "the newest transitions stay");
        assert_eq!(copy.dones.iter().sum::<f32>(), 1.0);
    }
}
