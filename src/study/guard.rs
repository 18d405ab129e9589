//! A study's sequential guard (`guard: (looks: 4)`): negative transfer caught while it happens.
//!
//! At each look (a step of the budget, see [`Guard::steps`]) and once every unit of a target has
//! reached it, each strategy is tested against scratch on the **area under the curve so far**
//! (each unit's evaluations up to the look, scored as [`scores`] scores a whole run: intention to
//! treat, so a unit that failed earlier keeps its last evaluation), by the test that decides the
//! study's verdicts ([`decision::deciding_test`]: Welch's, or the per-source test with several
//! sources), made normal through its p-value ([`sequential::z_of`]). A strategy whose `Z`
//! crosses the harm boundary is stopped: its units train no further, and its verdict is
//! `NEGATIVE (stopped at step S)`. With `success: true`, one that crosses the upper boundary
//! stops too, `positive (stopped at step S)`.
//!
//! Error rates: each comparison's two sides spend `ALPHA / 2 / m` each, `m` being the study's
//! family of headlines (every comparison, the `against` ones included), so that a false stop
//! anywhere in the study happens at most `ALPHA` of the time (Bonferroni over the family); the
//! verdicts then take Holm's correction of the comparisons' stage-wise p-values as a study
//! without a guard does. An arm stopped at the harm boundary has a p-value of at most
//! `ALPHA / m`, so Holm calls it NEGATIVE whatever the other comparisons say: the stop and the
//! verdict never disagree.
//!
//! Everything here is a function of the units' evaluations: every process of a distributed run,
//! and `report` later, reaches the same decisions from the same records and checkpoints, and the
//! decisions do not depend on which process trained what, or when.

use serde::{Deserialize, Serialize};

use super::decision::{ALPHA, Correction, MetricStat, compare, correct, deciding_test};
use super::experiment::Experiment;
use super::ids::{ArmId, Metric, TargetId};
use super::records::{TargetInfo, UnitResult, UnitStatus};
use super::resume::{peek, resume_path};
use super::scores;
use super::sequential::{Crossing, Design, Guard, z_of};

/// A study's guard resolved: the looks' steps and the boundaries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Looks {
    /// The guard as the experiment gives it.
    pub guard: Guard,
    /// The step of each look (the last is the budget).
    pub steps: Vec<u64>,
    /// Comparisons in the study's family (the Bonferroni divisor of each side's level).
    pub family: usize,
    /// The boundaries.
    pub design: Design,
}

impl Looks {
    /// The guard of `experiment`, if it has one.
    pub fn of(experiment: &Experiment) -> Option<Looks> {
        let guard = experiment.guard.clone()?;
        let steps = guard.steps(experiment.budget, experiment.eval.every);
        let times: Vec<f64> = steps.iter().map(|&s| s as f64 / experiment.budget as f64).collect();
        let strategies = experiment.strategy_arms().len();
        let family = experiment.targets.len() * (strategies + experiment.against.len() * strategies.saturating_sub(1));
        let side = ALPHA / 2.0 / family.max(1) as f64;
        let design = Design::cached(&times, side, side, guard.spending, guard.success);
        Some(Looks { guard, steps, family, design })
    }
}

/// One strategy at one look.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmLook {
    /// The strategy.
    pub arm: ArmId,
    /// Mean area so far, transfer minus scratch.
    pub difference: f64,
    /// The standardised statistic (NaN: no test, too few seeds).
    pub z: f64,
    /// The boundary it crossed, if any.
    pub crossed: Option<Crossing>,
}

/// One look at one target: the strategies still running, tested.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Look {
    /// The target.
    pub target: TargetId,
    /// The look's number, from 1.
    pub look: usize,
    /// Its step.
    pub step: u64,
    /// The harm boundary (on `Z`).
    pub lower: f64,
    /// The success boundary (infinite where there is none).
    pub upper: f64,
    /// Each strategy still running.
    pub arms: Vec<ArmLook>,
}

/// Whether `unit` has been evaluated at `step` or ended (failed, or stopped by its guard). A
/// unit still training is passed as a record with its evaluations so far and `Finished`.
fn reached(unit: &UnitResult, step: u64) -> bool {
    match unit.status {
        UnitStatus::Finished => unit.evals.last().is_some_and(|e| e.nominal >= step),
        UnitStatus::Failed(_) | UnitStatus::Stopped { .. } => true,
    }
}

/// The areas so far at `step` of `arm`'s units on `info`'s target (each unit's evaluations up
/// to the step, scored as a run whose budget is the step), with each one's source (seed `k` used
/// source `k mod sources`).
fn areas_at(
    experiment: &Experiment,
    info: &TargetInfo,
    units: &[UnitResult],
    arm: &ArmId,
    step: u64,
    sources: usize,
) -> (Vec<f64>, Vec<usize>) {
    let mut truncated = experiment.clone();
    truncated.budget = step;
    units
        .iter()
        .filter(|u| u.target == info.target.key && &u.arm == arm)
        .map(|u| {
            let mut cut = u.clone();
            cut.evals.retain(|e| e.nominal <= step);
            if matches!(cut.status, UnitStatus::Stopped { .. }) {
                cut.status = UnitStatus::Finished;
            }
            (scores::score(&cut, info, &truncated).area, (u.seed % sources.max(1) as u64) as usize)
        })
        .unzip()
}

/// The looks of one target that its units decide: look `k` once every unit of scratch and of
/// each strategy still running (every seed) has reached its step. `units` are the target's units
/// (records, and those still training as described at [`reached`]); `sources` the number of
/// source checkpoints (target seed `k` used source `k mod K`).
pub fn looks(experiment: &Experiment, looks: &Looks, info: &TargetInfo, units: &[UnitResult], sources: usize) -> Vec<Look> {
    let scratch = ArmId::new("scratch");
    let mut running: Vec<ArmId> = experiment.strategy_arms().into_iter().map(|(id, _, _)| id).collect();
    let of_arm = |arm: &ArmId| -> Vec<&UnitResult> {
        units.iter().filter(|u| u.target == info.target.key && &u.arm == arm).collect()
    };
    let mut out = Vec::new();
    for (i, &step) in looks.steps.iter().enumerate() {
        let ready = std::iter::once(&scratch).chain(&running).all(|arm| {
            let arm_units = of_arm(arm);
            arm_units.len() as u64 == experiment.seeds && arm_units.iter().all(|u| reached(u, step))
        });
        if !ready || running.is_empty() {
            break;
        }
        let values = |arm: &ArmId| areas_at(experiment, info, units, arm, step, sources);
        let (s, gs) = values(&scratch);
        let arms: Vec<ArmLook> = running
            .iter()
            .map(|arm| {
                let (t, gt) = values(arm);
                let groups = (sources > 1).then_some((gt.as_slice(), gs.as_slice()));
                let (difference, z) = match deciding_test(Metric::Area, &t, &s, groups) {
                    Some(w) => (w.difference, z_of(w.p, w.difference)),
                    None => (f64::NAN, f64::NAN),
                };
                let crossed = looks.design.crossing(i, z).filter(|_| z.is_finite() && i + 1 < looks.steps.len());
                ArmLook { arm: arm.clone(), difference, z, crossed }
            })
            .collect();
        running.retain(|arm| arms.iter().any(|a| &a.arm == arm && a.crossed.is_none()));
        out.push(Look {
            target: info.target.key.clone(),
            look: i + 1,
            step,
            lower: looks.design.lower[i],
            upper: looks.design.upper[i],
            arms,
        });
    }
    out
}

/// Where a strategy's guard left it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmGuard {
    /// Its statistic at each look it was tested at: (step, `Z`).
    pub z: Vec<(u64, f64)>,
    /// The look that stopped it: (step, which boundary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<(u64, Crossing)>,
    /// The stage-wise two-sided p-value of its trajectory (NaN until it stops or reaches the
    /// last look).
    pub p_value: f64,
    /// What the report says of it (a stop, or looks still to come).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Where the guard left `arm` after `looks` (one target's): its statistics, its stop and its
/// stage-wise p-value.
pub fn arm_guard(guard: &Looks, looks: &[Look], arm: &ArmId) -> ArmGuard {
    let mut out = ArmGuard { z: Vec::new(), stopped: None, p_value: f64::NAN, note: None };
    for look in looks {
        let Some(a) = look.arms.iter().find(|a| &a.arm == arm) else { continue };
        out.z.push((look.step, a.z));
        let last = look.look == guard.steps.len();
        if a.crossed.is_some() || last {
            out.p_value = guard.design.p_value(look.look - 1, a.z);
            out.stopped = a.crossed.map(|c| (look.step, c));
        }
        if let Some(crossed) = a.crossed {
            let (side, boundary) = match crossed {
                Crossing::Harm => ("harm", look.lower),
                Crossing::Success => ("success", look.upper),
            };
            out.note = Some(format!(
                "stopped by the sequential guard at step {} (look {} of {}): Z = {:.2} crossed the {side} boundary {:.2}; the \
                 area is compared at the stop, with the stage-wise p-value; the asymptotic performance and the time to \
                 threshold are not tested (their data end at the stop)",
                look.step,
                look.look,
                guard.steps.len(),
                a.z,
                boundary
            ));
        }
    }
    if out.p_value.is_nan() && out.note.is_none() {
        out.note = Some(format!(
            "the sequential guard has decided {} of its {} looks: no verdict until the last",
            looks.iter().filter(|l| l.arms.iter().any(|a| &a.arm == arm)).count(),
            guard.steps.len()
        ));
    }
    out
}

/// The compute a guard saved: per stopped strategy and target, the environment steps its units
/// did not train (the wall time is the report's: it reads the journal).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// The target.
    pub target: String,
    /// The strategy.
    pub arm: String,
    /// The step it stopped at.
    pub step: u64,
    /// Environment steps trained over its units.
    pub trained: u64,
    /// Environment steps not trained, over its units.
    pub steps: u64,
    /// Of the steps the arm would have trained without the guard.
    pub share: f64,
}

/// The compute saved by the stops among `units` (records).
pub fn saved(experiment: &Experiment, units: &[UnitResult]) -> Vec<Saved> {
    let mut out: Vec<Saved> = Vec::new();
    for u in units {
        let UnitStatus::Stopped { step } = u.status else { continue };
        let left = experiment.budget.saturating_sub(u.steps);
        match out.iter_mut().find(|s| s.target == u.target.as_str() && s.arm == u.arm.as_str()) {
            Some(s) => {
                s.steps += left;
                s.trained += u.steps;
            }
            None => out.push(Saved {
                target: u.target.to_string(),
                arm: u.arm.to_string(),
                step,
                trained: u.steps,
                steps: left,
                share: 0.0,
            }),
        }
    }
    for s in &mut out {
        s.share = s.steps as f64 / (experiment.budget * experiment.seeds) as f64;
    }
    out
}

/// A comparison's metrics under the guard (`metrics` as [`decision::compare`] made them for
/// `arm` against scratch on one target): the primary, the area, takes the stage-wise p-value of
/// the arm's trajectory; for an arm that stopped, the area is the one at the stop, against
/// scratch's there, and the asymptotic performance and the time to threshold are not tested
/// (their data end at the stop; a naive test of them would ignore the looks). Returns where the
/// guard left the arm.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    experiment: &Experiment,
    guard: &Looks,
    target_looks: &[Look],
    info: &TargetInfo,
    units: &[UnitResult],
    arm: &ArmId,
    sources: usize,
    seed: u64,
    metrics: &mut [MetricStat],
) -> ArmGuard {
    let outcome = arm_guard(guard, target_looks, arm);
    if let Some((step, _)) = outcome.stopped {
        let values = |a: &ArmId| areas_at(experiment, info, units, a, step, sources);
        let ((t, gt), (s, gs)) = (values(arm), values(&ArmId::new("scratch")));
        let groups = (sources > 1).then_some((gt.as_slice(), gs.as_slice()));
        let restated = compare(Metric::Area, t, s, groups, experiment.resamples, seed);
        for m in metrics.iter_mut() {
            if m.metric == Metric::Area.name() {
                *m = restated.clone();
            } else if m.metric == Metric::Asymptotic.name() || m.metric == Metric::Time.name() {
                m.p_value = f64::NAN;
            }
        }
    }
    for m in metrics.iter_mut().filter(|m| m.metric == Metric::Area.name()) {
        m.p_value = outcome.p_value;
    }
    let mut others: Vec<&mut MetricStat> = metrics.iter_mut().filter(|m| m.metric != Metric::Area.name()).collect();
    correct(&mut others, Correction::Comparison);
    outcome
}

/// What the report shows of a guard: the design, every look's decisions, the compute saved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardSummary {
    /// The looks and boundaries.
    pub looks: Looks,
    /// Every target's looks so far.
    pub decisions: Vec<Look>,
    /// The compute saved by stops.
    pub saved: Vec<Saved>,
}

/// The units of a study as the guard sees them while it runs: every record, and for each unit
/// without one but with a preemption checkpoint, its evaluations so far (as a `Finished` record
/// that has not reached the budget). `units` lists every unit: target, arm, seed, record path.
pub fn in_flight<'a>(
    records: &[UnitResult],
    units: impl IntoIterator<Item = (&'a TargetId, &'a ArmId, u64, std::path::PathBuf)>,
) -> Vec<UnitResult> {
    let mut out = records.to_vec();
    for (target, arm, seed, path) in units {
        if records.iter().any(|u| &u.target == target && &u.arm == arm && u.seed == seed) {
            continue;
        }
        if let Some(progress) = peek(&resume_path(&path)) {
            out.push(UnitResult {
                target: target.clone(),
                arm: arm.clone(),
                seed,
                status: UnitStatus::Finished,
                evals: progress.evals,
                steps: progress.steps,
                report: None,
            });
        }
    }
    out
}

/// The strategies a target's looks stopped, with the step.
pub fn stopped(looks: &[Look]) -> Vec<(ArmId, u64)> {
    looks.iter().flat_map(|l| l.arms.iter().filter(|a| a.crossed.is_some()).map(|a| (a.arm.clone(), l.step))).collect()
}
