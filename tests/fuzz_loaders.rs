//! Every loader of a file headstart reads, fed damaged and random bytes (property tests): experiment
//! and variant files, checkpoint cards and safetensors headers, unit records, preemption
//! checkpoints, claim files and journals, and Stable-Baselines3's files (pickles, `torch.save`
//! zips, whole models). Each must answer with a value or an error, never a
//! panic, a hang or an allocation its input does not justify.
//!
//! Inputs are valid files (the shipped ones, and ones written here) with up to eight random
//! edits (bit flips, byte changes, truncations, insertions, deletions), and random bytes.
//! `HEADSTART_FUZZ_CASES` sets the cases per loader (256 here; `make fuzz` runs 20 000).

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use headstart::agent::checkpoint;
use headstart::agent::sb3::{self, torch_file};
use headstart::env::vector::ActionLog;
use headstart::env::{Map, Variant};
use headstart::study::claim::{ClaimInfo, Claimer};
use headstart::study::experiment::Experiment;
use headstart::study::resume::{self, Progress};
use headstart::study::{journal, read_units, status};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn cases() -> u32 {
    std::env::var("HEADSTART_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
}

/// A scratch folder of this process and test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("headstart-fuzz-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One edit of a byte string.
#[derive(Clone, Debug)]
enum Edit {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(p, b)| Edit::Flip(p, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Set(p, b)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(p, b)| Edit::Insert(p, b)),
        (any::<usize>(), 1usize..64).prop_map(|(p, n)| Edit::Delete(p, n)),
        // Text-shaped edits: digits and RON punctuation where parsers branch.
        (any::<usize>(), prop::sample::select(b"0123456789-.e()[]{},:\"9".to_vec())).prop_map(|(p, b)| Edit::Set(p, b)),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len().max(1);
        match e {
            Edit::Flip(p, b) if !bytes.is_empty() => bytes[p % n] ^= 1 << b,
            Edit::Set(p, b) if !bytes.is_empty() => bytes[p % n] = *b,
            Edit::Truncate(p) => bytes.truncate(p % (n + 1)),
            Edit::Insert(p, b) => {
                let at = p % (bytes.len() + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Edit::Delete(p, k) if !bytes.is_empty() => {
                let at = p % n;
                bytes.drain(at..(at + k).min(bytes.len()));
            }
            _ => {}
        }
    }
    bytes
}

/// Damaged copies of `seeds` (one picked per case), or random bytes.
fn damaged(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let count = seeds.len();
    prop_oneof![
        4 => (0..count, prop::collection::vec(edit(), 1..8)).prop_map(move |(i, edits)| apply(seeds[i].clone(), &edits)),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

fn files(dir: &str, ext: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == ext))
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn experiment_files(bytes in damaged(files("experiments", "ron"))) {
        let path = scratch("experiment").join("x.ron");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(experiment) = Experiment::load(&path) {
            let _ = experiment.check_fields();
            let _ = experiment.to_ron();
        }
    }

    #[test]
    fn variant_and_map_files(bytes in damaged(files("envs", "ron"))) {
        let path = scratch("variant").join("v.ron");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(variant) = Variant::load(&path) {
            let _ = headstart::env::Registry::builtin().make(&variant.env);
        }
        let _ = Map::load(&path);
    }

    #[test]
    fn checkpoint_cards(bytes in damaged(vec![std::fs::read(root().join("policies/cartpole-ppo/card.ron")).unwrap()])) {
        let dir = scratch("card");
        std::fs::copy(root().join("policies/cartpole-ppo/weights.safetensors"), dir.join(checkpoint::WEIGHTS_FILE)).unwrap();
        std::fs::write(dir.join(checkpoint::CARD_FILE), &bytes).unwrap();
        let _ = checkpoint::load(&dir);
    }

    #[test]
    fn safetensors_headers(edits in prop::collection::vec(edit(), 1..8), head in 8usize..2048) {
        // The edits fall in the header (its length and JSON), where parsing happens.
        let weights = std::fs::read(root().join("policies/cartpole-ppo/weights.safetensors")).unwrap();
        let head = head.min(weights.len());
        let mut bytes = apply(weights[..head].to_vec(), &edits);
        bytes.extend_from_slice(&weights[head..]);
        let dir = scratch("weights");
        std::fs::copy(root().join("policies/cartpole-ppo/card.ron"), dir.join(checkpoint::CARD_FILE)).unwrap();
        std::fs::write(dir.join(checkpoint::WEIGHTS_FILE), &bytes).unwrap();
        let _ = checkpoint::load(&dir);
        let _ = checkpoint::read_tensors(&dir.join(checkpoint::WEIGHTS_FILE));
    }

    #[test]
    fn unit_records(bytes in damaged(vec![UNIT.as_bytes().to_vec()])) {
        let dir = scratch("records");
        let path = dir.join("units/T/scratch/seed0.ron");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let _ = read_units(&dir);
    }

    #[test]
    fn preemption_checkpoints(bytes in damaged(vec![resume_file()])) {
        let path = scratch("resume").join("seed0.resume");
        std::fs::write(&path, &bytes).unwrap();
        let _ = resume::peek(&path);
        if let Ok(Some(c)) = resume::load(&path) {
            let mut agent = ppo();
            let _ = c.restore(agent.as_mut());
        }
    }

    #[test]
    fn claim_files_and_journals(bytes in damaged(vec![CLAIM.as_bytes().to_vec(), JOURNAL.as_bytes().to_vec()])) {
        let dir = scratch("claims");
        let claim = dir.join("units/T/scratch/seed0.claim");
        std::fs::create_dir_all(claim.parent().unwrap()).unwrap();
        std::fs::write(&claim, &bytes).unwrap();
        let _ = ClaimInfo::read(&claim);
        // A damaged claim is another process's until it goes stale: never a panic.
        let claimer = Claimer::new(std::time::Duration::from_secs(3600));
        let _ = claimer.try_claim(&claim);
        std::fs::create_dir_all(dir.join(journal::DIR)).unwrap();
        std::fs::write(dir.join(journal::DIR).join("vm-1-ab.log"), &bytes).unwrap();
        let _ = journal::read(&dir);
        let _ = status::status(&dir, None);
    }
}

/// The pickles of SB3's files: `policy.pth`'s `data.pkl`, `vec_normalize.pkl`, and the
/// cloudpickled spaces of a model's `data`.
fn sb3_pickles() -> Vec<Vec<u8>> {
    use base64::Engine;
    let shared = root().join("../shared/sb3");
    let mut out = vec![std::fs::read(shared.join("rl-zoo-ppo-MountainCarContinuous-v0/vec_normalize.pkl")).unwrap()];
    let zip = std::fs::read(shared.join("ppo-CartPole-v1.zip")).unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let pth = torch_file::read_entry(&mut archive, "policy.pth").unwrap().unwrap();
    let mut inner = zip::ZipArchive::new(std::io::Cursor::new(pth)).unwrap();
    out.push(torch_file::read_entry(&mut inner, "archive/data.pkl").unwrap().unwrap());
    let data: serde_json::Value =
        serde_json::from_slice(&torch_file::read_entry(&mut archive, "data").unwrap().unwrap()).unwrap();
    for key in ["observation_space", "action_space", "clip_range"] {
        let text = data[key][":serialized:"].as_str().unwrap();
        out.push(base64::engine::general_purpose::STANDARD.decode(text).unwrap());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn sb3_pickles_and_models(bytes in damaged(sb3_pickles()), model in damaged(vec![
        std::fs::read(root().join("../shared/sb3/ppo-CartPole-v1.zip")).unwrap(),
    ])) {
        if let Ok(pickle) = sb3::pickle::parse(&bytes) {
            let root = pickle.root();
            let _ = (root.class(), root.numpy_array(), root.pairs(), root.attr("obs_rms").and_then(|o| o.attr("mean")));
        }
        let _ = torch_file::read_state_dict(&bytes);
        let dir = scratch("sb3");
        std::fs::write(dir.join("ppo-CartPole-v1.zip"), &model).unwrap();
        std::fs::write(dir.join("vec_normalize.pkl"), &bytes).unwrap();
        if let Ok(m) = sb3::read(&dir) {
            let _ = m.agent(0);
        }
    }
}

const UNIT: &str = r#"(
    target: "T",
    arm: "scratch",
    seed: 0,
    status: Finished,
    evals: [(step: 0, nominal: 0, mean: 9.5, std: 0.5), (step: 1024, nominal: 1024, mean: 120.0, std: 3.0)],
    steps: 1024,
)"#;

const CLAIM: &str = r#"(host: "vm", pid: 1234, token: "0123456789abcdef", since: 1795926178)"#;

const JOURNAL: &str = "1795926178.120000 claimed units/T/scratch/seed0.ron \n\
                       1795926180.500000 recorded units/T/scratch/seed0.ron 2.113\n";

fn ppo() -> Box<dyn headstart::agent::Agent> {
    let loaded = checkpoint::load(&root().join("policies/cartpole-ppo")).unwrap();
    loaded.agent
}

/// A valid preemption checkpoint of a PPO agent with a short action log.
fn resume_file() -> Vec<u8> {
    let path = scratch("resume-seed").join("seed0.resume");
    let log = ActionLog {
        seed: Some(3),
        steps: 2,
        discrete: vec![0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0],
        continuous: Vec::new(),
    };
    let progress = Progress { steps: 0, evals: Vec::new(), next: 512, seconds: 1.5, extra: String::new() };
    resume::save(&path, ppo().as_ref(), &log, &[], &progress).unwrap();
    std::fs::read(&path).unwrap()
}
