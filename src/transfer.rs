//! Transfer: start a target agent from a source policy's weights, and report exactly what moved.
//!
//! A [`Strategy`] (RON) says how: copy every parameter whose name and shape match (`finetune`,
//! optionally with a smaller learning rate for what was copied), freeze parts for all or part of
//! the budget, re-initialise parts, keep the weights near the source (`l2_init`, L2-SP), distil
//! from the source policy (`distill`, kickstarting), and which training state starts fresh
//! (`reset`). A [`Map`] carries tensors across observation and action spaces that differ.
//! Parts are name patterns over the parameter names of [`crate::agent`]: `actor.trunk` names
//! everything under it, `*` matches any run of characters (`critic.*.head`).
//!
//! [`transfer`] writes the weights into the target agent, installs the learning-rate scales,
//! anchors and teacher, and returns a [`TransferReport`] with one row per target parameter.
//!
//! ```no_run
//! use headstart::{checkpoint, env::{EnvSpec, Registry}, transfer::{self, Strategy}};
//!
//! let source = checkpoint::load("policies/cartpole-ppo".as_ref())?;
//! let target_env = EnvSpec::new("CartPole-v1").with("length", 0.75);
//! let env = Registry::builtin().make(&target_env)?;
//! let mut agent = source.card.config.build(env.observation_space(), env.action_space(), 0)?;
//! let strategy = Strategy::from_ron(r#"(name: "freeze-trunk", freeze: ["actor.trunk"], freeze_until: 20000)"#)?;
//! let report = transfer::transfer(&source, "policies/cartpole-ppo", agent.as_mut(), &target_env, env.observation_space(), env.action_space(), &strategy, None)?;
//! println!("{}", report.table());
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod map;

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::agent::{Agent, AgentError, Algo, Distill, ron_options};
use crate::checkpoint::Loaded;
use crate::env::{EnvSpec, Space};
pub use map::{Axes, Axis, Map, ObsMap};

/// How a target agent starts from a source policy. Every field has a default, so `()` is plain
/// fine-tuning and `(copy: false)` is learning from scratch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Strategy {
    /// The label in reports [default: derived from the settings].
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Start from the source's weights; `false` is the scratch baseline.
    pub copy: bool,
    /// Learning-rate factor for copied (and mapped) parameters; new ones train at 1.
    pub lr_scale: f64,
    /// Parts trained with learning rate zero ...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<String>,
    /// ... until this environment step of the target run [default: the whole budget].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze_until: Option<u64>,
    /// Parts that keep the target's fresh initialisation instead of the source's values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reinit: Vec<String>,
    /// L2-SP coefficient: adds `l2_init * ||θ - θ_source||²` over the copied parameters.
    pub l2_init: f64,
    /// Kickstarting towards the source policy (PPO and SAC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distill: Option<Distill>,
    /// Which training state starts fresh rather than from the source's.
    pub reset: Resets,
}

/// Which training state starts fresh (`true`) rather than carried from the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Resets {
    /// Adam's moments and step count [default: fresh].
    pub optimizer: bool,
    /// The replay buffer of DQN and SAC [default: fresh; `false` starts the target's buffer with
    /// the source's transitions, which needs the same spaces].
    pub replay: bool,
    /// The observation and return normalisers' running statistics [default: carried, since the
    /// copied weights expect inputs normalised the source's way].
    pub obs_rms: bool,
    /// SAC's entropy temperature `log_ent_coef` [default: carried].
    pub ent_coef: bool,
}

impl Default for Resets {
    fn default() -> Self {
        Resets { optimizer: true, replay: true, obs_rms: false, ent_coef: false }
    }
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy {
            name: String::new(),
            copy: true,
            lr_scale: 1.0,
            freeze: Vec::new(),
            freeze_until: None,
            reinit: Vec::new(),
            l2_init: 0.0,
            distill: None,
            reset: Resets::default(),
        }
    }
}

impl Strategy {
    /// Learning from scratch: the baseline every transfer is measured against.
    pub fn scratch() -> Self {
        Strategy { name: "scratch".into(), copy: false, ..Strategy::default() }
    }

    /// Copy everything that matches and train all of it.
    pub fn finetune() -> Self {
        Strategy { name: "finetune".into(), ..Strategy::default() }
    }

    /// Parses a strategy in RON, refusing unknown fields.
    pub fn from_ron(text: &str) -> Result<Self, ron::error::SpannedError> {
        ron_options().from_str(text)
    }

    pub fn to_ron(&self) -> String {
        ron_options().to_string_pretty(self, ron::ser::PrettyConfig::default()).expect("strategies serialise")
    }

    /// The name, or one derived from the settings.
    pub fn label(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        if !self.copy {
            return "scratch".into();
        }
        let mut parts = vec!["finetune".to_string()];
        if self.lr_scale != 1.0 {
            parts.push(format!("lr×{}", self.lr_scale));
        }
        if !self.freeze.is_empty() {
            let until = self.freeze_until.map(|s| format!("@{s}")).unwrap_or_default();
            parts.push(format!("freeze({}){until}", self.freeze.join(",")));
        }
        if !self.reinit.is_empty() {
            parts.push(format!("reinit({})", self.reinit.join(",")));
        }
        if self.l2_init > 0.0 {
            parts.push(format!("l2_init({})", self.l2_init));
        }
        if let Some(d) = self.distill {
            parts.push(format!("distill({}, {})", d.weight, d.decay_steps));
        }
        parts.join("+")
    }

    /// Checks the values, naming the field at fault.
    pub fn validate(&self) -> Result<(), TransferError> {
        let bad = |field: &'static str, message: &str| Err(TransferError::Strategy { field, message: message.into() });
        if !(self.lr_scale.is_finite() && self.lr_scale >= 0.0) {
            return bad("lr_scale", "must be finite and >= 0");
        }
        if !(self.l2_init.is_finite() && self.l2_init >= 0.0) {
            return bad("l2_init", "must be finite and >= 0");
        }
        if let Some(d) = self.distill
            && !(d.weight.is_finite() && d.weight >= 0.0 && d.decay_steps >= 1)
        {
            return bad("distill", "needs a finite weight >= 0 and decay_steps >= 1");
        }
        if self.freeze_until.is_some() && self.freeze.is_empty() {
            return bad("freeze_until", "is set but `freeze` names no part");
        }
        let transfer_only = self.lr_scale != 1.0
            || !self.freeze.is_empty()
            || !self.reinit.is_empty()
            || self.l2_init > 0.0
            || self.distill.is_some();
        if !self.copy && transfer_only {
            return bad("copy", "is false (scratch), so freeze, reinit, lr_scale, l2_init and distill have nothing to act on");
        }
        Ok(())
    }
}

/// What happened to one target parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fate {
    /// The source's value, as is.
    Copied,
    /// The source's value carried through the map.
    Mapped,
    /// The source has it, but the strategy keeps the target's fresh initialisation.
    Reinit,
    /// The source has no such parameter: fresh initialisation.
    New,
}

/// Whether a parameter trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frozen {
    No,
    /// Frozen for the whole run.
    Always,
    /// Frozen until this environment step.
    Until(u64),
}

/// One target parameter in the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamReport {
    pub name: String,
    pub shape: Vec<i64>,
    /// The source tensor's shape, when the source has one of this name.
    pub source_shape: Option<Vec<i64>>,
    pub fate: Fate,
    pub frozen: Frozen,
    /// Learning-rate factor once unfrozen.
    pub lr_scale: f64,
    /// Whether L2-SP pulls it towards the source.
    pub anchored: bool,
}

/// What a transfer did: per target parameter, and to the training state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransferReport {
    /// The source checkpoint.
    pub source: String,
    pub source_env: EnvSpec,
    pub source_steps: u64,
    pub algorithm: Algo,
    pub target_env: EnvSpec,
    pub strategy: String,
    pub settings: Strategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<Map>,
    pub parameters: Vec<ParamReport>,
    /// Source parameters the target has no place for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
    /// What happened to optimiser state, normalisers, replay buffer and temperature.
    pub state: Vec<String>,
    pub warnings: Vec<String>,
}

impl TransferReport {
    /// How many parameters took the source's values (copied or mapped).
    pub fn transferred(&self) -> usize {
        self.parameters.iter().filter(|p| matches!(p.fate, Fate::Copied | Fate::Mapped)).count()
    }

    /// The report as a text table, with the state and warnings below it.
    pub fn table(&self) -> String {
        let shape = |s: &[i64]| format!("{s:?}");
        let rows: Vec<[String; 6]> = self
            .parameters
            .iter()
            .map(|p| {
                [
                    p.name.clone(),
                    shape(&p.shape),
                    p.source_shape.as_deref().map(shape).unwrap_or_else(|| "-".into()),
                    format!("{:?}", p.fate).to_lowercase(),
                    match p.frozen {
                        Frozen::No => "-".into(),
                        Frozen::Always => "frozen".into(),
                        Frozen::Until(s) => format!("until {s}"),
                    },
                    format!("{}{}", p.lr_scale, if p.anchored { " +l2" } else { "" }),
                ]
            })
            .collect();
        let header = ["parameter", "shape", "source", "fate", "frozen", "lr×"];
        let widths: Vec<usize> =
            (0..6).map(|i| rows.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0)).collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            padded.join("  ").trim_end().to_string() + "\n"
        };
        let mut out = format!(
            "transfer {} -> {} ({}, {}): {} of {} parameters from the source\n",
            self.source,
            self.target_env,
            self.algorithm,
            self.strategy,
            self.transferred(),
            self.parameters.len()
        );
        out += &line(&header.map(String::from));
        for row in &rows {
            out += &line(row);
        }
        for d in &self.dropped {
            out += &format!("dropped: {d} (the target has no such parameter)\n");
        }
        for s in &self.state {
            out += &format!("state: {s}\n");
        }
        for w in &self.warnings {
            out += &format!("warning: {w}\n");
        }
        out
    }

    pub fn to_ron(&self) -> String {
        ron_options().to_string_pretty(self, ron::ser::PrettyConfig::default()).expect("reports serialise")
    }

    /// Reads what [`TransferReport::to_ron`] wrote.
    pub fn from_ron(text: &str) -> Result<Self, ron::error::SpannedError> {
        ron_options().from_str(text)
    }
}

/// Why a transfer was refused. Each names the tensor, field or part at fault.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Env(#[from] crate::env::EnvError),
    #[error(
        "the source is a {source} policy and the target agent is {target}: transfer moves weights between agents \
         of one algorithm ({source} handles {}, {target} handles {}); train the target with {source}, or pretrain a {target} source",
        source_algo.supports(),
        target.supports(),
        source = source_algo
    )]
    AlgorithmMismatch { source_algo: Algo, target: Algo },
    #[error("tensor `{tensor}` is {source_shape:?} in the source but {target:?} in the target: {hint}")]
    ShapeMismatch { tensor: String, source_shape: Vec<i64>, target: Vec<i64>, hint: String },
    #[error("map: tensor `{tensor}`: {message}")]
    Map { tensor: String, message: String },
    #[error("strategy field `{field}`: part {pattern:?} matches no parameter{}; parts are: {}", did_you_mean(suggestion), parts.join(", "))]
    UnknownPart { field: &'static str, pattern: String, parts: Vec<String>, suggestion: Option<String> },
    #[error("strategy field `{field}` {message}")]
    Strategy { field: &'static str, message: String },
    #[error(
        "the transfer copies nothing: no target parameter takes a value from the source ({reason}); this would \
         be a scratch run under another name (use the `scratch` strategy for that)"
    )]
    NothingCopied { reason: String },
}

fn did_you_mean(s: &Option<String>) -> String {
    s.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default()
}

/// Whether the part pattern `pattern` names parameter `name`: `*` matches any run of
/// characters; without `*`, the name itself or anything under it (`actor.trunk` names
/// `actor.trunk.0.weight`).
pub fn matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return name == pattern || name.starts_with(pattern) && name[pattern.len()..].starts_with('.');
    }
    glob(pattern.as_bytes(), name.as_bytes()) || glob(format!("{pattern}.*").as_bytes(), name.as_bytes())
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// The parts a pattern may name: every parameter and each of its dotted prefixes.
fn parts(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = names
        .iter()
        .flat_map(|n| {
            let pieces: Vec<&str> = n.split('.').collect();
            (1..=pieces.len()).map(move |k| pieces[..k].join("."))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The target parameters a list of patterns names; a pattern that names none is an error.
fn select(field: &'static str, patterns: &[String], names: &[String]) -> Result<Vec<String>, TransferError> {
    for pattern in patterns {
        if !names.iter().any(|n| matches(pattern, n)) {
            let parts = parts(names);
            let suggestion = crate::env::nearest(pattern, parts.iter().map(String::as_str));
            return Err(TransferError::UnknownPart { field, pattern: pattern.clone(), parts, suggestion });
        }
    }
    Ok(names.iter().filter(|n| patterns.iter().any(|p| matches(p, n))).cloned().collect())
}

fn action_count(space: &Space) -> usize {
    match space {
        Space::Discrete { n } => *n,
        Space::Box { .. } => space.flat_dim(),
    }
}

/// A hint for a shape mismatch, from the axes of the tensor.
fn shape_hint(axes: Axes, obs: (usize, usize), act: (usize, usize)) -> String {
    let obs_axis = matches!(axes.rows, Axis::Obs | Axis::ObsAction) || matches!(axes.cols, Axis::Obs | Axis::ObsAction);
    let act_axis = matches!(axes.rows, Axis::Action | Axis::ObsAction) || matches!(axes.cols, Axis::Action | Axis::ObsAction);
    if obs_axis && obs.0 != obs.1 {
        format!(
            "the source observes {} features and the target {}; declare a map (`obs: Index([...])`, one entry per \
             target feature) or re-initialise this part with `reinit`",
            obs.0, obs.1
        )
    } else if act_axis && act.0 != act.1 {
        format!(
            "the source has {} actions and the target {}; declare a map (`actions: [...]`, one entry per target \
             action) or re-initialise this part with `reinit`",
            act.0, act.1
        )
    } else {
        "the networks differ in size (`net.hidden` of the config): build the target with the source's network, \
         or re-initialise this part with `reinit`"
            .into()
    }
}

/// Moves the source's knowledge into `target` as `strategy` says, through `map` when the
/// spaces differ, and reports what happened. `target` must be freshly built for the target
/// environment (spaces `obs_space`, `action_space`); `source_name` names the source in the
/// report.
#[allow(clippy::too_many_arguments)]
pub fn transfer(
    source: &Loaded,
    source_name: &str,
    target: &mut dyn Agent,
    target_env: &EnvSpec,
    obs_space: &Space,
    action_space: &Space,
    strategy: &Strategy,
    map: Option<&Map>,
) -> Result<TransferReport, TransferError> {
    strategy.validate()?;
    let card = &source.card;
    let algo = target.algo();
    if card.algorithm != algo {
        return Err(TransferError::AlgorithmMismatch { source_algo: card.algorithm, target: algo });
    }
    let names = target.weight_names();
    let live: HashMap<String, Tensor> = target.tensors().into_iter().collect();
    let sources: HashMap<String, Tensor> = source.agent.tensors().into_iter().collect();
    let obs_dims = (card.observation_space.flat_dim(), obs_space.flat_dim());
    let act_dims = (action_count(&card.action_space), action_count(action_space));
    let mut report = TransferReport {
        source: source_name.to_string(),
        source_env: card.env.clone(),
        source_steps: card.steps,
        algorithm: algo,
        target_env: target_env.clone(),
        strategy: strategy.label(),
        settings: strategy.clone(),
        map: map.cloned(),
        parameters: Vec::new(),
        dropped: card.weights.iter().filter(|n| !names.contains(n)).cloned().collect(),
        state: Vec::new(),
        warnings: Vec::new(),
    };
    if card.env.id != target_env.id {
        report.warnings.push(format!(
            "the source was trained on {} and the target is {}: another environment family, so the weights may \
             mean something else here",
            card.env.id, target_env.id
        ));
    }
    if !strategy.copy {
        report.parameters = names.iter().map(|n| param(n, &live[n], sources.get(n), Fate::New)).collect();
        report.state.push("scratch: every parameter and all training state start fresh".into());
        return Ok(report);
    }

    let mut reinit = select("reinit", &strategy.reinit, &names)?;
    let frozen = select("freeze", &strategy.freeze, &names)?;
    if strategy.reset.ent_coef && names.iter().any(|n| n == "log_ent_coef") {
        reinit.push("log_ent_coef".into());
    }
    // Fresh values of the re-initialised parts, restored after the teacher has seen the source's.
    let fresh: Vec<(String, Tensor)> = reinit.iter().map(|n| (n.clone(), live[n].detach().copy())).collect();
    for name in &names {
        let dst = &live[name];
        let axes = map::axes(algo, name, dst.dim(), &names);
        let Some(src) = sources.get(name) else {
            report.parameters.push(param(name, dst, None, Fate::New));
            continue;
        };
        if src.dim() != dst.dim() {
            return Err(TransferError::ShapeMismatch {
                tensor: name.clone(),
                source_shape: src.size(),
                target: dst.size(),
                hint: "the tensors differ in rank: the source's network is built differently".into(),
            });
        }
        let mapped = map.is_some_and(|m| m.touches(axes));
        let value = match map.filter(|_| mapped) {
            Some(m) => m.apply(src, dst, axes, obs_dims, act_dims),
            None => Ok(src.shallow_clone()),
        };
        let is_reinit = reinit.contains(name);
        let value = match value {
            Ok(v) if v.size() == dst.size() => v,
            _ if is_reinit => {
                report.parameters.push(param(name, dst, Some(src), Fate::Reinit));
                continue;
            }
            Ok(v) => {
                return Err(TransferError::ShapeMismatch {
                    tensor: name.clone(),
                    source_shape: if mapped { v.size() } else { src.size() },
                    target: dst.size(),
                    hint: shape_hint(axes, obs_dims, act_dims),
                });
            }
            Err(e) => return Err(TransferError::Map { tensor: name.clone(), message: e.0 }),
        };
        tch::no_grad(|| dst.shallow_clone().copy_(&value));
        let fate = if is_reinit {
            Fate::Reinit
        } else if mapped {
            Fate::Mapped
        } else {
            Fate::Copied
        };
        report.parameters.push(param(name, dst, Some(src), fate));
    }
    if report.transferred() == 0 {
        let reason = if names.iter().any(|n| sources.contains_key(n)) {
            "every shared parameter is re-initialised".to_string()
        } else {
            format!("the source's parameters ({}) share no name with the target's", card.weights.join(", "))
        };
        return Err(TransferError::NothingCopied { reason });
    }

    if let Some(distill) = strategy.distill {
        target.set_teacher(distill)?;
        report.state.push(format!(
            "distill: KL towards the source policy, weight {} falling to 0 at step {}",
            distill.weight, distill.decay_steps
        ));
    }
    tch::no_grad(|| {
        for (name, value) in &fresh {
            live[name].shallow_clone().copy_(value);
        }
    });
    target.sync_targets();

    let copied: Vec<String> =
        report.parameters.iter().filter(|p| matches!(p.fate, Fate::Copied | Fate::Mapped)).map(|p| p.name.clone()).collect();
    carry_state(source, target, &live, &sources, &copied, strategy, map, obs_dims, &mut report)?;

    let scale_of = |n: &str| if copied.iter().any(|c| c == n) { strategy.lr_scale } else { 1.0 };
    for (_, opt) in target.optimizers() {
        if strategy.lr_scale != 1.0 {
            opt.set_lr_scale(|n| copied.iter().any(|c| c == n), strategy.lr_scale);
        }
        if !frozen.is_empty() {
            opt.set_lr_scale(|n| frozen.iter().any(|f| f == n), 0.0);
            if let Some(until) = strategy.freeze_until {
                let mut scales = vec![1.0];
                if strategy.lr_scale != 1.0 {
                    scales.push(strategy.lr_scale);
                }
                for scale in scales {
                    let names: Vec<String> = frozen.iter().filter(|n| scale_of(n) == scale).cloned().collect();
                    opt.schedule_lr_scale(until, names, scale);
                }
            }
        }
        if strategy.l2_init > 0.0 {
            opt.set_anchor(|n| copied.iter().any(|c| c == n), strategy.l2_init);
        }
    }
    for p in &mut report.parameters {
        p.lr_scale = scale_of(&p.name);
        p.anchored = strategy.l2_init > 0.0 && copied.contains(&p.name);
        if frozen.contains(&p.name) {
            p.frozen = strategy.freeze_until.map_or(Frozen::Always, Frozen::Until);
        }
    }
    Ok(report)
}

/// Builds an agent for `target` with the source's hyperparameters and network, and transfers
/// into it: the start of every target run.
pub fn prepare(
    registry: &crate::env::Registry,
    source: &Loaded,
    source_name: &str,
    target: &EnvSpec,
    strategy: &Strategy,
    map: Option<&Map>,
    seed: u64,
) -> Result<(Box<dyn Agent>, TransferReport), TransferError> {
    let env = registry.make(target)?;
    let (obs_space, action_space) = (env.observation_space().clone(), env.action_space().clone());
    let mut agent = source.card.config.build(&obs_space, &action_space, seed)?;
    let report = transfer(source, source_name, agent.as_mut(), target, &obs_space, &action_space, strategy, map)?;
    Ok((agent, report))
}

impl Strategy {
    /// A strategy named on a command line: `finetune`, `scratch`, a `.ron` file, or RON text.
    pub fn from_arg(arg: &str) -> Result<Strategy, String> {
        match arg {
            "finetune" => return Ok(Strategy::finetune()),
            "scratch" => return Ok(Strategy::scratch()),
            _ => {}
        }
        let (text, origin) = if arg.ends_with(".ron") {
            (std::fs::read_to_string(arg).map_err(|e| format!("{arg}: {e}"))?, arg.to_string())
        } else {
            (arg.to_string(), "strategy".to_string())
        };
        Strategy::from_ron(&text).map_err(|e| format!("{origin}: {e} (strategies: finetune, scratch, a .ron file or RON text)"))
    }
}

impl Map {
    /// Reads a map file (RON), refusing unknown fields.
    pub fn load(path: &std::path::Path) -> Result<Map, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        ron_options().from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

fn param(name: &str, dst: &Tensor, src: Option<&Tensor>, fate: Fate) -> ParamReport {
    ParamReport {
        name: name.to_string(),
        shape: dst.size(),
        source_shape: src.map(Tensor::size),
        fate,
        frozen: Frozen::No,
        lr_scale: 1.0,
        anchored: false,
    }
}

/// Carries (or not) the optimiser moments and normaliser statistics, as the strategy's resets
/// say, and notes what happened in the report.
#[allow(clippy::too_many_arguments)]
fn carry_state(
    source: &Loaded,
    target: &mut dyn Agent,
    live: &HashMap<String, Tensor>,
    sources: &HashMap<String, Tensor>,
    copied: &[String],
    strategy: &Strategy,
    map: Option<&Map>,
    obs_dims: (usize, usize),
    report: &mut TransferReport,
) -> Result<(), TransferError> {
    let write = |name: &str, value: &Tensor| tch::no_grad(|| live[name].shallow_clone().copy_(value));
    let same = |name: &str| sources.get(name).filter(|s| s.size() == live[name].size());
    if strategy.reset.optimizer {
        report.state.push("optimizer: fresh Adam moments".into());
    } else {
        let mut get = |name: &str| sources.get(name).map(Tensor::shallow_clone);
        let carried: usize = target.optimizers().into_iter().map(|(prefix, opt)| opt.carry_state(prefix, copied, &mut get)).sum();
        report.state.push(format!(
            "optimizer: {carried} Adam state tensors carried from the source (moments of the parameters copied as \
             they are, and step counts); the rest start at zero"
        ));
    }
    let norm_names: Vec<&String> = live.keys().filter(|n| n.starts_with("obs_rms.") || n.starts_with("ret_rms.")).collect();
    if norm_names.is_empty() {
        // The target normalises nothing.
    } else if strategy.reset.obs_rms {
        report.state.push("normalisers: fresh statistics (reset.obs_rms)".into());
    } else if !sources.contains_key("obs_rms.mean") {
        report.state.push("normalisers: fresh statistics (the source kept none)".into());
    } else {
        let index = match map.and_then(|m| m.obs.as_ref()) {
            None if obs_dims.0 == obs_dims.1 => Some((0..obs_dims.1).map(Some).collect::<Vec<_>>()),
            Some(ObsMap::Index(index)) => Some(index.clone()),
            _ => None,
        };
        match index {
            None => report.state.push(
                "normalisers: fresh statistics (a linear map cannot carry per-feature statistics)".into(),
            ),
            Some(index) => {
                for name in &norm_names {
                    let src = &sources[*name];
                    if name.starts_with("obs_rms.") && !name.ends_with("count") {
                        let fill = if name.ends_with("mean") { 0.0 } else { 1.0 };
                        let values: Vec<f64> = index
                            .iter()
                            .map(|s| s.map_or(fill, |s| src.double_value(&[s as i64])))
                            .collect();
                        write(name, &Tensor::from_slice(&values).to_kind(live[*name].kind()));
                    } else if let Some(src) = same(name) {
                        write(name, src);
                    }
                }
                report.state.push(format!(
                    "normalisers: statistics carried from the source ({} steps of them)",
                    source.card.steps
                ));
            }
        }
    }
    if let Some(buffer) = target.replay_mut() {
        if strategy.reset.replay {
            report.state.push("replay buffer: starts empty".into());
        } else {
            let state = source.agent.replay().map(|b| b.state()).unwrap_or_default();
            let found: HashMap<String, Tensor> = state.into_iter().collect();
            if found.get("replay.rewards").is_none_or(|r| r.numel() == 0) {
                return Err(TransferError::Strategy {
                    field: "reset.replay",
                    message: "is false, but the source checkpoint holds no replay buffer".into(),
                });
            }
            let n = buffer
                .extend_from_state(&mut |n| found.get(n).map(Tensor::shallow_clone))
                .map_err(|e| TransferError::Strategy {
                    field: "reset.replay",
                    message: format!("is false, but the source's transitions do not fit the target's buffer: {e}"),
                })?;
            report.state.push(format!("replay buffer: starts with the source's {n} transitions"));
        }
    }
    if report.algorithm == Algo::Sac {
        report.state.push(if strategy.reset.ent_coef {
            "entropy temperature: fresh (reset.ent_coef)".into()
        } else {
            "entropy temperature: carried from the source".into()
        });
    }
    Ok(())
}

impl fmt::Display for Fate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", format!("{self:?}").to_lowercase())
    }
}
