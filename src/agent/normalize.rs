//! Running normalisation of observations and rewards, as Stable-Baselines3's `VecNormalize`:
//! observations are centred and scaled by running moments and clipped; rewards are scaled by the
//! running standard deviation of the discounted return.

use tch::Tensor;

use super::error::AgentError;

/// Running mean and variance, merged batch by batch (Chan et al.'s parallel algorithm).
#[derive(Clone, Debug, PartialEq)]
pub struct RunningMeanStd {
    /// Running means.
    pub mean: Vec<f64>,
    /// Running (population) variances.
    pub var: Vec<f64>,
    /// Rows merged so far (starting at `1e-4`).
    pub count: f64,
}

impl RunningMeanStd {
    /// Statistics of `dim` values: mean 0, variance 1.
    pub fn new(dim: usize) -> Self {
        RunningMeanStd { mean: vec![0.0; dim], var: vec![1.0; dim], count: 1e-4 }
    }

    /// Merges a batch of rows of `mean.len()` values each.
    pub fn update(&mut self, rows: &[f32]) {
        let dim = self.mean.len();
        let n = rows.len() / dim;
        if n == 0 {
            return;
        }
        let mut batch_mean = vec![0.0; dim];
        for row in rows.chunks_exact(dim) {
            for (m, &x) in batch_mean.iter_mut().zip(row) {
                *m += x as f64;
            }
        }
        batch_mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut batch_var = vec![0.0; dim];
        for row in rows.chunks_exact(dim) {
            for ((v, &x), m) in batch_var.iter_mut().zip(row).zip(&batch_mean) {
                *v += (x as f64 - m).powi(2);
            }
        }
        batch_var.iter_mut().for_each(|v| *v /= n as f64);
        let total = self.count + n as f64;
        for i in 0..dim {
            let delta = batch_mean[i] - self.mean[i];
            let m2 = self.var[i] * self.count + batch_var[i] * n as f64 + delta * delta * self.count * n as f64 / total;
            self.mean[i] += delta * n as f64 / total;
            self.var[i] = m2 / total;
        }
        self.count = total;
    }

    /// The statistics as tensors `{prefix}.mean`, `{prefix}.var`, `{prefix}.count` (float64).
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        vec![
            (format!("{prefix}.mean"), Tensor::from_slice(&self.mean)),
            (format!("{prefix}.var"), Tensor::from_slice(&self.var)),
            (format!("{prefix}.count"), Tensor::from_slice(&[self.count])),
        ]
    }

    /// Restores what [`RunningMeanStd::state`] saved (shapes already checked by the caller).
    pub fn load_state(&mut self, prefix: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        let mut read = |suffix: &str| -> Result<Vec<f64>, AgentError> {
            let name = format!("{prefix}.{suffix}");
            let t = get(&name).ok_or_else(|| AgentError::MissingTensor { name: name.clone() })?;
            Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1))
                .map_err(|e| AgentError::State(format!("`{name}`: {e}")))
        };
        let (mean, var, count) = (read("mean")?, read("var")?, read("count")?);
        if mean.len() != self.mean.len() || var.len() != self.var.len() || count.len() != 1 {
            return Err(AgentError::State(format!("`{prefix}`: statistics of the wrong size")));
        }
        (self.mean, self.var, self.count) = (mean, var, count[0]);
        Ok(())
    }
}

/// Observation normalisation: `clip((x - mean) / sqrt(var + 1e-8), ±clip)`.
#[derive(Clone, Debug)]
pub struct ObsNormalizer {
    /// The running statistics of observations.
    pub stats: RunningMeanStd,
    /// Normalised values are clipped to `[-clip, clip]`.
    pub clip: f64,
    /// How many of each row's last values are left as they are (a multitask observation's
    /// one-hot task id).
    pub keep_last: usize,
}

impl ObsNormalizer {
    /// A normaliser for `dim` values (clip 10).
    pub fn new(dim: usize) -> Self {
        ObsNormalizer { stats: RunningMeanStd::new(dim), clip: 10.0, keep_last: 0 }
    }

    /// Normalises rows in place.
    pub fn apply(&self, rows: &mut [f32]) {
        let dim = self.stats.mean.len();
        for row in rows.chunks_exact_mut(dim) {
            for (i, x) in row.iter_mut().enumerate().take(dim - self.keep_last) {
                let z = (*x as f64 - self.stats.mean[i]) / (self.stats.var[i] + 1e-8).sqrt();
                *x = z.clamp(-self.clip, self.clip) as f32;
            }
        }
    }
}

/// Reward scaling by the running standard deviation of each environment's discounted return.
#[derive(Clone, Debug)]
pub struct RewardNormalizer {
    /// The running statistics of the discounted return.
    pub stats: RunningMeanStd,
    returns: Vec<f64>,
    gamma: f64,
    clip: f64,
}

impl RewardNormalizer {
    /// A normaliser for `num_envs` environments with discount `gamma`.
    pub fn new(num_envs: usize, gamma: f64) -> Self {
        RewardNormalizer { stats: RunningMeanStd::new(1), returns: vec![0.0; num_envs], gamma, clip: 10.0 }
    }

    /// Scaled rewards are clipped to `[-clip, clip]` (10 unless set).
    pub(crate) fn set_clip(&mut self, clip: f64) {
        self.clip = clip;
    }

    /// Each environment's running discounted return.
    pub fn returns(&self) -> &[f64] {
        &self.returns
    }

    /// Each environment's running discounted return, to restore.
    pub(crate) fn returns_mut(&mut self) -> &mut [f64] {
        &mut self.returns
    }

    /// Updates the statistics with this step's rewards and returns them scaled; `done[i]` ends
    /// environment `i`'s running return.
    pub fn apply(&mut self, rewards: &[f64], done: impl Fn(usize) -> bool) -> Vec<f64> {
        let returns: Vec<f32> = self
            .returns
            .iter_mut()
            .zip(rewards)
            .map(|(ret, &r)| {
                *ret = *ret * self.gamma + r;
                *ret as f32
            })
            .collect();
        self.stats.update(&returns);
        let scale = (self.stats.var[0] + 1e-8).sqrt();
        let scaled = rewards.iter().map(|r| (r / scale).clamp(-self.clip, self.clip)).collect();
        for (i, ret) in self.returns.iter_mut().enumerate() {
            if done(i) {
                *ret = 0.0;
            }
        }
        scaled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_moments_equal_the_moments_of_everything() {
        let data: Vec<f32> = (0..40).map(|i| ((i * 7919) % 13) as f32 * 0.5 - 2.0).collect();
        let mut rms = RunningMeanStd::new(2);
        rms.count = 0.0;
        rms.update(&data[..16]);
        rms.update(&data[16..]);
        for d in 0..2 {
            let col: Vec<f64> = data.iter().skip(d).step_by(2).map(|&x| x as f64).collect();
            let mean = col.iter().sum::<f64>() / col.len() as f64;
            let var = col.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / col.len() as f64;
            assert!((rms.mean[d] - mean).abs() < 1e-12 && (rms.var[d] - var).abs() < 1e-12);
        }
    }
}
