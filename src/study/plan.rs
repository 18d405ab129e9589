//! The first stage of a run: an [`Experiment`] resolved once into a [`Plan`]: typed target and
//! arm identifiers, each target's threshold and random-policy return, and the source policy when
//! the experiment names one. Units run from the plan; nothing downstream re-derives it. A
//! results folder's setup files hold the same targets, read back as a [`Folder`]; both give
//! their [`Units`], the one definition of which units a study has and where their records go.

use std::path::{Path, PathBuf};

use crate::agent::checkpoint::Loaded;
use crate::env::Registry;
use crate::transfer::Strategy;

use super::StudyError;
pub use super::records::TargetInfo;
pub use super::ids::{ArmId, TargetId};
use super::experiment::{Experiment, Source};
use super::records::{read_setup, unit_path};
use super::validate::check;

/// One arm of the study: scratch or a strategy, with its label.
#[derive(Clone, Debug, PartialEq)]
pub struct Arm {
    /// The arm's label.
    pub id: ArmId,
    /// What it does with the source.
    pub strategy: Strategy,
    /// In a transfer matrix, the source it transfers from (its index in the matrix; scratch
    /// takes the first's hyperparameters); `None` otherwise (seed `k` uses source `k mod K`).
    pub source: Option<usize>,
    /// In a transfer matrix, that source's name.
    pub source_name: Option<String>,
}

/// The arms of an experiment: scratch first, then [`Experiment::strategy_arms`] (in a transfer
/// matrix, each source with each strategy; scratch takes the first source's hyperparameters).
pub fn arms(experiment: &Experiment) -> Vec<Arm> {
    let matrix = matches!(experiment.source, Source::Matrix(_));
    let scratch =
        Arm { id: ArmId::new("scratch"), strategy: Strategy::scratch(), source: matrix.then_some(0), source_name: None };
    std::iter::once(scratch)
        .chain(experiment.strategy_arms().into_iter().map(|(id, strategy, source)| Arm {
            id,
            strategy,
            source: source.as_ref().map(|(i, _)| *i),
            source_name: source.map(|(_, n)| n),
        }))
        .collect()
}

/// An experiment resolved for running.
pub struct Plan<'e> {
    /// The experiment.
    pub experiment: &'e Experiment,
    /// Its targets, in the experiment's order.
    pub targets: Vec<TargetInfo>,
    /// Scratch, then each strategy.
    pub arms: Vec<Arm>,
    /// The source policy, loaded once, when the experiment names one; a source to pretrain is
    /// made by [`super::source::obtain`] once the results folder is locked.
    pub policy: Option<Loaded>,
    /// What the experiment may not mean, to show before the run.
    pub warnings: Vec<String>,
}

impl<'e> Plan<'e> {
    /// Checks `experiment` (as [`super::validate::validate`] does) and resolves it: thresholds,
    /// random-policy returns, arms.
    pub fn resolve(experiment: &'e Experiment, registry: &Registry) -> Result<Plan<'e>, StudyError> {
        Self::resolve_in(experiment, registry, None)
    }

    /// [`Plan::resolve`] for a run into the results folder `out`, which keeps the targets'
    /// random-policy returns for the study's other processes.
    pub fn resolve_in(
        experiment: &'e Experiment,
        registry: &Registry,
        out: Option<&Path>,
    ) -> Result<Plan<'e>, StudyError> {
        let checked = check(experiment, registry, out)?;
        let targets = checked
            .targets
            .into_iter()
            .zip(checked.thresholds)
            .zip(checked.random_returns)
            .map(|((target, threshold), random_return)| TargetInfo { target, threshold, random_return })
            .collect();
        Ok(Plan { experiment, targets, arms: arms(experiment), policy: checked.policy, warnings: checked.warnings })
    }

    /// The units of the study.
    pub fn units(&self) -> Units<'_> {
        Units { targets: &self.targets, arms: &self.arms, seeds: self.experiment.seeds }
    }
}

/// A study's results folder as its setup files (`experiment.ron`, `targets.ron`) define it: what
/// `report` and `status` read.
pub struct Folder {
    /// The folder.
    pub out: PathBuf,
    /// The experiment it was run with.
    pub experiment: Experiment,
    /// Its targets as the plan resolved them.
    pub targets: Vec<TargetInfo>,
    /// Scratch, then each strategy.
    pub arms: Vec<Arm>,
}

impl Folder {
    /// Reads the setup of the results folder `out` (errors name the file).
    pub fn open(out: &Path) -> Result<Folder, StudyError> {
        let (experiment, targets) = read_setup(out)?;
        let arms = arms(&experiment);
        Ok(Folder { out: out.to_path_buf(), experiment, targets, arms })
    }

    /// The units of the study.
    pub fn units(&self) -> Units<'_> {
        Units { targets: &self.targets, arms: &self.arms, seeds: self.experiment.seeds }
    }
}

/// Every (target, arm, seed) of a study: target by target, arm by arm, seed by seed (the order
/// shards split and reports list).
#[derive(Clone, Copy)]
pub struct Units<'a> {
    targets: &'a [TargetInfo],
    arms: &'a [Arm],
    seeds: u64,
}

impl<'a> Units<'a> {
    /// How many.
    pub fn len(&self) -> usize {
        self.targets.len() * self.arms.len() * self.seeds as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each unit's target, arm and seed, in order.
    pub fn iter(self) -> impl Iterator<Item = (&'a TargetInfo, &'a Arm, u64)> + 'a {
        let (arms, seeds) = (self.arms, self.seeds);
        self.targets.iter().flat_map(move |t| arms.iter().flat_map(move |a| (0..seeds).map(move |seed| (t, a, seed))))
    }

    /// [`Units::iter`] with the path of each unit's record in the results folder `out`.
    pub fn with_paths(self, out: &'a Path) -> impl Iterator<Item = (&'a TargetInfo, &'a Arm, u64, PathBuf)> + 'a {
        self.iter().map(move |(t, a, seed)| (t, a, seed, unit_path(out, t.target.key.as_str(), a.id.as_str(), seed)))
    }
}
