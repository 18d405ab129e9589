//! The statistics a transfer study reports: per-seed scores summarised by mean, median and
//! interquartile mean, percentile-bootstrap confidence intervals, the probability of improvement
//! (Mann-Whitney), and the two-sided tests that go with them. The definitions follow scipy and
//! rliable, and `tests/stats.rs` checks them against `../shared/stats/reference.json`.
//!
//! Learning-curve metrics (area under the curve, first step at a threshold) are here too: they
//! turn one run's evaluations into the per-seed scores the rest summarises.
//!
//! Decisions rest on Welch's t test (its interval and p-value), whose false-verdict rate stays at
//! its nominal level from 3 seeds on for roughly normal scores, where the percentile bootstrap of
//! a difference of means covers only ~88 % at 5 seeds; families of decisions are corrected by
//! Holm's step-down procedure; power comes from the noncentral t distribution.

use rand::Rng;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// The arithmetic mean (NaN for no values).
pub fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn sorted(x: &[f64]) -> Vec<f64> {
    let mut v = x.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// The median: the middle value, or the mean of the two middle ones.
pub fn median(x: &[f64]) -> f64 {
    let v = sorted(x);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// The interquartile mean: the mean after cutting `floor(n / 4)` values from each end
/// (`scipy.stats.trim_mean(x, 0.25)`, rliable's IQM).
pub fn iqm(x: &[f64]) -> f64 {
    let v = sorted(x);
    let cut = v.len() / 4;
    mean(&v[cut..v.len() - cut])
}

/// Sample variance (`ddof = 1`).
pub fn variance(x: &[f64]) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() as f64 - 1.0)
}

/// `x.len()` values drawn from `x` with replacement.
pub fn resample(x: &[f64], rng: &mut impl Rng) -> Vec<f64> {
    (0..x.len()).map(|_| x[rng.random_range(0..x.len())]).collect()
}

/// The `q` quantile of sorted values, linearly interpolated (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The 95 % percentile interval of bootstrap statistics (numpy's linear quantiles).
pub fn percentile_interval(stats: &[f64]) -> (f64, f64) {
    let s = sorted(stats);
    (quantile(&s, 0.025), quantile(&s, 0.975))
}

/// A 95 % percentile-bootstrap interval of `stat(x)`, from `resamples` resamples of `x`.
pub fn bootstrap_ci(x: &[f64], stat: impl Fn(&[f64]) -> f64, resamples: usize, rng: &mut impl Rng) -> (f64, f64) {
    let stats: Vec<f64> = (0..resamples).map(|_| stat(&resample(x, rng))).collect();
    percentile_interval(&stats)
}

/// A 95 % percentile-bootstrap interval of `stat(x) - stat(y)`, each sample resampled
/// independently.
pub fn bootstrap_diff_ci(
    x: &[f64],
    y: &[f64],
    stat: impl Fn(&[f64]) -> f64,
    resamples: usize,
    rng: &mut impl Rng,
) -> (f64, f64) {
    let stats: Vec<f64> = (0..resamples).map(|_| stat(&resample(x, rng)) - stat(&resample(y, rng))).collect();
    percentile_interval(&stats)
}

/// Mann-Whitney U of `x` against `y`: pairs with `x > y` count one, ties one half.
pub fn mann_whitney_u(x: &[f64], y: &[f64]) -> f64 {
    x.iter()
        .map(|a| {
            y.iter()
                .map(|b| match a.total_cmp(b) {
                    std::cmp::Ordering::Greater => 1.0,
                    std::cmp::Ordering::Equal => 0.5,
                    std::cmp::Ordering::Less => 0.0,
                })
                .sum::<f64>()
        })
        .sum()
}

/// P(X > Y) + ½ P(X = Y) estimated over all pairs: rliable's probability of improvement.
pub fn probability_of_improvement(x: &[f64], y: &[f64]) -> f64 {
    mann_whitney_u(x, y) / (x.len() * y.len()) as f64
}

/// The two-sided p-value of the Mann-Whitney U test, as scipy's `method="auto"`: exact when
/// there are no ties and one sample has at most 8 values, else the normal approximation with
/// tie and continuity corrections.
pub fn mann_whitney_p(x: &[f64], y: &[f64]) -> f64 {
    let (n1, n2) = (x.len(), y.len());
    let u1 = mann_whitney_u(x, y);
    let u = u1.max((n1 * n2) as f64 - u1);
    let mut all = sorted(&[x, y].concat());
    let ties = all.windows(2).any(|w| w[0] == w[1]);
    if !ties && n1.min(n2) <= 8 {
        return (2.0 * exact_u_sf(u.round() as usize, n1, n2)).min(1.0);
    }
    // Tie correction: Σ (t³ - t) over groups of equal values.
    all.dedup_by(|a, b| a == b);
    let joint = [x, y].concat();
    let tie_term: f64 =
        all.iter().map(|v| joint.iter().filter(|w| *w == v).count() as f64).map(|t| t * t * t - t).sum();
    let n = (n1 + n2) as f64;
    let mu = (n1 * n2) as f64 / 2.0;
    let s = ((n1 * n2) as f64 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)))).sqrt();
    let z = (u - mu - 0.5) / s;
    (2.0 * Normal::standard().sf(z)).min(1.0)
}

/// P(U ≥ u) under the null hypothesis for samples of sizes `n1` and `n2` without ties: the
/// count of arrangements with each U, by the recurrence over the largest value.
fn exact_u_sf(u: usize, n1: usize, n2: usize) -> f64 {
    let max_u = n1 * n2;
    // counts[a][b][k]: arrangements of a x-values and b y-values with U = k.
    let mut counts = vec![vec![vec![0.0f64; max_u + 1]; n2 + 1]; n1 + 1];
    for a in 0..=n1 {
        for b in 0..=n2 {
            if a == 0 || b == 0 {
                counts[a][b][0] = 1.0;
                continue;
            }
            for k in 0..=a * b {
                // The largest value is an x (it beats all b y-values) or a y.
                let with_x = if k >= b { counts[a - 1][b][k - b] } else { 0.0 };
                counts[a][b][k] = with_x + counts[a][b - 1][k];
            }
        }
    }
    let dist = &counts[n1][n2];
    let total: f64 = dist.iter().sum();
    dist[u.min(max_u)..].iter().sum::<f64>() / total
}

/// Welch's two-sample t test of `mean(x) - mean(y)` (unequal variances).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Welch {
    /// `mean(x) - mean(y)`.
    pub difference: f64,
    /// Its standard error, `sqrt(var(x)/n_x + var(y)/n_y)`.
    pub se: f64,
    /// Welch-Satterthwaite degrees of freedom.
    pub df: f64,
    /// The two-sided p-value of "equal means".
    pub p: f64,
}

impl Welch {
    /// The `level` (e.g. 0.95) confidence interval of the difference. With no spread in either
    /// sample it is the difference itself.
    pub fn interval(&self, level: f64) -> (f64, f64) {
        if self.se == 0.0 {
            return (self.difference, self.difference);
        }
        let half = t_quantile(self.df, 0.5 + level / 2.0) * self.se;
        (self.difference - half, self.difference + half)
    }
}

/// Welch's test of `x` against `y`; `None` when either sample has fewer than two values (no
/// variance to estimate) or a value that is not finite (no test is computed on NaN).
pub fn welch(x: &[f64], y: &[f64]) -> Option<Welch> {
    if x.len() < 2 || y.len() < 2 || !x.iter().chain(y).all(|v| v.is_finite()) {
        return None;
    }
    let (nx, ny) = (x.len() as f64, y.len() as f64);
    let (vx, vy) = (variance(x) / nx, variance(y) / ny);
    let difference = mean(x) - mean(y);
    let se = (vx + vy).sqrt();
    if se == 0.0 {
        let p = if difference == 0.0 { 1.0 } else { 0.0 };
        return Some(Welch { difference, se, df: nx + ny - 2.0, p });
    }
    let df = (vx + vy).powi(2) / (vx * vx / (nx - 1.0) + vy * vy / (ny - 1.0));
    let t = difference / se;
    let p = 2.0 * students_t(df).sf(t.abs());
    Some(Welch { difference, se, df, p: p.min(1.0) })
}

/// The one-sample t test of `mean(d) = 0` (as a [`Welch`] with the mean as its difference);
/// `None` with fewer than two values or a value that is not finite.
pub fn one_sample_t(d: &[f64]) -> Option<Welch> {
    if d.len() < 2 || !d.iter().all(|v| v.is_finite()) {
        return None;
    }
    let n = d.len() as f64;
    let difference = mean(d);
    let se = (variance(d) / n).sqrt();
    let df = n - 1.0;
    if se == 0.0 {
        return Some(Welch { difference, se, df, p: if difference == 0.0 { 1.0 } else { 0.0 } });
    }
    let p = 2.0 * students_t(df).sf((difference / se).abs());
    Some(Welch { difference, se, df, p: p.min(1.0) })
}

/// The two-sided p-value of Welch's t test of equal means (NaN with fewer than two values in a
/// sample).
pub fn welch_p(x: &[f64], y: &[f64]) -> f64 {
    welch(x, y).map_or(f64::NAN, |w| w.p)
}

/// Student's t distribution with `df` degrees of freedom (`df` is positive and finite wherever
/// [`welch`] computes it: both samples have spread, or one has and the other's term is zero).
fn students_t(df: f64) -> StudentsT {
    StudentsT::new(0.0, 1.0, df.max(1e-9)).unwrap_or_else(|_| StudentsT::new(0.0, 1.0, 1.0).expect("df 1 is valid"))
}

/// The `q` quantile of Student's t with `df` degrees of freedom.
pub fn t_quantile(df: f64, q: f64) -> f64 {
    students_t(df).inverse_cdf(q)
}

/// Holm's step-down adjusted p-values (family-wise error control under any dependence):
/// sorted ascending, `p_(i) * (m - i)`, made monotone, capped at 1. NaN entries (tests that could
/// not be made) stay NaN and are not counted in the family.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let m = order.len();
    let mut adjusted = vec![f64::NAN; p.len()];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max((p[i] * (m - rank) as f64).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// P(T ≤ t) for the noncentral t distribution with `df` degrees of freedom and noncentrality
/// `ncp`: `∫ Φ(t·s/sqrt(df) - ncp) f_χ(s; df) ds` over the chi distribution of
/// `s = sqrt(χ²_df)` (finite at `s = 0` for every `df ≥ 1`), by Simpson's rule over its bulk
/// (800 panels: agrees with scipy.stats.nct to about 1e-6, checked in `tests/verdicts.rs`).
pub fn noncentral_t_cdf(t: f64, df: f64, ncp: f64) -> f64 {
    let normal = Normal::standard();
    // ln of the chi density's constant: 2^(1 - df/2) / Γ(df/2).
    let ln_c = (1.0 - df / 2.0) * std::f64::consts::LN_2 - statrs::function::gamma::ln_gamma(df / 2.0);
    let density = |x: f64| {
        if x <= 0.0 {
            if df == 1.0 { ln_c.exp() } else { 0.0 }
        } else {
            (ln_c + (df - 1.0) * x.ln() - x * x / 2.0).exp()
        }
    };
    let upper = (df + 14.0 * (2.0 * df).sqrt() + 30.0).sqrt();
    let n = 800;
    let h = upper / n as f64;
    let f = |x: f64| normal.cdf(t * x / df.sqrt() - ncp) * density(x);
    let mut sum = f(0.0) + f(upper);
    for i in 1..n {
        sum += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    (sum * h / 3.0).clamp(0.0, 1.0)
}

/// A t test's design for power: how the standard error of the tested difference shrinks with
/// the replicates, and its degrees of freedom.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Design {
    /// Two samples of `n` values each (standard error `sd·sqrt(2/n)`, `2n - 2` degrees of
    /// freedom): seeds per arm.
    TwoSample,
    /// One sample of `n` differences (standard error `sd/sqrt(n)`, `n - 1` degrees of freedom):
    /// per-source differences.
    OneSample,
}

impl Design {
    fn se_and_df(self, sd: f64, n: usize) -> (f64, f64) {
        let n = n as f64;
        match self {
            Design::TwoSample => (sd * (2.0 / n).sqrt(), 2.0 * n - 2.0),
            Design::OneSample => (sd / n.sqrt(), n - 1.0),
        }
    }
}

/// The exact power (noncentral t) of the two-sided t test of `design` at level `alpha` with `n`
/// replicates to detect a difference `effect` when the spread is `sd`.
pub fn power_of(design: Design, effect: f64, sd: f64, n: usize, alpha: f64) -> f64 {
    if n < 2 || !(sd > 0.0 && sd.is_finite()) {
        return f64::NAN;
    }
    let (se, df) = design.se_and_df(sd, n);
    let ncp = effect.abs() / se;
    let crit = t_quantile(df, 1.0 - alpha / 2.0);
    (1.0 - noncentral_t_cdf(crit, df, ncp)) + noncentral_t_cdf(-crit, df, ncp)
}

/// The power of the two-sided two-sample t test at level `alpha` with `n` values per sample to
/// detect a difference of means `effect` when each sample's standard deviation is `sd`.
pub fn t_test_power(effect: f64, sd: f64, n: usize, alpha: f64) -> f64 {
    power_of(Design::TwoSample, effect, sd, n, alpha)
}

/// The smallest difference that `n` replicates detect with probability `power` at level `alpha`
/// (two-sided), for spread `sd`: the exact root of [`power_of`], from the normal-theory start
/// `(t_{1-α/2} + t_{power}) · se` refined by the secant method.
pub fn min_detectable_effect_of(design: Design, sd: f64, n: usize, alpha: f64, power: f64) -> f64 {
    if n < 2 || !(sd > 0.0 && sd.is_finite()) {
        return f64::NAN;
    }
    let (se, df) = design.se_and_df(sd, n);
    let f = |d: f64| power_of(design, d, sd, n, alpha) - power;
    let start = (t_quantile(df, 1.0 - alpha / 2.0) + t_quantile(df, power)) * se;
    let (mut a, mut b) = (start, 1.1 * start);
    let (mut fa, mut fb) = (f(a), f(b));
    for _ in 0..30 {
        if (fb - fa).abs() < 1e-12 {
            break;
        }
        let c = (b - (b - a) * fb / (fb - fa)).max(1e-12 * se);
        (a, fa) = (b, fb);
        b = c;
        fb = f(b);
        if fb.abs() < 1e-6 {
            break;
        }
    }
    b
}

/// [`min_detectable_effect_of`] for seeds per arm (two samples).
pub fn min_detectable_effect(sd: f64, n: usize, alpha: f64, power: f64) -> f64 {
    min_detectable_effect_of(Design::TwoSample, sd, n, alpha, power)
}

/// The fewest replicates (at least 2, at most `cap`) with which the two-sided test of `design`
/// at level `alpha` detects `effect` with probability `power` (exact); `None` if even `cap` is
/// not enough or there is no effect.
pub fn replicates_needed(design: Design, effect: f64, sd: f64, alpha: f64, power: f64, cap: usize) -> Option<usize> {
    let effect = effect.abs();
    if effect == 0.0 || !effect.is_finite() || !(sd >= 0.0 && sd.is_finite()) {
        return None;
    }
    if sd == 0.0 {
        return Some(2);
    }
    let enough = |n: usize| power_of(design, effect, sd, n, alpha) >= power;
    if !enough(cap) {
        return None;
    }
    let (mut lo, mut hi) = (2usize, cap);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if enough(mid) { hi = mid } else { lo = mid + 1 }
    }
    Some(lo)
}

/// [`replicates_needed`] for seeds per arm (two samples).
pub fn seeds_needed(effect: f64, sd: f64, alpha: f64, power: f64, cap: usize) -> Option<usize> {
    replicates_needed(Design::TwoSample, effect, sd, alpha, power, cap)
}

/// The area under a curve of `(step, value)` points by the trapezoid rule.
pub fn trapezoid(steps: &[f64], values: &[f64]) -> f64 {
    steps.windows(2).zip(values.windows(2)).map(|(s, v)| (s[1] - s[0]) * (v[0] + v[1]) / 2.0).sum()
}

/// The mean of a curve over its step range (its area divided by the range), after normalising
/// each value to `(v - min) / (max - min)`.
pub fn normalized_auc_mean(steps: &[f64], values: &[f64], min: f64, max: f64) -> f64 {
    let normalized: Vec<f64> = values.iter().map(|v| (v - min) / (max - min)).collect();
    trapezoid(steps, &normalized) / (steps[steps.len() - 1] - steps[0])
}

/// The first step whose value reaches `threshold`, if any (`None`: censored at the last step).
pub fn first_step_at_or_above(steps: &[f64], values: &[f64], threshold: f64) -> Option<f64> {
    steps.iter().zip(values).find(|(_, v)| **v >= threshold).map(|(s, _)| *s)
}

/// Continual World's forward transfer `(A_T - A_S) / (1 - A_S)`: the share of the room above
/// scratch's mean area `a_s` that transfer took, from the area's deciding difference and its 95 %
/// t-interval (Welch's, or with several sources the one-sample t over per-source differences),
/// both divided by the room, which is treated as known. The interval so excludes 0 exactly when
/// the deciding interval does (a percentile bootstrap over seeds excluded it in 13 % of no-effect
/// studies with three sources). `None` when scratch's area leaves less than 0.05 of room below
/// solved, or there is no difference; the interval is NaN where the test has too few seeds.
pub fn forward_transfer(difference: f64, ci95: (f64, f64), a_s: f64) -> Option<(f64, (f64, f64))> {
    let room = 1.0 - a_s;
    if difference.is_nan() || !(room >= 0.05) {
        return None;
    }
    Some((difference / room, (ci95.0 / room, ci95.1 / room)))
}

/// One bootstrap resample of two arms whose values come in groups (`gx`, `gy`: each value's
/// source): the groups drawn with replacement, both arms taking the same draws (a source's seeds
/// pair the arms), then within each drawn group each arm's values drawn with replacement. With
/// one group it is the plain resample of each arm, `x` first.
pub fn resample_nested(x: &[f64], gx: &[usize], y: &[f64], gy: &[usize], rng: &mut impl Rng) -> (Vec<f64>, Vec<f64>) {
    let groups = gx.iter().chain(gy).max().map_or(0, |m| m + 1);
    if groups <= 1 {
        return (resample(x, rng), resample(y, rng));
    }
    let members = |v: &[f64], g: &[usize], k: usize| -> Vec<f64> {
        v.iter().zip(g).filter(|(_, gk)| **gk == k).map(|(v, _)| *v).collect()
    };
    let (mut rx, mut ry) = (Vec::with_capacity(x.len()), Vec::with_capacity(y.len()));
    for _ in 0..groups {
        let k = rng.random_range(0..groups);
        let (mx, my) = (members(x, gx, k), members(y, gy, k));
        if !mx.is_empty() {
            rx.extend(resample(&mx, rng));
        }
        if !my.is_empty() {
            ry.extend(resample(&my, rng));
        }
    }
    (rx, ry)
}

/// Fisher's exact test of the 2x2 table `[[a, b], [c, d]]`, two-sided as scipy's
/// `fisher_exact`: under the table's margins (hypergeometric), the probability of every table no
/// more likely than the one observed (within a relative 1e-7).
pub fn fisher_exact(a: u64, b: u64, c: u64, d: u64) -> f64 {
    use statrs::function::factorial::ln_factorial;
    let (row, col, n) = (a + b, a + c, a + b + c + d);
    // ln P(top-left cell = k) under fixed margins.
    let ln_p = |k: u64| -> f64 {
        ln_factorial(row) + ln_factorial(n - row) + ln_factorial(col) + ln_factorial(n - col)
            - ln_factorial(n)
            - ln_factorial(k)
            - ln_factorial(row - k)
            - ln_factorial(col - k)
            - ln_factorial(n - row - col + k)
    };
    let (low, high) = ((row + col).saturating_sub(n), row.min(col));
    let observed = ln_p(a);
    let p: f64 = (low..=high).map(ln_p).filter(|&l| l <= observed + 1e-7).map(f64::exp).sum();
    p.min(1.0)
}
