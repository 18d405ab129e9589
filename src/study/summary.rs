//! From unit records to the metrics of the transfer literature, with intervals and verdicts.
//!
//! Returns are normalised per target to `(r - random) / (threshold - random)`: 0 is a random
//! policy, 1 is solved, so that differences and ratios mean the same on every task (even where
//! rewards are negative). Per seed, from the evaluation curve:
//!
//! - **jumpstart**: the normalised return before any update on the target;
//! - **asymptotic**: the mean normalised return over the evaluations in the last
//!   `final_fraction` of the budget;
//! - **area**: the normalised curve's area divided by the budget (its mean over steps, by the
//!   trapezoid rule), "total reward";
//! - **time to threshold**: the first evaluated step at which the return reaches the threshold.
//!   A run that never does is censored: it counts as one evaluation interval past the budget,
//!   so that it ranks behind every run that got there (the table says how many did);
//! - the same time **counting the source's training steps** for transfer arms (the "total
//!   time" view; scratch pays nothing).
//!
//! Per metric and strategy against scratch: the mean and IQM of each arm, the difference of
//! means (transfer - scratch; for times scratch - transfer, so that above zero is always better)
//! with a 95 % percentile-bootstrap interval (each arm resampled independently), the
//! probability of improvement P(transfer better than scratch) (Mann-Whitney U / nm), and the
//! two-sided Mann-Whitney p-value. The **verdict** of a metric is positive when its interval lies
//! above zero, negative when below, inconclusive when it straddles zero; a strategy's headline
//! verdict is its area's. The transfer ratio is Taylor and Stone's area ratio,
//! `(area_transfer - area_scratch) / area_scratch`, on the mean normalised areas.

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::experiment::Experiment;
use super::plan::{ArmId, TargetInfo, arms};
use super::records::{UnitResult, UnitStatus};
use super::source::SourceRecord;
use super::stats;

/// What a metric's interval says about a strategy against scratch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// The interval lies above zero: better than scratch.
    Positive,
    /// The interval lies below zero: negative transfer.
    Negative,
    /// The interval straddles zero.
    Inconclusive,
}

impl Verdict {
    fn of(ci: (f64, f64)) -> Verdict {
        if ci.0 > 0.0 {
            Verdict::Positive
        } else if ci.1 < 0.0 {
            Verdict::Negative
        } else {
            Verdict::Inconclusive
        }
    }

    /// The verdict in a table (`NEGATIVE` in capitals).
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Positive => "positive",
            Verdict::Negative => "NEGATIVE",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// One arm's values of a metric, one per finished seed.
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
    fn new(values: Vec<f64>) -> Self {
        let (mean, iqm) = if values.is_empty() { (f64::NAN, f64::NAN) } else { (stats::mean(&values), stats::iqm(&values)) };
        ArmValues { values, mean, iqm }
    }
}

/// The metrics of a comparison, in the order a [`Comparison`] lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// The normalised return before any update.
    Jumpstart,
    /// The mean normalised return over the last `final_fraction` of the budget.
    Asymptotic,
    /// The mean of the normalised curve over the budget.
    Area,
    /// The first evaluated step at the threshold.
    Time,
    /// The same counting the source's training steps.
    TimeTotal,
}

impl Metric {
    /// Every metric, in the order a comparison lists them.
    pub const ALL: [Metric; 5] = [Metric::Jumpstart, Metric::Asymptotic, Metric::Area, Metric::Time, Metric::TimeTotal];

    /// The name summaries and reports give it.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Jumpstart => "jumpstart",
            Metric::Asymptotic => "asymptotic",
            Metric::Area => "area",
            Metric::Time => "time to threshold",
            Metric::TimeTotal => "time to threshold (total)",
        }
    }

    /// Whether lower values are better (times).
    pub fn lower_is_better(self) -> bool {
        matches!(self, Metric::Time | Metric::TimeTotal)
    }
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
    /// The difference's 95 % percentile-bootstrap interval.
    pub ci95: (f64, f64),
    /// P(transfer better than scratch).
    pub prob_improvement: f64,
    /// The two-sided Mann-Whitney p-value.
    pub p_value: f64,
    /// What the interval says.
    pub verdict: Verdict,
}

/// Median steps to threshold, scratch's over transfer's (censored runs as never reaching it).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Speedup {
    /// Both medians reach the threshold.
    Ratio(f64),
    /// Scratch's median is censored: the ratio is at least this (scratch counted as reaching the
    /// threshold one evaluation after the budget).
    AtLeast(f64),
    /// Transfer's median run meets the threshold before any update.
    ZeroShot,
    /// Transfer's median is censored.
    NotReached,
}

impl Speedup {
    fn of(transfer: Option<f64>, scratch: Option<f64>, censored: f64) -> Speedup {
        match (transfer, scratch) {
            (None, _) => Speedup::NotReached,
            (Some(t), _) if t <= 0.0 => Speedup::ZeroShot,
            (Some(t), Some(s)) => Speedup::Ratio(s / t),
            (Some(t), None) => Speedup::AtLeast(censored / t),
        }
    }

    /// As the verdict table shows it.
    pub fn text(self) -> String {
        match self {
            Speedup::Ratio(r) => format!("{r:.2}x"),
            Speedup::AtLeast(r) => format!(">= {r:.2}x"),
            Speedup::ZeroShot => "zero-shot".into(),
            Speedup::NotReached => "-".into(),
        }
    }
}

/// One strategy on one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The strategy's label.
    pub strategy: String,
    /// One per [`Metric`], in [`Metric::ALL`]'s order; read them with [`Comparison::metric`].
    pub metrics: Vec<MetricStat>,
    /// Taylor and Stone's area ratio on mean normalised areas.
    pub transfer_ratio: f64,
    /// Runs that reached the threshold, transfer and scratch.
    pub reached: (usize, usize),
    /// Median steps to threshold of scratch over transfer's.
    pub speedup: Speedup,
    /// The same counting the source's training steps.
    pub speedup_total: Speedup,
    /// The area's verdict.
    pub verdict: Verdict,
}

impl Comparison {
    /// One metric's statistics (`None` only in a comparison that no summary made).
    pub fn metric(&self, metric: Metric) -> Option<&MetricStat> {
        self.metrics.iter().find(|m| m.metric == metric.name())
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

/// One target's curves and comparisons.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetSummary {
    /// The target's key.
    pub key: String,
    /// Its environment, as text.
    pub env: String,
    /// The return that counts as solved.
    pub threshold: f64,
    /// The random policy's return.
    pub random_return: f64,
    /// Scratch's curve, then each strategy's.
    pub curves: Vec<ArmCurve>,
    /// Each strategy against scratch.
    pub comparisons: Vec<Comparison>,
}

/// What `headstart run` concludes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The experiment's name.
    pub experiment: String,
    /// The source's name.
    pub source: String,
    /// The source's training steps.
    pub source_steps: u64,
    /// Seeds per arm.
    pub seeds: u64,
    /// Target steps per run.
    pub budget: u64,
    /// Per target.
    pub targets: Vec<TargetSummary>,
    /// Units that failed, with their errors.
    pub failures: Vec<String>,
}

/// Per-seed metrics of one unit.
struct UnitMetrics {
    jumpstart: f64,
    asymptotic: f64,
    area: f64,
    /// `None`: censored.
    time: Option<f64>,
}

/// `None` for a unit without evaluations (which `read_units` refuses).
fn unit_metrics(unit: &UnitResult, info: &TargetInfo, experiment: &Experiment) -> Option<UnitMetrics> {
    let first = unit.evals.first()?;
    let norm = |r: f64| (r - info.random_return) / (info.threshold - info.random_return);
    let steps: Vec<f64> = unit.evals.iter().map(|e| e.nominal as f64).collect();
    let values: Vec<f64> = unit.evals.iter().map(|e| norm(e.mean)).collect();
    let from = (1.0 - experiment.final_fraction) * experiment.budget as f64;
    let tail: Vec<f64> = steps.iter().zip(&values).filter(|(s, _)| **s >= from).map(|(_, v)| *v).collect();
    let raw: Vec<f64> = unit.evals.iter().map(|e| e.mean).collect();
    let (jumpstart, last) = (norm(first.mean), values[values.len() - 1]);
    Some(UnitMetrics {
        jumpstart,
        asymptotic: if tail.is_empty() { last } else { stats::mean(&tail) },
        area: if steps.len() > 1 { stats::normalized_auc_mean(&steps, &values, 0.0, 1.0) } else { jumpstart },
        time: stats::first_step_at_or_above(&steps, &raw, info.threshold),
    })
}

fn compare(metric: Metric, t: Vec<f64>, s: Vec<f64>, resamples: usize, seed: u64) -> MetricStat {
    let lower_is_better = metric.lower_is_better();
    let (transfer, scratch) = (ArmValues::new(t), ArmValues::new(s));
    let (x, y) = (&transfer.values, &scratch.values);
    if x.is_empty() || y.is_empty() {
        return MetricStat {
            metric: metric.name().into(),
            difference: f64::NAN,
            ci95: (f64::NAN, f64::NAN),
            prob_improvement: f64::NAN,
            p_value: f64::NAN,
            verdict: Verdict::Inconclusive,
            transfer,
            scratch,
        };
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let (difference, ci95, prob) = if lower_is_better {
        let ci = stats::bootstrap_diff_ci(y, x, stats::mean, resamples, &mut rng);
        (scratch.mean - transfer.mean, ci, stats::probability_of_improvement(y, x))
    } else {
        let ci = stats::bootstrap_diff_ci(x, y, stats::mean, resamples, &mut rng);
        (transfer.mean - scratch.mean, ci, stats::probability_of_improvement(x, y))
    };
    MetricStat {
        metric: metric.name().into(),
        difference,
        ci95,
        prob_improvement: prob,
        p_value: stats::mann_whitney_p(x, y),
        verdict: Verdict::of(ci95),
        transfer,
        scratch,
    }
}

/// The median of times with censored runs as infinitely late; `None` when censored.
fn median_time(times: &[Option<f64>]) -> Option<f64> {
    let v: Vec<f64> = times.iter().map(|t| t.unwrap_or(f64::INFINITY)).collect();
    if v.is_empty() {
        return None;
    }
    let m = stats::median(&v);
    m.is_finite().then_some(m)
}

/// Summarises the units of an experiment: per target, each arm's mean curve and each strategy
/// against scratch. `source` names the source and its training steps (for the total time).
pub fn summarize(experiment: &Experiment, infos: &[TargetInfo], units: &[UnitResult], source: &SourceRecord) -> Summary {
    let source_steps = source.steps;
    let arms = arms(experiment);
    let (scratch_arm, strategy_arms) = arms.split_first().expect("arms() puts scratch first");
    let every = experiment.eval.every;
    let censored = (experiment.budget + every) as f64;
    let mut failures = Vec::new();
    let mut targets = Vec::new();
    for (ti, info) in infos.iter().enumerate() {
        let key = &info.target.key;
        let of_target = || units.iter().filter(move |u| &u.target == key);
        let of_arm = |arm: &ArmId| -> Vec<&UnitResult> { of_target().filter(|u| &u.arm == arm && u.status == UnitStatus::Finished).collect() };
        for u in of_target() {
            if let UnitStatus::Failed(e) = &u.status {
                failures.push(format!("{} {} seed {}: {e}", u.target, u.arm, u.seed));
            }
        }
        let mut grid: Vec<u64> = (0..=experiment.budget / every).map(|k| k * every).collect();
        if grid.last() != Some(&experiment.budget) {
            grid.push(experiment.budget);
        }
        let curves: Vec<ArmCurve> = arms
            .iter()
            .enumerate()
            .map(|(ai, arm)| {
                let runs = of_arm(&arm.id);
                let mut curve = ArmCurve {
                    arm: arm.id.to_string(),
                    steps: Vec::new(),
                    mean: Vec::new(),
                    low: Vec::new(),
                    high: Vec::new(),
                    finished: runs.len(),
                    failed: of_target().filter(|u| u.arm == arm.id && u.status != UnitStatus::Finished).count(),
                };
                let mut rng = StdRng::seed_from_u64((ti * 1000 + ai) as u64);
                for &g in &grid {
                    let values: Vec<f64> = runs.iter().filter_map(|u| u.evals.iter().find(|e| e.nominal == g).map(|e| e.mean)).collect();
                    if values.is_empty() {
                        continue;
                    }
                    let (low, high) = if values.len() > 1 { stats::bootstrap_ci(&values, stats::mean, 2000, &mut rng) } else { (values[0], values[0]) };
                    curve.steps.push(g);
                    curve.mean.push(stats::mean(&values));
                    curve.low.push(low);
                    curve.high.push(high);
                }
                curve
            })
            .collect();
        let metrics_of = |arm: &ArmId| -> Vec<UnitMetrics> { of_arm(arm).iter().filter_map(|u| unit_metrics(u, info, experiment)).collect() };
        let scratch = metrics_of(&scratch_arm.id);
        let mut comparisons = Vec::new();
        for (si, arm) in strategy_arms.iter().enumerate() {
            let transfer = metrics_of(&arm.id);
            let seed = (ti * 100 + si) as u64;
            let values = |m: &[UnitMetrics], metric: Metric, extra: f64| -> Vec<f64> {
                m.iter()
                    .map(|u| match metric {
                        Metric::Jumpstart => u.jumpstart,
                        Metric::Asymptotic => u.asymptotic,
                        Metric::Area => u.area,
                        Metric::Time | Metric::TimeTotal => u.time.map_or(censored + extra, |t| t + extra),
                    })
                    .collect()
            };
            // The total time adds the source's steps to transfer's times; scratch pays nothing.
            let stat = |k: usize, metric: Metric| {
                let extra = if metric == Metric::TimeTotal { source_steps as f64 } else { 0.0 };
                compare(metric, values(&transfer, metric, extra), values(&scratch, metric, 0.0), experiment.resamples, seed + k as u64)
            };
            let [jumpstart, asymptotic, area, time, time_total] = Metric::ALL;
            let area = stat(2, area);
            let metrics = vec![stat(0, jumpstart), stat(1, asymptotic), area.clone(), stat(3, time), stat(4, time_total)];
            let transfer_ratio = (area.transfer.mean - area.scratch.mean) / area.scratch.mean;
            let times_t: Vec<Option<f64>> = transfer.iter().map(|u| u.time).collect();
            let times_s: Vec<Option<f64>> = scratch.iter().map(|u| u.time).collect();
            let (mt, ms) = (median_time(&times_t), median_time(&times_s));
            let total = |t: Option<f64>| t.map(|t| t + source_steps as f64);
            comparisons.push(Comparison {
                strategy: arm.id.to_string(),
                verdict: area.verdict,
                transfer_ratio,
                reached: (times_t.iter().flatten().count(), times_s.iter().flatten().count()),
                speedup: Speedup::of(mt, ms, censored),
                speedup_total: Speedup::of(total(mt), ms, censored),
                metrics,
            });
        }
        targets.push(TargetSummary {
            key: key.to_string(),
            env: info.target.env.to_string(),
            threshold: info.threshold,
            random_return: info.random_return,
            curves,
            comparisons,
        });
    }
    Summary {
        experiment: experiment.name.clone(),
        source: source.name.clone(),
        source_steps,
        seeds: experiment.seeds,
        budget: experiment.budget,
        targets,
        failures,
    }
}
