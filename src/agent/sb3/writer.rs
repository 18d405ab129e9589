//! The pickles an SB3 export holds, written by hand with classes named, not executed:
//! `gymnasium.spaces.box.Box` and `Discrete` rebuilt from their state, arrays as
//! `numpy.array(list, dtype)`, classes as globals, schedules and action noise as SB3's own
//! objects, optimiser state dicts, and `VecNormalize` with its `RunningMeanStd`s.

use std::path::Path;

use base64::Engine;
use serde_json::{Value as Json, json};
use tch::Tensor;

use super::Sb3Error;
use super::pickle::op;
use super::torch_file::{PickleWriter, torch_zip};
use crate::agent::checkpoint;
use crate::agent::nn::{Activation, MlpConfig};
use crate::agent::schedule::Schedule;
use crate::env::Space;

impl PickleWriter {
    pub(super) fn list_of<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Self, &T)) {
        self.op(op::EMPTY_LIST);
        self.op(op::MARK);
        for item in items {
            each(self, item);
        }
        self.op(op::APPENDS);
    }

    /// `numpy.array([...], dtype)`.
    pub(super) fn array(&mut self, values: &[f64], dtype: &str) {
        self.global("numpy", "array");
        self.list_of(values, |p, &v| p.float(v));
        self.string(dtype);
        self.op(op::TUPLE2);
        self.op(op::REDUCE);
    }

    /// An array of `shape`: `numpy.full(shape, value, dtype)` when every value is one, else
    /// `numpy.reshape(numpy.array([...], dtype), shape)`.
    pub(super) fn shaped_array(&mut self, values: &[f64], shape: &[usize], dtype: &str) {
        if let Some(&first) = values.first()
            && values.iter().all(|&v| v == first)
        {
            self.global("numpy", "full");
            self.int_tuple(shape);
            self.float(first);
            self.string(dtype);
            self.op(op::TUPLE3);
        } else {
            self.global("numpy", "reshape");
            self.array(values, dtype);
            self.int_tuple(shape);
            self.op(op::TUPLE2);
        }
        self.op(op::REDUCE);
    }

    /// An image space (`Box` of shape `(channels, height, width)`, as SB3's `CnnPolicy` reads
    /// it), of bytes (`uint8`) or of `float32`.
    pub(super) fn image_space(&mut self, space: &Space, bytes: bool) {
        let Space::Box { low, high, shape } = space else { return self.space(space) };
        let dtype = if bytes { "uint8" } else { "float32" };
        let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let finite = |v: &[f32]| v.iter().map(|x| f64::from(u8::from(x.is_finite()))).collect::<Vec<_>>();
        self.object("gymnasium.spaces.box", "Box", |p| {
            p.string("dtype");
            p.dtype(dtype);
            p.string("_shape");
            p.int_tuple(shape);
            for (name, values) in [("low", wide(low)), ("high", wide(high))] {
                p.string(name);
                p.shaped_array(&values, shape, dtype);
            }
            for (name, values) in [("bounded_below", finite(low)), ("bounded_above", finite(high))] {
                p.string(name);
                p.shaped_array(&values, shape, "bool");
            }
            p.string("_np_random");
            p.op(op::NONE);
        });
    }

    /// `numpy.dtype(name)`.
    pub(super) fn dtype(&mut self, name: &str) {
        self.global("numpy", "dtype");
        self.string(name);
        self.op(op::TUPLE1);
        self.op(op::REDUCE);
    }

    /// `cls.__new__(cls)` with its `__dict__` (or `__setstate__`) from `fields`.
    pub(super) fn object(&mut self, module: &str, class: &str, fields: impl FnOnce(&mut Self)) {
        self.global(module, class);
        self.op(op::EMPTY_TUPLE);
        self.op(op::NEWOBJ);
        self.op(op::EMPTY_DICT);
        self.op(op::MARK);
        fields(self);
        self.op(op::SETITEMS);
        self.op(op::BUILD);
    }

    pub(super) fn space(&mut self, space: &Space) {
        match space {
            Space::Discrete { n } => self.object("gymnasium.spaces.discrete", "Discrete", |p| {
                p.string("dtype");
                p.dtype("int64");
                p.string("_shape");
                p.op(op::EMPTY_TUPLE);
                p.string("n");
                p.int(*n as i64);
                p.string("start");
                p.int(0);
                p.string("_np_random");
                p.op(op::NONE);
            }),
            Space::Dict { spaces } => self.object("gymnasium.spaces.dict", "Dict", |p| {
                p.string("spaces");
                p.op(op::EMPTY_DICT);
                p.op(op::MARK);
                for (key, part) in spaces {
                    p.string(key);
                    p.space(part);
                }
                p.op(op::SETITEMS);
                p.string("sort_keys");
                p.op(op::NEWTRUE);
                for name in ["_shape", "dtype", "_np_random"] {
                    p.string(name);
                    p.op(op::NONE);
                }
            }),
            Space::Box { low, high, shape } => self.object("gymnasium.spaces.box", "Box", |p| {
                let finite = |v: &[f32], sign: f32| -> Vec<f64> {
                    v.iter().map(|&x| if x.is_infinite() && x.signum() == sign { 0.0 } else { 1.0 }).collect()
                };
                p.string("dtype");
                p.dtype("float32");
                p.string("_shape");
                p.int_tuple(shape);
                p.string("low");
                p.array(&low.iter().map(|&v| v as f64).collect::<Vec<_>>(), "float32");
                p.string("high");
                p.array(&high.iter().map(|&v| v as f64).collect::<Vec<_>>(), "float32");
                p.string("bounded_below");
                p.array(&finite(low, -1.0), "bool");
                p.string("bounded_above");
                p.array(&finite(high, 1.0), "bool");
                p.string("_np_random");
                p.op(op::NONE);
            }),
        }
    }
}

/// A cloudpickled entry of `data`: `{":type:": ..., ":serialized:": base64}`.
pub(super) fn serialized(type_name: &str, write: impl FnOnce(&mut PickleWriter)) -> Json {
    let mut p = PickleWriter::default();
    p.proto();
    write(&mut p);
    p.op(op::STOP);
    json!({":type:": type_name, ":serialized:": base64::engine::general_purpose::STANDARD.encode(&p.out)})
}

/// Which `torch.optim` class an optimiser state dict is for.
#[derive(Clone, Copy)]
pub(super) enum Rule {
    Adam,
    RmsProp,
}

/// An optimiser state dict with no per-parameter state and one group of `count` parameters, with
/// the group's settings of `rule` (Adam's betas; RMSprop's α 0.99, no momentum, not centred).
pub(super) fn optimizer_of(rule: Rule, count: usize, lr: f64, eps: f64) -> Vec<u8> {
    let mut p = PickleWriter::default();
    p.proto();
    p.op(op::EMPTY_DICT);
    p.op(op::MARK);
    p.string("state");
    p.op(op::EMPTY_DICT);
    p.string("param_groups");
    p.op(op::EMPTY_LIST);
    p.op(op::EMPTY_DICT);
    p.op(op::MARK);
    p.string("lr");
    p.float(lr);
    match rule {
        Rule::Adam => {
            p.string("betas");
            p.float(0.9);
            p.float(0.999);
            p.op(op::TUPLE2);
            p.string("amsgrad");
            p.op(op::NEWFALSE);
        }
        Rule::RmsProp => {
            p.string("alpha");
            p.float(0.99);
            p.string("momentum");
            p.int(0);
            p.string("centered");
            p.op(op::NEWFALSE);
        }
    }
    p.string("eps");
    p.float(eps);
    p.string("weight_decay");
    p.int(0);
    p.string("params");
    p.list_of(&(0..count).collect::<Vec<_>>(), |p, &i| p.int(i as i64));
    p.op(op::SETITEMS);
    p.op(op::APPEND);
    p.op(op::SETITEMS);
    p.op(op::STOP);
    // torch.save's zip around a pickle without tensors.
    torch_zip("archive", &p.out, &[])
}

pub(super) fn activation_class(p: &mut PickleWriter, activation: Activation) {
    let name = match activation {
        Activation::Tanh => "Tanh",
        Activation::Relu => "ReLU",
    };
    p.global("torch.nn.modules.activation", name);
}

/// `policy_kwargs` of an MLP policy with one shape for every network: `net_arch` (a list of
/// widths) and `activation_fn`, then what `more` writes (key, value pairs).
pub(super) fn mlp_kwargs(net: &MlpConfig, more: impl FnOnce(&mut PickleWriter)) -> Json {
    serialized("<class 'dict'>", |p| {
        p.op(op::EMPTY_DICT);
        p.op(op::MARK);
        p.string("net_arch");
        p.list_of(&net.hidden, |p, &h| p.int(h as i64));
        p.string("activation_fn");
        activation_class(p, net.activation);
        more(p);
        p.op(op::SETITEMS);
    })
}

/// A schedule as `data` holds it: a constant as a number, headstart's linear schedule (to zero
/// over the run) as SB3's own `LinearSchedule(start, 0, 1)`, pickled, which SB3 2.x calls with
/// the progress remaining as headstart calls its schedule with the progress made.
pub(super) fn schedule(schedule: &Schedule) -> Json {
    match *schedule {
        Schedule::Constant(v) => json!(v),
        Schedule::Linear(start) => serialized("<class 'stable_baselines3.common.utils.LinearSchedule'>", |p| {
            p.object("stable_baselines3.common.utils", "LinearSchedule", |p| {
                for (field, value) in [("start", start), ("end", 0.0), ("end_fraction", 1.0)] {
                    p.string(field);
                    p.float(value);
                }
            })
        }),
    }
}

/// `vec_normalize.pkl`: a `VecNormalize` (without its environment) holding the statistics.
pub(super) fn vec_normalize(
    tensors: &std::collections::HashMap<String, Tensor>,
    card: &checkpoint::Card,
    gamma: f64,
    dir: &Path,
) -> Result<Vec<u8>, Sb3Error> {
    let read = |name: &str| -> Result<Vec<f64>, Sb3Error> {
        let t = tensors.get(name).ok_or_else(|| Sb3Error::new(dir, None, format!("the checkpoint has no `{name}`")))?;
        Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1))
            .map_err(|e| Sb3Error::new(dir, Some(name), e.to_string()))
    };
    let dim = card.observation_space.flat_dim();
    let stats = |prefix: &str, n: usize| -> Result<(Vec<f64>, Vec<f64>, f64), Sb3Error> {
        match tensors.contains_key(&format!("{prefix}.mean")) {
            true => Ok((
                read(&format!("{prefix}.mean"))?,
                read(&format!("{prefix}.var"))?,
                read(&format!("{prefix}.count"))?[0],
            )),
            false => Ok((vec![0.0; n], vec![1.0; n], 1e-4)),
        }
    };
    let obs = stats("obs_rms", dim)?;
    let ret = stats("ret_rms", 1)?;
    let norm_obs = tensors.contains_key("obs_rms.mean");
    let norm_reward = tensors.contains_key("ret_rms.mean");
    let mut p = PickleWriter::default();
    p.proto();
    let rms = |p: &mut PickleWriter, (mean, var, count): &(Vec<f64>, Vec<f64>, f64)| {
        p.object("stable_baselines3.common.running_mean_std", "RunningMeanStd", |p| {
            p.string("mean");
            p.array(mean, "float64");
            p.string("var");
            p.array(var, "float64");
            p.string("count");
            p.float(*count);
        });
    };
    p.object("stable_baselines3.common.vec_env.vec_normalize", "VecNormalize", |p| {
        p.string("num_envs");
        p.int(1);
        p.string("observation_space");
        p.space(&card.observation_space);
        p.string("action_space");
        p.space(&card.action_space);
        p.string("obs_rms");
        rms(p, &obs);
        p.string("ret_rms");
        rms(p, &ret);
        for (k, v) in [("clip_obs", 10.0), ("clip_reward", 10.0), ("gamma", gamma), ("epsilon", 1e-8)] {
            p.string(k);
            p.float(v);
        }
        for (k, v) in [("training", false), ("norm_obs", norm_obs), ("norm_reward", norm_reward)] {
            p.string(k);
            p.op(if v { op::NEWTRUE } else { op::NEWFALSE });
        }
        p.string("norm_obs_keys");
        p.op(op::NONE);
        p.string("returns");
        p.array(&[0.0], "float64");
    });
    p.op(op::STOP);
    Ok(p.out)
}
