//! Carrying tensors through inter-task mappings: which axis of each parameter indexes
//! observation features or actions ([`axes`], from the naming convention), and the tensor
//! operations of an [`env::Map`](crate::env::Map) (declared in the environment layer, where
//! variants name them).

use tch::{Kind, Tensor};

use crate::agent::Algo;
pub use crate::env::{Map, ObsMap};

/// What one axis of a tensor indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// Hidden units or anything else the map leaves alone.
    Other,
    /// Observation features.
    Obs,
    /// Observation features followed by action dimensions (a Q(s, a) critic's input).
    ObsAction,
    /// Actions (logits, means, Q-values or log standard deviations per action).
    Action,
}

/// The axes of one tensor: rows (dimension 0) and, for matrices, columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Axes {
    /// What dimension 0 indexes.
    pub rows: Axis,
    /// What dimension 1 indexes ([`Axis::Other`] for a vector).
    pub cols: Axis,
}

/// The axes of the weight `name` (with `dims` dimensions) of an agent of algorithm `algo` whose
/// weights are `names`, as the naming convention of [`crate::agent`] lays them out.
pub fn axes(algo: Algo, name: &str, dims: usize, names: &[String]) -> Axes {
    let has = |n: &str| names.iter().any(|m| m == n);
    let other = Axes { rows: Axis::Other, cols: Axis::Other };
    // A trunk the actor and the critic share (`share_trunk`) reads the input, their heads its features.
    let shared = names.iter().any(|n| n.starts_with("shared."));
    if name == "actor.log_std" {
        // PPO's `[actions]` vector, or the gSDE `[features, actions]` matrix (whose features
        // are the observation itself when the actor has no hidden layer).
        return if dims == 1 {
            Axes { rows: Axis::Action, ..other }
        } else {
            let rows = if has("actor.trunk.0.weight") || shared { Axis::Other } else { Axis::Obs };
            Axes { rows, cols: Axis::Action }
        };
    }
    let mut axes = other;
    let readers: &[&str] = if shared { &["shared"] } else { networks(algo) };
    for net in readers {
        // The layer that reads the network's input: the encoder's first convolution (whose
        // axis 1 indexes the image's channels), else the first trunk layer, else the head(s).
        let reads_input = if has(&format!("{net}.encoder.conv.0.weight")) {
            name == format!("{net}.encoder.conv.0.weight")
        } else if names.iter().any(|n| n.starts_with(&format!("{net}.encoder."))) {
            false // a dictionary observation's parts: no tensor reads the whole observation
        } else if has(&format!("{net}.trunk.0.weight")) {
            name == format!("{net}.trunk.0.weight")
        } else {
            name == format!("{net}.head.weight") || (*net == "actor" && name == "actor.log_std.weight")
        };
        if reads_input {
            let q_of_action = matches!(algo, Algo::Sac | Algo::Td3) && net.starts_with("critic");
            axes.cols = if q_of_action { Axis::ObsAction } else { Axis::Obs };
        }
    }
    let action_rows = match algo {
        Algo::Ppo | Algo::A2c | Algo::Td3 => name.starts_with("actor.head."),
        Algo::Sac => name.starts_with("actor.head.") || name.starts_with("actor.log_std."),
        Algo::Dqn => name.starts_with("q.head."),
    };
    if action_rows {
        axes.rows = Axis::Action;
    }
    axes
}

/// The online networks of an algorithm's agents (each a trunk and a head; target networks are
/// laid out as their online network).
pub fn networks(algo: Algo) -> &'static [&'static str] {
    match algo {
        Algo::Ppo | Algo::A2c => &["actor", "critic"],
        Algo::Dqn => &["q"],
        Algo::Sac | Algo::Td3 => &["actor", "critic.q0", "critic.q1"],
    }
}

/// Why a tensor could not be carried through a map.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MapError(pub String);

/// The tensor side of a map (the type itself is the environment layer's).
impl Map {
    /// The observation map as a `[source, target]` matrix, checked against the sizes.
    fn obs_matrix(&self, source_dim: usize, target_dim: usize) -> Result<Option<Tensor>, MapError> {
        let Some(obs) = &self.obs else { return Ok(None) };
        let m = match obs {
            ObsMap::Index(index) => {
                if index.len() != target_dim {
                    return Err(MapError(format!(
                        "map.obs lists {} target features; the target observation has {target_dim}",
                        index.len()
                    )));
                }
                let mut m = vec![0.0f32; source_dim * target_dim];
                for (t, s) in index.iter().enumerate() {
                    if let Some(s) = *s {
                        if s >= source_dim {
                            return Err(MapError(format!(
                                "map.obs[{t}] = {s}: the source observation has features 0..{source_dim}"
                            )));
                        }
                        m[s * target_dim + t] = 1.0;
                    }
                }
                m
            }
            ObsMap::Linear(rows) => {
                if rows.len() != source_dim || rows.iter().any(|r| r.len() != target_dim) {
                    return Err(MapError(format!(
                        "map.obs Linear must be {source_dim} rows (source features) of {target_dim} columns \
                         (target features)"
                    )));
                }
                rows.iter().flatten().map(|&v| v as f32).collect()
            }
        };
        Ok(Some(Tensor::from_slice(&m).view([source_dim as i64, target_dim as i64])))
    }

    /// A learned input layer's starting weight: the observation map as a `[source, target]`
    /// matrix (`None` without an observation map).
    pub(super) fn input_matrix(&self, source_dim: usize, target_dim: usize) -> Result<Option<Tensor>, MapError> {
        self.obs_matrix(source_dim, target_dim)
    }

    /// A learned output layer's starting weight: the action map as a `[target, source]` matrix
    /// (`None` without an action map).
    pub(super) fn output_matrix(&self, source_n: usize, target_n: usize) -> Result<Option<Tensor>, MapError> {
        let Some(index) = self.action_index(source_n, target_n)? else { return Ok(None) };
        let mut m = vec![0.0f32; target_n * source_n];
        for (t, s) in index.iter().enumerate() {
            if let Some(s) = *s {
                m[t * source_n + s] = 1.0;
            }
        }
        Ok(Some(Tensor::from_slice(&m).view([target_n as i64, source_n as i64])))
    }

    /// For each target action, the source action, checked against the sizes.
    fn action_index(&self, source_n: usize, target_n: usize) -> Result<Option<&[Option<usize>]>, MapError> {
        let Some(actions) = &self.actions else { return Ok(None) };
        if actions.len() != target_n {
            return Err(MapError(format!(
                "map.actions lists {} target actions; the target has {target_n}",
                actions.len()
            )));
        }
        if let Some((t, s)) = actions.iter().enumerate().find_map(|(t, s)| s.filter(|&s| s >= source_n).map(|s| (t, s)))
        {
            return Err(MapError(format!("map.actions[{t}] = {s}: the source has actions 0..{source_n}")));
        }
        Ok(Some(actions))
    }

    /// Whether the map changes a tensor with these axes.
    pub fn touches(&self, axes: Axes) -> bool {
        let obs = |a: Axis| matches!(a, Axis::Obs | Axis::ObsAction);
        let act = |a: Axis| matches!(a, Axis::Action | Axis::ObsAction);
        (self.obs.is_some() && (obs(axes.rows) || obs(axes.cols)))
            || (self.actions.is_some() && (act(axes.rows) || act(axes.cols)))
    }

    /// Carries the source tensor `source` into the target's shape through the map. `fresh` is
    /// the target's own value, kept where no source value maps (new actions); unmapped
    /// observation features get zero weight. `obs_dims` and `act_dims` are (source, target).
    pub fn apply(
        &self,
        source: &Tensor,
        fresh: &Tensor,
        axes: Axes,
        obs_dims: (usize, usize),
        act_dims: (usize, usize),
    ) -> Result<Tensor, MapError> {
        let mut t = source.to_kind(Kind::Float);
        if t.dim() == 4 {
            // A convolution's first weight `[out, channels, k, k]`: an image's observation map
            // lists, for each target channel, the source channel it reads.
            return match axes.cols {
                Axis::Obs => self.map_channels(&t, fresh),
                _ => Ok(t),
            };
        }
        // Columns first (inputs), then rows (outputs).
        if t.dim() == 2 {
            t = self.map_axis(&t, 1, axes.cols, fresh, obs_dims, act_dims)?;
        }
        self.map_axis(&t, 0, axes.rows, fresh, obs_dims, act_dims)
    }

    fn map_axis(
        &self,
        t: &Tensor,
        dim: i64,
        axis: Axis,
        fresh: &Tensor,
        (obs_s, obs_t): (usize, usize),
        (act_s, act_t): (usize, usize),
    ) -> Result<Tensor, MapError> {
        match axis {
            Axis::Other => Ok(t.shallow_clone()),
            Axis::Obs => self.map_obs(t, dim, obs_s, obs_t),
            Axis::Action => self.map_actions(t, dim, fresh, act_s, act_t),
            Axis::ObsAction => {
                check_len(t, dim, obs_s + act_s, "observation features and actions")?;
                check_len(fresh, dim, obs_t + act_t, "target observation features and actions")?;
                let obs_part = self.map_obs(&t.narrow(dim, 0, obs_s as i64), dim, obs_s, obs_t)?;
                let fresh_act = fresh.narrow(dim, obs_t as i64, act_t as i64);
                let act_part =
                    self.map_actions(&t.narrow(dim, obs_s as i64, act_s as i64), dim, &fresh_act, act_s, act_t)?;
                Ok(Tensor::cat(&[obs_part, act_part], dim))
            }
        }
    }

    fn map_obs(&self, t: &Tensor, dim: i64, source_dim: usize, target_dim: usize) -> Result<Tensor, MapError> {
        check_len(t, dim, source_dim, "observation features")?;
        let Some(m) = self.obs_matrix(source_dim, target_dim)? else { return Ok(t.shallow_clone()) };
        // A weight `[h, source]` reads `source = M · target`: as a function of the target it is
        // `W · M`. Rows indexed by source features go through `Mᵀ`.
        Ok(if dim == 1 {
            t.matmul(&m)
        } else {
            let mut shape = t.size();
            shape[0] = target_dim as i64;
            m.tr().matmul(&t.view([source_dim as i64, -1])).view(shape.as_slice())
        })
    }

    fn map_channels(&self, t: &Tensor, fresh: &Tensor) -> Result<Tensor, MapError> {
        let (source, target) = (t.size()[1] as usize, fresh.size()[1] as usize);
        let m = self.obs_matrix(source, target).map_err(|e| {
            MapError(format!("{} (over an image, the map lists the target's {target} channels)", e.0))
        })?;
        let Some(m) = m else { return Ok(t.shallow_clone()) };
        // W'[o, c', :, :] = Σ_c W[o, c, :, :] M[c, c'].
        Ok(t.permute([0, 2, 3, 1]).matmul(&m).permute([0, 3, 1, 2]).contiguous())
    }

    fn map_actions(
        &self,
        t: &Tensor,
        dim: i64,
        fresh: &Tensor,
        source_n: usize,
        target_n: usize,
    ) -> Result<Tensor, MapError> {
        check_len(t, dim, source_n, "actions")?;
        let Some(index) = self.action_index(source_n, target_n)? else { return Ok(t.shallow_clone()) };
        check_len(fresh, dim, target_n, "target actions")?;
        let parts: Vec<Tensor> = index
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Some(s) => t.narrow(dim, *s as i64, 1),
                None => fresh.narrow(dim, i as i64, 1),
            })
            .collect();
        Ok(Tensor::cat(&parts, dim))
    }
}

fn check_len(t: &Tensor, dim: i64, expected: usize, what: &str) -> Result<(), MapError> {
    let got = t.size()[dim as usize] as usize;
    if got != expected {
        return Err(MapError(format!("its axis {dim} has {got} entries where the source has {expected} {what}")));
    }
    Ok(())
}
