//! Unit records: what a (target, arm, seed) run leaves in `units/<target>/<arm>/seed<k>.ron`,
//! reading them back, and `evaluations.csv`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::transfer::TransferReport;
use crate::util::{FileError, file_safe, ron_options};

use super::StudyError;
use super::experiment::{Experiment, ResolvedTarget};
use super::ids::{ArmId, TargetId};

/// One evaluation of a unit: mean and standard deviation of the episodes' returns.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalPoint {
    /// The environment steps trained when it was taken.
    pub step: u64,
    /// The grid point it stands for: a multiple of `eval.every`, or the budget.
    pub nominal: u64,
    /// The mean return of the episodes.
    pub mean: f64,
    /// Their standard deviation.
    pub std: f64,
}

/// How a unit ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum UnitStatus {
    /// It trained to the budget.
    Finished,
    /// The unit's error; the other units carry on.
    Failed(String),
    /// The study's guard stopped its arm at the look at `step` (see [`super::sequential`]):
    /// the unit trained to that look and no further.
    Stopped {
        /// The step of the look that stopped it.
        step: u64,
    },
}

impl UnitStatus {
    /// Whether the unit ran as planned: to the budget, or to the look its guard stopped it at.
    pub fn completed(&self) -> bool {
        !matches!(self, UnitStatus::Failed(_))
    }
}

/// The record of one (target, arm, seed) run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitResult {
    /// The target's key.
    pub target: TargetId,
    /// The arm's label.
    pub arm: ArmId,
    /// The seed.
    pub seed: u64,
    /// Finished or failed.
    pub status: UnitStatus,
    /// Its evaluations, before the first update and at every grid point (a finished unit has at
    /// least the first).
    pub evals: Vec<EvalPoint>,
    /// Environment steps trained.
    pub steps: u64,
    /// What the transfer did (absent when the unit failed before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<TransferReport>,
}

/// A target with what normalisation needs (what `targets.ron` holds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// The target's key, spec and map.
    #[serde(flatten)]
    pub target: ResolvedTarget,
    /// The return that counts as solved.
    pub threshold: f64,
    /// The mean return of uniformly random actions (100 episodes).
    pub random_return: f64,
}

impl TargetInfo {
    /// A return normalised: 0 for a random policy, 1 at the threshold.
    pub fn score(&self, ret: f64) -> f64 {
        (ret - self.random_return) / (self.threshold - self.random_return)
    }
}

/// How much of a study a partial summary covers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// Units with a record.
    pub done: usize,
    /// Units of the study.
    pub total: usize,
}

/// Where a unit's record lives.
pub fn unit_path(out: &Path, target: &str, arm: &str, seed: u64) -> PathBuf {
    out.join("units").join(file_safe(target)).join(file_safe(arm)).join(format!("seed{seed}.ron"))
}

/// Reads the records of finished and failed units, sorted by target, arm and seed. A record
/// that does not parse, or a finished one without evaluations, is an error naming its file.
pub fn read_units(out: &Path) -> Result<Vec<UnitResult>, StudyError> {
    let mut units = Vec::new();
    let root = out.join("units");
    let Ok(targets) = std::fs::read_dir(&root) else { return Ok(units) };
    let list = |dir: &Path| std::fs::read_dir(dir).map_err(|e| FileError::new(dir, e));
    for target in targets.flatten() {
        for arm in list(&target.path())?.flatten() {
            for file in list(&arm.path())?.flatten() {
                let path = file.path();
                if path.extension().is_some_and(|e| e == "ron") {
                    units.push(read_unit(&path)?);
                }
            }
        }
    }
    units.sort_by(|a, b| (&a.target, &a.arm, a.seed).cmp(&(&b.target, &b.arm, b.seed)));
    Ok(units)
}

fn read_unit(path: &Path) -> Result<UnitResult, StudyError> {
    let text = crate::util::read_to_string(path)?;
    let unit: UnitResult = ron_options().from_str(&text).map_err(|e| StudyError::record(path, e))?;
    if unit.status.completed() && unit.evals.is_empty() {
        return Err(StudyError::record(
            path,
            "a finished unit without evaluations (`evals: []`); remove the file to run the unit again",
        ));
    }
    Ok(unit)
}

/// Every evaluation of every finished unit (and of every unit a guard stopped, up to its stop),
/// one row each, for plotting elsewhere.
pub fn evaluations_csv(units: &[UnitResult]) -> String {
    let mut out = String::from("target,arm,seed,step,nominal_step,mean_return,std_return\n");
    for u in units.iter().filter(|u| u.status.completed()) {
        for e in &u.evals {
            out.push_str(&format!("{},{},{},{},{},{},{}\n", u.target, u.arm, u.seed, e.step, e.nominal, e.mean, e.std));
        }
    }
    out
}

/// Reads a RON file of a results folder, errors naming it.
pub(crate) fn read_ron<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, StudyError> {
    crate::util::ron_options().from_str(&crate::util::read_to_string(path)?).map_err(|e| StudyError::record(path, e))
}

/// What a results folder says it holds: its experiment (checked) and its targets (each with a
/// threshold above its random return: normalisation divides by the difference, and a
/// hand-edited `targets.ron` must keep them apart). `report` and `status` start from it.
pub fn read_setup(out: &Path) -> Result<(Experiment, Vec<TargetInfo>), StudyError> {
    let experiment: Experiment = read_ron(&out.join("experiment.ron"))?;
    experiment.check_fields()?;
    let infos: Vec<TargetInfo> = read_ron(&out.join("targets.ron"))?;
    if let Some(t) =
        infos.iter().find(|t| t.threshold.partial_cmp(&t.random_return) != Some(std::cmp::Ordering::Greater))
    {
        return Err(StudyError::record(
            &out.join("targets.ron"),
            format!(
                "target {}: threshold {} is not above the random return {}",
                t.target.key, t.threshold, t.random_return
            ),
        ));
    }
    Ok((experiment, infos))
}
