//! Layers added to an MLP, and the one layout that both the libtorch module and the engine's
//! graph are read from.
//!
//! A transfer strategy adds layers to the source's networks (`add: [...]` in RON); the agent's
//! configuration records them as an [`Added`] in its [`MlpConfig`], so that the checkpoint's card
//! rebuilds the same network. Every addition starts as the identity on the network it augments
//! (an adapter's up-projection, LoRA's `B` and lateral weights start at zero; input and output
//! layers as the identity, or as a written map), so a target starts with the source's function
//! exactly where the spaces match, and the added capacity is learned from there.
//!
//! | addition | parameters under the network's name | starts as |
//! |---|---|---|
//! | input layer (a learned map) | `input.weight` `[source inputs, inputs]`, `input.bias` | the identity (on the first features where sizes differ), or the written map |
//! | a small MLP beside the input layer | `input.mlp.down.*` `[units, inputs]`, `input.mlp.up.*` `[source inputs, units]` | `up` zero |
//! | output layer | `output.weight` `[outputs, source outputs]`, `output.bias` | the identity, or the written action map |
//! | bottleneck adapter after hidden layer `i` (Houlsby et al. 2019) | `adapter.{i}.down.*` `[width, hidden]`, `adapter.{i}.up.*` `[hidden, width]` | `h + up(σ(down h))`, `up` zero |
//! | extra depth after hidden layer `i` | `deep.{i}.down.*`, `deep.{i}.up.*` (full width) | the same residual block, `up` zero |
//! | wider hidden layer `i` | `widen.{i}.in.*` `[units, in]` (the new units), `widen.{i}.out.weight` `[next, units]` (into the next layer) | `out` zero |
//! | LoRA on `trunk.{i}` or `head` (Hu et al. 2021) | `lora.{layer}.a` `[rank, in]`, `lora.{layer}.b` `[out, rank]` | `W + (alpha/rank)·B·A`, `B` zero |
//! | progressive column (Rusu et al. 2016) | `column.trunk.{i}.*` (the source's hidden layers, frozen for good), `lateral.{i}.weight`, `lateral.head.weight` | the source's column; laterals zero |
//!
//! In a progressive network the trained column keeps the base names (`trunk.{i}`, `head`) and
//! starts from the source's weights too (Rusu et al. start it fresh; a copy keeps the source's
//! skill at step 0, which is what transfer here measures from); each of its layers after the
//! first adds a lateral connection from the frozen column's previous hidden layer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Activation, MlpConfig};
use crate::agent::engine::graph;
use crate::agent::error::{AgentError, check};

/// What a strategy added to a network, as the agent's configuration records it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Added {
    /// The networks that take the adapters, depth, LoRA and column (`actor`, `critic`, `q`,
    /// `critic.q0`, ...; a target network follows its online network) [default: every one].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nets: Vec<String>,
    /// A learned input layer per network: the width it gives the trunk (the source's input).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub input: BTreeMap<String, usize>,
    /// Units of a small MLP beside each input layer (`input.mlp.{down,up}`: a learned map that is
    /// not linear, added to the linear one, its up-projection zero).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_hidden: Option<usize>,
    /// A learned output layer per network: the head's width (the source's output).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub output: BTreeMap<String, usize>,
    /// Bottleneck adapters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub adapters: Vec<Adapter>,
    /// Extra hidden layers (residual, as wide as the layer they follow) after these hidden layers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depth: Vec<usize>,
    /// Low-rank updates of chosen layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora: Option<Lora>,
    /// Hidden layers made wider: new units (their incoming weights drawn as the layer's, their
    /// outgoing weights zero).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub widen: Vec<Widen>,
    /// A frozen copy of the source network as a first column, with lateral connections.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub progressive: bool,
}

/// A bottleneck adapter: `h + up(σ(down h))` after hidden layer `after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adapter {
    /// The hidden layer (0-based) whose output it transforms.
    pub after: usize,
    /// Units of the bottleneck.
    pub width: usize,
}

/// New units for hidden layer `layer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Widen {
    /// The hidden layer (0-based).
    pub layer: usize,
    /// Units added to it.
    pub units: usize,
}

/// LoRA on named linear layers (`trunk.0`, `trunk.1`, `head`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lora {
    /// The layers, by name within the network.
    pub layers: Vec<String>,
    /// The rank `r` of `B·A`.
    pub rank: usize,
    /// `alpha`: the update is scaled by `alpha / r`.
    pub alpha: f64,
    /// Merged into the layers' weights when a checkpoint is saved (the saved network is then a
    /// plain one, exactly as SB3 or any MLP reader expects) [default: kept apart].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub merge: bool,
}

impl Added {
    /// Whether nothing is added.
    pub fn is_empty(&self) -> bool {
        *self == Added::default()
    }

    /// Checks the additions against the hidden layers they name, naming the field at fault and
    /// the nearest valid layer.
    pub fn validate(&self, hidden: &[usize]) -> Result<(), AgentError> {
        let layers = || (0..hidden.len()).map(|i| format!("trunk.{i}")).chain(["head".to_string()]);
        let hidden_layer = |field: &'static str, after: usize| {
            check(
                field,
                after < hidden.len(),
                &format!("names hidden layer {after}, but the network has {} (0 to {})", hidden.len(), hidden.len().saturating_sub(1)),
            )
        };
        for a in &self.adapters {
            hidden_layer("net.added.adapters.after", a.after)?;
            check("net.added.adapters.width", a.width > 0, "must be at least 1")?;
        }
        check("net.added.input_hidden", self.input_hidden.is_none_or(|u| u > 0), "must be at least 1")?;
        check("net.added.input", self.input.values().all(|&w| w > 0), "gives a network an input layer of width 0")?;
        check("net.added.output", self.output.values().all(|&w| w > 0), "gives a network a head of width 0")?;
        check(
            "net.added.input_hidden",
            self.input_hidden.is_none() || !self.input.is_empty(),
            "is set, but no network has an input layer",
        )?;
        for &d in &self.depth {
            hidden_layer("net.added.depth", d)?;
        }
        for w in &self.widen {
            hidden_layer("net.added.widen.layer", w.layer)?;
            check("net.added.widen.units", w.units > 0, "must be at least 1")?;
        }
        let mut seen: Vec<(&str, usize)> = Vec::new();
        let blocks = self.adapters.iter().map(|a| ("adapter", a.after)).chain(self.depth.iter().map(|&d| ("deep", d)));
        let blocks = blocks.chain(self.widen.iter().map(|w| ("widen", w.layer)));
        for block in blocks {
            check("net.added", !seen.contains(&block), &format!("adds `{}.{}` twice", block.0, block.1))?;
            seen.push(block);
        }
        if let Some(l) = &self.lora {
            check("net.added.lora.alpha", l.alpha.is_finite() && l.alpha > 0.0, "must be finite and positive")?;
            check("net.added.lora.layers", !l.layers.is_empty(), "names no layer")?;
            for name in &l.layers {
                let Some(i) = layers().position(|n| n == *name) else {
                    let names: Vec<String> = layers().collect();
                    let hint = crate::util::nearest(name, names.iter().map(String::as_str))
                        .map(|n| format!(" (did you mean `{n}`?)"))
                        .unwrap_or_default();
                    return check(
                        "net.added.lora.layers",
                        false,
                        &format!("`{name}` is not a layer of the network ({}){hint}", names.join(", ")),
                    );
                };
                // The layer's widths known without the spaces: a hidden layer's outputs, and its
                // inputs after the first (the first's inputs and the head's outputs come with the
                // spaces, and transfer checks them).
                let known = [i.checked_sub(1).and_then(|j| hidden.get(j)), hidden.get(i)];
                let side = known.into_iter().flatten().copied().min().unwrap_or(usize::MAX);
                check(
                    "net.added.lora.rank",
                    l.rank >= 1 && l.rank <= side,
                    &format!("is {} but `{name}` has {side} units on its smaller known side: the rank must lie in [1, {side}]", l.rank),
                )?;
            }
        }
        check("net.added.progressive", !(self.progressive && hidden.is_empty()), "needs a hidden layer for the laterals")
    }

    /// Whether the network `net` takes the adapters, depth, LoRA and column.
    fn applies_to(&self, net: &str) -> bool {
        self.nets.is_empty() || self.nets.iter().any(|n| n == net)
    }
}

/// Whether the parameter `name` belongs to an added layer (its name has a segment naming one).
pub fn is_added(name: &str) -> bool {
    name.split('.').any(|s| matches!(s, "input" | "output" | "adapter" | "deep" | "widen" | "lora" | "lateral" | "column"))
}

/// Whether the parameter `name` is part of a progressive network's frozen column.
pub fn is_column(name: &str) -> bool {
    name.split('.').any(|s| s == "column")
}

/// How a linear layer of the layout starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Init {
    /// As the base network's layers (orthogonal with this gain, or PyTorch's default).
    Base(f64),
    /// The identity on the leading features (`W[i][i] = 1`), bias zero.
    Identity,
    /// Weights and bias zero.
    Zero,
}

/// A linear layer of the layout.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Layer {
    /// The name within the network (`trunk.0`, `adapter.1.up`, `lateral.head`).
    pub name: String,
    pub inputs: usize,
    pub outputs: usize,
    pub bias: bool,
    pub init: Init,
    /// Never trained (a progressive network's first column).
    pub frozen: bool,
    /// LoRA factors: rank and scale.
    pub lora: Option<(usize, f64)>,
}

/// A node of the layout: value 0 is the input, node `i` writes value `i + 1`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    /// `start + x Wᵀ (+ b)`.
    Linear { from: usize, layer: Layer, start: Option<usize> },
    Act { from: usize },
    Add { a: usize, b: usize },
}

/// A network with its additions: nodes, the head's node, and the activation.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub nodes: Vec<Node>,
    pub head: usize,
    pub activation: Activation,
}

/// The network's name from a parameter path: its components, a target network (`q_target`,
/// `critic_target`) named as its online network.
pub(crate) fn net_name<'a>(components: impl Iterator<Item = &'a str>) -> String {
    components.map(|c| c.strip_suffix("_target").unwrap_or(c)).collect::<Vec<_>>().join(".")
}

impl Layout {
    /// The layout of the network `net` of `config` from `inputs` to `outputs` values, with
    /// `head_gain` for the head's orthogonal initialisation.
    pub(crate) fn new(net: &str, config: &MlpConfig, inputs: usize, outputs: usize, head_gain: f64) -> Layout {
        let added = &config.added;
        let on = added.applies_to(net);
        let mut nodes: Vec<Node> = Vec::new();
        let push = |nodes: &mut Vec<Node>, node: Node| {
            nodes.push(node);
            nodes.len()
        };
        let linear = |name: String, inputs: usize, outputs: usize, init: Init| Layer {
            name,
            inputs,
            outputs,
            bias: true,
            init,
            frozen: false,
            lora: None,
        };
        let lora_of = |name: &str| {
            added
                .lora
                .as_ref()
                .filter(|l| on && l.layers.iter().any(|n| n == name))
                .map(|l| (l.rank, l.alpha / l.rank as f64))
        };
        let gain = std::f64::consts::SQRT_2;
        let mut v = 0;
        let mut width = inputs;
        if let Some(&to) = added.input.get(net) {
            v = push(&mut nodes, Node::Linear { from: v, layer: linear("input".into(), width, to, Init::Identity), start: None });
            if let Some(units) = added.input_hidden {
                // A residual MLP of the raw input beside the linear map, adding zero at first.
                let down = linear("input.mlp.down".into(), width, units, Init::Base(gain));
                let d = push(&mut nodes, Node::Linear { from: 0, layer: down, start: None });
                let d = push(&mut nodes, Node::Act { from: d });
                let up = linear("input.mlp.up".into(), units, to, Init::Zero);
                let u = push(&mut nodes, Node::Linear { from: d, layer: up, start: None });
                v = push(&mut nodes, Node::Add { a: v, b: u });
            }
            width = to;
        }
        let trunk_in = (v, width);
        // The frozen column: the source's hidden layers, read by the lateral connections.
        let mut column = Vec::new();
        if on && added.progressive {
            let (mut c, mut w) = trunk_in;
            for (i, &h) in config.hidden.iter().enumerate() {
                let layer = Layer { frozen: true, ..linear(format!("column.trunk.{i}"), w, h, Init::Base(gain)) };
                c = push(&mut nodes, Node::Linear { from: c, layer, start: None });
                c = push(&mut nodes, Node::Act { from: c });
                column.push(c);
                w = h;
            }
        }
        // The new units of the previous hidden layer, when it was widened: (value, units, layer).
        let mut wide: Option<(usize, usize, usize)> = None;
        // What the new units add to the layer after them: zero at first.
        let widen_out = |nodes: &mut Vec<Node>, wide: Option<(usize, usize, usize)>, v: usize, outputs: usize| match wide {
            Some((w, units, j)) => {
                let layer = Layer { bias: false, ..linear(format!("widen.{j}.out"), units, outputs, Init::Zero) };
                push(nodes, Node::Linear { from: w, layer, start: Some(v) })
            }
            None => v,
        };
        for (i, &h) in config.hidden.iter().enumerate() {
            let name = format!("trunk.{i}");
            let layer = Layer { lora: lora_of(&name), ..linear(name, width, h, Init::Base(gain)) };
            let input = v;
            v = push(&mut nodes, Node::Linear { from: v, layer, start: None });
            if i > 0 && let Some(&c) = column.get(i - 1) {
                let lateral = Layer { bias: false, ..linear(format!("lateral.{i}"), config.hidden[i - 1], h, Init::Zero) };
                v = push(&mut nodes, Node::Linear { from: c, layer: lateral, start: Some(v) });
            }
            v = widen_out(&mut nodes, wide.take(), v, h);
            if let Some(units) = added.widen.iter().find(|w| w.layer == i && on).map(|w| w.units) {
                let layer = linear(format!("widen.{i}.in"), width, units, Init::Base(gain));
                let w = push(&mut nodes, Node::Linear { from: input, layer, start: None });
                wide = Some((push(&mut nodes, Node::Act { from: w }), units, i));
            }
            v = push(&mut nodes, Node::Act { from: v });
            let blocks = added.adapters.iter().filter(|a| a.after == i).map(|a| ("adapter", a.width));
            let deep = added.depth.iter().filter(|&&d| d == i).map(|_| ("deep", h));
            for (kind, units) in blocks.chain(deep).filter(|_| on) {
                let down = linear(format!("{kind}.{i}.down"), h, units, Init::Base(gain));
                let d = push(&mut nodes, Node::Linear { from: v, layer: down, start: None });
                let d = push(&mut nodes, Node::Act { from: d });
                let up = linear(format!("{kind}.{i}.up"), units, h, Init::Zero);
                let u = push(&mut nodes, Node::Linear { from: d, layer: up, start: None });
                v = push(&mut nodes, Node::Add { a: v, b: u });
            }
            width = h;
        }
        let head_out = added.output.get(net).copied().unwrap_or(outputs);
        let head = nodes.len();
        let layer = Layer { lora: lora_of("head"), ..linear("head".into(), width, head_out, Init::Base(head_gain)) };
        v = push(&mut nodes, Node::Linear { from: v, layer, start: None });
        if let Some(&c) = column.last() {
            let lateral = Layer { bias: false, ..linear("lateral.head".into(), width, head_out, Init::Zero) };
            v = push(&mut nodes, Node::Linear { from: c, layer: lateral, start: Some(v) });
        }
        v = widen_out(&mut nodes, wide, v, head_out);
        if added.output.contains_key(net) {
            push(&mut nodes, Node::Linear { from: v, layer: linear("output".into(), head_out, outputs, Init::Identity), start: None });
        }
        Layout { nodes, head, activation: config.activation }
    }

    /// The weights of every linear layer (LoRA factors included); `None` past `usize`.
    pub(crate) fn weights(&self) -> Option<usize> {
        self.layers().iter().try_fold(0usize, |sum, l| {
            let lora = l.lora.map_or(Some(0), |(r, _)| r.checked_mul(l.inputs.checked_add(l.outputs)?))?;
            l.inputs.checked_add(1)?.checked_mul(l.outputs)?.checked_add(lora)?.checked_add(sum)
        })
    }

    /// The linear layers, in the order their parameters are created: the base network's first
    /// (trunk, head), then the added ones in node order.
    pub(crate) fn layers(&self) -> Vec<&Layer> {
        let all = self.nodes.iter().filter_map(|n| match n {
            Node::Linear { layer, .. } => Some(layer),
            _ => None,
        });
        let base = |l: &&Layer| l.name.starts_with("trunk.") || l.name == "head";
        let (mut first, rest): (Vec<&Layer>, Vec<&Layer>) = all.partition(base);
        first.extend(rest);
        first
    }

    /// The engine's graph of the network `name` built with `config` (with additions), its
    /// widths read from its parameters' shapes (see [`Layout::graph`]).
    pub(crate) fn graph_of<'a>(
        name: &str,
        config: &MlpConfig,
        slot: impl Fn(&str) -> Option<(usize, &'a [i64])>,
        params_len: usize,
    ) -> Option<graph::Graph> {
        let width = |layer: &str, axis: usize| Some(*slot(&format!("{name}.{layer}.weight"))?.1.get(axis)? as usize);
        let first = if config.hidden.is_empty() { "head" } else { "trunk.0" };
        let inputs = width("input", 1).or_else(|| width(first, 1))?;
        let outputs = width("output", 0).or_else(|| width("head", 0))?;
        Layout::new(&net_name(name.split('.')), config, inputs, outputs, 1.0).graph(name, slot, params_len)
    }

    /// The engine's graph of this layout for the network `name`, its parameters found by
    /// `slot` (offset and shape in a flat buffer of `params_len` values): `None` when one is
    /// missing or misshapen.
    pub(crate) fn graph<'a>(
        &self,
        name: &str,
        slot: impl Fn(&str) -> Option<(usize, &'a [i64])>,
        params_len: usize,
    ) -> Option<graph::Graph> {
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            nodes.push(match node {
                Node::Linear { from, layer, start } => {
                    let (weight, shape) = slot(&format!("{name}.{}.weight", layer.name))?;
                    (shape == [layer.outputs as i64, layer.inputs as i64]).then_some(())?;
                    let bias = match layer.bias {
                        true => Some(slot(&format!("{name}.{}.bias", layer.name)).filter(|(_, s)| *s == [layer.outputs as i64])?.0),
                        false => None,
                    };
                    let lora = match layer.lora {
                        Some((rank, scale)) => {
                            let (a, a_shape) = slot(&format!("{name}.lora.{}.a", layer.name))?;
                            let (b, b_shape) = slot(&format!("{name}.lora.{}.b", layer.name))?;
                            let (r, i, o) = (rank as i64, layer.inputs as i64, layer.outputs as i64);
                            (a_shape == [r, i] && b_shape == [o, r]).then_some(())?;
                            Some(graph::Lora { a, b, rank, scale: scale as f32 })
                        }
                        None => None,
                    };
                    let (inputs, outputs, frozen) = (layer.inputs, layer.outputs, layer.frozen);
                    graph::Node::Linear { from: *from, weight, bias, inputs, outputs, start: *start, lora, frozen }
                }
                Node::Act { from } => graph::Node::Act { from: *from, activation: self.activation },
                Node::Add { a, b } => graph::Node::Add { a: *a, b: *b },
            });
        }
        let inputs = match self.nodes.first() {
            Some(Node::Linear { layer, .. }) => layer.inputs,
            _ => return None,
        };
        graph::Graph::new(nodes, inputs, self.head, params_len)
    }
}

#[cfg(test)]
mod tests;
