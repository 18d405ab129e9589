//! The experiment harness end to end on `experiments/smoke.ron`: outputs, resuming, interruption,
//! claims of other processes, failed units, re-rendering, and the validation of experiment files.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use headstart::env::registry::EnvEntry;
use headstart::env::{Action, Env, EnvError, EnvSpec, Info, Obs, Registry, Space, Step};
use headstart::study::experiment::Experiment;
use headstart::study::validate::validate;
use headstart::study::{self, RunOptions, RunOutcome, UnitStatus};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn smoke() -> Experiment {
    // Relative paths in experiment files are relative to the repository root.
    std::env::set_current_dir(root()).unwrap();
    Experiment::load(&root().join("experiments/smoke.ron")).unwrap()
}

fn out(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("headstart-harness-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn options(out: &Path) -> RunOptions {
    let mut opts = RunOptions::new(out.to_path_buf());
    (opts.sources, opts.jobs, opts.quiet) = (out.join("sources"), 2, true);
    opts
}

fn run(experiment: &Experiment, registry: &Registry, out: &Path) -> study::Summary {
    match study::run(experiment, registry, &options(out), &AtomicBool::new(false)).unwrap() {
        RunOutcome::Complete(summary) => *summary,
        RunOutcome::Interrupted { done, total } => panic!("interrupted at {done}/{total}"),
        RunOutcome::Incomplete { done, total, .. } => panic!("incomplete at {done}/{total}"),
    }
}

#[test]
fn a_run_writes_every_output_and_a_rerun_continues_to_the_same_results() {
    let experiment = smoke();
    let registry = Registry::builtin();
    let dir = out("smoke");
    let summary = run(&experiment, &registry, &dir);
    for file in [
        "experiment.ron",
        "targets.ron",
        "source.ron",
        "evaluations.csv",
        "summary.ron",
        "summary.json",
        "report.md",
        "metrics.png",
        "metrics.svg",
    ] {
        assert!(dir.join(file).exists(), "{file} missing");
    }
    let units = study::read_units(&dir).unwrap();
    assert_eq!(units.len(), 6);
    assert!(units.iter().all(|u| u.status == UnitStatus::Finished));
    for u in &units {
        let nominal: Vec<u64> = u.evals.iter().map(|e| e.nominal).collect();
        assert_eq!(nominal, [0, 512, 1024], "{} {} seed {}", u.target, u.arm, u.seed);
        assert!(u.evals[1].step >= 512 && u.steps >= 1024);
        assert_eq!(u.report.as_ref().unwrap().strategy, u.arm);
    }
    let target = &summary.targets[0];
    assert_eq!(target.comparisons.len(), 2);
    assert!(dir.join(format!("curves-{}.png", target.key)).exists());
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(report.contains("| CartPole-v1-length=0.65 | finetune |") && report.contains("freeze-trunk"), "{report}");
    let csv = std::fs::read_to_string(dir.join("evaluations.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 6 * 3, "a header and three evaluations per unit");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["targets"][0]["comparisons"][0]["strategy"], "finetune");

    // Lose two units (as a killed process would) and run again: the same summary.
    let before = std::fs::read_to_string(dir.join("summary.ron")).unwrap();
    let lost = study::unit_path(&dir, &target.key, "finetune", 1);
    std::fs::remove_file(&lost).unwrap();
    std::fs::remove_file(study::unit_path(&dir, &target.key, "scratch", 0)).unwrap();
    std::fs::remove_file(dir.join("summary.ron")).unwrap();
    run(&experiment, &registry, &dir);
    assert_eq!(std::fs::read_to_string(dir.join("summary.ron")).unwrap(), before, "resuming changed the results");

    // `report` renders again from the data alone.
    std::fs::remove_file(dir.join("report.md")).unwrap();
    std::fs::remove_file(dir.join("metrics.png")).unwrap();
    let again = study::report(&dir).unwrap();
    // (Compared as text: a comparison without enough seeds holds NaN p-values, and NaN != NaN.)
    assert_eq!(format!("{:?}", again.targets[0].comparisons), format!("{:?}", summary.targets[0].comparisons));
    assert!(dir.join("report.md").exists() && dir.join("metrics.png").exists());
    // `report` takes the source's name and steps from `source.ron`, not from the source's card.
    assert_eq!((again.source.as_str(), again.source_steps), (summary.source.as_str(), summary.source_steps));
    std::fs::write(dir.join("source.ron"), r#"(name: "elsewhere", steps: 7)"#).unwrap();
    let moved = study::report(&dir).unwrap();
    assert_eq!((moved.source.as_str(), moved.source_steps), ("elsewhere", 7));

    // Another experiment into the same folder is refused.
    let mut other = experiment.clone();
    other.budget = 2048;
    let e = study::run(&other, &registry, &options(&dir), &AtomicBool::new(false)).err().unwrap().to_string();
    assert!(e.contains("different experiment"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A claim file of `pid` on this host, as another process writes it.
fn claim(record: &Path, pid: u32) {
    let owner = format!(r#"(host: "{}", pid: {pid}, token: "0123456789abcdef", since: 0)"#, headstart::util::host());
    std::fs::create_dir_all(record.parent().unwrap()).unwrap();
    std::fs::write(record.with_extension("claim"), owner).unwrap();
}

#[test]
fn a_unit_claimed_by_a_live_process_is_left_to_it_and_a_dead_ones_claim_is_taken_over() {
    let experiment = smoke();
    let registry = Registry::builtin();
    let dir = out("claims");
    let unit = study::unit_path(&dir, "CartPole-v1-length=0.65", "finetune", 1);
    // A live process of this host (this one, under another token) holds one unit.
    claim(&unit, std::process::id());
    match study::run(&experiment, &registry, &options(&dir), &AtomicBool::new(false)).unwrap() {
        RunOutcome::Incomplete { done, total, elsewhere } => assert_eq!((done, total, elsewhere), (5, 6, 1)),
        _ => panic!("ran a unit that a live process holds"),
    }
    assert!(!unit.exists() && !dir.join("summary.json").exists());
    // The status shows it running; `report` works on what finished, marked partial.
    let status = study::status::status(&dir, None).unwrap();
    assert_eq!(status.count(|s| matches!(s, study::status::State::Running { .. })), 1);
    assert_eq!(status.count(|s| matches!(s, study::status::State::Finished)), 5);
    let partial = study::report(&dir).unwrap();
    assert_eq!(partial.partial, Some(study::records::Partial { done: 5, total: 6 }));
    assert!(std::fs::read_to_string(dir.join("report.md")).unwrap().contains("**Partial**: 5 of 6 units"));
    // The process ends without releasing it (a kill -9): its claim is taken over at once.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    claim(&unit, child.id());
    let summary = run(&experiment, &registry, &dir);
    assert!(unit.exists() && !unit.with_extension("claim").exists());
    assert_eq!(summary.partial, None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_interrupted_run_keeps_what_finished() {
    let experiment = smoke();
    let dir = out("interrupted");
    let stopped = AtomicBool::new(true);
    match study::run(&experiment, &Registry::builtin(), &options(&dir), &stopped).unwrap() {
        RunOutcome::Interrupted { done, total } => assert_eq!((done, total), (0, 6)),
        _ => panic!("ran while stopped"),
    }
    assert!(!dir.join("summary.ron").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// CartPole's spaces; an environment reset with seed 8 fails after 100 steps (a custom
/// environment's bug): of the smoke experiment's 8 environments per unit, seed 1's has one.
struct Faulty {
    inner: Box<dyn Env>,
    doomed: bool,
    steps: usize,
}

impl Env for Faulty {
    fn observation_space(&self) -> &Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.inner.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        self.doomed |= seed == Some(8);
        self.inner.reset(seed)
    }
    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        self.steps += 1;
        if self.doomed && self.steps > 100 {
            return Err(EnvError::Custom("the simulator lost contact".into()));
        }
        self.inner.step(action)
    }
}

#[test]
fn a_failing_unit_is_recorded_and_the_rest_continue() {
    let mut registry = Registry::builtin();
    registry.register(EnvEntry::new("Faulty-v0", |_| {
        Ok(Faulty { inner: Registry::builtin().make(&EnvSpec::new("CartPole-v1"))?, doomed: false, steps: 0 })
    }));
    let mut experiment = smoke();
    experiment.name = "faulty".into();
    experiment.targets = vec![headstart::study::experiment::Target::Env(EnvSpec::new("Faulty-v0"))];
    experiment.threshold = Some(100.0);
    let dir = out("faulty");
    let summary = run(&experiment, &registry, &dir);
    let units = study::read_units(&dir).unwrap();
    let failed: Vec<_> = units.iter().filter(|u| u.status != UnitStatus::Finished).collect();
    assert_eq!(failed.len(), 3, "seed 1 of each arm");
    assert!(failed.iter().all(|u| u.seed == 1));
    assert!(matches!(&failed[0].status, UnitStatus::Failed(e) if e.contains("the simulator lost contact")));
    assert_eq!(summary.failures.len(), 3);
    assert!(summary.targets[0].curves.iter().all(|c| c.finished == 1 && c.failed == 1));
    assert!(std::fs::read_to_string(dir.join("report.md")).unwrap().contains("## Failed units"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn invalid(text: &str) -> String {
    std::env::set_current_dir(root()).unwrap();
    let path = std::env::temp_dir().join(format!("headstart-invalid-{}-{}.ron", std::process::id(), text.len()));
    std::fs::write(&path, text).unwrap();
    let result = Experiment::load(&path)
        .map_err(|e| e.to_string())
        .and_then(|e| validate(&e, &Registry::builtin()).map(|_| ()).map_err(|e| e.to_string()));
    let _ = std::fs::remove_file(&path);
    result.expect_err("refused")
}

#[test]
fn invalid_experiment_files_are_refused_with_the_place_and_a_suggestion() {
    let head = r#"(version: 1, name: "x", source: Policy("policies/cartpole-ppo"), "#;
    let e = invalid(&format!("{head}\n  targets: [Env(id: \"CartPole-v1\"], budget: 100)"));
    assert!(e.contains("line 2, column"), "{e}");
    let e =
        invalid(&format!("{head} targets: [Env(id: \"CartPole-v1\")], budget: 100, eval: (every: 10, episods: 3))"));
    assert!(e.contains("`episods`") && e.contains("did you mean `episodes`"), "{e}");
    let e = invalid(&format!("{head} targets: [Env(id: \"CartPol-v1\")], budget: 100, eval: (every: 10))"));
    assert!(e.contains("did you mean \"CartPole-v1\""), "{e}");
    let e = invalid(&format!("{head} targets: [Env(id: \"Pendulum-v1\")], budget: 100, eval: (every: 10))"));
    assert!(e.contains("field `threshold`"), "{e}");
    let e = invalid(&format!("{head} targets: [Env(id: \"CartPole-v1\")], budget: 100, eval: (every: 1000))"));
    assert!(e.contains("eval.every"), "{e}");
    let e = invalid(&format!(
        "{head} targets: [Env(id: \"CartPole-v1\")], strategies: [(freeze: [\"actor.trnk\"])], budget: 100, eval: (every: 10))"
    ));
    assert!(e.contains("did you mean \"actor.trunk\""), "{e}");
    let e = invalid(&format!(
        "{head} targets: [Variant(\"envs/cartpole-noise-sensor.ron\")], strategies: [(name: \"scratch\")], budget: 100, eval: (every: 10))"
    ));
    assert!(e.contains("scratch always runs"), "{e}");
    // A guard: its looks must fit the grid, its spending be one of two, and it tests the area.
    let guarded = |guard: &str, extra: &str| {
        invalid(&format!("{head} targets: [Env(id: \"CartPole-v1\")], budget: 1000, eval: (every: 250), {extra}guard: {guard})"))
    };
    let e = guarded("(looks: 5)", "");
    assert!(e.contains("field `guard.looks`") && e.contains("5 looks need 5 distinct evaluation points"), "{e}");
    let e = guarded("(looks: 1)", "");
    assert!(e.contains("field `guard.looks`") && e.contains("between 2 and 20"), "{e}");
    let e = guarded("(looks: 4, spending: Pocok)", "");
    assert!(e.contains("Pocok") && e.contains("Pocock"), "{e}");
    let e = guarded("(looks: 4, lookz: 3)", "");
    assert!(e.contains("`lookz`") && e.contains("did you mean `looks`"), "{e}");
    let e = guarded("(looks: 4)", "primary: Asymptotic, ");
    assert!(e.contains("field `guard`") && e.contains("primary: Area"), "{e}");
    let e = invalid(r#"(version: 2, name: "x", source: Policy("policies/cartpole-ppo"), targets: [], budget: 1)"#);
    assert!(e.contains("field `version`"), "{e}");
    // Every shipped experiment is valid (the Atari ones in a test of their own, below).
    shipped_experiments_are_valid(|name| !name.starts_with("atari-"));
}

/// The shipped Atari studies are valid: apart from the others, since measuring a random policy
/// over 100 whole games through the bridge takes minutes (this runs beside the other tests).
#[test]
fn shipped_atari_experiments_are_valid() {
    shipped_experiments_are_valid(|name| name.starts_with("atari-"));
}

/// Every shipped experiment whose file name `pick` takes validates.
fn shipped_experiments_are_valid(pick: impl Fn(&str) -> bool) {
    for entry in std::fs::read_dir(root().join("experiments")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if path.extension().is_some_and(|e| e == "ron") && pick(&name) {
            if headstart::study::continual::Sequence::is_sequence_file(&path) {
                let sequence = headstart::study::continual::Sequence::load(&path).unwrap_or_else(|e| panic!("{e}"));
                headstart::study::continual::sequence::check(&sequence, &Registry::builtin(), None)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                continue;
            }
            let experiment = Experiment::load(&path).unwrap_or_else(|e| panic!("{e}"));
            validate(&experiment, &Registry::builtin()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

/// The shipped positive and negative studies, with their default seeds, reach their verdicts.
#[test]
fn the_quickstart_is_positive_and_the_swapped_actions_negative() {
    use headstart::study::summary::Verdict;
    for (file, expected) in [("quickstart.ron", Verdict::Positive), ("negative-swapped-actions.ron", Verdict::Negative)]
    {
        let _ = smoke();
        let experiment = Experiment::load(&root().join("experiments").join(file)).unwrap();
        let dir = out(file);
        let summary = run(&experiment, &Registry::builtin(), &dir);
        let c = &summary.targets[0].comparisons[0];
        let area = &c.metrics[2];
        eprintln!(
            "{file}: area difference {:+.3} [{:+.3}, {:+.3}], verdict {:?}",
            area.difference, area.ci95.0, area.ci95.1, c.verdict
        );
        assert_eq!(c.verdict, expected, "{file}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A results folder made by hand: the smoke experiment from `source`, one target, the given
/// unit records.
fn handmade(name: &str, source: &str, units: &[study::UnitResult]) -> PathBuf {
    let mut experiment = smoke();
    experiment.source = headstart::study::experiment::Source::Policy(PathBuf::from(source));
    let dir = out(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("experiment.ron"), experiment.to_ron()).unwrap();
    let target = study::TargetInfo {
        target: headstart::study::experiment::ResolvedTarget {
            key: study::TargetId::new("CartPole-v1"),
            env: EnvSpec::new("CartPole-v1"),
            map: None,
        },
        threshold: 475.0,
        random_return: 20.0,
    };
    std::fs::write(dir.join("targets.ron"), headstart::util::to_ron(&vec![target])).unwrap();
    for u in units {
        let path = study::unit_path(&dir, u.target.as_str(), u.arm.as_str(), u.seed);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, headstart::util::to_ron(u)).unwrap();
    }
    dir
}

#[test]
fn a_finished_unit_record_without_evaluations_is_refused_by_name() {
    let unit = study::UnitResult {
        target: study::TargetId::new("CartPole-v1"),
        arm: study::ArmId::new("scratch"),
        seed: 0,
        status: UnitStatus::Finished,
        evals: Vec::new(),
        steps: 1024,
        report: None,
    };
    let dir = handmade("no-evals", "policies/cartpole-ppo", &[unit]);
    let e = study::report(&dir).expect_err("refused").to_string();
    assert!(e.contains("seed0.ron") && e.contains("without evaluations"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn report_without_source_ron_names_the_missing_card() {
    let dir = handmade("no-card", "/nonexistent/cartpole-ppo", &[]);
    let e = study::report(&dir).expect_err("refused").to_string();
    assert!(e.contains("/nonexistent/cartpole-ppo"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_pretrained_mixture_without_variants_is_refused() {
    let e = invalid(
        r#"(version: 1, name: "x", source: Pretrain(algorithm: Ppo, env: Mixture(variants: []), steps: 100),
            targets: [Variant("envs/cartpole-long-pole.ron")], budget: 100, eval: (every: 10))"#,
    );
    assert!(e.contains("source.env") && e.contains("no variant"), "{e}");
}

#[test]
fn arms_and_targets_that_would_share_a_unit_folder_are_told_apart() {
    let head = r#"(version: 1, name: "x", source: Policy("policies/cartpole-ppo"), "#;
    let e = invalid(&format!(
        "{head} targets: [Env(id: \"CartPole-v1\")], strategies: [(name: \"a/b\"), (name: \"a_b\")], budget: 100, eval: (every: 10))"
    ));
    assert!(e.contains("field `strategies`") && e.contains("share the unit folder \"a_b\""), "{e}");
    // Two variants whose names differ only in characters a file name cannot hold get distinct keys.
    let variants: Vec<PathBuf> = ["a/b", "a_b"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let path = std::env::temp_dir().join(format!("headstart-variant-{}-{i}.ron", std::process::id()));
            std::fs::write(&path, format!("(name: {name:?}, env: (id: \"CartPole-v1\"))")).unwrap();
            path
        })
        .collect();
    let mut experiment = smoke();
    experiment.targets = variants.iter().map(|p| headstart::study::experiment::Target::Variant(p.clone())).collect();
    let targets = validate(&experiment, &Registry::builtin()).unwrap().targets;
    let folders: Vec<String> = targets.iter().map(|t| t.key.file_name()).collect();
    assert_eq!(folders, ["a_b", "a_b-2"]);
    for p in variants {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn the_report_shows_each_target_its_own_figure() {
    use headstart::study::figures::Figures;
    use headstart::study::summary::TargetSummary;
    let target = |key: &str| TargetSummary {
        key: key.into(),
        env: "CartPole-v1".into(),
        threshold: 475.0,
        random_return: 20.0,
        curves: Vec::new(),
        comparisons: Vec::new(),
    };
    let summary = study::Summary {
        experiment: "x".into(),
        source: "policies/cartpole-ppo".into(),
        source_steps: 0,
        sources: Vec::new(),
        seeds: 1,
        budget: 100,
        primary: "area".into(),
        family: 0,
        targets: vec![target("X"), target("X-2")],
        aggregate: Vec::new(),
        unaggregated: Vec::new(),
        failures: Vec::new(),
        guard: None,
        partial: None,
    };
    let figures = Figures {
        curves: vec!["curves-X.png".into(), "curves-X-2.png".into()],
        metrics: "metrics.png".into(),
        profile: String::new(),
    };
    let text = headstart::study::report::report_markdown(&smoke(), &summary, &figures);
    let first = &text[text.find("\n## X\n").unwrap()..text.find("\n## X-2\n").unwrap()];
    assert!(first.contains("(curves-X.png)") && !first.contains("curves-X-2.png"), "{first}");
}

/// A study with three pretraining seeds runs end to end: three cached sources, target seed k
/// transferring from source k mod 3, and a report that shows both levels of variance.
#[test]
fn a_study_with_three_source_seeds_reports_both_levels_of_variance() {
    let dir = out("source-seeds");
    std::env::set_current_dir(root()).unwrap();
    let text = r#"(version: 1, name: "source-seeds", source: Pretrain(algorithm: Ppo, preset: "CartPole-v1",
        env: Env(id: "CartPole-v1"), steps: 2048, seeds: [0, 1, 2]), targets: [Env(id: "CartPole-v1", params: {"length": 0.65})],
        seeds: 6, budget: 1024, eval: (every: 512, episodes: 2), resamples: 200)"#;
    let experiment: Experiment = headstart::util::ron_options().from_str(text).unwrap();
    let summary = run(&experiment, &Registry::builtin(), &dir);
    assert_eq!(summary.sources.len(), 3, "{:?}", summary.sources);
    let sources: std::collections::BTreeSet<&String> = summary.sources.iter().collect();
    assert_eq!(sources.len(), 3, "three distinct checkpoints");
    // Each finetune unit names the source of its seed.
    for u in study::read_units(&dir).unwrap().iter().filter(|u| u.arm.as_str() == "finetune") {
        assert_eq!(u.report.as_ref().unwrap().source, summary.sources[(u.seed % 3) as usize], "seed {}", u.seed);
    }
    let area = summary.targets[0].comparisons[0].metrics.iter().find(|m| m.metric == "area").unwrap();
    let levels = area.levels.expect("two levels of variance");
    assert_eq!(levels.sources, 3);
    assert!(levels.between_sources_sd.is_finite() && levels.within_source_sd.is_finite(), "{levels:?}");
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        report.contains("3 source checkpoints") && report.contains("sd of the difference between sources"),
        "{report}"
    );
    // `report` recomputes the same from the folder.
    let again = study::report(&dir).unwrap();
    assert_eq!(format!("{:?}", again.targets), format!("{:?}", summary.targets));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A threshold at or below what random actions score would turn every normalised score around:
/// refused. A reward transform under the environment's default threshold gets a warning.
#[test]
fn thresholds_are_checked_against_the_random_policy() {
    let head = r#"(version: 1, name: "x", source: Policy("policies/cartpole-ppo"), "#;
    let e = invalid(&format!(
        "{head} targets: [Env(id: \"CartPole-v1\")], budget: 100, eval: (every: 10), threshold: 15.0)"
    ));
    assert!(e.contains("field `threshold`") && e.contains("not above the random policy's return"), "{e}");
    let mut experiment = smoke();
    let mut spec = EnvSpec::new("CartPole-v1");
    spec.transforms = vec![headstart::env::Transform::ScaleReward(100.0)];
    experiment.targets = vec![headstart::study::experiment::Target::Env(spec)];
    let e =
        validate(&experiment, &Registry::builtin()).expect_err("random actions score ~2000 on rewards scaled by 100");
    assert!(e.to_string().contains("not above the random policy's return"), "{e}");
    let mut spec = EnvSpec::new("CartPole-v1");
    spec.transforms = vec![headstart::env::Transform::ScaleReward(0.01)];
    experiment.targets = vec![headstart::study::experiment::Target::Env(spec)];
    let validated = validate(&experiment, &Registry::builtin()).unwrap();
    assert!(validated.warnings.iter().any(|w| w.contains("ScaleReward")), "{:?}", validated.warnings);
}

/// A source may list several policies: seed k transfers from policy k mod K; policies that are
/// not the same kind of agent are refused, naming the one at fault.
#[test]
fn a_study_may_list_several_source_policies() {
    let dir = out("policies");
    std::env::set_current_dir(root()).unwrap();
    let text = r#"(version: 1, name: "policies", source: Policies(["policies/cartpole-ppo", "policies/cartpole-ppo-randomized"]),
        targets: [Env(id: "CartPole-v1", params: {"length": 0.65})], seeds: 4, budget: 512, eval: (every: 512, episodes: 2),
        resamples: 200)"#;
    let experiment: Experiment = headstart::util::ron_options().from_str(text).unwrap();
    let summary = run(&experiment, &Registry::builtin(), &dir);
    assert_eq!(summary.sources, ["policies/cartpole-ppo", "policies/cartpole-ppo-randomized"]);
    for u in study::read_units(&dir).unwrap().iter().filter(|u| u.arm.as_str() == "finetune") {
        assert_eq!(u.report.as_ref().unwrap().source, summary.sources[(u.seed % 2) as usize], "seed {}", u.seed);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let e = invalid(
        r#"(version: 1, name: "x", source: Policies(["policies/cartpole-ppo", "policies/acrobot-ppo"]),
            targets: [Env(id: "CartPole-v1")], budget: 100, eval: (every: 10))"#,
    );
    assert!(e.contains("policies/acrobot-ppo") && e.contains("must share algorithm, network and spaces"), "{e}");
}

/// A transfer matrix end to end: two sources (the shipped PPO policy and the one trained on randomised poles) by two targets, scratch once per target; each cell transfers from its own source,
/// the report has the matrix, `matrix.csv` one row per cell, and the figure exists.
#[test]
fn a_transfer_matrix_runs_each_cell_from_its_source_and_reports_the_matrix() {
    std::env::set_current_dir(root()).unwrap();
    let text = r#"(version: 1, name: "matrix", resamples: 200,
        source: Matrix([("ours", Policy("policies/cartpole-ppo")), ("randomized", Policy("policies/cartpole-ppo-randomized"))]),
        targets: [Env(id: "CartPole-v1", params: {"length": 0.65}), Env(id: "CartPole-v1", params: {"masspole": 0.3})],
        seeds: 3, budget: 2048, eval: (every: 1024, episodes: 2))"#;
    let experiment: Experiment = headstart::util::ron_options().from_str(text).unwrap();
    let registry = Registry::builtin();
    let dir = out("matrix");
    let summary = run(&experiment, &registry, &dir);
    // Scratch, then one arm per source, on each target.
    for t in &summary.targets {
        let arms: Vec<&str> = t.curves.iter().map(|c| c.arm.as_str()).collect();
        assert_eq!(arms, ["scratch", "ours", "randomized"]);
        assert_eq!(t.comparisons.len(), 2);
    }
    assert_eq!(summary.family, 4, "the matrix is one Holm family");
    // Each cell transferred from its own source (the transfer report names it).
    let units = study::read_units(&dir).unwrap();
    for u in units.iter().filter(|u| u.arm != "scratch") {
        let source = &u.report.as_ref().unwrap().source;
        let expected = if u.arm == "ours" { "cartpole-ppo" } else { "cartpole-ppo-randomized" };
        assert!(source.ends_with(expected), "{} transferred from {source}", u.arm);
    }
    let csv = std::fs::read_to_string(dir.join("matrix.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.starts_with("source,strategy,target,transfer_mean,scratch_mean,difference"), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("randomized,finetune,CartPole-v1-masspole=0.3,")), "{csv}");
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(report.contains("## Transfer matrix") && report.contains("| source \\ target |"), "{report}");
    assert!(report.contains("Best source per target"), "{report}");
    assert!(dir.join("matrix.png").exists() && dir.join("matrix.svg").exists());
    let record = std::fs::read_to_string(dir.join("source.ron")).unwrap();
    assert!(record.contains("members") && record.contains("\"ours\""), "{record}");
    // The predictors, validated against this matrix: every cell, every predictor.
    let validated = study::predictors::validate(&dir, &registry).unwrap();
    assert_eq!(validated.cells, 4);
    let names: Vec<&str> = validated.predictors.iter().map(|p| p.predictor.as_str()).collect();
    assert_eq!(names, ["zero_shot", "cka", "dynamics", "logme"]);
    let cells = std::fs::read_to_string(dir.join("predictors.csv")).unwrap();
    assert_eq!(cells.lines().count(), 5, "{cells}");
    for line in cells.lines().skip(1) {
        assert!(line.split(',').skip(2).all(|v| v.parse::<f64>().is_ok_and(f64::is_finite)), "{line}");
    }
    assert!(dir.join("predictors.ron").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_matrix_is_refused_where_its_cells_would_not_mean_what_they_say() {
    let head = r#"(version: 1, name: "x", targets: [Env(id: "CartPole-v1")], budget: 100, eval: (every: 10), "#;
    let e = invalid(&format!(r#"{head} source: Matrix([("a", Policy("policies/cartpole-ppo"))]))"#));
    assert!(e.contains("field `source`") && e.contains("at least two sources"), "{e}");
    let e = invalid(&format!(
        r#"{head} source: Matrix([("a", Policy("policies/cartpole-ppo")), ("a", Policy("policies/cartpole-ppo-randomized"))]))"#
    ));
    assert!(e.contains("would share a folder"), "{e}");
    let e = invalid(&format!(
        r#"{head} source: Matrix([("a", Policy("policies/cartpole-ppo")), ("b", Policies(["policies/cartpole-ppo"]))]))"#
    ));
    assert!(e.contains("Matrix source \"b\"") && e.contains("Policies"), "{e}");
    let e = invalid(&format!(
        r#"{head} source: Matrix([("a", Policy("policies/cartpole-ppo")), ("b", Policy("policies/cartpole-ppo-randomized"))]), against: ["finetune"])"#
    ));
    assert!(e.contains("field `against`"), "{e}");
    // Sources of different algorithms or spaces: named.
    let e = invalid(&format!(
        r#"{head} source: Matrix([("a", Policy("policies/cartpole-ppo")), ("b", Policy("policies/acrobot-ppo"))]))"#
    ));
    assert!(e.contains("Matrix source \"b\""), "{e}");
}
