//! A study beyond one process, by test: processes killed with SIGKILL at random moments and
//! restarted, several processes on one results folder, units killed in the middle of their
//! training. Every unit is recorded exactly once, no recorded unit runs again, and records and
//! summaries are byte-identical to an uninterrupted single-process run.
//!
//! `HEADSTART_CRASH_TRIALS` sets the number of kill-and-restart trials (3 here; `make
//! crash-test` runs 20 and prints the table the README reports).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const BIN: &str = env!("CARGO_BIN_EXE_headstart");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("headstart-distributed-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes an experiment file transferring from the shipped policy `policy`.
fn experiment(dir: &Path, name: &str, policy: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.ron"));
    let policy = root().join("policies").join(policy);
    let text = format!("(version: 1, name: {name:?}, source: Policy({:?}), resamples: 200, {body})", policy.display());
    std::fs::write(&path, text).unwrap();
    path
}

/// The study of the multi-process tests: 9 units of a second or two.
fn cartpole(dir: &Path) -> PathBuf {
    experiment(
        dir,
        "crash",
        "cartpole-ppo",
        r#"targets: [Env(id: "CartPole-v1", params: {"length": 0.65})],
           strategies: [(name: "finetune"), (name: "freeze", freeze: ["actor.trunk"], freeze_until: 1024)],
           seeds: 3, budget: 3072, eval: (every: 512, episodes: 2)"#,
    )
}

fn start(file: &Path, out: &Path, extra: &[&str]) -> Child {
    Command::new(BIN)
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(["--quiet", "--jobs", "1", "--checkpoint-every", "0"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start headstart")
}

/// Waits for `child`; panics with its stderr when it failed.
fn finish(child: Child) {
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "headstart failed: {}", String::from_utf8_lossy(&output.stderr));
}

fn kill(mut child: Child) {
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
}

/// Every file under `dir/units` that a finished unit leaves (records and curves), by path.
fn records(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.join("units")];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "ron" || e == "csv") {
                out.insert(path.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// The reference: one uninterrupted process.
fn reference(file: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("reference");
    finish(start(file, &out, &[]));
    assert!(out.join("summary.json").exists());
    out
}

/// Journal lines `(time, process, event, unit)` of a results folder, in time order.
fn journal(out: &Path) -> Vec<(f64, String, String, String)> {
    let mut lines = Vec::new();
    for file in std::fs::read_dir(out.join("journal")).unwrap().flatten() {
        let process = file.file_name().to_string_lossy().to_string();
        for line in std::fs::read_to_string(file.path()).unwrap().lines() {
            let parts: Vec<&str> = line.splitn(4, ' ').collect();
            if let [time, event, unit, ..] = parts[..] {
                lines.push((time.parse::<f64>().unwrap(), process.clone(), event.to_string(), unit.to_string()));
            }
        }
    }
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    lines
}

/// Every unit has a record, none was recorded twice or ran again once recorded (a process
/// killed between publishing a record and its journal line leaves the line out, hence `<=`).
fn check_journal(out: &Path, units: usize) {
    let mut recorded: BTreeMap<String, usize> = BTreeMap::new();
    for (_, process, event, unit) in journal(out) {
        match event.as_str() {
            "recorded" => *recorded.entry(unit).or_default() += 1,
            "claimed" => assert!(!recorded.contains_key(&unit), "{unit} claimed by {process} after it was recorded"),
            "duplicate" => panic!("{unit} ran to the end twice ({process} found it recorded)"),
            _ => {}
        }
    }
    assert!(recorded.len() <= units && recorded.values().all(|&n| n == 1), "records: {recorded:?}");
    assert_eq!(records(out).keys().filter(|p| p.extension().is_some_and(|e| e == "ron")).count(), units);
}

/// Asserts that `out` finished with the reference's records and summary, byte for byte.
fn check_same(reference: &Path, out: &Path) {
    let (a, b) = (records(reference), records(out));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (path, bytes) in &a {
        assert!(b[path] == *bytes, "{} differs from the uninterrupted run's", path.display());
    }
    for file in ["summary.json", "evaluations.csv"] {
        assert!(
            std::fs::read(reference.join(file)).unwrap() == std::fs::read(out.join(file)).unwrap(),
            "{file} differs"
        );
    }
}

/// Runs `file` into `out` with `processes` processes, killing (SIGKILL) `victims` of them at
/// random moments and restarting them, `rounds` times; then lets every process finish and
/// writes the report. Returns how many kills hit a running study.
fn chaos(file: &Path, out: &Path, processes: usize, victims: usize, rounds: usize, rng: &mut StdRng) -> usize {
    let mut children: Vec<Child> = (0..processes).map(|_| start(file, out, &["--no-summary"])).collect();
    let mut kills = 0;
    for _ in 0..rounds {
        std::thread::sleep(Duration::from_millis(rng.random_range(300..2500)));
        for _ in 0..victims {
            let i = rng.random_range(0..children.len());
            let finished = children[i].try_wait().unwrap().is_some();
            kill(children.swap_remove(i));
            kills += usize::from(!finished);
            // What was recorded when the process died stays as it is.
            let before = records(out);
            children.push(start(file, out, &["--no-summary"]));
            for (path, bytes) in before {
                if path.extension().is_some_and(|e| e == "ron") {
                    assert!(std::fs::read(out.join(&path)).unwrap() == bytes, "{} changed", path.display());
                }
            }
        }
    }
    for child in children {
        finish(child);
    }
    let report = Command::new(BIN).arg("report").arg(out).output().unwrap();
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    kills
}

#[test]
fn four_workers_on_one_folder_two_killed_and_restarted_record_each_unit_once() {
    let dir = tmp("workers");
    let file = cartpole(&dir);
    let reference = reference(&file, &dir);
    let out = dir.join("four");
    let kills = chaos(&file, &out, 4, 2, 1, &mut StdRng::seed_from_u64(4));
    check_journal(&out, 9);
    check_same(&reference, &out);
    assert!(!out.join("units").read_dir().unwrap().flatten().any(|t| {
        t.path()
            .read_dir()
            .unwrap()
            .flatten()
            .any(|a| a.path().read_dir().unwrap().flatten().any(|f| f.path().extension().is_some_and(|e| e == "claim")))
    }));
    eprintln!("4 workers, {kills} killed while running: records and summary identical");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kill_9_at_random_moments_then_restart_loses_nothing_and_changes_nothing() {
    let trials: usize = std::env::var("HEADSTART_CRASH_TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(3);
    let dir = tmp("trials");
    let file = cartpole(&dir);
    let reference = reference(&file, &dir);
    let mut rng = StdRng::seed_from_u64(20);
    let mut table = Vec::new();
    for trial in 0..trials {
        // Odd trials: one process; even ones: three.
        let processes = if trial % 2 == 0 { 1 } else { 3 };
        let out = dir.join(format!("trial{trial}"));
        let started = Instant::now();
        let kills = chaos(&file, &out, processes, 1, 1, &mut rng);
        check_journal(&out, 9);
        check_same(&reference, &out);
        let resumed = journal(&out).iter().filter(|l| l.2 == "resuming").count();
        table.push(format!(
            "| {trial} | {processes} | {kills} | {resumed} | identical | {:.1} s |",
            started.elapsed().as_secs_f64()
        ));
        let _ = std::fs::remove_dir_all(&out);
    }
    eprintln!("| trial | processes | killed while running | units resumed from a checkpoint | summary | time |");
    eprintln!("|---|---|---|---|---|---|\n{}", table.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `file` into `out`, killing the process (SIGKILL) soon after each new checkpoint, until the
/// study completes; returns the kills.
fn kill_after_checkpoints(file: &Path, out: &Path, rng: &mut StdRng) -> usize {
    let mut kills = 0;
    loop {
        let started = SystemTime::now();
        let mut child = start(file, out, &[]);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "headstart failed");
                return kills;
            }
            let fresh = walk(&out.join("units")).into_iter().any(|p| {
                p.extension().is_some_and(|e| e == "resume")
                    && std::fs::metadata(&p).and_then(|m| m.modified()).is_ok_and(|m| m > started)
            });
            if fresh && kills < 12 {
                std::thread::sleep(Duration::from_millis(rng.random_range(0..150)));
                kill(child);
                kills += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

#[test]
fn units_killed_in_the_middle_of_training_resume_to_the_same_records() {
    let dir = tmp("resume");
    let studies = [
        (
            "resume-ppo",
            "cartpole-ppo",
            r#"targets: [Env(id: "CartPole-v1", params: {"length": 0.65})],
               strategies: [(name: "freeze", freeze: ["actor.trunk"], freeze_until: 2048),
                            (name: "kickstart", distill: (weight: 1.0, decay_steps: 3000), l2_init: 0.001)],
               seeds: 1, budget: 24576, eval: (every: 2048, episodes: 2), log: (tensorboard: true)"#,
        ),
        (
            "resume-dqn",
            "mountaincar-dqn",
            r#"targets: [Env(id: "MountainCar-v0", params: {"force": 0.0012})],
               strategies: [(name: "freeze", freeze: ["q.trunk"], freeze_until: 1500),
                            (name: "l2sp", l2_init: 0.01, reset: (replay: false))],
               seeds: 1, budget: 3000, eval: (every: 500, episodes: 2), threshold: -150.0"#,
        ),
        (
            "resume-sac",
            "pendulum-sac",
            r#"targets: [Env(id: "Pendulum-v1", params: {"m": 1.2})],
               strategies: [(name: "freeze", freeze: ["actor.trunk"], freeze_until: 150), (name: "l2sp", l2_init: 0.01)],
               seeds: 1, budget: 300, eval: (every: 50, episodes: 1), threshold: -200.0"#,
        ),
    ];
    let mut rng = StdRng::seed_from_u64(9);
    for (name, policy, body) in studies {
        let file = experiment(&dir, name, policy, body);
        let reference = reference(&file, &dir.join(name));
        let out = dir.join(name).join("killed");
        let kills = kill_after_checkpoints(&file, &out, &mut rng);
        let resumed = journal(&out).iter().filter(|l| l.2 == "resuming").count();
        assert!(kills >= 3 && resumed >= 3, "{name}: {kills} kills, {resumed} resumptions");
        check_same(&reference, &out);
        // The PPO study logs to TensorBoard: after the kills every unit's run still holds each
        // of its evaluations (those between a checkpoint and a kill twice, alike).
        #[cfg(feature = "python")]
        if name == "resume-ppo" {
            let scalars = common::tensorboard_scalars(&out.join("tensorboard"));
            for (run, points) in common::evaluations_by_unit(&out) {
                let mut logged = scalars[&run]["eval/mean_reward"].clone();
                logged.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
                logged.dedup();
                assert_eq!(logged, points, "{name} {run}: TensorBoard's evaluations");
            }
        }
        eprintln!("{name}: killed {kills} times after checkpoints, resumed {resumed} times: identical records");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn worker_processes_and_static_shards_end_as_one_process_does() {
    let dir = tmp("shards");
    let file = cartpole(&dir);
    let reference = reference(&file, &dir);
    // `run --workers 2`: the sources prepared here, the units in two processes, the report here.
    let workers = dir.join("workers");
    let run =
        Command::new(BIN).arg("run").arg(&file).arg("--out").arg(&workers).args(["--workers", "2", "-q"]).output();
    let run = run.unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    check_journal(&workers, 9);
    check_same(&reference, &workers);
    // Three shards, one after another, each leaving the others' units alone; then the report.
    let shards = dir.join("shards");
    for i in 0..3 {
        finish(start(&file, &shards, &["--shard", &format!("{i}/3"), "--no-summary"]));
        let recorded = records(&shards).keys().filter(|p| p.extension().is_some_and(|e| e == "ron")).count();
        assert_eq!(recorded, 3 * (i + 1), "shard {i}/3");
    }
    let report = Command::new(BIN).arg("report").arg(&shards).output().unwrap();
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    check_same(&reference, &shards);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The swapped-actions case under a guard (Pocock-like spending, four looks): fine-tuning is
/// stopped at a look, scratch runs to the budget.
fn guarded(dir: &Path) -> PathBuf {
    let variant = root().join("envs/cartpole-swapped-actions.ron");
    experiment(
        dir,
        "guarded",
        "cartpole-ppo",
        &format!(
            r#"targets: [Variant({:?})], strategies: [(name: "finetune")], seeds: 5, budget: 8192,
               eval: (every: 1024, episodes: 2), guard: (looks: 4, spending: Pocock)"#,
            variant.display()
        ),
    )
}

#[test]
fn a_guard_stop_is_seen_by_every_process_and_kill_9_during_the_looks_loses_nothing() {
    let dir = tmp("guard");
    let file = guarded(&dir);
    let reference = reference(&file, &dir);
    let summary = std::fs::read_to_string(reference.join("summary.ron")).unwrap();
    assert!(summary.contains("stopped: (") && summary.contains("Harm"), "the guard stopped nothing:\n{summary}");
    let mut rng = StdRng::seed_from_u64(29);
    for (trial, processes) in [(0, 3), (1, 2)] {
        let out = dir.join(format!("trial{trial}"));
        let kills = chaos(&file, &out, processes, 1, 2, &mut rng);
        check_journal(&out, 10);
        check_same(&reference, &out);
        // Every process saw the stop: once a look stopped the arm, no process trained its units on.
        let stop: u64 = std::fs::read_dir(out.join("units/cartpole-swapped-actions/finetune"))
            .unwrap()
            .flatten()
            .filter(|f| f.path().extension().is_some_and(|e| e == "ron"))
            .map(|f| {
                let text = std::fs::read_to_string(f.path()).unwrap();
                let at = text.find("Stopped(").expect("a stopped record");
                text[at..].split(|c: char| !c.is_ascii_digit()).find(|t| !t.is_empty()).unwrap().parse().unwrap()
            })
            .max()
            .unwrap();
        let paused_past: Vec<String> = std::fs::read_dir(out.join("journal"))
            .unwrap()
            .flatten()
            .flat_map(|f| std::fs::read_to_string(f.path()).unwrap().lines().map(String::from).collect::<Vec<_>>())
            .filter(|l| l.contains(" paused ") && l.contains("/finetune/"))
            .filter(|l| l.rsplit(' ').next().and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s > stop))
            .collect();
        assert!(paused_past.is_empty(), "fine-tuning trained past its stop at {stop}: {paused_past:?}");
        for look in std::fs::read_dir(reference.join("guard/cartpole-swapped-actions")).unwrap().flatten() {
            let name = look.file_name();
            let theirs = out.join("guard/cartpole-swapped-actions").join(&name);
            assert_eq!(std::fs::read(look.path()).unwrap(), std::fs::read(&theirs).unwrap(), "{name:?} differs");
        }
        eprintln!("guarded study, {processes} processes, {kills} killed while running: stopped at {stop}, records identical");
        let _ = std::fs::remove_dir_all(&out);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
