//! The Gymnasium bridge (cargo feature `python`): any environment `gymnasium.make` builds is an
//! [`Env`], under the id `gym:<Gymnasium id>` (`gym:HalfCheetah-v5`), or `gym:<module>:<id>` for
//! an id that a user's package registers when imported (`gym:my_pkg.envs:Corridor-v0`). CPython
//! is embedded (pyo3); a virtualenv's packages are found through `HEADSTART_VENV`, else the
//! project's `.venv-gym` (made by `make setup-python`), which must be of the embedded
//! interpreter's minor version.
//!
//! Parameters: the keyword arguments of the environment's constructor that have an `int`, `float`
//! or `bool` default (discovered from its signature, typed by the default: an `int` takes whole
//! numbers, a `bool` 0 or 1; bounded where the environment class declares
//! `param_bounds = {"name": (lo, hi)}`; passed to `gym.make` as their type), and for MuJoCo environments a
//! physics context applied to the compiled model: `gravity` (m/s², the z component), `mass_scale`,
//! `friction_scale`, `damping_scale`, `gear_scale` (factors on every body's mass and inertia,
//! geom's friction, joint's damping, actuator's gear) and `mass.<body>` (one body's mass, kg,
//! inertia scaled alike). Their defaults are read from the model.
//!
//! Semantics: Box observations (float32 or float64) and Discrete spaces (with `start`) map onto
//! [`Space`]; other spaces are refused with a fix to try. The time limit is Gymnasium's own (its
//! `TimeLimit`, with `max_episode_steps` passed to `gym.make`), applied once. `info` keeps its
//! numeric scalars. Exceptions in `reset`/`step` become errors naming the environment, the
//! exception's type and message, and its last frame.

use pyo3::sync::PyOnceLock;
use std::ffi::CString;

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule};

use super::params::{Bound as Range, ParamSpec, Params};
use super::{Action, Env, EnvError, Info, Obs, Space, Step};

/// The id prefix of Gymnasium environments.
pub const PREFIX: &str = "gym:";

/// The bridge's Python side.
const CODE: &str = include_str!("python/bridge.py");

/// The bridge module, loaded once (with the virtualenv's packages on the path).
fn bridge(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    /// Why the bridge did not load (kept, so that every later use says it again).
    #[derive(Debug)]
    struct LoadFailure(String);
    // pyo3's once-cell: it detaches from the interpreter while it waits, so that a thread
    // blocked here never holds the GIL that the loading thread's imports need (a std `OnceLock`
    // deadlocked two threads that met the bridge at once).
    static MODULE: PyOnceLock<Result<Py<PyModule>, LoadFailure>> = PyOnceLock::new();
    let module = MODULE.get_or_init(py, || {
        let load = || -> PyResult<Py<PyModule>> {
            add_venv(py)?;
            let code = CString::new(CODE).expect("no NUL in the bridge's code");
            let module = PyModule::from_code(py, &code, c"headstart_bridge.py", c"headstart_bridge")?;
            Ok(module.unbind())
        };
        load().map_err(|e| LoadFailure(describe(py, &e)))
    });
    match module {
        Ok(m) => Ok(m.bind(py).clone()),
        Err(LoadFailure(message)) => Err(pyo3::exceptions::PyImportError::new_err(message.clone())),
    }
}

/// Adds the virtualenv's site-packages (`HEADSTART_VENV`, else `.venv-gym` in the working folder
/// or the crate's) to the embedded interpreter's path, refusing one of another Python version.
fn add_venv(py: Python<'_>) -> PyResult<()> {
    let candidates = [
        std::env::var_os("HEADSTART_VENV").map(std::path::PathBuf::from),
        Some(std::path::PathBuf::from(".venv-gym")),
        Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-gym")),
    ];
    let Some(venv) = candidates.into_iter().flatten().find(|p| p.join("pyvenv.cfg").exists()) else {
        return Ok(());
    };
    let sys = py.import("sys")?;
    let (major, minor): (u32, u32) = (sys.getattr("version_info")?.getattr("major")?.extract()?, {
        sys.getattr("version_info")?.getattr("minor")?.extract()?
    });
    let site_packages = venv.join("lib").join(format!("python{major}.{minor}")).join("site-packages");
    if !site_packages.exists() {
        let cfg = std::fs::read_to_string(venv.join("pyvenv.cfg")).unwrap_or_default();
        let version = cfg.lines().find(|l| l.starts_with("version")).unwrap_or("version = ?").to_string();
        return Err(pyo3::exceptions::PyImportError::new_err(format!(
            "the virtualenv {} is of another Python ({}) than headstart embeds ({major}.{minor}); make it with \
             python{major}.{minor} -m venv (`make setup-python`)",
            venv.display(),
            version.trim()
        )));
    }
    py.import("site")?.call_method1("addsitedir", (site_packages.to_string_lossy().to_string(),))?;
    Ok(())
}

/// A Python exception as one line: type, message and the last frame.
fn describe(py: Python<'_>, error: &PyErr) -> String {
    let kind = error.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".into());
    let message = error.value(py).to_string();
    let frame = error
        .traceback(py)
        .and_then(|tb| {
            let frames = py.import("traceback").ok()?.call_method1("extract_tb", (tb,)).ok()?;
            let last = frames.get_item(-1i64).ok()?;
            let file: String = last.getattr("filename").ok()?.extract().ok()?;
            let line: u32 = last.getattr("lineno").ok()?.extract().ok()?;
            let name: String = last.getattr("name").ok()?.extract().ok()?;
            Some(format!(" (at {file}:{line} in {name})"))
        })
        .unwrap_or_default();
    let hint = if kind == "ModuleNotFoundError" || message.contains("No module named") {
        "; install the package into the bridge's virtualenv (`make setup-python`, or HEADSTART_VENV), or put \
         the folder that holds it on PYTHONPATH"
    } else {
        ""
    };
    format!("{kind}: {message}{frame}{hint}")
}

fn python_error(env: &str, py: Python<'_>, error: PyErr) -> EnvError {
    EnvError::Custom(format!("{env}: {}", describe(py, &error)))
}

/// What the registry needs to know of a Gymnasium id: its parameters, episode limit and threshold.
pub struct Described {
    /// Constructor keyword arguments and (MuJoCo) physics parameters, with their defaults.
    pub params: Vec<ParamSpec>,
    /// The constructor's `str` keyword arguments with their defaults: set in the id itself
    /// (`gym:ID?name=value`), not among the numeric parameters.
    pub texts: Vec<(String, String)>,
    /// Gymnasium's `max_episode_steps`.
    pub max_episode_steps: Option<usize>,
    /// Gymnasium's `reward_threshold`.
    pub reward_threshold: Option<f64>,
}

/// Reads the parameters, limit and threshold of `gym:<id>` (building the environment once).
pub fn describe_env(id: &str) -> Result<Described, EnvError> {
    let id = id.split_once('?').map_or(id, |(base, _)| base);
    let name = id.strip_prefix(PREFIX).unwrap_or(id);
    Python::attach(|py| {
        let out = bridge(py).and_then(|m| m.getattr("describe")?.call1((name,)));
        let out = out.map_err(|e| python_error(id, py, e))?;
        type Kwarg = (String, f64, String, Option<f64>, Option<f64>);
        type Reply = (Vec<Kwarg>, Vec<(String, String)>, Vec<(String, f64)>, Option<usize>, Option<f64>);
        let (kwargs, texts, physics, limit, threshold): Reply =
            out.extract().map_err(|e: PyErr| python_error(id, py, e))?;
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let mut params: Vec<ParamSpec> = kwargs
            .into_iter()
            .map(|(name, default, kind, lo, hi)| {
                let (bound, doc) = kwarg_bound(&kind, lo, hi);
                ParamSpec { name: leak(name), default, bound, doc }
            })
            .collect();
        for (name, default) in physics {
            let (bound, doc) = match name.as_str() {
                "gravity" => (Range::Finite, "MuJoCo gravity, z component (m/s^2)"),
                "mass_scale" => (Range::Positive, "factor on every body's mass and inertia"),
                "friction_scale" => (Range::NonNegative, "factor on every geom's friction"),
                "damping_scale" => (Range::NonNegative, "factor on every joint's damping"),
                "gear_scale" => (Range::Positive, "factor on every actuator's gear"),
                _ => (Range::Positive, "this body's mass (kg), its inertia scaled alike"),
            };
            params.push(ParamSpec { name: leak(name), default, bound, doc });
        }
        Ok(Described { params, texts, max_episode_steps: limit, reward_threshold: threshold })
    })
}

/// The range and meaning of a constructor keyword argument of Python type `kind` (`int`,
/// `float`, `bool`; `int?` for `int | None = None`, such as ALE's `mode`), within `[lo, hi]` where the environment declares bounds (`param_bounds`).
fn kwarg_bound(kind: &str, lo: Option<f64>, hi: Option<f64>) -> (Range, &'static str) {
    let (lo, hi) = (lo.unwrap_or(f64::NEG_INFINITY), hi.unwrap_or(f64::INFINITY));
    let bounded = lo.is_finite() || hi.is_finite();
    match kind {
        "bool" => (Range::Flag, "a bool keyword argument of the environment's constructor"),
        "int" if bounded => (Range::WholeWithin(lo, hi), "an int keyword argument of the environment's constructor"),
        "int" => (Range::Whole, "an int keyword argument of the environment's constructor"),
        "int?" => (Range::Whole, "an int keyword argument of the environment's constructor (0: the environment's own choice)"),
        _ if bounded => (Range::Within(lo, hi), "a float keyword argument of the environment's constructor"),
        _ => (Range::Finite, "a float keyword argument of the environment's constructor"),
    }
}

/// The registry's entry for `gym:<id>`: its parameters, Gymnasium's limit and threshold, and a
/// maker that passes the episode limit to `gym.make` (Gymnasium's `TimeLimit` is the one that
/// applies) and adds only the misuse guard.
pub fn entry(id: &str) -> Result<super::EnvEntry, EnvError> {
    let described = describe_env(id)?;
    let texts = text_arguments(id, &described)?;
    let specs = described.params.clone();
    let owned = id.split_once('?').map_or(id, |(base, _)| base).to_string();
    let make = move |params: &Params, wrap: Option<super::registry::Wrapping<'_>>| -> Result<Box<dyn Env>, EnvError> {
        let env = GymEnv::make(&owned, params, &texts, &specs, wrap.map(|w| w.limit))?;
        Ok(match wrap {
            Some(wrap) => Box::new(super::EpisodeGuard::named(env, wrap.name)),
            None => Box::new(env),
        })
    };
    let mut entry = super::EnvEntry::with_make(id, std::sync::Arc::new(make)).params(&described.params);
    if let Some(limit) = described.max_episode_steps {
        entry = entry.max_episode_steps(limit);
    }
    if let Some(threshold) = described.reward_threshold {
        entry = entry.reward_threshold(threshold);
    }
    let mut doc = "a Gymnasium environment, through the Python bridge".to_string();
    if !described.texts.is_empty() {
        let list: Vec<String> = described.texts.iter().map(|(n, d)| format!("{n} (str, default {d:?})")).collect();
        doc.push_str(&format!("; string arguments, set in the id (`gym:ID?name=value&...`): {}", list.join(", ")));
    }
    Ok(entry.doc(doc))
}

/// The `str` keyword arguments an id sets after `?` (`gym:ID?map_name=8x8&mode=hard`), each a
/// `str` keyword argument of the constructor; a number is a parameter (`params`), not text.
fn text_arguments(id: &str, described: &Described) -> Result<Vec<(String, String)>, EnvError> {
    let Some((_, query)) = id.split_once('?') else { return Ok(Vec::new()) };
    let refuse = |message: String| EnvError::InvalidParams { env: id.to_string(), message };
    let mut out = Vec::new();
    for pair in query.split('&') {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| refuse(format!("`{pair}` after `?`: string arguments are `name=value`, joined by `&`")))?;
        if described.texts.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), value.to_string()));
        } else if described.params.iter().any(|p| p.name == name) {
            return Err(refuse(format!("`{name}` is a number: give it as a parameter (`params`, `-p {name}=...`)")));
        } else {
            let names = described.texts.iter().map(|(n, _)| n.as_str());
            let hint = crate::util::nearest(name, names).map(|n| format!(" (did you mean `{n}`?)")).unwrap_or_default();
            let known: Vec<&str> = described.texts.iter().map(|(n, _)| n.as_str()).collect();
            return Err(refuse(format!(
                "`{name}` is not a string keyword argument of the constructor{hint}; it has: {}",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )));
        }
    }
    Ok(out)
}

/// A Gymnasium environment, stepped through the embedded interpreter.
pub struct GymEnv {
    id: String,
    env: Py<PyAny>,
    observation_space: Space,
    action_space: Space,
    start: i64,
    /// `env.step` and `env.reset`, looked up once.
    step_fn: Py<PyAny>,
    reset_fn: Py<PyAny>,
    /// Makes a Box action of the space's dtype from a list.
    make_action: Py<PyAny>,
    /// For float32 Box actions: an array written in place through the buffer protocol, of which
    /// each step passes a copy (a fresh array, as a Python caller's would be).
    action_buffer: Option<(Py<PyAny>, PyBuffer<f32>)>,
    /// Makes a flat float32 array of an observation that is not one already.
    flat: Py<PyAny>,
    /// The observations are flat float32 arrays already (read through the buffer protocol).
    direct: bool,
    /// The bridge's `scalars` (an `info` dict's numbers).
    scalars: Py<PyAny>,
}

impl GymEnv {
    /// Makes `gym:<id>` with `params` (only those that differ from the defaults are passed), the
    /// string keyword arguments `texts`, and Gymnasium's time limit `max_episode_steps` (its
    /// registered one when `None`).
    pub fn make(
        id: &str,
        params: &Params,
        texts: &[(String, String)],
        defaults: &[ParamSpec],
        limit: Option<usize>,
    ) -> Result<GymEnv, EnvError> {
        let name = id.strip_prefix(PREFIX).unwrap_or(id);
        Python::attach(|py| {
            let fail = |e: PyErr| python_error(id, py, e);
            let module = bridge(py).map_err(fail)?;
            let values = PyDict::new(py);
            for (k, v) in params {
                if defaults.iter().any(|d| d.name == k && d.default != *v) {
                    values.set_item(k, v).map_err(fail)?;
                }
            }
            let text = PyDict::new(py);
            for (k, v) in texts {
                text.set_item(k, v).map_err(fail)?;
            }
            let env = module.getattr("make").and_then(|f| f.call1((name, values, text, limit))).map_err(fail)?;
            let spaces = module.getattr("spaces").and_then(|f| f.call1((&env,))).map_err(fail)?;
            type S = (String, usize, i64, Vec<f32>, Vec<f32>, Py<PyAny>);
            let (obs, act, direct): (S, S, bool) = spaces.extract().map_err(|e: PyErr| fail(e))?;
            fn convert(py: Python<'_>, s: S, which: &str, id: &str) -> Result<(Space, i64), EnvError> {
                let fail = |e: PyErr| python_error(id, py, e);
                match s.0.as_str() {
                    "discrete" => Ok((Space::Discrete { n: s.1 }, s.2)),
                    "box" => {
                        let shape: Vec<usize> = s.5.bind(py).extract().map_err(fail)?;
                        Ok((Space::Box { low: s.3, high: s.4, shape }, 0))
                    }
                    "dict" if which == "observation" => {
                        let parts: Vec<(String, S)> = s.5.bind(py).extract().map_err(fail)?;
                        let spaces = parts
                            .into_iter()
                            .map(|(key, part)| Ok((key, convert(py, part, which, id)?.0)))
                            .collect::<Result<_, EnvError>>()?;
                        Ok((Space::Dict { spaces }, 0))
                    }
                    _ => {
                        let what: String = s.5.bind(py).extract().unwrap_or_default();
                        Err(EnvError::Custom(format!("{id}: its {which} space is not supported: {what}")))
                    }
                }
            }
            let (observation_space, _) = convert(py, obs, "observation", id)?;
            if let Space::Discrete { .. } = observation_space {
            } else if observation_space.flat_dim() == 0 {
                return Err(EnvError::Custom(format!("{id}: an empty observation space")));
            }
            let (action_space, start) = convert(py, act, "action", id)?;
            let function = |name: &str| module.getattr(name).map(Bound::unbind).map_err(fail);
            let make_action = function("action_maker")?.bind(py).call1((&env,)).map_err(fail)?.unbind();
            let template = function("action_template")?.bind(py).call1((&env,)).map_err(fail)?;
            let action_buffer = match template.is_none() {
                true => None,
                false => Some((template.clone().unbind(), PyBuffer::<f32>::get(&template).map_err(fail)?)),
            };
            let flat = function("flattener")?.bind(py).call1((&env,)).map_err(fail)?.unbind();
            Ok(GymEnv {
                id: id.to_string(),
                step_fn: env.getattr("step").map_err(fail)?.unbind(),
                reset_fn: env.getattr("reset").map_err(fail)?.unbind(),
                env: env.unbind(),
                observation_space,
                action_space,
                start,
                make_action,
                action_buffer,
                flat,
                direct,
                scalars: function("scalars")?,
            })
        })
    }

    /// Sets an attribute of the unwrapped environment (physics that its constructor does not
    /// take, such as the classic-control tasks' constants); an unknown name is an error.
    pub fn set_attribute(&mut self, name: &str, value: f64) -> Result<(), EnvError> {
        Python::attach(|py| {
            bridge(py)
                .and_then(|m| m.getattr("set_attribute")?.call1((self.env.bind(py), name, value)))
                .map(|_| ())
                .map_err(|e| python_error(&self.id, py, e))
        })
    }

    /// The numbers of an `info` dict (nothing to do for an empty one, the usual case).
    fn info(&self, py: Python<'_>, info: &Bound<'_, PyAny>) -> Result<Info, EnvError> {
        let mut out = Info::new();
        if info.len().map_err(|e| python_error(&self.id, py, e))? == 0 {
            return Ok(out);
        }
        let pairs: Vec<(String, f64)> = self
            .scalars
            .bind(py)
            .call1((info,))
            .and_then(|p| p.extract())
            .map_err(|e| python_error(&self.id, py, e))?;
        for (k, v) in pairs {
            out.insert(k, v);
        }
        Ok(out)
    }

    /// Reads a numeric attribute of the unwrapped environment (a number or an array, flattened):
    /// its internal state, say.
    pub fn attribute(&self, name: &str) -> Result<Vec<f64>, EnvError> {
        Python::attach(|py| {
            bridge(py)
                .and_then(|m| m.getattr("get_attribute")?.call1((self.env.bind(py), name))?.extract())
                .map_err(|e| python_error(&self.id, py, e))
        })
    }

    fn observation(&self, py: Python<'_>, obs: &Bound<'_, PyAny>) -> Result<Obs, EnvError> {
        // A flat float32 array is read as it is; anything else (float64, nested, a list, or an
        // environment whose arrays are not of its declared dtype) goes through `flat` first.
        let direct = self.direct.then(|| PyBuffer::<f32>::get(obs).ok()).flatten();
        let buffer = match direct {
            Some(buffer) if buffer.is_c_contiguous() => buffer,
            _ => {
                let flat = self.flat.bind(py).call1((obs,)).map_err(|e| python_error(&self.id, py, e))?;
                PyBuffer::<f32>::get(&flat).map_err(|e| python_error(&self.id, py, e))?
            }
        };
        let values = buffer.to_vec(py).map_err(|e| python_error(&self.id, py, e))?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(EnvError::Custom(format!(
                "{}: observation value {i} is {} (a non-finite observation)",
                self.id, values[i]
            )));
        }
        Ok(Obs::from_vec(values))
    }
}

impl Env for GymEnv {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        Python::attach(|py| {
            let fail = |e: PyErr| python_error(&self.id, py, e);
            let kwargs = PyDict::new(py);
            kwargs.set_item("seed", seed).map_err(fail)?;
            let out = self.reset_fn.bind(py).call((), Some(&kwargs)).map_err(fail)?;
            let (obs, info): (Bound<'_, PyAny>, Bound<'_, PyAny>) = out.extract().map_err(fail)?;
            Ok((self.observation(py, &obs)?, self.info(py, &info)?))
        })
    }

    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        self.action_space.check_action(action)?;
        Python::attach(|py| {
            let fail = |e: PyErr| python_error(&self.id, py, e);
            let action = match action {
                Action::Discrete(a) => (*a as i64 + self.start).into_pyobject(py).map_err(|e| match e {})?.into_any(),
                Action::Continuous(v) => match &self.action_buffer {
                    Some((array, buffer)) => {
                        buffer.copy_from_slice(py, v).map_err(fail)?;
                        array.bind(py).call_method0(pyo3::intern!(py, "copy")).map_err(fail)?
                    }
                    None => self.make_action.bind(py).call1((v.to_vec(),)).map_err(fail)?,
                },
            };
            let out = self.step_fn.bind(py).call1((action,)).map_err(fail)?;
            type Out<'py> = (Bound<'py, PyAny>, f64, bool, bool, Bound<'py, PyAny>);
            let (obs, reward, terminated, truncated, info): Out<'_> = out.extract().map_err(fail)?;
            Ok(Step { obs: self.observation(py, &obs)?, reward, terminated, truncated, info: self.info(py, &info)? })
        })
    }
}

impl Drop for GymEnv {
    fn drop(&mut self) {
        Python::attach(|py| {
            let _ = self.env.bind(py).call_method0("close");
        });
    }
}
