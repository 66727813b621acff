//! The CIFAR-10 and CIFAR-100 "binary version": fixed-length records of label byte(s) followed
//! by a 32x32 image stored as three 1024-byte colour planes (R, G, B); shards store HWC.

use super::{finish, ImportSummary, Split};
use crate::{DataError, Record, ShardSpec, ShardWriter};
use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::Path;

const SIDE: u32 = 32;
const PLANE: usize = (SIDE * SIDE) as usize;
const IMAGE: usize = 3 * PLANE;

/// How one of the two datasets lays out its files and records.
struct Format {
    train: &'static [&'static str],
    test: &'static [&'static str],
    classes: u32,
    /// CIFAR-100 records start with a superclass label before the class label.
    coarse_classes: Option<u32>,
    /// One class name a line, shipped beside the batches.
    names_file: &'static str,
    /// Names to use when the names file is missing (none for CIFAR-100).
    default_names: &'static [&'static str],
}

const CIFAR10: Format = Format {
    train: &["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"],
    test: &["test_batch.bin"],
    classes: 10,
    coarse_classes: None,
    names_file: "batches.meta.txt",
    default_names: &["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
};

const CIFAR100: Format = Format {
    train: &["train.bin"],
    test: &["test.bin"],
    classes: 100,
    coarse_classes: Some(20),
    names_file: "fine_label_names.txt",
    default_names: &[],
};

/// Imports a split of CIFAR-10 from the directory holding `data_batch_{1..5}.bin` and `test_batch.bin`.
pub fn import_cifar10(input: &Path, split: Split, out: &Path) -> Result<ImportSummary, DataError> {
    import(&CIFAR10, input, split, out)
}

/// Imports a split of CIFAR-100 from the directory holding `train.bin` and `test.bin`; the 20
/// superclasses become the shard's coarse labels.
pub fn import_cifar100(input: &Path, split: Split, out: &Path) -> Result<ImportSummary, DataError> {
    import(&CIFAR100, input, split, out)
}

fn import(format: &Format, input: &Path, split: Split, out: &Path) -> Result<ImportSummary, DataError> {
    let files = match split {
        Split::Train => format.train,
        Split::Test => format.test,
    };
    let label_bytes = if format.coarse_classes.is_some() { 2 } else { 1 };
    let record_len = label_bytes + IMAGE;
    // Open and size-check every file before writing, so a bad last batch fails fast.
    let mut batches = Vec::with_capacity(files.len());
    for name in files {
        let path = input.join(name);
        let file = File::open(&path).map_err(DataError::io(path.display()))?;
        let len = file.metadata().map_err(DataError::io(path.display()))?.len();
        if len % record_len as u64 != 0 {
            return Err(DataError::invalid(path.display(), format!("{len} bytes is not a whole number of {record_len}-byte records")));
        }
        batches.push((path, BufReader::new(file), len / record_len as u64));
    }
    let spec = ShardSpec { height: SIDE, width: SIDE, channels: 3, classes: format.classes };
    let mut writer = ShardWriter::create(out, spec)?;
    writer.set_class_names(class_names(format, input)?);
    if let Some(n) = format.coarse_classes {
        writer.set_coarse_classes(n);
    }
    let mut record = vec![0u8; record_len];
    let mut hwc = vec![0u8; IMAGE];
    for (path, mut file, count) in batches {
        for i in 0..count {
            file.read_exact(&mut record).map_err(DataError::io(path.display()))?;
            let (labels, chw) = record.split_at(label_bytes);
            let label = u32::from(labels[label_bytes - 1]);
            let coarse = format.coarse_classes.map(|_| u32::from(labels[0]));
            if label >= format.classes {
                return Err(DataError::invalid(path.display(), format!("record {i}: label {label} is not one of the {} classes", format.classes)));
            }
            if let (Some(c), Some(n)) = (coarse, format.coarse_classes) {
                if c >= n {
                    return Err(DataError::invalid(path.display(), format!("record {i}: coarse label {c} is not one of the {n} superclasses")));
                }
            }
            for (p, pixel) in hwc.chunks_exact_mut(3).enumerate() {
                for (c, v) in pixel.iter_mut().enumerate() {
                    *v = chw[c * PLANE + p];
                }
            }
            writer.push(Record { pixels: &hwc, label, timestamp: None, coarse_label: coarse })?;
        }
    }
    finish(writer, spec)
}

/// Names from the dataset's names file, else the format's built-in list.
fn class_names(format: &Format, dir: &Path) -> Result<Vec<String>, DataError> {
    let path = dir.join(format.names_file);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(format.default_names.iter().map(|n| n.to_string()).collect()),
        Err(e) => return Err(DataError::io(path.display())(e)),
    };
    let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if names.len() != format.classes as usize {
        return Err(DataError::invalid(path.display(), format!("{} names, expected one for each of the {} classes", names.len(), format.classes)));
    }
    Ok(names)
}
