//! `data`'s fields, read with their types. Every field the import reads is used with the type SB3
//! stores it with, or refused naming the field and what it holds, or listed as not carried with
//! why: nothing falls back to a default in silence.

use std::fmt::Debug;

use base64::Engine;
use serde_json::Value as Json;

use super::Problem;
use super::pickle::{self, Pickle};

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
