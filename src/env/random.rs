//! What acting uniformly at random scores: the floor that returns are normalised against and
//! that a target's threshold must clear.

use rand::rngs::StdRng;

use super::{Env, EnvError};

/// The most steps a random-policy episode may take before it counts as an error: an
/// environment without a time limit would otherwise never end.
pub const MAX_RANDOM_EPISODE_STEPS: usize = 1_000_000;

/// The mean return of uniformly random actions (drawn from `rng`) over one episode per seed in
/// `seeds`, accumulated in one running total. An episode that has not ended after
/// [`MAX_RANDOM_EPISODE_STEPS`] steps is an error naming `env_name`.
pub fn random_policy_return(
    env: &mut dyn Env,
    env_name: &str,
    seeds: impl IntoIterator<Item = u64>,
    rng: &mut StdRng,
) -> Result<f64, EnvError> {
    let space = env.action_space().clone();
    let (mut total, mut episodes) = (0.0, 0usize);
    for seed in seeds {
        env.reset(Some(seed))?;
        let mut steps = 0;
        loop {
            let step = env.step(&space.sample(rng))?;
            total += step.reward;
            steps += 1;
            if step.done() {
                break;
            }
            if steps >= MAX_RANDOM_EPISODE_STEPS {
                return Err(EnvError::InvalidParams {
                    env: env_name.to_string(),
                    message: format!(
                        "a random-policy episode (seed {seed}) did not end in {MAX_RANDOM_EPISODE_STEPS} steps; \
                         give the environment a time limit (`max_episode_steps`)"
                    ),
                });
            }
        }
        episodes += 1;
    }
    Ok(total / episodes.max(1) as f64)
}
