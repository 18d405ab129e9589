//! Across targets, in the rliable style (Agarwal et al. 2021): per strategy the interquartile
//! mean of the normalised scores over every target and seed, its difference from scratch's with
//! a stratified-bootstrap interval (seeds resampled within each target), and the probability of
//! improvement averaged over targets; the scores themselves feed the performance profile.

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::experiment::Experiment;
use super::ids::{Interval, Metric};
use super::scores::{self, Scores};
use super::stats;

/// A strategy against scratch across every target (rliable's aggregate).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggregateRow {
    /// The strategy's label.
    pub strategy: String,
    /// The normalised score aggregated (the primary metric, or the area when that is a time).
    pub metric: String,
    /// The IQM of transfer's scores over every target and seed.
    pub transfer_iqm: f64,
    /// The IQM of scratch's.
    pub scratch_iqm: f64,
    /// Their difference with a 95 % stratified-bootstrap interval (seeds resampled within each
    /// target).
    pub difference: Interval,
    /// P(transfer better than scratch), averaged over targets.
    pub prob_improvement: f64,
    /// Every scored run's score, transfer then scratch (for the performance profile).
    pub scores: (Vec<f64>, Vec<f64>),
    /// Targets left out: an arm of theirs has no finished unit (every unit failed), so their
    /// scores would say what the failures left, not what the strategy does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<String>,
}

/// Per strategy across targets: IQMs of the normalised scores, their difference with a
/// stratified bootstrap interval, and the mean probability of improvement.
/// One target's scores: transfer's, then scratch's.
type Stratum = (Vec<f64>, Vec<f64>);

/// Arm `a` of a stratum: 0 is transfer, 1 scratch.
fn arm(s: &Stratum, a: usize) -> &[f64] {
    if a == 0 { &s.0 } else { &s.1 }
}

/// The rows, and a sentence per strategy that has none because every target was left out.
pub(super) fn aggregate(
    experiment: &Experiment,
    strategies: &[String],
    keys: &[String],
    scored: &[Vec<(Vec<Scores>, Vec<Scores>)>],
) -> (Vec<AggregateRow>, Vec<String>) {
    let metric = if experiment.primary == Metric::Time { Metric::Area } else { experiment.primary };
    let censored = scores::censored_time(experiment, scored.iter().flatten().flat_map(|(t, s)| t.iter().chain(s)));
    let mut rows = Vec::new();
    let mut unaggregated = Vec::new();
    for (si, strategy) in strategies.iter().enumerate() {
        // Per target: transfer's and scratch's scores; a target an arm of which has no finished
        // unit is left out.
        let failed = |runs: &[Scores]| !runs.is_empty() && runs.iter().all(|s| !s.finished);
        let excluded: Vec<String> = scored
            .iter()
            .zip(keys)
            .filter(|(t, _)| failed(&t[si].0) || failed(&t[si].1))
            .map(|(_, key)| key.clone())
            .collect();
        let strata: Vec<Stratum> = scored
            .iter()
            .filter(|t| !failed(&t[si].0) && !failed(&t[si].1))
            .map(|t| {
                let (tr, sc) = &t[si];
                (
                    tr.iter().map(|s| s.get(metric, censored)).collect(),
                    sc.iter().map(|s| s.get(metric, censored)).collect(),
                )
            })
            .filter(|(t, s): &Stratum| !t.is_empty() && !s.is_empty())
            .collect();
        if strata.is_empty() {
            unaggregated.push(format!(
                "{strategy}: no aggregate, every target was left out (an arm with no finished unit): {}",
                excluded.join(", ")
            ));
            continue;
        }
        // Arm 0 is transfer, arm 1 scratch.
        let pooled = |a: usize| -> Vec<f64> { strata.iter().flat_map(|s| arm(s, a).iter().copied()).collect() };
        let (t_all, s_all) = (pooled(0), pooled(1));
        let mut rng = StdRng::seed_from_u64(50_000 + si as u64);
        // Stratified: every target's seeds resampled within the target.
        let mut resample =
            |a: usize| -> Vec<f64> { strata.iter().flat_map(|s| stats::resample(arm(s, a), &mut rng)).collect() };
        let diffs: Vec<f64> =
            (0..experiment.resamples).map(|_| stats::iqm(&resample(0)) - stats::iqm(&resample(1))).collect();
        let (t_iqm, s_iqm) = (stats::iqm(&t_all), stats::iqm(&s_all));
        rows.push(AggregateRow {
            strategy: strategy.clone(),
            metric: metric.name().into(),
            transfer_iqm: t_iqm,
            scratch_iqm: s_iqm,
            difference: Interval { value: t_iqm - s_iqm, ci95: stats::percentile_interval(&diffs) },
            prob_improvement: stats::mean(
                &strata.iter().map(|(t, s)| stats::probability_of_improvement(t, s)).collect::<Vec<_>>(),
            ),
            scores: (t_all, s_all),
            excluded,
        });
    }
    (rows, unaggregated)
}
