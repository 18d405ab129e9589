//! What an agent's updates say besides their effect: losses, the learning rate, exploration,
//! gradient norms and transfer's guidance (Stable-Baselines3's `train/` scalars and a few more),
//! each the mean over the gradient steps since the agent last reported them
//! ([`Event::Update`](super::Event::Update)).
//!
//! | tag | agents |
//! |---|---|
//! | `train/policy_gradient_loss`, `train/approx_kl`, `train/clip_fraction`, `train/clip_range` | PPO |
//! | `train/policy_loss` (`-mean(A log π)`) | A2C |
//! | `train/value_loss`, `train/entropy_loss`, `train/explained_variance` (when the returns vary) | PPO, A2C |
//! | `train/std` | PPO and A2C with Box actions: the mean standard deviation of the policy (without gSDE) |
//! | `train/loss` | DQN (Huber), PPO and A2C (the whole loss) |
//! | `rollout/exploration_rate` | DQN: epsilon |
//! | `train/actor_loss`, `train/critic_loss` | SAC, TD3 |
//! | `train/ent_coef`, `train/ent_coef_loss` | SAC (the loss with a learned coefficient) |
//! | `train/learning_rate` | every agent |
//! | `train/grad_norm` (`train/actor_grad_norm`, `train/critic_grad_norm`) | the gradients' global norm before clipping, over the parameters that train |
//! | `transfer/distill_weight` | while a teacher's weight is above zero |
//! | `transfer/frozen_fraction` | after a transfer that froze or scaled parameters: the share of weights whose learning rate is 0 (its fall is the freeze's end) |
//!
//! Computing them reads values the update has, plus, where clipping does not take the gradients'
//! norm already (SAC, TD3), one pass over them every 8th step (`optim::NORM_EVERY`: their
//! `grad_norm` points are means over those steps) and, on PPO's autograd path (gSDE), the
//! entropy; they never feed back into training (curves and weights are the previous commit's,
//! byte for byte, for PPO, DQN and SAC).

use super::optim::Optimizer;

/// Scalars under their tags, each the mean of the values added since the last
/// [`TrainStats::take`].
#[derive(Clone, Debug, Default)]
pub struct TrainStats {
    values: Vec<(&'static str, f64, u32)>,
}

impl TrainStats {
    /// Adds `value` to the mean of `tag`.
    pub fn add(&mut self, tag: &'static str, value: f64) {
        match self.values.iter_mut().find(|v| v.0 == tag) {
            Some(v) => {
                v.1 += value;
                v.2 += 1;
            }
            None => self.values.push((tag, value, 1)),
        }
    }

    /// Adds the gradient norm of `opt`'s last step under `tag`.
    pub fn add_grad_norm(&mut self, opt: &Optimizer, tag: &'static str) {
        if let Some(norm) = opt.last_grad_norm() {
            self.add(tag, norm);
        }
    }

    /// Whether nothing was added since the last take.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The means, in the order their tags were first added, and a fresh start.
    pub fn take(&mut self) -> Vec<(&'static str, f64)> {
        std::mem::take(&mut self.values).into_iter().map(|(tag, sum, n)| (tag, sum / n as f64)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_since_the_last_take() {
        let mut stats = TrainStats::default();
        stats.add("train/loss", 1.0);
        stats.add("train/learning_rate", 3e-4);
        stats.add("train/loss", 3.0);
        assert_eq!(stats.take(), vec![("train/loss", 2.0), ("train/learning_rate", 3e-4)]);
        assert!(stats.is_empty());
        stats.add("train/loss", 5.0);
        assert_eq!(stats.take(), vec![("train/loss", 5.0)]);
    }
}
