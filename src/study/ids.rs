//! The study's vocabulary, on its ground floor: the identifiers of targets and arms, and the
//! metrics a comparison reports. Every other module of `study` may use them; they use nothing of
//! `study` (see the floors in `study`'s documentation).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::util::file_safe;

/// A target's key: unique among the experiment's targets, also once made file-safe. Serialised
/// as a plain string.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TargetId(String);

/// An arm's label (`scratch`, or a strategy's label): unique among the arms, also once made
/// file-safe. Serialised as a plain string.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ArmId(String);

macro_rules! id {
    ($ty:ident) => {
        impl $ty {
            /// The identifier of `name`.
            pub fn new(name: impl Into<String>) -> Self {
                $ty(name.into())
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The identifier as a file or folder name.
            pub fn file_name(&self) -> String {
                file_safe(&self.0)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $ty {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$ty> for String {
            fn eq(&self, other: &$ty) -> bool {
                *self == other.0
            }
        }
    };
}

id!(TargetId);
id!(ArmId);

/// The metrics of a comparison.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// The normalised return before any update.
    Jumpstart,
    /// The mean normalised return over the last `final_fraction` of the budget.
    Asymptotic,
    /// The mean of the normalised curve over the budget.
    #[default]
    Area,
    /// Environment steps trained until the first evaluation at the threshold.
    Time,
}

impl Metric {
    /// Every metric, in the order a comparison lists them.
    pub const ALL: [Metric; 4] = [Metric::Jumpstart, Metric::Asymptotic, Metric::Area, Metric::Time];

    /// The name summaries and reports give it.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Jumpstart => "jumpstart",
            Metric::Asymptotic => "asymptotic",
            Metric::Area => "area",
            Metric::Time => "time to threshold",
        }
    }

    /// Whether lower values are better (times).
    pub fn lower_is_better(self) -> bool {
        matches!(self, Metric::Time)
    }

    /// What it means for transfer to be better on it, in a sentence's words.
    pub fn better(self) -> &'static str {
        match self {
            Metric::Jumpstart => "a better start",
            Metric::Asymptotic => "a better plateau",
            Metric::Area => "more total reward",
            Metric::Time => "faster to the threshold",
        }
    }

    /// What it means for transfer to be worse on it, in a sentence's words.
    pub fn worse(self) -> &'static str {
        match self {
            Metric::Jumpstart => "a worse start",
            Metric::Asymptotic => "a worse plateau",
            Metric::Area => "less total reward",
            Metric::Time => "slower to the threshold",
        }
    }
}

/// An estimate with its 95 % interval (how it is made is said where it is used).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The estimate.
    pub value: f64,
    /// Its 95 % interval.
    pub ci95: (f64, f64),
}
