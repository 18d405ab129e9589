//! What a comparison could detect on its primary metric: the smallest difference found with
//! 80 % power at the study's corrected level, and the replicates the experiment's `effect` (the
//! smallest difference of interest) needs. Planned from the spread, never from the observed
//! difference, which under no effect is noise.

use serde::{Deserialize, Serialize};

use super::decision::{self, MetricStat};
use super::stats;

/// The power the report plans for.
pub const POWER: f64 = 0.8;

/// What the study could detect on a comparison's primary metric, for the test its verdict uses:
/// seeds per arm (two samples), or with several sources the number of sources (one sample of
/// per-source differences).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Power {
    /// The test's design.
    pub design: stats::Design,
    /// The spread: the pooled per-seed standard deviation, or the per-source differences'.
    pub sd: f64,
    /// Replicates: seeds per arm (the smaller arm's), or sources.
    pub replicates: usize,
    /// The level the power is computed at: 5 % over the study's family (Holm's first step).
    pub alpha: f64,
    /// The smallest difference detected with 80 % power (exact, noncentral t).
    pub min_detectable: f64,
    /// The smallest difference of interest: the experiment's `effect`.
    pub effect: f64,
    /// Replicates that `effect` needs for 80 % power (`None`: no spread to plan from, or more
    /// than 1000).
    pub replicates_for_effect: Option<usize>,
}

impl Power {
    /// What a replicate is, in words.
    pub fn unit(&self) -> &'static str {
        match self.design {
            stats::Design::TwoSample => "seeds per arm",
            stats::Design::OneSample => "sources",
        }
    }
}

/// What the study could detect on `primary` with `seeds` per arm, at 5 % over a family of
/// `family` headlines, and what `effect` would need.
pub(super) fn power(primary: &MetricStat, seeds: usize, family: usize, effect: f64) -> Power {
    let (t, s) = (&primary.transfer.values, &primary.scratch.values);
    let (design, sd, replicates) = match primary.levels {
        Some(levels) => (stats::Design::OneSample, levels.between_sources_sd, levels.sources),
        None => {
            let sd = if t.len() > 1 && s.len() > 1 {
                ((stats::variance(t) + stats::variance(s)) / 2.0).sqrt()
            } else {
                f64::NAN
            };
            (stats::Design::TwoSample, sd, seeds)
        }
    };
    let alpha = decision::ALPHA / family.max(1) as f64;
    Power {
        design,
        sd,
        replicates,
        alpha,
        min_detectable: stats::min_detectable_effect_of(design, sd, replicates, alpha, POWER),
        effect,
        replicates_for_effect: if sd.is_nan() {
            None
        } else {
            stats::replicates_needed(design, effect, sd, alpha, POWER, 1000)
        },
    }
}
