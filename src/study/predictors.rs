//! The transferability predictors ([`crate::transfer::predict`]) validated on a finished transfer
//! matrix: each predictor computed for every (source, target) cell before looking at the
//! results, then its rank correlation with the measured transfer (the primary metric's
//! difference with scratch, `matrix.csv`): Spearman's and Kendall's over the cells with
//! percentile-bootstrap intervals over cells, and Kendall's within each target averaged over the
//! targets (what ranking sources for one target needs). Written to `predictors.csv` (the cells)
//! and `predictors.ron` (the validation `suggest` reads).

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::agent::checkpoint;
use crate::env::Registry;
use crate::transfer::predict::{self, PREDICTORS, Predictions};

use super::StudyError;
use super::plan::Folder;
use super::source::SourceRecord;

/// One predictor's validation on a matrix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// The predictor's name.
    pub predictor: String,
    /// Spearman's rank correlation with the measured transfer over every cell.
    pub spearman: f64,
    /// Its 95 % percentile-bootstrap interval (cells resampled).
    pub spearman_ci95: (f64, f64),
    /// Kendall's tau-b over every cell.
    pub kendall: f64,
    /// Its 95 % percentile-bootstrap interval.
    pub kendall_ci95: (f64, f64),
    /// Kendall's tau within each target (ranking the sources), averaged over the targets.
    pub within_target_kendall: f64,
}

/// What `predictors.ron` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Validated {
    /// The matrix study's name.
    pub matrix: String,
    /// Cells (source x target).
    pub cells: usize,
    /// Each predictor.
    pub predictors: Vec<Validation>,
}

impl Validated {
    /// The predictor with the highest Spearman correlation, and zero-shot's own validation.
    pub fn best(&self) -> Option<(&Validation, &Validation)> {
        let best = self.predictors.iter().filter(|v| v.spearman.is_finite()).max_by(|a, b| a.spearman.total_cmp(&b.spearman))?;
        let zero = self.predictors.iter().find(|v| v.predictor == "zero_shot")?;
        Some((best, zero))
    }
}

/// Computes the predictors for every cell of the matrix study in `out` and validates them
/// against its `matrix.csv`.
pub fn validate(out: &Path, registry: &Registry) -> Result<Validated, StudyError> {
    let folder = Folder::open(out)?;
    let record = SourceRecord::read(out)?.ok_or_else(|| StudyError::field("source", "no source.ron: run the study first"))?;
    if record.members.is_empty() {
        return Err(StudyError::field("source", "not a transfer matrix (`source: Matrix([...])`): nothing to validate against"));
    }
    let csv_path = out.join("matrix.csv");
    let csv = crate::util::read_to_string(&csv_path)?;
    let first_strategy = folder.experiment.strategies.first().map(|s| s.label()).unwrap_or_default();
    let mut measured = Vec::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() >= 6 && f[1] == first_strategy {
            let difference: f64 = f[5].parse().map_err(|_| StudyError::record(&csv_path, format!("line {line:?}")))?;
            measured.push((f[0].to_string(), f[2].to_string(), difference));
        }
    }
    let jobs: Vec<_> = folder
        .targets
        .iter()
        .flat_map(|t| record.members.iter().map(move |m| (t, m)))
        .filter(|(t, (name, _, _))| measured.iter().any(|(s, k, _)| s == name && k == t.target.key.as_str()))
        .collect();
    let cells: Vec<(String, String, f64, Predictions)> = jobs
        .par_iter()
        .map(|(t, (name, dir, _))| {
            let source = checkpoint::load(Path::new(dir)).map_err(|e| StudyError::Source { message: e.to_string() })?;
            let p = predict::predict(registry, &source, dir, &t.target.env, t.target.map.as_ref(), (t.threshold, t.random_return), 0)
                .map_err(|e| StudyError::Source { message: format!("{name} on {}: {e}", t.target.key) })?;
            let m = measured.iter().find(|(s, k, _)| s == name && k == t.target.key.as_str()).map_or(f64::NAN, |c| c.2);
            Ok((name.clone(), t.target.key.to_string(), m, p))
        })
        .collect::<Result<_, StudyError>>()?;
    let mut rows = String::from("source,target,measured");
    for p in PREDICTORS {
        rows.push(',');
        rows.push_str(p);
    }
    rows.push('\n');
    for (s, t, m, p) in &cells {
        rows.push_str(&format!("{s},{t},{m}"));
        for name in PREDICTORS {
            rows.push_str(&format!(",{}", p.get(name)));
        }
        rows.push('\n');
    }
    crate::util::write_atomic(&out.join("predictors.csv"), rows)?;
    let y: Vec<f64> = cells.iter().map(|c| c.2).collect();
    // The targets that have cells, in the study's order.
    let targets: Vec<&str> =
        folder.targets.iter().map(|t| t.target.key.as_str()).filter(|k| cells.iter().any(|c| c.1 == *k)).collect();
    let predictors = PREDICTORS
        .iter()
        .enumerate()
        .map(|(i, &name)| {
            let x: Vec<f64> = cells.iter().map(|c| c.3.get(name)).collect();
            let within: Vec<f64> = targets
                .iter()
                .map(|t| {
                    let (a, b): (Vec<f64>, Vec<f64>) = cells.iter().filter(|c| c.1 == *t).map(|c| (c.3.get(name), c.2)).unzip();
                    kendall(&a, &b)
                })
                .filter(|v| v.is_finite())
                .collect();
            Validation {
                predictor: name.to_string(),
                spearman: spearman(&x, &y),
                spearman_ci95: bootstrap(&x, &y, spearman, 2000, 29 + i as u64),
                kendall: kendall(&x, &y),
                kendall_ci95: bootstrap(&x, &y, kendall, 2000, 129 + i as u64),
                within_target_kendall: if within.is_empty() { f64::NAN } else { within.iter().sum::<f64>() / within.len() as f64 },
            }
        })
        .collect();
    let validated = Validated { matrix: folder.experiment.name.clone(), cells: cells.len(), predictors };
    crate::util::write_atomic(&out.join("predictors.ron"), crate::util::to_ron(&validated))?;
    Ok(validated)
}

/// Spearman's rank correlation of `x` and `y` (average ranks for ties).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        for k in i..=j {
            r[order[k]] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    r
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let (sx, sy) = (x.iter().map(|a| (a - mx).powi(2)).sum::<f64>(), y.iter().map(|b| (b - my).powi(2)).sum::<f64>());
    if sx == 0.0 || sy == 0.0 { f64::NAN } else { sxy / (sx * sy).sqrt() }
}

/// Kendall's tau-b of `x` and `y`.
pub fn kendall(x: &[f64], y: &[f64]) -> f64 {
    let (mut concordant, mut discordant, mut tx, mut ty) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            let (a, b) = ((x[i] - x[j]).signum() * ((x[i] != x[j]) as i32 as f64), (y[i] - y[j]).signum() * ((y[i] != y[j]) as i32 as f64));
            match (a == 0.0, b == 0.0) {
                (true, true) => {}
                (true, false) => tx += 1.0,
                (false, true) => ty += 1.0,
                _ if a == b => concordant += 1.0,
                _ => discordant += 1.0,
            }
        }
    }
    let n = concordant + discordant;
    let denominator = ((n + tx) * (n + ty)).sqrt();
    if denominator == 0.0 { f64::NAN } else { (concordant - discordant) / denominator }
}

/// A percentile-bootstrap 95 % interval of `statistic` over resampled pairs of `x` and `y`.
pub fn bootstrap(x: &[f64], y: &[f64], statistic: fn(&[f64], &[f64]) -> f64, resamples: usize, seed: u64) -> (f64, f64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut values: Vec<f64> = (0..resamples)
        .map(|_| {
            let idx: Vec<usize> = (0..x.len()).map(|_| rng.random_range(0..x.len())).collect();
            let (a, b): (Vec<f64>, Vec<f64>) = idx.iter().map(|&i| (x[i], y[i])).unzip();
            statistic(&a, &b)
        })
        .filter(|v| v.is_finite())
        .collect();
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((q * (values.len() - 1) as f64).round() as usize).min(values.len() - 1)];
    (at(0.025), at(0.975))
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_correlations_match_their_definitions() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(spearman(&x, &[2.0, 4.0, 6.0, 8.0, 10.0]), 1.0);
        assert_eq!(kendall(&x, &[5.0, 4.0, 3.0, 2.0, 1.0]), -1.0);
        // scipy.stats.kendalltau([1,2,3,4,5], [1,3,2,5,4]) = 0.6; spearmanr = 0.8.
        assert!((kendall(&x, &[1.0, 3.0, 2.0, 5.0, 4.0]) - 0.6).abs() < 1e-12);
        assert!((spearman(&x, &[1.0, 3.0, 2.0, 5.0, 4.0]) - 0.8).abs() < 1e-12);
    }
}
