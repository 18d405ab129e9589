//! TensorBoard event files in TensorBoard's own format, read by TensorBoard (and by
//! `wandb sync --sync-tensorboard`) as it reads PyTorch's and TensorFlow's.
//!
//! A file is a sequence of records: the data's length (`u64`, little-endian), the masked
//! CRC-32C of those 8 bytes, the data, the masked CRC-32C of the data. Each record holds one
//! `Event` protocol buffer: the first names the format (`file_version: "brain.Event:2"`), every
//! other carries a wall time, a step and a summary of scalars. The few fields are encoded here by
//! hand (`tensorflow/core/util/event.proto` and `summary.proto`):
//!
//! | message | field | number, wire type |
//! |---|---|---|
//! | `Event` | `wall_time` (double) | 1, 64-bit |
//! | | `step` (int64) | 2, varint |
//! | | `file_version` (string) | 3, length-delimited |
//! | | `summary` (`Summary`) | 5, length-delimited |
//! | `Summary` | `value` (repeated `Value`) | 1, length-delimited |
//! | `Summary.Value` | `tag` (string) | 1, length-delimited |
//! | | `simple_value` (float) | 2, 32-bit |

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::FileError;

/// An event file being written. Records are buffered and reach the disk on [`EventWriter::flush`]
/// (and when the writer is dropped); a record is whole or absent for a reader, which stops at a
/// torn last record.
pub struct EventWriter {
    file: BufWriter<File>,
    path: PathBuf,
}

impl EventWriter {
    /// A new event file in `dir` (created with its parents), named as TensorBoard's writers
    /// name theirs: `events.out.tfevents.<seconds>.<host>.<pid>.<n>`, so that processes writing
    /// into one folder never share a file.
    pub fn create(dir: &Path) -> Result<Self, FileError> {
        std::fs::create_dir_all(dir).map_err(|e| FileError::new(dir, e))?;
        let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let stem = format!("events.out.tfevents.{seconds}.{}.{}", super::host(), std::process::id());
        let (path, file) = (0..)
            .find_map(|n| {
                let path = dir.join(format!("{stem}.{n}"));
                match File::options().write(true).create_new(true).open(&path) {
                    Ok(file) => Some(Ok((path, file))),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                    Err(e) => Some(Err(FileError::new(&path, e))),
                }
            })
            .expect("an unused name")?;
        let mut writer = EventWriter { file: BufWriter::new(file), path };
        let mut version = Vec::new();
        field_bytes(&mut version, 3, b"brain.Event:2");
        writer.record(&event(wall_time(), 0, &version))?;
        writer.flush()?;
        Ok(writer)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Scalars `(tag, value)` at `step`, in one event.
    pub fn scalars(&mut self, step: u64, values: &[(&str, f64)]) -> Result<(), FileError> {
        let mut summary = Vec::new();
        for (tag, value) in values {
            let mut v = Vec::new();
            field_bytes(&mut v, 1, tag.as_bytes());
            v.push(0x15); // field 2, 32-bit
            v.extend_from_slice(&(*value as f32).to_le_bytes());
            field_bytes(&mut summary, 1, &v);
        }
        let mut body = Vec::new();
        field_bytes(&mut body, 5, &summary);
        self.record(&event(wall_time(), step, &body))
    }

    /// Writes what is buffered to the file.
    pub fn flush(&mut self) -> Result<(), FileError> {
        self.file.flush().map_err(|e| FileError::new(&self.path, e))
    }

    fn record(&mut self, data: &[u8]) -> Result<(), FileError> {
        let length = (data.len() as u64).to_le_bytes();
        let mut out = Vec::with_capacity(data.len() + 16);
        out.extend_from_slice(&length);
        out.extend_from_slice(&masked_crc(&length).to_le_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(&masked_crc(data).to_le_bytes());
        self.file.write_all(&out).map_err(|e| FileError::new(&self.path, e))
    }
}

fn wall_time() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// An `Event` with `wall_time`, `step` and the encoded fields `rest`.
fn event(wall_time: f64, step: u64, rest: &[u8]) -> Vec<u8> {
    let mut out = vec![0x09]; // field 1, 64-bit
    out.extend_from_slice(&wall_time.to_le_bytes());
    out.push(0x10); // field 2, varint
    varint(&mut out, step);
    out.extend_from_slice(rest);
    out
}

/// A length-delimited field.
fn field_bytes(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
    out.push(number << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// TensorFlow's masked CRC-32C: rotated right by 15 bits, plus a constant.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// The records of an event file, each checked against its CRCs; reading stops at a torn or
/// corrupt record (what a process killed while writing leaves), returning what came before.
pub fn read_records(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 12 {
        let (length, tail) = rest.split_at(8);
        let n = u64::from_le_bytes(length.try_into().expect("8 bytes")) as usize;
        let crc = u32::from_le_bytes(tail[..4].try_into().expect("4 bytes"));
        if crc != masked_crc(length) || tail.len() < 4 + n + 4 {
            break;
        }
        let data = &tail[4..4 + n];
        let data_crc = u32::from_le_bytes(tail[4 + n..8 + n].try_into().expect("4 bytes"));
        if data_crc != masked_crc(data) {
            break;
        }
        out.push(data);
        rest = &tail[8 + n..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32C's check value, and TensorFlow's mask of it.
    #[test]
    fn the_crc_is_tensorflows() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8));
    }

    #[test]
    fn records_round_trip_and_a_torn_end_is_dropped() {
        let dir = std::env::temp_dir().join(format!("headstart-tb-{}", std::process::id()));
        let mut w = EventWriter::create(&dir).unwrap();
        w.scalars(7, &[("eval/return", 1.5), ("loss/value", -2.0)]).unwrap();
        w.flush().unwrap();
        let bytes = std::fs::read(w.path()).unwrap();
        let records = read_records(&bytes);
        assert_eq!(records.len(), 2);
        assert!(records[0].windows(13).any(|w| w == b"brain.Event:2"));
        assert!(records[1].windows(11).any(|w| w == b"eval/return"));
        assert_eq!(read_records(&bytes[..bytes.len() - 1]).len(), 1, "a torn record is not read");
        // A second writer in the same folder gets a file of its own.
        let other = EventWriter::create(&dir).unwrap();
        assert_ne!(other.path(), w.path());
        std::fs::remove_dir_all(&dir).ok();
    }
}
