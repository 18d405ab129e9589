//! What each arm costs: the weights it trains (from the transfer reports in its unit records)
//! and the wall-clock time its units took (from the journal: machine-dependent, so kept out of
//! the records and the summary).

use std::fmt::Write;
use std::path::Path;

use super::journal;
use super::records::{UnitResult, unit_path};

/// One arm on one target.
#[derive(Clone, Debug, PartialEq)]
pub struct ArmCost {
    /// The target's key.
    pub target: String,
    /// The arm's label.
    pub arm: String,
    /// Weights that train at some point of the run, and weights in all (the first unit's
    /// transfer report; every unit of an arm builds the same network).
    pub weights: Option<(usize, usize)>,
    /// Mean wall-clock seconds of the arm's units that the journal times.
    pub seconds: Option<f64>,
    /// Mean target steps a unit took before training (choosing a skill-discovery source's
    /// skill), when any did.
    pub extra_steps: Option<f64>,
}

/// The cost of every (target, arm) of `units`, in their order.
pub fn costs(out: &Path, units: &[UnitResult]) -> Vec<ArmCost> {
    let times: Vec<(String, f64)> = journal::read(out)
        .into_iter()
        .filter(|e| e.event == "recorded")
        .filter_map(|e| Some((e.unit, e.detail.trim().parse::<f64>().ok()?)))
        .collect();
    let mut costs: Vec<ArmCost> = Vec::new();
    for unit in units {
        let (target, arm) = (unit.target.to_string(), unit.arm.to_string());
        if costs.iter().any(|c| c.target == target && c.arm == arm) {
            continue;
        }
        let of_arm: Vec<&UnitResult> = units.iter().filter(|u| u.target == unit.target && u.arm == unit.arm).collect();
        let weights = of_arm.iter().find_map(|u| u.report.as_ref()).map(|r| {
            let (total, trained) = r.parameter_counts();
            (trained, total)
        });
        let seconds: Vec<f64> = of_arm
            .iter()
            .filter_map(|u| {
                let path = unit_path(out, &target, &arm, u.seed);
                let rel = path.strip_prefix(out).ok()?.to_string_lossy().to_string();
                times.iter().rev().find(|(unit, _)| *unit == rel).map(|(_, s)| *s)
            })
            .collect();
        let seconds = (!seconds.is_empty()).then(|| seconds.iter().sum::<f64>() / seconds.len() as f64);
        let extra: Vec<u64> = of_arm.iter().filter_map(|u| u.report.as_ref().map(|r| r.extra_steps)).collect();
        let extra_steps =
            extra.iter().any(|&s| s > 0).then(|| extra.iter().sum::<u64>() as f64 / extra.len() as f64);
        costs.push(ArmCost { target, arm, weights, seconds, extra_steps });
    }
    costs
}

/// The costs as a Markdown section of `report.md`.
pub fn cost_section(costs: &[ArmCost]) -> String {
    let mut out = String::from(
        "\n## Cost per arm\n\nWeights trained (not frozen for the whole run) of the weights in the agent, from the transfer reports; \
         mean wall-clock seconds per unit, from the journal (this machine's, with the study's parallelism: compare arms of one run, \
         not runs).\n\n| target | arm | weights trained | of | s per unit |\n|---|---|---|---|---|\n",
    );
    for c in costs {
        let (trained, total) = c.weights.map_or(("-".into(), "-".into()), |(t, a)| (t.to_string(), a.to_string()));
        let seconds = c.seconds.map_or("-".into(), |s| format!("{s:.1}"));
        let _ = writeln!(out, "| {} | {} | {trained} | {total} | {seconds} |", c.target, c.arm);
    }
    for c in costs {
        if let Some(steps) = c.extra_steps {
            let _ = writeln!(
                out,
                "\n{} on {}: {steps:.0} target steps per unit before training (choosing the source's skill), besides the budget.",
                c.arm, c.target
            );
        }
    }
    out
}
