//! Making environments by id: `"CartPole-v1"` plus parameter overrides, or a named variant read
//! from a RON file in `envs/`. Custom environments join the same registry.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::params::{self, ParamSpec, Params};
use super::transform::{Transform, Transformed};
use super::{Env, EnvError, EpisodeGuard, TimeLimit, VecEnv};
use crate::util::nearest;

/// What the registry makes: the environment inside [`TimeLimit`] inside [`EpisodeGuard`],
/// behind one dynamic call (the wrappers are compiled around each concrete environment).
pub type RegisteredEnv = Box<dyn Env>;

/// How the registry wraps an environment it makes: the episode limit, and the name (id and
/// parameters) that its guard's errors give.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wrapping<'a> {
    pub limit: usize,
    pub name: &'a str,
}

/// Builds an environment from its resolved parameters (every declared parameter present), inside
/// the wrappers when given their settings, bare otherwise.
type MakeFn = dyn Fn(&Params, Option<Wrapping<'_>>) -> Result<Box<dyn Env>, EnvError> + Send + Sync;

/// Which environment to make: an id and parameter overrides. This is what experiment files and
/// checkpoint cards record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvSpec {
    /// The registered id, such as `CartPole-v1`.
    pub id: String,
    /// Overrides of the environment's physics parameters, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: Params,
    /// Overrides the registered episode limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_episode_steps: Option<usize>,
    /// Changes to the interface (observation features, action order, reward scale), applied in
    /// order outside the time limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<Transform>,
}

impl EnvSpec {
    /// The environment `id` as registered: no overrides, the registered episode limit, no
    /// transforms.
    pub fn new(id: impl Into<String>) -> Self {
        EnvSpec { id: id.into(), params: Params::new(), max_episode_steps: None, transforms: Vec::new() }
    }

    /// The same spec with one parameter overridden.
    pub fn with(mut self, name: &str, value: f64) -> Self {
        self.params.insert(name.to_string(), value);
        self
    }
}

impl fmt::Display for EnvSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id)?;
        let overrides: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !overrides.is_empty() {
            write!(f, "({})", overrides.join(", "))?;
        }
        if let Some(limit) = self.max_episode_steps {
            write!(f, "[max_episode_steps={limit}]")?;
        }
        for t in &self.transforms {
            write!(f, "+{t}")?;
        }
        Ok(())
    }
}

/// A named environment variant: a file in `envs/` such as `cartpole-long-pole.ron`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// The name that reports and studies show (by convention the file name without `.ron`).
    pub name: String,
    /// One line saying how it differs from the environment it varies [default: empty].
    #[serde(default)]
    pub description: String,
    /// The environment it makes: an id, parameter overrides, transforms.
    pub env: EnvSpec,
    /// How this variant's observations and actions relate to other environments', by their id:
    /// what `transfer` and `suggest` use when a source policy was trained on one of them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub maps: BTreeMap<String, super::Map>,
}

impl Variant {
    /// Reads a variant file. Syntax errors name the file, line and column.
    pub fn load(path: &Path) -> Result<Variant, EnvError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EnvError::File { path: path.to_path_buf(), message: e.to_string() })?;
        crate::util::ron_options()
            .from_str(&text)
            .map_err(|e| EnvError::File { path: path.to_path_buf(), message: e.to_string() })
    }
}

/// One registered environment: how to make it and what it accepts.
#[derive(Clone)]
pub struct EnvEntry {
    id: String,
    make: Arc<MakeFn>,
    params: Vec<ParamSpec>,
    max_episode_steps: Option<usize>,
    reward_threshold: Option<f64>,
    doc: String,
}

impl EnvEntry {
    /// An entry with no parameters, no episode limit and no threshold; add them with the
    /// builder methods. `make` builds the environment from its resolved parameters.
    pub fn new<E: Env + 'static>(
        id: impl Into<String>,
        make: impl Fn(&Params) -> Result<E, EnvError> + Send + Sync + 'static,
    ) -> Self {
        let make = move |params: &Params, wrap: Option<Wrapping<'_>>| -> Result<Box<dyn Env>, EnvError> {
            let env = make(params)?;
            Ok(match wrap {
                Some(wrap) => Box::new(EpisodeGuard::named(TimeLimit::new(env, wrap.limit), wrap.name)),
                None => Box::new(env),
            })
        };
        EnvEntry::with_make(id, Arc::new(make))
    }

    /// An entry whose maker wraps the environment itself (given the episode limit, or `None`
    /// for a bare environment).
    pub(crate) fn with_make(id: impl Into<String>, make: Arc<MakeFn>) -> Self {
        EnvEntry {
            id: id.into(),
            make,
            params: Vec::new(),
            max_episode_steps: None,
            reward_threshold: None,
            doc: String::new(),
        }
    }

    /// The parameters the environment accepts, with defaults and ranges.
    pub fn params(mut self, specs: &[ParamSpec]) -> Self {
        self.params = specs.to_vec();
        self
    }

    /// The episode limit that [`TimeLimit`] enforces.
    pub fn max_episode_steps(mut self, steps: usize) -> Self {
        self.max_episode_steps = Some(steps);
        self
    }

    /// The return at which the task counts as solved (Gymnasium's `reward_threshold`).
    pub fn reward_threshold(mut self, threshold: f64) -> Self {
        self.reward_threshold = Some(threshold);
        self
    }

    /// One line saying what the task is.
    pub fn doc(mut self, doc: impl Into<String>) -> Self {
        self.doc = doc.into();
        self
    }

    /// The id it is registered under.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The parameters the environment accepts, with defaults and ranges.
    pub fn param_specs(&self) -> &[ParamSpec] {
        &self.params
    }

    /// The registered episode limit, which an [`EnvSpec`] may override; `None`: no limit.
    pub fn episode_limit(&self) -> Option<usize> {
        self.max_episode_steps
    }

    /// The return at which the task counts as solved, when one is registered.
    pub fn threshold(&self) -> Option<f64> {
        self.reward_threshold
    }

    /// One line saying what the task is (empty when none was given).
    pub fn description(&self) -> &str {
        &self.doc
    }
}

/// Environments by id. With the `python` feature, ids `gym:<Gymnasium id>` are Gymnasium's
/// environments through the bridge ([`super::python`]), described once and cached.
#[derive(Clone, Default)]
pub struct Registry {
    entries: BTreeMap<String, EnvEntry>,
    #[cfg(feature = "python")]
    gym: Arc<std::sync::Mutex<BTreeMap<String, EnvEntry>>>,
}

impl Registry {
    /// A registry with no environments.
    pub fn empty() -> Self {
        Registry::default()
    }

    /// A registry with the classic-control environments and MinAtar's five games.
    pub fn builtin() -> Self {
        let mut registry = Registry::empty();
        super::classic::register_all(&mut registry);
        super::minatar::register_all(&mut registry);
        registry
    }

    /// Adds an environment, replacing any registered under the same id.
    pub fn register(&mut self, entry: EnvEntry) -> &mut Self {
        self.entries.insert(entry.id.clone(), entry);
        self
    }

    /// The registered ids, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The entry for `id`, or an error that lists the known ids.
    pub fn entry(&self, id: &str) -> Result<std::borrow::Cow<'_, EnvEntry>, EnvError> {
        #[cfg(feature = "python")]
        if id.starts_with(super::python::PREFIX) {
            let mut cache = self.gym.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = cache.get(id) {
                return Ok(std::borrow::Cow::Owned(entry.clone()));
            }
            let entry = super::python::entry(id)?;
            cache.insert(id.to_string(), entry.clone());
            return Ok(std::borrow::Cow::Owned(entry));
        }
        #[cfg(not(feature = "python"))]
        if id.starts_with("gym:") {
            return Err(EnvError::Custom(format!(
                "{id}: Gymnasium environments need headstart built with the `python` feature (`make setup-python`, \
                 then `cargo build --release --features python`)"
            )));
        }
        self.entries.get(id).map(std::borrow::Cow::Borrowed).ok_or_else(|| EnvError::UnknownEnv {
            id: id.to_string(),
            known: self.ids().map(String::from).collect(),
            suggestion: nearest(id, self.ids()),
        })
    }

    /// Makes the environment `spec` names, with its episode limit and misuse guard.
    pub fn make(&self, spec: &EnvSpec) -> Result<RegisteredEnv, EnvError> {
        let entry = self.entry(&spec.id)?;
        let limit = spec.max_episode_steps.or(entry.max_episode_steps).unwrap_or(usize::MAX);
        if limit == 0 {
            return Err(EnvError::InvalidParams {
                env: spec.id.clone(),
                message: "max_episode_steps must be at least 1".into(),
            });
        }
        self.build(&entry, spec, Some(Wrapping { limit, name: &spec.to_string() }))
    }

    /// Makes the environment without its wrappers: no time limit, no guard. For `check_env`,
    /// which must see whether the environment itself refuses invalid actions.
    pub fn make_bare(&self, spec: &EnvSpec) -> Result<Box<dyn Env>, EnvError> {
        let entry = self.entry(&spec.id)?;
        self.build(&entry, spec, None)
    }

    fn build(&self, entry: &EnvEntry, spec: &EnvSpec, wrap: Option<Wrapping<'_>>) -> Result<Box<dyn Env>, EnvError> {
        let resolved = params::resolve(&spec.id, &entry.params, &spec.params)?;
        let mut env = (entry.make)(&resolved, wrap)?;
        if !spec.transforms.is_empty() {
            env = Box::new(Transformed::new(env, spec.transforms.clone(), &spec.id)?);
        }
        if let Some(space_error) = env.observation_space().validate().err().or(env.action_space().validate().err()) {
            return Err(EnvError::InvalidParams { env: spec.id.clone(), message: space_error.to_string() });
        }
        if let super::Space::Dict { .. } = env.action_space() {
            return Err(EnvError::InvalidParams {
                env: spec.id.clone(),
                message: "its action space is a Dict: actions are Discrete or Box".into(),
            });
        }
        Ok(env)
    }

    /// Makes `n` copies of `spec` stepped together, with auto-reset.
    pub fn make_vec(&self, spec: &EnvSpec, n: usize) -> Result<VecEnv<RegisteredEnv>, EnvError> {
        let envs = (0..n).map(|_| self.make(spec)).collect::<Result<Vec<_>, _>>()?;
        VecEnv::new(envs)
    }
}
