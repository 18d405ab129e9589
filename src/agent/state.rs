//! An agent's state as one list: each agent names the parts that hold its state (var stores,
//! optimisers, normalisers), each with the prefix of its tensors, once, in checkpoint order;
//! [`agent_state!`] writes [`Agent::tensors`](super::Agent::tensors) and
//! [`Agent::restore`](super::Agent::restore) from that list, so that saving and restoring cannot
//! drift apart.

use tch::Tensor;
use tch::nn::VarStore;

use super::normalize::{ObsNormalizer, RewardNormalizer, RunningMeanStd};
use super::optim::Adam;
use super::{AgentError, copy_tensors, sorted_variables};

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

/// Adam's moments and step count ([`Adam::state`]).
impl StatePart for Adam {
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
