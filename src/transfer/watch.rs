//! The collapse watch of a single transfer run (`headstart transfer --watch`): fine-tuning that
//! forgets what the agent came with (Wołczyk et al. 2024, "Fine-tuning reinforcement learning
//! models is secretly a forgetting mitigation problem") caught while it happens.
//!
//! **The rule.** The agent is evaluated before its first update (the zero-shot evaluation:
//! `n` deterministic episodes from reset seeds `s, s + 1, ...`) and then at `looks` evaluation
//! points, each on the **same** episode seeds, so that episode `i` of a look and episode `i` of
//! step 0 start from the same state and their difference is paired. A look is a **collapse**
//! when both hold:
//!
//! - the paired differences (look minus step 0) are significantly below zero: one-sided paired t
//!   test at `alpha / looks` (Bonferroni over the run's looks: a run that does not collapse is
//!   flagged at most `alpha` of the time, whatever the number of looks); identical episodes on
//!   both sides (no spread) count as significant only when every one of them fell;
//! - the drop is material: the mean fell by at least `min_drop` (default 10 %) of the zero-shot
//!   return's distance above the random policy's (a consistent loss of one step in 500 is not a
//!   collapse).
//!
//! A collapse is a warning. With a fallback, `patience` consecutive collapsed looks (default 2:
//! one bad evaluation may be the transient dip that fine-tuning recovers from) end the
//! fine-tuning: `source` keeps the agent as transfer made it (its step-0 weights, which scored
//! the zero-shot return), `scratch` trains an agent from scratch on the budget instead.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// What the watch does when the agent collapses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fallback {
    /// Warn only.
    #[default]
    None,
    /// Keep the agent as transfer made it, before any update.
    Source,
    /// Train an agent from scratch on the budget instead.
    Scratch,
}

/// A fallback's name that is none of them.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a fallback: none, source or scratch")]
pub struct UnknownFallback(String);

impl std::str::FromStr for Fallback {
    type Err = UnknownFallback;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Fallback::None),
            "source" => Ok(Fallback::Source),
            "scratch" => Ok(Fallback::Scratch),
            other => Err(UnknownFallback(other.to_string())),
        }
    }
}

/// A run's collapse watch: the zero-shot evaluation it compares with, and its rule's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Watch {
    /// The zero-shot evaluation's episode returns (episode `i` from reset seed `seed + i`).
    pub zero_shot: Vec<f64>,
    /// The random policy's return on the target.
    pub random_return: f64,
    /// Evaluations planned after step 0 (the Bonferroni divisor).
    pub looks: usize,
    /// The family-wise level of the run's warnings.
    pub alpha: f64,
    /// The least drop that counts, as a share of the zero-shot return's distance above random.
    pub min_drop: f64,
    /// Consecutive collapsed looks before a fallback acts.
    pub patience: usize,
}

/// One look of the watch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatchLook {
    /// Environment steps trained.
    pub step: u64,
    /// The look's mean return.
    pub mean: f64,
    /// Mean paired difference, look minus step 0.
    pub drop: f64,
    /// One-sided paired p-value of "no fall" (1 when nothing fell).
    pub p_value: f64,
    /// Whether the look is a collapse under the rule.
    pub collapsed: bool,
}

impl Watch {
    /// The watch of a run whose zero-shot episodes returned `zero_shot`, at the defaults: 5 %
    /// over the run, a drop of at least 10 % of the way down to random, patience 2.
    pub fn new(zero_shot: Vec<f64>, random_return: f64, looks: usize) -> Watch {
        Watch { zero_shot, random_return, looks: looks.max(1), alpha: 0.05, min_drop: 0.1, patience: 2 }
    }

    /// The look at `step` whose episodes (on the zero-shot evaluation's seeds) returned `returns`.
    pub fn look(&self, step: u64, returns: &[f64]) -> WatchLook {
        let n = returns.len().min(self.zero_shot.len());
        let d: Vec<f64> = (0..n).map(|i| returns[i] - self.zero_shot[i]).collect();
        let mean = returns.iter().sum::<f64>() / returns.len().max(1) as f64;
        let zero = self.zero_shot.iter().sum::<f64>() / self.zero_shot.len().max(1) as f64;
        let drop = if n == 0 { 0.0 } else { d.iter().sum::<f64>() / n as f64 };
        let p_value = paired_p(&d);
        let room = (zero - self.random_return).abs();
        let material = -drop >= self.min_drop * room && drop < 0.0;
        let collapsed = material && p_value < self.alpha / self.looks as f64;
        WatchLook { step, mean, drop, p_value, collapsed }
    }

    /// Whether the last `patience` looks of `looks` all collapsed (a fallback acts).
    pub fn confirmed(&self, looks: &[WatchLook]) -> bool {
        looks.len() >= self.patience && looks[looks.len() - self.patience..].iter().all(|l| l.collapsed)
    }
}

/// The one-sided p-value of "the mean of `d` is not below zero" (paired t test); with no spread,
/// 0 when every difference is negative and 1 otherwise.
fn paired_p(d: &[f64]) -> f64 {
    let n = d.len();
    if n == 0 || !d.iter().all(|x| x.is_finite()) {
        return 1.0;
    }
    let mean = d.iter().sum::<f64>() / n as f64;
    let var = if n > 1 { d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
    if var == 0.0 {
        return if d.iter().all(|&x| x < 0.0) { 0.0 } else { 1.0 };
    }
    let t = mean / (var / n as f64).sqrt();
    match StudentsT::new(0.0, 1.0, (n - 1) as f64) {
        Ok(dist) => dist.cdf(t),
        Err(_) => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_material_significant_fall_is_a_collapse_and_noise_is_not() {
        let zero: Vec<f64> = (0..20).map(|i| 480.0 + (i % 5) as f64).collect();
        let w = Watch::new(zero.clone(), 20.0, 10);
        // Every episode 200 lower: a collapse.
        let fallen: Vec<f64> = zero.iter().map(|r| r - 200.0).collect();
        assert!(w.look(1000, &fallen).collapsed);
        // One step lower everywhere: significant, but not material.
        let shaved: Vec<f64> = zero.iter().map(|r| r - 1.0).collect();
        let l = w.look(1000, &shaved);
        assert!(l.p_value < 0.005 && !l.collapsed);
        // Some up, some down, around zero: not significant.
        let noisy: Vec<f64> = zero.iter().enumerate().map(|(i, r)| r + if i % 2 == 0 { 60.0 } else { -70.0 }).collect();
        assert!(!w.look(1000, &noisy).collapsed);
        // The same returns: nothing fell.
        assert_eq!(w.look(1000, &zero).p_value, 1.0);
    }

    #[test]
    fn a_fallback_waits_for_its_patience() {
        let zero = vec![500.0; 10];
        let w = Watch::new(zero, 20.0, 5);
        let down = w.look(1, &[100.0; 10]);
        let up = w.look(2, &[500.0; 10]);
        assert!(down.collapsed && !up.collapsed);
        assert!(!w.confirmed(&[down.clone()]));
        assert!(!w.confirmed(&[down.clone(), up.clone()]));
        assert!(w.confirmed(&[up, down.clone(), down]));
    }

    /// Under no fall (each look's episodes differ from step 0's by noise), a run of ten looks is
    /// flagged at most 5 % of the time.
    #[test]
    fn without_a_fall_a_run_is_flagged_at_most_its_level() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let runs = 2000;
        let mut flagged = 0;
        for _ in 0..runs {
            let zero: Vec<f64> = (0..10).map(|_| 300.0 + 50.0 * rng.random::<f64>()).collect();
            let w = Watch::new(zero.clone(), 0.0, 10);
            let any = (0..10).any(|k| {
                let returns: Vec<f64> = (0..10).map(|_| 300.0 + 50.0 * rng.random::<f64>()).collect();
                w.look(k, &returns).collapsed
            });
            flagged += any as usize;
        }
        let rate = flagged as f64 / runs as f64;
        assert!(rate <= 0.05, "{rate}");
    }
}
