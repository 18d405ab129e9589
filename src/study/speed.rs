//! How much sooner transfer reaches the threshold: the speed-up of median times (a bound when a
//! median is censored) and the total-time view that counts the source's training too.

use serde::{Deserialize, Serialize};

/// Median steps to threshold, scratch's over transfer's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Speedup {
    /// Both medians reach the threshold.
    Ratio(f64),
    /// Scratch's median is censored: the ratio is at least this.
    AtLeast(f64),
    /// Transfer's median is censored and scratch's is not: the ratio is at most this (a slowdown).
    AtMost(f64),
    /// Transfer's median run meets the threshold before any update.
    ZeroShot,
    /// Both medians are censored.
    NotEstimable,
}

impl Speedup {
    /// From transfer's and scratch's median times (`None`: censored, at `censored`).
    pub(super) fn of(transfer: Option<f64>, scratch: Option<f64>, censored: f64) -> Speedup {
        match (transfer, scratch) {
            (Some(t), _) if t <= 0.0 => Speedup::ZeroShot,
            (Some(t), Some(s)) => Speedup::Ratio(s / t),
            (Some(t), None) => Speedup::AtLeast(censored / t),
            (None, Some(s)) => Speedup::AtMost(s / censored),
            (None, None) => Speedup::NotEstimable,
        }
    }

    /// As the verdict table shows it.
    pub fn text(self) -> String {
        match self {
            Speedup::Ratio(r) => format!("{r:.2}x"),
            Speedup::AtLeast(r) => format!(">= {r:.2}x"),
            Speedup::AtMost(r) => format!("<= {r:.2}x"),
            Speedup::ZeroShot => "zero-shot".into(),
            Speedup::NotEstimable => "not estimable".into(),
        }
    }
}

/// The total-time view: does transfer pay off once the source's training counts?
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum TotalTime {
    /// Scratch's median time over source steps + transfer's median time.
    Ratio(f64),
    /// Scratch's median is censored after the break-even: the ratio is at least this.
    AtLeast(f64),
    /// Scratch was observed for fewer steps than the break-even (source steps + transfer's
    /// median time): transfer pays off in total if scratch needs more than this many steps.
    NotEstimable {
        /// Source steps + transfer's median time to threshold.
        break_even: f64,
    },
    /// Transfer's median never reached the threshold.
    NotReached,
}

impl TotalTime {
    /// From the median times, the source's training steps, the steps scratch was observed for and
    /// the censoring time.
    pub(super) fn of(
        transfer: Option<f64>,
        scratch: Option<f64>,
        source_steps: f64,
        observed: f64,
        censored: f64,
    ) -> TotalTime {
        let Some(t) = transfer else { return TotalTime::NotReached };
        let total = source_steps + t;
        match scratch {
            Some(s) => TotalTime::Ratio(s / total),
            None if total <= observed => TotalTime::AtLeast(censored / total),
            None => TotalTime::NotEstimable { break_even: total },
        }
    }

    /// As the report shows it.
    pub fn text(self) -> String {
        match self {
            TotalTime::Ratio(r) => format!("{r:.2}x"),
            TotalTime::AtLeast(r) => format!(">= {r:.2}x"),
            TotalTime::NotEstimable { break_even } => {
                format!("not estimable (pays off if scratch needs more than {break_even:.0} steps)")
            }
            TotalTime::NotReached => "-".into(),
        }
    }
}
