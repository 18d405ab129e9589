//! The training state a transfer carries or resets: Adam's moments, normaliser statistics, the
//! replay buffer and SAC's temperature, as the strategy's `reset` says.

use std::collections::HashMap;

use tch::Tensor;

use super::{ObsMap, Strategy, TransferError, TransferReport};
use crate::agent::checkpoint::Loaded;
use crate::agent::{Agent, Algo};
use crate::env::Map;

/// Carries (or not) the optimiser moments and normaliser statistics, as the strategy's resets
/// say, and notes what happened in the report.
#[allow(clippy::too_many_arguments)]
pub(super) fn carry_state(
    source: &Loaded,
    target: &mut dyn Agent,
    live: &HashMap<String, Tensor>,
    sources: &HashMap<String, Tensor>,
    copied: &[String],
    strategy: &Strategy,
    map: Option<&Map>,
    obs_dims: (usize, usize),
    report: &mut TransferReport,
) -> Result<(), TransferError> {
    let same = |name: &str| sources.get(name).filter(|s| s.size() == live[name].size());
    if strategy.reset.optimizer {
        report.state.push("optimizer: fresh Adam moments".into());
    } else {
        let mut get = |name: &str| sources.get(name).map(Tensor::shallow_clone);
        let carried: usize =
            target.optimizers().into_iter().map(|(prefix, opt)| opt.carry_state(prefix, copied, &mut get)).sum();
        report.state.push(format!(
            "optimizer: {carried} Adam state tensors carried from the source (moments of the parameters copied as \
             they are, and step counts); the rest start at zero"
        ));
    }
    let norm_names: Vec<&String> =
        live.keys().filter(|n| n.starts_with("obs_rms.") || n.starts_with("ret_rms.")).collect();
    if norm_names.is_empty() {
        // The target normalises nothing.
    } else if strategy.reset.obs_rms {
        report.state.push("normalisers: fresh statistics (reset.obs_rms)".into());
    } else if !sources.contains_key("obs_rms.mean") {
        report.state.push("normalisers: fresh statistics (the source kept none)".into());
    } else {
        let index = match map.and_then(|m| m.obs.as_ref()) {
            None if obs_dims.0 == obs_dims.1 => Some((0..obs_dims.1).map(Some).collect::<Vec<_>>()),
            Some(ObsMap::Index(index)) => Some(index.clone()),
            _ => None,
        };
        match index {
            None => report
                .state
                .push("normalisers: fresh statistics (a linear map cannot carry per-feature statistics)".into()),
            Some(index) => {
                // The statistics the target starts from: the source's (through the map), the
                // target's own where the source has none of that shape.
                let mut carried: HashMap<String, Tensor> = HashMap::new();
                for name in &norm_names {
                    let value = match sources.get(*name) {
                        Some(src) if name.starts_with("obs_rms.") && !name.ends_with("count") => {
                            let fill = if name.ends_with("mean") { 0.0 } else { 1.0 };
                            let values: Vec<f64> =
                                index.iter().map(|s| s.map_or(fill, |s| src.double_value(&[s as i64]))).collect();
                            Tensor::from_slice(&values).to_kind(live[*name].kind())
                        }
                        _ => same(name).unwrap_or(&live[*name]).shallow_clone(),
                    };
                    carried.insert(name.to_string(), value);
                }
                target
                    .load_normalizers(&mut |n| carried.get(n).map(Tensor::shallow_clone))
                    .map_err(|e| TransferError::Strategy { field: "reset.obs_rms", message: e.to_string() })?;
                report.state.push(format!(
                    "normalisers: statistics carried from the source ({} steps of them)",
                    source.card.steps
                ));
            }
        }
    }
    if let Some(buffer) = target.replay_mut() {
        if strategy.reset.replay {
            report.state.push("replay buffer: starts empty".into());
        } else {
            let state = source.agent.replay().map(|b| b.state()).unwrap_or_default();
            let found: HashMap<String, Tensor> = state.into_iter().collect();
            if found.get("replay.rewards").is_none_or(|r| r.numel() == 0) {
                return Err(TransferError::Strategy {
                    field: "reset.replay",
                    message: "is false, but the source checkpoint holds no replay buffer".into(),
                });
            }
            let n = buffer.extend_from_state(&mut |n| found.get(n).map(Tensor::shallow_clone)).map_err(|e| {
                TransferError::Strategy {
                    field: "reset.replay",
                    message: format!("is false, but the source's transitions do not fit the target's buffer: {e}"),
                }
            })?;
            report.state.push(format!("replay buffer: starts with the source's {n} transitions"));
        }
    }
    if report.algorithm == Algo::Sac {
        report.state.push(if strategy.reset.ent_coef {
            "entropy temperature: fresh (reset.ent_coef)".into()
        } else {
            "entropy temperature: carried from the source".into()
        });
    }
    Ok(())
}
