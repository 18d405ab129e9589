//! `--tensorboard DIR`: the event files `train` and `transfer` write, read back by TensorBoard's
//! own event accumulator (the `tensorboard` package, which `make setup-python` installs into the
//! bridge's environment): one run per output folder, every episode and the evaluation found at
//! their steps.
#![cfg(feature = "python")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{evaluations_by_unit, tensorboard_scalars as read};

fn headstart(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_headstart"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the headstart binary runs");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `(step, return, length)` of each episode in a run's `curve.csv`.
fn curve(run: &Path) -> Vec<(u64, f64, f64)> {
    let text = std::fs::read_to_string(run.join("curve.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect()
}

/// The evaluation's mean in a checkpoint's card.
fn eval_mean(run: &Path) -> f64 {
    let card = std::fs::read_to_string(run.join("card.ron")).unwrap();
    let after = card.split("eval: (").nth(1).unwrap();
    let mean = after.split("mean: ").nth(1).unwrap();
    mean.split(',').next().unwrap().trim().parse().unwrap()
}

#[test]
fn train_and_transfer_runs_are_read_back_by_tensorboard() {
    let dir = std::env::temp_dir().join(format!("headstart-tensorboard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (runs, tb) = (dir.join("runs"), dir.join("tb"));
    let source = runs.join("ppo-cartpole");
    let target = runs.join("long-pole");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    headstart(&["train", "--algo", "ppo", "CartPole-v1", "--steps", "20000", "-q", "--out", &s(&source), "--tensorboard", &s(&tb)]);
    headstart(&[
        "transfer", &s(&source), "envs/cartpole-long-pole.ron", "--strategy", "finetune", "--steps", "8000", "-q",
        "--out", &s(&target), "--tensorboard", &s(&tb),
    ]);
    let scalars = read(&tb);
    assert_eq!(scalars.keys().collect::<Vec<_>>(), ["long-pole", "ppo-cartpole"], "one run per output folder");
    for (name, run) in [("ppo-cartpole", &source), ("long-pole", &target)] {
        let tags = &scalars[name];
        let episodes = curve(run);
        assert!(!episodes.is_empty());
        let f32_of = |v: f64| v as f32 as f64;
        let returns: Vec<(u64, f64)> = episodes.iter().map(|e| (e.0, f32_of(e.1))).collect();
        let lengths: Vec<(u64, f64)> = episodes.iter().map(|e| (e.0, f32_of(e.2))).collect();
        assert_eq!(tags["episode/return"], returns, "{name}: every episode's return at its step");
        assert_eq!(tags["episode/length"], lengths, "{name}: every episode's length at its step");
        let eval = &tags["eval/mean_reward"];
        assert_eq!(eval.len(), 1, "{name}");
        assert_eq!(eval[0].1, f32_of(eval_mean(run)), "{name}: the evaluation");
        assert!(tags.get("time/fps").is_none_or(|p| p.iter().all(|&(_, v)| v > 0.0)), "{name}");
        // The updates' scalars, under SB3's tags (their means between points; at least the last).
        for tag in [
            "train/policy_gradient_loss", "train/value_loss", "train/entropy_loss", "train/approx_kl",
            "train/clip_fraction", "train/loss", "train/explained_variance", "train/learning_rate",
            "train/clip_range", "train/grad_norm",
        ] {
            let points = tags.get(tag).unwrap_or_else(|| panic!("{name}: no {tag}"));
            assert!(!points.is_empty() && points.iter().all(|p| p.1.is_finite()), "{name}: {tag} {points:?}");
        }
        let last = |tag: &str| tags[tag].last().unwrap().1;
        assert!(last("train/grad_norm") > 0.0 && last("train/value_loss") > 0.0, "{name}");
        assert!(last("train/entropy_loss") < 0.0 && last("train/entropy_loss") >= -(2f64.ln()) - 1e-6, "{name}: two actions");
        assert!((0.0..=1.0).contains(&last("train/clip_fraction")), "{name}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Transfer's guidance in the log: the share of frozen weights, which falls to 0 when the freeze
/// ends, and the distillation weight, which falls linearly; DQN's loss and epsilon.
#[test]
fn guidance_and_exploration_are_logged() {
    let dir = std::env::temp_dir().join(format!("headstart-tensorboard-guidance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (runs, tb) = (dir.join("runs"), dir.join("tb"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let source = runs.join("source");
    headstart(&["train", "--algo", "ppo", "CartPole-v1", "--steps", "4000", "-q", "--out", &s(&source)]);
    let strategy = r#"(name: "guided", freeze: ["actor.trunk"], freeze_until: 4000, distill: (weight: 1.0, decay_steps: 6000))"#;
    headstart(&[
        "transfer", &s(&source), "envs/cartpole-long-pole.ron", "--strategy", strategy, "--steps", "10000", "-q",
        "--out", &s(&runs.join("guided")), "--tensorboard", &s(&tb),
    ]);
    headstart(&["train", "--algo", "dqn", "CartPole-v1", "--steps", "3000", "-q", "--out", &s(&runs.join("dqn")), "--tensorboard", &s(&tb)]);
    let scalars = read(&tb);
    let guided = &scalars["guided"];
    let frozen = &guided["transfer/frozen_fraction"];
    let (first, last) = (frozen[0], *frozen.last().unwrap());
    assert!(first.0 < 4000 && first.1 > 0.0 && first.1 < 1.0, "the actor's trunk frozen, its head and the critic not: {frozen:?}");
    assert!(last.0 > 4000 && last.1 == 0.0, "the freeze ended at step 4000: {frozen:?}");
    let weight = &guided["transfer/distill_weight"];
    assert!(weight.windows(2).all(|w| w[1].1 < w[0].1), "the weight falls: {weight:?}");
    // Each point is the mean since the last, at the last update's step; none once it reached 0.
    assert!(weight.iter().all(|&(step, w)| w > 0.0 && (w - (1.0 - step as f64 / 6000.0)).abs() < 0.2), "{weight:?}");
    assert!(weight.last().unwrap().0 < 6000 + 1024, "{weight:?}");
    let dqn = &scalars["dqn"];
    let eps = &dqn["rollout/exploration_rate"];
    assert!(eps.windows(2).all(|w| w[1].1 <= w[0].1) && eps.last().unwrap().1 < 1.0, "epsilon decays: {eps:?}");
    assert!(dqn["train/loss"].iter().all(|p| p.1.is_finite() && p.1 >= 0.0) && !dqn["train/grad_norm"].is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

/// A study run with `--tensorboard` (the experiment's `log: (tensorboard: true)`): one run per
/// unit, `<target>/<arm>/seed<k>`, whose evaluations are `evaluations.csv`'s, point for point,
/// with their normalised scores; and the results folder accepts the experiment with logging on
/// or off.
#[test]
fn every_unit_of_a_study_is_a_run_with_its_evaluations() {
    let out = std::env::temp_dir().join(format!("headstart-tensorboard-study-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let s = out.to_str().unwrap();
    headstart(&["run", "-q", "experiments/smoke.ron", "--out", s, "--tensorboard"]);
    headstart(&["run", "-q", "experiments/smoke.ron", "--out", s]); // finished: nothing to do
    // The same experiment asking for logs in its file is the same experiment.
    let smoke = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.ron")).unwrap();
    let logged = out.with_extension("ron");
    std::fs::write(&logged, smoke.replace("resamples: 1000,", "resamples: 1000,\n    log: (tensorboard: true),")).unwrap();
    headstart(&["run", "-q", logged.to_str().unwrap(), "--out", s]);
    let scalars = read(&out.join("tensorboard"));
    let expected = evaluations_by_unit(&out);
    assert_eq!(expected.len(), 6, "3 arms x 2 seeds");
    let found: BTreeMap<String, Vec<(u64, f64)>> =
        scalars.iter().map(|(run, tags)| (run.clone(), tags["eval/mean_reward"].clone())).collect();
    assert_eq!(found, expected);
    assert!(scalars.values().all(|tags| !tags["episode/return"].is_empty()));
    // Each evaluation's score: 0 for the target's random policy, 1 at its threshold.
    let targets = std::fs::read_to_string(out.join("targets.ron")).unwrap();
    let number = |key: &str| -> f64 {
        let after = targets.split(&format!("\"{key}\": ")).nth(1).unwrap();
        after.split(',').next().unwrap().trim().parse().unwrap()
    };
    let (threshold, random) = (number("threshold"), number("random_return"));
    for (run, tags) in &scalars {
        let scores: Vec<(u64, f64)> = tags["eval/score"].clone();
        let from_means: Vec<(u64, f64)> = tags["eval/mean_reward"]
            .iter()
            .map(|&(step, mean)| (step, ((mean - random) / (threshold - random)) as f32 as f64))
            .collect();
        assert_eq!(scores.len(), from_means.len(), "{run}");
        for (a, b) in scores.iter().zip(&from_means) {
            assert!(a.0 == b.0 && (a.1 - b.1).abs() < 1e-5, "{run}: score {a:?}, from the mean {b:?}");
        }
    }
    std::fs::remove_dir_all(&out).ok();
    std::fs::remove_file(&logged).ok();
}

/// A source that a logging study pretrains is a run too (`source/<its cache folder>`), with its
/// episodes, its updates and its evaluation.
#[test]
fn a_pretrained_source_is_a_run_too() {
    let dir = std::env::temp_dir().join(format!("headstart-tensorboard-source-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = dir.join("tb-source.ron");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        &file,
        r#"(version: 1, name: "tb-source", source: Pretrain(algorithm: Ppo, preset: "CartPole-v1",
            env: Env(id: "CartPole-v1"), steps: 2048), targets: [Env(id: "CartPole-v1", params: {"length": 0.65})],
            seeds: 2, budget: 512, eval: (every: 512, episodes: 2), resamples: 200, log: (tensorboard: true))"#,
    )
    .unwrap();
    let out = dir.join("out");
    headstart(&["run", "-q", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let scalars = read(&out.join("tensorboard"));
    let sources: Vec<&String> = scalars.keys().filter(|run| run.starts_with("source/")).collect();
    assert_eq!(sources.len(), 1, "{:?}", scalars.keys().collect::<Vec<_>>());
    let tags = &scalars[sources[0]];
    assert!(!tags["episode/return"].is_empty() && !tags["train/value_loss"].is_empty());
    let eval = &tags["eval/mean_reward"];
    assert!(eval.len() == 1 && eval[0].0 >= 2048, "the source's evaluation after its 2048 steps: {eval:?}");
    assert_eq!(scalars.keys().filter(|run| !run.starts_with("source/")).count(), 4, "and the 2 x 2 units");
    std::fs::remove_dir_all(&dir).ok();
}

/// A sequence run with `--tensorboard`: one run per method and seed, whose evaluations are the
/// records' (every task's return at every point, at its step along the whole sequence), with the
/// episodes and updates of every task; the results folder accepts the file with logging on or off.
#[test]
fn a_sequence_is_a_run_per_method_and_seed() {
    let dir = std::env::temp_dir().join(format!("headstart-tensorboard-sequence-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let swapped = Path::new(env!("CARGO_MANIFEST_DIR")).join("envs/cartpole-swapped-actions.ron");
    let file = dir.join("seq.ron");
    let text = format!(
        "(version: 1, name: \"seq\", sequence: [Env(id: \"CartPole-v1\"), Variant({:?})], \
         agent: (algorithm: Dqn, config: Dqn(learning_starts: 200, train_freq: 16, gradient_steps: 8, net: (hidden: [16, 16], activation: Relu))), \
         methods: [(name: \"l2\", strategy: (l2_init: 0.01))], seeds: 3, budget: 1000, eval: (every: 500, episodes: 2))",
        swapped.display()
    );
    std::fs::write(&file, &text).unwrap();
    let out = dir.join("out");
    let o = out.to_str().unwrap();
    headstart(&["run", "-q", file.to_str().unwrap(), "--out", o, "--tensorboard"]);
    std::fs::write(&file, text.replace("seeds: 3,", "seeds: 3, log: (tensorboard: true),")).unwrap();
    headstart(&["run", "-q", file.to_str().unwrap(), "--out", o]); // the same sequence: nothing to do
    let scalars = read(&out.join("tensorboard"));
    let runs: Vec<&String> = scalars.keys().collect();
    let expected: Vec<String> =
        ["finetune", "l2", "single-task"].iter().flat_map(|m| (0..3).map(move |s| format!("{m}/seed{s}"))).collect();
    assert_eq!(runs, expected.iter().collect::<Vec<_>>());
    let perf = std::fs::read_to_string(out.join("performance.csv")).unwrap();
    for (run, tags) in &scalars {
        let method = run.split('/').next().unwrap();
        // performance.csv: method,seed,phase,trained,step,sequence_step,task,return,normalised
        let mut expected: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
        for line in perf.lines().skip(1).filter(|l| l.starts_with(&format!("{method},{},", run.split("/seed").nth(1).unwrap()))) {
            let f: Vec<&str> = line.split(',').collect();
            let tag = format!("eval/{}/mean_reward", f[6]);
            expected.entry(tag).or_default().push((f[5].parse().unwrap(), f[7].parse::<f64>().unwrap() as f32 as f64));
        }
        assert_eq!(expected.len(), 2, "{run}: both tasks");
        for (tag, points) in expected {
            assert_eq!(tags[&tag], points, "{run}: {tag}");
        }
        let episodes = &tags["episode/return"];
        assert!(episodes.first().unwrap().0 < 1000 && episodes.last().unwrap().0 > 1000, "{run}: both tasks' episodes");
        assert!(tags["train/loss"].last().unwrap().0 > 1000, "{run}: the second task's updates");
        assert!(!tags["eval/average_score"].is_empty());
    }
    std::fs::remove_dir_all(&dir).ok();
}
