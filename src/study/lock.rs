//! The results folder's lock: `.lock` holds the process id of the run or report writing into
//! the folder, so that a second one is refused while the first is alive.

use std::path::{Path, PathBuf};

use crate::util::FileError;

use super::StudyError;

/// Refuses a second run into the same folder while the first is alive; removed on drop.
pub struct Lock(PathBuf);

impl Lock {
    /// Takes the lock of `dir`, replacing a stale one (its process has ended).
    pub fn take(dir: &Path) -> Result<Lock, StudyError> {
        let path = dir.join(".lock");
        let pid = std::process::id();
        if let Ok(text) = std::fs::read_to_string(&path) {
            let other: u32 = text.trim().parse().unwrap_or(0);
            if other != pid && Path::new(&format!("/proc/{other}")).exists() {
                return Err(StudyError::Locked { dir: dir.to_path_buf(), pid: other });
            }
            let _ = std::fs::remove_file(&path);
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|error| StudyError::LockFile { path: path.clone(), error })?;
        std::io::Write::write_all(&mut file, pid.to_string().as_bytes()).map_err(|e| FileError::new(&path, e))?;
        Ok(Lock(path))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
