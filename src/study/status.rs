//! Where a study stands, read from its results folder alone (as `headstart status` shows it,
//! while any number of processes run it): finished, failed, running (host, process, age,
//! step), stalled (a claim whose process stopped), interrupted (a checkpoint, no claim) and
//! pending units, and the time left, estimated from the journal.

use std::path::Path;
use std::time::Duration;

use super::claim::{ClaimInfo, DEFAULT_TIMEOUT, claim_path};
use super::plan::Folder;
use super::records::{UnitStatus, read_units};
use super::resume::{peek, resume_path};
use super::source::SourceRecord;
use super::{StudyError, guard, journal};

/// Where one unit stands.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// It has a record of a finished run.
    Finished,
    /// It has a record of a failed run.
    Failed(String),
    /// The study's guard stopped its arm at this step.
    Stopped {
        /// The step of the look.
        step: u64,
    },
    /// A live process holds its claim.
    Running {
        /// The claim's host and process (`None` while the claim file is being written).
        owner: Option<(String, u32)>,
        /// Time since the claim's last heartbeat.
        heartbeat: Duration,
        /// The step of its last checkpoint.
        step: Option<u64>,
    },
    /// Its claim's process stopped answering: the next run takes it over.
    Stalled {
        /// The claim's host and process.
        owner: Option<(String, u32)>,
        /// The step of its last checkpoint.
        step: Option<u64>,
    },
    /// Not running, with a checkpoint to continue from.
    Interrupted {
        /// The checkpoint's step.
        step: u64,
    },
    /// Not started.
    Pending,
}

/// Where a study stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    /// The experiment's name.
    pub experiment: String,
    /// Steps per unit.
    pub budget: u64,
    /// Every unit (its record path relative to the folder) and its state, in plan order.
    pub units: Vec<(String, State)>,
    /// Mean seconds a unit took, from the journal.
    pub mean_seconds: Option<f64>,
    /// Estimated time until every unit has a record, at the present number of running units.
    pub eta: Option<Duration>,
    /// With a sequential guard, per target: looks decided, looks in all, and the strategies
    /// stopped (with the step).
    pub guards: Vec<(String, usize, usize, Vec<(String, u64)>)>,
}

impl Status {
    /// How many units are in a state that `matches`.
    pub fn count(&self, matches: impl Fn(&State) -> bool) -> usize {
        self.units.iter().filter(|(_, s)| matches(s)).count()
    }
}

/// Reads where the study in `out` stands; claims older than `timeout` count as stalled.
pub fn status(out: &Path, timeout: Option<Duration>) -> Result<Status, StudyError> {
    let folder = Folder::open(out)?;
    let experiment = &folder.experiment;
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    let records = read_units(out)?;
    let mut units = Vec::new();
    for (info, arm, seed, path) in folder.units().with_paths(out) {
        let name = path.strip_prefix(out).unwrap_or(&path).display().to_string();
        let record = records.iter().find(|u| u.target == info.target.key && u.arm == arm.id && u.seed == seed);
        let step = || peek(&resume_path(&path)).map(|p| p.steps);
        let state = match (record, ClaimInfo::read(&claim_path(&path))) {
            (Some(u), _) => match &u.status {
                UnitStatus::Finished => State::Finished,
                UnitStatus::Failed(e) => State::Failed(e.clone()),
                UnitStatus::Stopped { step, .. } => State::Stopped { step: *step },
            },
            (None, Some(claim)) => {
                let owner = claim.owner.as_ref().map(|o| (o.host.clone(), o.pid));
                if claim.is_stale(timeout) {
                    State::Stalled { owner, step: step() }
                } else {
                    State::Running { owner, heartbeat: claim.age, step: step() }
                }
            }
            (None, None) => step().map_or(State::Pending, |step| State::Interrupted { step }),
        };
        units.push((name, state));
    }
    let times: Vec<f64> = journal::read(out)
        .into_iter()
        .filter(|e| e.event == "recorded")
        .filter_map(|e| e.detail.trim().parse::<f64>().ok())
        .collect();
    let mean_seconds = (!times.is_empty()).then(|| times.iter().sum::<f64>() / times.len() as f64);
    let guards = guards(out, &folder, &records)?;
    let mut status =
        Status { experiment: experiment.name.clone(), budget: experiment.budget, units, mean_seconds, eta: None, guards };
    let running = status.count(|s| matches!(s, State::Running { .. }));
    let left = status.count(|s| !matches!(s, State::Finished | State::Failed(_) | State::Stopped { .. }));
    status.eta =
        mean_seconds.filter(|_| running > 0).map(|mean| Duration::from_secs_f64(mean * left as f64 / running as f64));
    Ok(status)
}

/// Where a guarded study's looks stand per target, from its records and checkpoints (as the run
/// decides them).
fn guards(
    out: &Path,
    folder: &Folder,
    records: &[super::records::UnitResult],
) -> Result<Vec<(String, usize, usize, Vec<(String, u64)>)>, StudyError> {
    let Some(looks) = guard::Looks::of(&folder.experiment) else { return Ok(Vec::new()) };
    let sources = SourceRecord::read(out)?.map_or(1, |s| s.count());
    let listed: Vec<_> = folder.units().with_paths(out).map(|(info, arm, seed, path)| (&info.target.key, &arm.id, seed, path)).collect();
    let units = guard::in_flight(records, listed.into_iter());
    Ok(folder
        .targets
        .iter()
        .map(|info| {
            let decided = guard::looks(&folder.experiment, &looks, info, &units, sources);
            let stopped = guard::stopped(&decided).into_iter().map(|(arm, step)| (arm.to_string(), step)).collect();
            (info.target.key.to_string(), decided.len(), looks.steps.len(), stopped)
        })
        .collect())
}
