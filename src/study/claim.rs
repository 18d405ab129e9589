//! Claims: how any number of processes, on one machine or on many sharing the results folder,
//! run each unit once.
//!
//! A process claims a unit by creating `units/<target>/<arm>/seed<k>.claim` exclusively: a
//! complete temporary file hard-linked into place, which fails when the name exists, so that a
//! claim always names its owner (host, process id and a random token). While the
//! unit runs, a heartbeat thread touches the file's modification time every `timeout / 5`. A
//! claim is stale, and is taken over, when its heartbeat is older than `timeout`, or at once when
//! it names a process of this host that no longer exists (a restarted worker continues at once).
//! Taking over goes through `seed<k>.takeover`, itself created exclusively, so that of several
//! processes that find the same stale claim one replaces it. The owner's heartbeat notices a lost
//! claim (the file is gone or holds another token) and the unit stops at its next evaluation
//! without a record.
//!
//! Records are published with a hard link from a unique temporary name, which fails when the
//! record exists: a record, once written, is never replaced, and a unit that two processes ran
//! (a claim taken over from a live but silent owner) is recorded once. Both runs would have
//! written the same bytes: units are deterministic.
//!
//! What this relies on of the filesystem: hard links (and exclusive create, for the takeover
//! guard) that fail on an existing name, atomically (POSIX filesystems; NFS v3 and v4, where both
//! are single server operations), and modification times that hosts read alike: their clocks agree (NTP) to well
//! within `timeout`, and attribute caching (NFS `acregmax`, 60 s by default) is shorter than
//! it. On NFS use a timeout of several minutes (the default, 300 s, is); the dead-process rule
//! applies to processes of the same host only.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::util::{FileError, host, ron_options, to_ron};

/// The default heartbeat timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Who holds a claim: what a claim file says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The host name.
    pub host: String,
    /// The process id on that host.
    pub pid: u32,
    /// A random token, unique to the process.
    pub token: String,
    /// When the process started claiming, in seconds since the Unix epoch.
    pub since: u64,
}

impl Owner {
    /// This process.
    fn me() -> Owner {
        let mut bytes = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        Owner {
            host: host().to_string(),
            pid: std::process::id(),
            token: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            since: unix_now(),
        }
    }

    /// Whether the owner is a process of this host that has ended (gone, or a zombie that its
    /// parent has not reaped yet).
    fn is_dead_here(&self) -> bool {
        if self.host != host() || self.pid == std::process::id() || !Path::new("/proc/self").exists() {
            return false;
        }
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            // `pid (comm) state ...`: the state follows the last parenthesis.
            Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
            Err(_) => true,
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A claim file as another process sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimInfo {
    /// Its owner, when the file parses (it always does unless damaged, or written by a
    /// filesystem without hard links and a process killed while writing it).
    pub owner: Option<Owner>,
    /// Time since its last heartbeat.
    pub age: Duration,
}

impl ClaimInfo {
    /// Reads a claim file; `None` when there is none.
    pub fn read(path: &Path) -> Option<ClaimInfo> {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let owner = ron_options().from_str(&text).ok();
        Some(ClaimInfo { owner, age: SystemTime::now().duration_since(modified).unwrap_or_default() })
    }

    /// Whether it may be taken over: its heartbeat stopped `timeout` ago, or its process of this
    /// host has ended.
    pub fn is_stale(&self, timeout: Duration) -> bool {
        self.age > timeout || self.owner.as_ref().is_some_and(Owner::is_dead_here)
    }
}

/// The claims of this process, with their heartbeat.
pub struct Claimer {
    me: Owner,
    timeout: Duration,
    shared: Arc<Shared>,
    /// Dropped with the claimer, which ends the heartbeat thread at once.
    _alive: std::sync::mpsc::Sender<()>,
}

#[derive(Default)]
struct Shared {
    held: Mutex<HashSet<PathBuf>>,
    lost: Mutex<HashSet<PathBuf>>,
}

impl Shared {
    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<PathBuf>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lost(&self) -> std::sync::MutexGuard<'_, HashSet<PathBuf>> {
        self.lost.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Claimer {
    /// Claims of this process that go stale `timeout` after their last heartbeat.
    pub fn new(timeout: Duration) -> Claimer {
        let shared = Arc::new(Shared::default());
        let me = Owner::me();
        let beat = (timeout / 5).clamp(Duration::from_millis(200), Duration::from_secs(60));
        let (thread_shared, token) = (shared.clone(), me.token.clone());
        let (alive, dropped) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = dropped.recv_timeout(beat) {
                let held: Vec<PathBuf> = thread_shared.held().iter().cloned().collect();
                for path in held {
                    if !heartbeat(&path, &token) {
                        thread_shared.held().remove(&path);
                        thread_shared.lost().insert(path);
                    }
                }
            }
        });
        Claimer { me, timeout, shared, _alive: alive }
    }

    /// This process as claims name it.
    pub fn owner(&self) -> &Owner {
        &self.me
    }

    /// Claims `path` (a `.claim` file): `Some` when this process now holds it, `None` when a
    /// live process does. A stale claim is taken over.
    pub fn try_claim(&self, path: &Path) -> Result<Option<Claim<'_>>, FileError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| FileError::new(dir, e))?;
        }
        for _ in 0..2 {
            match create_with(path, to_ron(&self.me).as_bytes()) {
                Ok(()) => {
                    self.shared.held().insert(path.to_path_buf());
                    return Ok(Some(Claim { path: path.to_path_buf(), claimer: self }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if !self.take_over(path)? {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(FileError::new(path, e)),
            }
        }
        Ok(None)
    }

    /// Removes the claim at `path` if it is stale, under the exclusive `.takeover` file; true
    /// when it was removed (the caller then claims it as if new).
    fn take_over(&self, path: &Path) -> Result<bool, FileError> {
        let Some(info) = ClaimInfo::read(path) else { return Ok(true) };
        if !info.is_stale(self.timeout) {
            return Ok(false);
        }
        let guard = path.with_extension("takeover");
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&guard) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Another process is taking it over; a takeover that died is cleared later.
                if ClaimInfo::read(&guard).is_some_and(|g| g.age > self.timeout) {
                    let _ = std::fs::remove_file(&guard);
                }
                return Ok(false);
            }
            Err(e) => return Err(FileError::new(&guard, e)),
        }
        // Under the guard: the claim is still the stale one that was read.
        let removed = match ClaimInfo::read(path) {
            Some(now) if now.owner == info.owner && now.is_stale(self.timeout) => {
                std::fs::remove_file(path).map_err(|e| FileError::new(path, e)).map(|_| true)
            }
            Some(_) => Ok(false),
            None => Ok(true),
        };
        let _ = std::fs::remove_file(&guard);
        removed
    }
}

/// Creates `path` holding `bytes`, failing with `AlreadyExists` when it exists: a complete
/// temporary file hard-linked into place, so that no process ever sees a claim without its owner
/// (not even one killed while claiming). Where hard links are not supported, an exclusive create
/// and a write, removed again if the write fails.
fn create_with(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = crate::util::write_temp(path, bytes).map_err(|e| e.error)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
            file.write_all(bytes).and_then(|_| file.sync_all()).inspect_err(|_| {
                let _ = std::fs::remove_file(path);
            })
        }
        linked => linked,
    }
}

/// Touches the claim file at `path` if it still holds `token`; false when the claim was lost.
fn heartbeat(path: &Path, token: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else { return false };
    match ron_options().from_str::<Owner>(&text) {
        Ok(owner) if owner.token == token => {}
        _ => return false,
    }
    if let Ok(file) = std::fs::OpenOptions::new().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
    true
}

/// A claim this process holds; released (its file removed) when dropped.
pub struct Claim<'c> {
    path: PathBuf,
    claimer: &'c Claimer,
}

impl Claim<'_> {
    /// Whether another process took the claim over (this one's heartbeat was too late).
    pub fn is_lost(&self) -> bool {
        self.claimer.shared.lost().contains(&self.path)
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let shared = &self.claimer.shared;
        shared.held().remove(&self.path);
        if !shared.lost().remove(&self.path) && heartbeat(&self.path, &self.claimer.me.token) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Where a unit's claim lives, beside its record.
pub fn claim_path(record: &Path) -> PathBuf {
    record.with_extension("claim")
}

/// Publishes `bytes` at `path` unless a file is there already: written under a unique temporary
/// name and hard-linked into place, which fails on an existing name. False when `path` existed.
pub fn publish_once(path: &Path, bytes: impl AsRef<[u8]>) -> Result<bool, FileError> {
    let tmp = crate::util::write_temp(path, bytes.as_ref())?;
    let linked = match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        // Filesystems without hard links: a rename, unless the record appeared meanwhile.
        Err(_) if !path.exists() => std::fs::rename(&tmp, path).map(|_| true),
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_file(&tmp);
    linked.map_err(|e| FileError::new(path, e))
}
