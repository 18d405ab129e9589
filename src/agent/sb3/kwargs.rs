//! `policy_kwargs` as the import reads it: each key with its type checked, the network's
//! declared shape (`net_arch`) checked against the tensors, and the keys headstart has no use
//! for listed.

use serde_json::Value as Json;

use super::Problem;
use super::fields::{Fields, describe};
use super::pickle::Value;

/// `policy_kwargs.net_arch` as hidden widths per network (`pi` and `vf` or `qf`; a plain list is
/// every network's), checked against the widths the tensors have; `None` when absent.
pub(super) fn check_net_arch(arch: Option<&NetArch>, found: &[(&str, &[usize])]) -> Result<(), Problem> {
    let Some(arch) = arch else { return Ok(()) };
    for (part, widths) in found {
        let declared = match arch {
            NetArch::Shared(w) => w,
            NetArch::Split(parts) => match parts.iter().find(|(k, _)| k == part) {
                Some((_, w)) => w,
                None => continue,
            },
        };
        if declared.as_slice() != *widths {
            return Err(Problem(format!(
                "policy_kwargs.net_arch gives `{part}` the hidden layers {declared:?}, but policy.pth's are {widths:?}"
            )));
        }
    }
    Ok(())
}

/// `net_arch` as SB3 stores it.
pub(super) enum NetArch {
    /// `[64, 64]`: every network.
    Shared(Vec<usize>),
    /// `dict(pi=[..], vf=[..])` (or `qf`).
    Split(Vec<(String, Vec<usize>)>),
}

/// The `policy_kwargs` the import reads (plain JSON, or a cloudpickled dict when it holds
/// classes), each with its type checked, and what it does not carry.
pub(super) struct PolicyKwargs {
    pub(super) net_arch: Option<NetArch>,
    pub(super) activation: Option<String>,
    pub(super) ortho_init: Option<bool>,
    pub(super) log_std_init: Option<f64>,
    /// `optimizer_class` (its class name) and `optimizer_kwargs`' numbers.
    pub(super) optimizer: Option<String>,
    pub(super) optimizer_kwargs: Vec<(String, f64)>,
    /// `features_extractor_class` (its class name) and `features_extractor_kwargs.features_dim`.
    pub(super) extractor: Option<String>,
    pub(super) features_dim: Option<usize>,
    pub(super) normalize_images: Option<bool>,
    pub(super) share_features_extractor: Option<bool>,
    pub(super) not_carried: Vec<String>,
}

impl PolicyKwargs {
    /// A number of `optimizer_kwargs`.
    pub(super) fn optimizer_number(&self, name: &str) -> Option<f64> {
        self.optimizer_kwargs.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    pub(super) fn read(f: &mut Fields<'_>) -> Result<PolicyKwargs, Problem> {
        let mut out = PolicyKwargs {
            net_arch: None,
            activation: None,
            ortho_init: None,
            log_std_init: None,
            optimizer: None,
            optimizer_kwargs: Vec::new(),
            extractor: None,
            features_dim: None,
            normalize_images: None,
            share_features_extractor: None,
            not_carried: Vec::new(),
        };
        let pickle = match f.get("policy_kwargs") {
            None => return Ok(out),
            Some(Json::Object(o)) if !o.contains_key(":serialized:") => {
                // Plain JSON: numbers, booleans and lists only (a class needs the pickle).
                for (key, value) in o {
                    out.take_json(key, value)?;
                }
                return Ok(out);
            }
            Some(_) => f.required_pickle("policy_kwargs")?,
        };
        let pairs = pickle.root().pairs().ok_or("field `policy_kwargs` is a pickled value that is not a dict")?;
        for (key, value) in pairs {
            let key = key.str().ok_or("field `policy_kwargs` has a key that is not a string")?.to_string();
            out.take_pickled(&key, value)?;
        }
        Ok(out)
    }

    fn wrong(key: &str, found: &str, what: &str) -> Problem {
        Problem(format!("policy_kwargs.{key} is {found}, where SB3 stores {what}"))
    }

    fn take_json(&mut self, key: &str, value: &Json) -> Result<(), Problem> {
        let found = describe(value);
        match key {
            "net_arch" => self.net_arch = Some(net_arch_json(value).ok_or_else(|| Self::wrong(key, &found, NET_ARCH))?),
            "ortho_init" => {
                self.ortho_init = Some(value.as_bool().ok_or_else(|| Self::wrong(key, &found, "a boolean"))?)
            }
            "log_std_init" => {
                self.log_std_init = Some(value.as_f64().ok_or_else(|| Self::wrong(key, &found, "a number"))?)
            }
            "activation_fn" | "features_extractor_class" | "optimizer_class" => {
                return Err(Self::wrong(key, &found, "a class"));
            }
            "normalize_images" => {
                self.normalize_images = Some(value.as_bool().ok_or_else(|| Self::wrong(key, &found, "a boolean"))?)
            }
            "share_features_extractor" => {
                self.share_features_extractor =
                    Some(value.as_bool().ok_or_else(|| Self::wrong(key, &found, "a boolean"))?)
            }
            "features_extractor_kwargs" => {
                let pairs = value.as_object().ok_or_else(|| Self::wrong(key, &found, "a dict"))?;
                for (name, v) in pairs {
                    self.extractor_kwarg(name, v.as_f64());
                }
            }
            "optimizer_kwargs" => {
                let pairs = value.as_object().ok_or_else(|| Self::wrong(key, &found, "a dict"))?;
                for (name, v) in pairs {
                    match v.as_f64() {
                        Some(x) => self.optimizer_kwargs.push((name.clone(), x)),
                        None => self.not_carried.push(format!("policy_kwargs.optimizer_kwargs.{name} (not a number)")),
                    }
                }
            }
            _ => self.flag_or_note(key, value.as_bool(), &found)?,
        }
        Ok(())
    }

    fn take_pickled(&mut self, key: &str, value: Value<'_>) -> Result<(), Problem> {
        let found = match (value.class(), value.float(), value.bool()) {
            (Some(c), _, _) => format!("the class {c}"),
            (_, _, Some(b)) => format!("the boolean {b}"),
            (_, Some(x), _) => format!("the number {x}"),
            _ => "a pickled value of another kind".to_string(),
        };
        match key {
            "net_arch" => {
                self.net_arch = Some(net_arch_pickled(value).ok_or_else(|| Self::wrong(key, &found, NET_ARCH))?)
            }
            "ortho_init" => self.ortho_init = Some(value.bool().ok_or_else(|| Self::wrong(key, &found, "a boolean"))?),
            "log_std_init" => {
                self.log_std_init = Some(value.float().ok_or_else(|| Self::wrong(key, &found, "a number"))?)
            }
            "activation_fn" => {
                let class = value
                    .class()
                    .filter(|_| value.args().is_none())
                    .ok_or_else(|| Self::wrong(key, &found, "a torch.nn activation class"))?;
                self.activation = Some(class);
            }
            "optimizer_class" => {
                self.optimizer = Some(value.class().ok_or_else(|| Self::wrong(key, &found, "a torch.optim class"))?);
            }
            "optimizer_kwargs" => {
                let pairs = value.pairs().ok_or_else(|| Self::wrong(key, &found, "a dict"))?;
                for (k, v) in pairs {
                    let name =
                        k.str().ok_or_else(|| Self::wrong(key, "a dict with a key that is not a string", "a dict"))?;
                    match v.float() {
                        Some(x) => self.optimizer_kwargs.push((name.to_string(), x)),
                        None => self.not_carried.push(format!("policy_kwargs.optimizer_kwargs.{name} (not a number)")),
                    }
                }
            }
            "features_extractor_class" => {
                self.extractor = Some(value.class().ok_or_else(|| Self::wrong(key, &found, "a class"))?);
            }
            "features_extractor_kwargs" => {
                let pairs = value.pairs().ok_or_else(|| Self::wrong(key, &found, "a dict"))?;
                for (k, v) in pairs {
                    let name =
                        k.str().ok_or_else(|| Self::wrong(key, "a dict with a key that is not a string", "a dict"))?;
                    self.extractor_kwarg(name, v.float());
                }
            }
            "normalize_images" => {
                self.normalize_images = Some(value.bool().ok_or_else(|| Self::wrong(key, &found, "a boolean"))?)
            }
            "share_features_extractor" => {
                self.share_features_extractor = Some(value.bool().ok_or_else(|| Self::wrong(key, &found, "a boolean"))?)
            }
            _ => self.flag_or_note(key, value.bool(), &found)?,
        }
        Ok(())
    }

    /// `features_extractor_kwargs.{name}`: the Nature CNN's `features_dim`, which the tensors
    /// give too (checked against them); anything else is listed as not carried.
    fn extractor_kwarg(&mut self, name: &str, value: Option<f64>) {
        match (name, value) {
            ("features_dim", Some(d)) if d >= 1.0 && d.fract() == 0.0 => self.features_dim = Some(d as usize),
            _ => self.not_carried.push(format!("policy_kwargs.features_extractor_kwargs.{name} (headstart has no counterpart)")),
        }
    }

    /// gSDE's flags must be headstart's; other keys are listed as not carried.
    fn flag_or_note(&mut self, key: &str, flag: Option<bool>, found: &str) -> Result<(), Problem> {
        let wanted = match key {
            "use_expln" | "squash_output" | "learn_features" => false,
            "full_std" => true,
            // `use_sde` is read from `data` itself, where SB3 stores it too.
            "use_sde" if flag.is_some() => return Ok(()),
            "n_critics" => {
                return match found.strip_prefix("the number ").map(str::parse::<f64>) {
                    Some(Ok(n)) if n == 2.0 => Ok(()),
                    _ => Err(Problem(format!("policy_kwargs.n_critics is {found}: headstart's SAC has two critics"))),
                };
            }
            _ => {
                self.not_carried.push(format!("policy_kwargs.{key} ({found}: headstart has no counterpart)"));
                return Ok(());
            }
        };
        match flag {
            Some(v) if v == wanted => Ok(()),
            Some(v) => Err(Problem(format!("policy_kwargs.{key} = {v}: headstart's gSDE has {key} = {wanted}"))),
            None => Err(Self::wrong(key, found, "a boolean")),
        }
    }
}

const NET_ARCH: &str = "a list of layer widths or a dict of them (`pi`, `vf`, `qf`)";

fn widths_json(value: &Json) -> Option<Vec<usize>> {
    value.as_array()?.iter().map(|w| w.as_u64().and_then(|w| usize::try_from(w).ok())).collect()
}

fn net_arch_json(value: &Json) -> Option<NetArch> {
    if let Some(w) = widths_json(value) {
        return Some(NetArch::Shared(w));
    }
    let parts = value.as_object()?;
    parts.iter().map(|(k, v)| Some((k.clone(), widths_json(v)?))).collect::<Option<Vec<_>>>().map(NetArch::Split)
}

fn widths_pickled(value: &Value<'_>) -> Option<Vec<usize>> {
    value.items()?.iter().map(|w| w.int().and_then(|w| usize::try_from(w).ok())).collect()
}

fn net_arch_pickled(value: Value<'_>) -> Option<NetArch> {
    if let Some(w) = widths_pickled(&value) {
        return Some(NetArch::Shared(w));
    }
    let pairs = value.pairs()?;
    pairs
        .iter()
        .map(|(k, v)| Some((k.str()?.to_string(), widths_pickled(v)?)))
        .collect::<Option<Vec<_>>>()
        .map(NetArch::Split)
}
