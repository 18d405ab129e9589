//! Observation and action spaces: `Discrete(n)` and `Box` with bounds and a shape, as in
//! Gymnasium, and for observations `Dict` (named parts, flattened as Gymnasium's
//! `spaces.flatten` does). A space samples, checks membership, and validates actions before a
//! step.

use std::fmt;

use rand::Rng;
use rand_distr::{Distribution, Exp1, StandardNormal};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::EnvError;

/// An action, as handed to [`Env::step`](super::Env::step).
///
/// Continuous actions of up to four dimensions live inline, so stepping allocates nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// An index into a `Discrete(n)` space.
    Discrete(usize),
    /// A point of a `Box` space, flattened in row-major order.
    Continuous(SmallVec<[f32; 4]>),
}

impl Action {
    /// A continuous action from a slice.
    pub fn continuous(values: &[f32]) -> Self {
        Action::Continuous(SmallVec::from_slice(values))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Discrete(a) => write!(f, "{a}"),
            Action::Continuous(v) => write!(f, "{:?}", v.as_slice()),
        }
    }
}

/// A space of observations or actions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Space {
    /// The integers `0..n`.
    Discrete {
        /// The number of elements.
        n: usize,
    },
    /// Real vectors of the given shape with elementwise bounds (which may be infinite).
    /// `low` and `high` hold one value per element, flattened in row-major order.
    Box {
        /// The lower bound of each element (may be `-inf`).
        low: Vec<f32>,
        /// The upper bound of each element (may be `+inf`).
        high: Vec<f32>,
        /// The shape; its product is the number of elements.
        shape: Vec<usize>,
    },
    /// Observations of named parts (an image and a vector, a position and a goal), each a `Box`
    /// or a `Discrete`. The observation is their concatenation in this order, as Gymnasium's
    /// `spaces.flatten` lays it out: a `Box` part flattened in row-major order, a `Discrete`
    /// part one-hot (`n` values). Never an action space.
    Dict {
        /// The parts, in order (Gymnasium's `Dict` sorts its keys).
        spaces: Vec<(String, Space)>,
    },
}

/// One part of a [`Space::Dict`] observation: where it lies in the flat observation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DictPart<'a> {
    /// Its key.
    pub key: &'a str,
    /// Its space.
    pub space: &'a Space,
    /// The index of its first value in the flat observation.
    pub offset: usize,
    /// Its number of values (a `Discrete` part's `n`: one-hot).
    pub width: usize,
}

impl Space {
    /// A one-dimensional `Box` with the given bounds.
    ///
    /// Panics if `low` and `high` differ in length: spaces are built by environment authors, not
    /// from user input; [`Space::validate`] reports malformed spaces that were built by hand.
    pub fn bounded(low: Vec<f32>, high: Vec<f32>) -> Self {
        assert_eq!(low.len(), high.len(), "Box bounds differ in length");
        let shape = vec![low.len()];
        Space::Box { low, high, shape }
    }

    /// A one-dimensional `Box` from `-high` to `high`.
    pub fn symmetric(high: &[f32]) -> Self {
        Self::bounded(high.iter().map(|h| -h).collect(), high.to_vec())
    }

    /// A one-dimensional `Box` of `dim` elements, each within `[low, high]`.
    pub fn uniform_box(low: f32, high: f32, dim: usize) -> Self {
        Self::bounded(vec![low; dim], vec![high; dim])
    }

    /// The space in a few characters, its kind and size without its bounds: `Box(17)`,
    /// `Box(2, 3)`, `Discrete(3)` (for messages that list many spaces).
    pub fn brief(&self) -> String {
        match self {
            Space::Discrete { n } => format!("Discrete({n})"),
            Space::Box { shape, .. } => {
                format!("Box({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
            }
            Space::Dict { spaces } => {
                let parts: Vec<String> = spaces.iter().map(|(k, s)| format!("{k}: {}", s.brief())).collect();
                format!("Dict({})", parts.join(", "))
            }
        }
    }

    /// The number of scalars an element of this space flattens to: 1 for `Discrete`, the sum of
    /// its parts' widths for a `Dict` (a `Discrete` part one-hot).
    pub fn flat_dim(&self) -> usize {
        match self {
            Space::Discrete { .. } => 1,
            Space::Box { low, .. } => low.len(),
            Space::Dict { spaces } => spaces.iter().map(|(_, s)| s.part_width()).sum(),
        }
    }

    /// The values this space takes as a part of a `Dict` (a `Discrete` one-hot: `n`).
    fn part_width(&self) -> usize {
        match self {
            Space::Discrete { n } => *n,
            other => other.flat_dim(),
        }
    }

    /// The parts of a `Dict` observation in order, with where each lies (none for other spaces).
    pub fn parts(&self) -> Vec<DictPart<'_>> {
        let Space::Dict { spaces } = self else { return Vec::new() };
        let mut offset = 0;
        spaces
            .iter()
            .map(|(key, space)| {
                let width = space.part_width();
                let part = DictPart { key, space, offset, width };
                offset += width;
                part
            })
            .collect()
    }

    /// Whether `action` is an element of the space (bounds included).
    pub fn contains(&self, action: &Action) -> bool {
        match (self, action) {
            (Space::Discrete { n }, Action::Discrete(a)) => a < n,
            (Space::Box { low, high, .. }, Action::Continuous(v)) => {
                v.len() == low.len() && v.iter().zip(low.iter().zip(high)).all(|(x, (lo, hi))| lo <= x && x <= hi)
            }
            _ => false,
        }
    }

    /// Whether an observation lies in the space (bounds included, NaN never; a `Dict`'s
    /// `Discrete` parts exactly one-hot).
    pub fn contains_obs(&self, obs: &[f32]) -> bool {
        match self {
            Space::Discrete { n } => obs.len() == 1 && obs[0] >= 0.0 && obs[0].fract() == 0.0 && (obs[0] as usize) < *n,
            Space::Box { low, high, .. } => {
                obs.len() == low.len() && obs.iter().zip(low.iter().zip(high)).all(|(x, (lo, hi))| lo <= x && x <= hi)
            }
            Space::Dict { .. } => {
                obs.len() == self.flat_dim()
                    && self.parts().iter().all(|p| {
                        let values = &obs[p.offset..p.offset + p.width];
                        match p.space {
                            Space::Discrete { .. } => {
                                let ones = values.iter().filter(|&&v| v == 1.0).count();
                                ones == 1 && values.iter().all(|&v| v == 0.0 || v == 1.0)
                            }
                            space => space.contains_obs(values),
                        }
                    })
            }
        }
    }

    /// Whether an environment can act on `action` (see [`Space::check_action`], which says why
    /// not).
    #[inline]
    pub fn accepts(&self, action: &Action) -> bool {
        match (self, action) {
            (Space::Discrete { n }, Action::Discrete(a)) => a < n,
            (Space::Box { low, .. }, Action::Continuous(v)) => v.len() == low.len() && v.iter().all(|x| x.is_finite()),
            _ => false,
        }
    }

    /// Checks that an environment can act on `action`: a discrete action within `0..n`, or a
    /// continuous action of the right length without NaN or infinity. Continuous values outside
    /// the bounds pass: environments clip them, as Gymnasium's do.
    #[inline]
    pub fn check_action(&self, action: &Action) -> Result<(), EnvError> {
        let invalid = |reason: String| {
            Err(EnvError::InvalidAction { action: action.to_string(), space: self.to_string(), reason })
        };
        match (self, action) {
            (Space::Discrete { n }, Action::Discrete(a)) if a >= n => {
                invalid(format!("it must be an integer in 0..{n}"))
            }
            (Space::Discrete { .. }, Action::Discrete(_)) => Ok(()),
            (Space::Box { low, .. }, Action::Continuous(v)) if v.len() != low.len() => {
                invalid(format!("it has {} values where the space has {}", v.len(), low.len()))
            }
            (Space::Box { .. }, Action::Continuous(v)) => match v.iter().position(|x| !x.is_finite()) {
                Some(i) => invalid(format!("element {i} is {}", v[i])),
                None => Ok(()),
            },
            (Space::Discrete { .. }, Action::Continuous(_)) => {
                invalid("a continuous action was given to a discrete space".into())
            }
            (Space::Box { .. }, Action::Discrete(_)) => {
                invalid("a discrete action was given to a continuous space".into())
            }
            (Space::Dict { .. }, _) => invalid("a dictionary space is for observations, not actions".into()),
        }
    }

    /// The error for an action an environment will not act on: [`Space::check_action`]'s reason,
    /// or, for an action the space admits but the environment still refuses, a plain one.
    pub fn reject(&self, action: &Action) -> EnvError {
        self.check_action(action).err().unwrap_or_else(|| EnvError::InvalidAction {
            action: action.to_string(),
            space: self.to_string(),
            reason: "the environment does not act on it".into(),
        })
    }

    /// Draws an element as Gymnasium does: uniform on bounded dimensions, a standard normal on
    /// unbounded ones, a shifted exponential on dimensions bounded on one side. (A `Dict`, which
    /// is never an action space, gives an empty continuous action, which no space accepts.)
    pub fn sample(&self, rng: &mut impl Rng) -> Action {
        match self {
            Space::Dict { .. } => Action::Continuous(SmallVec::new()),
            Space::Discrete { n } => Action::Discrete(rng.random_range(0..*n)),
            Space::Box { low, high, .. } => Action::Continuous(
                low.iter()
                    .zip(high)
                    .map(|(&lo, &hi)| match (lo.is_finite(), hi.is_finite()) {
                        (true, true) => rng.random_range(lo..=hi),
                        (false, false) => StandardNormal.sample(rng),
                        (true, false) => lo + Distribution::<f32>::sample(&Exp1, rng),
                        (false, true) => hi - Distribution::<f32>::sample(&Exp1, rng),
                    })
                    .collect(),
            ),
        }
    }

    /// Reports a malformed space: a `Discrete` with `n == 0`, a `Box` whose bounds disagree
    /// with its shape, contain NaN, or have `low > high`, a `Dict` without parts, with a key
    /// empty or repeated, or with a part that is itself a `Dict` or malformed.
    pub fn validate(&self) -> Result<(), SpaceError> {
        match self {
            Space::Dict { spaces } => {
                let dict = |problem: String| Err(SpaceError::Dict(problem));
                if spaces.is_empty() {
                    return dict("it has no parts".into());
                }
                for (i, (key, space)) in spaces.iter().enumerate() {
                    if key.is_empty() || spaces[..i].iter().any(|(k, _)| k == key) {
                        return dict(format!("part {i}'s key {key:?} is empty or repeated"));
                    }
                    if let Space::Dict { .. } = space {
                        return dict(format!("part {key:?} is a Dict itself: flatten the nesting into one level"));
                    }
                    if space.flat_dim() == 0 {
                        return dict(format!("part {key:?} holds no values"));
                    }
                    space.validate().or_else(|e| dict(format!("part {key:?}: {e}")))?;
                }
                Ok(())
            }
            Space::Discrete { n: 0 } => Err(SpaceError::EmptyDiscrete),
            Space::Discrete { .. } => Ok(()),
            Space::Box { low, high, shape } => {
                let size: usize = shape.iter().product();
                if low.len() != size || high.len() != size {
                    return Err(SpaceError::BoundsLength {
                        shape: shape.clone(),
                        low: low.len(),
                        high: high.len(),
                        size,
                    });
                }
                match low.iter().zip(high).position(|(lo, hi)| lo.is_nan() || hi.is_nan() || lo > hi) {
                    Some(i) => Err(SpaceError::Bounds { index: i, low: low[i], high: high[i] }),
                    None => Ok(()),
                }
            }
        }
    }
}

/// A malformed space, as [`Space::validate`] finds it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SpaceError {
    /// `Discrete(0)`: no action or observation to take.
    #[error("Discrete(0) has no elements")]
    EmptyDiscrete,
    /// A `Box` whose bound vectors do not have the size its shape says.
    #[error("Box of shape {shape:?} has {low} low and {high} high bounds, where it needs {size}")]
    BoundsLength {
        /// The declared shape.
        shape: Vec<usize>,
        /// How many low bounds it has.
        low: usize,
        /// How many high bounds it has.
        high: usize,
        /// How many each needs: the product of the shape.
        size: usize,
    },
    /// A `Dict` of no parts, of a repeated or empty key, or of a malformed or nested part.
    #[error("Dict space: {0}")]
    Dict(String),
    /// A `Box` element whose bounds contain NaN or have `low > high`.
    #[error("Box element {index} has bounds [{low}, {high}]")]
    Bounds {
        /// The element's flat index.
        index: usize,
        /// Its low bound.
        low: f32,
        /// Its high bound.
        high: f32,
    },
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Space::Discrete { n } => write!(f, "Discrete({n})"),
            Space::Box { low, high, shape } => {
                let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
                // Bounds alike for every value (images) are written once, as Gymnasium does.
                let bound = |b: &[f32]| match b {
                    [first, rest @ ..] if !rest.is_empty() && rest.iter().all(|v| v == first) => format!("{first:?}"),
                    _ => format!("{b:?}"),
                };
                write!(f, "Box(low={}, high={}, shape=({}))", bound(low), bound(high), dims.join(", "))
            }
            Space::Dict { spaces } => {
                let parts: Vec<String> = spaces.iter().map(|(k, s)| format!("{k}: {s}")).collect();
                write!(f, "Dict({})", parts.join(", "))
            }
        }
    }
}
