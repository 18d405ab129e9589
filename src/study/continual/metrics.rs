//! What a sequence's records say: each unit's performance matrix `R[p][j]` (the normalised
//! score of task `j` at the end of phase `p`), the continual-learning metrics read from it, and
//! the verdicts of each method against fine-tuning and against single-task training.
//!
//! - **Average performance**: the mean of the last row, `mean_j R[P-1][j]`.
//! - **Forgetting** (Chaudhry et al. 2018): per task trained before the last phase, the best
//!   value of an earlier row minus the final one, `max_{p<P-1} R[p][j] - R[P-1][j]`; averaged.
//! - **Backward transfer** (Lopez-Paz & Ranzato 2017): `R[P-1][j] - R[p_j][j]`, `p_j` the last
//!   phase that trained task `j` (tasks trained last excluded); averaged.
//! - **Forward transfer** (Continual World): per task, the normalised area under its curve in
//!   the first phase that trains it, against the single-task reference's mean area on that task,
//!   `(AUC - AUC_ref) / (1 - AUC_ref)`; averaged over tasks.
//! - **Single-task performance** (the reference's own): each task's score at the end of the
//!   phase that trained it alone.
//!
//! Verdicts are Welch's tests on the per-seed average performance (a method against
//! fine-tuning; every method against the reference's single-task performance), Holm-corrected
//! as one family; intervals beside the other metrics are t-intervals, uncorrected.

use serde::{Deserialize, Serialize};

use crate::study::records::UnitStatus;
use crate::study::stats;

use super::sequence::{BASELINE, SINGLE, TaskInfo};
use super::unit::SequenceRecord;

/// The shape of a sequence: its tasks, phases and per-task budget.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Tasks in the sequence.
    pub tasks: usize,
    /// Phases (tasks times repeats).
    pub phases: usize,
    /// Steps per phase.
    pub budget: u64,
}

/// A unit's performance matrix: row `p` holds every task's normalised score at the end of phase
/// `p`; `None` when a phase's last evaluation is missing (a failed unit).
pub fn matrix(record: &SequenceRecord, tasks: &[TaskInfo], shape: Shape) -> Option<Vec<Vec<f64>>> {
    (0..shape.phases)
        .map(|p| {
            let e = record.evals.iter().find(|e| e.phase == p && e.nominal == shape.budget)?;
            Some(e.returns.iter().zip(tasks).map(|(r, t)| t.normalise(*r)).collect())
        })
        .collect()
}

/// The last phase that trains task `j` (of phases `0..phases`).
fn last_phase(j: usize, shape: Shape) -> usize {
    (0..shape.phases).rev().find(|p| p % shape.tasks == j).unwrap_or(j)
}

/// The mean of the last row.
pub fn average(r: &[Vec<f64>]) -> f64 {
    stats::mean(r.last().map_or(&[][..], |row| row.as_slice()))
}

/// Forgetting per task (`None` for a task the last phase trains), and its mean.
pub fn forgetting(r: &[Vec<f64>], shape: Shape) -> (Vec<Option<f64>>, f64) {
    let last = shape.phases - 1;
    let per: Vec<Option<f64>> = (0..shape.tasks)
        .map(|j| {
            (last_phase(j, shape) < last).then(|| {
                let best = (0..last).map(|p| r[p][j]).fold(f64::NEG_INFINITY, f64::max);
                best - r[last][j]
            })
        })
        .collect();
    let values: Vec<f64> = per.iter().flatten().copied().collect();
    (per, stats::mean(&values))
}

/// Backward transfer: the mean over tasks not trained last of `R[P-1][j] - R[p_j][j]`.
pub fn backward_transfer(r: &[Vec<f64>], shape: Shape) -> f64 {
    let last = shape.phases - 1;
    let values: Vec<f64> = (0..shape.tasks)
        .map(|j| (j, last_phase(j, shape)))
        .filter(|&(_, p)| p < last)
        .map(|(j, p)| r[last][j] - r[p][j])
        .collect();
    stats::mean(&values)
}

/// Each task's normalised area under its own curve in the first phase that trains it (the
/// trapezoid over the evaluation grid, divided by the budget); `None` where evaluations are
/// missing.
pub fn areas(record: &SequenceRecord, tasks: &[TaskInfo], shape: Shape) -> Vec<Option<f64>> {
    (0..shape.tasks)
        .map(|j| {
            let points: Vec<(f64, f64)> = record
                .evals
                .iter()
                .filter(|e| e.phase == j)
                .map(|e| (e.nominal as f64, tasks[j].normalise(e.returns[j])))
                .collect();
            if points.last().is_none_or(|p| p.0 != shape.budget as f64) {
                return None;
            }
            let (x, y): (Vec<f64>, Vec<f64>) = points.into_iter().unzip();
            Some(stats::trapezoid(&x, &y) / shape.budget as f64)
        })
        .collect()
}

/// A unit's scores.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnitScores {
    /// The method.
    pub method: String,
    /// The seed.
    pub seed: u64,
    /// Its performance matrix.
    pub matrix: Vec<Vec<f64>>,
    /// Average performance at the end.
    pub average: f64,
    /// Mean forgetting.
    pub forgetting: f64,
    /// Per-task forgetting.
    pub forgetting_per_task: Vec<Option<f64>>,
    /// Backward transfer.
    pub backward: f64,
    /// Per-task areas of the first phase training each task.
    pub areas: Vec<f64>,
    /// Each task's score at the end of the first phase that trains it, averaged over tasks:
    /// the reference's single-task performance.
    pub own: f64,
}

/// A unit scored, or `None` when it failed or misses an evaluation.
pub fn score(record: &SequenceRecord, tasks: &[TaskInfo], shape: Shape) -> Option<UnitScores> {
    if record.status != UnitStatus::Finished {
        return None;
    }
    let r = matrix(record, tasks, shape)?;
    let areas: Option<Vec<f64>> = areas(record, tasks, shape).into_iter().collect();
    let (forgetting_per_task, forgetting) = forgetting(&r, shape);
    let own = stats::mean(&(0..shape.tasks).map(|j| r[j][j]).collect::<Vec<_>>());
    Some(UnitScores {
        method: record.method.clone(),
        seed: record.seed,
        average: average(&r),
        forgetting,
        forgetting_per_task,
        backward: backward_transfer(&r, shape),
        areas: areas?,
        own,
        matrix: r,
    })
}

/// A mean over seeds with its 95 % t-interval (uncorrected; `None` below two values).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Estimate {
    /// The mean.
    pub mean: f64,
    /// The 95 % t-interval.
    pub ci: Option<(f64, f64)>,
}

impl Estimate {
    /// The estimate of `values`.
    pub fn of(values: &[f64]) -> Estimate {
        Estimate { mean: stats::mean(values), ci: stats::one_sample_t(values).map(|t| t.interval(0.95)) }
    }
}

/// A method across its seeds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MethodSummary {
    /// The method.
    pub name: String,
    /// Units scored.
    pub scored: usize,
    /// Units that failed (not scored).
    pub failed: usize,
    /// Average performance at the end.
    pub average: Estimate,
    /// Forgetting.
    pub forgetting: Estimate,
    /// Backward transfer.
    pub backward: Estimate,
    /// Forward transfer against the single-task reference (`None` for the reference itself, or
    /// when it is not scored).
    pub forward: Option<Estimate>,
    /// Per-task forward transfer (means over seeds).
    pub forward_per_task: Vec<Option<f64>>,
    /// Per-task forgetting (means over seeds).
    pub forgetting_per_task: Vec<Option<f64>>,
    /// Each task's score at the end of the phase that trained it, averaged over tasks.
    pub own: Estimate,
    /// The mean performance matrix.
    pub matrix: Vec<Vec<f64>>,
}

/// What a comparison concludes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// Higher, significantly after Holm.
    Better,
    /// Lower, significantly after Holm.
    Worse,
    /// No significant difference.
    Inconclusive,
    /// Fewer than three scored seeds on a side.
    TooFewSeeds,
}

/// A verdict row: `method` against `against` on the average performance at the end.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Comparison {
    /// The method.
    pub method: String,
    /// `finetune`, or `single-task` (its single-task performance).
    pub against: String,
    /// Difference of means.
    pub difference: f64,
    /// Its 95 % Welch interval (uncorrected).
    pub ci: Option<(f64, f64)>,
    /// Welch's p-value.
    pub p: f64,
    /// Holm-adjusted over the study's comparisons.
    pub p_holm: f64,
    /// The verdict.
    pub call: Call,
}

/// The whole study.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContinualSummary {
    /// The tasks' keys.
    pub tasks: Vec<String>,
    /// Phases.
    pub phases: usize,
    /// Methods, in the run's order.
    pub methods: Vec<MethodSummary>,
    /// The verdicts.
    pub comparisons: Vec<Comparison>,
    /// Units recorded of the study's units, when not all are.
    pub partial: Option<(usize, usize)>,
}

/// Summarises the records of `methods` (in order).
pub fn summarize(methods: &[String], records: &[SequenceRecord], tasks: &[TaskInfo], shape: Shape) -> ContinualSummary {
    let scores: Vec<(String, Vec<UnitScores>, usize)> = methods
        .iter()
        .map(|m| {
            let mine: Vec<&SequenceRecord> = records.iter().filter(|r| &r.method == m).collect();
            let scored: Vec<UnitScores> = mine.iter().filter_map(|r| score(r, tasks, shape)).collect();
            let failed = mine.len() - scored.len();
            (m.clone(), scored, failed)
        })
        .collect();
    let reference: Option<Vec<f64>> = scores.iter().find(|(m, s, _)| m == SINGLE && !s.is_empty()).map(|(_, s, _)| {
        (0..shape.tasks).map(|j| stats::mean(&s.iter().map(|u| u.areas[j]).collect::<Vec<_>>())).collect()
    });
    let ft = |area: f64, reference: f64| (reference < 1.0).then(|| (area - reference) / (1.0 - reference));
    let mut summaries = Vec::new();
    for (name, scored, failed) in &scores {
        let column = |f: &dyn Fn(&UnitScores) -> f64| scored.iter().map(f).collect::<Vec<f64>>();
        let per_task_mean = |f: &dyn Fn(&UnitScores, usize) -> Option<f64>| -> Vec<Option<f64>> {
            (0..shape.tasks)
                .map(|j| {
                    let v: Vec<f64> = scored.iter().filter_map(|u| f(u, j)).collect();
                    (!v.is_empty()).then(|| stats::mean(&v))
                })
                .collect()
        };
        let (forward, forward_per_task) = match (&reference, name.as_str()) {
            (Some(reference), n) if n != SINGLE => {
                let per_seed: Vec<f64> = scored
                    .iter()
                    .filter_map(|u| {
                        let v: Option<Vec<f64>> = (0..shape.tasks).map(|j| ft(u.areas[j], reference[j])).collect();
                        v.map(|v| stats::mean(&v))
                    })
                    .collect();
                let per_task = per_task_mean(&|u, j| ft(u.areas[j], reference[j]));
                ((!per_seed.is_empty()).then(|| Estimate::of(&per_seed)), per_task)
            }
            _ => (None, vec![None; shape.tasks]),
        };
        let matrix = (0..shape.phases)
            .map(|p| (0..shape.tasks).map(|j| stats::mean(&column(&|u| u.matrix[p][j]))).collect())
            .collect();
        summaries.push(MethodSummary {
            name: name.clone(),
            scored: scored.len(),
            failed: *failed,
            average: Estimate::of(&column(&|u| u.average)),
            forgetting: Estimate::of(&column(&|u| u.forgetting)),
            backward: Estimate::of(&column(&|u| u.backward)),
            forward,
            forward_per_task,
            forgetting_per_task: per_task_mean(&|u, j| u.forgetting_per_task[j]),
            own: Estimate::of(&column(&|u| u.own)),
            matrix,
        });
    }
    let comparisons = compare(&scores);
    ContinualSummary {
        tasks: tasks.iter().map(|t| t.task.key.to_string()).collect(),
        phases: shape.phases,
        methods: summaries,
        comparisons,
        partial: None,
    }
}

/// Every method against fine-tuning and against single-task performance, Holm over all.
fn compare(scores: &[(String, Vec<UnitScores>, usize)]) -> Vec<Comparison> {
    let values = |name: &str, f: fn(&UnitScores) -> f64| -> Option<Vec<f64>> {
        scores.iter().find(|(m, _, _)| m == name).map(|(_, s, _)| s.iter().map(f).collect())
    };
    let mut pairs: Vec<(String, String, Vec<f64>, Vec<f64>)> = Vec::new();
    for (name, scored, _) in scores.iter().filter(|(m, _, _)| m != SINGLE) {
        let mine: Vec<f64> = scored.iter().map(|u| u.average).collect();
        if name != BASELINE {
            if let Some(base) = values(BASELINE, |u| u.average) {
                pairs.push((name.clone(), BASELINE.into(), mine.clone(), base));
            }
        }
        if let Some(single) = values(SINGLE, |u| u.own) {
            pairs.push((name.clone(), SINGLE.into(), mine, single));
        }
    }
    let tests: Vec<Option<stats::Welch>> =
        pairs.iter().map(|(_, _, x, y)| if x.len() < 3 || y.len() < 3 { None } else { stats::welch(x, y) }).collect();
    let ps: Vec<f64> = tests.iter().map(|t| t.as_ref().map_or(1.0, |t| t.p)).collect();
    let adjusted = stats::holm(&ps);
    pairs
        .into_iter()
        .zip(tests)
        .zip(adjusted)
        .map(|(((method, against, x, y), test), p_holm)| {
            let difference = stats::mean(&x) - stats::mean(&y);
            let call = match &test {
                None => Call::TooFewSeeds,
                Some(_) if p_holm < 0.05 && difference > 0.0 => Call::Better,
                Some(_) if p_holm < 0.05 && difference < 0.0 => Call::Worse,
                Some(_) => Call::Inconclusive,
            };
            Comparison {
                method,
                against,
                difference,
                ci: test.as_ref().map(|t| t.interval(0.95)),
                p: test.as_ref().map_or(f64::NAN, |t| t.p),
                p_holm,
                call,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Forgetting and backward transfer by their definitions on a hand-made matrix of three
    /// tasks: task 0 rises to 0.9, falls to 0.5; task 1 peaks at 0.8 when learned, ends at 0.6.
    #[test]
    fn forgetting_and_backward_transfer_follow_their_definitions() {
        let r = vec![vec![0.9, 0.1, 0.0], vec![0.7, 0.8, 0.2], vec![0.5, 0.6, 0.9]];
        let shape = Shape { tasks: 3, phases: 3, budget: 10 };
        let (per, mean) = forgetting(&r, shape);
        assert_eq!(per, vec![Some(0.9 - 0.5), Some(0.8 - 0.6), None]);
        assert!((mean - (0.4 + 0.2) / 2.0).abs() < 1e-12);
        // BWT: (R[2][0] - R[0][0] + R[2][1] - R[1][1]) / 2.
        assert!((backward_transfer(&r, shape) - ((0.5 - 0.9) + (0.6 - 0.8)) / 2.0).abs() < 1e-12);
        assert!((average(&r) - (0.5 + 0.6 + 0.9) / 3.0).abs() < 1e-12);
        // Forgetting takes the best earlier value, not the value when the task was learned.
        let r = vec![vec![0.4, 0.0], vec![0.9, 0.7], vec![0.3, 0.6], vec![0.2, 0.9]];
        let shape = Shape { tasks: 2, phases: 4, budget: 10 };
        let (per, _) = forgetting(&r, shape);
        assert_eq!(per, vec![Some(0.9 - 0.2), None]);
        // Repeats: task 0 last trained in phase 2.
        assert!((backward_transfer(&r, shape) - (0.2 - 0.3)).abs() < 1e-12);
    }
}
