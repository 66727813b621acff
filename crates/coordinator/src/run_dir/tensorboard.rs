//! `tensorboard/events.out.tfevents.*`: the lines of `metrics.jsonl` as TensorBoard events.
//!
//! Each line with a step becomes one event holding a scalar per number (tag `TYPE/COLUMN`, see
//! [`super::columns`]) at the line's `optimizer_step` (training, pre-training, curve points),
//! or else its time step `step` (evaluations, selections). An `image` line becomes an image
//! summary of the PNG it names. The messages are tensorflow's `Event`, `Summary`,
//! `Summary.Value` and `Summary.Image` (tensorboard/compat/proto), declared with prost's derive
//! macros with their field numbers; each is framed as a TFRecord: the length (u64), its masked
//! CRC-32C, the data, the data's masked CRC-32C, little-endian.
//!
//! The directory holds one events file, written afresh when the log is opened (TensorBoard
//! reads every events file of a directory, so an old one would show a resumed run's redone
//! steps twice).

use super::columns::columns;
use prost::Message;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(oneof = "What", tags = "3, 5")]
    what: Option<What>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(oneof = "Kind", tags = "2, 4")]
    kind: Option<Kind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Kind {
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    #[prost(message, tag = "4")]
    Image(Image),
}

#[derive(Clone, PartialEq, prost::Message)]
struct Image {
    #[prost(int32, tag = "1")]
    height: i32,
    #[prost(int32, tag = "2")]
    width: i32,
    /// 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA.
    #[prost(int32, tag = "3")]
    colorspace: i32,
    #[prost(bytes = "vec", tag = "4")]
    encoded_image_string: Vec<u8>,
}

/// The open events file of a run.
pub(super) struct TensorBoard {
    file: std::io::BufWriter<std::fs::File>,
    /// The run directory, which `image` lines' paths are relative to.
    root: PathBuf,
}

impl TensorBoard {
    /// Removes the run's old events files, then (when `on`) starts a new one.
    pub fn open(root: &Path, on: bool) -> std::io::Result<Option<TensorBoard>> {
        let dir = root.join("tensorboard");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries {
                let entry = entry?;
                if entry.file_name().to_string_lossy().contains("tfevents") {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
        if !on {
            return Ok(None);
        }
        std::fs::create_dir_all(&dir)?;
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let file = std::fs::File::create(dir.join(format!("events.out.tfevents.{secs}.rekindle")))?;
        let mut log = TensorBoard { file: std::io::BufWriter::new(file), root: root.to_path_buf() };
        log.event(0, What::FileVersion("brain.Event:2".into()))?;
        Ok(Some(log))
    }

    /// Writes `line`'s event, if it has a step and something to show.
    pub fn write(&mut self, line: &Value) -> std::io::Result<()> {
        let Some(step) = line.get("optimizer_step").or_else(|| line.get("step")).and_then(Value::as_i64) else { return Ok(()) };
        let kind = line["type"].as_str().unwrap_or("line");
        let value = if kind == "image" {
            let tag = line["tag"].as_str().unwrap_or("image").to_string();
            let png = std::fs::read(self.root.join(line["path"].as_str().unwrap_or_default()))?;
            vec![SummaryValue { tag, kind: Some(Kind::Image(image(png)?)) }]
        } else {
            let numbers = columns(line).into_iter().filter(|(c, _)| !c.is_index());
            numbers.filter_map(|(c, v)| Some(SummaryValue { tag: format!("{kind}/{c}"), kind: Some(Kind::SimpleValue(v.as_f64()? as f32)) })).collect()
        };
        if value.is_empty() {
            return Ok(());
        }
        self.event(step, What::Summary(Summary { value }))
    }

    fn event(&mut self, step: i64, what: What) -> std::io::Result<()> {
        let wall_time = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let data = Event { wall_time, step, what: Some(what) }.encode_to_vec();
        let len = (data.len() as u64).to_le_bytes();
        for part in [&len[..], &masked_crc(&len)[..], &data[..], &masked_crc(&data)[..]] {
            self.file.write_all(part)?;
        }
        self.file.flush()
    }
}

/// TFRecord's checksum: CRC-32C, rotated right by 15 bits, plus a constant.
fn masked_crc(bytes: &[u8]) -> [u8; 4] {
    crc32c::crc32c(bytes).rotate_right(15).wrapping_add(0xa282_ead8).to_le_bytes()
}

/// An image summary of a PNG file's bytes, its size and colour type read from its header.
fn image(png: Vec<u8>) -> std::io::Result<Image> {
    if png.len() < 26 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a PNG file"));
    }
    let be32 = |at: usize| i32::from_be_bytes(png[at..at + 4].try_into().expect("4 bytes"));
    let colorspace = match png[25] {
        0 => 1,
        4 => 2,
        6 => 4,
        _ => 3,
    };
    Ok(Image { width: be32(16), height: be32(20), colorspace, encoded_image_string: png })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_masked_crc_is_tfrecords() {
        // CRC-32C("123456789") is 0xe3069283 (its check value); masked as TFRecord masks it.
        let crc: u32 = 0xe306_9283;
        let want = crc.rotate_right(15).wrapping_add(0xa282_ead8);
        assert_eq!(masked_crc(b"123456789"), want.to_le_bytes());
    }
}
