//! `check_env`: tells the author of a custom environment what is wrong with it before any
//! training starts, as Gymnasium's `check_env` does; `check_registered`, what `headstart check`
//! runs: `check_env` on the bare environment, then episodes to their end through the registry's
//! wrappers (truncation, the last observation, a step after the end) over several seeds, at the
//! parameters given and at every declared bound.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use rand::SeedableRng;
use rand::rngs::StdRng;
use smallvec::SmallVec;

use super::params::Bound;
use super::wrappers::obs_fault;
use super::{Action, Env, EnvError, EnvSpec, Obs, Registry, Space};

/// Steps taken by each determinism check.
const ROLLOUT_STEPS: usize = 300;

/// Seeds of the episodes `check_registered` runs through the registry's wrappers.
const EPISODE_SEEDS: std::ops::Range<u64> = 0..3;

/// Steps at most per such episode (an environment without an episode limit whose random episodes
/// never end is stopped there).
const EPISODE_STEPS: usize = 5_000;

/// Everything `check_env` found wrong, one sentence each.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckFailure {
    /// The problems found, one sentence each, in the order they were found.
    pub problems: Vec<String>,
}

impl fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the environment failed {} check(s):", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CheckFailure {}

/// Runs the environment through the contract every agent relies on:
///
/// - both spaces are well formed;
/// - `reset` and `step` return observations of the right length, inside the observation space,
///   and finite rewards;
/// - the same seed gives the same first observation and, under the same actions, the same
///   trajectory;
/// - invalid actions (outside `Discrete(n)`, wrong length, NaN) are errors, not panics, and not
///   silently accepted;
/// - nothing panics.
pub fn check_env(env: &mut dyn Env) -> Result<(), CheckFailure> {
    check_env_within(env, true)
}

/// [`check_env`], observations checked against the space's bounds when `within` (at the ends of
/// parameter ranges a faithful port may leave them, as Gymnasium's CartPole does with a tiny
/// angle threshold: its space is twice the threshold, its reset state is not scaled with it).
fn check_env_within(env: &mut dyn Env, within: bool) -> Result<(), CheckFailure> {
    let mut problems = Vec::new();
    let (obs_space, act_space) = (env.observation_space().clone(), env.action_space().clone());
    for (what, space) in [("observation", &obs_space), ("action", &act_space)] {
        if let Err(e) = space.validate() {
            problems.push(format!("the {what} space is malformed: {e}"));
        }
    }
    if let Space::Dict { .. } = act_space {
        problems.push("the action space is a Dict: actions are Discrete or Box".into());
    }
    if !problems.is_empty() {
        return Err(CheckFailure { problems });
    }

    let Some((first, _)) = guarded("reset(Some(0))", &mut problems, || env.reset(Some(0))) else {
        return Err(CheckFailure { problems });
    };
    check_obs("reset(Some(0))", &first, &obs_space, within, &mut problems);
    if let Some((again, _)) = guarded("reset(Some(0)) a second time", &mut problems, || env.reset(Some(0)))
        && again != first
    {
        problems.push(format!(
            "reset(Some(0)) returned {:?} the first time and {:?} the second: seeding must make reset deterministic",
            first.as_slice(),
            again.as_slice()
        ));
    }

    let one = rollout(env, &obs_space, &act_space, within, &mut problems);
    let two = rollout(env, &obs_space, &act_space, within, &mut Vec::new());
    if let (Some(one), Some(two)) = (one, two)
        && let Some(t) = one.iter().zip(&two).position(|(a, b)| a != b)
    {
        problems.push(format!(
            "two episodes from reset(Some(0)) with the same actions differ at step {t} \
                 ({:?} vs {:?}): all randomness must come from the generator that reset(seed) seeds",
            one[t], two[t]
        ));
    }

    check_invalid_actions(env, &act_space, &mut problems);
    guarded("reset(None)", &mut problems, || env.reset(None));

    if problems.is_empty() { Ok(()) } else { Err(CheckFailure { problems }) }
}

/// The full contract test of a registered environment (`headstart check`): [`check_env`] on the
/// bare environment (which must refuse invalid actions itself), then, through the registry's
/// wrappers, random episodes from seeds 0, 1 and 2 to their end (termination or the time limit's
/// truncation), each step's observation, the episode's last observation and the reward held to
/// the contract, and a step after the end refused; all of it at the parameters of `spec` and with
/// each declared parameter at each finite end of its range (there, observations outside the
/// space's bounds are allowed).
pub fn check_registered(registry: &Registry, spec: &EnvSpec) -> Result<(), CheckFailure> {
    let mut problems = Vec::new();
    let settings = settings(registry, spec).map_err(|e| CheckFailure { problems: vec![e.to_string()] })?;
    for (k, (label, spec)) in settings.into_iter().enumerate() {
        let mut found = Vec::new();
        match registry.make_bare(&spec) {
            Ok(mut env) => {
                if let Err(failure) = check_env_within(env.as_mut(), k == 0) {
                    found.extend(failure.problems);
                }
            }
            Err(e) => found.push(format!("making it failed: {e}")),
        }
        if found.is_empty() {
            match registry.make(&spec) {
                Ok(mut env) => episodes(env.as_mut(), &mut found),
                Err(e) => found.push(format!("making it with the registry's wrappers failed: {e}")),
            }
        }
        problems.extend(found.into_iter().map(|p| if label.is_empty() { p } else { format!("{label}: {p}") }));
    }
    if problems.is_empty() { Ok(()) } else { Err(CheckFailure { problems }) }
}

/// The settings to check: `spec` as given, then each declared parameter it does not set at each
/// finite end of its range.
fn settings(registry: &Registry, spec: &EnvSpec) -> Result<Vec<(String, EnvSpec)>, EnvError> {
    let entry = registry.entry(&spec.id)?;
    let mut out = vec![(String::new(), spec.clone())];
    for param in entry.param_specs() {
        if spec.params.contains_key(param.name) {
            continue;
        }
        let ends = match param.bound {
            Bound::Within(min, max) | Bound::WholeWithin(min, max) if min < max => vec![min, max],
            Bound::Within(min, _) | Bound::WholeWithin(min, _) => vec![min],
            Bound::NonNegative => vec![0.0],
            Bound::Flag => vec![0.0, 1.0],
            Bound::Positive | Bound::Finite | Bound::Whole => Vec::new(),
        };
        for value in ends.into_iter().filter(|v| v.is_finite() && *v != param.default) {
            let at = spec.clone().with(param.name, value);
            out.push((format!("at {} = {value} (an end of its range)", param.name), at));
        }
    }
    Ok(out)
}

/// Random episodes through the registry's wrappers, each to its end, then one step past it.
fn episodes(env: &mut dyn Env, problems: &mut Vec<String>) {
    let act_space = env.action_space().clone();
    let mut rng = StdRng::seed_from_u64(1);
    for seed in EPISODE_SEEDS {
        let what = format!("reset(Some({seed}))");
        if guarded(&what, problems, || env.reset(Some(seed))).is_none() {
            return;
        }
        let mut ended = false;
        for t in 0..EPISODE_STEPS {
            let action = act_space.sample(&mut rng);
            let what = format!("the episode from seed {seed}, step({action}) number {}", t + 1);
            let Some(step) = guarded(&what, problems, || env.step(&action)) else {
                return;
            };
            if step.done() {
                ended = true;
                break;
            }
        }
        if !ended {
            continue;
        }
        let action = act_space.sample(&mut rng);
        match catch_unwind(AssertUnwindSafe(|| env.step(&action))) {
            Ok(Err(EnvError::NeedsReset { .. })) => {}
            Ok(Err(e)) => problems.push(format!("a step after the episode from seed {seed} ended failed: {e}")),
            Ok(Ok(_)) => problems.push(format!("a step after the episode from seed {seed} ended was accepted")),
            Err(panic) => problems
                .push(format!("a step after the episode from seed {seed} ended panicked: {}", panic_message(&*panic))),
        }
    }
}

/// A record of one step, compared between two seeded rollouts.
type Record = (Obs, u64, bool, bool);

/// Resets with seed 0 and takes random actions (from a fixed generator) for a few episodes.
fn rollout(
    env: &mut dyn Env,
    obs_space: &Space,
    act_space: &Space,
    within: bool,
    problems: &mut Vec<String>,
) -> Option<Vec<Record>> {
    let mut rng = StdRng::seed_from_u64(0);
    guarded("reset(Some(0))", problems, || env.reset(Some(0)))?;
    let mut records = Vec::with_capacity(ROLLOUT_STEPS);
    for t in 0..ROLLOUT_STEPS {
        let action = act_space.sample(&mut rng);
        let what = format!("step({action}) at step {t}");
        let step = guarded(&what, problems, || env.step(&action))?;
        check_obs(&what, &step.obs, obs_space, within, problems);
        if !step.reward.is_finite() {
            problems.push(format!("{what} returned the reward {}", step.reward));
        }
        if !problems.is_empty() {
            return None;
        }
        let done = step.done();
        records.push((step.obs, step.reward.to_bits(), step.terminated, step.truncated));
        if done {
            guarded("reset(None) after an episode ended", problems, || env.reset(None))?;
        }
    }
    Some(records)
}

fn check_invalid_actions(env: &mut dyn Env, act_space: &Space, problems: &mut Vec<String>) {
    let invalid: Vec<(Action, &str)> = match act_space {
        Space::Discrete { n } => vec![(Action::Discrete(*n), "one past the last discrete action")],
        Space::Dict { .. } => Vec::new(),
        Space::Box { low, .. } => {
            let dim = low.len();
            let mut nan: SmallVec<[f32; 4]> = SmallVec::from_elem(0.0, dim);
            nan[0] = f32::NAN;
            vec![
                (Action::Continuous(SmallVec::from_elem(0.0, dim + 1)), "an action one element too long"),
                (Action::Continuous(nan), "an action containing NaN"),
            ]
        }
    };
    for (action, what) in invalid {
        if guarded("reset(Some(0))", problems, || env.reset(Some(0))).is_none() {
            return;
        }
        match catch_unwind(AssertUnwindSafe(|| env.step(&action))) {
            Err(panic) => problems.push(format!(
                "step({action}) ({what}) panicked ({}); return an error instead, e.g. with \
                 `self.action_space().check_action(action)?`",
                panic_message(&*panic)
            )),
            Ok(Ok(_)) => problems.push(format!(
                "step({action}) ({what}) was accepted; return an error instead, e.g. with \
                 `self.action_space().check_action(action)?`"
            )),
            Ok(Err(_)) => {}
        }
    }
}

fn check_obs(what: &str, obs: &[f32], space: &Space, within: bool, problems: &mut Vec<String>) {
    if let Some(fault) = obs_fault(obs, space.flat_dim()) {
        problems.push(format!("{what} returned an observation {fault}"));
    } else if within && !space.contains_obs(obs) {
        problems.push(format!("{what} returned {obs:?}, outside the observation space {space}"));
    }
}

/// Runs `f`; an error or a panic becomes a sentence in `problems` and `None`.
fn guarded<T>(what: &str, problems: &mut Vec<String>, f: impl FnOnce() -> Result<T, EnvError>) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            problems.push(format!("{what} failed: {e}"));
            None
        }
        Err(panic) => {
            problems.push(format!("{what} panicked: {}", panic_message(&*panic)));
            None
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
