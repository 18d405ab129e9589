//! How a study decides: per metric a Welch test of transfer against scratch, per comparison a
//! headline verdict from its primary metric, and across the study Holm's correction of the
//! headlines, so that a study's verdicts are wrong no more often than they claim.
//!
//! - A metric's verdict: Welch's two-sided test at 5 %; above zero is better (for times, scratch
//!   minus transfer). No verdict with fewer than [`MIN_SEEDS`] scored seeds in either arm: a
//!   unit that failed is scored (intention to treat), so an arm that diverges still gets its
//!   verdict.
//! - The headline of a comparison: its primary metric (the experiment's `primary`, by default
//!   the area), with its p-value corrected by Holm over every headline of the study (one
//!   family), and its other metrics corrected by Holm over the comparison. A significantly worse
//!   primary is `NEGATIVE`, never softened (a better start elsewhere is noted); otherwise
//!   `mixed` when any metric is significantly better and another significantly worse, whichever
//!   is primary; else the primary's: significantly better `positive`, else `inconclusive`. Under no effect a comparison is called anything but inconclusive at most
//!   5 % of the time, and a study names any false verdict at most 5 % of the time.
//! - The percentile-bootstrap interval (sources, then seeds) and the Mann-Whitney p-value are
//!   still reported, as descriptions; they decide nothing.

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::ids::Metric;
use super::stats;

/// The level of every test, before correction.
pub const ALPHA: f64 = 0.05;

/// The fewest scored seeds (finished or failed) per arm for a verdict.
pub const MIN_SEEDS: usize = 3;

/// What a test says about a strategy against scratch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Significantly better than scratch.
    Positive,
    /// Significantly worse than scratch: negative transfer.
    Negative,
    /// One metric significantly better and another significantly worse (a better start and a
    /// worse plateau, say), the primary not significantly worse: transfer helps in one way and
    /// hurts in another.
    Mixed,
    /// No significant difference.
    Inconclusive,
    /// Fewer than [`MIN_SEEDS`] scored seeds in an arm: no verdict.
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
    /// The difference's 95 % percentile-bootstrap interval, resampling sources and then seeds
    /// (a description: it decides nothing, and at few seeds it is narrower than it should be).
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

/// Compares `t` (transfer) with `s` (scratch) on `metric`, one value per scored seed (fewer
/// than [`MIN_SEEDS`] in either arm gives no test). With several sources, `groups` gives each
/// value's source (transfer's, then scratch's; scratch's seed `k` is paired with the source of
/// transfer's seed `k`), and the test is the one-sample t test of the per-source differences.
/// The bootstrap draws `resamples` resamples from a generator seeded with `seed`. The correction
/// is filled in by [`correct`].
pub fn compare(
    metric: Metric,
    t: Vec<f64>,
    s: Vec<f64>,
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
    let (gb, gw) = oriented_groups(metric, groups, better.len(), worse.len());
    let (welch, levels) = test(better, &gb, worse, &gw, groups.is_some());
    let (difference, ci95, p) = match welch {
        Some(w) => (w.difference, w.interval(0.95), w.p),
        None if better.is_empty() || worse.is_empty() => (f64::NAN, (f64::NAN, f64::NAN), f64::NAN),
        None => (stats::mean(better) - stats::mean(worse), (f64::NAN, f64::NAN), f64::NAN),
    };
    let (bootstrap_ci95, prob_improvement, mann_whitney_p) = if better.is_empty() || worse.is_empty() {
        ((f64::NAN, f64::NAN), f64::NAN, f64::NAN)
    } else {
        let mut rng = StdRng::seed_from_u64(seed);
        let diffs: Vec<f64> = (0..resamples)
            .map(|_| {
                let (b, w) = stats::resample_nested(better, &gb, worse, &gw, &mut rng);
                stats::mean(&b) - stats::mean(&w)
            })
            .collect();
        (
            stats::percentile_interval(&diffs),
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

/// The groups of `better`'s and `worse`'s values (every value in group 0 without groups).
fn oriented_groups(
    metric: Metric,
    groups: Option<(&[usize], &[usize])>,
    better: usize,
    worse: usize,
) -> (Vec<usize>, Vec<usize>) {
    match groups {
        Some((gt, gs)) if metric.lower_is_better() => (gs.to_vec(), gt.to_vec()),
        Some((gt, gs)) => (gt.to_vec(), gs.to_vec()),
        None => (vec![0; better], vec![0; worse]),
    }
}

/// The deciding test of `better` against `worse`: Welch's, or with several sources the
/// one-sample t test of the per-source differences (with the two levels of variance); no test
/// below [`MIN_SEEDS`] in either arm.
fn test(better: &[f64], gb: &[usize], worse: &[f64], gw: &[usize], sources: bool) -> (Option<stats::Welch>, Option<Levels>) {
    let enough = better.len() >= MIN_SEEDS && worse.len() >= MIN_SEEDS;
    let levels = sources.then(|| source_levels(better, gb, worse, gw));
    let welch = match &levels {
        Some((_, differences)) => stats::one_sample_t(differences),
        None => stats::welch(better, worse),
    }
    .filter(|_| enough);
    (welch, levels.map(|(levels, _)| levels))
}

/// The test [`compare`] decides by, alone (no bootstrap, no description): transfer's values `t`
/// against scratch's `s` on `metric`, with the sources as in [`compare`].
pub fn deciding_test(metric: Metric, t: &[f64], s: &[f64], groups: Option<(&[usize], &[usize])>) -> Option<stats::Welch> {
    let (better, worse) = if metric.lower_is_better() { (s, t) } else { (t, s) };
    let (gb, gw) = oriented_groups(metric, groups, better.len(), worse.len());
    test(better, &gb, worse, &gw, groups.is_some()).0
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
/// verdicts of its other metrics, with a note for each other metric that is significant in
/// another direction than the headline's own (`mixed` names both).
pub fn headline(primary: &MetricStat, others: &[&MetricStat]) -> (Verdict, Vec<String>) {
    let all = || std::iter::once(primary).chain(others.iter().copied());
    let better = all().any(|m| m.verdict == Verdict::Positive);
    let worse = all().any(|m| m.verdict == Verdict::Negative);
    // A claim of benefit is qualified by any harm; a NEGATIVE primary is never softened (a
    // better start does not undo less total reward): its better metrics are noted instead.
    let verdict =
        if better && worse && primary.verdict != Verdict::Negative { Verdict::Mixed } else { primary.verdict };
    let notes = others
        .iter()
        .filter(|m| match m.verdict {
            Verdict::Negative => verdict != Verdict::Negative,
            Verdict::Positive => verdict != Verdict::Positive,
            _ => false,
        })
        .map(|m| {
            let metric = Metric::ALL.into_iter().find(|x| x.name() == m.metric);
            let words = match (metric, m.verdict) {
                (Some(x), Verdict::Positive) => x.better(),
                (Some(x), _) => x.worse(),
                (None, Verdict::Positive) => "better",
                (None, _) => "worse",
            };
            format!("{} ({}: {:+.3}, Holm-corrected p = {:.3})", words, m.metric, m.difference, m.p_corrected)
        })
        .collect();
    (verdict, notes)
}
