//! Added layers: the strategy's `add` turned into the target's network configuration, the added
//! tensors that start from the source or a written map, and which parameters `train` freezes.

use std::collections::HashMap;

use tch::Tensor;

use super::map::{Axis, axes, networks};
use super::{Addition, Fate, Map, ParamReport, Strategy, Train, TransferError};
use crate::agent::checkpoint::Loaded;
use crate::agent::nn::{Adapter, Added, Lora, Widen, is_added, is_column};
use crate::agent::{AgentConfig, Algo};

/// The source's configuration with the strategy's layers added to every network (`nets` of the
/// algorithm), checked against the source's tensors: the configuration the target is built with.
pub(super) fn augment(source: &Loaded, strategy: &Strategy) -> Result<AgentConfig, TransferError> {
    let mut config = source.card.config.clone();
    if strategy.add.is_empty() {
        return Ok(config);
    }
    let algo = config.algo();
    let shapes: HashMap<String, Vec<i64>> = source.agent.tensors().into_iter().map(|(n, t)| (n, t.size())).collect();
    let names: Vec<String> = shapes.keys().cloned().collect();
    let bad = |message: String| TransferError::Strategy { field: "add", message };
    if config.share_trunk() {
        let why = "the source's actor and critic share one trunk (`share_trunk`): layers cannot be added to it yet";
        return Err(bad(why.into()));
    }
    let hidden = config.net().hidden.clone();
    let mut added: Added = config.net().added.clone();
    let first = if hidden.is_empty() { "head" } else { "trunk.0" };
    let width = |net: &str, layer: &str, axis: usize| -> Option<usize> {
        shapes.get(&format!("{net}.{layer}.weight")).and_then(|s| s.get(axis)).map(|&w| w as usize)
    };
    let all = networks(algo);
    for net in &strategy.add_to {
        if !all.contains(&net.as_str()) {
            let hint = crate::util::nearest(net, all.iter().copied()).map(|n| format!(" (did you mean `{n}`?)")).unwrap_or_default();
            let message = format!("names `{net}`, not a network of {algo} ({}){hint}", all.join(", "));
            return Err(TransferError::Strategy { field: "add_to", message });
        }
    }
    if !added.nets.is_empty() && !strategy.add_to.is_empty() && added.nets != strategy.add_to {
        return Err(TransferError::Strategy {
            field: "add_to",
            message: format!("differs from the networks the source's additions went to ({})", added.nets.join(", ")),
        });
    }
    if !strategy.add_to.is_empty() {
        added.nets = strategy.add_to.clone();
    }
    let chosen: Vec<&str> = all.iter().copied().filter(|n| added.nets.is_empty() || added.nets.iter().any(|m| m == n)).collect();
    for a in &strategy.add {
        match a {
            Addition::Input | Addition::InputMlp { .. } => {
                if let Addition::InputMlp { hidden } = a {
                    added.input_hidden = Some(*hidden);
                }
                for net in &chosen {
                    if added.input.contains_key(*net) {
                        return Err(bad(format!("the source's `{net}` already has an input layer")));
                    }
                    let w = width(net, first, 1).ok_or_else(|| bad(format!("the source has no `{net}.{first}.weight`")))?;
                    added.input.insert(net.to_string(), w);
                }
            }
            Addition::Output => {
                for net in chosen.iter().filter(|n| outputs_actions(algo, n, &names)) {
                    if added.output.contains_key(*net) {
                        return Err(bad(format!("the source's `{net}` already has an output layer")));
                    }
                    let w = width(net, "head", 0).ok_or_else(|| bad(format!("the source has no `{net}.head.weight`")))?;
                    added.output.insert(net.to_string(), w);
                }
            }
            Addition::Adapter { after, width } => added.adapters.push(Adapter { after: *after, width: *width }),
            Addition::Depth { after } => added.depth.push(*after),
            Addition::Widen { layer, units } => added.widen.push(Widen { layer: *layer, units: *units }),
            Addition::Lora { layers, rank, alpha, merge } => {
                if added.lora.is_some() {
                    return Err(bad("the source's networks already carry LoRA factors".into()));
                }
                for layer in layers.iter().filter(|l| *l == first || *l == "head") {
                    // The sides only the spaces give: the first layer's inputs, the head's outputs.
                    for net in &chosen {
                        let side = width(net, layer, if layer == "head" { 0 } else { 1 }).unwrap_or(usize::MAX);
                        if *rank > side {
                            return Err(bad(format!(
                                "LoRA's rank {rank} is larger than `{net}.{layer}` ({side} on its smaller side): the rank \
                                 must lie in [1, {side}]"
                            )));
                        }
                    }
                }
                added.lora = Some(Lora { layers: layers.clone(), rank: *rank, alpha: *alpha, merge: *merge });
            }
            Addition::Progressive => {
                if added.progressive {
                    return Err(bad("the source is already a progressive network".into()));
                }
                added.progressive = true;
            }
        }
    }
    config.net_mut().added = added;
    config.net().validate().map_err(|e| bad(e.to_string()))?;
    Ok(config)
}

/// Whether the network `net` outputs actions (its head's rows are actions).
fn outputs_actions(algo: Algo, net: &str, names: &[String]) -> bool {
    axes(algo, &format!("{net}.head.weight"), 2, names).rows == Axis::Action
}

/// The map each copied tensor takes: the written map, less its observation side in a network
/// with an input layer and its action side in one with an output layer (those layers take them).
pub(super) struct SideMaps {
    /// The map with neither side, the observation side, the action side, both (index: 2·obs + act).
    maps: [Option<Map>; 4],
    /// The networks' names (a tensor's network is the longest that prefixes its name), with
    /// whether each has an input layer and an output layer.
    nets: Vec<(String, bool, bool)>,
}

impl SideMaps {
    pub(super) fn new(map: Option<&Map>, names: &[String]) -> Self {
        let keep = |obs: bool, act: bool| {
            let mut m = map?.clone();
            m.obs = m.obs.filter(|_| obs);
            m.actions = m.actions.filter(|_| act);
            (m.obs.is_some() || m.actions.is_some()).then_some(m)
        };
        let has = |n: &str| names.iter().any(|m| m == n);
        let nets = names
            .iter()
            .filter_map(|n| n.strip_suffix(".head.weight"))
            .map(|net| (net.to_string(), has(&format!("{net}.input.weight")), has(&format!("{net}.output.weight"))))
            .collect();
        SideMaps { maps: [keep(false, false), keep(false, true), keep(true, false), keep(true, true)], nets }
    }

    pub(super) fn of(&self, name: &str) -> Option<&Map> {
        let net = self.nets.iter().filter(|(n, ..)| name.starts_with(&format!("{n}."))).max_by_key(|(n, ..)| n.len());
        let (input, output) = net.map_or((false, false), |(_, i, o)| (*i, *o));
        // A log σ head or vector outputs the target's actions itself: it keeps the action side.
        let output = output && !name.contains("log_std");
        // Behind an input layer, the first layer reads the source's inputs (a critic's actions
        // among them): nothing of the map touches it.
        if input && name.ends_with(".trunk.0.weight") {
            return None;
        }
        self.maps[2 * usize::from(!input) + usize::from(!output)].as_ref()
    }
}

/// Starts the added tensors that the source or the written map gives: a progressive network's
/// column (the source's hidden layers), input layers (the written observation map; the
/// action block of a critic's input stays the identity) and output layers (the written action
/// map). Marks every added tensor's row `Added`; returns what was done, for the report.
pub(super) fn start(
    rows: &mut [ParamReport],
    live: &HashMap<String, Tensor>,
    sources: &HashMap<String, Tensor>,
    map: Option<&Map>,
    spaces: super::weights::Spaces,
) -> Result<Vec<String>, TransferError> {
    let mut notes = Vec::new();
    let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    for row in rows.iter_mut().filter(|r| is_added(&r.name) && r.fate == Fate::New) {
        row.fate = Fate::Added;
        let dst = &live[&row.name];
        if is_column(&row.name) {
            let from = row.name.replacen("column.", "", 1);
            let src = sources.get(&from).filter(|s| s.size() == dst.size()).ok_or_else(|| TransferError::ShapeMismatch {
                tensor: row.name.clone(),
                source_shape: sources.get(&from).map(Tensor::size).unwrap_or_default(),
                target: dst.size(),
                hint: format!("the frozen column starts as the source's `{from}`"),
            })?;
            tch::no_grad(|| dst.shallow_clone().copy_(src));
            row.source_shape = Some(src.size());
            continue;
        }
        if row.name.ends_with(".input.weight") {
            let m = map.map(|m| m.input_matrix(spaces.obs.0, spaces.obs.1)).transpose();
            let m = m.map_err(|e| TransferError::Map { tensor: row.name.clone(), message: e.0 })?.flatten();
            if m.is_some() {
                notes.push(format!("{}: starts as the written map", row.name));
            }
            let actions = map.and_then(|m| m.actions.as_deref());
            start_input(dst, m.as_ref(), actions, spaces.obs);
        } else if row.name.ends_with(".output.weight") && let Some(map) = map {
            let m = map.output_matrix(spaces.act.0, spaces.act.1);
            if let Some(m) = m.map_err(|e| TransferError::Map { tensor: row.name.clone(), message: e.0 })? {
                tch::no_grad(|| dst.shallow_clone().copy_(&m));
                notes.push(format!("{}: starts as the written map", row.name));
            }
        }
    }
    let nets = names.iter().filter(|n| n.ends_with(".input.weight") && !n.contains("_target")).count();
    if nets > 0 && !notes.iter().any(|n| n.contains(".input.")) {
        notes.push(format!("input layers ({nets}): start as the identity on the leading features"));
    }
    Ok(notes)
}

/// An input layer's starting weight `[source inputs, target inputs]`: the observation block is
/// the written map `m` (`[source, target]` features), else the identity on the leading features;
/// a critic's action inputs (the columns after the observation's) pass through as the written
/// action map (`actions[t]`: the source action of target action `t`), else the identity.
fn start_input(dst: &Tensor, m: Option<&Tensor>, actions: Option<&[Option<usize>]>, (source_obs, target_obs): (usize, usize)) {
    let (rows, cols) = (dst.size()[0], dst.size()[1]);
    let (so, to) = (source_obs as i64, target_obs as i64);
    let mut w = vec![0.0f32; (rows * cols) as usize];
    for i in 0..so.min(to) {
        w[(i * cols + i) as usize] = 1.0;
    }
    let (source_act, target_act) = (rows - so, cols - to);
    match actions {
        Some(index) if target_act > 0 => {
            for (t, s) in index.iter().enumerate().take(target_act.max(0) as usize) {
                if let Some(s) = s.filter(|&s| (s as i64) < source_act) {
                    w[((so + s as i64) * cols + to + t as i64) as usize] = 1.0;
                }
            }
        }
        _ => {
            for k in 0..source_act.min(target_act).max(0) {
                w[((so + k) * cols + to + k) as usize] = 1.0;
            }
        }
    }
    tch::no_grad(|| {
        let mut dst = dst.shallow_clone();
        dst.copy_(&Tensor::from_slice(&w).view([rows, cols]));
        if let Some(m) = m {
            dst.narrow(0, 0, so).narrow(1, 0, to).copy_(m);
        }
    });
}

/// The parameters `train` keeps frozen, with the step each is released at (`None`: never): a
/// progressive network's column always; with `Added`, every network weight not added; with `Gradual`,
/// each hidden layer of the base networks, the last released first, and an encoder after them.
pub(super) fn frozen(train: Train, rows: &[ParamReport]) -> Vec<(String, Option<u64>)> {
    let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    let names = &names;
    // Each network's depth: one more than its last trunk layer's index.
    let depth = |name: &str| {
        let net = name.split(".trunk.").next().unwrap_or(name);
        let layers = names.iter().filter(|n| n.starts_with(&format!("{net}.trunk.")) && !is_added(n));
        layers.filter_map(|n| trunk_layer(n)).max().map_or(0, |i| i + 1)
    };
    let mut out = Vec::new();
    for row in rows {
        let name = &row.name;
        let release = if is_column(name) {
            Some(None)
        } else if is_added(name) || !name.contains('.') || !matches!(row.fate, Fate::Copied | Fate::Mapped) {
            // Added layers, what is not a network's (SAC's temperature), and what did not come
            // from the source (re-initialised, new) train.
            None
        } else {
            match train {
                Train::All => None,
                Train::Added => Some(None),
                Train::AddedThenAll(step) => Some(Some(step)),
                Train::Gradual(every) => {
                    let after = |layers_above: usize| Some(every.saturating_mul(layers_above.max(1) as u64));
                    match (trunk_layer(name), name.split_once(".encoder.")) {
                        (Some(i), _) => Some(after(depth(name).saturating_sub(i))),
                        // An encoder is the lowest layer: released after the first hidden layer.
                        (None, Some((net, _))) => Some(after(depth(&format!("{net}.trunk.")) + 1)),
                        (None, None) => None,
                    }
                }
            }
        };
        if let Some(until) = release {
            out.push((name.clone(), until));
        }
    }
    out
}

/// The hidden layer a base parameter belongs to (`actor.trunk.1.weight`: 1).
fn trunk_layer(name: &str) -> Option<usize> {
    let mut parts = name.split('.');
    while let Some(p) = parts.next() {
        if p == "trunk" {
            return parts.next()?.parse().ok();
        }
    }
    None
}
