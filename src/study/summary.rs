//! From unit records to what a study concludes: per target each arm's mean curve, and each
//! strategy against scratch on every metric, with its verdict, speed-up, forward transfer and
//! power; across targets an aggregate in the rliable style.
//!
//! Returns are normalised per target to `(r - random) / (threshold - random)`: 0 is a random
//! policy, 1 is solved, so that differences and ratios mean the same on every task (even where
//! rewards are negative). The per-seed metrics are [`scores`] (every unit scored,
//! finished or not); how they become verdicts is [`decision`]'s.
//!
//! - **Speed-up**: median steps to the threshold, scratch's over transfer's; a run that never gets
//!   there is censored one evaluation past the budget, so the ratio becomes a bound ("at least"
//!   when scratch's median is censored, "at most" when transfer's is) or is not estimable. It
//!   comes with a distribution-free interval: each arm's median time bracketed by order
//!   statistics that hold it with probability at least 97.5 % (7 or more seeds; the extremes
//!   below), the ratio's ends from those brackets (at least 95 % together), a censored end
//!   making the interval open on that side. Without an interval (fewer than
//!   [`decision::MIN_SEEDS`] scored seeds in an arm) it is not given: a bare ratio of medians
//!   of five seeds read >= 1.5x or <= 0.67x in 12 % of no-effect comparisons.
//! - **Total time** counts the source's training steps too: transfer pays off in total if scratch
//!   needs more than source steps + transfer's time (the break-even). When scratch was observed
//!   for fewer steps than that, the view is not estimable and the report gives the break-even.
//! - **Forward transfer**: Continual World's normalised `(A_T - A_S) / (1 - A_S)` on the mean
//!   normalised areas, the share of the room above scratch that transfer took, with the area's
//!   deciding t-interval scaled alike; not estimable when scratch's area is within 0.05 of solved.
//! - **Failures**: the arms' failure counts are compared by Fisher's exact test; only a
//!   difference significant at 5 % marks the comparison unreliable.
//! - **Power**: from the primary metric's pooled standard deviation, the smallest difference the
//!   study detects with 80 % power at its corrected level, and the seeds that the experiment's
//!   `effect` (the smallest difference of interest) needs. The observed difference is never
//!   used: under no effect it is noise.

use serde::{Deserialize, Serialize};

use super::aggregate::{self, AggregateRow};
use super::decision::{self, Correction};
pub use super::decision::{ArmValues, MetricStat, Verdict};
use super::experiment::Experiment;
use super::guard::{self, ArmGuard, GuardSummary, Looks};
use super::plan::{Arm, ArmId, TargetInfo, arms};
use super::power::power;
pub use super::power::{POWER, Power};
use super::records::{UnitResult, UnitStatus};
pub use super::ids::{Interval, Metric};
use super::scores::{self, Scores, curve};
pub use super::scores::ArmCurve;
use super::source::SourceRecord;
pub use super::speed::{Speedup, TotalTime};
use super::speed::{median_time, speedup_interval};
use super::stats;

fn one() -> f64 {
    1.0
}

fn scratch_label() -> String {
    "scratch".into()
}

fn is_scratch(s: &str) -> bool {
    s == "scratch"
}

/// One strategy on one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The strategy's label.
    pub strategy: String,
    /// What it is compared with: scratch, or a strategy the experiment lists in `against`
    /// (the "scratch" of every other field is then that strategy).
    #[serde(default = "scratch_label", skip_serializing_if = "is_scratch")]
    pub baseline: String,
    /// The metric the headline rests on.
    pub primary: String,
    /// One per [`Metric`], in [`Metric::ALL`]'s order; read them with [`Comparison::metric`].
    pub metrics: Vec<MetricStat>,
    /// Forward transfer `(A_T - A_S) / (1 - A_S)` on mean normalised areas, with the area's
    /// deciding 95 % t-interval divided by the room `1 - A_S` (`None`: not estimable, scratch's
    /// area being within 0.05 of solved).
    pub forward_transfer: Option<Interval>,
    /// Runs that reached the threshold, transfer and scratch.
    pub reached: (usize, usize),
    /// Units scored (finished or not), transfer and scratch.
    pub runs: (usize, usize),
    /// Units that failed, transfer and scratch (scored at their last finite evaluation).
    pub failed: (usize, usize),
    /// Fisher's exact two-sided p-value of the failure counts (1 when neither arm failed).
    #[serde(default = "one")]
    pub failures_p: f64,
    /// The arms failed at significantly different rates (Fisher's exact test at 5 %): the
    /// comparison may reflect failures, not learning.
    pub unreliable: bool,
    /// Median steps to threshold, scratch's over transfer's.
    pub speedup: Speedup,
    /// The speed-up's distribution-free 95 % interval (from each arm's order-statistic interval
    /// of its median time; see the module's docs); `None` where it is not given (too few scored
    /// seeds, zero-shot, or not estimable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speedup_ci95: Option<(f64, f64)>,
    /// The same counting the source's training steps.
    pub total_time: TotalTime,
    /// The headline.
    pub verdict: Verdict,
    /// What qualifies the headline: worse metrics, failures, power.
    pub notes: Vec<String>,
    /// What the study could detect here.
    pub power: Power,
    /// Where the study's guard left the strategy (with a guard, against scratch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<ArmGuard>,
}

impl Comparison {
    /// The strategy, with its baseline when that is not scratch (`adapter vs finetune`).
    pub fn label(&self) -> String {
        if is_scratch(&self.baseline) { self.strategy.clone() } else { format!("{} vs {}", self.strategy, self.baseline) }
    }

    /// One metric's statistics.
    pub fn metric(&self, metric: Metric) -> Option<&MetricStat> {
        self.metrics.iter().find(|m| m.metric == metric.name())
    }

    /// The step its sequential guard stopped it at, if one did.
    pub fn stopped_at(&self) -> Option<u64> {
        self.guard.as_ref().and_then(|g| g.stopped).map(|(step, _)| step)
    }
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
    /// With several source checkpoints, each one's folder (target seed `k` used source
    /// `k mod K`); empty with one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// Seeds per arm.
    pub seeds: u64,
    /// Target steps per run.
    pub budget: u64,
    /// The metric headlines rest on.
    pub primary: String,
    /// How many headlines share Holm's correction.
    pub family: usize,
    /// Per target.
    pub targets: Vec<TargetSummary>,
    /// Per strategy across targets (empty with one target).
    pub aggregate: Vec<AggregateRow>,
    /// Strategies without an aggregate row because every target was left out of it, as sentences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unaggregated: Vec<String>,
    /// Units that failed, with their errors.
    pub failures: Vec<String>,
    /// The guard's looks, decisions and savings (with a guard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardSummary>,
    /// Set when the summary was made before every unit finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<super::records::Partial>,
}

/// Summarises the units of an experiment: per target, each arm's mean curve and each strategy
/// against scratch; then the headlines' correction and the aggregate. `source` names the source
/// and its training steps (for the total time).
pub fn summarize(
    experiment: &Experiment,
    infos: &[TargetInfo],
    units: &[UnitResult],
    source: &SourceRecord,
) -> Summary {
    let arms = arms(experiment);
    let primary = experiment.primary;
    let mut failures = Vec::new();
    let mut targets = Vec::new();
    // Per target and strategy: transfer's and scratch's scores, for the aggregate.
    let mut scored: Vec<Vec<(Vec<Scores>, Vec<Scores>)>> = Vec::new();
    let looks = Looks::of(experiment);
    let mut decisions = Vec::new();
    for (ti, info) in infos.iter().enumerate() {
        let key = &info.target.key;
        let of_target = || units.iter().filter(move |u| &u.target == key);
        for u in of_target() {
            if let UnitStatus::Failed(e) = &u.status {
                failures.push(format!("{} {} seed {}: {e}", u.target, u.arm, u.seed));
            }
        }
        let curves = arms
            .iter()
            .enumerate()
            .map(|(ai, arm)| curve(experiment, &of_target().collect::<Vec<_>>(), &arm.id, ti, ai))
            .collect();
        let scores_of = |arm: &ArmId| -> Vec<Scores> {
            of_target().filter(|u| &u.arm == arm).map(|u| scores::score(u, info, experiment)).collect()
        };
        let (scratch_arm, strategy_arms) = arms.split_first().expect("arms() puts scratch first");
        let scratch = scores_of(&scratch_arm.id);
        let mut comparisons = Vec::new();
        let mut target_scores = Vec::new();
        let target_units: Vec<UnitResult> = of_target().cloned().collect();
        let target_looks = looks.as_ref().map(|g| guard::looks(experiment, g, info, &target_units, source.count()));
        decisions.extend(target_looks.iter().flatten().cloned());
        for (si, arm) in strategy_arms.iter().enumerate() {
            let transfer = scores_of(&arm.id);
            let seed = (ti * 100 + si) as u64;
            let mut c = compare(experiment, arm, &transfer, &scratch, source, seed);
            if let (Some(g), Some(l)) = (&looks, &target_looks) {
                let metrics = &mut c.metrics;
                let sources = source.count();
                c.guard = Some(guard::apply(experiment, g, l, info, &target_units, &arm.id, sources, seed, metrics));
            }
            comparisons.push(c);
            target_scores.push((transfer, scratch.clone()));
        }
        // Against the strategies named in `against`: the same comparison with that arm as the
        // baseline; no forward transfer or total time (both arms paid for the source).
        for (ri, reference) in experiment.against.iter().enumerate() {
            let baseline = scores_of(&ArmId::new(reference.clone()));
            for (si, arm) in strategy_arms.iter().enumerate().filter(|(_, a)| a.id != *reference) {
                let seed = (ti * 100 + si) as u64 + 10_000 * (ri as u64 + 1);
                let mut c = compare(experiment, arm, &scores_of(&arm.id), &baseline, source, seed);
                c.baseline = reference.clone();
                c.forward_transfer = None;
                c.total_time = TotalTime::NotApplicable;
                comparisons.push(c);
            }
        }
        scored.push(target_scores);
        targets.push(TargetSummary {
            key: key.to_string(),
            env: info.target.env.to_string(),
            threshold: info.threshold,
            random_return: info.random_return,
            curves,
            comparisons,
        });
    }
    let family = correct_headlines(&mut targets, primary);
    let (aggregate, unaggregated) = if infos.len() > 1 {
        let keys: Vec<String> = targets.iter().map(|t| t.key.clone()).collect();
        aggregate::aggregate(
            experiment,
            &arms[1..].iter().map(|a| a.id.to_string()).collect::<Vec<_>>(),
            &keys,
            &scored,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    Summary {
        experiment: experiment.name.clone(),
        source: source.name.clone(),
        source_steps: source.steps,
        sources: source.replicates.clone(),
        seeds: experiment.seeds,
        budget: experiment.budget,
        primary: primary.name().into(),
        family,
        targets,
        aggregate,
        unaggregated,
        failures,
        guard: looks.map(|looks| GuardSummary { looks, decisions, saved: guard::saved(experiment, units) }),
        partial: None,
    }
}

/// One strategy against scratch, before the study-wide correction of its headline.
fn compare(
    experiment: &Experiment,
    arm: &Arm,
    transfer: &[Scores],
    scratch: &[Scores],
    source: &SourceRecord,
    seed: u64,
) -> Comparison {
    let source_steps = source.steps_of(arm.source_name.as_deref());
    // With several sources, each value's source: seed k used source k mod K.
    let k = source.count();
    let group = |s: &[Scores]| -> Vec<usize> { s.iter().map(|s| (s.seed % k as u64) as usize).collect() };
    let (gt, gs) = (group(transfer), group(scratch));
    let groups = (k > 1).then_some((gt.as_slice(), gs.as_slice()));
    let censored = scores::censored_time(experiment, transfer.iter().chain(scratch));
    let finished = |s: &[Scores]| s.iter().filter(|s| s.finished).count();
    let counts = (finished(transfer), finished(scratch));
    let values = |s: &[Scores], m: Metric| -> Vec<f64> { s.iter().map(|s| s.get(m, censored)).collect() };
    let mut metrics: Vec<MetricStat> = Metric::ALL
        .iter()
        .enumerate()
        .map(|(i, &m)| {
            decision::compare(
                m,
                values(transfer, m),
                values(scratch, m),
                groups,
                experiment.resamples,
                seed * 10 + i as u64,
            )
        })
        .collect();
    // The other metrics are one family per comparison.
    let primary = experiment.primary;
    let mut others: Vec<&mut MetricStat> = metrics.iter_mut().filter(|m| m.metric != primary.name()).collect();
    decision::correct(&mut others, Correction::Comparison);
    let area = metrics.iter().find(|m| m.metric == Metric::Area.name()).expect("every metric is compared");
    let forward_transfer = stats::forward_transfer(area.difference, area.ci95, area.scratch.mean)
        .map(|(value, ci95)| Interval { value, ci95 });
    let failed = (transfer.len() - counts.0, scratch.len() - counts.1);
    let failures_p = stats::fisher_exact(failed.0 as u64, counts.0 as u64, failed.1 as u64, counts.1 as u64);
    // An empty arm (a partial results folder) says nothing about times.
    let speedup = if transfer.is_empty() || scratch.is_empty() {
        Speedup::NotEstimable
    } else {
        Speedup::of(median_time(transfer), median_time(scratch), censored)
    };
    let enough = transfer.len() >= decision::MIN_SEEDS && scratch.len() >= decision::MIN_SEEDS;
    let speedup_ci95 = (enough && !matches!(speedup, Speedup::ZeroShot | Speedup::NotEstimable))
        .then(|| speedup_interval(transfer, scratch, experiment.budget as f64));
    Comparison {
        strategy: arm.id.to_string(),
        baseline: scratch_label(),
        primary: primary.name().into(),
        forward_transfer,
        reached: (
            transfer.iter().filter(|s| s.time.is_some()).count(),
            scratch.iter().filter(|s| s.time.is_some()).count(),
        ),
        runs: (transfer.len(), scratch.len()),
        failed,
        failures_p,
        unreliable: failures_p < decision::ALPHA,
        speedup,
        speedup_ci95,
        total_time: if transfer.is_empty() || scratch.is_empty() {
            TotalTime::NotReached
        } else {
            TotalTime::of(
                median_time(transfer),
                median_time(scratch),
                source_steps as f64,
                experiment.budget as f64,
                censored,
            )
        },
        verdict: Verdict::Inconclusive,
        notes: Vec::new(),
        // Set with the study's family by `correct_headlines`.
        power: Power {
            design: stats::Design::TwoSample,
            sd: f64::NAN,
            replicates: 0,
            alpha: f64::NAN,
            min_detectable: f64::NAN,
            effect: experiment.effect(),
            replicates_for_effect: None,
        },
        guard: None,
        metrics,
    }
}

/// Corrects every comparison's primary metric by Holm over the study (one family), sets each
/// headline with its notes, and returns the family's size.
fn correct_headlines(targets: &mut [TargetSummary], primary: Metric) -> usize {
    let mut primaries: Vec<&mut MetricStat> = targets
        .iter_mut()
        .flat_map(|t| t.comparisons.iter_mut())
        .filter_map(|c| c.metrics.iter_mut().find(|m| m.metric == primary.name()))
        .collect();
    decision::correct(&mut primaries, Correction::Study);
    let family = primaries.iter().filter(|m| !m.p_value.is_nan()).count();
    for (threshold, c) in targets.iter_mut().flat_map(|t| {
        let threshold = t.threshold;
        t.comparisons.iter_mut().map(move |c| (threshold, c))
    }) {
        let stat = c.metrics.iter().find(|m| m.metric == primary.name()).expect("every metric is compared");
        let others: Vec<&MetricStat> = c.metrics.iter().filter(|m| m.metric != primary.name()).collect();
        let (verdict, mut notes) = decision::headline(stat, &others);
        c.power = power(stat, c.runs.0.min(c.runs.1), family, c.power.effect);
        if c.failed != (0, 0) {
            let counts = format!(
                "{} of {} {} units and {} of {} {} units failed (scored at their last evaluation)",
                c.failed.0,
                c.runs.0,
                if is_scratch(&c.baseline) { "transfer" } else { c.strategy.as_str() },
                c.failed.1,
                c.runs.1,
                c.baseline
            );
            notes.push(if c.unreliable {
                format!(
                    "unreliable: the arms fail at different rates (Fisher's exact p = {:.3}): {counts}",
                    c.failures_p
                )
            } else {
                format!("{counts}; the rates do not differ significantly (Fisher's exact p = {:.3})", c.failures_p)
            });
        }
        // (Only where some run finished: failed runs say nothing about the threshold.)
        if c.reached == (0, 0) && c.runs.0 + c.runs.1 > c.failed.0 + c.failed.1 {
            notes.push(format!(
                "no run of either arm reached the threshold {threshold}: time to threshold and the speed-up say \
                 nothing here; give the experiment a `threshold:` that the arms reach"
            ));
        }
        if verdict == Verdict::Inconclusive && c.power.min_detectable.is_finite() {
            let p = &c.power;
            if p.min_detectable > p.effect {
                let needed = p.replicates_for_effect.map_or_else(|| "more than 1000".to_string(), |n| n.to_string());
                notes.push(format!(
                    "underpowered: at {} {} this study detects {} differences of {:.3} or more with 80 % power; the smallest \
                     difference of interest, {:.3} (`effect`), needs {needed} {}",
                    p.replicates,
                    p.unit(),
                    stat.metric,
                    p.min_detectable,
                    p.effect,
                    p.unit()
                ));
            } else {
                notes.push(format!(
                    "inconclusive at adequate power: a difference of {:.3} on the {} (`effect`) would have been detected with \
                     80 % power (this study detects {:.3} or more)",
                    p.effect, stat.metric, p.min_detectable
                ));
            }
        }
        if let Some(levels) = stat.levels
            && levels.sources < 3
        {
            notes.push(format!(
                "only {} sources: the per-source test has {} degree(s) of freedom, so it detects only very large differences",
                levels.sources,
                levels.sources.saturating_sub(1)
            ));
        }
        notes.extend(c.guard.as_ref().and_then(|g| g.note.clone()));
        c.verdict = verdict;
        c.notes = notes;
    }
    family
}
