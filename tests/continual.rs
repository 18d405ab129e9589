//! Sequences of tasks: importance against autograd, PackNet's frozen weights, the performance
//! matrix against the records and the final agent, a kill -9 in the middle of a sequence, and
//! the refusals `validate` names.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use headstart::agent::session::Session;
use headstart::agent::train::Task;
use headstart::agent::{Agent, AgentConfig};
use headstart::env::{EnvSpec, Registry};
use headstart::transfer::continual::{self as protect, Protect};
use tch::{Kind, Tensor};

const BIN: &str = env!("CARGO_BIN_EXE_headstart");

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("headstart-continual-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn agent(config: &str, env: &str) -> Box<dyn Agent> {
    let env = Registry::builtin().make(&EnvSpec::new(env)).unwrap();
    AgentConfig::from_ron(config).unwrap().build(env.observation_space(), env.action_space(), 3).unwrap()
}

fn states(n: usize, dim: usize) -> Vec<f32> {
    let t = Tensor::randn([n as i64, dim as i64], (Kind::Float, tch::Device::Cpu));
    let mut out = vec![0.0f32; n * dim];
    t.copy_data(&mut out, n * dim);
    out
}

/// What an importance is, by autograd in `f64`: per state, the network's outputs from leaf
/// copies of its layers; EWC squares the gradient of each output (a categorical actor: of each
/// action's log-probability, weighted by its probability), MAS takes the absolute gradient of
/// the squared output norm.
fn by_autograd(
    agent: &dyn Agent,
    net: &str,
    categorical: bool,
    mas: bool,
    states: &[f32],
    dim: usize,
) -> HashMap<String, Vec<f64>> {
    by_autograd_sliced(agent, net, categorical, mas, states, dim, None)
}

/// [`by_autograd`] with a head per task: the rows' task acts on `slice` of the logits alone.
fn by_autograd_sliced(
    agent: &dyn Agent,
    net: &str,
    categorical: bool,
    mas: bool,
    states: &[f32],
    dim: usize,
    slice: Option<(i64, i64)>,
) -> HashMap<String, Vec<f64>> {
    let live: HashMap<String, Tensor> = agent.tensors().into_iter().collect();
    let mut names = Vec::new();
    let mut i = 0;
    while live.contains_key(&format!("{net}.trunk.{i}.weight")) {
        names.push(format!("{net}.trunk.{i}"));
        i += 1;
    }
    names.push(format!("{net}.head"));
    let relu = matches!(agent.algo(), headstart::agent::Algo::Dqn);
    let leaves: Vec<(String, Tensor)> = names
        .iter()
        .flat_map(|n| ["weight", "bias"].map(|s| format!("{n}.{s}")))
        .map(|n| {
            let t = live[&n].detach().to_kind(Kind::Double).set_requires_grad(true);
            (n, t)
        })
        .collect();
    let mut sums: HashMap<String, Vec<f64>> = leaves.iter().map(|(n, t)| (n.clone(), vec![0.0; t.numel()])).collect();
    let n = states.len() / dim;
    for row in states.chunks(dim) {
        let mut h = Tensor::from_slice(row).to_kind(Kind::Double).reshape([1, dim as i64]);
        for l in 0..names.len() {
            let (w, b) = (&leaves[2 * l].1, &leaves[2 * l + 1].1);
            h = h.matmul(&w.tr()) + b;
            if l + 1 < names.len() {
                h = if relu { h.relu() } else { h.tanh() };
            }
        }
        if let Some((first, n)) = slice.filter(|_| categorical || mas) {
            h = h.narrow(1, first, n);
        }
        let outputs = h.size()[1];
        let params: Vec<&Tensor> = leaves.iter().map(|(_, t)| t).collect();
        let mut add = |y: &Tensor, weight: f64, abs: bool| {
            let grads = Tensor::run_backward(&[y], &params, true, false);
            for ((name, _), g) in leaves.iter().zip(grads) {
                let flat = g.reshape([-1]);
                let n = flat.numel();
                let mut v = vec![0.0f64; n];
                flat.copy_data(&mut v, n);
                for (s, g) in sums.get_mut(name).unwrap().iter_mut().zip(v) {
                    *s += if abs { g.abs() } else { weight * g * g };
                }
            }
        };
        if mas {
            add(&h.square().sum(Kind::Double), 1.0, true);
        } else if categorical {
            let logp = h.log_softmax(1, Kind::Double);
            for a in 0..outputs {
                let p = logp.get(0).get(a).exp().double_value(&[]);
                add(&logp.get(0).get(a), p, false);
            }
        } else {
            for k in 0..outputs {
                add(&h.get(0).get(k), 1.0, false);
            }
        }
    }
    sums.into_iter().map(|(k, v)| (k, v.into_iter().map(|s| s / n as f64).collect())).collect()
}

fn assert_close(importance: &[(String, Tensor)], direct: &HashMap<String, Vec<f64>>, what: &str) {
    for (name, want) in direct {
        let (_, got) =
            importance.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{what}: no importance for {name}"));
        let n = got.numel();
        let mut v = vec![0.0f32; n];
        got.reshape([-1]).copy_data(&mut v, n);
        let scale = want.iter().fold(1e-12f64, |m, x| m.max(x.abs()));
        for (i, (g, w)) in v.iter().zip(want).enumerate() {
            assert!(
                ((*g as f64) - w).abs() <= 1e-5 * scale,
                "{what}: {name}[{i}] = {g}, by autograd {w} (largest {scale})"
            );
        }
    }
}

#[test]
fn ewc_fisher_and_mas_sensitivity_match_autograd() {
    let x = states(24, 4);
    let dqn = agent("Dqn(net: (hidden: [16, 8], activation: Relu))", "CartPole-v1");
    let ewc = Protect::Ewc { lambda: 1.0, samples: 24 };
    let mas = Protect::Mas { lambda: 1.0, samples: 24 };
    assert_close(
        &protect::importance(dqn.as_ref(), &ewc, &x).unwrap(),
        &by_autograd(dqn.as_ref(), "q", false, false, &x, 4),
        "DQN EWC",
    );
    assert_close(
        &protect::importance(dqn.as_ref(), &mas, &x).unwrap(),
        &by_autograd(dqn.as_ref(), "q", false, true, &x, 4),
        "DQN MAS",
    );
    let ppo = agent("Ppo(net: (hidden: [12], activation: Tanh))", "CartPole-v1");
    let fisher = protect::importance(ppo.as_ref(), &ewc, &x).unwrap();
    assert_close(&fisher, &by_autograd(ppo.as_ref(), "actor", true, false, &x, 4), "PPO actor EWC (categorical)");
    assert_close(&fisher, &by_autograd(ppo.as_ref(), "critic", false, false, &x, 4), "PPO critic EWC");
    // The importance is not trivially zero or uniform.
    let total: f64 = fisher.iter().map(|(_, t)| t.sum(Kind::Double).double_value(&[])).sum();
    assert!(total > 0.0);
    // SAC's critics take actions: refused by name.
    let sac = agent("Sac(net: (hidden: [8], activation: Relu))", "Pendulum-v1");
    let err = protect::importance(sac.as_ref(), &ewc, &states(4, 3)).unwrap_err().to_string();
    assert!(err.contains("protect") && err.contains("SAC"), "{err}");
}

/// With a head per task (a multitask network over the tasks' shared spaces), a categorical
/// policy's Fisher is its task's slice of the logits alone, as the agent masks the others.
#[test]
fn the_fisher_of_a_head_per_task_is_its_slice() {
    use headstart::env::tasks::{TaskEnv, Tasks};
    let registry = Registry::builtin();
    let tasks = Tasks::new(vec![("cartpole".into(), EnvSpec::new("CartPole-v1")), ("acrobot".into(), EnvSpec::new("Acrobot-v1"))]);
    let layout = tasks.layout(&registry).unwrap();
    let config = AgentConfig::from_ron("Ppo(n_envs: 2, net: (hidden: [12], activation: Tanh))")
        .unwrap()
        .with_tasks(headstart::agent::TaskNets::of(&layout))
        .unwrap();
    let agent = config.build(&layout.observation_space(), &layout.action_space(), 5).unwrap();
    let mut env = TaskEnv::new(&registry, &tasks, 1).unwrap();
    let x = protect::visited_states(&mut env, agent.as_ref(), 16, 9).unwrap();
    let dim = layout.obs_dim();
    let ewc = Protect::Ewc { lambda: 1.0, samples: 16 };
    let fisher = protect::importance(agent.as_ref(), &ewc, &x).unwrap();
    // Acrobot's three actions come after CartPole's two.
    assert_close(&fisher, &by_autograd_sliced(agent.as_ref(), "actor", true, false, &x, dim, Some((2, 3))), "per-task head EWC");
    let mas = protect::importance(agent.as_ref(), &Protect::Mas { lambda: 1.0, samples: 16 }, &x).unwrap();
    assert_close(&mas, &by_autograd_sliced(agent.as_ref(), "actor", false, true, &x, dim, Some((2, 3))), "per-task head MAS");
}

#[test]
fn packnet_keeps_earlier_tasks_weights_bit_identical() {
    let registry = Registry::builtin();
    let dir = tmp("packnet");
    let first = EnvSpec::new("CartPole-v1");
    let config =
        "Dqn(learning_starts: 200, train_freq: 16, gradient_steps: 8, net: (hidden: [16, 16], activation: Relu))";
    let mut a = agent(config, "CartPole-v1");
    Session::new(&registry, &Task::Env(first.clone()), a.as_mut(), 1500)
        .unwrap()
        .train(&mut |_| std::ops::ControlFlow::Continue(()))
        .unwrap();
    let mut owners = protect::free_owners(a.as_ref());
    protect::prune(a.as_mut(), &mut owners, 0, 0.5);
    // Half of each matrix kept, the rest zero; biases the first task's.
    for (name, owner) in &owners {
        let kept = owner.eq(0.0).sum(Kind::Int64).int64_value(&[]);
        let n = owner.numel() as i64;
        if name.ends_with("weight") {
            assert_eq!(kept, (n + 1) / 2, "{name}");
        } else {
            assert_eq!(kept, n, "{name}");
        }
    }
    common::save_checkpoint(a.as_ref(), &first, &dir.join("task0"), "test");
    let before: HashMap<String, Tensor> = a.tensors().into_iter().map(|(n, t)| (n, t.copy())).collect();
    let source = headstart::agent::checkpoint::load(&dir.join("task0")).unwrap();
    let mut second = EnvSpec::new("CartPole-v1");
    second.params.insert("length".into(), 1.0);
    let (mut b, _) = headstart::transfer::prepare(
        &registry,
        &source,
        "task0",
        &second,
        &headstart::transfer::Strategy::finetune(),
        None,
        3,
    )
    .unwrap();
    protect::freeze(b.as_mut(), &owners, 1);
    Session::new(&registry, &Task::Env(second), b.as_mut(), 1500)
        .unwrap()
        .train(&mut |_| std::ops::ControlFlow::Continue(()))
        .unwrap();
    let after: HashMap<String, Tensor> = b.tensors().into_iter().collect();
    let mut moved = 0;
    for (name, owner) in &owners {
        let (old, new) = (before[name].reshape([-1]), after[name].reshape([-1]));
        let own = owner.reshape([-1]);
        for i in 0..own.numel() as i64 {
            let (o, n) = (old.double_value(&[i]), new.double_value(&[i]));
            if own.double_value(&[i]) == 0.0 {
                assert_eq!(o.to_bits(), n.to_bits(), "{name}[{i}] belongs to task 0 and moved");
            } else if o != n {
                moved += 1;
            }
        }
    }
    assert!(moved > 100, "the free weights trained on the second task ({moved} moved)");
    // Evaluating task 0 through its mask leaves every weight as it was.
    let snapshot: Vec<Tensor> = b.tensors().into_iter().map(|(_, t)| t.copy()).collect();
    let zeros = protect::with_task_weights(b.as_mut(), &owners, 0, &[], |a| {
        a.tensors()
            .iter()
            .filter(|(n, _)| n == "q.trunk.0.weight")
            .map(|(_, t)| t.eq(0.0).sum(Kind::Int64).int64_value(&[]))
            .sum::<i64>()
    })
    .unwrap();
    assert!(zeros >= 32, "task 0's view zeroes the second task's weights ({zeros} zeros)");
    for ((_, t), s) in b.tensors().iter().zip(&snapshot) {
        assert!(t.equal(s), "with_task_weights puts every weight back");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A small sequence: DQN on two CartPole tasks (the second with swapped pushes), fine-tuning and
/// EWC, 3 seeds, 1 500 steps per task.
fn write_sequence(dir: &Path, name: &str, methods: &str, tasks: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let swapped = root.join("envs/cartpole-swapped-actions.ron");
    let tasks = tasks.replace("SWAPPED", &format!("Variant({:?})", swapped.display()));
    let path = dir.join(format!("{name}.ron"));
    std::fs::write(
        &path,
        format!(
            "(version: 1, name: {name:?}, sequence: [{tasks}], \
             agent: (algorithm: Dqn, config: Dqn(learning_starts: 200, train_freq: 16, gradient_steps: 8, net: (hidden: [16, 16], activation: Relu))), \
             methods: [{methods}], seeds: 3, budget: 1500, eval: (every: 500, episodes: 3))"
        ),
    )
    .unwrap();
    path
}

fn run(file: &Path, out: &Path) -> std::process::Output {
    Command::new(BIN).args(["run", "-q", "--jobs", "2"]).arg(file).arg("--out").arg(out).output().unwrap()
}

#[test]
fn the_performance_matrix_is_the_records_and_the_final_agent() {
    let dir = tmp("matrix");
    let file = write_sequence(
        &dir,
        "two",
        "(name: \"ewc\", protect: Ewc(lambda: 10.0, samples: 50))",
        "Env(id: \"CartPole-v1\"), SWAPPED",
    );
    let out = dir.join("two");
    let o = run(&file, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(out.join("summary.ron")).unwrap();
    let summary: headstart::study::continual::ContinualSummary =
        headstart::util::ron_options().from_str(&text).unwrap();
    let tasks: Vec<headstart::study::continual::TaskInfo> =
        headstart::util::ron_options().from_str(&std::fs::read_to_string(out.join("tasks.ron")).unwrap()).unwrap();
    assert_eq!(summary.methods.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["finetune", "ewc", "single-task"]);
    for m in &summary.methods {
        // R[p][j] recomputed from the records: the mean over seeds of task j's normalised return
        // at the last evaluation of phase p.
        let mut r = [[0.0f64; 2]; 2];
        for seed in 0..3 {
            let path = out.join("units").join(&m.name).join(format!("seed{seed}.ron"));
            let record: headstart::study::continual::unit::SequenceRecord =
                headstart::util::ron_options().from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(record.evals.len(), 2 * 4, "0, 500, 1000, 1500 in each phase");
            for p in 0..2 {
                let last = record.evals.iter().find(|e| e.phase == p && e.nominal == 1500).unwrap();
                for j in 0..2 {
                    r[p][j] += tasks[j].normalise(last.returns[j]) / 3.0;
                }
            }
            // The last row is what the agent left at the end of the sequence scores on each task.
            let agent =
                headstart::agent::checkpoint::load(&headstart::study::continual::unit::phase_dir(&path, 1)).unwrap();
            let registry = Registry::builtin();
            let last = record.evals.last().unwrap();
            for (j, t) in tasks.iter().enumerate() {
                let mut envs: Vec<_> = (0..3).map(|_| registry.make(&t.task.env).unwrap()).collect();
                let stats =
                    headstart::agent::evaluate_on(agent.agent.as_ref(), &mut envs, 3, true, 1_000_000 + 10_000 * seed)
                        .unwrap();
                assert_eq!(stats.mean, last.returns[j], "{} seed {seed} task {j}", m.name);
            }
            assert!(
                !headstart::study::continual::unit::phase_dir(&path, 0).exists(),
                "earlier task changes are removed"
            );
        }
        for p in 0..2 {
            for j in 0..2 {
                assert!(
                    (m.matrix[p][j] - r[p][j]).abs() < 1e-12,
                    "{}: R[{p}][{j}] {} vs {}",
                    m.name,
                    m.matrix[p][j],
                    r[p][j]
                );
            }
        }
    }
    // The page's figures are the folder's three, inline.
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(page.matches("<figure class=\"plot\"><svg").count(), 3, "three figures inline");
    for f in [
        "report.md",
        "report.html",
        "metrics.csv",
        "performance.csv",
        "sequence-matrix.png",
        "sequence-curves.svg",
        "sequence-tradeoff.png",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    // `report` renders the same summary again from the folder.
    let before = std::fs::read_to_string(out.join("summary.ron")).unwrap();
    let o = Command::new(BIN).arg("report").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(out.join("summary.ron")).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// EWC and PackNet, the methods with state besides the agent.
const PROTECTED: &str =
    "(name: \"ewc\", protect: Ewc(lambda: 10.0, samples: 50)), (name: \"packnet\", protect: PackNet(retrain: 200))";
/// Three tasks, the second in conflict with the others.
const THREE_TASKS: &str = "Env(id: \"CartPole-v1\"), SWAPPED, Env(id: \"CartPole-v1\", params: {\"length\": 1.0})";

/// The outputs and every record of `other` byte-identical to `whole`'s.
fn assert_same_results(whole: &Path, other: &Path) {
    for f in ["summary.ron", "metrics.csv", "performance.csv"] {
        assert_eq!(std::fs::read(whole.join(f)).unwrap(), std::fs::read(other.join(f)).unwrap(), "{f}");
    }
    let records: Vec<PathBuf> = walk(&whole.join("units")).into_iter().filter(|p| is_record(p)).collect();
    assert_eq!(records.len(), 12, "finetune, ewc, packnet and single-task, 3 seeds each");
    for path in records {
        for twin in [path.clone(), path.with_extension("csv")] {
            let other = other.join(twin.strip_prefix(whole).unwrap());
            assert_eq!(std::fs::read(&twin).unwrap(), std::fs::read(&other).unwrap(), "{}", twin.display());
        }
    }
}

#[test]
fn a_sequence_killed_with_sigkill_resumes_to_the_same_result() {
    let dir = tmp("kill");
    let file = write_sequence(&dir, "three", PROTECTED, THREE_TASKS);
    let whole = dir.join("whole");
    assert!(run(&file, &whole).status.success());
    let killed = dir.join("killed");
    let mut interrupted = 0;
    for round in 0..2 {
        let mut child = Command::new(BIN)
            .args(["run", "-q", "--jobs", "2", "--claim-timeout", "2"])
            .arg(&file)
            .arg("--out")
            .arg(&killed)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Killed once some task changes are saved (and, the second time, some units recorded).
        let started = Instant::now();
        let saved = |dir: &Path| {
            walk(dir).iter().filter(|p| p.ends_with("progress.ron")).count()
                + 3 * walk(dir).iter().filter(|p| is_record(p)).count()
        };
        while saved(&killed) < 1 + 6 * round && started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(5));
        }
        interrupted += usize::from(child.try_wait().unwrap().is_none());
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(interrupted > 0, "no run was killed before it finished");
    let partial = walk(&killed.join("units")).iter().filter(|p| is_record(p)).count();
    assert!(partial < 12, "the killed runs left units to resume ({partial} recorded)");
    let o = run(&file, &killed);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_results(&whole, &killed);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_sequence_stopped_within_a_task_continues_it_bit_for_bit() {
    let dir = tmp("sigint");
    let file = write_sequence(&dir, "long", PROTECTED, THREE_TASKS);
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("budget: 1500", "budget: 6000")
        .replace("every: 500", "every: 1000");
    std::fs::write(&file, text).unwrap();
    let whole = dir.join("whole");
    assert!(run(&file, &whole).status.success());
    let stopped = dir.join("stopped");
    let child = Command::new(BIN)
        .args(["run", "-q", "--jobs", "2"])
        .arg(&file)
        .arg("--out")
        .arg(&stopped)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !walk(&stopped).iter().any(|p| p.ends_with("progress.ron")) && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Ctrl-C: the units in flight save where they are within their task.
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success(), "the run was interrupted");
    let resumes = walk(&stopped).into_iter().filter(|p| p.extension().is_some_and(|e| e == "resume")).count();
    assert!(resumes > 0, "a unit stopped within a task saved its checkpoint");
    let o = Command::new(BIN).arg("status").arg(&stopped).output().unwrap();
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && said.contains("interrupted") && said.contains("the next run continues it"), "{said}");
    let o = run(&file, &stopped);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_results(&whole, &stopped);
    let _ = std::fs::remove_dir_all(&dir);
}

fn is_record(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "ron") && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("seed"))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn validate_names_what_is_wrong() {
    let dir = tmp("validate");
    let cases = [
        ("(name: \"a/b\")", "Env(id: \"CartPole-v1\"), SWAPPED", "methods", "file-safe"),
        ("(name: \"p\", protect: PackNet(keep: 1.5))", "Env(id: \"CartPole-v1\"), SWAPPED", "protect.keep", "(0, 1]"),
        ("(name: \"e\", protect: Ewc(lambda: -1.0))", "Env(id: \"CartPole-v1\"), SWAPPED", "protect.lambda", "> 0"),
        ("(name: \"x\")", "Env(id: \"CartPole-v1\"), Env(id: \"Acrobot-v1\")", "sequence", "sequence[1]"),
        ("(name: \"x\")", "Env(id: \"CartPole-v1\")", "sequence", "at least two"),
        ("(name: \"x\", stratgy: ())", "Env(id: \"CartPole-v1\"), SWAPPED", "strategy", "stratgy"),
    ];
    for (i, (methods, tasks, field, words)) in cases.iter().enumerate() {
        let file = write_sequence(&dir, &format!("bad{i}"), methods, tasks);
        let o = Command::new(BIN).arg("validate").arg(&file).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "case {i} validated");
        assert!(err.contains(field) && err.contains(words), "case {i}: {err}");
        assert!(err.contains(&format!("bad{i}.ron")), "the error names the file: {err}");
    }
    // PPO has no replay buffer to replay from.
    let file = dir.join("ppo.ron");
    std::fs::write(
        &file,
        "(version: 1, name: \"ppo\", sequence: [Env(id: \"CartPole-v1\"), Env(id: \"CartPole-v1\", params: {\"length\": 1.0})], \
         agent: (algorithm: Ppo), methods: [(name: \"replay\", strategy: (reset: (replay: false)))], budget: 1000, eval: (every: 500))",
    )
    .unwrap();
    let o = Command::new(BIN).arg("validate").arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("replay") && err.contains("PPO"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A resumed run, or another process on the same results folder, reads the random returns that
/// the folder's `tasks.ron` records rather than playing 100 random episodes again.
#[test]
fn random_returns_are_read_from_the_results_folder() {
    use headstart::study::continual::{Sequence, sequence::check};
    let dir = tmp("recorded");
    let file = write_sequence(&dir, "recorded", "(name: \"finetune\")", "Env(id: \"CartPole-v1\"), SWAPPED");
    let (sequence, registry) = (Sequence::load(&file).unwrap(), Registry::builtin());
    let measured = check(&sequence, &registry, Some(&dir)).unwrap().tasks;
    let mut recorded = measured.clone();
    recorded[1].random_return = 3.5;
    std::fs::write(dir.join("tasks.ron"), headstart::util::to_ron(&recorded)).unwrap();
    let read = check(&sequence, &registry, Some(&dir)).unwrap().tasks;
    assert_eq!((read[0].random_return, read[1].random_return), (measured[0].random_return, 3.5));
    assert_eq!(check(&sequence, &registry, None).unwrap().tasks, measured, "no folder: measured");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sequence verdicts are right as often as they claim: with every method drawn from one
/// distribution, a study of seven methods (11 comparisons, Holm) says BETTER or WORSE anywhere in
/// at most 5 % of studies; a method really better by a standard deviation and a half is found.
#[test]
fn sequence_verdicts_hold_their_error_rate() {
    use headstart::study::continual::metrics::{Call, Shape, summarize};
    use headstart::study::continual::unit::{SequenceEval, SequenceRecord};
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};
    let task = |i: usize| headstart::study::continual::TaskInfo {
        task: headstart::study::experiment::ResolvedTarget {
            key: headstart::study::TargetId::new(format!("task{i}")),
            env: EnvSpec::new("CartPole-v1"),
            map: None,
        },
        threshold: 1.0,
        random_return: 0.0,
    };
    let tasks: Vec<_> = (0..3).map(task).collect();
    let shape = Shape { tasks: 3, phases: 3, budget: 10 };
    let methods: Vec<String> = ["finetune", "a", "b", "c", "d", "e", "single-task"].map(String::from).to_vec();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let noise = Normal::new(0.5, 0.2).unwrap();
    let (studies, mut false_calls, mut found) = (2000, 0, 0);
    for study in 0..studies {
        let shifted = study % 2 == 1;
        let mut records = Vec::new();
        for m in &methods {
            for seed in 0..5 {
                let shift = if shifted && m == "a" { 0.3 } else { 0.0 };
                let evals = (0..3)
                    .flat_map(|phase| [0, 10].map(|nominal| (phase, nominal)))
                    .map(|(phase, nominal)| SequenceEval {
                        phase,
                        nominal,
                        returns: (0..3).map(|_| noise.sample(&mut rng) + shift).collect(),
                    })
                    .collect();
                records.push(SequenceRecord {
                    method: m.clone(),
                    seed,
                    status: headstart::study::UnitStatus::Finished,
                    phases: Vec::new(),
                    evals,
                });
            }
        }
        let summary = summarize(&methods, &records, &tasks, shape);
        assert_eq!(summary.comparisons.len(), 11);
        if shifted {
            found += usize::from(summary.comparisons.iter().any(|c| c.method == "a" && c.against == "finetune" && c.call == Call::Better));
        } else {
            false_calls += usize::from(summary.comparisons.iter().any(|c| matches!(c.call, Call::Better | Call::Worse)));
        }
    }
    let rate = false_calls as f64 / (studies / 2) as f64;
    let power = found as f64 / (studies / 2) as f64;
    println!("family-wise false verdicts {:.2} %, power at 1.5 sd {:.1} %", 100.0 * rate, 100.0 * power);
    assert!(rate <= 0.065, "false verdicts in {:.2} % of null studies", 100.0 * rate);
    assert!(power >= 0.3, "a real difference found in {:.1} % of studies", 100.0 * power);
}

/// Two passes over a sequence (Continual World's CW20 is CW10 twice): four phases, and the
/// single-task reference's second pass repeats its first bit for bit (a fresh agent, the same
/// seed), so its matrix's last two rows are its first two.
#[test]
fn repeats_run_the_sequence_again() {
    let dir = tmp("repeats");
    let file = write_sequence(&dir, "twice", "(name: \"l2\", strategy: (l2_init: 0.1))", "Env(id: \"CartPole-v1\"), SWAPPED");
    let text = std::fs::read_to_string(&file).unwrap().replace("methods:", "repeats: 2, methods:");
    std::fs::write(&file, text).unwrap();
    let out = dir.join("twice");
    let o = run(&file, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: headstart::study::continual::ContinualSummary =
        headstart::util::ron_options().from_str(&std::fs::read_to_string(out.join("summary.ron")).unwrap()).unwrap();
    assert_eq!(summary.phases, 4);
    let single = summary.methods.iter().find(|m| m.name == "single-task").unwrap();
    assert_eq!(single.matrix.len(), 4);
    assert_eq!(single.matrix[2], single.matrix[0]);
    assert_eq!(single.matrix[3], single.matrix[1]);
    let l2 = summary.methods.iter().find(|m| m.name == "l2").unwrap();
    // Forgetting is defined for task 0 (last trained in phase 2 of 4) only.
    assert!(l2.forgetting_per_task[0].is_some() && l2.forgetting_per_task[1].is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Task ids: a sequence of CartPole then Acrobot (other spaces) with a head and an input layer
/// per task runs, every task evaluated in the shared spaces; DQN is refused them by name.
#[test]
fn a_head_per_task_spans_tasks_of_other_spaces() {
    let dir = tmp("heads");
    let file = dir.join("heads.ron");
    let body = |algo: &str, config: &str| {
        format!(
            "(version: 1, name: \"heads\", sequence: [Env(id: \"CartPole-v1\"), Env(id: \"Acrobot-v1\")], heads: PerTask, \
             agent: (algorithm: {algo}, config: {config}), methods: [(name: \"ewc\", protect: Ewc(lambda: 10.0, samples: 50)), \
             (name: \"packnet\", protect: PackNet())], seeds: 3, budget: 1024, eval: (every: 512, episodes: 2))"
        )
    };
    std::fs::write(&file, body("Ppo", "Ppo(n_envs: 2, n_steps: 64, batch_size: 64, n_epochs: 2, net: (hidden: [16], activation: Tanh))")).unwrap();
    let out = dir.join("out");
    let o = run(&file, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: headstart::study::continual::ContinualSummary =
        headstart::util::ron_options().from_str(&std::fs::read_to_string(out.join("summary.ron")).unwrap()).unwrap();
    assert_eq!(summary.tasks, ["CartPole-v1", "Acrobot-v1"]);
    let packnet = summary.methods.iter().find(|m| m.name == "packnet").unwrap();
    assert_eq!(packnet.backward.mean, 0.0, "PackNet keeps CartPole's weights and head");
    std::fs::write(&file, body("Dqn", "Dqn()")).unwrap();
    let o = Command::new(BIN).arg("validate").arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("`heads`") && err.contains("DQN"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
