//! `data`'s fields, read with their types. Every field the import reads is used with the type SB3
//! stores it with, or refused naming the field and what it holds, or listed as not carried with
//! why: nothing falls back to a default in silence.

use std::fmt::Debug;

use base64::Engine;
use serde_json::Value as Json;

use super::Problem;
use super::pickle::{self, Pickle, Value};
use crate::agent::schedule::Schedule;
use crate::env::Space;

/// What a JSON value is, for a message: `the string "256"`, `a list`.
pub(super) fn describe(value: &Json) -> String {
    match value {
        Json::Null => "null".into(),
        Json::Bool(b) => format!("the boolean {b}"),
        Json::Number(n) => format!("the number {n}"),
        Json::String(s) => format!("the string {s:?}"),
        Json::Array(_) => "a list".into(),
        Json::Object(o) => match o.get(":type:").and_then(Json::as_str) {
            Some(t) => format!("a pickled {t}"),
            None => "an object".into(),
        },
    }
}

/// A value SB3 stores as plain JSON.
pub(super) trait FromJson: Sized + Debug {
    /// The type, in a message's words.
    const WHAT: &'static str;
    /// The value, if `json` has the type.
    fn from_json(json: &Json) -> Option<Self>;
}

impl FromJson for u64 {
    const WHAT: &'static str = "a non-negative integer";
    fn from_json(json: &Json) -> Option<Self> {
        json.as_u64()
    }
}

impl FromJson for usize {
    const WHAT: &'static str = "a non-negative integer";
    fn from_json(json: &Json) -> Option<Self> {
        json.as_u64().and_then(|v| usize::try_from(v).ok())
    }
}

impl FromJson for i64 {
    const WHAT: &'static str = "an integer";
    fn from_json(json: &Json) -> Option<Self> {
        json.as_i64()
    }
}

impl FromJson for f64 {
    const WHAT: &'static str = "a number";
    fn from_json(json: &Json) -> Option<Self> {
        json.as_f64()
    }
}

impl FromJson for bool {
    const WHAT: &'static str = "a boolean";
    fn from_json(json: &Json) -> Option<Self> {
        json.as_bool()
    }
}

/// Decodes a cloudpickled entry (`{":type:": ..., ":serialized:": base64}`); `None` when `value`
/// is not one.
pub(super) fn unpickle(value: &Json) -> Option<Result<Pickle, Problem>> {
    let text = value.get(":serialized:")?.as_str()?;
    Some(
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| Problem(e.to_string()))
            .and_then(|bytes| pickle::parse(&bytes).map_err(|e| Problem(e.to_string()))),
    )
}

/// The fields of `data`, and what the import did not carry.
pub(super) struct Fields<'a> {
    data: &'a Json,
    /// What the model holds that headstart does not carry, with why.
    pub(super) not_carried: Vec<String>,
}

impl<'a> Fields<'a> {
    pub(super) fn new(data: &'a Json) -> Self {
        Fields { data, not_carried: Vec::new() }
    }

    /// The field, unless absent or null.
    pub(super) fn get(&self, name: &str) -> Option<&'a Json> {
        self.data.get(name).filter(|v| !v.is_null())
    }

    fn wrong(name: &str, value: &Json, what: &str) -> Problem {
        Problem(format!("field `{name}` is {}, where SB3 stores {what}", describe(value)))
    }

    /// The field as a `T`: `None` when absent, an error when of another type.
    pub(super) fn typed<T: FromJson>(&self, name: &str) -> Result<Option<T>, Problem> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => T::from_json(v).map(Some).ok_or_else(|| Self::wrong(name, v, T::WHAT)),
        }
    }

    /// Sets `slot` from the field; an absent field keeps headstart's value and is listed.
    pub(super) fn set<T: FromJson>(&mut self, slot: &mut T, name: &str) -> Result<(), Problem> {
        match self.typed(name)? {
            Some(v) => *slot = v,
            None => self.not_carried.push(format!("{name} (absent from the model: headstart's {slot:?} kept)")),
        }
        Ok(())
    }

    /// A field SB3 may store as null (`target_kl`, `clip_range_vf`): `None` for null or absent.
    pub(super) fn optional<T: FromJson>(&self, name: &str) -> Result<Option<T>, Problem> {
        self.typed(name)
    }

    /// A cloudpickled field: `None` when absent; an error when it holds something else (a string
    /// where SB3 stores a pickled class or space) or does not decode.
    pub(super) fn pickled(&self, name: &str) -> Result<Option<Pickle>, Problem> {
        let Some(value) = self.get(name) else { return Ok(None) };
        match unpickle(value) {
            Some(p) => p.map(Some).map_err(|e| Problem(format!("field `{name}`: {e}"))),
            None => Err(Self::wrong(name, value, "a cloudpickled object")),
        }
    }

    /// A cloudpickled field that must be there.
    pub(super) fn required_pickle(&self, name: &str) -> Result<Pickle, Problem> {
        self.pickled(name)?.ok_or_else(|| Problem(format!("field `{name}` is missing")))
    }
}

/// A field's value in a form headstart has a counterpart for, or a description of the form it
/// has not (listed as not carried).
pub(super) enum Form<T> {
    /// A value headstart carries.
    Known(T),
    /// What the field holds, in words.
    Other(String),
}

/// A schedule field: a number, or SB3 2.x's pickled `FloatSchedule(ConstantSchedule(val))` or
/// `LinearSchedule` (to zero over the whole run); `Some(Err(what))` for a schedule headstart has
/// no counterpart for ([`Form::Other`]), an error for a field of another type.
pub(super) fn schedule(fields: &Fields<'_>, name: &str) -> Result<Option<Form<Schedule>>, Problem> {
    let Some(value) = fields.get(name) else { return Ok(None) };
    if let Some(v) = value.as_f64() {
        return Ok(Some(Form::Known(Schedule::Constant(v))));
    }
    let pickle = fields
        .pickled(name)
        .map_err(|_| {
            Problem(format!("field `{name}` is {}, where SB3 stores a number or a schedule", describe(value)))
        })?
        .expect("the field is there");
    let mut node = pickle.root();
    let class = |n: &Value<'_>| n.class().unwrap_or_default();
    if class(&node).ends_with("FloatSchedule") {
        node = node
            .attr("value_schedule")
            .ok_or_else(|| Problem(format!("field `{name}`: a FloatSchedule without its schedule")))?;
    }
    let number = |field: &str| node.attr(field).and_then(|v| v.float());
    Ok(Some(match class(&node).rsplit('.').next().unwrap_or_default() {
        "ConstantSchedule" => Form::Known(Schedule::Constant(
            number("val").ok_or_else(|| Problem(format!("field `{name}`: a ConstantSchedule without `val`")))?,
        )),
        "LinearSchedule" => match (number("start"), number("end"), number("end_fraction")) {
            (Some(start), Some(end), Some(fraction)) if end == 0.0 && fraction == 1.0 => {
                Form::Known(Schedule::Linear(start))
            }
            (Some(start), Some(end), Some(fraction)) => {
                Form::Other(format!("a LinearSchedule from {start} to {end} over {fraction} of the run"))
            }
            _ => Form::Other("a LinearSchedule without its `start`, `end` and `end_fraction`".into()),
        },
        "" => Form::Other("a pickled function (SB3 1.x schedules are closures)".into()),
        other => Form::Other(format!("a {other}")),
    }))
}

/// Sets `slot` from the schedule field `name`, or lists why it was not carried.
pub(super) fn carry_schedule(fields: &mut Fields<'_>, slot: &mut Schedule, name: &str) -> Result<(), Problem> {
    match schedule(fields, name)? {
        Some(Form::Known(s)) => *slot = s,
        Some(Form::Other(what)) => fields
            .not_carried
            .push(format!("{name} ({what}, which headstart has no counterpart for: headstart's {slot:?} kept)")),
        None => fields.not_carried.push(format!("{name} (absent from the model: headstart's {slot:?} kept)")),
    }
    Ok(())
}

/// Sets `slot` from `train_freq` (a number of steps, or `TrainFreq(frequency, TrainFrequencyUnit)`),
/// or lists why it was not carried (counted in episodes).
pub(super) fn carry_train_freq(fields: &mut Fields<'_>, slot: &mut u64) -> Result<(), Problem> {
    let Some(value) = fields.get("train_freq") else {
        fields.not_carried.push(format!("train_freq (absent from the model: headstart's {slot} kept)"));
        return Ok(());
    };
    if let Some(v) = value.as_u64() {
        *slot = v;
        return Ok(());
    }
    let wrong = || Problem(format!("field `train_freq` is {}, where SB3 stores a TrainFreq", describe(value)));
    let pickle = fields.pickled("train_freq").map_err(|_| wrong())?.expect("the field is there");
    let args = pickle.root().args().ok_or_else(wrong)?;
    let [frequency, unit] = args.as_slice() else { return Err(wrong()) };
    let frequency = frequency.int().and_then(|f| u64::try_from(f).ok()).ok_or_else(wrong)?;
    let unit = unit.args().and_then(|a| a.first().and_then(|u| u.str().map(str::to_string))).ok_or_else(wrong)?;
    match unit.as_str() {
        "step" => *slot = frequency,
        other => fields
            .not_carried
            .push(format!("train_freq ({frequency} {other}s: headstart counts training in steps, its {slot} kept)")),
    }
    Ok(())
}

/// A Gymnasium space from its pickle.
pub(super) fn space(value: Value<'_>) -> Result<Space, Problem> {
    let class = value.class().unwrap_or_default();
    match class.rsplit('.').next().unwrap_or_default() {
        "Discrete" => {
            let n = value.attr("n").and_then(|n| n.float()).ok_or("a Discrete space without `n`")?;
            let start = value.attr("start").and_then(|s| s.float()).unwrap_or(0.0);
            if start != 0.0 {
                return Err(format!("a Discrete space starting at {start} (headstart's start at 0)").into());
            }
            Ok(Space::Discrete { n: n as usize })
        }
        "Box" => {
            let (shape, low) = value.attr("low").and_then(|v| v.numpy_array()).ok_or("a Box without `low`")?;
            let (_, high) = value.attr("high").and_then(|v| v.numpy_array()).ok_or("a Box without `high`")?;
            if low.len() != high.len() {
                return Err("a Box whose `low` and `high` differ in size".into());
            }
            Ok(Space::Box {
                low: low.iter().map(|&v| v as f32).collect(),
                high: high.iter().map(|&v| v as f32).collect(),
                shape,
            })
        }
        "Dict" => {
            let pairs = value.attr("spaces").and_then(|v| v.pairs()).ok_or("a Dict space without `spaces`")?;
            let mut spaces = Vec::new();
            for (key, part) in pairs {
                let key = key.str().ok_or("a Dict space with a key that is not a string")?.to_string();
                if part.class().is_some_and(|c| c.ends_with(".Dict")) {
                    return Err(format!("part '{key}' of a Dict space is a Dict (nested Dicts are not read)").into());
                }
                let part = space(part).map_err(|e| format!("part '{key}' of a Dict space: {}", e.0))?;
                spaces.push((key, part));
            }
            let dict = Space::Dict { spaces };
            dict.validate().map_err(|e| e.to_string())?;
            Ok(dict)
        }
        other => Err(format!("a {other} space (Box, Discrete and a Dict of them are supported)").into()),
    }
}

/// The keys of a Dict space's parts that Stable-Baselines3 reads as images (its
/// `is_image_space`: three dimensions of bytes from 0 to 255), which its `MultiInputPolicy`
/// sends through a CNN of their own.
pub(super) fn image_parts(value: Value<'_>) -> Vec<String> {
    let Some(pairs) = value.attr("spaces").and_then(|v| v.pairs()) else { return Vec::new() };
    pairs
        .into_iter()
        .filter(|(_, part)| {
            let bounds = |name: &str, want: f64| {
                part.attr(name).and_then(|v| v.numpy_array()).is_some_and(|(_, v)| v.iter().all(|&x| x == want))
            };
            let three = part.attr("_shape").and_then(|s| s.items()).is_some_and(|s| s.len() == 3);
            let bytes = matches!(dtype(*part).as_deref(), Some("u1" | "uint8"));
            bytes && three && bounds("low", 0.0) && bounds("high", 255.0)
        })
        .filter_map(|(key, _)| key.str().map(str::to_string))
        .collect()
}

/// A space's numpy type code (`u1` for bytes, `f4`), when it records one.
pub(super) fn dtype(value: Value<'_>) -> Option<String> {
    Some(value.attr("dtype")?.args()?.first()?.str()?.to_string())
}

/// TD3's `action_noise`: none, or SB3's `NormalActionNoise` with a zero mean and one standard
/// deviation for every action (headstart's `action_noise: Some(σ)`); another noise is described.
pub(super) fn action_noise(f: &Fields<'_>) -> Result<Form<Option<f64>>, Problem> {
    let Some(pickle) = f.pickled("action_noise")? else { return Ok(Form::Known(None)) };
    let root = pickle.root();
    let class = root.class().unwrap_or_default();
    if !class.ends_with("NormalActionNoise") {
        return Ok(Form::Other(format!("a {class}: headstart's TD3 adds Gaussian noise only")));
    }
    let array = |name: &str| root.attr(name).and_then(|v| v.numpy_array()).map(|a| a.1);
    match (array("_mu"), array("_sigma")) {
        (Some(mu), Some(sigma)) if mu.iter().all(|&m| m == 0.0) && sigma.windows(2).all(|w| w[0] == w[1]) => {
            Ok(Form::Known(sigma.first().copied()))
        }
        (Some(mu), Some(sigma)) => {
            Ok(Form::Other(format!("a NormalActionNoise of mean {mu:?} and deviations {sigma:?}, not one zero-mean σ")))
        }
        _ => Ok(Form::Other("a NormalActionNoise without its `_mu` and `_sigma` arrays".into())),
    }
}
