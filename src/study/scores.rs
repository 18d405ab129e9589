//! Per-seed scores of one unit: from its evaluation curve to the metrics of the transfer
//! literature, on returns normalised to 0 (random policy) .. 1 (threshold).
//!
//! Every unit of an arm is scored, finished or not (intention to treat): a unit that failed or
//! diverged keeps its last finite evaluation for the rest of the budget, and one that failed
//! before its first evaluation scores as the random policy throughout. Dropping such units would
//! favour the arm that fails.

pub use super::ids::Metric;
use super::experiment::Experiment;
use super::records::TargetInfo;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::ids::ArmId;
use super::records::UnitResult;
use super::stats;

/// One unit's scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scores {
    /// The normalised return before any update.
    pub jumpstart: f64,
    /// The mean normalised return over the last part of the budget.
    pub asymptotic: f64,
    /// The mean of the normalised curve over the budget.
    pub area: f64,
    /// Steps trained at the first evaluation at the threshold; `None`: censored.
    pub time: Option<f64>,
    /// Whether the unit ran as planned (to the budget, or to the look its guard stopped it at).
    pub finished: bool,
    /// The unit's seed (which source it transferred from, with several).
    pub seed: u64,
}

impl Scores {
    /// The value of `metric`, a censored time standing at `censored`.
    pub fn get(&self, metric: Metric, censored: f64) -> f64 {
        match metric {
            Metric::Jumpstart => self.jumpstart,
            Metric::Asymptotic => self.asymptotic,
            Metric::Area => self.area,
            Metric::Time => self.time.unwrap_or(censored),
        }
    }
}

/// The evaluation grid of an experiment: every multiple of `eval.every`, and the budget.
pub fn grid(experiment: &Experiment) -> Vec<u64> {
    let every = experiment.eval.every;
    let mut grid: Vec<u64> = (0..=experiment.budget / every).map(|k| k * every).collect();
    if grid.last() != Some(&experiment.budget) {
        grid.push(experiment.budget);
    }
    grid
}

/// Where a run that never reached the threshold stands: one evaluation interval past the budget,
/// or past the latest time any run reached it (an agent that finishes a rollout may train past
/// the budget), so that a censored run ranks behind every run that got there.
pub fn censored_time<'a>(experiment: &Experiment, scores: impl IntoIterator<Item = &'a Scores>) -> f64 {
    let latest = scores.into_iter().filter_map(|s| s.time).fold(experiment.budget as f64, f64::max);
    latest + experiment.eval.every as f64
}

/// Scores one unit on its target (see the module's docs for units that did not finish).
pub fn score(unit: &UnitResult, info: &TargetInfo, experiment: &Experiment) -> Scores {
    let norm = |r: f64| info.score(r);
    // A unit its guard stopped is scored on its curve so far (the guard's own statistic).
    let finished = unit.status.completed();
    // The unit's curve on the grid: its evaluations, carried forward past its last finite one.
    let evals: Vec<_> = unit.evals.iter().filter(|e| e.mean.is_finite()).collect();
    let mut steps = Vec::new();
    let mut raw = Vec::new();
    let mut trained = Vec::new();
    if finished {
        for e in &evals {
            steps.push(e.nominal as f64);
            raw.push(e.mean);
            trained.push(e.step as f64);
        }
    } else {
        let mut last = info.random_return;
        for g in grid(experiment) {
            if let Some(e) = evals.iter().find(|e| e.nominal == g) {
                last = e.mean;
                trained.push(e.step as f64);
            } else {
                trained.push(f64::INFINITY);
            }
            steps.push(g as f64);
            raw.push(last);
        }
    }
    if steps.is_empty() {
        // A finished unit always has evaluations (records refuse it otherwise); be total anyway.
        return Scores { jumpstart: 0.0, asymptotic: 0.0, area: 0.0, time: None, finished, seed: unit.seed };
    }
    let values: Vec<f64> = raw.iter().map(|&r| norm(r)).collect();
    let from = (1.0 - experiment.final_fraction) * experiment.budget as f64;
    let tail: Vec<f64> = steps.iter().zip(&values).filter(|(s, _)| **s >= from).map(|(_, v)| *v).collect();
    let (jumpstart, last) = (values[0], values[values.len() - 1]);
    // Times count the steps actually trained at that evaluation (a PPO rollout may overshoot the
    // nominal grid point), and only at real evaluations.
    let time = raw.iter().zip(&trained).find(|(r, t)| **r >= info.threshold && t.is_finite()).map(|(_, t)| *t);
    Scores {
        jumpstart,
        asymptotic: if tail.is_empty() { last } else { stats::mean(&tail) },
        area: if steps.len() > 1 { stats::normalized_auc_mean(&steps, &values, 0.0, 1.0) } else { jumpstart },
        time,
        finished,
        seed: unit.seed,
    }
}

/// The mean evaluation curve of an arm on the grid, with a 95 % bootstrap band.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmCurve {
    /// The arm's label.
    pub arm: String,
    /// The grid points where at least one finished run has an evaluation.
    pub steps: Vec<u64>,
    /// The mean evaluation return there.
    pub mean: Vec<f64>,
    /// The lower end of its 95 % bootstrap interval.
    pub low: Vec<f64>,
    /// The upper end.
    pub high: Vec<f64>,
    /// Finished runs.
    pub finished: usize,
    /// Failed runs.
    pub failed: usize,
}

/// An arm's mean curve over its completed runs (finished, or stopped by a guard) on the grid, with a bootstrap band.
pub fn curve(experiment: &Experiment, units: &[&UnitResult], arm: &ArmId, ti: usize, ai: usize) -> ArmCurve {
    let runs: Vec<&&UnitResult> = units.iter().filter(|u| &u.arm == arm && u.status.completed()).collect();
    let mut curve = ArmCurve {
        arm: arm.to_string(),
        steps: Vec::new(),
        mean: Vec::new(),
        low: Vec::new(),
        high: Vec::new(),
        finished: runs.len(),
        failed: units.iter().filter(|u| &u.arm == arm && !u.status.completed()).count(),
    };
    let mut rng = StdRng::seed_from_u64((ti * 1000 + ai) as u64);
    for g in grid(experiment) {
        let values: Vec<f64> =
            runs.iter().filter_map(|u| u.evals.iter().find(|e| e.nominal == g).map(|e| e.mean)).collect();
        if values.is_empty() {
            continue;
        }
        let (low, high) = if values.len() > 1 {
            stats::bootstrap_ci(&values, stats::mean, 2000, &mut rng)
        } else {
            (values[0], values[0])
        };
        curve.steps.push(g);
        curve.mean.push(stats::mean(&values));
        curve.low.push(low);
        curve.high.push(high);
    }
    curve
}

