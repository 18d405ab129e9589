//! Reading values out of a parsed [`Pickle`]: strings, numbers, containers, objects' classes,
//! arguments and state, and NumPy arrays and scalars.

use super::{Node, Pickle};

/// A value of a [`Pickle`], with the accessors the SB3 readers need.
#[derive(Clone, Copy)]
pub struct Value<'a> {
    pickle: &'a Pickle,
    id: usize,
}

impl<'a> Value<'a> {
    pub(super) fn new(pickle: &'a Pickle, id: usize) -> Self {
        Value { pickle, id }
    }

    fn at(&self, id: usize) -> Value<'a> {
        Value { pickle: self.pickle, id }
    }

    /// The node.
    pub fn node(&self) -> &'a Node {
        self.pickle.node(self.id)
    }

    /// A string's text.
    pub fn str(&self) -> Option<&'a str> {
        match self.node() {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An integer (a bool counts as 0 or 1).
    pub fn int(&self) -> Option<i64> {
        match self.node() {
            Node::Int(v) => Some(*v),
            Node::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// A number as a float.
    pub fn float(&self) -> Option<f64> {
        match self.node() {
            Node::Float(v) => Some(*v),
            Node::Int(v) => Some(*v as f64),
            _ => self.numpy_scalar(),
        }
    }

    /// A bool.
    pub fn bool(&self) -> Option<bool> {
        match self.node() {
            Node::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Bytes.
    pub fn bytes(&self) -> Option<&'a [u8]> {
        match self.node() {
            Node::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The elements of a tuple or a list.
    pub fn items(&self) -> Option<Vec<Value<'a>>> {
        match self.node() {
            Node::Tuple(v) | Node::List(v) => Some(v.iter().map(|&i| self.at(i)).collect()),
            _ => None,
        }
    }

    /// The pairs of a dict, or of an object built like one (an `OrderedDict`).
    pub fn pairs(&self) -> Option<Vec<(Value<'a>, Value<'a>)>> {
        match self.node() {
            Node::Dict(v) | Node::Object { items: v, .. } => {
                Some(v.iter().map(|&(k, x)| (self.at(k), self.at(x))).collect())
            }
            _ => None,
        }
    }

    /// The value under a string key of a dict (or of an object's items).
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.pairs()?.into_iter().find(|(k, _)| k.str() == Some(key)).map(|(_, v)| v)
    }

    /// `module.name` of a global, or of the callable that made an object.
    pub fn class(&self) -> Option<String> {
        match self.node() {
            Node::Global(m, n) => Some(format!("{m}.{n}")),
            Node::Object { callable, args, .. } => {
                let callable = self.at(*callable);
                // `copyreg._reconstructor(cls, object, None)` and `cls.__new__` both name `cls`.
                match callable.class()?.as_str() {
                    "copyreg._reconstructor" => self.at(*args).items()?.first()?.class(),
                    name => Some(name.to_string()),
                }
            }
            _ => None,
        }
    }

    /// An object's call arguments.
    pub fn args(&self) -> Option<Vec<Value<'a>>> {
        match self.node() {
            Node::Object { args, .. } => self.at(*args).items(),
            _ => None,
        }
    }

    /// An object's state (from `BUILD`).
    pub fn state(&self) -> Option<Value<'a>> {
        match self.node() {
            Node::Object { state, .. } => state.map(|s| self.at(s)),
            _ => None,
        }
    }

    /// A persistent reference's id.
    pub fn persistent(&self) -> Option<Value<'a>> {
        match self.node() {
            Node::Persistent(id) => Some(self.at(*id)),
            _ => None,
        }
    }

    /// An attribute of an object whose state is a dict (`obj.__dict__`).
    pub fn attr(&self, name: &str) -> Option<Value<'a>> {
        self.state()?.get(name)
    }

    /// A numpy array of floats (`float32`, `float64`) or bools, as f64 values with its shape.
    pub fn numpy_array(&self) -> Option<(Vec<usize>, Vec<f64>)> {
        let class = self.class()?;
        let (shape, dtype, data, fortran) = if class.ends_with("multiarray._reconstruct") {
            // Protocol 2-4: BUILD state = (version, shape, dtype, is_fortran, raw bytes).
            let state = self.state()?.items()?;
            let [_, shape, dtype, fortran, data] = state.as_slice() else { return None };
            (*shape, *dtype, *data, fortran.bool()?)
        } else if class.ends_with("numeric._frombuffer") {
            // Protocol 5: `_frombuffer(buffer, dtype, shape, order)`.
            let args = self.args()?;
            let [data, dtype, shape, order] = args.as_slice() else { return None };
            (*shape, *dtype, *data, order.str()? == "F")
        } else if class == "numpy.full" || class == "numpy.reshape" {
            // What headstart's export writes for arrays of more than one dimension.
            // `numpy.full(shape, value, dtype)`, `numpy.reshape(array, shape)`.
            let args = self.args()?;
            let (shape, fill, array) = match args.as_slice() {
                [shape, fill, _dtype] if class == "numpy.full" => (*shape, Some(*fill), None),
                [array, shape] if class == "numpy.reshape" => (*shape, None, Some(*array)),
                _ => return None,
            };
            let shape: Vec<usize> =
                shape.items()?.iter().map(|d| d.int().and_then(|v| usize::try_from(v).ok())).collect::<Option<_>>()?;
            let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
            let values = match (fill, array) {
                (Some(fill), _) => vec![fill.float().or_else(|| fill.bool().map(f64::from))?; count],
                (_, Some(array)) => array.numpy_array()?.1,
                _ => return None,
            };
            return (values.len() == count).then_some((shape, values));
        } else if class == "numpy.array" {
            // What headstart's export writes: `numpy.array([...], dtype)`, one dimension.
            let values: Vec<f64> = self.args()?.first()?.items()?.iter().map(|v| v.float()).collect::<Option<_>>()?;
            return Some((vec![values.len()], values));
        } else {
            return None;
        };
        let shape: Vec<usize> =
            shape.items()?.iter().map(|d| d.int().and_then(|v| usize::try_from(v).ok())).collect::<Option<_>>()?;
        if fortran && shape.len() > 1 {
            return None;
        }
        let values = dtype.numpy_decode(data.bytes()?)?;
        let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
        (values.len() == count).then_some((shape, values))
    }

    /// A numpy scalar (`numpy.core.multiarray.scalar(dtype, bytes)`) as a float.
    fn numpy_scalar(&self) -> Option<f64> {
        if !self.class()?.ends_with("multiarray.scalar") {
            return None;
        }
        let args = self.args()?;
        let [dtype, data] = args.as_slice() else { return None };
        let values = dtype.numpy_decode(data.bytes()?)?;
        (values.len() == 1).then(|| values[0])
    }

    /// Decodes raw bytes with a `numpy.dtype` object (`f4`, `f8`, `b1`, `i8`, little-endian).
    fn numpy_decode(&self, raw: &[u8]) -> Option<Vec<f64>> {
        if self.class()? != "numpy.dtype" {
            return None;
        }
        let code = self.args()?.first()?.str()?;
        let order = self.state().and_then(|s| s.items()).and_then(|s| s.get(1).and_then(|o| o.str()));
        if order == Some(">") {
            return None;
        }
        let width = match code {
            "f4" => 4,
            "f8" | "i8" => 8,
            "b1" | "u1" => 1,
            "i4" => 4,
            _ => return None,
        };
        if !raw.len().is_multiple_of(width) {
            return None;
        }
        Some(
            raw.chunks(width)
                .map(|c| match code {
                    "f4" => f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64,
                    "f8" => f64::from_le_bytes(c.try_into().expect("8 bytes")),
                    "i8" => i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64,
                    "i4" => i32::from_le_bytes(c.try_into().expect("4 bytes")) as f64,
                    _ => c[0] as f64,
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Node, parse};

    #[test]
    fn reads_what_python_wrote() {
        // pickle.dumps({"a": [1, 2.5, "x"], "b": (True, None)}, protocol=4)
        let bytes = b"\x80\x04\x95\x1f\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94(K\x01G@\x04\x00\x00\x00\x00\x00\x00\x8c\x01x\x94e\x8c\x01b\x94\x88N\x86\x94u.";
        let pickle = parse(bytes).unwrap();
        let root = pickle.root();
        let a = root.get("a").unwrap().items().unwrap();
        assert_eq!(a[0].int(), Some(1));
        assert_eq!(a[1].float(), Some(2.5));
        assert_eq!(a[2].str(), Some("x"));
        let b = root.get("b").unwrap().items().unwrap();
        assert_eq!(b[0].bool(), Some(true));
        assert_eq!(b[1].node(), &Node::None);
    }

    #[test]
    fn refuses_unknown_globals_and_damage() {
        // pickle.dumps(os.system) at protocol 2: `cposix\nsystem\n`.
        let err = parse(b"\x80\x02cposix\nsystem\nq\x00.").unwrap_err();
        assert!(err.message.contains("posix.system"), "{err}");
        assert!(parse(b"\x80\x02X\xff\xff\xff\x7fab").unwrap_err().message.contains("truncated"));
        assert!(parse(b"\x80\x02h\x05.").unwrap_err().message.contains("never stored"));
        assert!(parse(b"\x80\x02u.").is_err());
        assert!(parse(b"").is_err());
        // A negative LONG1.
        assert_eq!(parse(b"\x80\x02\x8a\x01\xff.").unwrap().root().int(), Some(-1));
    }
}
