//! `new env NAME`: a crate of the user's own for an environment, outside this repository, that
//! builds on a fresh machine and whose binary runs without `LD_LIBRARY_PATH`: a path dependency on
//! this headstart, torch-sys pointed at the libtorch headstart was built with
//! (`.cargo/config.toml`), an rpath to it (`build.rs`, from the `DEP_HEADSTART_LIBTORCH_LIB` that
//! headstart's build script exports), this repository's `Cargo.lock` (the same versions, nothing
//! rebuilt that is built already), the worked example renamed as the environment to edit, a `main`
//! that registers it and runs the whole command line, and a first study.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The files of a new environment crate, from `envs/template/` and the worked example.
const CARGO_TOML: &str = include_str!("../../envs/template/Cargo.toml.in");
const BUILD_RS: &str = include_str!("../../envs/template/build.rs.in");
const CONFIG_TOML: &str = include_str!("../../envs/template/config.toml.in");
const MAIN_RS: &str = include_str!("../../envs/template/main.rs.in");
const STUDY_RON: &str = include_str!("../../envs/template/study.ron.in");
const README_MD: &str = include_str!("../../envs/template/README.md.in");
const EXAMPLE_ENV: &str = include_str!("../../envs/corridor/corridor.rs");

#[derive(clap::Args)]
pub(crate) struct NewArgs {
    /// What to make.
    kind: Kind,
    /// The crate's name (lowercase letters, digits, `-` and `_`, starting with a letter); the
    /// environment's id is its CamelCase form with `-v0` (`point-mass`: `PointMass-v0`).
    name: String,
    /// The folder to create [default: ./NAME].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The headstart checkout the crate depends on [default: the one this binary was built from].
    #[arg(long)]
    headstart: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Kind {
    /// An environment crate.
    Env,
}

/// The names a crate called `name` uses.
struct Names {
    name: String,
    snake: String,
    camel: String,
    id: String,
}

impl Names {
    fn new(name: &str) -> Result<Names> {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        // Names the crate cannot take: its binary's module, a Rust keyword (the environment's
        // module is the name), or a dependency's.
        const TAKEN: &[&str] = &[
            "main",
            "headstart",
            "rand",
            "as",
            "break",
            "const",
            "continue",
            "crate",
            "else",
            "enum",
            "extern",
            "false",
            "fn",
            "for",
            "if",
            "impl",
            "in",
            "let",
            "loop",
            "match",
            "mod",
            "move",
            "mut",
            "pub",
            "ref",
            "return",
            "self",
            "static",
            "struct",
            "super",
            "trait",
            "true",
            "type",
            "unsafe",
            "use",
            "where",
            "while",
            "async",
            "await",
            "dyn",
            "abstract",
            "become",
            "box",
            "do",
            "final",
            "macro",
            "override",
            "priv",
            "typeof",
            "unsized",
            "virtual",
            "yield",
            "try",
            "gen",
            "std",
        ];
        if TAKEN.contains(&name.replace('-', "_").as_str()) {
            bail!("{name:?} cannot name an environment crate (a Rust keyword, `main`, or a dependency's name)");
        }
        if !valid {
            bail!(
                "{name:?} is not a crate name for `new env`: use lowercase letters, digits, `-` and `_`, \
                 starting with a letter (e.g. point-mass)"
            );
        }
        let camel: String = name
            .split(['-', '_'])
            .filter(|part| !part.is_empty())
            .map(|part| part[..1].to_ascii_uppercase() + &part[1..])
            .collect();
        Ok(Names { name: name.into(), snake: name.replace('-', "_"), id: format!("{camel}-v0"), camel })
    }

    /// `template` with the names filled in; paths escaped for a TOML string where `toml`.
    fn fill(&self, template: &str, headstart: &Path, libtorch: &Path, toml: bool) -> String {
        let path = |p: &Path| {
            let p = p.display().to_string();
            if toml { p.replace('\\', "\\\\").replace('"', "\\\"") } else { p }
        };
        template
            .replace("{{name}}", &self.name)
            .replace("{{snake}}", &self.snake)
            .replace("{{id}}", &self.id)
            .replace("{{headstart}}", &path(headstart))
            .replace("{{libtorch}}", &path(libtorch))
    }

    /// The worked example with its names replaced by this crate's (its id, `Corridor-v0`,
    /// becomes `{camel}-v0` with the rest).
    fn environment(&self) -> String {
        EXAMPLE_ENV.replace("Corridor", &self.camel)
    }
}

pub(crate) fn new(args: &NewArgs) -> Result<()> {
    let Kind::Env = args.kind;
    let names = Names::new(&args.name)?;
    let headstart = match &args.headstart {
        Some(path) => path.clone(),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    };
    let headstart = std::fs::canonicalize(&headstart)
        .with_context(|| format!("the headstart checkout {} (pass --headstart)", headstart.display()))?;
    if !headstart.join("Cargo.toml").is_file() {
        bail!("{} is not a headstart checkout (no Cargo.toml): pass --headstart", headstart.display());
    }
    // The libtorch this binary was built with, as torch-sys saw it (the same value, so that a
    // shared target folder rebuilds nothing).
    let Some(libtorch) = option_env!("LIBTORCH").map(PathBuf::from) else {
        bail!("this headstart was built without LIBTORCH set; build it with `make` first");
    };
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&names.name));
    if dir.exists() {
        bail!("{} exists already: choose another --dir or remove it", dir.display());
    }
    let files = [
        ("Cargo.toml", names.fill(CARGO_TOML, &headstart, &libtorch, true)),
        ("build.rs", names.fill(BUILD_RS, &headstart, &libtorch, false)),
        (".cargo/config.toml", names.fill(CONFIG_TOML, &headstart, &libtorch, true)),
        ("src/main.rs", names.fill(MAIN_RS, &headstart, &libtorch, false)),
        (&format!("src/{}.rs", names.snake), names.environment()),
        (&format!("experiments/{}.ron", names.name), names.fill(STUDY_RON, &headstart, &libtorch, false)),
        ("README.md", names.fill(README_MD, &headstart, &libtorch, false)),
        (".gitignore", "/target\n".into()),
    ];
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a file in the crate"))
            .with_context(|| format!("creating {}", path.display()))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let lock = headstart.join("Cargo.lock");
    if lock.is_file() {
        std::fs::copy(&lock, dir.join("Cargo.lock")).with_context(|| format!("copying {}", lock.display()))?;
    }
    println!("created {} ({}): an environment crate depending on {}", dir.display(), names.id, headstart.display());
    println!("  cd {} && cargo run --release -- check {}", dir.display(), names.id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_crate_name() {
        let n = Names::new("point-mass").unwrap();
        assert_eq!((n.snake.as_str(), n.camel.as_str(), n.id.as_str()), ("point_mass", "PointMass", "PointMass-v0"));
        let n = Names::new("arm_2d").unwrap();
        assert_eq!(n.id, "Arm2d-v0");
        let n = Names::new("long-corridor").unwrap();
        assert!(n.environment().contains("\"LongCorridor-v0\"") && n.id == "LongCorridor-v0");
        let path = Path::new("/a \"b\"\\c");
        assert_eq!(n.fill("\"{{headstart}}\"", path, path, true), "\"/a \\\"b\\\"\\\\c\"");
        for bad in ["", "Point", "2d", "point mass", "point/mass", "main", "type", "self", "headstart", "rand"] {
            assert!(Names::new(bad).is_err(), "{bad:?}");
        }
        let env = Names::new("point-mass").unwrap().environment();
        assert!(env.contains("PointMass-v0") && env.contains("PointMassParams") && !env.contains("Corridor"));
    }
}
