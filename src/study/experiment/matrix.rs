//! A transfer matrix's sources (`source: Matrix([("name", Source), ...])`): checked here, crossed
//! with the targets and strategies by [`crate::study::plan::arms`].

use super::{Experiment, Source, StudyError};
use crate::study::ids::ArmId;
use crate::transfer::Strategy;

/// Checks a matrix's members: at least two, names distinct also once made file-safe (they name
/// arms and folders), each one checkpoint (no nested matrix, no `Policies`, no pretraining
/// `seeds`: a matrix's cells are sources, not groups of them).
pub(super) fn check(members: &[(String, Source)]) -> Result<(), StudyError> {
    let bad = |message: String| Err(StudyError::field("source", message));
    if members.len() < 2 {
        return bad("a Matrix needs at least two sources".into());
    }
    for (i, (name, source)) in members.iter().enumerate() {
        if name.is_empty() || name == "scratch" {
            return bad(format!("Matrix source {i}: {name:?} is not a source's name (non-empty, not \"scratch\")"));
        }
        let safe = crate::util::file_safe(name);
        if let Some((other, _)) = members[..i].iter().find(|(n, _)| crate::util::file_safe(n) == safe) {
            return bad(format!("Matrix sources {other:?} and {name:?} would share a folder: give them distinct names"));
        }
        match source {
            Source::Matrix(_) => return bad(format!("Matrix source {name:?} is itself a Matrix")),
            Source::Policies(_) => {
                return bad(format!("Matrix source {name:?}: Policies is a group of sources; list each as a source of its own"));
            }
            Source::Pretrain(p) if !p.seeds.is_empty() => {
                return bad(format!("Matrix source {name:?}: one pretraining seed per source (`seed`, not `seeds`)"));
            }
            Source::Pretrain(p) if p.steps == 0 => return bad(format!("Matrix source {name:?}: `steps` must be at least 1")),
            _ => {}
        }
    }
    Ok(())
}

/// A strategy arm: its label, strategy, and in a matrix its source (index and name).
pub type StrategyArm = (ArmId, Strategy, Option<(usize, String)>);

impl Experiment {
    /// The arms besides scratch, in order: each strategy; in a transfer matrix, each source with
    /// each strategy (labelled by the source's name, `<source>+<strategy>` with several strategies).
    pub fn strategy_arms(&self) -> Vec<StrategyArm> {
        let Source::Matrix(members) = &self.source else {
            return self.strategies.iter().map(|s| (ArmId::new(s.label()), s.clone(), None)).collect();
        };
        let several = self.strategies.len() > 1;
        let mut arms = Vec::new();
        for (i, (name, _)) in members.iter().enumerate() {
            for strategy in &self.strategies {
                let id = if several { format!("{name}+{}", strategy.label()) } else { name.clone() };
                arms.push((ArmId::new(id), strategy.clone(), Some((i, name.clone()))));
            }
        }
        arms
    }
}
