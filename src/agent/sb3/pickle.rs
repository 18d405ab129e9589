//! A reader of the subset of Python's pickle protocol (versions 2 to 5) that Stable-Baselines3's
//! files use: `torch.save`'s `data.pkl` (an `OrderedDict` of tensors that point at storages by
//! persistent id) and `vec_normalize.pkl` (a `VecNormalize` holding numpy arrays).
//!
//! Nothing is executed. A call (`REDUCE`, `NEWOBJ`) becomes an [`Node::Object`] that records the
//! callable and its arguments; `BUILD` attaches the state to it; `SETITEM(S)` and `APPEND(S)` on it
//! collect items, as an `OrderedDict` or a `deque` would. Globals must be on an allowlist (the
//! modules those files name), so a pickle that reaches for `os.system` is refused by name even
//! though it could not run it. Values live in an arena and the memo holds indices, so a value
//! changed after it was memoised is seen changed through the memo (as in Python) and a pickle
//! that references one value many times costs one copy of it. Lengths are checked against the
//! bytes that remain before anything is allocated, and the arena, the stack and nesting are
//! bounded: a damaged or hostile file is an error, never a panic or a huge allocation.

use std::collections::HashMap;

pub mod op;
mod value;
pub use value::Value;

/// Why a pickle could not be read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("pickle byte {offset}: {message}")]
pub struct PickleError {
    /// Where in the pickle.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// The most values one pickle may create (SB3's largest files hold a few thousand).
const MAX_NODES: usize = 1 << 20;

/// A value of the arena: containers hold the indices of their elements.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A wider integer (a random generator's state, say): its little-endian two's complement.
    Long(Vec<u8>),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// `bytes` or `bytearray`.
    Bytes(Vec<u8>),
    /// A tuple.
    Tuple(Vec<usize>),
    /// A list (or a set).
    List(Vec<usize>),
    /// A dict, its pairs in order.
    Dict(Vec<(usize, usize)>),
    /// A global (`module.name`), allowlisted.
    Global(String, String),
    /// What a persistent id refers to (torch's storages): the id.
    Persistent(usize),
    /// A call that was not made: the callable, its arguments, the state `BUILD` gave it, and the
    /// items and elements set on it afterwards.
    Object {
        /// The callable (a [`Node::Global`], usually).
        callable: usize,
        /// Its positional arguments (a tuple).
        args: usize,
        /// The state from `BUILD`.
        state: Option<usize>,
        /// `SETITEM(S)` pairs (an `OrderedDict`'s contents).
        items: Vec<(usize, usize)>,
        /// `APPEND(S)` elements.
        elements: Vec<usize>,
    },
}

/// A parsed pickle: the arena and the value `STOP` returned.
#[derive(Debug)]
pub struct Pickle {
    nodes: Vec<Node>,
    root: usize,
}

impl Pickle {
    /// The value the pickle returned.
    pub fn root(&self) -> Value<'_> {
        Value::new(self, self.root)
    }

    fn node(&self, id: usize) -> &Node {
        &self.nodes[id]
    }
}

/// The modules whose globals SB3's files name; anything else is refused.
fn allowed(module: &str, name: &str) -> bool {
    let exact = matches!(
        (module, name),
        ("collections", "OrderedDict" | "deque")
            | ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_parameter")
            | ("_codecs", "encode")
            | ("copyreg", "_reconstructor")
            | ("builtins", "object" | "set" | "frozenset" | "slice" | "complex")
    );
    let storage = module == "torch" && name.ends_with("Storage");
    let families = ["numpy", "gymnasium.spaces", "gym.spaces", "stable_baselines3", "torch.nn.modules", "torch.optim"];
    let family = families.iter().any(|f| module == *f || module.starts_with(&format!("{f}.")));
    exact || storage || family
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    stack: Vec<usize>,
    marks: Vec<usize>,
    memo: HashMap<u64, usize>,
}

impl<'a> Reader<'a> {
    fn error(&self, message: impl Into<String>) -> PickleError {
        PickleError { offset: self.pos, message: message.into() }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        if n > self.bytes.len() - self.pos {
            return Err(self.error(format!("needs {n} bytes, {} remain (truncated?)", self.bytes.len() - self.pos)));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le(&mut self, n: usize) -> Result<u64, PickleError> {
        Ok(self.take(n)?.iter().rev().fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }

    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = &self.bytes[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or_else(|| self.error("a line without its end"))?;
        let text = std::str::from_utf8(&rest[..end]).map_err(|_| self.error("a line that is not UTF-8"))?;
        self.pos += end + 1;
        Ok(text)
    }

    fn push(&mut self, node: Node) -> Result<(), PickleError> {
        let id = self.add(node)?;
        self.stack.push(id);
        Ok(())
    }

    fn add(&mut self, node: Node) -> Result<usize, PickleError> {
        if self.nodes.len() >= MAX_NODES {
            return Err(self.error(format!("more than {MAX_NODES} values")));
        }
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    fn pop(&mut self) -> Result<usize, PickleError> {
        self.stack.pop().ok_or_else(|| self.error("the stack is empty"))
    }

    fn top(&self) -> Result<usize, PickleError> {
        self.stack.last().copied().ok_or_else(|| self.error("the stack is empty"))
    }

    /// The values above the last mark, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<usize>, PickleError> {
        let mark = self.marks.pop().ok_or_else(|| self.error("no mark to pop to"))?;
        if mark > self.stack.len() {
            return Err(self.error("a mark above the stack"));
        }
        Ok(self.stack.split_off(mark))
    }

    fn text(&mut self, n: usize) -> Result<(), PickleError> {
        let raw = self.take(n)?;
        let s = std::str::from_utf8(raw).map_err(|_| self.error("a string that is not UTF-8"))?.to_string();
        self.push(Node::Str(s))
    }

    fn bytes_node(&mut self, n: usize) -> Result<(), PickleError> {
        let raw = self.take(n)?.to_vec();
        self.push(Node::Bytes(raw))
    }

    fn length(&mut self, width: usize) -> Result<usize, PickleError> {
        let n = self.le(width)?;
        usize::try_from(n).map_err(|_| self.error(format!("a length of {n}")))
    }

    fn global(&mut self, module: String, name: String) -> Result<(), PickleError> {
        if !allowed(&module, &name) {
            return Err(self.error(format!(
                "refers to `{module}.{name}`, which is not something a Stable-Baselines3 file holds (refused)"
            )));
        }
        self.push(Node::Global(module, name))
    }

    fn set_items(&mut self, target: usize, pairs: Vec<usize>) -> Result<(), PickleError> {
        if !pairs.len().is_multiple_of(2) {
            return Err(self.error("a key without a value"));
        }
        let pairs: Vec<(usize, usize)> = pairs.chunks(2).map(|p| (p[0], p[1])).collect();
        match &mut self.nodes[target] {
            Node::Dict(items) | Node::Object { items, .. } => items.extend(pairs),
            _ => return Err(self.error("items set on something that is not a dict")),
        }
        Ok(())
    }

    fn append(&mut self, target: usize, values: Vec<usize>) -> Result<(), PickleError> {
        match &mut self.nodes[target] {
            Node::List(items) | Node::Object { elements: items, .. } => items.extend(values),
            _ => return Err(self.error("elements appended to something that is not a list")),
        }
        Ok(())
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let top = self.top()?;
        if self.memo.len() >= MAX_NODES && !self.memo.contains_key(&key) {
            return Err(self.error("too many memo entries"));
        }
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        let id = *self.memo.get(&key).ok_or_else(|| self.error(format!("memo entry {key} was never stored")))?;
        self.stack.push(id);
        Ok(())
    }

    fn object(&mut self, callable: usize, args: usize) -> Result<(), PickleError> {
        if !matches!(self.nodes[args], Node::Tuple(_)) {
            return Err(self.error("call arguments that are not a tuple"));
        }
        self.push(Node::Object { callable, args, state: None, items: Vec::new(), elements: Vec::new() })
    }

    fn run(mut self) -> Result<Pickle, PickleError> {
        loop {
            if self.stack.len() > MAX_NODES {
                return Err(self.error("the stack is too deep"));
            }
            let op = self.u8()?;
            match op {
                op::PROTO => {
                    let version = self.u8()?;
                    if !(2..=5).contains(&version) {
                        return Err(self.error(format!("pickle protocol {version} (2 to 5 are read)")));
                    }
                }
                op::FRAME => {
                    self.le(8)?;
                }
                op::STOP => {
                    let root = self.pop()?;
                    return Ok(Pickle { nodes: self.nodes, root });
                }
                op::MARK => self.marks.push(self.stack.len()),
                op::POP => {
                    self.pop()?;
                }
                op::POP_MARK => {
                    self.pop_mark()?;
                }
                op::DUP => {
                    let top = self.top()?;
                    self.stack.push(top);
                }
                op::NONE => self.push(Node::None)?,
                op::NEWTRUE => self.push(Node::Bool(true))?,
                op::NEWFALSE => self.push(Node::Bool(false))?,
                op::BININT => {
                    let v = self.le(4)? as u32 as i32;
                    self.push(Node::Int(v as i64))?
                }
                op::BININT1 => {
                    let v = self.u8()?;
                    self.push(Node::Int(v as i64))?
                }
                op::BININT2 => {
                    let v = self.le(2)?;
                    self.push(Node::Int(v as i64))?
                }
                op::LONG1 | op::LONG4 => {
                    let n = if op == op::LONG1 { self.u8()? as usize } else { self.length(4)? };
                    let raw = self.take(n)?;
                    if n > 8 {
                        self.push(Node::Long(raw.to_vec()))?;
                        continue;
                    }
                    let mut v: i64 = 0;
                    for (i, &b) in raw.iter().enumerate() {
                        v |= (b as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && raw[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.push(Node::Int(v))?
                }
                op::INT => {
                    let line = self.line()?;
                    let node = match line {
                        "01" => Node::Bool(true),
                        "00" => Node::Bool(false),
                        s => Node::Int(s.parse().map_err(|_| self.error(format!("an integer {s:?}")))?),
                    };
                    self.push(node)?
                }
                op::BINFLOAT => {
                    let raw = self.take(8)?;
                    self.push(Node::Float(f64::from_be_bytes(raw.try_into().expect("8 bytes"))))?
                }
                op::BINUNICODE => {
                    let n = self.length(4)?;
                    self.text(n)?
                }
                op::SHORT_BINUNICODE => {
                    let n = self.u8()? as usize;
                    self.text(n)?
                }
                op::BINUNICODE8 => {
                    let n = self.length(8)?;
                    self.text(n)?
                }
                op::BINBYTES | op::BINSTRING => {
                    let n = self.length(4)?;
                    self.bytes_node(n)?
                }
                op::SHORT_BINBYTES | op::SHORT_BINSTRING => {
                    let n = self.u8()? as usize;
                    self.bytes_node(n)?
                }
                op::BINBYTES8 | op::BYTEARRAY8 => {
                    let n = self.length(8)?;
                    self.bytes_node(n)?
                }
                op::EMPTY_TUPLE => self.push(Node::Tuple(Vec::new()))?,
                op::TUPLE => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items))?
                }
                op::TUPLE1..=op::TUPLE3 => {
                    let n = (op - op::TUPLE1 + 1) as usize;
                    if self.stack.len() < n {
                        return Err(self.error("a tuple of more values than the stack holds"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Node::Tuple(items))?
                }
                op::EMPTY_LIST => self.push(Node::List(Vec::new()))?,
                op::LIST => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items))?
                }
                op::APPEND => {
                    let value = self.pop()?;
                    let target = self.top()?;
                    self.append(target, vec![value])?
                }
                op::APPENDS => {
                    let values = self.pop_mark()?;
                    let target = self.top()?;
                    self.append(target, values)?
                }
                op::EMPTY_DICT => self.push(Node::Dict(Vec::new()))?,
                op::DICT => {
                    let items = self.pop_mark()?;
                    let id = self.add(Node::Dict(Vec::new()))?;
                    self.set_items(id, items)?;
                    self.stack.push(id)
                }
                op::SETITEM => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let target = self.top()?;
                    self.set_items(target, vec![key, value])?
                }
                op::SETITEMS => {
                    let pairs = self.pop_mark()?;
                    let target = self.top()?;
                    self.set_items(target, pairs)?
                }
                op::EMPTY_SET => self.push(Node::List(Vec::new()))?,
                op::ADDITEMS => {
                    let values = self.pop_mark()?;
                    let target = self.top()?;
                    self.append(target, values)?
                }
                op::FROZENSET => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items))?
                }
                op::GLOBAL => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    self.global(module, name)?
                }
                op::STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&self.nodes[module], &self.nodes[name]) {
                        (Node::Str(m), Node::Str(n)) => {
                            let (m, n) = (m.clone(), n.clone());
                            self.global(m, n)?
                        }
                        _ => return Err(self.error("STACK_GLOBAL of values that are not strings")),
                    }
                }
                op::REDUCE => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.object(callable, args)?
                }
                op::NEWOBJ => {
                    let args = self.pop()?;
                    let class = self.pop()?;
                    self.object(class, args)?
                }
                op::NEWOBJ_EX => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let class = self.pop()?;
                    self.object(class, args)?
                }
                op::BUILD => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    match &mut self.nodes[target] {
                        Node::Object { state: slot, .. } => *slot = Some(state),
                        _ => return Err(self.error("BUILD on something that is not an object")),
                    }
                }
                op::BINPERSID => {
                    let id = self.pop()?;
                    self.push(Node::Persistent(id))?
                }
                op::BINPUT => {
                    let key = self.u8()? as u64;
                    self.memo_put(key)?
                }
                op::LONG_BINPUT => {
                    let key = self.le(4)?;
                    self.memo_put(key)?
                }
                op::MEMOIZE => {
                    let key = self.memo.len() as u64;
                    self.memo_put(key)?
                }
                op::PUT => {
                    let line = self.line()?;
                    let key = line.parse().map_err(|_| self.error(format!("a memo key {line:?}")))?;
                    self.memo_put(key)?
                }
                op::BINGET => {
                    let key = self.u8()? as u64;
                    self.memo_get(key)?
                }
                op::LONG_BINGET => {
                    let key = self.le(4)?;
                    self.memo_get(key)?
                }
                op::GET => {
                    let line = self.line()?;
                    let key = line.parse().map_err(|_| self.error(format!("a memo key {line:?}")))?;
                    self.memo_get(key)?
                }
                other => {
                    self.pos -= 1;
                    return Err(self.error(format!("opcode 0x{other:02x} is not one this reader handles")));
                }
            }
        }
    }
}

/// Reads a pickle.
pub fn parse(bytes: &[u8]) -> Result<Pickle, PickleError> {
    let reader =
        Reader { bytes, pos: 0, nodes: Vec::new(), stack: Vec::new(), marks: Vec::new(), memo: HashMap::new() };
    reader.run()
}
