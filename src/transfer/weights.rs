//! Moving the weights: each target parameter takes the source's value as it is, through the map,
//! or keeps its fresh initialisation, and the report says which.

use std::collections::HashMap;

use tch::Tensor;

use super::map::{self, Axes, Axis};
use super::report::param;
use super::{Fate, ParamReport, TransferError};
use crate::agent::Algo;
use crate::env::Space;

/// The sizes a map translates between: (source, target) observation features and actions.
#[derive(Clone, Copy, Debug)]
pub(super) struct Spaces {
    /// Observation features, source and target.
    pub obs: (usize, usize),
    /// Actions (Discrete choices or Box dimensions), source and target.
    pub act: (usize, usize),
}

/// How many actions a space offers: Discrete choices, or Box dimensions.
pub(super) fn action_count(space: &Space) -> usize {
    match space {
        Space::Discrete { n } => *n,
        Space::Box { .. } | Space::Dict { .. } => space.flat_dim(),
    }
}

/// Where a shared trunk meets separate networks (PPO's and A2C's `share_trunk` on one side
/// only), gives the source's trunk parameters the names they take in the target's layout, in
/// `sources`: a shared trunk takes the source actor's (as Stable-Baselines3's shared extractor is
/// the actor's), a separate actor and critic each take the source's shared trunk. The aliases are
/// the source's, so that [`image_part_aliases`] can carry them further (a shared image encoder
/// into each network's dictionary image part). Returns the state line saying so, with the source
/// parameters the target reads.
pub(super) fn trunk_aliases(names: &[String], sources: &mut HashMap<String, Tensor>) -> Option<(String, Vec<String>)> {
    let trunk = |rest: &str| rest.starts_with("encoder.") || rest.starts_with("trunk.");
    let shared_target = names.iter().any(|n| n.starts_with("shared."));
    // The target's networks that read a trunk part (`actor.encoder`, `shared.trunk`, ...).
    let reads = |alias: &str| {
        let part = alias.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
        names.iter().any(|n| n.starts_with(&format!("{part}.")))
    };
    let mut read = Vec::new();
    let mut found: Vec<(String, &'static [&'static str])> = Vec::new();
    for from in sources.keys() {
        match from.split_once('.') {
            Some(("actor", rest)) if shared_target && trunk(rest) => found.push((from.clone(), &["shared"])),
            Some(("shared", rest)) if !shared_target && trunk(rest) => found.push((from.clone(), &["actor", "critic"])),
            _ => {}
        }
    }
    for (from, nets) in found {
        let rest = from.split_once('.').map_or("", |(_, rest)| rest).to_string();
        for net in nets {
            let alias = format!("{net}.{rest}");
            if sources.contains_key(&alias) || !reads(&alias) {
                continue;
            }
            let t = sources[&from].shallow_clone();
            sources.insert(alias, t);
            read.push(from.clone());
        }
    }
    let line = match read.first()?.starts_with("actor.") {
        true => "the source's actor and critic have a trunk each, the target one they share: it starts from the \
                 source actor's (shared.* from actor.*)",
        false => "the source's actor and critic share one trunk, the target has a trunk each: both start from the \
                  source's shared trunk (actor.* and critic.* from shared.*)",
    };
    read.sort();
    read.dedup();
    Some((line.to_string(), read))
}

/// Between an image observation and a dictionary observation with one image part (MiniGrid's
/// image, then its image and direction), gives each target encoder parameter the source's
/// counterpart under its own name in `sources`: the part's encoder `{net}.encoder.{key}.*` the
/// source's `{net}.encoder.*`, or the other way. Returns the state line saying so, with the
/// source parameters read.
pub(super) fn image_part_aliases(
    names: &[String],
    sources: &mut HashMap<String, Tensor>,
) -> Option<(String, Vec<String>)> {
    // (network, image key or none, the rest after `conv.`)
    fn split(name: &str) -> Option<(&str, Option<&str>, &str)> {
        let (net, tail) = name.split_once(".encoder.")?;
        match tail.strip_prefix("conv.") {
            Some(rest) => Some((net, None, rest)),
            None => {
                let (key, rest) = tail.split_once(".conv.")?;
                Some((net, Some(key), rest))
            }
        }
    }
    // Each network's one image key, where a side has exactly one.
    let only_key = |all: &mut dyn Iterator<Item = &String>, net: &str| {
        let mut keys: Vec<&str> =
            all.filter_map(|n| split(n)).filter(|(m, _, _)| *m == net).filter_map(|(_, k, _)| k).collect();
        keys.sort();
        keys.dedup();
        (keys.len() == 1).then(|| keys[0].to_string())
    };
    let mut read = Vec::new();
    let mut lines = Vec::new();
    for name in names {
        if sources.contains_key(name) {
            continue;
        }
        let Some((net, key, rest)) = split(name) else { continue };
        let from = match key {
            Some(key) if only_key(&mut names.iter(), net).as_deref() == Some(key) => {
                format!("{net}.encoder.conv.{rest}")
            }
            None => match only_key(&mut sources.keys(), net) {
                Some(key) => format!("{net}.encoder.{key}.conv.{rest}"),
                None => continue,
            },
            Some(_) => continue,
        };
        if let Some(t) = sources.get(&from) {
            let t = t.shallow_clone();
            sources.insert(name.clone(), t);
            let line = match key {
                Some(key) => format!("{net}.encoder.{key}.* from {net}.encoder.*"),
                None => format!("{net}.encoder.* from {}", from.split(".conv.").next().unwrap_or(&from)),
            };
            if !lines.contains(&line) {
                lines.push(line);
            }
            read.push(from);
        }
    }
    if read.is_empty() {
        return None;
    }
    read.sort();
    Some((format!("the image and the dictionary's image part share their encoder: {}", lines.join(", ")), read))
}

/// Writes the source's value (through its map, `maps.of(name)`, where it touches the tensor's axes) into every
/// target parameter `names` that the source has, except where it cannot fit and the parameter is
/// re-initialised anyway; returns one report row per parameter, in order. `live` are the
/// target's tensors, `sources` the source's, `reinit` the parameters that keep (or get back)
/// their fresh values.
pub(super) fn copy(
    algo: Algo,
    names: &[String],
    live: &HashMap<String, Tensor>,
    sources: &HashMap<String, Tensor>,
    reinit: &[String],
    maps: &super::added::SideMaps,
    spaces: Spaces,
) -> Result<Vec<ParamReport>, TransferError> {
    let mut rows = Vec::with_capacity(names.len());
    for name in names {
        let dst = &live[name];
        let axes = map::axes(algo, name, dst.dim(), names);
        let map = maps.of(name);
        let Some(src) = sources.get(name) else {
            rows.push(param(name, dst, None, Fate::New));
            continue;
        };
        if src.dim() != dst.dim() {
            return Err(TransferError::ShapeMismatch {
                tensor: name.clone(),
                source_shape: src.size(),
                target: dst.size(),
                hint: "the tensors differ in rank: the source's network is built differently".into(),
            });
        }
        let mapped = map.is_some_and(|m| m.touches(axes));
        let value = match map.filter(|_| mapped) {
            Some(m) => m.apply(src, dst, axes, spaces.obs, spaces.act),
            None => Ok(src.shallow_clone()),
        };
        let is_reinit = reinit.contains(name);
        let value = match value {
            Ok(v) if v.size() == dst.size() => v,
            _ if is_reinit => {
                rows.push(param(name, dst, Some(src), Fate::Reinit));
                continue;
            }
            Ok(v) => {
                return Err(TransferError::ShapeMismatch {
                    tensor: name.clone(),
                    source_shape: if mapped { v.size() } else { src.size() },
                    target: dst.size(),
                    hint: shape_hint(axes, spaces),
                });
            }
            Err(e) => return Err(TransferError::Map { tensor: name.clone(), message: e.0 }),
        };
        tch::no_grad(|| dst.shallow_clone().copy_(&value));
        let fate = if is_reinit {
            Fate::Reinit
        } else if mapped {
            Fate::Mapped
        } else {
            Fate::Copied
        };
        rows.push(param(name, dst, Some(src), fate));
    }
    Ok(rows)
}

/// A hint for a shape mismatch, from the axes of the tensor.
fn shape_hint(axes: Axes, spaces: Spaces) -> String {
    let (obs, act) = (spaces.obs, spaces.act);
    let obs_axis = matches!(axes.rows, Axis::Obs | Axis::ObsAction) || matches!(axes.cols, Axis::Obs | Axis::ObsAction);
    let act_axis =
        matches!(axes.rows, Axis::Action | Axis::ObsAction) || matches!(axes.cols, Axis::Action | Axis::ObsAction);
    if obs_axis && obs.0 != obs.1 {
        format!(
            "the source observes {} features and the target {}; declare a map (`obs: Index([...])`, one entry per \
             target feature) or re-initialise this part with `reinit`",
            obs.0, obs.1
        )
    } else if act_axis && act.0 != act.1 {
        format!(
            "the source has {} actions and the target {}; declare a map (`actions: [...]`, one entry per target \
             action) or re-initialise this part with `reinit`",
            act.0, act.1
        )
    } else {
        "the networks differ in size (`net.hidden` of the config): build the target with the source's network, \
         or re-initialise this part with `reinit`"
            .into()
    }
}
