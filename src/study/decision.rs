//! How a study decides: per metric a Welch test of transfer against scratch, per comparison a
//! headline verdict from its primary metric, and across the study Holm's correction of the
//! headlines, so that a study's verdicts are wrong no more often than they claim.
//!
//! - A metric's verdict: Welch's two-sided test at 5 %; above zero is better (for times, scratch
//!   minus transfer). No verdict with fewer than [`MIN_SEEDS`] finished seeds in either arm.
//! - The headline of a comparison: its primary metric (the experiment's `primary`, by default
//!   the area), with its p-value corrected by Holm over every headline of the study (one
//!   family). Significantly better: `positive`, unless another metric is significantly worse
//!   (Holm over the comparison's other metrics), then `mixed`; significantly worse: `NEGATIVE`;
//!   else `inconclusive`. Under no effect a comparison is called anything but inconclusive at
//!   most 5 % of the time, and a study names any false verdict at most 5 % of the time.
//! - The percentile-bootstrap interval and the Mann-Whitney p-value are still reported, as
//!   descriptions; they decide nothing.

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::scores::Metric;
use super::stats;

/// The level of every test, before correction.
pub const ALPHA: f64 = 0.05;

/// The fewest finished seeds per arm for a verdict.
pub const MIN_SEEDS: usize = 3;

/// What a test says about a strategy against scratch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Significantly better than scratch.
    Positive,
    /// Significantly worse than scratch: negative transfer.
    Negative,
    /// The primary metric significantly better and another significantly worse (a worse start,
    /// a worse plateau, slower): transfer helps in one way and hurts in another.
    Mixed,
    /// No significant difference.
    Inconclusive,
    /// Fewer than [`MIN_SEEDS`] finished seeds in an arm: no verdict.
    TooFewSeeds,
}

impl Verdict {
    /// The verdict in a table (`NEGATIVE` in capitals).
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Positive => "positive",
            Verdict::Negative => "NEGATIVE",
            Verdict::Mixed => "mixed",
            Verdict::Inconclusive => "inconclusive",
            Verdict::TooFewSeeds => "too few seeds",
        }
    }

    fn of(p: f64, difference: f64) -> Verdict {
        if p.is_nan() {
            Verdict::TooFewSeeds
        } else if p < ALPHA && difference > 0.0 {
            Verdict::Positive
        } else if p < ALPHA && difference < 0.0 {
            Verdict::Negative
        } else {
            Verdict::Inconclusive
        }
    }
}

/// One arm's values of a metric, one per scored seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmValues {
    /// The values, in seed order.
    pub values: Vec<f64>,
    /// Their mean (NaN when there are none).
    pub mean: f64,
    /// Their interquartile mean.
    pub iqm: f64,
}

impl ArmValues {
    /// The values with their mean and IQM.
    pub fn new(values: Vec<f64>) -> Self {
        let (mean, iqm) =
            if values.is_empty() { (f64::NAN, f64::NAN) } else { (stats::mean(&values), stats::iqm(&values)) };
        ArmValues { values, mean, iqm }
    }
}

/// The two levels of variance of a study with several source checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Levels {
    /// Source checkpoints (groups of target seeds) that entered the test.
    pub sources: usize,
    /// The standard deviation of the per-source differences (transfer minus scratch over the
    /// seeds that used each source): what another source checkpoint would change.
    pub between_sources_sd: f64,
    /// The pooled standard deviation of the per-seed values within a source and arm: what
    /// another target seed would change.
    pub within_source_sd: f64,
}

/// Which correction a metric's verdict went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Correction {
    /// The primary metric: Holm over the study's headlines (a family of this many).
    Study(usize),
    /// Another metric: Holm over the comparison's other metrics (a family of this many).
    Comparison(usize),
}

/// A metric of one strategy against scratch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricStat {
    /// The metric's name ([`Metric::name`]).
    pub metric: String,
    /// The strategy's values.
    pub transfer: ArmValues,
    /// Scratch's values.
    pub scratch: ArmValues,
    /// Transfer minus scratch (scratch minus transfer for times): above zero is better.
    pub difference: f64,
    /// The difference's 95 % Welch t-interval (uncorrected).
    pub ci95: (f64, f64),
    /// The difference's 95 % percentile-bootstrap interval (a description: it decides nothing).
    pub bootstrap_ci95: (f64, f64),
    /// P(transfer better than scratch).
    pub prob_improvement: f64,
    /// Welch's two-sided p-value (NaN: too few seeds).
    pub p_value: f64,
    /// The p-value after the correction the verdict used.
    pub p_corrected: f64,
    /// The correction.
    pub correction: Correction,
    /// The two-sided Mann-Whitney p-value (a description).
    pub mann_whitney_p: f64,
    /// With several sources: the test is over the per-source differences (sources, then seeds:
    /// the source is the unit of replication), and these are its two levels of variance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub levels: Option<Levels>,
    /// What the corrected test says.
    pub verdict: Verdict,
}

/// Compares `t` (transfer) with `s` (scratch) on `metric`; `finished` counts each arm's finished
/// seeds (fewer than [`MIN_SEEDS`] in either gives no test). With several sources, `groups`
/// gives each value's source (transfer's, then scratch's; scratch's seed `k` is paired with the
/// source of transfer's seed `k`), and the test is the one-sample t test of the per-source
/// differences. The bootstrap draws `resamples` resamples from a generator seeded with `seed`.
/// The correction is filled in by [`correct`].
pub fn compare(
    metric: Metric,
    t: Vec<f64>,
    s: Vec<f64>,
    finished: (usize, usize),
    groups: Option<(&[usize], &[usize])>,
    resamples: usize,
    seed: u64,
) -> MetricStat {
    let (transfer, scratch) = (ArmValues::new(t), ArmValues::new(s));
    let (better, worse) = if metric.lower_is_better() {
        (&scratch.values, &transfer.values)
    } else {
        (&transfer.values, &scratch.values)
    };
    let enough = finished.0 >= MIN_SEEDS && finished.1 >= MIN_SEEDS;
    let levels = groups.map(|(gt, gs)| {
        let (gb, gw) = if metric.lower_is_better() { (gs, gt) } else { (gt, gs) };
        source_levels(better, gb, worse, gw)
    });
    let welch = match &levels {
        Some((_, differences)) => stats::one_sample_t(differences),
        None => stats::welch(better, worse),
    }
    .filter(|_| enough);
    let levels = levels.map(|(levels, _)| levels);
    let (difference, ci95, p) = match welch {
        Some(w) => (w.difference, w.interval(0.95), w.p),
        None if better.is_empty() || worse.is_empty() => (f64::NAN, (f64::NAN, f64::NAN), f64::NAN),
        None => (stats::mean(better) - stats::mean(worse), (f64::NAN, f64::NAN), f64::NAN),
    };
    let (bootstrap_ci95, prob_improvement, mann_whitney_p) = if better.is_empty() || worse.is_empty() {
        ((f64::NAN, f64::NAN), f64::NAN, f64::NAN)
    } else {
        let mut rng = StdRng::seed_from_u64(seed);
        (
            stats::bootstrap_diff_ci(better, worse, stats::mean, resamples, &mut rng),
            stats::probability_of_improvement(better, worse),
            stats::mann_whitney_p(better, worse),
        )
    };
    MetricStat {
        metric: metric.name().into(),
        difference,
        ci95,
        bootstrap_ci95,
        prob_improvement,
        p_value: p,
        p_corrected: p,
        correction: Correction::Comparison(1),
        mann_whitney_p,
        levels,
        verdict: Verdict::of(p, difference),
        transfer,
        scratch,
    }
}

/// The per-source differences `mean(better) - mean(worse)` over the seeds of each source that
/// both arms have, and the two levels of variance.
fn source_levels(better: &[f64], gb: &[usize], worse: &[f64], gw: &[usize]) -> (Levels, Vec<f64>) {
    let count = gb.iter().chain(gw).max().map_or(0, |m| m + 1);
    let mut differences = Vec::new();
    let (mut within, mut df) = (0.0, 0.0);
    for g in 0..count {
        let b: Vec<f64> = better.iter().zip(gb).filter(|(_, k)| **k == g).map(|(v, _)| *v).collect();
        let w: Vec<f64> = worse.iter().zip(gw).filter(|(_, k)| **k == g).map(|(v, _)| *v).collect();
        for arm in [&b, &w] {
            if arm.len() > 1 {
                within += stats::variance(arm) * (arm.len() - 1) as f64;
                df += (arm.len() - 1) as f64;
            }
        }
        if !b.is_empty() && !w.is_empty() {
            differences.push(stats::mean(&b) - stats::mean(&w));
        }
    }
    let between = if differences.len() > 1 { stats::variance(&differences).sqrt() } else { f64::NAN };
    let within = if df > 0.0 { (within / df).sqrt() } else { f64::NAN };
    (Levels { sources: differences.len(), between_sources_sd: between, within_source_sd: within }, differences)
}

/// Applies Holm's correction to `stats` as one family, tagging each with `correction(m)` for a
/// family of `m` tests (those with a p-value).
pub fn correct(stats: &mut [&mut MetricStat], correction: impl Fn(usize) -> Correction) {
    let p: Vec<f64> = stats.iter().map(|s| s.p_value).collect();
    let adjusted = stats::holm(&p);
    let family = p.iter().filter(|p| !p.is_nan()).count();
    for (s, adjusted) in stats.iter_mut().zip(adjusted) {
        s.p_corrected = adjusted;
        s.correction = correction(family);
        s.verdict = Verdict::of(adjusted, s.difference);
    }
}

/// The headline of a comparison from its primary metric's corrected verdict and the corrected
/// verdicts of its other metrics, with a note for each of those that is significantly worse.
pub fn headline(primary: &MetricStat, others: &[&MetricStat]) -> (Verdict, Vec<String>) {
    let worse: Vec<&&MetricStat> = others.iter().filter(|m| m.verdict == Verdict::Negative).collect();
    let notes = worse
        .iter()
        .map(|m| {
            let metric = Metric::ALL.into_iter().find(|x| x.name() == m.metric).map_or("worse", Metric::worse);
            format!("{} ({}: {:+.3}, Holm-corrected p = {:.3})", metric, m.metric, m.difference, m.p_corrected)
        })
        .collect();
    let verdict = match primary.verdict {
        Verdict::Positive if !worse.is_empty() => Verdict::Mixed,
        v => v,
    };
    (verdict, notes)
}
