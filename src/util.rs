//! Small helpers every layer uses: the RON dialect of headstart's files, atomic writes, file
//! errors that name their path, file-safe names and SHA-256. This module depends on nothing else
//! in the crate.

pub mod tensorboard;

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// RON as headstart writes and reads it: newtype variants unwrapped (`Ppo(n_steps: 32)`), and
/// `Option` fields without `Some(...)`.
pub fn ron_options() -> ron::Options {
    ron::Options::default().with_default_extension(
        ron::extensions::Extensions::UNWRAP_VARIANT_NEWTYPES | ron::extensions::Extensions::IMPLICIT_SOME,
    )
}

/// A value as pretty RON in headstart's dialect. The types written this way hold plain data
/// (numbers, strings, sequences, maps with string keys), which RON always serialises.
pub fn to_ron<T: Serialize + ?Sized>(value: &T) -> String {
    ron_options().to_string_pretty(value, ron::ser::PrettyConfig::default()).expect("plain data serialises to RON")
}

/// A file operation that failed, with the path it failed on. Its message holds the system's
/// error, which is therefore not also its `source()` (a printed chain would say it twice).
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", path.display())]
pub struct FileError {
    /// The file or folder.
    pub path: PathBuf,
    /// What the system said.
    pub error: std::io::Error,
}

impl FileError {
    /// Wraps `source` with the path it concerns.
    pub fn new(path: &Path, error: std::io::Error) -> Self {
        FileError { path: path.to_path_buf(), error }
    }
}

/// Reads a whole text file, naming it in the error.
pub fn read_to_string(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|e| FileError::new(path, e))
}

/// Writes `bytes` to `path` through a temporary file renamed into place, creating the folder:
/// a reader sees the old file or the new one, never half of one. The temporary name is unique
/// to the host, process and call, so that writers of the same file never share one.
pub fn write_atomic(path: &Path, bytes: impl AsRef<[u8]>) -> Result<(), FileError> {
    let tmp = write_temp(path, bytes.as_ref())?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        FileError::new(path, e)
    })
}

/// Writes `bytes` (flushed to the disk) to a new temporary file beside `path`, named
/// `.<name>.<host>.<pid>.<n>.tmp`, and returns its path; the caller moves it into place. On
/// failure (a full disk, a read-only folder) nothing is left behind and the error names `path`.
pub fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf, FileError> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| FileError::new(dir, e))?;
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.{}.{n}.tmp", host(), std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()
    });
    written.map(|_| tmp.clone()).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        FileError::new(path, e)
    })
}

/// This machine's host name (file-safe), as claims and temporary names carry it.
pub fn host() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| file_safe(&gethostname::gethostname().to_string_lossy()))
}

/// `s` with every character outside `[A-Za-z0-9-=._]` replaced by `_`.
pub fn file_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || "-=._".contains(c) { c } else { '_' }).collect()
}

/// SHA-256 of a byte string, in lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The candidate closest to `name`, if one is close enough to be a plausible typo.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::normalized_damerau_levenshtein(&name.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.5)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

/// A progress bar on a terminal (elapsed time, position of `total` `what`, ETA, a message);
/// hidden when `quiet` or when stderr is not a terminal.
pub fn progress(total: u64, quiet: bool, what: &str) -> indicatif::ProgressBar {
    if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{{elapsed_precise}} [{{bar:30}}] {{human_pos}}/{{human_len}} {what}, eta {{eta}} {{msg}}"
    ))
    .expect("valid template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// A RON error with its line and column, and for an unknown field the nearest valid name.
pub fn describe_ron_error(e: &ron::error::SpannedError) -> String {
    let position = format!("line {}, column {}", e.span.start.line, e.span.start.col);
    let hint = match &e.code {
        ron::Error::NoSuchStructField { expected, found, .. } => {
            crate::util::nearest(found, expected.iter().copied()).map(|n| format!(" (did you mean `{n}`?)"))
        }
        ron::Error::NoSuchEnumVariant { expected, found, .. } => {
            crate::util::nearest(found, expected.iter().copied()).map(|n| format!(" (did you mean `{n}`?)"))
        }
        _ => None,
    };
    format!("{position}: {}{}", e.code, hint.unwrap_or_default())
}
