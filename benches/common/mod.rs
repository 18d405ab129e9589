//! Running a peer script of `../shared/peers` and reading its one-line JSON report.

use std::path::PathBuf;
use std::process::Command;

/// The Python that has the peers: `$HEADSTART_PEER_PYTHON`, or the peers' virtual environment.
fn peer_python() -> Option<PathBuf> {
    std::env::var_os("HEADSTART_PEER_PYTHON").map(PathBuf::from).or_else(|| {
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-peers/bin/python");
        venv.exists().then_some(venv)
    })
}

/// Runs `../shared/peers/{script} {args}` (or `benches/{script}` when it names a folder: the
/// project's own peers) and returns the JSON object it printed last.
pub fn run_peer(script: &str, args: &[String]) -> Result<serde_json::Value, String> {
    let python = peer_python().ok_or("no peer Python: run `make peers` or set HEADSTART_PEER_PYTHON")?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script = if script.contains('/') {
        root.join("benches").join(script)
    } else {
        root.join("../shared/peers").join(script)
    };
    if !script.exists() {
        return Err(format!("{} is missing", script.display()));
    }
    let out =
        Command::new(&python).arg(&script).args(args).output().map_err(|e| format!("{}: {e}", python.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| format!("peer printed {text:?} {}", String::from_utf8_lossy(&out.stderr)))
}
