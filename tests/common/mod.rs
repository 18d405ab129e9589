//! Helpers shared by the test binaries.

use std::path::Path;

use headstart::agent::Agent;
use headstart::agent::checkpoint::{self, CardInfo};
use headstart::env::{EnvSpec, Registry};

/// Saves `agent`, trained on `spec`, as a checkpoint in `dir`; the card says `produced_by`.
#[allow(dead_code)]
pub fn save_checkpoint(agent: &dyn Agent, spec: &EnvSpec, dir: &Path, produced_by: &str) {
    let env = Registry::builtin().make(spec).unwrap();
    let info = CardInfo {
        env: spec,
        mixture: None,
        tasks: None,
        observation_space: env.observation_space(),
        action_space: env.action_space(),
        eval: None,
        produced_by: produced_by.into(),
        origin: None,
    };
    checkpoint::save(agent, info, dir).unwrap();
}

/// What the script `tests/python/{script}` prints as JSON, run with `args` by the bridge's Python
/// (`make setup-python`); its failure fails the test with Python's message.
#[allow(dead_code)]
pub fn python_json(script: &str, args: &[String]) -> serde_json::Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(root.join(".venv-gym/bin/python"))
        .arg(root.join("tests/python").join(script))
        .args(args)
        .output()
        .expect("the bridge's Python (make setup-python)");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every run's scalars in a folder of TensorBoard runs, as TensorBoard's own event accumulator
/// reads them (`tests/python/tensorboard_read.py`, with the bridge's Python: `make
/// setup-python`): run -> tag -> `(step, value)` points.
#[allow(dead_code)]
pub fn tensorboard_scalars(
    dir: &Path,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<(u64, f64)>>> {
    let json = python_json("tensorboard_read.py", &[dir.display().to_string()]);
    let mut scalars = std::collections::BTreeMap::new();
    for (run, tags) in json.as_object().unwrap() {
        for (tag, points) in tags.as_object().unwrap() {
            let points = points.as_array().unwrap().iter().map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap()));
            scalars.entry(run.clone()).or_insert_with(std::collections::BTreeMap::new).insert(tag.clone(), points.collect());
        }
    }
    scalars
}

/// Each unit's evaluations in a study's `evaluations.csv`: `<target>/<arm>/seed<k>` (the unit's
/// TensorBoard run) -> `(step, mean return as f32)` points.
#[allow(dead_code)]
pub fn evaluations_by_unit(out: &Path) -> std::collections::BTreeMap<String, Vec<(u64, f64)>> {
    let csv = std::fs::read_to_string(out.join("evaluations.csv")).unwrap();
    let mut by_unit = std::collections::BTreeMap::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let point = (f[3].parse().unwrap(), f[5].parse::<f64>().unwrap() as f32 as f64);
        by_unit.entry(format!("{}/{}/seed{}", f[0], f[1], f[2])).or_insert_with(Vec::new).push(point);
    }
    by_unit
}
