//! Which source policy to start from: every checkpoint in a folder that fits a target
//! (directly, or through the map the target declares for the source's environment), ranked by
//! its zero-shot return, with the return of random actions for scale.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{Strategy, TransferError, prepare};
use crate::agent::checkpoint;
use crate::agent::{Algo, EvalStats, evaluate};
use crate::env::{EnvSpec, Map, Registry, random_policy_return};
use crate::util::FileError;

/// How a policy fits the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// The same observation and action spaces.
    Direct,
    /// Through the map the target declares for the policy's environment.
    Map,
}

/// One policy's standing.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The policy's folder name.
    pub name: String,
    /// Its algorithm.
    pub algorithm: Algo,
    /// The environment it was trained on, as its card names it.
    pub source_env: String,
    /// How it fits the target.
    pub fit: Fit,
    /// Its zero-shot return on the target (deterministic episodes).
    pub stats: EvalStats,
}

/// The policies of a folder ranked for a target.
#[derive(Clone, Debug)]
pub struct Ranking {
    /// The policies that fit, best zero-shot return first.
    pub ranked: Vec<Candidate>,
    /// The policies that do not fit, each with the reason.
    pub skipped: Vec<String>,
    /// The mean return of uniformly random actions over the same episode seeds.
    pub random_return: f64,
}

/// Ranks the checkpoints in `policies` on `target` by their return over `episodes` deterministic
/// episodes (seeds `1_000_000 + seed` on); `maps` are the maps the target declares, by source
/// environment id.
pub fn rank(
    registry: &Registry,
    target: &EnvSpec,
    maps: &BTreeMap<String, Map>,
    policies: &Path,
    episodes: usize,
    seed: u64,
) -> Result<Ranking, TransferError> {
    let mut env = registry.make(target)?;
    let (obs_space, action_space) = (env.observation_space().clone(), env.action_space().clone());
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(policies)
        .map_err(|e| FileError::new(policies, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(checkpoint::CARD_FILE).exists())
        .collect();
    dirs.sort();
    let eval_seed = 1_000_000 + seed;
    let mut ranked = Vec::new();
    let mut skipped = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let card = match checkpoint::read_card(dir) {
            Ok(card) => card,
            Err(e) => {
                skipped.push(format!("{name}: {e}"));
                continue;
            }
        };
        let direct = card.observation_space == obs_space && card.action_space == action_space;
        let map = if direct { None } else { maps.get(&card.env.id) };
        if !direct && map.is_none() {
            skipped.push(format!(
                "{name}: trained on {} ({} / {}), the target has {} / {} and declares no map for {}",
                card.env,
                card.observation_space.brief(),
                card.action_space.brief(),
                obs_space.brief(),
                action_space.brief(),
                card.env.id
            ));
            continue;
        }
        let source = checkpoint::load(dir)?;
        let agent = match prepare(registry, &source, &name, target, &Strategy::finetune(), map, seed) {
            Ok((agent, _)) => agent,
            Err(e) => {
                skipped.push(format!("{name}: {e}"));
                continue;
            }
        };
        let stats = evaluate(agent.as_ref(), env.as_mut(), episodes, true, eval_seed)?;
        let fit = if direct { Fit::Direct } else { Fit::Map };
        ranked.push(Candidate { name, algorithm: card.algorithm, source_env: card.env.to_string(), fit, stats });
    }
    ranked.sort_by(|a, b| b.stats.mean.total_cmp(&a.stats.mean));
    let seeds = (0..episodes as u64).map(|i| eval_seed + i);
    let random_return =
        random_policy_return(env.as_mut(), &target.to_string(), seeds, &mut StdRng::seed_from_u64(seed))?;
    Ok(Ranking { ranked, skipped, random_return })
}
