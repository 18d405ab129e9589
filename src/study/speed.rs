//! How much sooner transfer reaches the threshold: the speed-up of median times (a bound when a
//! median is censored) and the total-time view that counts the source's training too.

use serde::{Deserialize, Serialize};

use super::scores::Scores;
use super::stats;

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
    /// Both arms start from the source (a comparison with another strategy): nothing to add.
    NotApplicable,
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
            TotalTime::NotReached | TotalTime::NotApplicable => "-".into(),
        }
    }
}

/// The median of times with censored runs as infinitely late; `None` when censored.
pub(super) fn median_time(scores: &[Scores]) -> Option<f64> {
    let v: Vec<f64> = scores.iter().map(|s| s.time.unwrap_or(f64::INFINITY)).collect();
    if v.is_empty() {
        return None;
    }
    let m = stats::median(&v);
    m.is_finite().then_some(m)
}

/// The ranks `(k, n + 1 - k)` (1-based) of the order statistics that bracket the median of `n`
/// values with probability at least 97.5 % (distribution-free: `1 - 2 P(Bin(n, 1/2) < k)`); the
/// extremes where no pair reaches it (fewer than 7 values).
fn median_ranks(n: usize) -> (usize, usize) {
    let tail = |k: usize| -> f64 { (0..k).map(|i| binomial(n, i)).sum::<f64>() / 2f64.powi(n as i32) };
    let k = (1..=n.div_ceil(2)).take_while(|&k| 2.0 * tail(k) <= 0.025).last().unwrap_or(1);
    (k, n + 1 - k)
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// The speed-up's interval from each arm's distribution-free interval of its median time
/// ([`median_ranks`]): `[scratch's low / transfer's high, scratch's high / transfer's low]`. With
/// 7 or more seeds per arm each median's interval holds it with probability at least 97.5 %, so
/// the ratio's at least 95 %; below, the extremes (at 5 seeds per arm at least 88 %). A censored
/// end stands for "later than the budget": where it makes an end unbounded (transfer's high
/// censored: the low end is 0; scratch's high censored or transfer's low at 0: the high end is
/// infinite) the interval says so.
pub(super) fn speedup_interval(transfer: &[Scores], scratch: &[Scores], budget: f64) -> (f64, f64) {
    let times = |s: &[Scores]| -> Vec<f64> {
        let mut v: Vec<f64> = s.iter().map(|s| s.time.unwrap_or(f64::INFINITY)).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (t, s) = (times(transfer), times(scratch));
    let ((tl, th), (sl, sh)) = (median_ranks(t.len()), median_ranks(s.len()));
    let (t_low, t_high, s_low, s_high) = (t[tl - 1], t[th - 1], s[sl - 1], s[sh - 1]);
    // A censored scratch low end stands at its least possible value, the budget: still a lower
    // bound on scratch's median.
    let s_low = s_low.min(budget);
    let low = if t_high.is_finite() && t_high > 0.0 { s_low / t_high } else { 0.0 };
    let high = if s_high.is_finite() && t_low > 0.0 { s_high / t_low } else { f64::INFINITY };
    (low, high)
}
