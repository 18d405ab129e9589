//! Helpers between libtorch's named tensors and the agents: copying named tensors in, a var
//! store's variables in name order, frozen copies (distillation teachers), rows as tensors and
//! tensors as values. The ground floor of `agent`: it uses only `error` and `nn`.

use tch::Tensor;

use super::error::{AgentError, fetch_tensor};
use super::nn;

/// Copies every tensor named in `targets` from `get`, under `no_grad`.
pub(crate) fn copy_tensors(
    targets: &[(String, Tensor)],
    get: &mut dyn FnMut(&str) -> Option<Tensor>,
) -> Result<(), AgentError> {
    tch::no_grad(|| {
        for (name, dst) in targets {
            let src = fetch_tensor(get, name, &dst.size())?;
            let mut dst = dst.shallow_clone();
            dst.copy_(&src);
        }
        Ok(())
    })
}

/// The names of a var store's variables, sorted: an agent's [`Agent::weight_names`].
pub(crate) fn variable_names(vs: &tch::nn::VarStore) -> Vec<String> {
    sorted_variables(vs).into_iter().map(|(name, _)| name).collect()
}

/// The named variables of a var store, sorted by name.
pub(crate) fn sorted_variables(vs: &tch::nn::VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// A frozen copy of the variables of `vs` under `prefixes`: `build` makes the same modules under
/// the new store's root (so the names agree), and the values are copied in. What a distillation
/// teacher is.
pub(crate) fn snapshot<T>(
    vs: &tch::nn::VarStore,
    prefixes: &[&str],
    build: impl FnOnce(&tch::nn::Path) -> T,
) -> (tch::nn::VarStore, T) {
    let mut copy = tch::nn::VarStore::new(tch::Device::Cpu);
    // Seeded so that building does not draw from (and race on) libtorch's global generator.
    let modules = nn::with_seed(0, || build(&copy.root()));
    let source = vs.variables();
    tch::no_grad(|| {
        for (name, mut t) in copy.variables() {
            debug_assert!(prefixes.iter().any(|p| name.starts_with(p)), "{name} outside {prefixes:?}");
            t.copy_(&source[&name]);
        }
    });
    copy.freeze();
    (copy, modules)
}

/// Rows of `obs` as a `[n, dim]` float tensor.
pub(crate) fn rows(obs: &[f32], dim: usize) -> Tensor {
    Tensor::from_slice(obs).view([(obs.len() / dim) as i64, dim as i64])
}

/// A tensor's values as `f32`.
pub(crate) fn to_vec(t: &Tensor) -> Vec<f32> {
    let t = t.contiguous();
    let n = t.numel();
    let mut out = vec![0.0f32; n];
    t.copy_data(&mut out, n);
    out
}
