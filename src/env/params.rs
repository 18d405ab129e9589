//! Named physics parameters: each environment declares a table of [`ParamSpec`]s (name, default,
//! physical range, meaning), and overrides from RON files are checked against that table before
//! an environment is built.
//!
//! Built-in environments declare their table with [`physics_params!`](crate::physics_params),
//! which also generates a typed struct; a custom environment can do the same or hand the
//! registry a table written by hand.

use std::collections::BTreeMap;
use std::fmt;

use super::error::EnvError;
use crate::util::nearest;

/// Parameter overrides by name, as written in RON: `{"length": 0.75}`.
pub type Params = BTreeMap<String, f64>;

/// The physical range of a parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// Finite and greater than zero (a mass, a length, a time step).
    Positive,
    /// Finite and at least zero (a noise level).
    NonNegative,
    /// Any finite value.
    Finite,
    /// Within `[min, max]`, both included.
    Within(f64, f64),
    /// A whole number (an `int` keyword argument of a Python environment).
    Whole,
    /// A whole number within `[min, max]`, both included.
    WholeWithin(f64, f64),
    /// 0 or 1: a flag (a `bool` keyword argument of a Python environment: false or true).
    Flag,
}

impl Bound {
    /// Whether `value` lies in the range (NaN and infinities never do).
    pub fn admits(self, value: f64) -> bool {
        value.is_finite()
            && match self {
                Bound::Positive => value > 0.0,
                Bound::NonNegative => value >= 0.0,
                Bound::Finite => true,
                Bound::Within(min, max) => (min..=max).contains(&value),
                Bound::Whole => value.fract() == 0.0,
                Bound::WholeWithin(min, max) => value.fract() == 0.0 && (min..=max).contains(&value),
                Bound::Flag => value == 0.0 || value == 1.0,
            }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Positive => write!(f, "finite and > 0"),
            Bound::NonNegative => write!(f, "finite and >= 0"),
            Bound::Finite => write!(f, "finite"),
            Bound::Within(min, max) => write!(f, "in [{min}, {max}]"),
            Bound::Whole => write!(f, "a whole number"),
            Bound::WholeWithin(min, max) => write!(f, "a whole number in [{min}, {max}]"),
            Bound::Flag => write!(f, "0 or 1 (false or true)"),
        }
    }
}

/// One named parameter of an environment.
#[derive(Clone, Copy, Debug)]
pub struct ParamSpec {
    /// The name that overrides use (under [`physics_params!`](crate::physics_params), the field's).
    pub name: &'static str,
    /// The value when not overridden (Gymnasium's, for the built-in environments).
    pub default: f64,
    /// The physical range every value must lie in.
    pub bound: Bound,
    /// What the parameter is, with its unit (under `physics_params!`, the field's doc comment).
    pub doc: &'static str,
}

/// Checks `overrides` against `specs` and returns every parameter's value: the override where
/// there is one, the default elsewhere. Unknown names and out-of-range values are errors that
/// name the parameter (and the nearest valid name, for a typo).
pub fn resolve(env: &str, specs: &[ParamSpec], overrides: &Params) -> Result<Params, EnvError> {
    for (name, &value) in overrides {
        let Some(spec) = specs.iter().find(|s| s.name == name) else {
            return Err(EnvError::UnknownParam {
                env: env.to_string(),
                name: name.clone(),
                valid: specs.iter().map(|s| s.name.to_string()).collect(),
                suggestion: nearest(name, specs.iter().map(|s| s.name)),
            });
        };
        check(env, spec, value)?;
    }
    Ok(specs.iter().map(|s| (s.name.to_string(), overrides.get(s.name).copied().unwrap_or(s.default))).collect())
}

/// Checks one value against its spec.
pub fn check(env: &str, spec: &ParamSpec, value: f64) -> Result<(), EnvError> {
    if spec.bound.admits(value) {
        Ok(())
    } else {
        Err(EnvError::ParamOutOfRange {
            env: env.to_string(),
            name: spec.name.to_string(),
            value,
            range: spec.bound.to_string(),
        })
    }
}

/// Declares an environment's physics parameters: a struct with one `f64` field per parameter,
/// its `Default` (Gymnasium's values), the [`ParamSpec`] table, conversion from resolved
/// [`Params`] and a range check.
///
/// ```
/// headstart::physics_params! {
///     /// A spring's physics.
///     pub struct SpringParams for "Spring-v0" {
///         /// Mass of the bob (kg).
///         mass: 1.0, Positive;
///         /// Spring constant (N/m).
///         stiffness: 4.0, Positive;
///     }
/// }
/// let p = SpringParams { mass: 2.0, ..Default::default() };
/// assert!(p.validate().is_ok());
/// assert!(SpringParams { mass: -1.0, ..p }.validate().is_err());
/// assert_eq!(SpringParams::SPECS[1].name, "stiffness");
/// ```
#[macro_export]
macro_rules! physics_params {
    (
        $(#[$meta:meta])*
        pub struct $name:ident for $env:literal {
            $( $(#[doc = $doc:literal])* $field:ident : $default:expr, $bound:ident $(($($arg:expr),*))? ; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: f64, )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        impl $name {
            /// The parameter table: names, Gymnasium's defaults, physical ranges.
            pub const SPECS: &'static [$crate::env::ParamSpec] = &[
                $( $crate::env::ParamSpec {
                    name: stringify!($field),
                    default: $default,
                    bound: $crate::env::Bound::$bound $(($($arg),*))?,
                    doc: concat!($($doc),*),
                }, )*
            ];

            /// Builds the struct from overrides, checking names and ranges.
            pub fn from_overrides(overrides: &$crate::env::Params) -> Result<Self, $crate::env::EnvError> {
                let all = $crate::env::params::resolve($env, Self::SPECS, overrides)?;
                Ok(Self { $( $field: all[stringify!($field)], )* })
            }

            /// Checks every field against its physical range.
            pub fn validate(&self) -> Result<(), $crate::env::EnvError> {
                let values = [$( self.$field ),*];
                for (spec, value) in Self::SPECS.iter().zip(values) {
                    $crate::env::params::check($env, spec, value)?;
                }
                Ok(())
            }
        }
    };
}
