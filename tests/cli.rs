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
}
