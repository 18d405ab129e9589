//! Checking an experiment without training, and what the check resolves: every environment
//! builds, thresholds stand above what random actions score, the source loads (or its config
//! builds), and every strategy transfers onto every target (parts, shapes, maps) from a
//! stand-in source of the same architecture.

use std::path::Path;

use rand::SeedableRng;

use crate::agent::AgentConfig;
use crate::agent::checkpoint::{CheckpointError, Loaded};
use crate::agent::train::Task;
use crate::env::{EnvSpec, Registry, Transform};
use crate::transfer::Strategy;

use super::StudyError;
use super::experiment::{Experiment, ResolvedTarget, Source};

/// Checks an experiment against the registry and its files without training: every
/// environment builds, the source loads (or its config builds), and every strategy transfers
/// onto every target (parts, shapes, maps) from a stand-in source of the same architecture.
pub fn validate(experiment: &Experiment, registry: &Registry) -> Result<Validated, StudyError> {
    let checked = check(experiment, registry, None)?;
    Ok(Validated { targets: checked.targets, warnings: checked.warnings })
}

/// What [`validate`] found: the resolved targets, and what the experiment may not mean.
#[derive(Clone, Debug)]
pub struct Validated {
    /// The targets with their specs, maps and keys.
    pub targets: Vec<ResolvedTarget>,
    /// Warnings to show before a run (a reward transform under a default threshold).
    pub warnings: Vec<String>,
}

/// What checking an experiment resolves: its targets, their thresholds, and the source policy
/// when the experiment names one (loaded once, here).
pub(crate) struct Checked {
    /// The targets, in the experiment's order.
    pub targets: Vec<ResolvedTarget>,
    /// Each target's threshold: the experiment's, else its environment's.
    pub thresholds: Vec<f64>,
    /// Each target's random-policy return (100 seeded episodes).
    pub random_returns: Vec<f64>,
    /// What the experiment may not mean (a reward transform under a default threshold).
    pub warnings: Vec<String>,
    /// The source policy of a `Source::Policy`; `None` for a source still to pretrain.
    pub policy: Option<Loaded>,
}

/// [`validate`], keeping what it resolved; with a results folder, the random-policy returns
/// measured there before are read rather than measured again (see [`random_return_in`]).
pub(crate) fn check(
    experiment: &Experiment,
    registry: &Registry,
    folder: Option<&Path>,
) -> Result<Checked, StudyError> {
    experiment.check_fields()?;
    if let Source::Matrix(members) = &experiment.source {
        return check_matrix(experiment, members, registry, folder);
    }
    // The policy is loaded once; its error is reported where the stand-in is needed, after the
    // targets' own errors (a variant's map only needs its card).
    // With several policies the first stands in for all (the others must match its card).
    if let Source::Sb3(model) = &experiment.source {
        super::source::import_sb3(model, registry)?;
    }
    let dirs = experiment.source.policy_dirs();
    let first = dirs.as_ref().map(|d| &d[0]);
    let mut policy: Option<Result<Loaded, CheckpointError>> = first.map(|dir| crate::agent::checkpoint::load(dir));
    let source_env = match (&experiment.source, &policy, first) {
        (Source::Pretrain(p), _, _) => p.env_id(),
        (_, Some(Ok(loaded)), _) => Some(loaded.card.env.id.clone()),
        (_, _, Some(dir)) => crate::agent::checkpoint::read_card(dir).ok().map(|c| c.env.id),
        (_, _, None) => None,
    };
    let targets = experiment.resolve_targets(source_env.as_deref())?;
    for (index, target) in targets.iter().enumerate() {
        registry.make(&target.env).map_err(|error| StudyError::Target { index, error })?;
    }
    let mut thresholds = Vec::with_capacity(targets.len());
    for t in &targets {
        let threshold = experiment.threshold.or_else(|| registry.entry(&t.env.id).ok().and_then(|e| e.threshold()));
        let Some(threshold) = threshold else {
            return Err(StudyError::field(
                "threshold",
                format!(
                    "{} registers no reward threshold, so the experiment must give one (the return that counts as solved)",
                    t.env.id
                ),
            ));
        };
        thresholds.push(threshold);
    }
    // Normalisation divides by threshold - random: a threshold at or below what random actions
    // score would turn every verdict around.
    let mut random_returns = Vec::with_capacity(targets.len());
    let mut warnings = Vec::new();
    for (index, (t, &threshold)) in targets.iter().zip(&thresholds).enumerate() {
        let random = random_return_in(registry, &t.env, folder)?;
        if threshold <= random {
            return Err(StudyError::field(
                "threshold",
                format!(
                    "targets[{index}] ({}): the threshold {threshold} is not above the random policy's return {random:.2}; \
                     normalised scores would turn around (give a threshold that counts as solved)",
                    t.key
                ),
            ));
        }
        let scaled = t.env.transforms.iter().any(|tr| matches!(tr, Transform::ScaleReward(_)));
        if scaled && experiment.threshold.is_none() {
            warnings.push(format!(
                "targets[{index}] ({}): its rewards are scaled (ScaleReward) but the threshold {threshold} is the environment's \
                 registered one, for unscaled rewards; give `threshold` in the experiment",
                t.key
            ));
        }
        random_returns.push(random);
    }
    // A stand-in source: the policy itself, or an untrained agent of the pretrain config.
    let standin = match (&experiment.source, policy.take()) {
        (Source::Pretrain(p), _) => {
            let task = p.task()?;
            let source_env = |e: &dyn std::fmt::Display| StudyError::SourceEnv { message: e.to_string() };
            if let Task::Mixture(mix) = &task {
                mix.validate(registry).map_err(|e| source_env(&e))?;
            }
            let env = task.make(registry).map_err(|e| source_env(&e))?;
            let config = p.resolved_config(registry)?;
            let agent = config
                .build(env.observation_space(), env.action_space(), p.seed)
                .map_err(|e| StudyError::Source { message: e.to_string() })?;
            let card =
                standin_card(&config, task.nominal(), env.observation_space(), env.action_space(), agent.as_ref());
            Loaded { card, agent }
        }
        (_, Some(loaded)) => loaded.map_err(|e| StudyError::Source { message: e.to_string() })?,
        (_, None) => unreachable!("a policy source has a first policy"),
    };
    // Every other policy must be the same kind of agent on the same spaces.
    for dir in dirs.iter().flatten().skip(1) {
        let card =
            crate::agent::checkpoint::read_card(dir).map_err(|e| StudyError::Source { message: e.to_string() })?;
        let same = card.algorithm == standin.card.algorithm
            && card.observation_space == standin.card.observation_space
            && card.action_space == standin.card.action_space
            && card.weights == standin.card.weights;
        if !same {
            return Err(StudyError::Source {
                message: format!(
                    "{}: a {} policy on {} / {} ({} weight tensors); the first policy is a {} on {} / {} ({}): every \
                     policy of a study must share algorithm, network and spaces",
                    dir.display(),
                    card.algorithm,
                    card.observation_space,
                    card.action_space,
                    card.weights.len(),
                    standin.card.algorithm,
                    standin.card.observation_space,
                    standin.card.action_space,
                    standin.card.weights.len()
                ),
            });
        }
    }
    for (index, target) in targets.iter().enumerate() {
        for strategy in std::iter::once(Strategy::scratch()).chain(experiment.strategies.iter().cloned()) {
            crate::transfer::prepare(registry, &standin, "source", &target.env, &strategy, target.map.as_ref(), 0)
                .map_err(|source| StudyError::Transfer {
                    index,
                    key: target.key.to_string(),
                    strategy: strategy.label(),
                    error: Box::new(source),
                })?;
        }
    }
    let policy = dirs.is_some().then_some(standin);
    Ok(Checked { targets, thresholds, random_returns, warnings, policy })
}

/// A card for an agent that exists only in memory (validation's stand-in source).
pub(crate) fn standin_card(
    config: &AgentConfig,
    env: &EnvSpec,
    obs: &crate::env::Space,
    act: &crate::env::Space,
    agent: &dyn crate::agent::Agent,
) -> crate::agent::checkpoint::Card {
    crate::agent::checkpoint::Card {
        format: 1,
        headstart_version: env!("CARGO_PKG_VERSION").into(),
        algorithm: config.algo(),
        config: config.clone(),
        env: env.clone(),
        mixture: None,
        tasks: None,
        observation_space: obs.clone(),
        action_space: act.clone(),
        steps: 0,
        seed: 0,
        reward_free: !config.objective().is_reward(),
        eval: None,
        produced_by: "validation".into(),
        sha256: String::new(),
        weights: agent.weight_names(),
        tensors: Vec::new(),
        replay: None,
        origin: None,
    }
}

/// The mean return of uniformly random actions over 100 seeded episodes.
pub(crate) fn random_return(registry: &Registry, spec: &EnvSpec) -> Result<f64, StudyError> {
    let env_error = |error| StudyError::RandomReturn { env: spec.to_string(), error };
    let mut env = registry.make(spec).map_err(env_error)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    crate::env::random_policy_return(env.as_mut(), &spec.to_string(), (0..100).map(|i| 2_000_000 + i), &mut rng)
        .map_err(env_error)
}

/// [`random_return`], read from the results folder `folder` when its `targets.ron` (written by
/// the study's first process, [`super::records::TargetInfo`]) holds a target of the same
/// environment: a study's workers, a resumed run and a cluster's array jobs take it from there
/// instead of playing 100 random episodes again (minutes for an Atari game through the bridge).
/// The value is the same either way (seeded episodes); a file that cannot be read only costs
/// the measurement.
pub(crate) fn random_return_in(registry: &Registry, spec: &EnvSpec, folder: Option<&Path>) -> Result<f64, StudyError> {
    let recorded = recorded::<super::records::TargetInfo>(folder, "targets.ron");
    match recorded.into_iter().find(|info| info.target.env == *spec) {
        Some(info) => Ok(info.random_return),
        None => random_return(registry, spec),
    }
}

/// The list a results folder's `file` records (`targets.ron`, a sequence's `tasks.ron`); empty
/// without a folder, or when the file is missing or unreadable (what it held is measured again).
pub(crate) fn recorded<T: serde::de::DeserializeOwned>(folder: Option<&Path>, file: &str) -> Vec<T> {
    let text = folder.and_then(|folder| std::fs::read_to_string(folder.join(file)).ok());
    text.and_then(|text| crate::util::ron_options().from_str(&text).ok()).unwrap_or_default()
}

/// A transfer matrix checked source by source, as a study of each would be (every strategy onto
/// every target from each); the sources must share algorithm and spaces (scratch, one per
/// target, takes the first's hyperparameters). The targets' maps are those declared for the
/// first source's environment.
fn check_matrix(
    experiment: &Experiment,
    members: &[(String, Source)],
    registry: &Registry,
    folder: Option<&Path>,
) -> Result<Checked, StudyError> {
    let mut first: Option<(Checked, crate::agent::checkpoint::Card)> = None;
    for (name, source) in members {
        let mut single = experiment.clone();
        single.source = source.clone();
        single.guard = None;
        let in_member = |e: StudyError| StudyError::Source { message: format!("Matrix source {name:?}: {e}") };
        let mut checked = check(&single, registry, folder).map_err(in_member)?;
        let card = match (checked.policy.take(), source) {
            (Some(loaded), _) => loaded.card,
            (None, Source::Pretrain(p)) => {
                let task = p.task().map_err(in_member)?;
                let env = task.make(registry).map_err(|e| in_member(StudyError::SourceEnv { message: e.to_string() }))?;
                let config = p.resolved_config(registry).map_err(in_member)?;
                let agent = config
                    .build(env.observation_space(), env.action_space(), p.seed)
                    .map_err(|e| in_member(StudyError::Source { message: e.to_string() }))?;
                standin_card(&config, task.nominal(), env.observation_space(), env.action_space(), agent.as_ref())
            }
            (None, _) => unreachable!("a checkpoint source is loaded by its check"),
        };
        match &first {
            None => first = Some((checked, card)),
            Some((_, c)) if c.algorithm == card.algorithm
                && c.observation_space == card.observation_space
                && c.action_space == card.action_space => {}
            Some((_, c)) => {
                return Err(StudyError::Source {
                    message: format!(
                        "Matrix source {name:?} is a {} policy on {} / {}, the first a {} on {} / {}: a matrix's sources share \
                         algorithm and spaces (scratch is one per target)",
                        card.algorithm, card.observation_space, card.action_space, c.algorithm, c.observation_space, c.action_space
                    ),
                });
            }
        }
    }
    let (checked, _) = first.expect("a matrix has at least two sources");
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::experiment::ResolvedTarget;
    use crate::study::records::TargetInfo;

    /// A results folder's `targets.ron` gives the random return of its targets' environments;
    /// others are measured.
    #[test]
    fn random_returns_are_read_from_the_results_folder() {
        let registry = Registry::builtin();
        let spec = EnvSpec::new("CartPole-v1").with("length", 0.75);
        let folder = std::env::temp_dir().join(format!("headstart-random-returns-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        let measured = random_return(&registry, &spec).unwrap();
        assert_eq!(random_return_in(&registry, &spec, Some(&folder)).unwrap(), measured, "no folder yet: measured");
        // What the folder says is what the next process takes (so it is not measured again).
        let key = crate::study::ids::TargetId::new("long");
        let target = ResolvedTarget { key, env: spec.clone(), map: None };
        let infos = vec![TargetInfo { target, threshold: 475.0, random_return: 12.5 }];
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("targets.ron"), crate::util::to_ron(&infos)).unwrap();
        assert_eq!(random_return_in(&registry, &spec, Some(&folder)).unwrap(), 12.5);
        assert_eq!(random_return_in(&registry, &spec, None).unwrap(), measured);
        let other = EnvSpec::new("CartPole-v1");
        let fresh = random_return(&registry, &other).unwrap();
        assert_eq!(random_return_in(&registry, &other, Some(&folder)).unwrap(), fresh, "another environment: measured");
        let _ = std::fs::remove_dir_all(&folder);
    }
}
