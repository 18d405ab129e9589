//! SB3's tensors under headstart's names: a state dict taken from as each tensor finds its place
//! (what is left over has no place, and is refused), and the layers of a `Sequential` placed as a
//! trunk and a head.

use std::collections::BTreeMap;

use super::Problem;
use super::torch_file::StateTensor;

/// The state dict by name, taken from as tensors find their place.
pub(super) struct StateDict {
    pub(super) entry: String,
    pub(super) tensors: BTreeMap<String, StateTensor>,
}

impl StateDict {
    /// The linear layers `{prefix}.{k}` in order of `k` (a `Sequential` of linears and activations).
    pub(super) fn linears(&mut self, prefix: &str) -> Vec<(StateTensor, StateTensor)> {
        let mut indices: Vec<(usize, String)> = self
            .tensors
            .keys()
            .filter_map(|k| {
                let rest = k.strip_prefix(prefix)?.strip_prefix('.')?;
                let index = rest.strip_suffix(".weight")?;
                Some((index.parse().ok()?, index.to_string()))
            })
            .collect();
        indices.sort();
        indices
            .into_iter()
            .filter_map(|(_, i)| {
                let w = self.tensors.remove(&format!("{prefix}.{i}.weight"))?;
                let b = self.tensors.remove(&format!("{prefix}.{i}.bias"))?;
                Some((w, b))
            })
            .collect()
    }

    pub(super) fn take(&mut self, name: &str) -> Result<StateTensor, Problem> {
        self.tensors.remove(name).ok_or_else(|| Problem(format!("has no `{name}`")))
    }
}

/// Puts layers under headstart's names: `{to}.trunk.{i}` for the hidden layers and `{to}.head`
/// for `head` (or the last layer when `head` is `None`); returns the hidden widths.
pub(super) fn place(
    out: &mut BTreeMap<String, StateTensor>,
    mut layers: Vec<(StateTensor, StateTensor)>,
    head: Option<(StateTensor, StateTensor)>,
    to: &str,
) -> Result<Vec<usize>, Problem> {
    let head = match head {
        Some(h) => h,
        None => layers.pop().ok_or_else(|| Problem(format!("no layers for `{to}`")))?,
    };
    let mut hidden = Vec::new();
    let mut put = |name: String, mut t: StateTensor| {
        t.name = name.clone();
        out.insert(name, t);
    };
    for (i, (w, b)) in layers.into_iter().enumerate() {
        hidden.push(*w.shape.first().ok_or("a weight without rows")?);
        put(format!("{to}.trunk.{i}.weight"), w);
        put(format!("{to}.trunk.{i}.bias"), b);
    }
    put(format!("{to}.head.weight"), head.0);
    put(format!("{to}.head.bias"), head.1);
    Ok(hidden)
}
