//! `torch.save` files (the zip format of PyTorch 1.6 and later): reading a state dict of
//! float tensors, and writing one that `torch.load` reads.
//!
//! The zip holds `<prefix>/data.pkl`, a pickle whose tensors are
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)` with the
//! storage a persistent id `('storage', torch.FloatStorage, key, location, numel)`, and the
//! storages' raw little-endian bytes under `<prefix>/data/<key>`.

use std::io::{Cursor, Read, Write};

use super::Problem;
use super::pickle::{self, Value, op};

/// A tensor of a state dict, its values as f32 in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct StateTensor {
    /// The state dict's key.
    pub name: String,
    /// The shape.
    pub shape: Vec<usize>,
    /// The values.
    pub values: Vec<f32>,
}

/// Why a torch file could not be read: the entry (a zip entry or a tensor) and the problem.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{entry}: {message}")]
pub struct TorchFileError {
    /// The zip entry or tensor at fault.
    pub entry: String,
    /// What is wrong.
    pub message: String,
}

fn error(entry: impl Into<String>, message: impl Into<String>) -> TorchFileError {
    TorchFileError { entry: entry.into(), message: message.into() }
}

/// The most bytes one zip entry may hold (a network of 10^8 float64 weights).
pub const MAX_ENTRY: u64 = 800_000_000;

/// Reads a zip entry whole, refusing one over [`MAX_ENTRY`] bytes.
pub fn read_entry<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    name: &str,
) -> Result<Option<Vec<u8>>, TorchFileError> {
    let mut file = match archive.by_name(name) {
        Ok(file) => file,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(error(name, e.to_string())),
    };
    if file.size() > MAX_ENTRY {
        return Err(error(name, format!("{} bytes (more than {MAX_ENTRY})", file.size())));
    }
    let mut out = Vec::with_capacity(file.size() as usize);
    file.by_ref().take(MAX_ENTRY + 1).read_to_end(&mut out).map_err(|e| error(name, e.to_string()))?;
    Ok(Some(out))
}

/// What is wrong with the end of a zip archive: a whole archive ends with its end-of-central-
/// directory record (22 bytes and its comment). A file cut short does not, though a zip reader
/// may still find a record inside it (the one of a nested archive, such as `policy.pth`) and read
/// the wrong directory. `None` when the record is at the end.
pub fn zip_end_problem(bytes: &[u8]) -> Option<String> {
    const RECORD: usize = 22;
    let n = bytes.len();
    if n < RECORD {
        return Some(format!("{n} bytes, fewer than a zip's end record alone (the file is cut short)"));
    }
    let earliest = n.saturating_sub(RECORD + u16::MAX as usize);
    let ends_here = (earliest..=n - RECORD).rev().any(|p| {
        bytes[p..p + 4] == [0x50, 0x4b, 0x05, 0x06]
            && p + RECORD + u16::from_le_bytes([bytes[p + 20], bytes[p + 21]]) as usize == n
    });
    (!ends_here).then(|| format!("its {n} bytes do not end with a zip's end record (the file is cut short or damaged)"))
}

/// Reads the state dict (an `OrderedDict` or dict of tensors) that `torch.save` wrote into
/// `bytes`, in the dict's order.
pub fn read_state_dict(bytes: &[u8]) -> Result<Vec<StateTensor>, TorchFileError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| error("(zip)", format!("not a torch.save zip (truncated or damaged?): {e}")))?;
    let pkl_name = archive
        .file_names()
        .filter(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .min()
        .map(str::to_string)
        .ok_or_else(|| error("data.pkl", "missing: not a torch.save file"))?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    if let Some(order) = read_entry(&mut archive, &format!("{prefix}byteorder"))?
        && order != b"little"
    {
        return Err(error(format!("{prefix}byteorder"), "big-endian storages are not read"));
    }
    let pkl = read_entry(&mut archive, &pkl_name)?.expect("listed above");
    let pickle = pickle::parse(&pkl).map_err(|e| error(&pkl_name, e.to_string()))?;
    let root = pickle.root();
    let pairs = root.pairs().ok_or_else(|| error(&pkl_name, "does not hold a dict of tensors"))?;
    let mut out = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        let name = key.str().ok_or_else(|| error(&pkl_name, "a key that is not a string"))?.to_string();
        let (shape, values) = tensor(&mut archive, &prefix, value).map_err(|p| error(&name, p.0))?;
        out.push(StateTensor { name, shape, values });
    }
    Ok(out)
}

/// One tensor: checks the storage reference, its bounds and the strides, and gathers the values.
fn tensor<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    prefix: &str,
    value: Value<'_>,
) -> Result<(Vec<usize>, Vec<f32>), Problem> {
    let class = value.class().unwrap_or_default();
    let value = match class.as_str() {
        // nn.Parameter(tensor, requires_grad, hooks)
        "torch._utils._rebuild_parameter" => value.args().and_then(|a| a.first().copied()).ok_or("a bad parameter")?,
        _ => value,
    };
    if value.class().as_deref() != Some("torch._utils._rebuild_tensor_v2") {
        return Err(format!("is `{}`, not a tensor", value.class().unwrap_or_else(|| "a plain value".into())).into());
    }
    let args = value.args().ok_or("a tensor without arguments")?;
    let [storage, offset, size, stride, ..] = args.as_slice() else {
        return Err("a tensor with too few arguments".into());
    };
    let id = storage.persistent().and_then(|p| p.items()).ok_or("a tensor whose storage is not a reference")?;
    let [kind, class, key, _location, numel] = id.as_slice() else {
        return Err("a storage reference of another form".into());
    };
    if kind.str() != Some("storage") {
        return Err("a storage reference of another form".into());
    }
    let width = match class.class().as_deref() {
        Some("torch.FloatStorage") => 4,
        Some("torch.DoubleStorage") => 8,
        Some(other) => return Err(format!("a {other} (float32 and float64 tensors are read)").into()),
        None => return Err("a storage without a type".into()),
    };
    let key = key.str().ok_or("a storage key that is not a string")?;
    let numel = numel.int().and_then(|n| usize::try_from(n).ok()).ok_or("a storage size that is not a count")?;
    let index = |v: &Value<'_>| v.int().and_then(|n| usize::try_from(n).ok());
    let offset = index(offset).ok_or("a bad storage offset")?;
    let shape: Vec<usize> =
        size.items().ok_or("a bad size")?.iter().map(index).collect::<Option<_>>().ok_or("a bad size")?;
    let stride: Vec<usize> =
        stride.items().ok_or("a bad stride")?.iter().map(index).collect::<Option<_>>().ok_or("a bad stride")?;
    if shape.len() != stride.len() {
        return Err(format!("size {shape:?} and stride {stride:?} disagree").into());
    }
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("a size that overflows")?;
    if count > 0 {
        let last = shape.iter().zip(&stride).try_fold(offset, |a, (&d, &s)| a.checked_add((d - 1).checked_mul(s)?));
        if last.is_none_or(|l| l >= numel) {
            return Err(format!(
                "size {shape:?}, stride {stride:?} and offset {offset} reach past its storage of {numel}"
            )
            .into());
        }
    }
    let entry = format!("{prefix}data/{key}");
    let raw = read_entry(archive, &entry)
        .map_err(|e| Problem(e.to_string()))?
        .ok_or(format!("its storage `{entry}` is missing"))?;
    if raw.len() != numel.checked_mul(width).ok_or("a storage size that overflows")? {
        return Err(format!("its storage `{entry}` holds {} bytes, not {numel} values of {width}", raw.len()).into());
    }
    let read = |i: usize| -> f32 {
        let b = &raw[i * width..(i + 1) * width];
        match width {
            4 => f32::from_le_bytes(b.try_into().expect("4 bytes")),
            _ => f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32,
        }
    };
    let mut values = Vec::with_capacity(count);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..count {
        values.push(read(offset + idx.iter().zip(&stride).map(|(i, s)| i * s).sum::<usize>()));
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok((shape, values))
}

/// Writes `tensors` as `torch.save` would write an `OrderedDict` of float32 tensors (the zip
/// layout of PyTorch 1.6 and later, with `prefix` as its folder), for `torch.load`.
pub fn write_state_dict(tensors: &[StateTensor], prefix: &str) -> Vec<u8> {
    let mut p = PickleWriter::default();
    p.proto();
    p.global("collections", "OrderedDict");
    p.op(op::EMPTY_TUPLE);
    p.op(op::REDUCE);
    p.op(op::MARK);
    for (i, t) in tensors.iter().enumerate() {
        p.string(&t.name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.op(op::MARK);
        p.op(op::MARK);
        p.string("storage");
        p.global("torch", "FloatStorage");
        p.string(&i.to_string());
        p.string("cpu");
        p.int(t.values.len() as i64);
        p.op(op::TUPLE);
        p.op(op::BINPERSID);
        p.int(0);
        p.int_tuple(&t.shape);
        let mut stride = vec![1usize; t.shape.len()];
        for d in (0..t.shape.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * t.shape[d + 1];
        }
        p.int_tuple(&stride);
        p.op(op::NEWFALSE);
        p.global("collections", "OrderedDict");
        p.op(op::EMPTY_TUPLE);
        p.op(op::REDUCE);
        p.op(op::TUPLE);
        p.op(op::REDUCE);
    }
    p.op(op::SETITEMS);
    p.op(op::STOP);
    let storages: Vec<Vec<u8>> =
        tensors.iter().map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    torch_zip(prefix, &p.out, &storages)
}

/// The zip `torch.save` writes around a pickle (`<prefix>/data.pkl`) and its storages
/// (`<prefix>/data/<i>`), entries stored uncompressed.
pub fn torch_zip(prefix: &str, pickle: &[u8], storages: &[Vec<u8>]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default());
    let mut add = |name: String, bytes: &[u8]| {
        zip.start_file(name, stored).expect("an in-memory zip");
        zip.write_all(bytes).expect("an in-memory zip");
    };
    add(format!("{prefix}/data.pkl"), pickle);
    add(format!("{prefix}/byteorder"), b"little");
    for (i, raw) in storages.iter().enumerate() {
        add(format!("{prefix}/data/{i}"), raw);
    }
    add(format!("{prefix}/version"), b"3\n");
    zip.finish().expect("an in-memory zip").into_inner()
}

/// Emits pickle opcodes (protocol 2, what `torch.save` writes).
#[derive(Default)]
pub struct PickleWriter {
    /// The pickle so far.
    pub out: Vec<u8>,
}

impl PickleWriter {
    /// `PROTO 2`.
    pub fn proto(&mut self) {
        self.out.extend_from_slice(&[op::PROTO, 2]);
    }

    /// One opcode without argument.
    pub fn op(&mut self, op: u8) {
        self.out.push(op);
    }

    /// `GLOBAL module name`.
    pub fn global(&mut self, module: &str, name: &str) {
        self.out.push(op::GLOBAL);
        self.out.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }

    /// A string (`BINUNICODE`).
    pub fn string(&mut self, s: &str) {
        self.out.push(op::BINUNICODE);
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }

    /// An integer (`BININT` when it fits, else `LONG1`).
    pub fn int(&mut self, v: i64) {
        match i32::try_from(v) {
            Ok(small) => {
                self.out.push(op::BININT);
                self.out.extend_from_slice(&small.to_le_bytes());
            }
            Err(_) => {
                self.out.extend_from_slice(&[op::LONG1, 8]);
                self.out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    /// A float (`BINFLOAT`).
    pub fn float(&mut self, v: f64) {
        self.out.push(op::BINFLOAT);
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    /// Bytes (`BINBYTES`, protocol 3's opcode, which Python 3 reads at any protocol).
    pub fn bytes(&mut self, b: &[u8]) {
        self.out.push(op::BINBYTES);
        self.out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        self.out.extend_from_slice(b);
    }

    /// A tuple of integers.
    pub fn int_tuple(&mut self, values: &[usize]) {
        self.op(op::MARK);
        for &v in values {
            self.int(v as i64);
        }
        self.op(op::TUPLE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back() {
        let tensors = vec![
            StateTensor { name: "a.weight".into(), shape: vec![2, 3], values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0] },
            StateTensor { name: "a.bias".into(), shape: vec![2], values: vec![-0.5, 0.25] },
            StateTensor { name: "log_std".into(), shape: vec![], values: vec![7.0] },
        ];
        let bytes = write_state_dict(&tensors, "archive");
        assert_eq!(read_state_dict(&bytes).unwrap(), tensors);
        assert!(read_state_dict(&bytes[..bytes.len() / 2]).is_err());
    }
}
