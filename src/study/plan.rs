//! The first stage of a run: an [`Experiment`] resolved once into a [`Plan`]: typed target and
//! arm identifiers, each target's threshold and random-policy return, and the source policy when
//! the experiment names one. Units run from the plan; nothing downstream re-derives it.

use crate::agent::checkpoint::Loaded;
use crate::env::Registry;
use crate::transfer::Strategy;

use super::StudyError;
pub use super::records::TargetInfo;
pub use super::ids::{ArmId, TargetId};
use super::experiment::Experiment;
use super::validate::check;

/// One arm of the study: scratch or a strategy, with its label.
#[derive(Clone, Debug, PartialEq)]
pub struct Arm {
    /// The arm's label.
    pub id: ArmId,
    /// What it does with the source.
    pub strategy: Strategy,
}

/// The arms of an experiment: scratch first, then each strategy.
pub fn arms(experiment: &Experiment) -> Vec<Arm> {
    std::iter::once(Strategy::scratch())
        .chain(experiment.strategies.iter().cloned())
        .map(|strategy| Arm { id: ArmId::new(strategy.label()), strategy })
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
        let checked = check(experiment, registry)?;
        let targets = checked
            .targets
            .into_iter()
            .zip(checked.thresholds)
            .zip(checked.random_returns)
            .map(|((target, threshold), random_return)| TargetInfo { target, threshold, random_return })
            .collect();
        Ok(Plan { experiment, targets, arms: arms(experiment), policy: checked.policy, warnings: checked.warnings })
    }

    /// Every (target, arm, seed) of the study, target by target, arm by arm.
    pub fn units(&self) -> impl Iterator<Item = (&TargetInfo, &Arm, u64)> {
        let seeds = self.experiment.seeds;
        self.targets
            .iter()
            .flat_map(move |t| self.arms.iter().flat_map(move |a| (0..seeds).map(move |seed| (t, a, seed))))
    }
}
