//! Multitask sources: named tasks in shared spaces, a PPO network with an input layer and a head
//! per task whose parts learn only from their own task, checkpoints that keep the tasks, transfer
//! that starts a target as one task's network, and the interference table in a study's report.


use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::AtomicBool;

use headstart::agent::checkpoint;
use headstart::agent::train::{Curve, Task, train};
use headstart::agent::{Agent, AgentConfig, TaskNets};
use headstart::env::tasks::{Heads, TaskEnv};
use headstart::env::{Action, Env, EnvSpec, Registry, Tasks, VecEnv};
use headstart::study::experiment::Experiment;
use headstart::study::{self, RunOptions, RunOutcome};
use headstart::transfer::{self, Fate, Frozen, Strategy};

fn tasks() -> Tasks {
    Tasks::new(vec![
        ("short".into(), EnvSpec::new("CartPole-v1").with("length", 0.3)),
        ("acrobot".into(), EnvSpec::new("Acrobot-v1")),
    ])
}

fn config(registry: &Registry, tasks: &Tasks) -> AgentConfig {
    let layout = tasks.layout(registry).unwrap();
    AgentConfig::from_ron("Ppo(n_envs: 4, n_steps: 64, batch_size: 64, n_epochs: 2, normalize_obs: true)")
        .unwrap()
        .with_tasks(TaskNets::of(&layout))
        .unwrap()
}

fn values(agent: &dyn Agent) -> HashMap<String, Vec<f32>> {
    agent.tensors().into_iter().map(|(n, t)| (n, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap())).collect()
}

/// Each task's observation is placed in its own block with its one-hot id; each acts on its own
/// slice of the actions, and an action of another task's slice is refused naming the task.
#[test]
fn tasks_share_spaces_each_in_its_block_and_slice() {
    let registry = Registry::builtin();
    let tasks = tasks();
    let layout = tasks.layout(&registry).unwrap();
    assert_eq!(layout.obs_dim(), 4 + 6 + 2);
    assert_eq!(layout.action_slices(), vec![(0, 2), (2, 3)]);
    let mut acrobot = TaskEnv::new(&registry, &tasks, 1).unwrap();
    let (obs, _) = acrobot.reset(Some(0)).unwrap();
    assert!(obs[..4].iter().all(|&x| x == 0.0) && obs[10..] == [0.0, 1.0]);
    let mut plain = registry.make(&EnvSpec::new("Acrobot-v1")).unwrap();
    assert_eq!(&obs[4..10], &plain.reset(Some(0)).unwrap().0[..]);
    let e = acrobot.step(&Action::Discrete(1)).unwrap_err().to_string();
    assert!(e.contains("task acrobot") && e.contains("2..4"), "{e}");
    let stepped = acrobot.step(&Action::Discrete(4)).unwrap();
    assert_eq!(&stepped.obs[4..10], &plain.step(&Action::Discrete(2)).unwrap().obs[..]);
    // A shared head needs one action space.
    let shared = Tasks { heads: Heads::Shared, ..tasks.clone() };
    let e = shared.layout(&registry).unwrap_err().to_string();
    assert!(e.contains("Shared") && e.contains("task acrobot"), "{e}");
    let e = Tasks::new(vec![("a".into(), EnvSpec::new("CartPole-v1")), ("a".into(), EnvSpec::new("Acrobot-v1"))])
        .layout(&registry)
        .unwrap_err()
        .to_string();
    assert!(e.contains("two tasks are named \"a\""), "{e}");
    let e = AgentConfig::from_ron("Ppo(n_envs: 3)")
        .unwrap()
        .with_tasks(TaskNets::of(&layout))
        .unwrap()
        .build(&layout.observation_space(), &layout.action_space(), 0)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("n_envs") && e.contains("multiple"), "{e}");
}

/// Trained on task 0 alone, the network's parts for task 1 (its input layer's columns, its
/// head's rows) stay bit for bit where they started: a task's parts get gradients only from
/// their own task; the shared trunk and task 0's parts move.
#[test]
fn a_tasks_input_layer_and_head_learn_only_from_that_task() {
    tch::set_num_threads(1);
    let registry = Registry::builtin();
    let tasks = tasks();
    let layout = tasks.layout(&registry).unwrap();
    let mut agent = config(&registry, &tasks).build(&layout.observation_space(), &layout.action_space(), 0).unwrap();
    let before = values(agent.as_ref());
    let only_short: Vec<Box<dyn Env>> =
        (0..4).map(|_| Box::new(TaskEnv::new(&registry, &tasks, 0).unwrap()) as Box<dyn Env>).collect();
    let mut envs = VecEnv::new(only_short).unwrap();
    agent.learn(&mut envs, 2048, &mut |_| ControlFlow::Continue(())).unwrap();
    let after = values(agent.as_ref());
    let columns = |w: &[f32], cols: std::ops::Range<usize>| -> Vec<f32> {
        w.chunks(12).flat_map(|row| row[cols.clone()].to_vec()).collect()
    };
    for net in ["actor", "critic"] {
        let w = format!("{net}.trunk.0.weight");
        assert_eq!(columns(&before[&w], 4..10), columns(&after[&w], 4..10), "{net}: acrobot's input columns moved");
        assert_eq!(columns(&before[&w], 11..12), columns(&after[&w], 11..12), "{net}: acrobot's id column moved");
        assert_ne!(columns(&before[&w], 0..4), columns(&after[&w], 0..4), "{net}: the short pole's input did not learn");
    }
    let head = "actor.head.weight";
    assert_eq!(before[head][2 * 64..], after[head][2 * 64..], "acrobot's head rows moved");
    assert_ne!(before[head][..2 * 64], after[head][..2 * 64]);
    assert_eq!(before["actor.head.bias"][2..], after["actor.head.bias"][2..]);
    assert_ne!(before["actor.trunk.1.weight"], after["actor.trunk.1.weight"], "the shared trunk did not learn");
}

/// A trained multitask network round-trips through a checkpoint (its card keeps the tasks),
/// and a target started as task `t` computes the source's policy and value on `t`'s
/// observations; a task not in the source is refused naming the field.
#[test]
fn a_multitask_checkpoint_round_trips_and_transfers_as_one_task() {
    tch::set_num_threads(1);
    let registry = Registry::builtin();
    let tasks = tasks();
    let layout = tasks.layout(&registry).unwrap();
    let mut agent = config(&registry, &tasks).build(&layout.observation_space(), &layout.action_space(), 1).unwrap();
    train(&registry, &Task::Tasks(tasks.clone()), agent.as_mut(), 3000, &mut Curve::default(), &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    let dir = std::env::temp_dir().join(format!("headstart-mt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let info = checkpoint::CardInfo {
        env: &tasks.tasks[0].1,
        mixture: None,
        tasks: Some(&tasks),
        observation_space: &layout.observation_space(),
        action_space: &layout.action_space(),
        eval: None,
        produced_by: "tests/multitask.rs".into(),
        origin: None,
    };
    checkpoint::save(agent.as_ref(), info, &dir).unwrap();
    let loaded = checkpoint::load(&dir).unwrap();
    assert_eq!(loaded.card.tasks.as_ref(), Some(&tasks));
    assert_eq!(values(loaded.agent.as_ref()), values(agent.as_ref()));
    for (t, name) in ["short", "acrobot"].into_iter().enumerate() {
        let mut shared = TaskEnv::new(&registry, &tasks, t).unwrap();
        let (obs, _) = shared.reset(Some(5)).unwrap();
        let strategy = Strategy::from_ron(&format!("(task: {name:?})")).unwrap();
        let (target, report) = transfer::prepare(&registry, &loaded, "mt", &tasks.tasks[t].1, &strategy, None, 0).unwrap();
        assert!(report.state.iter().any(|s| s.contains(&format!("task {name:?}"))), "{:?}", report.state);
        let (start, width) = layout.obs_block(t);
        let source = loaded.agent.outputs(&obs);
        let (first, n) = layout.action_slices()[t];
        for ((what, a), (_, b)) in target.outputs(&obs[start..start + width]).into_iter().zip(source) {
            let b = if what == "probs" { b[first..first + n].to_vec() } else { b };
            assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5), "{name} {what}: {a:?} vs {b:?}");
        }
    }
    // The source's part names: the shared trunk frozen, the task's head fresh.
    let strategy = Strategy::from_ron(r#"(task: "short", freeze: ["trunk"], reinit: ["heads.short"])"#).unwrap();
    let (_, report) = transfer::prepare(&registry, &loaded, "mt", &tasks.tasks[0].1, &strategy, None, 0).unwrap();
    let fate = |name: &str| report.parameters.iter().find(|p| p.name == name).unwrap();
    assert_eq!(fate("actor.trunk.1.weight").frozen, Frozen::Always);
    assert_eq!(fate("critic.trunk.1.bias").frozen, Frozen::Always);
    assert_eq!(fate("actor.trunk.0.weight").frozen, Frozen::No);
    assert_eq!(fate("actor.head.weight").fate, Fate::Reinit);
    let wrong = Strategy::from_ron(r#"(task: "short", freeze: ["inputs.acrobot"])"#).unwrap();
    let e = transfer::prepare(&registry, &loaded, "mt", &tasks.tasks[0].1, &wrong, None, 0).err().unwrap().to_string();
    assert!(e.contains("freeze") && e.contains("inputs.short"), "{e}");
    let e = transfer::prepare(&registry, &loaded, "mt", &tasks.tasks[0].1, &Strategy::from_ron("(task: \"long\")").unwrap(), None, 0)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("task") && e.contains("short, acrobot"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A study whose source is named tasks: pretrained once, transferred to a held-out pole, with
/// the interference table in its report.
#[test]
fn a_study_from_a_multitask_source_reports_interference() {
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
    let text = r#"(version: 1, name: "mt", source: Pretrain(algorithm: Ppo, steps: 3072, seeds: [0, 1],
        env: Tasks(tasks: [("short", Env(id: "CartPole-v1", params: {"length": 0.3})), ("acrobot", Env(id: "Acrobot-v1"))]),
        config: Ppo(n_envs: 4, n_steps: 64, batch_size: 64, n_epochs: 2)),
        targets: [Variant("envs/cartpole-long-pole.ron")], strategies: [(name: "as-short", task: "short")], seeds: 2,
        budget: 1024, eval: (every: 512, episodes: 2))"#;
    let experiment: Experiment = headstart::util::ron_options().from_str(text).unwrap();
    let dir = std::env::temp_dir().join(format!("headstart-mt-study-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut options = RunOptions::new(dir.clone());
    (options.sources, options.jobs, options.quiet) = (dir.join("sources"), 2, true);
    let outcome = study::run(&experiment, &Registry::builtin(), &options, &AtomicBool::new(false)).unwrap();
    assert!(matches!(outcome, RunOutcome::Complete(_)));
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(report.contains("## The multitask source: interference or positive sharing"), "{report}");
    assert!(report.contains("| short |") && report.contains("| acrobot |"), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Named tasks need two or more: an experiment with fewer is refused naming the field, not a panic.
#[test]
fn fewer_than_two_tasks_are_refused() {
    for tasks in ["[]", "[(\"only\", Env(id: \"CartPole-v1\"))]"] {
        let text = format!(
            r#"(version: 1, name: "x", source: Pretrain(algorithm: Ppo, steps: 100, env: Tasks(tasks: {tasks})),
            targets: [Env(id: "CartPole-v1")], budget: 100, eval: (every: 50))"#
        );
        let experiment: Experiment = headstart::util::ron_options().from_str(&text).unwrap();
        let e = headstart::study::validate::validate(&experiment, &Registry::builtin()).err().unwrap().to_string();
        assert!(e.contains("source.env") && e.contains("two tasks"), "{e}");
    }
}
