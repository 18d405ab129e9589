//! Guidance: what a transfer installs in the target agent to steer its training, beyond the
//! weights. Per-part learning-rate scales and freezes (scales in Adam, a freeze that ends being a
//! scale scheduled for an environment step), L2-SP anchors (Adam adds them to the gradient) and
//! a distillation teacher (the agent adds its KL term to the actor's loss). The report's frozen,
//! learning-rate and anchor columns are written here from the same values that are installed.

use super::{Frozen, Strategy, TransferError, TransferReport};
use crate::agent::Agent;

/// Gives the target a frozen copy of its actor (as the source left it) to distil from, when the
/// strategy asks for it.
pub(super) fn install_teacher(
    target: &mut dyn Agent,
    strategy: &Strategy,
    report: &mut TransferReport,
) -> Result<(), TransferError> {
    if let Some(distill) = strategy.distill {
        target.set_teacher(distill)?;
        report.state.push(format!(
            "distill: KL towards the source policy, weight {} falling to 0 at step {}",
            distill.weight, distill.decay_steps
        ));
    }
    Ok(())
}

/// Installs the learning-rate scales, freezes and anchors in every optimiser of the target, and
/// writes them into the report's rows. `copied` are the parameters that took the source's
/// values, `frozen` the ones frozen, each with the environment step it is released at (`None`:
/// never).
pub(super) fn install(
    target: &mut dyn Agent,
    strategy: &Strategy,
    copied: &[String],
    frozen: &[(String, Option<u64>)],
    report: &mut TransferReport,
) {
    let scale_of = |n: &str| if copied.iter().any(|c| c == n) { strategy.lr_scale } else { 1.0 };
    // The releases, grouped by step and the scale each parameter returns to, in step order.
    let mut releases: Vec<(u64, f64, Vec<String>)> = Vec::new();
    for (name, until) in frozen {
        let Some(step) = *until else { continue };
        let scale = scale_of(name);
        match releases.iter_mut().find(|(s, k, _)| *s == step && *k == scale) {
            Some((_, _, names)) => names.push(name.clone()),
            None => releases.push((step, scale, vec![name.clone()])),
        }
    }
    releases.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    for (_, opt) in target.optimizers() {
        if strategy.lr_scale != 1.0 {
            opt.set_lr_scale(|n| copied.iter().any(|c| c == n), strategy.lr_scale);
        }
        if !frozen.is_empty() {
            opt.set_lr_scale(|n| frozen.iter().any(|(f, _)| f == n), 0.0);
            for (step, scale, names) in &releases {
                opt.schedule_lr_scale(*step, names.clone(), *scale);
            }
        }
        if strategy.l2_init > 0.0 {
            opt.set_anchor(|n| copied.iter().any(|c| c == n), strategy.l2_init);
        }
    }
    for p in &mut report.parameters {
        p.lr_scale = scale_of(&p.name);
        p.anchored = strategy.l2_init > 0.0 && copied.contains(&p.name);
        if let Some((_, until)) = frozen.iter().find(|(n, _)| *n == p.name) {
            p.frozen = until.map_or(Frozen::Always, Frozen::Until);
        }
    }
}
