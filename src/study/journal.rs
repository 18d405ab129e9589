//! The journal of a results folder: `journal/<host>-<pid>-<token>.log`, one file per process
//! (appending to a shared file is not atomic on network filesystems), one line per event:
//! `<unix seconds> <event> <unit> [detail]`. Events: `claimed`, `resuming` (from a preemption
//! checkpoint, detail: its step), `recorded` (detail: the seconds the unit took), `stopped`
//! (Ctrl-C or a time limit; a checkpoint was saved), `lost` (another process took the claim
//! over), `duplicate` (another process recorded the unit first). `headstart status` reads it;
//! the crash tests check with it that no recorded unit ran again.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::util::FileError;

use super::claim::Owner;

/// The folder of the journal files.
pub const DIR: &str = "journal";

/// This process's journal file.
pub struct Journal {
    file: Mutex<std::fs::File>,
    path: PathBuf,
}

impl Journal {
    /// Opens (creates) the journal of `owner` in the results folder `out`.
    pub fn open(out: &Path, owner: &Owner) -> Result<Journal, FileError> {
        let dir = out.join(DIR);
        std::fs::create_dir_all(&dir).map_err(|e| FileError::new(&dir, e))?;
        let path = dir.join(format!("{}-{}-{}.log", owner.host, owner.pid, owner.token));
        let file =
            std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| FileError::new(&path, e))?;
        Ok(Journal { file: Mutex::new(file), path })
    }

    /// Appends one event; `unit` is the unit's record path relative to the results folder.
    pub fn write(&self, event: &str, unit: &str, detail: impl std::fmt::Display) -> Result<(), FileError> {
        let now = std::time::SystemTime::now().duration_since(std::time::SystemTime::UNIX_EPOCH).unwrap_or_default();
        let line = format!("{:.6} {event} {unit} {detail}\n", now.as_secs_f64());
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(line.as_bytes()).map_err(|e| FileError::new(&self.path, e))
    }
}

/// One journal line.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The journal file's name: which process wrote it.
    pub process: String,
    /// Seconds since the Unix epoch (to the microsecond).
    pub time: f64,
    /// The event.
    pub event: String,
    /// The unit's record path, relative to the results folder.
    pub unit: String,
    /// The rest of the line.
    pub detail: String,
}

/// Every journal line of a results folder, by time (lines that do not parse, such as the last
/// one of a process killed while writing it, are skipped).
pub fn read(out: &Path) -> Vec<Entry> {
    let mut entries = Vec::new();
    let Ok(files) = std::fs::read_dir(out.join(DIR)) else { return entries };
    for file in files.flatten() {
        let process = file.file_name().to_string_lossy().trim_end_matches(".log").to_string();
        let Ok(text) = std::fs::read_to_string(file.path()) else { continue };
        for line in text.lines() {
            let mut parts = line.splitn(4, ' ');
            let (Some(time), Some(event), Some(unit)) = (parts.next(), parts.next(), parts.next()) else { continue };
            let Ok(time) = time.parse() else { continue };
            let detail = parts.next().unwrap_or("").to_string();
            entries.push(Entry { process: process.clone(), time, event: event.into(), unit: unit.into(), detail });
        }
    }
    entries.sort_by(|a, b| a.time.total_cmp(&b.time));
    entries
}
