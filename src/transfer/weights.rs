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

/// Where source parameters were given other names ([`trunk_aliases`], [`image_part_aliases`]):
/// each alias, the source's own name it stands for, and which renamings led to it.
pub(super) type Origins = HashMap<String, (String, u8)>;

/// The renaming of [`trunk_aliases`], in [`Origins`].
pub(super) const TRUNK: u8 = 1;
/// The renaming of [`image_part_aliases`], in [`Origins`].
pub(super) const IMAGE_PART: u8 = 2;

/// Gives `alias` the value of `from` in `sources`, recording where it came from (through an
/// earlier alias, from that one's origin).
fn alias(sources: &mut HashMap<String, Tensor>, origins: &mut Origins, alias: String, from: &str, kind: u8) {
    let t = sources[from].shallow_clone();
    sources.insert(alias.clone(), t);
    let (origin, kinds) = origins.get(from).cloned().unwrap_or_else(|| (from.to_string(), 0));
    origins.insert(alias, (origin, kinds | kind));
}

/// Where a shared trunk meets separate networks (PPO's and A2C's `share_trunk` on one side
/// only), gives the source's trunk parameters the names they take in the target's layout, in
/// `sources`: a shared trunk takes the source actor's (as Stable-Baselines3's shared extractor is
/// the actor's), a separate actor and critic each take the source's shared trunk. The aliases are
/// the source's, so that [`image_part_aliases`] can carry them further (a shared image encoder
/// into each network's dictionary image part); the caller keeps the state line when the target
/// reads one of them ([`Origins`]).
pub(super) fn trunk_aliases(
    names: &[String],
    sources: &mut HashMap<String, Tensor>,
    origins: &mut Origins,
) -> Option<String> {
    let trunk = |rest: &str| rest.starts_with("encoder.") || rest.starts_with("trunk.");
    let shared_target = names.iter().any(|n| n.starts_with("shared."));
    let mut found: Vec<(String, &'static [&'static str])> = Vec::new();
    for from in sources.keys() {
        match from.split_once('.') {
            Some(("actor", rest)) if shared_target && trunk(rest) => found.push((from.clone(), &["shared"])),
            Some(("shared", rest)) if !shared_target && trunk(rest) => found.push((from.clone(), &["actor", "critic"])),
            _ => {}
        }
    }
    let mut any = false;
    for (from, nets) in found {
        let rest = from.split_once('.').map_or("", |(_, rest)| rest).to_string();
        for net in nets {
            let name = format!("{net}.{rest}");
            if !sources.contains_key(&name) {
                alias(sources, origins, name, &from, TRUNK);
                any = true;
            }
        }
    }
    let line = match shared_target {
        true => "the source's actor and critic have a trunk each, the target one they share: it starts from the \
                 source actor's (shared.* from actor.*)",
        false => "the source's actor and critic share one trunk, the target has a trunk each: both start from the \
                  source's shared trunk (actor.* and critic.* from shared.*)",
    };
    any.then(|| line.to_string())
}

/// Between an image observation and a dictionary observation with one image part (MiniGrid's
/// image, then its image and direction), gives each target encoder parameter the source's
/// counterpart under its own name in `sources`: the part's encoder `{net}.encoder.{key}.*` the
/// source's `{net}.encoder.*`, or the other way. Returns the state line saying so.
pub(super) fn image_part_aliases(
    names: &[String],
    sources: &mut HashMap<String, Tensor>,
    origins: &mut Origins,
) -> Option<String> {
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
        if sources.contains_key(&from) {
            alias(sources, origins, name.clone(), &from, IMAGE_PART);
            let line = match key {
                Some(key) => format!("{net}.encoder.{key}.* from {net}.encoder.*"),
                None => format!("{net}.encoder.* from {}", from.split(".conv.").next().unwrap_or(&from)),
            };
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    (!lines.is_empty())
        .then(|| format!("the image and the dictionary's image part share their encoder: {}", lines.join(", ")))
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
