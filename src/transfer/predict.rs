//! Transferability predictors: how well a source policy will transfer to a target, estimated
//! before any target training from a few rollouts (seconds per pair). Each is a score where
//! higher means "should transfer better":
//!
//! - `zero_shot`: the source's deterministic return on the target, normalised (0 random, 1 the
//!   target's threshold): today's `suggest` ranking.
//! - `cka`: linear CKA (Kornblith et al. 2019) between the source's last hidden features on its own
//!   environment's states and on the target's, the two paired by construction: both environments
//!   reset from the same seeds and driven by the same random actions, so row `i` of each is "the
//!   same moment" of the same experiment in the two physics. 1: the source sees the target's
//!   trajectories as it sees its own.
//! - `dynamics`: minus the log ratio of a one-step model's error on the target to its error on
//!   the source: a ridge regression of the observation's change on the observation and the action,
//!   fitted on the source's random transitions (Bao et al.'s and many papers' dynamics
//!   discrepancy, in its simplest form). 0: the target moves as the source does.
//! - `logme`: LogME (You et al. 2021), the log marginal evidence per sample of a Bayesian linear
//!   regression from the source's hidden features on target states to the target's discounted
//!   returns-to-go under random actions (standardised): how much of the target's value the
//!   source's representation explains, an H-score-like linear probe without a fitted head.
//!
//! Everything is `f64` arithmetic in a fixed order on the environments' own numbers (no libtorch),
//! so the scores are the same on every CPU.

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::{Strategy, TransferError, prepare};
use crate::agent::checkpoint::Loaded;
use crate::agent::evaluate;
use crate::env::{Action, EnvSpec, Map, Registry, Space};

/// Episodes of random actions per environment.
const EPISODES: u64 = 8;
/// Their longest.
const HORIZON: usize = 200;
/// Zero-shot evaluation episodes.
const EVAL_EPISODES: usize = 10;
/// The discount of the returns-to-go LogME explains.
const GAMMA: f64 = 0.99;

/// The predictors' names, in the order [`Predictions::get`] takes them.
pub const PREDICTORS: [&str; 4] = ["zero_shot", "cka", "dynamics", "logme"];

/// A source's predicted transferability to a target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Predictions {
    /// Normalised zero-shot return.
    pub zero_shot: f64,
    /// Linear CKA of the source's features on paired source and target states (NaN when the
    /// observation spaces differ).
    pub cka: f64,
    /// Minus the log error ratio of the source's one-step model on the target (NaN when the
    /// spaces differ).
    pub dynamics: f64,
    /// LogME evidence per sample of the source's features for the target's returns.
    pub logme: f64,
}

impl Predictions {
    /// A predictor's value by name ([`PREDICTORS`]).
    pub fn get(&self, name: &str) -> f64 {
        match name {
            "zero_shot" => self.zero_shot,
            "cka" => self.cka,
            "dynamics" => self.dynamics,
            "logme" => self.logme,
            _ => f64::NAN,
        }
    }
}

/// Random-action rollouts: observations, actions, next observations, and each step's discounted
/// return-to-go, episode by episode (rows of one episode consecutive).
struct Rollouts {
    obs: Vec<Vec<f64>>,
    actions: Vec<Vec<f64>>,
    next: Vec<Vec<f64>>,
    to_go: Vec<f64>,
    /// Each episode's length.
    lengths: Vec<usize>,
}

/// The action as numbers for a model: one-hot for discrete actions, the values for boxes.
fn encode(action: &Action, space: &Space) -> Vec<f64> {
    match (action, space) {
        (Action::Discrete(a), Space::Discrete { n, .. }) => (0..*n).map(|i| if i as i64 == *a as i64 { 1.0 } else { 0.0 }).collect(),
        (Action::Continuous(v), _) => v.iter().map(|&x| x as f64).collect(),
        (Action::Discrete(a), _) => vec![*a as f64],
    }
}

/// `EPISODES` episodes of `spec` from reset seeds `seed..`, each driven by the action sequence
/// `actions[e]` (drawn once for both environments of a pair).
fn rollouts(registry: &Registry, spec: &EnvSpec, actions: &[Vec<Action>], seed: u64) -> Result<Rollouts, TransferError> {
    let mut env = registry.make(spec)?;
    let space = env.action_space().clone();
    let mut r = Rollouts { obs: Vec::new(), actions: Vec::new(), next: Vec::new(), to_go: Vec::new(), lengths: Vec::new() };
    for (e, episode) in actions.iter().enumerate() {
        let mut obs: Vec<f64> = env.reset(Some(seed + e as u64))?.0.iter().map(|&x| x as f64).collect();
        let mut rewards = Vec::new();
        for a in episode {
            let step = env.step(a)?;
            let next: Vec<f64> = step.obs.iter().map(|&x| x as f64).collect();
            r.obs.push(obs);
            r.actions.push(encode(a, &space));
            r.next.push(next.clone());
            rewards.push(step.reward);
            obs = next;
            if step.terminated || step.truncated {
                break;
            }
        }
        let mut g = 0.0;
        let mut to_go = vec![0.0; rewards.len()];
        for i in (0..rewards.len()).rev() {
            g = rewards[i] + GAMMA * g;
            to_go[i] = g;
        }
        r.to_go.extend(to_go);
        r.lengths.push(rewards.len());
    }
    Ok(r)
}

/// The source's last hidden layer (its actor's, or its Q network's) on `obs`: its observation
/// normalisation (when it keeps one), then each trunk layer with its activation.
pub fn features(source: &Loaded, obs: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let tensors = source.agent.tensors();
    let get = |name: &str| -> Option<Vec<f64>> {
        tensors
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, t)| Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1)).ok())
    };
    let shape = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t.size());
    let prefixes = ["actor.trunk", "shared.trunk", "q.trunk", "policy.trunk"];
    let prefix = prefixes.into_iter().find(|p| shape(&format!("{p}.0.weight")).is_some());
    let relu = source.card.config.net().activation == crate::agent::nn::Activation::Relu;
    let (mean, var) = (get("obs_rms.mean"), get("obs_rms.var"));
    obs.iter()
        .map(|x| {
            let mut h: Vec<f64> = x.clone();
            if let (Some(m), Some(v)) = (&mean, &var)
                && m.len() == h.len()
            {
                for i in 0..h.len() {
                    h[i] = ((h[i] - m[i]) / (v[i] + 1e-8).sqrt()).clamp(-10.0, 10.0);
                }
            }
            let Some(prefix) = prefix else { return h };
            let mut layer = 0;
            while let (Some(w), Some(b), Some(s)) = (
                get(&format!("{prefix}.{layer}.weight")),
                get(&format!("{prefix}.{layer}.bias")),
                shape(&format!("{prefix}.{layer}.weight")),
            ) {
                let (rows, cols) = (s[0] as usize, s[1] as usize);
                if cols != h.len() {
                    break;
                }
                h = (0..rows)
                    .map(|r| {
                        let z = b[r] + (0..cols).map(|c| w[r * cols + c] * h[c]).sum::<f64>();
                        if relu { z.max(0.0) } else { z.tanh() }
                    })
                    .collect();
                layer += 1;
            }
            h
        })
        .collect()
}

fn center(x: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let (n, d) = (x.len() as f64, x.first().map_or(0, Vec::len));
    let means: Vec<f64> = (0..d).map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n).collect();
    x.iter().map(|r| r.iter().zip(&means).map(|(v, m)| v - m).collect()).collect()
}

/// `aᵀ b` of two row-major matrices with the same rows.
fn cross(a: &[Vec<f64>], b: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let (p, q) = (a.first().map_or(0, Vec::len), b.first().map_or(0, Vec::len));
    let mut out = vec![vec![0.0; q]; p];
    for (ra, rb) in a.iter().zip(b) {
        for i in 0..p {
            for j in 0..q {
                out[i][j] += ra[i] * rb[j];
            }
        }
    }
    out
}

fn frobenius2(m: &[Vec<f64>]) -> f64 {
    m.iter().flatten().map(|v| v * v).sum()
}

/// Linear CKA of two representations of the same rows.
pub fn linear_cka(x: &[Vec<f64>], y: &[Vec<f64>]) -> f64 {
    let (x, y) = (center(x), center(y));
    let xy = frobenius2(&cross(&y, &x));
    let (xx, yy) = (frobenius2(&cross(&x, &x)).sqrt(), frobenius2(&cross(&y, &y)).sqrt());
    if xx == 0.0 || yy == 0.0 { f64::NAN } else { xy / (xx * yy) }
}

/// Solves `a x = b` for symmetric positive definite `a` (Cholesky); `None` when it is not.
fn solve_spd(a: &[Vec<f64>], b: &[f64]) -> Option<Vec<f64>> {
    let n = a.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s = a[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i][i] = s.sqrt();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        y[i] = (b[i] - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        x[i] = (y[i] - (i + 1..n).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
    }
    Some(x)
}

/// The dynamics discrepancy: a ridge model of `next - obs` on `[obs, action, 1]` fitted on the
/// source's transitions, its mean squared error (each output standardised by the source's spread)
/// on the target's over its error on the source's; the score is minus its log.
fn dynamics_score(source: &Rollouts, target: &Rollouts) -> f64 {
    let inputs = |r: &Rollouts| -> Vec<Vec<f64>> {
        r.obs.iter().zip(&r.actions).map(|(o, a)| o.iter().chain(a).copied().chain(std::iter::once(1.0)).collect()).collect()
    };
    let deltas = |r: &Rollouts| -> Vec<Vec<f64>> {
        r.obs.iter().zip(&r.next).map(|(o, n)| n.iter().zip(o).map(|(a, b)| a - b).collect()).collect()
    };
    let (xs, ys) = (inputs(source), deltas(source));
    let (xt, yt) = (inputs(target), deltas(target));
    if xs.is_empty() || xt.is_empty() || xs[0].len() != xt[0].len() || ys[0].len() != yt[0].len() {
        return f64::NAN;
    }
    let mut gram = cross(&xs, &xs);
    for (i, row) in gram.iter_mut().enumerate() {
        row[i] += 1e-3 * xs.len() as f64;
    }
    let outputs = ys[0].len();
    let mut error = (0.0, 0.0);
    for j in 0..outputs {
        let col: Vec<f64> = ys.iter().map(|r| r[j]).collect();
        let mean = col.iter().sum::<f64>() / col.len() as f64;
        let sd = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64).sqrt().max(1e-8);
        let rhs: Vec<f64> = (0..gram.len()).map(|i| xs.iter().zip(&col).map(|(x, y)| x[i] * y).sum()).collect();
        let Some(w) = solve_spd(&gram, &rhs) else { return f64::NAN };
        let mse = |x: &[Vec<f64>], y: &[Vec<f64>]| -> f64 {
            x.iter().zip(y).map(|(xi, yi)| ((xi.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() - yi[j]) / sd).powi(2)).sum::<f64>()
                / x.len() as f64
        };
        error.0 += mse(&xs, &ys);
        error.1 += mse(&xt, &yt);
    }
    -((error.1 + 1e-12) / (error.0 + 1e-12)).ln()
}

/// Eigenvalues and eigenvectors (columns) of a symmetric matrix, by cyclic Jacobi rotations.
fn symmetric_eigen(mut a: Vec<Vec<f64>>) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = a.len();
    let mut v: Vec<Vec<f64>> = (0..n).map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect()).collect();
    for _ in 0..100 {
        let off: f64 = (0..n).flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| a[i][j] * a[i][j]).sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let (c, s) = (1.0 / (t * t + 1.0).sqrt(), t / (t * t + 1.0).sqrt());
                for k in 0..n {
                    let (akp, akq) = (a[k][p], a[k][q]);
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let (vkp, vkq) = (row[p], row[q]);
                    row[p] = c * vkp - s * vkq;
                    row[q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i][i]).collect(), v)
}

/// LogME's evidence per sample of features `f` (rows) for targets `y` (You et al. 2021, their
/// fixed-point iteration of the prior and noise precisions).
pub fn logme(f: &[Vec<f64>], y: &[f64]) -> f64 {
    let n = f.len();
    if n < 2 {
        return f64::NAN;
    }
    let d = f[0].len();
    let (s, v) = symmetric_eigen(cross(f, f));
    let s: Vec<f64> = s.into_iter().map(|x| x.max(0.0)).collect();
    // tmp = Vᵀ Fᵀ y
    let fty: Vec<f64> = (0..d).map(|j| f.iter().zip(y).map(|(r, yi)| r[j] * yi).sum()).collect();
    let tmp: Vec<f64> = (0..d).map(|k| (0..d).map(|j| v[j][k] * fty[j]).sum()).collect();
    let (mut alpha, mut beta) = (1.0f64, 1.0f64);
    let (mut alpha_de, mut beta_de) = (0.0, 0.0);
    for _ in 0..11 {
        let gamma: f64 = s.iter().map(|si| beta * si / (alpha + beta * si)).sum();
        let m: Vec<f64> = (0..d).map(|j| (0..d).map(|k| v[j][k] * tmp[k] * beta / (alpha + beta * s[k])).sum()).collect();
        alpha_de = m.iter().map(|x| x * x).sum::<f64>().max(1e-12);
        beta_de = f
            .iter()
            .zip(y)
            .map(|(r, yi)| (yi - r.iter().zip(&m).map(|(a, b)| a * b).sum::<f64>()).powi(2))
            .sum::<f64>()
            .max(1e-12);
        let (new_alpha, new_beta) = (gamma / alpha_de, (n as f64 - gamma) / beta_de);
        let converged = ((new_alpha / new_beta) - (alpha / beta)).abs() / (alpha / beta) < 0.01;
        (alpha, beta) = (new_alpha, new_beta);
        if converged {
            break;
        }
    }
    let evidence = d as f64 / 2.0 * alpha.ln() + n as f64 / 2.0 * beta.ln()
        - 0.5 * s.iter().map(|si| (alpha + beta * si).ln()).sum::<f64>()
        - beta / 2.0 * beta_de
        - alpha / 2.0 * alpha_de
        - n as f64 / 2.0 * (2.0 * std::f64::consts::PI).ln();
    evidence / n as f64
}

/// The four predictors of `source` (its checkpoint, named `name`) on `target` (through `map`
/// when one is needed), `threshold` and `random_return` normalising the zero-shot return.
pub fn predict(
    registry: &Registry,
    source: &Loaded,
    name: &str,
    target: &EnvSpec,
    map: Option<&Map>,
    (threshold, random_return): (f64, f64),
    seed: u64,
) -> Result<Predictions, TransferError> {
    let (agent, _) = prepare(registry, source, name, target, &Strategy::finetune(), map, seed)?;
    let mut env = registry.make(target)?;
    let stats = evaluate(agent.as_ref(), env.as_mut(), EVAL_EPISODES, true, 1_000_000 + seed)?;
    let zero_shot = (stats.mean - random_return) / (threshold - random_return);
    // One action sequence per episode, drawn in the target's action space, for both environments.
    let space = env.action_space().clone();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let actions: Vec<Vec<Action>> = (0..EPISODES).map(|_| (0..HORIZON).map(|_| space.sample(&mut rng)).collect()).collect();
    let on_target = rollouts(registry, target, &actions, 2_000_000 + seed)?;
    let same_spaces = source.card.action_space == space && source.card.observation_space == *env.observation_space();
    let (cka, dynamics) = if same_spaces {
        let on_source = rollouts(registry, &source.card.env, &actions, 2_000_000 + seed)?;
        // Rows paired by (episode, step), as long as both episodes last.
        let (mut xs, mut xt) = (Vec::new(), Vec::new());
        let (mut i, mut j) = (0, 0);
        for (ls, lt) in on_source.lengths.iter().zip(&on_target.lengths) {
            let common = (*ls).min(*lt);
            xs.extend_from_slice(&on_source.obs[i..i + common]);
            xt.extend_from_slice(&on_target.obs[j..j + common]);
            i += ls;
            j += lt;
        }
        (linear_cka(&features(source, &xs), &features(source, &xt)), dynamics_score(&on_source, &on_target))
    } else {
        (f64::NAN, f64::NAN)
    };
    let mean = on_target.to_go.iter().sum::<f64>() / on_target.to_go.len().max(1) as f64;
    let sd = (on_target.to_go.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / on_target.to_go.len().max(1) as f64).sqrt();
    let y: Vec<f64> = on_target.to_go.iter().map(|g| (g - mean) / sd.max(1e-8)).collect();
    let logme = logme(&features(source, &on_target.obs), &y);
    Ok(Predictions { zero_shot, cka, dynamics, logme })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn cka_is_one_for_a_rotation_and_near_zero_for_noise() {
        let mut rng = StdRng::seed_from_u64(1);
        let x: Vec<Vec<f64>> = (0..200).map(|_| (0..3).map(|_| rng.random::<f64>()).collect()).collect();
        let rotated: Vec<Vec<f64>> = x.iter().map(|r| vec![r[1] * 2.0, -r[0] * 2.0, r[2] * 2.0]).collect();
        assert!((linear_cka(&x, &rotated) - 1.0).abs() < 1e-9);
        let noise: Vec<Vec<f64>> = (0..200).map(|_| (0..3).map(|_| rng.random::<f64>()).collect()).collect();
        assert!(linear_cka(&x, &noise) < 0.1);
    }

    #[test]
    fn jacobi_diagonalises_and_logme_prefers_informative_features() {
        let a = vec![vec![4.0, 1.0, 0.5], vec![1.0, 3.0, 0.2], vec![0.5, 0.2, 2.0]];
        let (s, v) = symmetric_eigen(a.clone());
        for k in 0..3 {
            for i in 0..3 {
                let av: f64 = (0..3).map(|j| a[i][j] * v[j][k]).sum();
                assert!((av - s[k] * v[i][k]).abs() < 1e-9);
            }
        }
        let mut rng = StdRng::seed_from_u64(2);
        let f: Vec<Vec<f64>> = (0..300).map(|_| (0..4).map(|_| rng.random::<f64>() - 0.5).collect()).collect();
        let y: Vec<f64> = f.iter().map(|r| 2.0 * r[0] - r[1] + 0.05 * (rng.random::<f64>() - 0.5)).collect();
        let noise: Vec<Vec<f64>> = (0..300).map(|_| (0..4).map(|_| rng.random::<f64>() - 0.5).collect()).collect();
        assert!(logme(&f, &y) > logme(&noise, &y) + 0.5, "{} vs {}", logme(&f, &y), logme(&noise, &y));
    }
}
