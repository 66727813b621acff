//! idx files (MNIST, Fashion-MNIST): a big-endian header of magic and dimensions, then raw u8
//! data. They usually ship gzipped, so gzip is detected by its magic bytes, whatever the name.

use super::{finish, ImportSummary, Split};
use crate::{DataError, Record, ShardSpec, ShardWriter};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// MNIST and Fashion-MNIST have ten classes, whose names rekindle knows.
const KNOWN_CLASSES: u32 = 10;

const FASHION_NAMES: [&str; 10] = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// Imports one split of an idx dataset. `input` is the directory holding
/// `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`, or the images file itself (then `split`
/// is not consulted and the labels file is the one named `labels-idx1` instead of `images-idx3`).
/// The class count is `classes` when given (a label at or above it is an error), else one more
/// than the largest label; classes are named only for MNIST and Fashion-MNIST's ten.
pub fn import_idx(input: &Path, split: Split, out: &Path, classes: Option<u32>) -> Result<ImportSummary, DataError> {
    let (images_path, labels_path) = locate(input, split)?;
    let images_bytes = read(&images_path)?;
    let labels_bytes = read(&labels_path)?;
    let ([count, height, width], pixels) = parse::<3>(&images_path, &images_bytes)?;
    let ([labelled], labels) = parse::<1>(&labels_path, &labels_bytes)?;
    if labelled != count {
        return Err(DataError::invalid(labels_path.display(), format!("{labelled} labels, but {} holds {count} images", images_path.display())));
    }
    if height == 0 || width == 0 {
        return Err(DataError::invalid(images_path.display(), format!("images of {height}x{width} pixels")));
    }
    let classes = classes.unwrap_or_else(|| labels.iter().max().map_or(1, |&m| u32::from(m) + 1));
    if let Some((i, &label)) = labels.iter().enumerate().find(|(_, &l)| u32::from(l) >= classes) {
        return Err(DataError::invalid(labels_path.display(), format!("label {label} of item {i} is not one of the {classes} classes")));
    }
    let spec = ShardSpec { height: height as u32, width: width as u32, channels: 1, classes };
    let mut writer = ShardWriter::create(out, spec)?;
    if classes == KNOWN_CLASSES {
        writer.set_class_names(class_names(&images_path));
    }
    for (pixels, &label) in pixels.chunks_exact(spec.image_len()).zip(labels) {
        writer.push(Record::new(pixels, label.into()))?;
    }
    finish(writer, spec)
}

/// The images and labels files for `input` and `split`.
fn locate(input: &Path, split: Split) -> Result<(PathBuf, PathBuf), DataError> {
    if std::fs::metadata(input).map_err(DataError::io(input.display()))?.is_dir() {
        let prefix = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let images = in_dir(input, &format!("{prefix}-images-idx3-ubyte"))?;
        let labels = in_dir(input, &format!("{prefix}-labels-idx1-ubyte"))?;
        return Ok((images, labels));
    }
    let name = input.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    if !name.contains("images-idx3") {
        return Err(DataError::invalid(input.display(), "cannot find the labels file: the name does not contain `images-idx3`"));
    }
    Ok((input.to_path_buf(), input.with_file_name(name.replace("images-idx3", "labels-idx1"))))
}

/// `dir/name`, or `dir/name.gz` when only the gzipped file is there.
fn in_dir(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    let plain = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    match (plain.is_file(), gz.is_file()) {
        (true, _) => Ok(plain),
        (false, true) => Ok(gz),
        (false, false) => Err(DataError::invalid(dir.display(), format!("holds neither {name} nor {name}.gz"))),
    }
}

/// The file's bytes, gunzipped when they start with the gzip magic.
fn read(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(DataError::io(path.display()))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut data = Vec::new();
    GzDecoder::new(&raw[..]).read_to_end(&mut data).map_err(|e| DataError::invalid(path.display(), format!("corrupt gzip data: {e}")))?;
    Ok(data)
}

/// Checks an idx header for unsigned bytes in `N` dimensions and that the data is exactly as
/// long as the dimensions say; returns the dimensions and the data.
fn parse<'a, const N: usize>(path: &Path, bytes: &'a [u8]) -> Result<([usize; N], &'a [u8]), DataError> {
    let bad = |problem: String| DataError::invalid(path.display(), problem);
    let header = 4 + 4 * N;
    if bytes.len() < header {
        return Err(bad(format!("truncated: {} bytes, an idx header with {N} dimensions needs {header}", bytes.len())));
    }
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    let (magic, expected) = (be(0), 0x0800 | N as u32);
    if magic != expected {
        return Err(bad(format!("idx magic {magic:#010x}, expected {expected:#010x} (unsigned bytes in {N} dimensions)")));
    }
    let dims: [usize; N] = std::array::from_fn(|i| be(4 + 4 * i) as usize);
    let data = &bytes[header..];
    let len: u128 = dims.iter().map(|&d| d as u128).product();
    if len != data.len() as u128 {
        return Err(bad(format!("the header's dimensions {dims:?} call for {len} bytes of data, the file holds {}", data.len())));
    }
    Ok((dims, data))
}

/// Fashion-MNIST ships in exactly MNIST's format; only the file or directory name tells them apart.
fn class_names(images: &Path) -> Vec<String> {
    let fashion = images.iter().rev().take(2).any(|part| part.to_string_lossy().to_lowercase().contains("fashion"));
    if fashion {
        FASHION_NAMES.iter().map(|n| n.to_string()).collect()
    } else {
        (0..KNOWN_CLASSES).map(|d| d.to_string()).collect()
    }
}
