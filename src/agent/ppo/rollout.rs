//! PPO's data: collecting a rollout from the vectorised environments (acting, normalising,
//! bootstrapping truncated episodes), generalised advantage estimation, and minibatches.

use super::super::distributions::{
    categorical_sample, draw_exploration, gaussian_log_density, gaussian_sample, gsde_noise,
};
use super::super::{AgentError, Monitor, report, to_vec};
use super::{Head, Ppo};
use crate::env::{Action, VecEnv};

/// `1 - Var(target - pred) / Var(target)`: 1 for perfect predictions, 0 for the mean's, NaN
/// for a constant target (SB3's `explained_variance`).
fn explained_variance(pred: &[f32], target: &[f32]) -> f64 {
    let var = |v: &mut dyn Iterator<Item = f64>| {
        let v: Vec<f64> = v.collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64
    };
    let target_var = var(&mut target.iter().map(|&t| t as f64));
    let error_var = var(&mut target.iter().zip(pred).map(|(&t, &p)| t as f64 - p as f64));
    if target_var == 0.0 { f64::NAN } else { 1.0 - error_var / target_var }
}

/// One rollout, `[n_steps * n_envs]` rows in step-major order.
pub(super) struct Rollout {
    pub(super) obs: Vec<f32>,
    pub(super) actions: Vec<f32>,
    pub(super) rewards: Vec<f32>,
    pub(super) starts: Vec<f32>,
    pub(super) values: Vec<f32>,
    pub(super) log_probs: Vec<f32>,
    /// A reward-free agent's raw next observations (the final one where an episode ended),
    /// which its intrinsic reward reads and its predictor trains on; empty otherwise.
    pub(super) next_raw: Vec<f32>,
    /// With DIAYN, each row's skill; empty otherwise.
    pub(super) skills: Vec<usize>,
}

/// One minibatch, rows in Rust.
pub(super) struct Minibatch {
    pub(super) obs: Vec<f32>,
    pub(super) actions: Vec<f32>,
    pub(super) old_log_probs: Vec<f32>,
    pub(super) old_values: Vec<f32>,
    pub(super) advantages: Vec<f32>,
    pub(super) returns: Vec<f32>,
}

impl Minibatch {
    /// The number of rows.
    pub(super) fn len(&self) -> usize {
        self.returns.len()
    }
}

impl Ppo {
    /// The width of the environment's observations (the networks' inputs less DIAYN's skill).
    pub(super) fn env_dim(&self) -> usize {
        self.obs_dim - self.cfg.objective.skills()
    }

    /// Observations from the environment as the networks read them outside training:
    /// normalised, and with DIAYN the acting skill appended.
    pub(super) fn acting_input(&self, obs: &[f32]) -> Vec<f32> {
        let mut obs = obs.to_vec();
        self.normalize(&mut obs);
        match self.intrinsic.as_ref().and_then(|i| i.skills()) {
            Some(skills) => skills.augment(&obs, |_| skills.acting_skill()),
            None => obs,
        }
    }

    /// Normalised observations of the training environments as the networks read them: with
    /// DIAYN, each environment's skill appended.
    fn training_input<'a>(&self, obs: &'a [f32]) -> std::borrow::Cow<'a, [f32]> {
        match self.intrinsic.as_ref().and_then(|i| i.skills()) {
            Some(skills) => {
                let current = skills.current();
                std::borrow::Cow::Owned(skills.augment(obs, |i| current[i]))
            }
            None => std::borrow::Cow::Borrowed(obs),
        }
    }

    /// The environment actions for stored action values (Gaussian samples clipped to bounds).
    pub(super) fn env_actions(&self, values: &[f32]) -> Vec<Action> {
        match &self.head {
            Head::Categorical { .. } => values.iter().map(|&a| Action::Discrete(a as usize)).collect(),
            Head::Gaussian { dim, low, high, .. } => values
                .chunks_exact(*dim)
                .map(|a| {
                    let clipped: Vec<f32> =
                        a.iter().zip(low.iter().zip(high)).map(|(&x, (&l, &h))| x.clamp(l, h)).collect();
                    Action::continuous(&clipped)
                })
                .collect(),
        }
    }

    /// Samples one action per row of policy outputs (logits; means and, with gSDE, features),
    /// appending the action values and their log-probabilities.
    pub(super) fn sample(&mut self, out: &[f32], features: &[f32], actions: &mut Vec<f32>, log_probs: &mut Vec<f32>) {
        match &self.head {
            Head::Categorical { n } => {
                for logits in out.chunks_exact(*n) {
                    let (a, lp) = categorical_sample(logits, &mut self.rng);
                    actions.push(a as f32);
                    log_probs.push(lp as f32);
                }
            }
            Head::Gaussian { dim, sde: true, .. } => {
                let (noise, var) = gsde_noise(&to_vec(self.log_std()), features, &self.exploration, *dim);
                for (k, m) in out.iter().enumerate() {
                    actions.push((*m as f64 + noise[k]) as f32);
                }
                for (e, v) in noise.chunks_exact(*dim).zip(var.chunks_exact(*dim)) {
                    log_probs.push(gaussian_log_density(e, v) as f32);
                }
            }
            Head::Gaussian { dim, .. } => {
                let log_std = to_vec(self.log_std());
                for mean in out.chunks_exact(*dim) {
                    log_probs.push(gaussian_sample(mean, &log_std, &mut self.rng, actions) as f32);
                }
            }
        }
    }

    /// Collects one rollout; `None` when the monitor asked to stop.
    pub(super) fn collect(
        &mut self,
        envs: &mut VecEnv,
        monitor: &mut Monitor<'_>,
    ) -> Result<Option<(Rollout, Vec<f32>)>, AgentError> {
        let (n, d, t_max) = (self.cfg.n_envs, self.env_dim(), self.cfg.n_steps);
        let act_width = match self.head {
            Head::Categorical { .. } => 1,
            Head::Gaussian { dim, .. } => dim,
        };
        let (mut obs, mut starts) = match self.current.take() {
            Some(current) => current,
            None => {
                let mut obs = envs.reset(Some(self.seed))?.to_vec();
                if let Some(norm) = &mut self.obs_norm {
                    norm.stats.update(&obs);
                }
                self.normalize(&mut obs);
                if let Some(skills) = self.intrinsic.as_mut().and_then(|i| i.skills_mut()) {
                    (0..n).for_each(|i| skills.draw(i, &mut self.rng));
                }
                (obs, vec![1.0; n])
            }
        };
        let mut r = Rollout {
            obs: Vec::with_capacity(t_max * n * d),
            actions: Vec::with_capacity(t_max * n * act_width),
            rewards: Vec::with_capacity(t_max * n),
            starts: Vec::with_capacity(t_max * n),
            values: Vec::with_capacity(t_max * n),
            log_probs: Vec::with_capacity(t_max * n),
            next_raw: Vec::new(),
            skills: Vec::new(),
        };
        // A reward-free agent reads no reward; without episodes (RND's default) its return
        // runs on through episode ends, so nothing is cut or bootstrapped there.
        let reward_free = self.intrinsic.is_some();
        let continuing = self.intrinsic.as_ref().is_some_and(|i| i.continuing());
        let mut ends = Vec::new();
        let mut stopped = false;
        let sample_freq = self.cfg.sde_sample_freq;
        for t in 0..t_max {
            if self.uses_sde() && (t == 0 || (sample_freq > 0 && t as i64 % sample_freq == 0)) {
                let log_std = self.log_std.as_ref().expect("gSDE has log_std");
                self.exploration = draw_exploration(&to_vec(log_std), n, &mut self.rng);
            }
            let input = self.training_input(&obs).into_owned();
            let (out, features, values) = self.policy_and_values(&input);
            let skills = self.intrinsic.as_ref().and_then(|i| i.skills()).map(|s| s.current());
            let first = r.actions.len();
            self.sample(&out, &features, &mut r.actions, &mut r.log_probs);
            let actions = self.env_actions(&r.actions[first..]);
            let step = envs.step(&actions)?;
            let mut next = step.obs.to_vec();
            let done: Vec<bool> = step.terminated.iter().zip(step.truncated).map(|(a, b)| *a || *b).collect();
            let mut rewards = match reward_free {
                false => step.rewards.to_vec(),
                true => {
                    for i in 0..n {
                        let row = match &step.final_obs[i] {
                            Some(last) if done[i] => last.to_vec(),
                            _ => next[i * d..(i + 1) * d].to_vec(),
                        };
                        r.next_raw.extend(row);
                    }
                    ends.extend_from_slice(&done);
                    r.skills.extend(skills.iter().flatten());
                    vec![0.0; n]
                }
            };
            // Bootstrap truncated episodes from their final observation's value.
            let truncated: Vec<(usize, Vec<f32>)> = (0..n)
                .filter(|&i| step.truncated[i] && !step.terminated[i])
                .filter_map(|i| step.final_obs[i].as_ref().map(|o| (i, o.to_vec())))
                .collect();
            self.steps += n as u64;
            stopped |= report(monitor, self.steps, step.episodes);
            if let Some(norm) = &mut self.obs_norm {
                norm.stats.update(&next);
            }
            self.normalize(&mut next);
            if let Some(norm) = &mut self.rew_norm {
                rewards = norm.apply(&rewards, |i| done[i]);
            }
            if !truncated.is_empty() && !continuing {
                let mut finals: Vec<f32> = truncated.iter().flat_map(|(_, o)| o.iter().copied()).collect();
                self.normalize(&mut finals);
                // With DIAYN the final observation is valued under the ending episode's skill.
                if let (Some(d), Some(skills)) = (self.intrinsic.as_ref().and_then(|i| i.skills()), &skills) {
                    finals = d.augment(&finals, |k| skills[truncated[k].0]);
                }
                for ((i, _), v) in truncated.iter().zip(self.values(&finals)) {
                    rewards[*i] += self.cfg.gamma * v as f64;
                }
            }
            r.obs.extend_from_slice(&input);
            r.rewards.extend(rewards.iter().map(|&x| x as f32));
            r.starts.extend_from_slice(&starts);
            r.values.extend_from_slice(&values);
            obs = next;
            starts = done.iter().map(|&d| if d && !continuing { 1.0 } else { 0.0 }).collect();
            if let Some(skills) = self.intrinsic.as_mut().and_then(|i| i.skills_mut()) {
                (0..n).filter(|&i| done[i]).for_each(|i| skills.draw(i, &mut self.rng));
            }
            if stopped {
                break;
            }
        }
        if let (Some(objective), false) = (&mut self.intrinsic, stopped) {
            let (intrinsic, mean) = objective.rewards(&r.next_raw, &ends, &r.skills);
            r.rewards.iter_mut().zip(intrinsic).for_each(|(r, i)| *r += i);
            // Not a point to stop at: the rollout's statistics are merged already.
            let _ = monitor(super::super::Event::Intrinsic { step: self.steps, reward: mean });
        }
        let last_values = self.values(&self.training_input(&obs));
        self.current = Some((obs, starts));
        Ok((!stopped).then_some((r, last_values)))
    }

    /// Generalised advantage estimates and returns (Stable-Baselines3's recursion).
    pub(super) fn advantages(&self, r: &Rollout, last_values: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let n = self.cfg.n_envs;
        let len = r.rewards.len();
        let (gamma, lambda) = (self.cfg.gamma as f32, self.cfg.gae_lambda as f32);
        let last_done = &self.current.as_ref().expect("collect sets current").1;
        let mut adv = vec![0.0f32; len];
        let mut gae = vec![0.0f32; n];
        for t in (0..len / n).rev() {
            for i in 0..n {
                let k = t * n + i;
                let (next_value, next_non_terminal) = if (t + 1) * n >= len {
                    (last_values[i], 1.0 - last_done[i])
                } else {
                    (r.values[k + n], 1.0 - r.starts[k + n])
                };
                let delta = r.rewards[k] + gamma * next_value * next_non_terminal - r.values[k];
                gae[i] = delta + gamma * lambda * next_non_terminal * gae[i];
                adv[k] = gae[i];
            }
        }
        let returns = adv.iter().zip(&r.values).map(|(a, v)| a + v).collect();
        (adv, returns)
    }

    /// Records the update's settings and how well the rollout's values predicted its returns
    /// (SB3's `train/explained_variance`), before the minibatches record their losses.
    pub(super) fn record_rollout(&mut self, r: &Rollout, returns: &[f32], lr: f64, clip: f64) {
        let std = match self.head {
            Head::Gaussian { sde: false, .. } => {
                let log_std = to_vec(self.log_std());
                Some(log_std.iter().map(|&l| (l as f64).exp()).sum::<f64>() / log_std.len() as f64)
            }
            _ => None,
        };
        let distill_weight = self.active_teacher().map(|(_, w)| w);
        let stats = &mut self.stats;
        stats.add("train/learning_rate", lr);
        if self.a2c.is_none() {
            stats.add("train/clip_range", clip);
        }
        let explained = explained_variance(&r.values, returns);
        if explained.is_finite() {
            stats.add("train/explained_variance", explained);
        }
        if let Some(std) = std {
            stats.add("train/std", std);
        }
        if let Some(w) = distill_weight {
            stats.add("transfer/distill_weight", w);
        }
    }

    /// The rows `index` of a rollout (all rows when `None`), advantages normalised in Rust when
    /// configured.
    pub(super) fn minibatch(&self, r: &Rollout, adv: &[f32], returns: &[f32], index: Option<&[usize]>) -> Minibatch {
        let all: Vec<usize>;
        let index = match index {
            Some(index) => index,
            None => {
                all = (0..r.rewards.len()).collect();
                &all
            }
        };
        let d = self.obs_dim;
        let width = r.actions.len() / r.rewards.len();
        let pick = |v: &[f32], w: usize| -> Vec<f32> {
            index.iter().flat_map(|&i| v[i * w..(i + 1) * w].iter().copied()).collect()
        };
        let mut advantages = pick(adv, 1);
        let obs = pick(&r.obs, d);
        if self.cfg.normalize_advantage && self.cfg.tasks.is_some() {
            self.normalize_per_task(&obs, &mut advantages);
        } else if self.cfg.normalize_advantage && advantages.len() > 1 {
            let n = advantages.len() as f64;
            let m = advantages.iter().map(|&a| a as f64).sum::<f64>() / n;
            let var = advantages.iter().map(|&a| (a as f64 - m).powi(2)).sum::<f64>() / (n - 1.0);
            let scale = 1.0 / (var.sqrt() + 1e-8);
            advantages.iter_mut().for_each(|a| *a = ((*a as f64 - m) * scale) as f32);
        }
        Minibatch {
            obs,
            actions: pick(&r.actions, width),
            old_log_probs: pick(&r.log_probs, 1),
            old_values: pick(&r.values, 1),
            advantages,
            returns: pick(returns, 1),
        }
    }
}
