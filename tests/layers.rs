//! The crate's layering, checked from its sources: every `crate::` path in a module points to
//! its own layer or one below it, no library function returns `Result<_, String>`, and a source
//! file over 500 lines is one that ARCHITECTURE.md lists with its reason.

use std::path::{Path, PathBuf};

/// The layers, bottom up. A file belongs to the layer of its first path component under `src/`.
const LAYERS: [&str; 6] = ["util", "env", "agent", "transfer", "study", "cli"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == module)
}

fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new(env!("CARGO_MANIFEST_DIR")).join("src").as_path(), &mut out);
    out.sort();
    out
}

/// The top-level module a file under `src/` belongs to (`src/agent/ppo.rs` -> `agent`).
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("src")).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// The modules named by `crate::NAME` paths in code (comments and doc comments skipped), and
/// the `use crate::{a, b}` groups.
fn crate_references(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let code = code.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let preceded_by_dollar = rest[..at].ends_with('$');
            if !preceded_by_dollar {
                if let Some(group) = after.strip_prefix('{') {
                    for name in group.split(['}', ',']) {
                        let name: String =
                            name.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                        if !name.is_empty() {
                            out.push((i + 1, name));
                        }
                    }
                } else {
                    let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    out.push((i + 1, name));
                }
            }
            rest = after;
        }
    }
    out
}

#[test]
fn every_reference_points_down() {
    let mut violations = Vec::new();
    for path in sources() {
        let module = module_of(&path);
        let Some(own) = layer_of(&module) else { continue };
        let text = std::fs::read_to_string(&path).unwrap();
        for (line, name) in crate_references(&text) {
            // Macros exported at the crate root (`crate::physics_params!`) belong to their layer.
            if name == "physics_params" {
                continue;
            }
            match layer_of(&name) {
                Some(layer) if layer <= own => {}
                Some(_) => violations.push(format!("{}:{line}: the {module} layer uses crate::{name}", path.display())),
                None => violations.push(format!("{}:{line}: crate::{name} is no layer", path.display())),
            }
        }
    }
    assert!(violations.is_empty(), "arrows that point up:\n{}", violations.join("\n"));
}

#[test]
fn the_library_has_typed_errors() {
    let mut found = Vec::new();
    for path in sources() {
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("Result<") && code.contains(", String>") {
                found.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "Result<_, String> in the library:\n{}", found.join("\n"));
}

#[test]
fn long_files_are_explained() {
    let architecture = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md")).unwrap();
    let mut unexplained = Vec::new();
    for path in sources() {
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        let rel = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap().display().to_string();
        let listed = format!("`{rel}` (");
        if lines > 500 && !architecture.contains(&listed) {
            unexplained.push(format!("{rel}: {lines} lines"));
        }
    }
    assert!(
        unexplained.is_empty(),
        "files over 500 lines that ARCHITECTURE.md's list of long files does not name:\n{}",
        unexplained.join("\n")
    );
}

#[test]
fn the_reference_scanner_sees_paths_and_groups() {
    let refs = crate_references(
        "use crate::env::{Env, Space};\nuse crate::{agent, util};\n// crate::study in a comment\nlet x = crate::transfer::map::axes();",
    );
    let names: Vec<&str> = refs.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["env", "agent", "util", "transfer"]);
}

/// The floors of `study`, bottom up: a module of `src/study/` uses (`super::NAME`) only modules on
/// floors below its own, and `StudyError` (the ground's), so that the study's vocabulary sits at
/// the bottom and nothing imports in a circle.
const STUDY_FLOORS: &[&[&str]] = &[
    &["stats", "claim", "shard", "slurm", "error", "ids", "sequential"],
    &["experiment", "journal", "decision"],
    &["records", "power", "interference"],
    &["scores", "resume", "source", "cost", "pretraining"],
    &["speed", "validate", "aggregate", "guard"],
    &["plan"],
    &["summary", "unit", "status", "predictors"],
    &["figures", "rounds", "guarding", "matrix"],
    &["html"],
    &["report"],
    &["continual"],
];

fn study_floor(module: &str) -> Option<usize> {
    STUDY_FLOORS.iter().position(|floor| floor.contains(&module))
}

#[test]
fn study_modules_use_only_lower_floors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/study");
    let mut violations = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        let Some(module) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else { continue };
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let own = study_floor(&module).unwrap_or_else(|| panic!("src/study/{module}.rs has no floor in STUDY_FLOORS"));
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            let mut rest = code.split("//").next().unwrap_or("");
            while let Some(at) = rest.find("super::") {
                let after = &rest[at + "super::".len()..];
                let names: Vec<String> = match after.strip_prefix('{') {
                    Some(group) => group.split('}').next().unwrap_or("").split(',').map(|n| n.trim().to_string()).collect(),
                    None => vec![after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()],
                };
                for name in names.iter().map(|n| n.split("::").next().unwrap_or("").to_string()) {
                    // `super::StudyError` and other items of `study.rs` itself start with a capital.
                    let target = if name.chars().next().is_some_and(char::is_uppercase) { "error".to_string() } else { name };
                    if target.is_empty() || target == "super" {
                        continue;
                    }
                    match study_floor(&target) {
                        Some(f) if f < own || target == module => {}
                        _ => violations.push(format!("src/study/{module}.rs:{}: uses `{target}`", i + 1)),
                    }
                }
                rest = after;
            }
        }
    }
    assert!(violations.is_empty(), "imports that do not point to a lower floor of study:\n{}", violations.join("\n"));
}
