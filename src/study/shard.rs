//! Static sharding: `--shard I/N` runs the units whose position in the plan is `I` modulo `N`.
//! The index may come from the scheduler: SLURM job arrays (`SLURM_ARRAY_TASK_ID` less
//! `SLURM_ARRAY_TASK_MIN`, and `SLURM_ARRAY_TASK_COUNT`) or Kubernetes Indexed Jobs
//! (`JOB_COMPLETION_INDEX`, with the count given as `auto/N`). Shards combine with claims: two
//! processes of one shard (a requeued task beside a slow one) still run each unit once.

use std::fmt;
use std::str::FromStr;

/// A shard that cannot be read: what was given and what is wrong.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ShardError(String);

/// One shard of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 0.
    pub index: u64,
    /// How many shards.
    pub count: u64,
}

impl Shard {
    /// Whether the unit at `position` of the plan is this shard's.
    pub fn has(&self, position: usize) -> bool {
        position as u64 % self.count == self.index
    }

    /// The shard of `auto` (SLURM's array variables) or `auto/N` (`JOB_COMPLETION_INDEX` or
    /// SLURM's task index, `N` shards), read through `var`.
    fn from_env(count: Option<u64>, var: impl Fn(&str) -> Option<String>) -> Result<Shard, ShardError> {
        let number = |name: &str| -> Result<Option<u64>, ShardError> {
            let parse = |v: String| v.trim().parse().map_err(|_| ShardError(format!("{name}={v:?} is not a number")));
            var(name).map(parse).transpose()
        };
        let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let slurm = number("SLURM_ARRAY_TASK_ID")?.map(|id| id.saturating_sub(min));
        let index = match (slurm, number("JOB_COMPLETION_INDEX")?) {
            (Some(i), _) => i,
            (None, Some(i)) => i,
            (None, None) => {
                return Err(ShardError(
                    "`auto` needs SLURM_ARRAY_TASK_ID (a SLURM job array) or JOB_COMPLETION_INDEX (a \
                            Kubernetes Indexed Job); outside them give the shard as I/N"
                        .into(),
                ));
            }
        };
        let count = match count {
            Some(n) => n,
            None => number("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
                ShardError(
                    "`auto` reads the count from SLURM_ARRAY_TASK_COUNT; with JOB_COMPLETION_INDEX write auto/N".into(),
                )
            })?,
        };
        Shard::new(index, count)
    }

    fn new(index: u64, count: u64) -> Result<Shard, ShardError> {
        if count == 0 || index >= count {
            return Err(ShardError(format!("shard {index}/{count}: the index must lie in 0..{count}")));
        }
        Ok(Shard { index, count })
    }
}

/// `I/N`, `auto` or `auto/N`.
impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Shard, ShardError> {
        Shard::parse(s, |name| std::env::var(name).ok())
    }
}

impl Shard {
    fn parse(s: &str, var: impl Fn(&str) -> Option<String>) -> Result<Shard, ShardError> {
        let err = |m: String| ShardError(m);
        let (index, count) = match s.split_once('/') {
            Some((i, n)) => (i.trim(), Some(n.trim())),
            None => (s.trim(), None),
        };
        let count = count
            .map(|n| n.parse::<u64>().map_err(|_| err(format!("shard {s:?}: {n:?} is not a number of shards"))))
            .transpose()?;
        if index == "auto" {
            return Shard::from_env(count, var).map_err(|e| err(format!("shard {s:?}: {e}")));
        }
        let index = index.parse().map_err(|_| err(format!("shard {s:?}: expected I/N, auto or auto/N")))?;
        let count = count.ok_or_else(|| err(format!("shard {s:?}: expected I/N, auto or auto/N")))?;
        Shard::new(index, count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn shards_parse_from_text_and_from_schedulers() {
        assert_eq!(Shard::parse("2/5", env(&[])), Ok(Shard { index: 2, count: 5 }));
        assert!(Shard::parse("5/5", env(&[])).is_err());
        assert!(Shard::parse("1/0", env(&[])).is_err());
        assert!(Shard::parse("x/2", env(&[])).is_err());
        assert!(Shard::parse("auto", env(&[])).unwrap_err().to_string().contains("SLURM_ARRAY_TASK_ID"));
        let slurm = [("SLURM_ARRAY_TASK_ID", "7"), ("SLURM_ARRAY_TASK_MIN", "4"), ("SLURM_ARRAY_TASK_COUNT", "6")];
        assert_eq!(Shard::parse("auto", env(&slurm)), Ok(Shard { index: 3, count: 6 }));
        let k8s = [("JOB_COMPLETION_INDEX", "3")];
        assert_eq!(Shard::parse("auto/4", env(&k8s)), Ok(Shard { index: 3, count: 4 }));
        assert!(Shard::parse("auto", env(&k8s)).unwrap_err().to_string().contains("auto/N"));
        let shard = Shard { index: 1, count: 3 };
        assert_eq!((0..7).filter(|&p| shard.has(p)).collect::<Vec<_>>(), vec![1, 4]);
    }
}
