//! The `headstart` binary: the demo runs, and bad input gets a one-line error naming the input,
//! exit code 1, and no panic.

use std::process::{Command, Output};

fn headstart(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_headstart"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the headstart binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn demo_steps_every_environment_and_variant() {
    let out = headstart(&["demo", "--episodes", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for id in ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"] {
        assert!(text.contains(id), "{id} missing from:\n{text}");
    }
    assert!(text.contains("cartpole-long-pole (envs/cartpole-long-pole.ron)"), "{text}");
    // Random Pendulum episodes last the full 200 steps.
    let pendulum = text.lines().find(|l| l.starts_with("Pendulum-v1")).unwrap();
    assert!(pendulum.contains(" 200.0 "), "{pendulum}");
}

#[test]
fn envs_lists_parameters_with_defaults_and_ranges() {
    let out = headstart(&["envs"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("masspole") && l.contains("0.1") && l.contains("> 0")),
        "{text}"
    );
}

#[test]
fn check_accepts_ids_variants_and_overrides() {
    for args in [
        vec!["check", "Acrobot-v1"],
        vec!["check", "envs/pendulum-heavy.ron"],
        vec!["check", "MountainCar-v0", "-p", "force=0.002"],
    ] {
        let out = headstart(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("all checks passed"));
    }
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let cases: [(&[&str], &str); 6] = [
        (&["check", "CartPole-v2"], "unknown environment id \"CartPole-v2\" (did you mean \"CartPole-v1\"?)"),
        (&["check", "CartPole-v1", "-p", "masspole=-1"], "masspole = -1 is out of range"),
        (&["check", "CartPole-v1", "-p", "polelength=1"], "has no parameter \"polelength\""),
        (&["check", "CartPole-v1", "-p", "length"], "expected NAME=VALUE"),
        (&["check", "CartPole-v1", "-p", "length=long"], "\"long\" is not a number"),
        (&["check", "envs/no-such-variant.ron"], "envs/no-such-variant.ron"),
    ];
    for (args, needle) in cases {
        let out = headstart(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with("error: ") && err.contains(needle), "{args:?}: expected {needle:?} in {err:?}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // A library error that carries the system's message says it once, not again as its cause.
    for args in [&["suggest", "CartPole-v1", "--policies", "no-such-folder"][..], &["report", "no-such-folder"][..]] {
        let err = stderr(&headstart(args));
        assert!(
            err.contains("no-such-folder") && err.matches("No such file or directory").count() == 1,
            "{args:?}: {err}"
        );
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("headstart-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn train_saves_a_checkpoint_that_eval_and_resume_read() {
    let dir = scratch("train");
    let out = dir.to_str().unwrap();
    let config = dir.with_extension("ron");
    std::fs::write(&config, "Ppo(n_envs: 2, n_steps: 64, batch_size: 64, n_epochs: 2)").unwrap();
    let args = ["train", "--algo", "ppo", "CartPole-v1", "--config", config.to_str().unwrap()];
    let run = headstart(&[&args[..], &["--steps", "512", "--out", out, "--eval-episodes", "3", "-q"]].concat());
    assert!(run.status.success(), "{}", stderr(&run));
    let line = String::from_utf8_lossy(&run.stdout);
    assert!(
        line.contains("PPO CartPole-v1 seed 0: 512 steps") && line.contains("over 3 deterministic episodes"),
        "{line}"
    );
    for file in ["weights.safetensors", "card.ron", "curve.csv"] {
        assert!(dir.join(file).exists(), "{file} missing");
    }

    let eval = headstart(&["eval", out, "--episodes", "2", "-p", "length=0.75"]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    let line = String::from_utf8_lossy(&eval.stdout);
    assert!(line.contains("CartPole-v1(length=0.75)") && line.contains("over 2 deterministic episodes"), "{line}");

    let resume = headstart(&[
        "train",
        "--algo",
        "ppo",
        "--resume",
        out,
        "--steps",
        "1024",
        "--out",
        out,
        "-q",
        "--eval-episodes",
        "0",
    ]);
    assert!(resume.status.success(), "{}", stderr(&resume));
    assert!(
        String::from_utf8_lossy(&resume.stdout).contains("1024 steps"),
        "{}",
        String::from_utf8_lossy(&resume.stdout)
    );

    // A checkpoint for another space is refused by name.
    let wrong = headstart(&["eval", out, "Pendulum-v1"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(stderr(&wrong).contains("Pendulum-v1") && stderr(&wrong).contains("trained on"), "{}", stderr(&wrong));

    std::fs::write(dir.join("weights.safetensors"), b"not a tensor file").unwrap();
    let corrupt = headstart(&["eval", out]);
    assert_eq!(corrupt.status.code(), Some(1));
    let message = stderr(&corrupt);
    assert!(message.starts_with("error: ") && message.contains("weights.safetensors"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&config);
}

#[test]
fn train_refuses_a_mismatched_algorithm_or_config() {
    let out = headstart(&["train", "--algo", "dqn", "Pendulum-v1", "--steps", "10"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("DQN supports Discrete"), "{}", stderr(&out));
    let config = scratch("bad-config").with_extension("ron");
    std::fs::write(&config, "Ppo(n_stepz: 3)").unwrap();
    let out =
        headstart(&["train", "--algo", "ppo", "CartPole-v1", "--steps", "10", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("n_stepz") && stderr(&out).contains(config.to_str().unwrap()), "{}", stderr(&out));
    let _ = std::fs::remove_file(&config);
}

#[test]
fn transfer_prints_the_report_zero_shot_and_curve_and_saves_the_run() {
    let out = scratch("transfer");
    let out_s = out.to_str().unwrap();
    let run = headstart(&[
        "transfer",
        "policies/cartpole-ppo",
        "envs/cartpole-noise-sensor.ron",
        "--steps",
        "2048",
        "--strategy",
        r#"(name: "freeze-trunk", freeze: ["actor.trunk"])"#,
        "--eval-episodes",
        "3",
        "--out",
        out_s,
        "-q",
    ]);
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(text.contains("(PPO, freeze-trunk): 12 of 12 parameters from the source"), "{text}");
    assert!(text.contains("actor.trunk.0.weight   [64, 5]   320      [64, 4]   mapped  frozen"), "{text}");
    assert!(text.contains("4739 of 9283 weights trained"), "{text}");
    assert!(text.contains("zero-shot on CartPole-v1"), "{text}");
    assert!(text.contains("learning curve on"), "{text}");
    let report = std::fs::read_to_string(out.join("transfer.ron")).unwrap();
    let report = headstart::transfer::TransferReport::from_ron(&report).unwrap();
    assert_eq!(report.strategy, "freeze-trunk");
    assert!(headstart::agent::checkpoint::load(&out).unwrap().card.steps >= 2048);
    assert!(out.join("curve.csv").exists());

    // Refusals name the file, the algorithm's reach, the field.
    let run = headstart(&[
        "transfer",
        "policies/cartpole-ppo",
        "CartPole-v1",
        "-p",
        "length=0.7",
        "--map",
        "/nonexistent.ron",
    ]);
    assert!(!run.status.success() && stderr(&run).contains("/nonexistent.ron"));
    let run = headstart(&["transfer", "policies/pendulum-sac", "CartPole-v1", "--steps", "10"]);
    assert!(stderr(&run).contains("SAC supports Box action spaces"), "{}", stderr(&run));
    let run = headstart(&["transfer", "policies/cartpole-ppo", "CartPole-v1", "--strategy", "(frezee: [])"]);
    assert!(stderr(&run).contains("frezee"), "{}", stderr(&run));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn the_collapse_watch_warns_and_falls_back_to_the_transferred_agent() {
    let out = scratch("watch");
    let out_s = out.to_str().unwrap();
    // A thirty-fold learning rate on the source's own task: fine-tuning wrecks the policy.
    let args = |fallback: &'static str| {
        [
            "transfer",
            "policies/cartpole-ppo",
            "CartPole-v1",
            "--strategy",
            r#"(name: "hot", lr_scale: 30.0)"#,
            "--steps",
            "20000",
            "--watch",
            "--watch-every",
            "2000",
            "--eval-episodes",
            "10",
            "--fallback",
            fallback,
            "--out",
            out_s,
            "--force",
            "-q",
        ]
    };
    let run = headstart(&args("source"));
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("COLLAPSE") && stderr(&run).contains("fallback"), "{}", stderr(&run));
    let watch = std::fs::read_to_string(out.join("watch.ron")).unwrap();
    assert!(watch.contains("fell_back_at: 4096") && watch.contains("collapsed: true"), "{watch}");
    // The saved agent is the one transfer made, before any update: the source's weights.
    let saved = headstart::agent::checkpoint::load(&out).unwrap();
    let source = headstart::agent::checkpoint::load(std::path::Path::new("policies/cartpole-ppo")).unwrap();
    assert_eq!(saved.card.steps, 0);
    let mine = saved.agent.tensors();
    for (name, tensor) in source.agent.tensors().iter().filter(|(n, _)| n.starts_with("actor.")) {
        let (_, mine) = mine.iter().find(|(n, _)| n == name).unwrap();
        assert!(mine.equal(tensor), "{name} differs from the source's");
    }
    // Without a fallback, a warning only; a fallback without the watch is refused.
    let run = headstart(&args("none"));
    assert!(run.status.success() && stderr(&run).contains("COLLAPSE") && !stderr(&run).contains("fallback:"));
    let refused = headstart(&["transfer", "policies/cartpole-ppo", "CartPole-v1", "--fallback", "source", "--steps", "10"]);
    assert!(!refused.status.success() && stderr(&refused).contains("--fallback") && stderr(&refused).contains("--watch"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn suggest_ranks_the_policies_that_fit_and_says_why_others_do_not() {
    let run = headstart(&["suggest", "envs/cartpole-noise-sensor.ron", "--episodes", "3"]);
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}", stderr(&run));
    let rank = |name: &str| text.lines().position(|l| l.contains(name));
    assert!(rank("cartpole-ppo ").is_some() && rank("cartpole-ppo-randomized").is_some(), "{text}");
    assert!(text.contains("map") && text.contains("skipped pendulum-sac"), "{text}");
    assert!(text.contains("(Box(3) / Box(1))") && !text.contains("low="), "spaces in brief: {text}");
}

#[test]
fn run_validate_and_report_a_study() {
    let out = scratch("study");
    let out_s = out.to_str().unwrap();
    let run = headstart(&["validate", "experiments/smoke.ron"]);
    assert!(
        run.status.success() && String::from_utf8_lossy(&run.stdout).contains("valid; targets: 1"),
        "{}",
        stderr(&run)
    );
    let bad = out.with_extension("ron");
    std::fs::write(&bad, "(version: 1, name: \"x\",\n nmae: 3)").unwrap();
    let run = headstart(&["validate", bad.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr(&run).contains("line 2, column") && stderr(&run).contains("`nmae`"), "{}", stderr(&run));

    let run = headstart(&["run", "experiments/smoke.ron", "--out", out_s, "--jobs", "2"]);
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(text.contains("| CartPole-v1-length=0.65 | finetune |") && text.contains("report: "), "{text}");
    // Not a terminal: one log line per unit instead of a bar.
    assert_eq!(stderr(&run).lines().filter(|l| l.starts_with('[')).count(), 6, "{}", stderr(&run));
    let run = headstart(&["report", out_s]);
    assert!(run.status.success() && String::from_utf8_lossy(&run.stdout).contains("freeze-trunk"), "{}", stderr(&run));
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_file(&bad);
}

/// `train` and `transfer` never overwrite a run silently: a folder holding one is refused unless
/// `--force` (resuming a run writes into its own folder).
#[test]
fn a_folder_holding_a_run_is_overwritten_only_with_force() {
    let dir = scratch("force");
    let out = dir.to_str().unwrap();
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--algo", "ppo", "CartPole-v1", "--steps", "256", "--eval-episodes", "1", "-q"];
        args.extend_from_slice(extra);
        headstart(&args)
    };
    assert!(train(&["--out", out]).status.success());
    let again = train(&["--out", out]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("holds a run already: pass --force"), "{}", stderr(&again));
    // The old run's files go, so nothing of it is mistaken for the new run's.
    std::fs::write(dir.join("transfer.ron"), "(stale)").unwrap();
    assert!(train(&["--out", out, "--force"]).status.success());
    assert!(!dir.join("transfer.ron").exists(), "--force left the old run's transfer.ron");
    let resumed = headstart(&["train", "--algo", "ppo", "--resume", out, "--out", out, "--steps", "512", "-q"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let transfer = |extra: &[&str]| {
        let mut args =
            vec!["transfer", "policies/cartpole-ppo", "CartPole-v1", "--steps", "256", "--eval-episodes", "1"];
        args.extend_from_slice(&["-q", "--out", out]);
        args.extend_from_slice(extra);
        headstart(&args)
    };
    assert!(stderr(&transfer(&[])).contains("holds a run already"));
    assert!(transfer(&["--force"]).status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
