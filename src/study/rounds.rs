//! A guarded study's run ([`super::guard`]): units trained look by look. A unit is run to its
//! next look only once its target's previous look is decided, and pauses there (a preemption
//! checkpoint); a look is decided, by whichever process sees it first, once every unit of its
//! target has reached it; a strategy stopped at a look gets its records (`Stopped`) from the
//! checkpoints its units paused at, and trains no further. Decisions are functions of the
//! units' evaluations (records and checkpoints), so every process of a distributed run reaches
//! the same ones, and a process killed at any moment loses at most the work since its units'
//! last checkpoints. Each decided look is also written to `guard/<target>/look<k>.ron` once, for
//! the reader.
//!
//! Processes wait for each other at the looks: one that has nothing to run while other
//! processes hold units polls until they pause (a dead process's claims go stale and are taken
//! over). Under a guard every process runs any unit, its shard's first: shards run one after
//! another would otherwise wait on each other at the first look.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rayon::prelude::*;

use super::StudyError;
use super::claim::{Claimer, publish_once};
use super::guard::{self, Looks};
use super::journal::Journal;
use super::records::read_units;
use super::resume::{peek, resume_path};
use super::unit::{Claimed, Unit, UnitContext, record_stopped, run_claimed};
use crate::util::to_ron;

/// How long a process with nothing to run waits before looking again.
const POLL: Duration = Duration::from_millis(500);

/// A guarded run's units and what running them needs.
pub struct Rounds<'a, 'u> {
    /// Every unit of the study, in plan order.
    pub all: &'a [Unit<'u>],
    /// This process's shard of them (run first).
    pub mine: &'a [&'a Unit<'u>],
    /// What running a unit needs.
    pub cx: &'a UnitContext<'a>,
    /// Claims, the journal and the results folder.
    pub io: (&'a Claimer, &'a Journal, &'a Path),
    /// The guard's looks.
    pub looks: &'a Looks,
    /// Source checkpoints (target seed `k` used source `k mod K`).
    pub sources: usize,
}

/// What to do with a unit now.
enum Step {
    /// Train it to this look's step (`None`: to the budget).
    Train(Option<u64>),
    /// Its strategy was stopped at this step: record it.
    Record(u64),
}

impl Rounds<'_, '_> {
    /// Runs every unit look by look until each has a record, a stop is asked for, or a unit's
    /// error (`failed`); `handle` counts and logs what became of each unit and says whether it
    /// moved.
    pub fn run(
        &self,
        pool: &rayon::ThreadPool,
        bar: &indicatif::ProgressBar,
        handle: &(dyn Fn(Result<Claimed, StudyError>) -> bool + Sync),
        failed: impl Fn() -> bool,
    ) -> Result<(), StudyError> {
        let (claimer, journal, out) = self.io;
        let stop = self.cx.stop;
        while !stop.load(Ordering::SeqCst) && !failed() {
            let records = read_units(out)?;
            bar.set_position(self.mine.iter().filter(|u| u.path.exists()).count() as u64);
            if self.all.iter().all(|u| u.path.exists()) {
                return Ok(());
            }
            let plan = self.plan(&records)?;
            let moved: Vec<bool> = pool.install(|| {
                plan.par_iter()
                    .map(|(unit, step)| {
                        if stop.load(Ordering::SeqCst) {
                            return false;
                        }
                        handle(match step {
                            Step::Train(until) => run_claimed(unit, self.cx, (claimer, journal, out), *until),
                            Step::Record(at) => record_stopped(unit, self.cx, (claimer, journal, out), *at),
                        })
                    })
                    .collect()
            });
            if !moved.iter().any(|m| *m) {
                std::thread::sleep(POLL);
            }
        }
        Ok(())
    }

    /// Decides the looks the units have reached (writing each one's file once) and returns what
    /// to do with each unit without a record whose next step is decided.
    fn plan(&self, records: &[super::records::UnitResult]) -> Result<Vec<(&Unit<'_>, Step)>, StudyError> {
        let (_, _, out) = self.io;
        let experiment = self.cx.experiment;
        let listed = self.all.iter().map(|u| (&u.target.target.key, &u.arm.id, u.seed, u.path.clone()));
        let units = guard::in_flight(records, listed);
        let mut targets = Vec::new();
        for unit in self.all {
            let info = unit.target;
            if targets.iter().any(|(key, _, _)| *key == &info.target.key) {
                continue;
            }
            let looks = guard::looks(experiment, self.looks, info, &units, self.sources);
            for look in &looks {
                let path = out.join("guard").join(info.target.key.file_name()).join(format!("look{}.ron", look.look));
                if !path.exists() {
                    std::fs::create_dir_all(path.parent().expect("a look's file has a folder"))
                        .map_err(|e| crate::util::FileError::new(&path, e))?;
                    publish_once(&path, to_ron(look))?;
                }
            }
            let stopped = guard::stopped(&looks);
            // With every strategy stopped, scratch has no look left to wait for.
            let decided = if stopped.len() == experiment.strategy_arms().len() { self.looks.steps.len() } else { looks.len() };
            targets.push((&info.target.key, decided, stopped));
        }
        let mut plan = Vec::new();
        for unit in self.order() {
            if unit.path.exists() {
                continue;
            }
            let (_, decided, stopped) =
                targets.iter().find(|(key, _, _)| *key == &unit.target.target.key).expect("every target was looked at");
            if let Some((_, at)) = stopped.iter().find(|(arm, _)| arm == &unit.arm.id) {
                plan.push((unit, Step::Record(*at)));
                continue;
            }
            let last = peek(&resume_path(&unit.path)).and_then(|p| p.evals.last().map(|e| e.nominal)).unwrap_or(0);
            let reached = self.looks.steps.iter().filter(|&&s| last >= s).count();
            // A unit at the last look waits for its decision; once every look is decided (or every
            // strategy stopped), one whose checkpoint is already there (a process killed between
            // its last evaluation and its record) is run to its record.
            let last_look = self.looks.steps.len();
            if reached <= *decided && (reached < last_look || *decided == last_look) {
                let until = (reached + 1 < self.looks.steps.len()).then(|| self.looks.steps[reached]);
                plan.push((unit, Step::Train(until)));
            }
        }
        Ok(plan)
    }

    /// This process's units first, then the others.
    fn order(&self) -> Vec<&Unit<'_>> {
        let mut order: Vec<&Unit<'_>> = self.mine.to_vec();
        order.extend(self.all.iter().filter(|u| !self.mine.iter().any(|m| std::ptr::eq(*m, *u))));
        order
    }
}
