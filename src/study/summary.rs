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

use std::fmt::Write;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::{TargetInfo, UnitResult, UnitStatus};
use super::experiment::Experiment;
use super::stats;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Positive,
    Negative,
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
    pub values: Vec<f64>,
    pub mean: f64,
    pub iqm: f64,
}

impl ArmValues {
    fn new(values: Vec<f64>) -> Self {
        let (mean, iqm) = if values.is_empty() { (f64::NAN, f64::NAN) } else { (stats::mean(&values), stats::iqm(&values)) };
        ArmValues { values, mean, iqm }
    }
}

/// A metric of one strategy against scratch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricStat {
    pub metric: String,
    pub transfer: ArmValues,
    pub scratch: ArmValues,
    /// Transfer minus scratch (scratch minus transfer for times): above zero is better.
    pub difference: f64,
    pub ci95: (f64, f64),
    pub prob_improvement: f64,
    pub p_value: f64,
    pub verdict: Verdict,
}

/// Median steps to threshold, scratch's over transfer's (censored runs as never reaching it).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Speedup {
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

    fn text(self) -> String {
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
    pub strategy: String,
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

/// The mean evaluation curve of an arm on the grid, with a 95 % bootstrap band.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmCurve {
    pub arm: String,
    pub steps: Vec<u64>,
    pub mean: Vec<f64>,
    pub low: Vec<f64>,
    pub high: Vec<f64>,
    pub finished: usize,
    pub failed: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetSummary {
    pub key: String,
    pub env: String,
    pub threshold: f64,
    pub random_return: f64,
    pub curves: Vec<ArmCurve>,
    pub comparisons: Vec<Comparison>,
}

/// What `headstart run` concludes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub experiment: String,
    pub source: String,
    pub source_steps: u64,
    pub seeds: u64,
    pub budget: u64,
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

fn unit_metrics(unit: &UnitResult, info: &TargetInfo, experiment: &Experiment) -> UnitMetrics {
    let norm = |r: f64| (r - info.random_return) / (info.threshold - info.random_return);
    let steps: Vec<f64> = unit.evals.iter().map(|e| e.nominal as f64).collect();
    let values: Vec<f64> = unit.evals.iter().map(|e| norm(e.mean)).collect();
    let from = (1.0 - experiment.final_fraction) * experiment.budget as f64;
    let tail: Vec<f64> = steps.iter().zip(&values).filter(|(s, _)| **s >= from).map(|(_, v)| *v).collect();
    let raw: Vec<f64> = unit.evals.iter().map(|e| e.mean).collect();
    UnitMetrics {
        jumpstart: values[0],
        asymptotic: if tail.is_empty() { values[values.len() - 1] } else { stats::mean(&tail) },
        area: if steps.len() > 1 { stats::normalized_auc_mean(&steps, &values, 0.0, 1.0) } else { values[0] },
        time: stats::first_step_at_or_above(&steps, &raw, info.threshold),
    }
}

fn compare(metric: &str, t: Vec<f64>, s: Vec<f64>, lower_is_better: bool, resamples: usize, seed: u64) -> MetricStat {
    let (transfer, scratch) = (ArmValues::new(t), ArmValues::new(s));
    let (x, y) = (&transfer.values, &scratch.values);
    if x.is_empty() || y.is_empty() {
        return MetricStat {
            metric: metric.into(),
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
        metric: metric.into(),
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

/// Summarises the units of an experiment.
pub fn summarize(experiment: &Experiment, infos: &[TargetInfo], units: &[UnitResult], source: &str, source_steps: u64) -> Summary {
    let arms = super::arms(experiment);
    let every = experiment.eval.every;
    let censored = (experiment.budget + every) as f64;
    let mut failures = Vec::new();
    let mut targets = Vec::new();
    for (ti, info) in infos.iter().enumerate() {
        let key = &info.target.key;
        let of_arm = |arm: &str| -> Vec<&UnitResult> {
            units.iter().filter(|u| &u.target == key && u.arm == arm && u.status == UnitStatus::Finished).collect()
        };
        for u in units.iter().filter(|u| &u.target == key) {
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
                let label = arm.label();
                let runs = of_arm(&label);
                let mut curve = ArmCurve {
                    arm: label.clone(),
                    steps: Vec::new(),
                    mean: Vec::new(),
                    low: Vec::new(),
                    high: Vec::new(),
                    finished: runs.len(),
                    failed: units.iter().filter(|u| &u.target == key && u.arm == label && u.status != UnitStatus::Finished).count(),
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
        let metrics_of = |arm: &str| -> Vec<UnitMetrics> { of_arm(arm).iter().map(|u| unit_metrics(u, info, experiment)).collect() };
        let scratch = metrics_of("scratch");
        let mut comparisons = Vec::new();
        for (si, strategy) in experiment.strategies.iter().enumerate() {
            let label = strategy.label();
            let transfer = metrics_of(&label);
            let seed = (ti * 100 + si) as u64;
            let pick = |m: &[UnitMetrics], f: fn(&UnitMetrics) -> f64| -> Vec<f64> { m.iter().map(f).collect() };
            let time = |m: &[UnitMetrics], extra: f64| -> Vec<f64> { m.iter().map(|u| u.time.map_or(censored + extra, |t| t + extra)).collect() };
            let metrics = vec![
                compare("jumpstart", pick(&transfer, |u| u.jumpstart), pick(&scratch, |u| u.jumpstart), false, experiment.resamples, seed),
                compare("asymptotic", pick(&transfer, |u| u.asymptotic), pick(&scratch, |u| u.asymptotic), false, experiment.resamples, seed + 1),
                compare("area", pick(&transfer, |u| u.area), pick(&scratch, |u| u.area), false, experiment.resamples, seed + 2),
                compare("time to threshold", time(&transfer, 0.0), time(&scratch, 0.0), true, experiment.resamples, seed + 3),
                compare(
                    "time to threshold (total)",
                    time(&transfer, source_steps as f64),
                    time(&scratch, 0.0),
                    true,
                    experiment.resamples,
                    seed + 4,
                ),
            ];
            let area = &metrics[2];
            let transfer_ratio = (area.transfer.mean - area.scratch.mean) / area.scratch.mean;
            let times_t: Vec<Option<f64>> = transfer.iter().map(|u| u.time).collect();
            let times_s: Vec<Option<f64>> = scratch.iter().map(|u| u.time).collect();
            let (mt, ms) = (median_time(&times_t), median_time(&times_s));
            let total = |t: Option<f64>| t.map(|t| t + source_steps as f64);
            comparisons.push(Comparison {
                strategy: label,
                verdict: area.verdict,
                transfer_ratio,
                reached: (times_t.iter().flatten().count(), times_s.iter().flatten().count()),
                speedup: Speedup::of(mt, ms, censored),
                speedup_total: Speedup::of(total(mt), ms, censored),
                metrics,
            });
        }
        targets.push(TargetSummary {
            key: key.clone(),
            env: info.target.env.to_string(),
            threshold: info.threshold,
            random_return: info.random_return,
            curves,
            comparisons,
        });
    }
    Summary {
        experiment: experiment.name.clone(),
        source: source.to_string(),
        source_steps,
        seeds: experiment.seeds,
        budget: experiment.budget,
        targets,
        failures,
    }
}

fn ci(m: &MetricStat, scale: f64) -> String {
    format!("{:+.2} [{:+.2}, {:+.2}]", m.difference * scale, m.ci95.0 * scale, m.ci95.1 * scale)
}


/// The verdict table: one row per target and strategy.
pub fn verdict_table(summary: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| target | strategy | jumpstart | asymptotic | area | P(improve) | reached threshold | speed-up | verdict |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for t in &summary.targets {
        for c in &t.comparisons {
            let area = &c.metrics[2];
            let (scratch_n, transfer_n) = (area.scratch.values.len(), area.transfer.values.len());
            let verdict = if c.verdict == Verdict::Negative { "**NEGATIVE TRANSFER**".to_string() } else { c.verdict.word().to_string() };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {:.2} | {}/{} vs {}/{} | {} | {verdict} |",
                t.key,
                c.strategy,
                ci(&c.metrics[0], 1.0),
                ci(&c.metrics[1], 1.0),
                ci(area, 1.0),
                area.prob_improvement,
                c.reached.0,
                transfer_n,
                c.reached.1,
                scratch_n,
                c.speedup.text(),
            );
        }
    }
    out
}

/// `report.md`: the setup, per target the metrics with intervals and verdicts, and the figures.
pub fn report_markdown(experiment: &Experiment, summary: &Summary, figures: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", experiment.name);
    if !experiment.description.is_empty() {
        let _ = writeln!(out, "{}\n", experiment.description);
    }
    let _ = writeln!(out, "## Setup\n");
    let _ = writeln!(out, "- Source: `{}` ({} training steps).", summary.source, summary.source_steps);
    let strategies: Vec<String> = experiment.strategies.iter().map(|s| format!("`{}`", s.label())).collect();
    let _ = writeln!(out, "- Strategies against scratch: {}.", strategies.join(", "));
    let _ = writeln!(
        out,
        "- {} seeds per arm (paired: scratch and transfer share environment seeds), {} target steps each, evaluated every {} steps \
         and before the first update on {} {} episodes.",
        experiment.seeds,
        experiment.budget,
        experiment.eval.every,
        experiment.eval.episodes,
        if experiment.eval.deterministic { "deterministic" } else { "stochastic" }
    );
    let _ = writeln!(
        out,
        "- Metrics on returns normalised to 0 (random policy) .. 1 (threshold); differences are transfer minus scratch (scratch minus \
         transfer for times), with 95 % percentile-bootstrap intervals ({} resamples); asymptotic = mean over the last {:.0} % of the \
         budget; area = mean of the normalised curve over the budget (trapezoid); runs that never reach the threshold are censored \
         one evaluation past the budget. Verdict: the area's interval above zero is positive, below zero negative, else inconclusive.",
        experiment.resamples,
        experiment.final_fraction * 100.0
    );
    let _ = writeln!(out, "\n## Verdicts\n");
    out.push_str(&verdict_table(summary));
    for t in &summary.targets {
        let _ = writeln!(out, "\n## {}\n", t.key);
        let _ = writeln!(
            out,
            "`{}`: threshold {}, random policy {:.1}. Runs: {}.\n",
            t.env,
            t.threshold,
            t.random_return,
            t.curves.iter().map(|c| format!("{} {} finished{}", c.arm, c.finished, if c.failed > 0 { format!(", {} failed", c.failed) } else { String::new() })).collect::<Vec<_>>().join("; ")
        );
        let _ = writeln!(out, "| strategy | metric | transfer mean (IQM) | scratch mean (IQM) | difference [95 % CI] | P(improve) | Mann-Whitney p | verdict |");
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        for c in &t.comparisons {
            for m in &c.metrics {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.3} ({:.3}) | {:.3} ({:.3}) | {} | {:.2} | {:.3} | {} |",
                    c.strategy,
                    m.metric,
                    m.transfer.mean,
                    m.transfer.iqm,
                    m.scratch.mean,
                    m.scratch.iqm,
                    ci(m, 1.0),
                    m.prob_improvement,
                    m.p_value,
                    m.verdict.word()
                );
            }
            let _ = writeln!(
                out,
                "| {} | transfer ratio (area) | {:.3} | | | | | |\n| {} | speed-up to threshold (median; with source steps) | {} ({}) | | | | | |",
                c.strategy,
                c.transfer_ratio,
                c.strategy,
                c.speedup.text(),
                c.speedup_total.text()
            );
        }
        for f in figures.iter().filter(|f| f.contains(&format!("curves-{}", super::file_safe(&t.key)))) {
            let _ = writeln!(out, "\n![learning curves on {}]({f})", t.key);
        }
    }
    if let Some(f) = figures.iter().find(|f| f.starts_with("metrics")) {
        let _ = writeln!(out, "\n## Metrics\n\n![differences with 95 % intervals]({f})");
    }
    if !summary.failures.is_empty() {
        let _ = writeln!(out, "\n## Failed units\n");
        for f in &summary.failures {
            let _ = writeln!(out, "- {f}");
        }
    }
    out
}
