//! Stable-Baselines3 interop against SB3 itself: the real SB3 2.9.2 models of `../shared/sb3`
//! (PPO CartPole, DQN CartPole, SAC Pendulum, an RL-Zoo-style gSDE PPO under VecNormalize),
//! imported, must compute what SB3 computed on the same observations (`expected.json`) and score
//! the same deterministic returns; damaged files must be refused by name.

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use serde_json::Value;

use headstart::agent::sb3::pickle::op;
use headstart::agent::sb3::{self, torch_file};
use headstart::agent::schedule::Schedule;
use headstart::agent::{Agent, AgentConfig, checkpoint};
use headstart::env::{Action, EnvSpec, Registry};

fn shared() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/sb3");
    assert!(dir.join("expected.json").is_file(), "{} is missing: the SB3 fixtures are needed", dir.display());
    dir
}

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(shared().join("expected.json")).unwrap()).unwrap()
}

/// A JSON field that holds a list (some are written as Python reprs in strings).
fn list(v: &Value) -> Vec<f64> {
    let parsed;
    let v = match v {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(&s.replace("True", "true").replace("False", "false")).unwrap();
            &parsed
        }
        other => other,
    };
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<f64>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Number(n) => out.push(n.as_f64().unwrap()),
            other => panic!("not a number: {other}"),
        }
    }
    walk(v, &mut out);
    out
}

fn close(what: &str, ours: &[f32], theirs: &[f64], tol: f64) {
    let worst = ours.iter().zip(theirs).map(|(&a, &b)| (a as f64 - b).abs() / b.abs().max(1.0)).fold(0.0, f64::max);
    eprintln!("{what}: largest difference {worst:.2e}");
    assert_eq!(ours.len(), theirs.len(), "{what}: {} values against {}", ours.len(), theirs.len());
    for (i, (&a, &b)) in ours.iter().zip(theirs).enumerate() {
        assert!((a as f64 - b).abs() <= tol * b.abs().max(1.0), "{what}[{i}]: headstart {a}, SB3 {b}");
    }
}

/// What `model.predict(obs, deterministic=True)` gives, flattened: action indices or values.
fn deterministic_actions(agent: &dyn Agent, obs: &[f32]) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    agent
        .act(obs, true, &mut rng)
        .into_iter()
        .flat_map(|a| match a {
            Action::Discrete(i) => vec![i as f32],
            Action::Continuous(v) => v.to_vec(),
        })
        .collect()
}

fn import_from(folder: &Path, entry: &Value) -> sb3::Model {
    let file = entry["file"].as_str().unwrap();
    // A Zoo folder is imported as a folder (with its vec_normalize.pkl and config.yml).
    let path = match entry.get("vec_normalize") {
        Some(_) => folder.join(file).parent().unwrap().to_path_buf(),
        None => folder.join(file),
    };
    sb3::read(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Each model of `folder`'s `expected.json`, imported, computes what SB3 computed: the policy's
/// outputs, the critics' values, `predict(deterministic=True)`, and (with the bridge) the same
/// deterministic returns on Gymnasium's environment.
fn compare_with_sb3(folder: &Path) {
    tch::set_num_threads(1);
    let expected: Value = serde_json::from_slice(&std::fs::read(folder.join("expected.json")).unwrap()).unwrap();
    let registry = Registry::builtin();
    for (name, entry) in expected["models"].as_object().unwrap() {
        let model = import_from(folder, entry);
        let env_id = entry["env_id"].as_str().unwrap();
        assert_eq!(model.env_id.as_deref(), Some(env_id), "{name}: the id in the file name");
        assert_eq!(model.algo.to_string(), entry["algo"].as_str().unwrap(), "{name}");
        let agent = model.agent(0).unwrap();
        let obs: Vec<f32> = list(&entry["observations"]).iter().map(|&v| v as f32).collect();
        let outputs = agent.outputs(&obs);
        let get = |key: &str| outputs.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()).unwrap();
        let pairs: &[(&str, &str)] = match entry["algo"].as_str().unwrap() {
            "PPO" | "A2C" if entry.get("action_probs").is_some() => &[("probs", "action_probs"), ("value", "values")],
            "PPO" | "A2C" => &[("mean", "action_mean"), ("std", "action_std"), ("value", "values")],
            "DQN" => &[("q", "q_values")],
            "SAC" => &[("action", "actor_squashed_action")],
            "TD3" => &[("action", "actor_action")],
            other => panic!("{other}"),
        };
        for (ours, theirs) in pairs {
            close(&format!("{name} {theirs}"), &get(ours), &list(&entry[*theirs]), 1e-5);
        }
        if let Some(critic_q) = entry.get("critic_q") {
            // SB3's critic_q is [critic][row].
            let q = list(critic_q);
            let n = q.len() / 2;
            close(&format!("{name} critic_q[0]"), &get("q0"), &q[..n], 1e-5);
            close(&format!("{name} critic_q[1]"), &get("q1"), &q[n..], 1e-5);
        }
        // model.predict(obs, deterministic=True).
        let actions = deterministic_actions(agent.as_ref(), &obs);
        close(&format!("{name} predict_deterministic"), &actions, &list(&entry["predict_deterministic"]), 1e-5);
        // One deterministic episode per seed 0-4 on Gymnasium's environment (through the bridge:
        // headstart's ports draw their initial states with their own generator, not NumPy's).
        #[cfg(feature = "python")]
        let returns = entry.get("deterministic_returns_seeds_0_4").map(list).unwrap_or_default();
        #[cfg(feature = "python")]
        for (seed, &want) in returns.iter().enumerate() {
            let got = episode(&registry, &format!("gym:{env_id}"), agent.as_ref(), seed as u64);
            assert!((got - want).abs() <= 1e-3 * want.abs().max(1.0), "{name} seed {seed}: return {got}, SB3 {want}");
        }
        let _ = &registry;
    }
}

#[test]
fn imported_models_compute_what_sb3_computed() {
    compare_with_sb3(&shared());
}

/// A2C, TD3 and a PPO whose actor and critic differ in shape, made by SB3 2.9.2 for this test
/// (`tests/sb3/make_fixtures.py`): imported, they compute what SB3 computed.
#[test]
fn a2c_td3_and_a_split_ppo_compute_what_sb3_computed() {
    compare_with_sb3(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sb3"));
}

/// The CNN PPO in an RL Zoo folder whose `config.yml` names the Zoo's Atari wrappers: the model's
/// environment wears headstart's `Atari` transform and a stack of four frames, and (with the
/// bridge) the policy plays a whole game of Breakout through them.
fn zoo_atari_folder(cnn: &Path) {
    let dir = std::env::temp_dir().join(format!("headstart-sb3-zoo-atari-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(cnn.join("ppo-BreakoutNoFrameskip-v4.zip"), dir.join("BreakoutNoFrameskip-v4.zip")).unwrap();
    let config = "!!python/object/apply:collections.OrderedDict\n- - - env_wrapper\n    - - stable_baselines3.common.atari_wrappers.AtariWrapper\n  - - frame_stack\n    - 4\n  - - policy\n    - CnnPolicy\n";
    std::fs::write(dir.join("config.yml"), config).unwrap();
    let model = sb3::read(&dir).unwrap();
    let atari = headstart::env::atari::AtariConfig::zoo();
    let stack = [headstart::env::Transform::Atari(atari.clone()), headstart::env::Transform::FrameStack(4)];
    assert_eq!(model.transforms, stack);
    let registry = Registry::builtin();
    let spec = model.env_spec(&registry).unwrap();
    assert_eq!((spec.id.as_str(), spec.transforms.as_slice()), ("gym:BreakoutNoFrameskip-v4", &stack[..]));
    // A stack of 3 cannot be the model's 4 channels.
    std::fs::write(dir.join("config.yml"), config.replace("- 4", "- 3")).unwrap();
    assert!(sb3::read(&dir).unwrap_err().to_string().contains("frame_stack: 3"));
    #[cfg(feature = "python")]
    {
        // The fixture was trained on 36x36 screens (the Zoo's own are 84x84, which it refuses).
        let env = registry.make(&spec).unwrap();
        let e = model.check_env(env.as_ref(), &spec).unwrap_err().to_string();
        assert!(e.contains("shape=(36, 36, 4)") && e.contains("shape=(84, 84, 4)") && e.len() < 600, "{e}");
        let small = headstart::env::atari::AtariConfig { screen_size: 36, ..atari };
        let spec = EnvSpec { transforms: vec![headstart::env::Transform::Atari(small), stack[1].clone()], ..spec };
        let mut env = registry.make(&spec).unwrap();
        model.check_env(env.as_ref(), &spec).unwrap();
        let agent = model.agent(0).unwrap();
        let stats = headstart::agent::evaluate(agent.as_ref(), env.as_mut(), 1, true, 3).unwrap();
        assert!(stats.returns[0] >= 0.0 && stats.returns[0].fract() == 0.0, "{:?}", stats.returns);
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// An encoder SB3's `CnnPolicy` has no counterpart for (MinAtar's one convolution) is refused
/// by name on export, not written as a Nature CNN it is not.
#[test]
fn an_encoder_other_than_the_nature_cnn_is_not_exported() {
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/minatar-breakout-dqn");
    let out = std::env::temp_dir().join(format!("headstart-minatar-export-{}.zip", std::process::id()));
    let e = sb3::export(&policy, &out).unwrap_err().to_string();
    assert!(e.contains("MinAtar") && e.contains("encoder: Nature") && !out.exists(), "{e}");
}

/// SB3 `MultiInputPolicy` models (PPO, DQN, SAC) over a dictionary observation of vectors and a
/// discrete part, made by SB3 2.9.2 for this test (`tests/sb3/make_dict_fixtures.py`): imported as
/// headstart's `Dict` space (its parts in SB3's order, the Discrete one-hot), they compute what SB3
/// computed. One whose parts include an image (which SB3 reads through a CNN and a linear layer of
/// its own) is refused naming the part, and so is `VecNormalize` over a Dict, read or written.
#[test]
fn multi_input_policies_compute_what_sb3_computed() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sb3/dict");
    compare_with_sb3(&folder);
    let model = sb3::read(&folder.join("ppo-DictReach-v0.zip")).unwrap();
    let keys: Vec<&str> = model.observation_space.parts().iter().map(|p| p.key).collect();
    assert_eq!(keys, ["desired_goal", "observation", "phase"]);
    assert_eq!(model.observation_space.flat_dim(), 7, "two vectors of 2 and a one-hot of 3");
    assert_eq!(model.config.net().encoder, None);
    // The same model with an image among its parts (`altered` reads a path relative to
    // ../shared, or an absolute one).
    let space = std::fs::read_to_string(folder.join("image-observation-space.txt")).unwrap();
    let zip = folder.join("ppo-DictReach-v0.zip");
    let image = with_data(zip.to_str().unwrap(), |data| {
        data["observation_space"][":serialized:"] = Value::String(space.trim().to_string());
    });
    refused(&image, &["observation_space", "[\"camera\"]", "image", "MultiInputPolicy"]);
    // And a MultiInputPolicy's class over a flat observation, an MlpPolicy's over a Dict.
    let flat = shared().join("ppo-CartPole-v1.zip");
    let data_of = |path: &Path| {
        let mut archive = zip::ZipArchive::new(Cursor::new(std::fs::read(path).unwrap())).unwrap();
        let mut data = String::new();
        archive.by_name("data").unwrap().read_to_string(&mut data).unwrap();
        serde_json::from_str::<Value>(&data).unwrap()
    };
    let (dict_data, flat_data) = (data_of(&zip), data_of(&flat));
    let swapped = with_data(flat.to_str().unwrap(), |data| data["policy_class"] = dict_data["policy_class"].clone());
    refused(&swapped, &["MultiInputActorCriticPolicy", "not a Dict"]);
    let swapped = with_data(zip.to_str().unwrap(), |data| data["policy_class"] = flat_data["policy_class"].clone());
    refused(&swapped, &["ActorCriticPolicy", "over a Dict", "MultiInputPolicy"]);
    // VecNormalize statistics over a Dict: SB3 keeps them per key, headstart for the flat vector.
    let statistics = shared().join("rl-zoo-ppo-MountainCarContinuous-v0/vec_normalize.pkl");
    let options = sb3::ReadOptions { vec_normalize: Some(statistics) };
    let e = sb3::read_with(&zip, &options).err().expect("refused").to_string();
    assert!(e.contains("norm_obs") && e.contains("Dict"), "{e}");
    let dir = scratch_dir("dict-normalised");
    let mut normalised = sb3::read(&zip).unwrap();
    if let AgentConfig::Ppo(c) = &mut normalised.config {
        c.normalize_obs = true;
    }
    normalised.save(&EnvSpec::new("DictReach-v0"), &dir.join("checkpoint"), None).unwrap();
    let e = sb3::export(&dir.join("checkpoint"), &dir.join("ppo-DictReach-v0.zip")).unwrap_err().to_string();
    assert!(e.contains("normalize_obs") && e.contains("Dict"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// SB3 `CnnPolicy` models (PPO with its shared extractor, DQN) on stacked Atari frames, made by
/// SB3 2.9.2 for this test (`tests/sb3/make_cnn_fixtures.py`): imported with the Nature CNN as
/// their encoder, channel-last, bytes divided by 255, they compute what SB3 computed on the
/// same frames.
#[test]
fn cnn_policies_compute_what_sb3_computed() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sb3/cnn");
    compare_with_sb3(&folder);
    zoo_atari_folder(&folder);
    for name in ["ppo", "dqn"] {
        let model = sb3::read(&folder.join(format!("{name}-BreakoutNoFrameskip-v4.zip"))).unwrap();
        let net = model.config.net();
        assert_eq!(net.encoder, Some(headstart::agent::nn::Encoder::Nature), "{name}");
        assert_eq!((net.input_divisor, net.hidden.as_slice()), (Some(255.0), &[512][..]), "{name}");
        let headstart::env::Space::Box { shape, high, .. } = &model.observation_space else { panic!("{name}") };
        assert_eq!((shape.as_slice(), high[0]), (&[36, 36, 4][..], 255.0), "{name}: channel-last bytes");
        if name == "ppo" {
            // SB3's shared extractor is headstart's shared trunk: the same training, nothing left out.
            assert!(model.config.share_trunk(), "{name}");
            assert!(!model.not_carried.iter().any(|n| n.contains("share")), "{name}: {:?}", model.not_carried);
            let names: Vec<String> = model.weights.iter().map(|t| t.name.clone()).collect();
            assert!(names.contains(&"shared.encoder.conv.0.weight".to_string()), "{names:?}");
            assert!(!names.iter().any(|n| n.starts_with("actor.encoder") || n.starts_with("critic.trunk")), "{names:?}");
        }
    }
}

#[cfg(feature = "python")]
fn episode(registry: &Registry, env_id: &str, agent: &dyn Agent, seed: u64) -> f64 {
    let mut env = registry.make(&EnvSpec::new(env_id)).unwrap();
    let (mut obs, _) = env.reset(Some(seed)).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut total = 0.0;
    loop {
        let action = agent.act(obs.as_slice(), true, &mut rng).remove(0);
        let step = env.step(&action).unwrap();
        total += step.reward;
        if step.terminated || step.truncated {
            return total;
        }
        obs = step.obs;
    }
}

#[test]
fn an_imported_checkpoint_loads_with_its_origin() {
    tch::set_num_threads(1);
    let dir = std::env::temp_dir().join(format!("headstart-sb3-{}", std::process::id()));
    let model = sb3::read(&shared().join("rl-zoo-ppo-MountainCarContinuous-v0")).unwrap();
    let card = model.save(&EnvSpec::new("MountainCarContinuous-v0"), &dir, None).unwrap();
    let origin = card.origin.as_ref().unwrap();
    assert_eq!(origin.library, "Stable-Baselines3 2.9.2");
    assert_eq!(origin.sha256.len(), 64);
    let loaded = checkpoint::load(&dir).unwrap();
    assert_eq!(loaded.card.origin, card.origin);
    let obs = [-0.5f32, 0.01, -0.3, -0.02];
    assert_eq!(loaded.agent.outputs(&obs), model.agent(0).unwrap().outputs(&obs));
    let headstart::agent::AgentConfig::Ppo(c) = &loaded.card.config else { panic!() };
    assert!(c.use_sde && c.normalize_obs && c.normalize_reward, "{c:?}");
    assert_eq!((c.n_steps, c.batch_size, c.log_std_init, c.net.ortho_init), (512, 64, -3.29, false));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The SB3 zip at `name` with entries replaced (`Some`) or removed (`None`).
fn altered(name: &str, changes: &[(&str, Option<Vec<u8>>)]) -> PathBuf {
    let bytes = std::fs::read(shared().join(name)).unwrap();
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let entry = file.name().to_string();
        let mut content = Vec::new();
        file.read_to_end(&mut content).unwrap();
        let content = match changes.iter().find(|(n, _)| *n == entry) {
            Some((_, None)) => continue,
            Some((_, Some(new))) => new.clone(),
            None => content,
        };
        out.start_file(entry, zip::write::SimpleFileOptions::default()).unwrap();
        out.write_all(&content).unwrap();
    }
    let path = std::env::temp_dir().join(format!("headstart-sb3-{}-{}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&path).unwrap();
    let path = path.join(Path::new(name).file_name().unwrap());
    std::fs::write(&path, out.finish().unwrap().into_inner()).unwrap();
    path
}

/// SB3 2.9 stores DQN's `target_update_interval` in environment steps and divides it by `n_envs`
/// where it uses it; the import keeps it as stored (it once multiplied it by `n_envs`, so that an
/// imported model with several environments updated its target `n_envs` times too rarely), and
/// the export writes it so.
#[test]
fn dqn_target_interval_is_imported_as_stored() {
    let name = "dqn-CartPole-v1.zip";
    let bytes = std::fs::read(shared().join(name)).unwrap();
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut data = String::new();
    archive.by_name("data").unwrap().read_to_string(&mut data).unwrap();
    let mut json: Value = serde_json::from_str(&data).unwrap();
    json["n_envs"] = Value::from(4);
    json["target_update_interval"] = Value::from(10);
    let path = altered(name, &[("data", Some(serde_json::to_vec(&json).unwrap()))]);
    let model = sb3::read(&path).unwrap_or_else(|e| panic!("{e}"));
    let AgentConfig::Dqn(c) = &model.config else { panic!("a DQN model") };
    assert_eq!((c.n_envs, c.target_update_interval), (4, 10));
    // And exported as stored (the export once divided it by n_envs, which SB3 then did again).
    let dir = scratch_dir("dqn-interval");
    model.save(&EnvSpec::new("CartPole-v1"), &dir.join("checkpoint"), None).unwrap();
    sb3::export(&dir.join("checkpoint"), &dir.join("dqn-CartPole-v1.zip")).unwrap();
    let again = sb3::read(&dir.join("dqn-CartPole-v1.zip")).unwrap();
    assert_eq!(again.config, model.config);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn policy_of(name: &str) -> Vec<torch_file::StateTensor> {
    let bytes = std::fs::read(shared().join(name)).unwrap();
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let pth = torch_file::read_entry(&mut archive, "policy.pth").unwrap().unwrap();
    torch_file::read_state_dict(&pth).unwrap()
}

fn refused(path: &Path, words: &[&str]) {
    let message = match sb3::read(path).and_then(|m| m.agent(0).map(|_| ())) {
        Ok(()) => panic!("{} was accepted", path.display()),
        Err(e) => e.to_string(),
    };
    for w in words {
        assert!(message.contains(w), "`{w}` is not in: {message}");
    }
}

#[test]
fn damaged_models_are_refused_by_file_and_entry() {
    let name = "ppo-CartPole-v1.zip";
    let original = std::fs::read(shared().join(name)).unwrap();
    // Truncated.
    let dir = std::env::temp_dir().join(format!("headstart-sb3-damaged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let truncated = dir.join(name);
    std::fs::write(&truncated, &original[..original.len() / 2]).unwrap();
    refused(&truncated, &[name, "zip"]);
    // Flipped bytes inside policy.pth (the zip's checksum catches them).
    let mut pth = {
        let mut archive = zip::ZipArchive::new(Cursor::new(original.clone())).unwrap();
        torch_file::read_entry(&mut archive, "policy.pth").unwrap().unwrap()
    };
    let middle = pth.len() / 2;
    pth[middle] ^= 0xff;
    pth[middle + 1] ^= 0x55;
    refused(&altered(name, &[("policy.pth", Some(pth))]), &["policy.pth"]);
    // A pickle that reaches for an unexpected global.
    let mut hostile = torch_file::PickleWriter::default();
    hostile.proto();
    hostile.global("os", "system");
    hostile.string("echo owned");
    hostile.op(op::TUPLE1);
    hostile.op(op::REDUCE);
    hostile.op(op::STOP);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("archive/data.pkl", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(&hostile.out).unwrap();
    let pth = zip.finish().unwrap().into_inner();
    refused(&altered(name, &[("policy.pth", Some(pth))]), &["policy.pth", "os.system", "refused"]);
    // Shapes that disagree with `data` (a value head of two outputs).
    let mut tensors = policy_of(name);
    let head = tensors.iter_mut().find(|t| t.name == "value_net.weight").unwrap();
    head.shape = vec![2, 32];
    refused(
        &altered(name, &[("policy.pth", Some(torch_file::write_state_dict(&tensors, "archive")))]),
        &["critic.head.weight", "[2, 32]"],
    );
    // A missing tensor, a missing entry.
    let tensors: Vec<_> = policy_of(name).into_iter().filter(|t| t.name != "action_net.bias").collect();
    refused(
        &altered(name, &[("policy.pth", Some(torch_file::write_state_dict(&tensors, "archive")))]),
        &["policy.pth", "action_net.bias"],
    );
    refused(&altered(name, &[("policy.pth", None)]), &["policy.pth", "missing"]);
    refused(&altered(name, &[("data", None)]), &["data", "missing"]);
    refused(&altered(name, &[("data", Some(b"{\"policy_class\": 3".to_vec()))]), &["data", "JSON"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The weights and statistics of a model, by name, to compare two reads.
fn contents(model: &sb3::Model) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut out: Vec<_> = model.weights.iter().map(|t| (t.name.clone(), t.shape.clone(), t.values.clone())).collect();
    for (name, stats) in [("obs_rms", &model.obs_rms), ("ret_rms", &model.ret_rms)] {
        if let Some(s) = stats {
            let values = s.mean.iter().chain(&s.var).chain([&s.count]).map(|&v| v as f32).collect();
            out.push((name.to_string(), vec![], values));
        }
    }
    out
}

/// The SB3 models this suite checks against: `../shared/sb3`'s and `tests/sb3`'s, with their
/// `expected.json` entries.
fn fixtures() -> Vec<(PathBuf, String, Value)> {
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sb3");
    let mut out = Vec::new();
    for folder in [shared(), local.clone(), local.join("cnn"), local.join("dict")] {
        let expected: Value = serde_json::from_slice(&std::fs::read(folder.join("expected.json")).unwrap()).unwrap();
        for (name, entry) in expected["models"].as_object().unwrap() {
            out.push((folder.clone(), name.clone(), entry.clone()));
        }
    }
    out
}

/// Imports each SB3 fixture, saves it as a checkpoint, exports that and imports the export.
fn round_trips() -> Vec<(String, Value, sb3::Model, PathBuf, Vec<PathBuf>)> {
    let scratch = std::env::temp_dir().join(format!("headstart-sb3-export-{}", std::process::id()));
    let mut out = Vec::new();
    for (folder, name, entry) in fixtures() {
        let mut model = import_from(&folder, &entry);
        // Linear schedules, exported as SB3's `LinearSchedule`.
        match &mut model.config {
            AgentConfig::Ppo(c) if entry.get("vec_normalize").is_none() => {
                c.learning_rate = Schedule::Linear(c.learning_rate.at(0.0));
                c.clip_range = Schedule::Linear(c.clip_range.at(0.0));
            }
            AgentConfig::Sac(c) => c.learning_rate = Schedule::Linear(c.learning_rate.at(0.0)),
            AgentConfig::A2c(c) => c.learning_rate = Schedule::Linear(c.learning_rate.at(0.0)),
            _ => {}
        }
        let dir = scratch.join(&name);
        model.save(&EnvSpec::new(entry["env_id"].as_str().unwrap()), &dir.join("checkpoint"), None).unwrap();
        let zip = dir.join("export").join(format!("{name}.zip"));
        std::fs::create_dir_all(zip.parent().unwrap()).unwrap();
        let written = sb3::export(&dir.join("checkpoint"), &zip).unwrap();
        out.push((name, entry, model, zip, written));
    }
    out
}

#[test]
fn export_then_import_gives_back_the_same_tensors() {
    tch::set_num_threads(1);
    for (name, _, model, zip, written) in round_trips() {
        // The Zoo folder's export has its vec_normalize.pkl beside the zip: import the folder.
        let again = sb3::read(if written.len() > 1 { zip.parent().unwrap() } else { &zip }).unwrap();
        assert_eq!(contents(&again), contents(&model), "{name}");
        assert_eq!(again.config, model.config, "{name}");
        assert_eq!((&again.observation_space, &again.action_space), (&model.observation_space, &model.action_space));
    }
}

/// Stable-Baselines3 loads each exported model (`PPO.load`, `A2C.load`, `DQN.load`, `SAC.load`,
/// `TD3.load`, and
/// `VecNormalize`'s pickle) and predicts what headstart predicts. Needs SB3: `make verify` runs it
/// with the benchmarks' Python environment (`make peers`), or set HEADSTART_SB3_PYTHON.
#[test]
#[ignore = "needs Stable-Baselines3 (make peers; make verify runs it)"]
fn sb3_loads_exports_and_predicts_the_same() {
    tch::set_num_threads(1);
    let python = std::env::var("HEADSTART_SB3_PYTHON")
        .unwrap_or_else(|_| format!("{}/.venv-peers/bin/python", env!("CARGO_MANIFEST_DIR")));
    for (name, entry, model, zip, written) in round_trips() {
        let obs_path = zip.with_extension("obs.json");
        std::fs::write(&obs_path, entry["observations"].to_string()).unwrap();
        let algo = entry["algo"].as_str().unwrap();
        let mut cmd = std::process::Command::new(&python);
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/sb3_predict.py"))
            .arg(algo)
            .arg(&zip)
            .arg(&obs_path);
        cmd.args(written.get(1));
        let out = cmd.output().unwrap_or_else(|e| panic!("{python}: {e}"));
        assert!(out.status.success(), "{name}: SB3 refused the export:\n{}", String::from_utf8_lossy(&out.stderr));
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
        let obs: Vec<f32> = list(&entry["observations"]).iter().map(|&v| v as f32).collect();
        let ours = deterministic_actions(model.agent(0).unwrap().as_ref(), &obs);
        close(&format!("{name}: SB3's prediction with the export"), &ours, &list(&answer["actions"]), 1e-5);
    }
}

#[test]
fn what_headstart_cannot_represent_is_refused_by_name() {
    let zoo = shared().join("rl-zoo-ppo-MountainCarContinuous-v0");
    let copy = |config: Option<&str>, drop_pkl: bool| -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("headstart-sb3-zoo-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&zoo).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap();
            if drop_pkl && name == "vec_normalize.pkl" {
                continue;
            }
            std::fs::copy(&path, dir.join(name)).unwrap();
        }
        if let Some(extra) = config {
            let text = std::fs::read_to_string(zoo.join("config.yml")).unwrap();
            std::fs::write(dir.join("config.yml"), format!("{text}{extra}")).unwrap();
        }
        dir
    };
    // A Zoo wrapper, a frame stack, a CNN policy, statistics that config.yml asks for but lack.
    refused(
        &copy(Some("  - - env_wrapper\n    - sb3_contrib.common.wrappers.TimeFeatureWrapper\n"), false),
        &["config.yml", "env_wrapper"],
    );
    refused(&copy(Some("  - - frame_stack\n    - 4\n"), false), &["frame_stack: 4", "not 4 frames"]);
    refused(&copy(Some("  - - policy\n    - CnnPolicy\n"), false), &["CnnPolicy"]);
    refused(&copy(None, true), &["normalize", "vec_normalize.pkl"]);
    // Two models in one folder: which one is meant is not guessed.
    let two = copy(None, false);
    std::fs::copy(shared().join("ppo-CartPole-v1.zip"), two.join("ppo-CartPole-v1.zip")).unwrap();
    refused(&two, &["several models"]);
}

#[test]
fn an_rl_zoo_run_folder_is_read_as_the_zoo_lays_it_out() {
    // logs/ppo/MountainCarContinuous-v0_1/: the final model, best_model.zip, a checkpoint, and
    // the parameters folder with config.yml, env_kwargs.yml and vecnormalize.pkl.
    let zoo = shared().join("rl-zoo-ppo-MountainCarContinuous-v0");
    let run = std::env::temp_dir().join(format!("headstart-sb3-zoo-run-{}", std::process::id()));
    let params = run.join("MountainCarContinuous-v0");
    std::fs::create_dir_all(&params).unwrap();
    let model = zoo.join("ppo-MountainCarContinuous-v0.zip");
    for name in ["MountainCarContinuous-v0.zip", "best_model.zip", "rl_model_2048_steps.zip"] {
        std::fs::copy(&model, run.join(name)).unwrap();
    }
    for (from, to) in
        [("config.yml", "config.yml"), ("env_kwargs.yml", "env_kwargs.yml"), ("vec_normalize.pkl", "vecnormalize.pkl")]
    {
        std::fs::copy(zoo.join(from), params.join(to)).unwrap();
    }
    let imported = sb3::read(&run).unwrap();
    assert_eq!(imported.source, run.join("MountainCarContinuous-v0.zip"));
    assert_eq!(imported.env_id.as_deref(), Some("MountainCarContinuous-v0"));
    assert!(imported.obs_rms.is_some(), "the statistics in the parameters folder");
    let flat = sb3::read(&zoo).unwrap();
    assert_eq!(imported.obs_rms, flat.obs_rms);
    std::fs::remove_dir_all(&run).unwrap();
}

fn entry_steps(model: &Path) -> u64 {
    sb3::read(model).unwrap().steps
}

/// Every SB3 fixture is the source of a (small) transfer study that runs to the end: imported
/// once into the cache, fine-tuned on a changed target against scratch.
#[test]
fn every_imported_model_is_the_source_of_a_study_that_runs() {
    use headstart::study::experiment::Experiment;
    use headstart::study::{self, RunOptions, RunOutcome};
    tch::set_num_threads(1);
    for (name, entry) in expected()["models"].as_object().unwrap() {
        let model = match entry.get("vec_normalize") {
            Some(_) => shared().join(entry["file"].as_str().unwrap()).parent().unwrap().to_path_buf(),
            None => shared().join(entry["file"].as_str().unwrap()),
        };
        let (env, param, threshold, budget) = match entry["env_id"].as_str().unwrap() {
            "CartPole-v1" => ("CartPole-v1", "\"length\": 0.6", 475.0, 2048),
            "Pendulum-v1" => ("Pendulum-v1", "\"m\": 1.2", -200.0, 600),
            "MountainCarContinuous-v0" => ("MountainCarContinuous-v0", "\"power\": 0.0013", 90.0, 1024),
            other => panic!("{other}"),
        };
        let dir = std::env::temp_dir().join(format!("headstart-sb3-study-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("experiment.ron");
        std::fs::write(
            &file,
            format!(
                r#"(version: 1, name: "sb3-{name}", source: Sb3(model: {model:?}),
                   targets: [Env(id: "{env}", params: {{{param}}})], seeds: 2, budget: {budget},
                   eval: (every: {budget}, episodes: 2), threshold: {threshold})"#
            ),
        )
        .unwrap();
        let experiment = Experiment::load(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut opts = RunOptions::new(dir.join("out"));
        (opts.sources, opts.jobs, opts.quiet) = (dir.join("sources"), 2, true);
        match study::run(&experiment, &Registry::builtin(), &opts, &std::sync::atomic::AtomicBool::new(false)) {
            Ok(RunOutcome::Complete(summary)) => {
                assert!(summary.source.contains("sb3"), "{name}: {}", summary.source);
                assert_eq!(summary.source_steps, entry_steps(&model), "{name}");
            }
            Ok(_) => panic!("{name}: the study did not finish"),
            Err(e) => panic!("{name}: {e}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs the import must not pass over in silence.

/// A temporary folder of its own.
fn scratch_dir(what: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("headstart-sb3-{what}-{}-{}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A VecNormalize model's zip, passed alone, reads the statistics beside it, as its folder does:
/// the same weights, statistics and actions (once it gave raw observations to the network, -1086
/// against SB3's -173.7 on a Pendulum model). Without statistics beside it the option names them.
#[test]
fn a_zip_reads_the_statistics_beside_it() {
    let zoo = shared().join("rl-zoo-ppo-MountainCarContinuous-v0");
    let zip = zoo.join("ppo-MountainCarContinuous-v0.zip");
    let (folder, alone) = (sb3::read(&zoo).unwrap(), sb3::read(&zip).unwrap());
    assert!(alone.obs_rms.is_some(), "the statistics beside the zip");
    assert_eq!(contents(&folder), contents(&alone));
    assert_eq!(folder.also_read, alone.also_read);
    let entry =
        expected()["models"].as_object().unwrap().values().find(|e| e.get("vec_normalize").is_some()).unwrap().clone();
    let (a, b) = (folder.agent(0).unwrap(), alone.agent(0).unwrap());
    for obs in entry["observations"].as_array().unwrap() {
        let obs: Vec<f32> = list(obs).into_iter().map(|v| v as f32).collect();
        assert_eq!(deterministic_actions(a.as_ref(), &obs), deterministic_actions(b.as_ref(), &obs));
    }
    // The zip copied away from its statistics imports raw; `vec_normalize` names them.
    let dir = scratch_dir("lone-zip");
    let lone = dir.join("ppo-MountainCarContinuous-v0.zip");
    std::fs::copy(&zip, &lone).unwrap();
    assert!(sb3::read(&lone).unwrap().obs_rms.is_none());
    let options = sb3::ReadOptions { vec_normalize: Some(zoo.join("vec_normalize.pkl")) };
    let named = sb3::read_with(&lone, &options).unwrap();
    assert_eq!(named.obs_rms, folder.obs_rms);
    let missing = sb3::ReadOptions { vec_normalize: Some(dir.join("nowhere.pkl")) };
    let e = sb3::read_with(&lone, &missing).err().expect("refused").to_string();
    assert!(e.contains("nowhere.pkl"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An `Sb3` source's cached import is reused while its inputs are the same, and made again when
/// the statistics or the environment's parameters change.
#[test]
fn a_cached_source_is_imported_again_when_an_input_changes() {
    use headstart::study::experiment::Sb3Source;
    let zoo = shared().join("rl-zoo-ppo-MountainCarContinuous-v0");
    let dir = scratch_dir("cache");
    for entry in std::fs::read_dir(&zoo).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let source = Sb3Source { model: dir.clone(), env: None, vec_normalize: None };
    let registry = Registry::builtin();
    let card_of = || {
        let cached = headstart::study::source::import_sb3(&source, &registry).unwrap_or_else(|e| panic!("{e}"));
        checkpoint::read_card(&cached).unwrap()
    };
    let first = card_of();
    let modified = || std::fs::metadata(source.dir().join("card.ron")).unwrap().modified().unwrap();
    let stamp = modified();
    assert_eq!(card_of(), first, "the same inputs: the cached import");
    assert_eq!(modified(), stamp, "not written again");
    // Changed statistics: a value of obs_rms.mean altered in the pickle's bytes.
    let mean = sb3::read(&dir).unwrap().obs_rms.unwrap().mean;
    let pkl = dir.join("vec_normalize.pkl");
    let mut bytes = std::fs::read(&pkl).unwrap();
    let needle = mean[0].to_le_bytes();
    let at = bytes.windows(8).position(|w| w == needle).expect("obs_rms.mean in the pickle");
    bytes[at..at + 8].copy_from_slice(&(mean[0] + 0.25).to_le_bytes());
    std::fs::write(&pkl, &bytes).unwrap();
    let second = card_of();
    assert_ne!(second.origin, first.origin, "the statistics' checksum is part of the import's inputs");
    let loaded = checkpoint::load(&source.dir()).unwrap();
    let stored = loaded.agent.tensors().into_iter().find(|(n, _)| n == "obs_rms.mean").unwrap().1;
    assert!((stored.double_value(&[0]) - (mean[0] + 0.25)).abs() < 1e-12, "the new statistics were imported");
    // A changed environment: the Zoo's env_kwargs.yml gives the engine another power.
    std::fs::write(dir.join("env_kwargs.yml"), "power: 0.0016\n").unwrap();
    let third = card_of();
    assert_eq!(third.env.params.get("power"), Some(&0.0016));
    let _ = std::fs::remove_dir_all(source.dir());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `data` with its fields changed as `edit` says, as a zip named `name`.
fn with_data(name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let bytes = std::fs::read(shared().join(name)).unwrap();
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut data = String::new();
    archive.by_name("data").unwrap().read_to_string(&mut data).unwrap();
    let mut json: Value = serde_json::from_str(&data).unwrap();
    edit(&mut json);
    altered(name, &[("data", Some(serde_json::to_vec(&json).unwrap()))])
}

/// Every field read has its type checked: a wrong type is refused naming the field and what it
/// holds (it once became the default in silence), an absent field or a form headstart has no
/// counterpart for is listed as not carried, with why.
#[test]
fn wrong_typed_fields_are_refused_and_unknown_ones_listed() {
    let ppo = "ppo-CartPole-v1.zip";
    for (field, value, words) in [
        ("n_steps", Value::from("256"), vec!["`n_steps`", "the string \"256\"", "integer"]),
        ("gamma", Value::from("0.99"), vec!["`gamma`", "the string \"0.99\"", "a number"]),
        ("normalize_advantage", Value::from(1), vec!["`normalize_advantage`", "the number 1", "a boolean"]),
        ("learning_rate", Value::from("3e-4"), vec!["`learning_rate`", "the string", "a number or a schedule"]),
        ("observation_space", Value::from("Box(4,)"), vec!["`observation_space`", "the string", "cloudpickled"]),
        ("policy_class", Value::from(7), vec!["`policy_class`", "the number 7", "cloudpickled"]),
        (
            "policy_kwargs",
            serde_json::json!({"net_arch": [1, 2], "activation_fn": "tanh"}),
            vec!["activation_fn", "the string \"tanh\"", "a class"],
        ),
        ("policy_kwargs", serde_json::json!({"net_arch": [1, 2]}), vec!["net_arch", "[1, 2]", "[64, 64]"]),
        ("policy_kwargs", serde_json::json!({"net_arch": "small"}), vec!["net_arch", "the string \"small\""]),
    ] {
        let path = with_data(ppo, |d| d[field] = value.clone());
        refused(&path, &words);
    }
    // Absent, and of a form headstart has no counterpart for: listed.
    let path = with_data(ppo, |d| {
        d.as_object_mut().unwrap().remove("gae_lambda");
        d["policy_kwargs"] =
            serde_json::json!({"optimizer_kwargs": {"eps": 1e-4}, "squash_output": false, "n_lstm": 2});
    });
    let model = sb3::read(&path).unwrap_or_else(|e| panic!("{e}"));
    let listed = model.not_carried.join("; ");
    assert!(listed.contains("gae_lambda (absent"), "{listed}");
    assert!(listed.contains("policy_kwargs.optimizer_kwargs.eps = 0.0001"), "{listed}");
    assert!(listed.contains("policy_kwargs.n_lstm (the number 2: headstart has no counterpart)"), "{listed}");
    // SB3's `gradient_steps: -1` (as many as collected, the Zoo's TD3 Pendulum) is listed, not refused.
    let path = with_data("sac-Pendulum-v1.zip", |d| d["gradient_steps"] = Value::from(-1));
    let model = sb3::read(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(model.not_carried.iter().any(|n| n.starts_with("gradient_steps -1")), "{:?}", model.not_carried);
    // The DQN's train_freq of the wrong type, SAC's ent_coef of the wrong type.
    refused(&with_data("dqn-CartPole-v1.zip", |d| d["train_freq"] = Value::from("4")), &["`train_freq`", "TrainFreq"]);
    refused(
        &with_data("sac-Pendulum-v1.zip", |d| d["ent_coef"] = Value::from(true)),
        &["`ent_coef`", "the boolean true"],
    );
}

/// A zip cut short says so, naming the file, at every length from half to all but a byte (a
/// nested archive's end record inside `policy.pth` once made it read "not an SB3 model").
#[test]
fn a_truncated_zip_says_truncated() {
    let dir = scratch_dir("truncated");
    for name in ["ppo-CartPole-v1.zip", "dqn-CartPole-v1.zip", "sac-Pendulum-v1.zip"] {
        let original = std::fs::read(shared().join(name)).unwrap();
        let path = dir.join(name);
        for percent in [50, 60, 70, 80, 90, 95, 99] {
            std::fs::write(&path, &original[..original.len() * percent / 100]).unwrap();
            refused(&path, &[name, "truncated or corrupt"]);
        }
        std::fs::write(&path, &original[..original.len() - 1]).unwrap();
        refused(&path, &[name, "truncated or corrupt"]);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
