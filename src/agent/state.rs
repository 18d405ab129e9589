//! An agent's state as one list: each agent names the parts that hold its state (var stores,
//! optimisers, normalisers), each with the prefix of its tensors, once, in checkpoint order;
//! [`agent_state!`] writes [`Agent::tensors`](super::Agent::tensors) and
//! [`Agent::restore`](super::Agent::restore) from that list, so that saving and restoring cannot
//! drift apart.

use tch::Tensor;
use tch::nn::VarStore;

use super::error::AgentError;
use super::normalize::{ObsNormalizer, RewardNormalizer, RunningMeanStd};
use super::optim::Optimizer;
use super::replay::ReplayBuffer;
use super::tensors::{copy_tensors, sorted_variables, to_vec};

/// A part of an agent that holds state: it lists its tensors under a prefix and restores them.
pub(crate) trait StatePart {
    /// Appends the part's named tensors under `prefix`.
    fn save(&self, prefix: &str, out: &mut Vec<(String, Tensor)>);
    /// Restores what [`StatePart::save`] listed; `get` looks a tensor up by name.
    fn load(&mut self, prefix: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError>;
}

/// A var store's variables, sorted by name (their names carry their own prefix).
impl StatePart for VarStore {
    fn save(&self, _: &str, out: &mut Vec<(String, Tensor)>) {
        out.extend(sorted_variables(self));
    }

    fn load(&mut self, _: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        copy_tensors(&sorted_variables(self), get)
    }
}

/// Adam's moments and step count ([`Optimizer::state`]).
impl StatePart for Optimizer {
    fn save(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        out.extend(self.state(prefix));
    }

    fn load(&mut self, prefix: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        self.load_state(prefix, get)
    }
}

/// Running mean, variance and count ([`RunningMeanStd::state`]).
impl StatePart for RunningMeanStd {
    fn save(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        out.extend(self.state(prefix));
    }

    fn load(&mut self, prefix: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        self.load_state(prefix, get)
    }
}

/// An observation normaliser's statistics.
impl StatePart for ObsNormalizer {
    fn save(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        self.stats.save(prefix, out);
    }

    fn load(&mut self, prefix: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        self.stats.load(prefix, get)
    }
}

/// A reward normaliser's statistics of the discounted return.
impl StatePart for RewardNormalizer {
    fn save(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        self.stats.save(prefix, out);
    }

    fn load(&mut self, prefix: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        self.stats.load(prefix, get)
    }
}

/// An optional part (an entropy optimiser, a normaliser): nothing when absent.
impl<T: StatePart> StatePart for Option<T> {
    fn save(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        if let Some(part) = self {
            part.save(prefix, out);
        }
    }

    fn load(&mut self, prefix: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        match self {
            Some(part) => part.load(prefix, get),
            None => Ok(()),
        }
    }
}

/// Writes `tensors` and `restore` of an `impl Agent` from the list of the agent's state parts,
/// in checkpoint order: `field` for a var store (its variables are named already) or
/// `"prefix": field` for an optimiser or a normaliser (optional ones may be `Option`s).
/// `restore` also sets `self.steps` and forgets `self.current` (the next `learn` resets the
/// environments).
macro_rules! agent_state {
    ($($($prefix:literal :)? $field:ident),* $(,)?) => {
        fn tensors(&self) -> Vec<(String, tch::Tensor)> {
            let mut out = Vec::new();
            $( $crate::agent::state::StatePart::save(&self.$field, agent_state!(@prefix $($prefix)?), &mut out); )*
            out
        }

        fn restore(
            &mut self,
            get: &mut dyn FnMut(&str) -> Option<tch::Tensor>,
            steps: u64,
        ) -> Result<(), $crate::agent::AgentError> {
            $( $crate::agent::state::StatePart::load(&mut self.$field, agent_state!(@prefix $($prefix)?), get)?; )*
            self.steps = steps;
            self.current = None;
            Ok(())
        }
    };
    (@prefix) => { "" };
    (@prefix $prefix:literal) => { $prefix };
}
pub(crate) use agent_state;

/// A part of an agent's training state that is not among its tensors: the random generator,
/// counters, the observations in hand, exploration matrices, running returns and the replay
/// buffer (in ring order). Saved as named tensors under `training.<field>`, so that an agent
/// restored from [`Agent::tensors`](super::Agent::tensors) and these in another process trains
/// on bit for bit.
pub(crate) trait TrainingPart {
    /// Appends the part's tensors, named `name` or `name.<part>`.
    fn save_training(&self, name: &str, out: &mut Vec<(String, Tensor)>);
    /// Restores what [`TrainingPart::save_training`] listed.
    fn load_training(&mut self, name: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError>;
}

/// A tensor of `get` with the kind `kind` and one dimension, any length.
fn vector(get: &mut dyn FnMut(&str) -> Option<Tensor>, name: &str, kind: tch::Kind) -> Result<Tensor, AgentError> {
    let t = get(name).ok_or_else(|| AgentError::MissingTensor { name: name.to_string() })?;
    if t.dim() != 1 || t.kind() != kind {
        return Err(AgentError::TensorShape {
            name: name.to_string(),
            found: t.size(),
            expected: format!("[n] of {kind:?}"),
        });
    }
    Ok(t)
}

fn f32s(get: &mut dyn FnMut(&str) -> Option<Tensor>, name: &str) -> Result<Vec<f32>, AgentError> {
    Ok(to_vec(&vector(get, name, tch::Kind::Float)?))
}

fn i64s(get: &mut dyn FnMut(&str) -> Option<Tensor>, name: &str, len: usize) -> Result<Vec<i64>, AgentError> {
    let t = vector(get, name, tch::Kind::Int64)?;
    if t.numel() != len {
        return Err(AgentError::TensorShape { name: name.to_string(), found: t.size(), expected: format!("[{len}]") });
    }
    Ok((0..len as i64).map(|i| t.int64_value(&[i])).collect())
}

/// ChaCha's whole state: its seed (four words), stream and position (two words).
impl TrainingPart for super::AgentRng {
    fn save_training(&self, name: &str, out: &mut Vec<(String, Tensor)>) {
        let seed = self.get_seed();
        let mut words: Vec<i64> =
            seed.chunks(8).map(|c| i64::from_le_bytes(c.try_into().expect("8-byte chunks"))).collect();
        let pos = self.get_word_pos();
        words.extend([self.get_stream() as i64, pos as u64 as i64, (pos >> 64) as u64 as i64]);
        out.push((name.to_string(), Tensor::from_slice(&words)));
    }

    fn load_training(&mut self, name: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        let words = i64s(get, name, 7)?;
        let mut seed = [0u8; 32];
        for (chunk, w) in seed.chunks_mut(8).zip(&words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        let mut rng = <super::AgentRng as rand::SeedableRng>::from_seed(seed);
        rng.set_stream(words[4] as u64);
        rng.set_word_pos(u128::from(words[5] as u64) | (u128::from(words[6] as u64) << 64));
        *self = rng;
        Ok(())
    }
}

/// A counter.
impl TrainingPart for u64 {
    fn save_training(&self, name: &str, out: &mut Vec<(String, Tensor)>) {
        out.push((name.to_string(), Tensor::from_slice(&[*self as i64])));
    }

    fn load_training(&mut self, name: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        *self = i64s(get, name, 1)?[0] as u64;
        Ok(())
    }
}

/// A vector of values (an exploration matrix, observations in hand).
impl TrainingPart for Vec<f32> {
    fn save_training(&self, name: &str, out: &mut Vec<(String, Tensor)>) {
        out.push((name.to_string(), Tensor::from_slice(self)));
    }

    fn load_training(&mut self, name: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        *self = f32s(get, name)?;
        Ok(())
    }
}

/// Two parts under `name.0` and `name.1`.
impl<A: TrainingPart, B: TrainingPart> TrainingPart for (A, B) {
    fn save_training(&self, name: &str, out: &mut Vec<(String, Tensor)>) {
        self.0.save_training(&format!("{name}.0"), out);
        self.1.save_training(&format!("{name}.1"), out);
    }

    fn load_training(&mut self, name: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        self.0.load_training(&format!("{name}.0"), get)?;
        self.1.load_training(&format!("{name}.1"), get)
    }
}

/// A part that may be absent (the observations in hand before the first `learn`): its tensors
/// when present, and `name.present`.
impl<T: TrainingPart + Default> TrainingPart for Option<T> {
    fn save_training(&self, name: &str, out: &mut Vec<(String, Tensor)>) {
        out.push((format!("{name}.present"), Tensor::from_slice(&[i64::from(self.is_some())])));
        if let Some(part) = self {
            part.save_training(name, out);
        }
    }

    fn load_training(&mut self, name: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        *self = match i64s(get, &format!("{name}.present"), 1)?[0] {
            0 => None,
            _ => {
                let mut part = T::default();
                part.load_training(name, get)?;
                Some(part)
            }
        };
        Ok(())
    }
}

/// Each environment's running discounted return (the statistics are among the tensors), when
/// the agent normalises rewards; whether it does is its configuration's, not the file's.
impl TrainingPart for Option<RewardNormalizer> {
    fn save_training(&self, name: &str, out: &mut Vec<(String, Tensor)>) {
        if let Some(norm) = self {
            out.push((name.to_string(), Tensor::from_slice(norm.returns())));
        }
    }

    fn load_training(&mut self, name: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        let Some(norm) = self else { return Ok(()) };
        let t = vector(get, name, tch::Kind::Double)?;
        let n = norm.returns().len();
        if t.numel() != n {
            return Err(AgentError::TensorShape {
                name: name.to_string(),
                found: t.size(),
                expected: format!("[{n}]"),
            });
        }
        let values: Vec<f64> = (0..n as i64).map(|i| t.double_value(&[i])).collect();
        norm.returns_mut().copy_from_slice(&values);
        Ok(())
    }
}

/// The replay buffer as it lies in memory: storage, length and write position.
impl TrainingPart for ReplayBuffer {
    fn save_training(&self, name: &str, out: &mut Vec<(String, Tensor)>) {
        let (arrays, len, pos) = self.ring();
        for (part, values) in ["obs", "actions", "rewards", "next_obs", "dones"].into_iter().zip(arrays) {
            out.push((format!("{name}.{part}"), Tensor::from_slice(&values)));
        }
        out.push((format!("{name}.ring"), Tensor::from_slice(&[len as i64, pos as i64])));
    }

    fn load_training(&mut self, name: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        let mut arrays = Vec::with_capacity(5);
        for part in ["obs", "actions", "rewards", "next_obs", "dones"] {
            arrays.push(f32s(get, &format!("{name}.{part}"))?);
        }
        let ring = i64s(get, &format!("{name}.ring"), 2)?;
        let arrays: [Vec<f32>; 5] = arrays.try_into().expect("five arrays");
        self.set_ring(arrays, ring[0] as usize, ring[1] as usize)
    }
}

/// Writes `training_state` and `restore_training` of an `impl Agent` from the list of its
/// fields that hold training state besides its tensors (see [`TrainingPart`]).
macro_rules! training_state {
    ($($field:ident),* $(,)?) => {
        fn training_state(&self) -> Vec<(String, tch::Tensor)> {
            let mut out = Vec::new();
            $( $crate::agent::state::TrainingPart::save_training(
                &self.$field, concat!("training.", stringify!($field)), &mut out); )*
            out
        }

        fn restore_training(
            &mut self,
            get: &mut dyn FnMut(&str) -> Option<tch::Tensor>,
        ) -> Result<(), $crate::agent::AgentError> {
            $( $crate::agent::state::TrainingPart::load_training(
                &mut self.$field, concat!("training.", stringify!($field)), get)?; )*
            Ok(())
        }
    };
}
pub(crate) use training_state;
