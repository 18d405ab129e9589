//! A results folder on a full disk and on a read-only filesystem (a small tmpfs, mounted here:
//! the test needs root and says so when it skips): a clear error naming the file and the
//! system's reason, no panic, nothing already written lost or changed, no temporary file left,
//! and a later run on a healthy disk ends as an uninterrupted one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_headstart");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn headstart(args: &[&str]) -> Output {
    Command::new(BIN).args(args).current_dir(root()).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Every file under `dir`, with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() { stack.push(p) } else { out.push((p.clone(), std::fs::read(&p).unwrap())) }
        }
    }
    out.sort();
    out
}

/// Every file of `kept` is still there with the same bytes.
fn assert_unchanged(out: &Path, kept: &[(PathBuf, Vec<u8>)]) {
    let now = snapshot(&out.join("units"));
    for (path, bytes) in kept {
        let same = now.iter().any(|(p, b)| p == path && b == bytes);
        assert!(same, "{} changed or vanished", path.display());
    }
}

struct Mount(PathBuf);

impl Mount {
    /// A tmpfs of `size` at a fresh folder, or why not.
    fn tmpfs(size: &str) -> Result<Mount, String> {
        let dir = std::env::temp_dir().join(format!("headstart-storage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(&dir).output();
        match out {
            Ok(o) if o.status.success() => Ok(Mount(dir)),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn remount(&self, options: &str) {
        let o = Command::new("mount").args(["-o", &format!("remount,{options}")]).arg(&self.0).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_full_disk_and_a_read_only_folder_are_clear_errors_that_lose_nothing() {
    let mount = match Mount::tmpfs("2m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED: mounting a small tmpfs needs root ({why})");
            return;
        }
    };
    let reference = std::env::temp_dir().join(format!("headstart-storage-ref-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&reference);
    let r = headstart(&["run", "experiments/smoke.ron", "--out", reference.to_str().unwrap(), "-q"]);
    assert!(r.status.success(), "{}", text(&r));

    let out = mount.0.join("smoke");
    let out_s = out.to_str().unwrap();
    // Half of the units on a healthy disk.
    let first = headstart(&["run", "experiments/smoke.ron", "--out", out_s, "-q", "--shard", "0/2"]);
    assert!(first.status.success(), "{}", text(&first));
    let kept = snapshot(&out.join("units"));
    assert_eq!(kept.iter().filter(|(p, _)| p.extension().is_some_and(|e| e == "ron")).count(), 3);

    // The disk fills up: the other half fails with the file and the reason, and nothing written
    // before changes.
    let filler = mount.0.join("filler");
    let _ = Command::new("dd").arg("if=/dev/zero").arg(format!("of={}", filler.display())).arg("bs=64k").output();
    let full = headstart(&["run", "experiments/smoke.ron", "--out", out_s, "-q", "--shard", "1/2"]);
    let message = text(&full);
    assert_eq!(full.status.code(), Some(1), "{message}");
    assert!(message.contains("No space left on device") && message.contains(out_s), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    eprintln!("full disk: {}", message.trim());
    let after: Vec<_> =
        snapshot(&out.join("units")).into_iter().filter(|(p, _)| kept.iter().any(|(k, _)| k == p)).collect();
    assert_eq!(after, kept, "records written before the disk filled changed");
    let leftovers: Vec<_> = snapshot(&out).into_iter().filter(|(p, _)| p.to_string_lossy().ends_with(".tmp")).collect();
    assert!(leftovers.is_empty(), "temporary files left: {:?}", leftovers.iter().map(|l| &l.0).collect::<Vec<_>>());

    // Read-only: a clear error too; `status` still reads the folder.
    std::fs::remove_file(&filler).unwrap();
    mount.remount("ro");
    let ro = headstart(&["run", "experiments/smoke.ron", "--out", out_s, "-q"]);
    let message = text(&ro);
    assert_eq!(ro.status.code(), Some(1), "{message}");
    assert!(message.contains("Read-only file system") && message.contains(out_s), "{message}");
    eprintln!("read-only: {}", message.trim());
    let report = headstart(&["report", out_s]);
    assert!(text(&report).contains("Read-only file system"), "{}", text(&report));
    let status = headstart(&["status", out_s]);
    assert!(status.status.success() && text(&status).contains("smoke: 6 units: 3 finished"), "{}", text(&status));
    assert_unchanged(&out, &kept);

    // Writable again: the run ends as the uninterrupted one did.
    mount.remount("rw");
    let done = headstart(&["run", "experiments/smoke.ron", "--out", out_s, "-q"]);
    assert!(done.status.success(), "{}", text(&done));
    for file in ["summary.json", "evaluations.csv"] {
        assert!(
            std::fs::read(out.join(file)).unwrap() == std::fs::read(reference.join(file)).unwrap(),
            "{file} differs"
        );
    }
    let _ = std::fs::remove_dir_all(&reference);
}
