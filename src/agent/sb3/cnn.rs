//! Stable-Baselines3's `CnnPolicy` on headstart's side. SB3's `NatureCNN` (`cnn.{0,2,4}`, three
//! convolutions with ReLUs, then `linear.0` with a ReLU) is headstart's `Encoder::Nature` and the
//! trunk's first layer:
//!
//! | Stable-Baselines3 | headstart |
//! |---|---|
//! | `{extractor}.cnn.{2i}` | `{net}.encoder.conv.{i}` |
//! | `{extractor}.linear.0` | `{net}.trunk.0` (`features_dim` its width) |
//! | PPO `pi_features_extractor`, `vf_features_extractor` | `actor`, `critic` |
//! | PPO `features_extractor` (the actor's, under a second name) | (the same tensors) |
//! | DQN `q_net.features_extractor`, `q_net_target.features_extractor` | `q`, `q_target` |
//!
//! SB3 keeps images channel-first (`VecTransposeImage`) where headstart reads them as
//! environments give them, channel-last: the spaces are transposed, the tensors are the same
//! (headstart's encoder computes in PyTorch's layout). Bytes are divided by 255 in the policy
//! (`normalize_images`), which headstart's `net.input_divisor` does.

use std::collections::BTreeMap;

use super::Problem;
use super::names::StateDict;
use super::pickle::op;
use super::torch_file::{PickleWriter, StateTensor};
use crate::agent::AgentConfig;
use crate::agent::nn::{Activation, Encoder};
use crate::env::Space;

/// The Nature CNN's convolutions: (output channels, kernel); strides 4, 2, 1.
const NATURE: [(usize, usize); 3] = [(32, 8), (64, 4), (64, 3)];

/// What `normalize_images` divides images of bytes by.
pub(super) const BYTE_SCALE: f32 = 255.0;

/// Moves the axes of an image space: `order[k]` is the axis of `shape` that becomes axis `k`.
fn permute(space: &Space, order: [usize; 3]) -> Option<Space> {
    let Space::Box { low, high, shape } = space else { return None };
    let dims = <[usize; 3]>::try_from(shape.as_slice()).ok()?;
    let new = order.map(|axis| dims[axis]);
    let strides = [dims[1] * dims[2], dims[2], 1];
    let moved = |values: &[f32]| -> Vec<f32> {
        let mut out = Vec::with_capacity(values.len());
        for a in 0..new[0] {
            for b in 0..new[1] {
                for c in 0..new[2] {
                    let index = [a, b, c];
                    let at: usize = (0..3).map(|k| index[k] * strides[order[k]]).sum();
                    out.push(values[at]);
                }
            }
        }
        out
    };
    Some(Space::Box { low: moved(low), high: moved(high), shape: new.to_vec() })
}

/// SB3's `(channels, height, width)` image space as headstart's `(height, width, channels)`.
pub(super) fn channels_last(space: &Space) -> Result<Space, Problem> {
    permute(space, [1, 2, 0]).ok_or_else(|| {
        Problem(format!("a CnnPolicy's observation space is an image (channels, height, width), not {space:?}"))
    })
}

/// Headstart's `(height, width, channels)` image space as SB3's `(channels, height, width)`.
pub(super) fn channels_first(space: &Space) -> Option<Space> {
    permute(space, [2, 0, 1])
}

/// Takes the Nature CNN at `extractor` out of `sd` into `out` as `{ours}.encoder.conv.{i}`,
/// checking its shapes; returns its linear layer, the trunk's first (`None` when `sd` holds
/// nothing of it: a target network SB3 left out).
pub(super) fn take_encoder(
    sd: &mut StateDict,
    extractor: &str,
    ours: &str,
    out: &mut BTreeMap<String, StateTensor>,
) -> Result<Option<(StateTensor, StateTensor)>, Problem> {
    let convs = sd.linears(&format!("{extractor}.cnn"));
    let linear = sd.linears(&format!("{extractor}.linear"));
    if convs.is_empty() && linear.is_empty() {
        return Ok(None);
    }
    let shapes: Vec<&[usize]> = convs.iter().map(|(w, _)| w.shape.as_slice()).collect();
    let nature = shapes.len() == NATURE.len()
        && shapes.iter().zip(NATURE).enumerate().all(|(i, (s, (channels, kernel)))| {
            let inputs = if i == 0 { s.get(1).copied().unwrap_or(0) } else { NATURE[i - 1].0 };
            *s == [channels, inputs, kernel, kernel]
        });
    if !nature {
        return Err(Problem(format!(
            "`{extractor}.cnn` holds convolutions of shapes {shapes:?}: not the Nature CNN's (32x8x8, 64x4x4, 64x3x3), \
             the only features extractor headstart reads"
        )));
    }
    for (i, (mut w, mut b)) in convs.into_iter().enumerate() {
        for (t, part) in [(&mut w, "weight"), (&mut b, "bias")] {
            t.name = format!("{ours}.encoder.conv.{i}.{part}");
        }
        out.insert(w.name.clone(), w);
        out.insert(b.name.clone(), b);
    }
    match <[_; 1]>::try_from(linear) {
        Ok([layer]) => Ok(Some(layer)),
        Err(layers) => {
            Err(Problem(format!("`{extractor}.linear` holds {} linear layers, where the Nature CNN has one", layers.len())))
        }
    }
}

/// Removes a PPO's `features_extractor.*`, which is the actor's extractor under a second name,
/// after checking that it is.
pub(super) fn drop_alias(sd: &mut StateDict) -> Result<(), Problem> {
    let alias: Vec<String> = sd.tensors.keys().filter(|k| k.starts_with("features_extractor.")).cloned().collect();
    for name in alias {
        let copy = sd.tensors.remove(&name).expect("listed");
        let actor = format!("pi_{name}");
        let same = sd.tensors.get(&actor).is_some_and(|t| t.shape == copy.shape && t.values == copy.values);
        if !same {
            return Err(Problem(format!("`{name}` is not `{actor}`: SB3's shared features extractor is the actor's")));
        }
    }
    Ok(())
}

/// Makes the actor's and the critic's extractors, imported apart as `{actor,critic}.encoder.*`
/// and `.trunk.0.*` from SB3's `pi_` and `vf_features_extractor` (one module under two names when
/// shared), headstart's shared trunk `shared.*`, after checking that they are the same.
pub(super) fn share(weights: &mut BTreeMap<String, StateTensor>) -> Result<(), Problem> {
    let trunk = |name: &str, net: &str| {
        let rest = name.strip_prefix(net)?.strip_prefix('.')?;
        (rest.starts_with("encoder.") || rest.starts_with("trunk.")).then(|| rest.to_string())
    };
    let parts: Vec<String> = weights.keys().filter_map(|n| trunk(n, "actor")).collect();
    for rest in parts {
        let actor = weights.remove(&format!("actor.{rest}")).expect("listed");
        let critic = weights.remove(&format!("critic.{rest}"));
        if critic.as_ref().is_none_or(|c| c.shape != actor.shape || c.values != actor.values) {
            return Err(Problem(format!(
                "`vf_features_extractor` differs from `pi_features_extractor` at actor.{rest}: not one shared extractor"
            )));
        }
        let name = format!("shared.{rest}");
        weights.insert(name.clone(), StateTensor { name, ..actor });
    }
    Ok(())
}

/// The encoder and first layer of headstart's network `ours` under SB3's names at `extractor`,
/// `(headstart's, SB3's)`.
pub(super) fn names(ours: &str, extractor: &str) -> Vec<(String, String)> {
    let convs = (0..NATURE.len()).map(|i| (format!("{ours}.encoder.conv.{i}"), format!("{extractor}.cnn.{}", 2 * i)));
    let linear = std::iter::once((format!("{ours}.trunk.0"), format!("{extractor}.linear.0")));
    convs
        .chain(linear)
        .flat_map(|(a, b)| ["weight", "bias"].map(|part| (format!("{a}.{part}"), format!("{b}.{part}"))))
        .collect()
}

/// What an export of a network with an encoder writes for SB3's `CnnPolicy`.
pub(super) struct ImagePolicy {
    /// The observation space, channel-first.
    pub(super) space: Space,
    /// Images of bytes, which SB3 divides by 255 (`normalize_images`).
    pub(super) bytes: bool,
    /// The Nature CNN's linear width (`features_extractor_kwargs.features_dim`).
    features_dim: usize,
}

impl ImagePolicy {
    /// The `CnnPolicy` that `config`'s networks over `observation_space` are, `None` without an
    /// encoder; an encoder SB3 has no counterpart for is refused, naming what differs.
    pub(super) fn of(config: &AgentConfig, observation_space: &Space) -> Result<Option<ImagePolicy>, Problem> {
        let net = config.net();
        let Some(encoder) = &net.encoder else { return Ok(None) };
        if *encoder != Encoder::Nature {
            return Err(Problem(format!(
                "the network's encoder is {encoder:?}: SB3's CnnPolicy has the Nature CNN (`encoder: Nature`) alone"
            )));
        }
        let mut firsts = vec![net.hidden.first().copied()];
        if let AgentConfig::Ppo(c) = config {
            firsts.push(c.critic_net().hidden.first().copied());
        }
        if let AgentConfig::A2c(c) = config {
            firsts.push(c.as_ppo().critic_net().hidden.first().copied());
        }
        let features_dim = match firsts.as_slice() {
            [Some(d), rest @ ..] if rest.iter().all(|r| *r == Some(*d)) => *d,
            _ => {
                return Err(Problem(
                    "the Nature CNN's linear layer is each network's first hidden layer, of one width (SB3's \
                     `features_dim`): these networks have none, or differ there"
                        .into(),
                ));
            }
        };
        if net.activation != Activation::Relu {
            return Err(Problem(format!(
                "activation {:?}: the Nature CNN's linear layer is followed by a ReLU in SB3",
                net.activation
            )));
        }
        let space = channels_first(observation_space)
            .ok_or_else(|| Problem(format!("an encoder over the observation space {observation_space:?}")))?;
        let Space::Box { low, high, .. } = &space else { unreachable!("channels_first returns a Box") };
        let bytes = match net.input_divisor {
            None => false,
            Some(d) if d == BYTE_SCALE && low.iter().all(|&v| v == 0.0) && high.iter().all(|&v| v == 255.0) => true,
            Some(d) => {
                return Err(Problem(format!(
                    "net.input_divisor {d}: SB3 divides images of bytes (0 to 255) by 255, or nothing by anything"
                )));
            }
        };
        Ok(Some(ImagePolicy { space, bytes, features_dim }))
    }

    /// The policy's keyword arguments for its images (inside a dict being written).
    pub(super) fn kwargs(&self, p: &mut PickleWriter) {
        p.string("features_extractor_kwargs");
        p.op(op::EMPTY_DICT);
        p.string("features_dim");
        p.int(self.features_dim as i64);
        p.op(op::SETITEM);
        p.string("normalize_images");
        p.op(if self.bytes { op::NEWTRUE } else { op::NEWFALSE });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_spaces_transpose_both_ways() {
        let (c, h, w) = (2, 3, 4);
        let low: Vec<f32> = (0..c * h * w).map(|v| v as f32).collect();
        let chw = Space::Box { low: low.clone(), high: low.iter().map(|v| v + 0.5).collect(), shape: vec![c, h, w] };
        let hwc = channels_last(&chw).unwrap();
        let Space::Box { low: l, shape, .. } = &hwc else { unreachable!() };
        assert_eq!(shape, &[h, w, c]);
        // (row 1, column 2, channel 1) of the channel-last image is (1, 1, 2) of the channel-first one.
        assert_eq!(l[(w + 2) * c + 1], low[(h + 1) * w + 2]);
        assert_eq!(channels_first(&hwc).unwrap(), chw);
        assert!(channels_last(&Space::Discrete { n: 3 }).is_err());
    }
}
