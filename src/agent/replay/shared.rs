//! Next observations not stored twice (Stable-Baselines3's `optimize_memory_usage`, here exact):
//! a transition's next observation is, in most cases, the observation its environment acted on
//! one vector step later, which the ring holds anyway `stride` slots on. [`Shared`] keeps only
//! the exceptions: the final observation of an episode that ended, a next observation that the
//! later row does not equal (bit for bit), and the newest step's next observations until the next
//! step writes its rows. Every transition reads back exactly what it was given, so sampling, and
//! training, are the same bits as with every next observation stored; an image replay takes half
//! the memory.
//!
//! Why the later row is still there: rows are written in order, so slot `s + stride` (mod the
//! capacity) is rewritten only after slot `s` itself is; while a transition is in the ring, its
//! successor row is too.

use std::collections::HashMap;

use super::Frames;

/// The exceptions to "the next observation is the row `stride` slots on".
#[derive(Debug)]
pub(super) struct Shared {
    /// Environments per vector step: the distance from a row to its environment's next one.
    pub(super) stride: usize,
    /// Next observations kept as given, by slot: episodes' final observations, rows pushed one by
    /// one, and next observations the later row does not equal.
    explicit: HashMap<usize, Frames>,
    /// The newest vector step's next observations, by slot, until the next step's rows show
    /// whether they are needed.
    pending: HashMap<usize, Frames>,
    /// Whether rows are kept as bytes while they can be (as the ring's).
    bytes: bool,
}

impl Shared {
    /// For vector steps of `stride` environments, rows kept as bytes while they can be.
    pub(super) fn new(stride: usize, bytes: bool) -> Self {
        Shared { stride, explicit: HashMap::new(), pending: HashMap::new(), bytes }
    }

    /// Slot `slot` is about to be rewritten: what was kept for it goes.
    pub(super) fn forget(&mut self, slot: usize) {
        self.explicit.remove(&slot);
        self.pending.remove(&slot);
    }

    /// Slot `slot`'s next observation is `next`, kept as given.
    pub(super) fn keep(&mut self, slot: usize, next: &[f32]) {
        self.explicit.insert(slot, Frames::from_floats(next.to_vec(), self.bytes));
    }

    /// Slot `slot`'s next observation is `next`, which the next vector step may make redundant.
    pub(super) fn wait(&mut self, slot: usize, next: &[f32]) {
        self.pending.insert(slot, Frames::from_floats(next.to_vec(), self.bytes));
    }

    /// The row written into `slot` shows whether the transition `stride` slots back (`earlier`)
    /// needs its waiting next observation: kept when it differs from `row`, dropped when equal.
    pub(super) fn settle(&mut self, earlier: usize, row: &[f32]) {
        if let Some(next) = self.pending.remove(&earlier)
            && !same_bits(&next.floats(), row)
        {
            self.explicit.insert(earlier, next);
        }
    }

    /// Every waiting next observation kept as given (before a row that is not the next step's).
    pub(super) fn settle_all(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.explicit.extend(pending);
    }

    /// The next observation of `slot` when kept apart; `None`: the row `stride` slots on.
    pub(super) fn kept(&self, slot: usize) -> Option<&Frames> {
        self.explicit.get(&slot).or_else(|| self.pending.get(&slot))
    }

    /// The rows kept apart (for the memory a buffer holds).
    pub(super) fn rows(&self) -> impl Iterator<Item = &Frames> {
        self.explicit.values().chain(self.pending.values())
    }
}

/// Whether two rows are the same bits (a NaN equals itself; 0.0 and -0.0 differ).
pub(super) fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
