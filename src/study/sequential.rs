//! Group-sequential testing, the arithmetic of a study's guard: Lan-DeMets alpha spending,
//! boundaries by recursive numerical integration, and stage-wise p-values (Jennison & Turnbull,
//! *Group Sequential Methods*, 2000, chapters 7, 8 and 19).
//!
//! A comparison is looked at `K` times, at information fractions `t_1 < ... < t_K = 1`. Under no
//! effect the standardised statistics `Z_k` are taken to be a Brownian motion seen at those times
//! (`S_k = Z_k sqrt(t_k)` has independent normal increments): for the area under the curve so
//! far, whose per-seed values keep most of their differences from one look to the next, the true
//! correlations are higher than that, which makes the boundaries conservative (`tests/guard.rs`
//! measures the error rates on simulated studies).
//!
//! Each side spends its level along a spending function `alpha(t)` (Lan & DeMets 1983):
//! O'Brien-Fleming-like `2 - 2 Phi(z_{1 - a/2} / sqrt t)` (almost nothing early, the final test
//! close to the fixed-sample one) or Pocock-like `a ln(1 + (e - 1) t)` (evenly). The boundary of
//! look `k` is the value the statistic crosses with exactly the probability the side spends
//! there, given no crossing before; a side that spends nothing at a look has no boundary there.
//!
//! The p-value of a finished trajectory orders outcomes stage-wise (a stop at an earlier look is
//! more extreme than any later outcome; at the same look, by `Z`): valid whatever the spending,
//! and for an arm stopped at a boundary never above what that side had spent.

use serde::{Deserialize, Serialize};
use statrs::distribution::{Continuous, ContinuousCDF, Normal};


/// How a side of the guard spends its level over the looks (Lan-DeMets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Spending {
    /// `2 - 2 Phi(z_{1 - a/2} / sqrt t)`: strict early, the last look near the fixed-sample test.
    #[default]
    OBrienFleming,
    /// `a ln(1 + (e - 1) t)`: even boundaries, earlier stops, a stricter last look.
    Pocock,
}

impl Spending {
    /// The level spent by information fraction `t` of a side whose level is `alpha`.
    pub fn spent(self, alpha: f64, t: f64) -> f64 {
        if t <= 0.0 {
            return 0.0;
        }
        let t = t.min(1.0);
        match self {
            Spending::OBrienFleming => 2.0 * (1.0 - phi(z_quantile(1.0 - alpha / 2.0) / t.sqrt())),
            Spending::Pocock => alpha * (1.0 + (std::f64::consts::E - 1.0) * t).ln(),
        }
    }
}

/// A study's sequential guard, as the experiment gives it: `guard: (looks: 4)`, with
/// `spending: Pocock` or `success: true` if wanted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guard {
    /// Looks at the data, the last at the budget; the others at equal shares of the budget,
    /// each rounded up to the evaluation grid.
    pub looks: usize,
    /// How each side spends its level.
    #[serde(default)]
    pub spending: Spending,
    /// Also stop an arm early when it is significantly better (the upper side then spends
    /// along `spending` too; otherwise it spends everything at the last look).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub success: bool,
}

impl Guard {
    /// The steps of the looks on a budget evaluated every `every` steps: look `k` of `K` at the
    /// first grid point at or past `k / K` of the budget.
    pub fn steps(&self, budget: u64, every: u64) -> Vec<u64> {
        let k = self.looks.max(1) as u64;
        let mut steps: Vec<u64> = (1..=k)
            .map(|i| {
                let at = (budget * i).div_ceil(k);
                (at.div_ceil(every) * every).min(budget)
            })
            .collect();
        steps.dedup();
        steps
    }
}

/// Which boundary an arm crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Crossing {
    /// The lower boundary: significantly worse.
    Harm,
    /// The upper boundary: significantly better.
    Success,
}

/// Boundaries of one design: per look the lower and upper boundary on the `Z` scale (`-inf` or
/// `inf` where a side spends nothing), and what each side actually spent there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Design {
    /// Information fraction of each look.
    pub times: Vec<f64>,
    /// Lower (harm) boundary per look.
    pub lower: Vec<f64>,
    /// Upper (success) boundary per look.
    pub upper: Vec<f64>,
    /// Probability under no effect of first crossing the lower boundary at each look.
    pub lower_spent: Vec<f64>,
    /// The same for the upper boundary.
    pub upper_spent: Vec<f64>,
    /// The sub-density of the score statistic over each look's continuation region (grid
    /// points and density times Simpson's weight), for the p-values.
    #[serde(skip)]
    grids: Vec<Grid>,
}

/// Grid points of a sub-density, each with its density times its quadrature weight.
#[derive(Clone, Debug, Default, PartialEq)]
struct Grid {
    points: Vec<f64>,
    weights: Vec<f64>,
}

/// Points of the quadrature over each continuation region (odd, for Simpson's rule).
const POINTS: usize = 201;

fn normal() -> Normal {
    Normal::new(0.0, 1.0).expect("the standard normal")
}

fn phi(x: f64) -> f64 {
    normal().cdf(x)
}

/// The standard normal quantile.
pub fn z_quantile(q: f64) -> f64 {
    normal().inverse_cdf(q)
}

/// Designs computed so far in this process, by their inputs (`report` and the calibration
/// tests summarise many studies with one design).
type Key = (Vec<u64>, u64, u64, Spending, bool);
static DESIGNS: std::sync::Mutex<Vec<(Key, Design)>> = std::sync::Mutex::new(Vec::new());

impl Design {
    /// [`Design::new`], remembered: the same inputs give the same design without computing it
    /// again.
    pub fn cached(times: &[f64], lower_alpha: f64, upper_alpha: f64, spending: Spending, upper_early: bool) -> Design {
        let key: Key = (
            times.iter().map(|t| t.to_bits()).collect(),
            lower_alpha.to_bits(),
            upper_alpha.to_bits(),
            spending,
            upper_early,
        );
        let mut designs = DESIGNS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, d)) = designs.iter().find(|(k, _)| *k == key) {
            return d.clone();
        }
        let d = Design::new(times, lower_alpha, upper_alpha, spending, upper_early);
        if designs.len() >= 64 {
            designs.remove(0);
        }
        designs.push((key, d.clone()));
        d
    }

    /// The boundaries at information fractions `times` (increasing, the last 1) for a lower
    /// side of level `lower_alpha` and an upper side of level `upper_alpha`, both spending along
    /// `spending`; with `upper_early` false the upper side spends all of its level at the last look.
    pub fn new(times: &[f64], lower_alpha: f64, upper_alpha: f64, spending: Spending, upper_early: bool) -> Design {
        let k = times.len();
        let mut d = Design {
            times: times.to_vec(),
            lower: Vec::with_capacity(k),
            upper: Vec::with_capacity(k),
            lower_spent: Vec::with_capacity(k),
            upper_spent: Vec::with_capacity(k),
            grids: Vec::with_capacity(k),
        };
        let (mut lower_before, mut upper_before) = (0.0, 0.0);
        for (i, &t) in times.iter().enumerate() {
            let last = i + 1 == k;
            let lower_total = if last { lower_alpha } else { spending.spent(lower_alpha, t) };
            let upper_total = if last {
                upper_alpha
            } else if upper_early {
                spending.spent(upper_alpha, t)
            } else {
                0.0
            };
            let before = i.checked_sub(1).map(|j| &d.grids[j]);
            let (lower, lower_spent) = solve(lower_total - lower_before, |z| d.below(before, i, z), -1.0);
            let (upper, upper_spent) = solve(upper_total - upper_before, |z| d.above(before, i, z), 1.0);
            lower_before += lower_spent;
            upper_before += upper_spent;
            let grid = d.continuation(before, i, lower, upper);
            d.lower.push(lower);
            d.upper.push(upper);
            d.lower_spent.push(lower_spent);
            d.upper_spent.push(upper_spent);
            d.grids.push(grid);
        }
        d
    }

    /// P(no crossing before look `i`, `Z_i <= z`) under no effect.
    fn below(&self, before: Option<&Grid>, i: usize, z: f64) -> f64 {
        let x = z * self.times[i].sqrt();
        match before {
            None => phi(z),
            Some(g) => {
                let sd = (self.times[i] - self.times[i - 1]).sqrt();
                g.points.iter().zip(&g.weights).map(|(u, w)| w * phi((x - u) / sd)).sum()
            }
        }
    }

    /// P(no crossing before look `i`, `Z_i >= z`) under no effect.
    fn above(&self, before: Option<&Grid>, i: usize, z: f64) -> f64 {
        let x = z * self.times[i].sqrt();
        match before {
            None => 1.0 - phi(z),
            Some(g) => {
                let sd = (self.times[i] - self.times[i - 1]).sqrt();
                g.points.iter().zip(&g.weights).map(|(u, w)| w * phi((u - x) / sd)).sum()
            }
        }
    }

    /// The sub-density of `S_i` over `lower < Z_i < upper` on a grid.
    fn continuation(&self, before: Option<&Grid>, i: usize, lower: f64, upper: f64) -> Grid {
        let root = self.times[i].sqrt();
        let (lo, hi) = (lower.max(-12.0) * root, upper.min(12.0) * root);
        if hi <= lo {
            return Grid::default();
        }
        let h = (hi - lo) / (POINTS - 1) as f64;
        let density = normal();
        let mut grid = Grid::default();
        for j in 0..POINTS {
            let s = lo + h * j as f64;
            let f = match before {
                None => density.pdf(s / root) / root,
                Some(g) => {
                    let sd = (self.times[i] - self.times[i - 1]).sqrt();
                    g.points.iter().zip(&g.weights).map(|(u, w)| w * density.pdf((s - u) / sd) / sd).sum()
                }
            };
            let simpson = if j == 0 || j == POINTS - 1 {
                1.0
            } else if j % 2 == 1 {
                4.0
            } else {
                2.0
            };
            grid.points.push(s);
            grid.weights.push(f * simpson * h / 3.0);
        }
        grid
    }

    /// Which boundary `z` crosses at look `i` (0-based), if any.
    pub fn crossing(&self, i: usize, z: f64) -> Option<Crossing> {
        if z <= self.lower[i] {
            Some(Crossing::Harm)
        } else if z >= self.upper[i] {
            Some(Crossing::Success)
        } else {
            None
        }
    }

    /// The two-sided stage-wise p-value of a trajectory that ended at look `i` (0-based) with
    /// statistic `z` (having crossed nothing before): twice the smaller of each side's
    /// probability of an outcome at least as extreme, capped at 1. NaN for a NaN `z`.
    pub fn p_value(&self, i: usize, z: f64) -> f64 {
        // (A design read back from a file has no grids: its p-values are not recomputed.)
        if z.is_nan() || i >= self.times.len() || (i > 0 && self.grids.len() < i) {
            return f64::NAN;
        }
        let before = i.checked_sub(1).map(|j| &self.grids[j]);
        let low: f64 = self.lower_spent[..i].iter().sum::<f64>() + self.below(before, i, z);
        let high: f64 = self.upper_spent[..i].iter().sum::<f64>() + self.above(before, i, z);
        (2.0 * low.min(high)).clamp(0.0, 1.0)
    }
}

/// The boundary (on the `Z` scale) where `tail` (the lower side's `P(Z <= z)`, `direction` -1;
/// the upper side's `P(Z >= z)`, `direction` 1) equals `spend`, and the probability actually
/// spent there; no boundary (an infinite one) when the side spends nothing.
fn solve(spend: f64, tail: impl Fn(f64) -> f64, direction: f64) -> (f64, f64) {
    if spend <= 1e-15 {
        return (direction * f64::INFINITY, 0.0);
    }
    // Bisection between 0 (a tail of at least one half) and 40 standard deviations out.
    let (mut inner, mut outer) = (0.0, direction * 40.0);
    for _ in 0..200 {
        let mid = 0.5 * (inner + outer);
        if tail(mid) > spend {
            inner = mid;
        } else {
            outer = mid;
        }
        if (inner - outer).abs() < 1e-10 {
            break;
        }
    }
    let z = 0.5 * (inner + outer);
    (z, tail(z))
}

/// A test's `Z` from its two-sided p-value and the sign of its difference (a Welch or one-sample
/// t test made normal through its p-value); NaN where there is no test.
pub fn z_of(p: f64, difference: f64) -> f64 {
    if p.is_nan() || difference.is_nan() {
        return f64::NAN;
    }
    let z = z_quantile(1.0 - (p / 2.0).clamp(1e-300, 0.5));
    if difference < 0.0 { -z } else { z }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jennison & Turnbull's Table 2.3 / gsDesign: O'Brien-Fleming-like spending, one-sided
    /// 0.025, four equally spaced looks: 4.33, 2.96, 2.36, 2.01 (two-sided 0.05 symmetric).
    #[test]
    fn obrien_fleming_boundaries_match_the_literature() {
        let d = Design::new(&[0.25, 0.5, 0.75, 1.0], 0.025, 0.025, Spending::OBrienFleming, true);
        let expected = [4.3326, 2.9631, 2.3590, 2.0141];
        for (u, e) in d.upper.iter().zip(expected) {
            assert!((u - e).abs() < 2e-3, "{:?} against {expected:?}", d.upper);
        }
        for (l, u) in d.lower.iter().zip(&d.upper) {
            assert!((l + u).abs() < 1e-6);
        }
        let total: f64 = d.lower_spent.iter().chain(&d.upper_spent).sum();
        assert!((total - 0.05).abs() < 1e-6, "{total}");
    }

    /// Pocock-like spending, one-sided 0.025, four looks: the first boundary is
    /// `z_{1 - 0.025 ln(1 + (e - 1) / 4)}` = 2.3683, and all stay within 0.02 of Pocock's own
    /// constant boundary for four looks, 2.361 (Jennison & Turnbull, Table 2.1).
    #[test]
    fn pocock_boundaries_match_the_literature() {
        let d = Design::new(&[0.25, 0.5, 0.75, 1.0], 0.025, 0.025, Spending::Pocock, true);
        assert!((d.upper[0] - 2.3683).abs() < 1e-3, "{:?}", d.upper);
        assert!(d.upper.iter().all(|u| (u - 2.361).abs() < 0.02), "{:?}", d.upper);
        let total: f64 = d.lower_spent.iter().chain(&d.upper_spent).sum();
        assert!((total - 0.05).abs() < 1e-6, "{total}");
    }

    #[test]
    fn one_look_is_the_fixed_sample_test() {
        let d = Design::new(&[1.0], 0.025, 0.025, Spending::OBrienFleming, false);
        assert!((d.upper[0] - 1.959964).abs() < 1e-5 && (d.lower[0] + 1.959964).abs() < 1e-5);
        assert!((d.p_value(0, 1.959964) - 0.05).abs() < 1e-6);
    }

    #[test]
    fn a_stop_at_the_boundary_has_at_most_what_its_side_spent() {
        let d = Design::new(&[0.25, 0.5, 0.75, 1.0], 0.025, 0.025, Spending::OBrienFleming, false);
        assert!(d.upper[..3].iter().all(|u| u.is_infinite()));
        for i in 0..4 {
            let spent: f64 = d.lower_spent[..=i].iter().sum();
            let p = d.p_value(i, d.lower[i]);
            assert!((p - 2.0 * spent).abs() < 1e-6, "look {i}: {p} against {spent}");
        }
        // A final Z past the upper boundary is significant at exactly the side's level.
        assert!((d.p_value(3, d.upper[3]) - 0.05).abs() < 1e-6);
        assert!(d.upper[3] < 1.96 && d.upper[3] > 1.95);
    }

    #[test]
    fn guard_looks_fall_on_the_grid() {
        let g = Guard { looks: 4, spending: Spending::OBrienFleming, success: false };
        assert_eq!(g.steps(20_000, 2_000), vec![6_000, 10_000, 16_000, 20_000]);
        assert_eq!(g.steps(10_000, 1_000), vec![3_000, 5_000, 8_000, 10_000]);
        // Ten looks on five grid points: fewer distinct steps (what `validate` refuses).
        let many = Guard { looks: 10, ..g };
        assert_eq!(many.steps(20_000, 4_000).len(), 5);
    }
}
