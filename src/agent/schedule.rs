//! Hyperparameters that change over training, as Stable-Baselines3 and the RL Zoo write them.

use serde::{Deserialize, Serialize};

/// A value as a function of training progress. In RON: `Constant(3e-4)` or `Linear(1e-3)`
/// (the RL Zoo's `lin_1e-3`: from the value at the start down to zero at the end of the budget).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    /// The same value throughout.
    Constant(f64),
    /// From this value at the start down to zero at the end of the budget.
    Linear(f64),
}

impl Schedule {
    /// The value when `progress` (0 at the start, 1 at the end of the budget) has been made.
    pub fn at(self, progress: f64) -> f64 {
        match self {
            Schedule::Constant(v) => v,
            Schedule::Linear(v) => v * (1.0 - progress.clamp(0.0, 1.0)),
        }
    }
}

/// Stable-Baselines3's exploration schedule: linear from `start` to `end` over the first
/// `fraction` of the budget, then constant.
pub fn linear_decay(start: f64, end: f64, fraction: f64, progress: f64) -> f64 {
    if fraction <= 0.0 || progress >= fraction { end } else { start + (end - start) * progress / fraction }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_reaches_zero_at_the_end() {
        let s = Schedule::Linear(0.2);
        assert_eq!(s.at(0.0), 0.2);
        assert!((s.at(0.75) - 0.05).abs() < 1e-12);
        assert_eq!(s.at(1.5), 0.0);
        assert_eq!(Schedule::Constant(3.0).at(0.9), 3.0);
    }

    #[test]
    fn exploration_decays_then_holds() {
        assert_eq!(linear_decay(1.0, 0.05, 0.1, 0.0), 1.0);
        assert!((linear_decay(1.0, 0.05, 0.1, 0.05) - 0.525).abs() < 1e-12);
        assert_eq!(linear_decay(1.0, 0.05, 0.1, 0.5), 0.05);
    }
}
