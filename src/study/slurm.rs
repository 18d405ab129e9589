//! The SLURM jobs of a study, as sbatch scripts: a `prepare` job (the results folder and the
//! sources, pretrained once), a job array over the units (`--shard auto`: task `i` of `N` runs
//! the units at positions `i mod N`; claims keep a requeued task from running a unit twice), and
//! a `report` job that waits for the array (`afterok`). Each script `exec`s headstart, so that
//! SLURM's warning signal (`--signal=B:TERM@120`, two minutes before the time limit) reaches it:
//! the units in flight save a checkpoint and a requeued or resubmitted task continues them.
//!
//! A Kubernetes Indexed Job is the same array: `completions: N`, `parallelism: K`, the command
//! of [`SlurmJobs::units`] with `--shard auto/N` (the index comes from `JOB_COMPLETION_INDEX`),
//! the results folder on a shared volume, and the prepare and report commands as a Job before
//! and after it.

use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The largest array SLURM accepts by default (`MaxArraySize` is 1001).
pub const MAX_ARRAY: usize = 1000;

/// What the scripts run and how.
#[derive(Clone, Debug, PartialEq)]
pub struct SlurmOptions {
    /// The study's name (for job names).
    pub name: String,
    /// The headstart binary, as the compute nodes see it.
    pub exe: PathBuf,
    /// The experiment file.
    pub file: PathBuf,
    /// The results folder, on a filesystem the nodes share.
    pub out: PathBuf,
    /// The working folder of the jobs (relative paths in the experiment file are relative to it).
    pub workdir: PathBuf,
    /// The study's units.
    pub units: usize,
    /// Array tasks run at once (`%K`).
    pub array_parallel: Option<usize>,
    /// The time limit of each job (`--time`).
    pub time: Option<String>,
    /// The partition.
    pub partition: Option<String>,
    /// Further `#SBATCH` lines (`--account=...`, `--qos=...`).
    pub extra: Vec<String>,
    /// The least seconds between two checkpoints of a unit.
    pub checkpoint_every: u64,
    /// Seconds after which a silent claim is taken over.
    pub claim_timeout: u64,
}

/// The three scripts.
#[derive(Clone, Debug, PartialEq)]
pub struct SlurmJobs {
    /// Sets up the folder and pretrains the sources.
    pub prepare: String,
    /// The array over the units.
    pub units: String,
    /// Writes the summary and report once the array succeeded.
    pub report: String,
    /// Tasks in the array.
    pub tasks: usize,
}

fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

impl SlurmOptions {
    fn header(&self, job: &str, log: &str) -> String {
        let mut s = String::from("#!/bin/bash\n");
        let _ = writeln!(s, "#SBATCH --job-name=headstart-{}-{job}", crate::util::file_safe(&self.name));
        let _ = writeln!(s, "#SBATCH --output={}", self.out.join("slurm").join(log).display());
        let _ = writeln!(s, "#SBATCH --chdir={}", self.workdir.display());
        let _ = writeln!(s, "#SBATCH --ntasks=1");
        let _ = writeln!(s, "#SBATCH --cpus-per-task=1");
        if let Some(time) = &self.time {
            let _ = writeln!(s, "#SBATCH --time={time}");
        }
        if let Some(partition) = &self.partition {
            let _ = writeln!(s, "#SBATCH --partition={partition}");
        }
        for line in &self.extra {
            let _ = writeln!(s, "#SBATCH {line}");
        }
        s
    }

    /// The scripts.
    pub fn scripts(&self) -> SlurmJobs {
        let (exe, file, out) = (quote(&self.exe), quote(&self.file), quote(&self.out));
        let tasks = self.units.clamp(1, MAX_ARRAY);
        let mut prepare = self.header("prepare", "prepare-%j.out");
        let _ = writeln!(prepare, "set -eu\nexec {exe} prepare {file} --out {out}");
        let mut units = self.header("units", "units-%A_%a.out");
        let parallel = self.array_parallel.map(|k| format!("%{k}")).unwrap_or_default();
        let _ = writeln!(units, "#SBATCH --array=0-{}{parallel}", tasks - 1);
        let _ = writeln!(units, "#SBATCH --requeue\n#SBATCH --signal=B:TERM@120");
        let _ = writeln!(
            units,
            "set -eu\nexec {exe} run {file} --out {out} --shard auto --jobs 1 --no-summary --quiet \
             --checkpoint-every {} --claim-timeout {}",
            self.checkpoint_every, self.claim_timeout
        );
        let mut report = self.header("report", "report-%j.out");
        let _ = writeln!(report, "set -eu\nexec {exe} report {out}");
        SlurmJobs { prepare, units, report, tasks }
    }
}
