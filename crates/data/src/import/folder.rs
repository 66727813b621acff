//! ImageNet-style folders, `root/<class name>/<image>.{jpg,jpeg,png}`: decoded in parallel,
//! resized so the shorter side is `size` and centre-cropped to `size`x`size` RGB, the usual
//! evaluation transform, so every shard image has one geometry.

use super::{finish, ImportSummary};
use crate::{DataError, Record, ShardSpec, ShardWriter};
use image::imageops::FilterType;
use image::ImageReader;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Images decoded at once: enough to keep every core busy, few enough to bound memory.
const CHUNK: usize = 256;

const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// One image to import.
struct Source {
    path: PathBuf,
    /// `class/file`, the image's key in the timestamps file.
    relative: String,
    label: u32,
    timestamp: Option<i64>,
}

/// Imports every image under `input`; classes are its subdirectories in name order (label =
/// index) and images keep file-name order within a class, so the output is deterministic.
/// `timestamps` is a CSV of `class/file,timestamp` lines that must cover every image.
/// `progress(done, total)` is called as images are written.
pub fn import_folder(input: &Path, size: u32, timestamps: Option<&Path>, out: &Path, progress: &dyn Fn(usize, usize)) -> Result<ImportSummary, DataError> {
    if size == 0 {
        return Err(DataError::Config { key: "size".into(), reason: "images must be at least 1 pixel square".into() });
    }
    let classes = listing(input, Path::is_dir)?;
    let mut sources = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let dir = input.join(class);
        for file in listing(&dir, |p| p.is_file() && is_image(p))? {
            sources.push(Source { path: dir.join(&file), relative: format!("{class}/{file}"), label: label as u32, timestamp: None });
        }
    }
    if sources.is_empty() {
        return Err(DataError::invalid(input.display(), format!("no {} files in any class directory", EXTENSIONS.join("/"))));
    }
    if let Some(csv) = timestamps {
        attach_timestamps(csv, &mut sources)?;
    }
    let spec = ShardSpec { height: size, width: size, channels: 3, classes: classes.len() as u32 };
    let mut writer = ShardWriter::create(out, spec)?;
    writer.set_class_names(classes);
    let mut done = 0;
    for chunk in sources.chunks(CHUNK) {
        let decoded: Vec<Result<Vec<u8>, DataError>> = chunk.par_iter().map(|s| load(&s.path, size)).collect();
        for (source, pixels) in chunk.iter().zip(decoded) {
            writer.push(Record { pixels: &pixels?, label: source.label, timestamp: source.timestamp, coarse_label: None })?;
        }
        done += chunk.len();
        progress(done, sources.len());
    }
    finish(writer, spec)
}

/// The sorted names of `dir`'s entries that `keep` accepts (symlinks followed).
fn listing(dir: &Path, keep: fn(&Path) -> bool) -> Result<Vec<String>, DataError> {
    let io = DataError::io(dir.display());
    let entries = std::fs::read_dir(dir).and_then(|entries| entries.collect::<Result<Vec<_>, _>>()).map_err(io)?;
    let mut names = Vec::new();
    for entry in entries.into_iter().filter(|e| keep(&e.path())) {
        // Class names are stored as text in the shard, one a line.
        match entry.file_name().into_string() {
            Ok(name) if !name.contains('\n') => names.push(name),
            _ => return Err(DataError::invalid(entry.path().display(), "names must be UTF-8 without line breaks")),
        }
    }
    names.sort();
    Ok(names)
}

fn is_image(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Decodes one image (the format is guessed from its content before its extension) and
/// returns `size`x`size` RGB pixels, HWC.
fn load(path: &Path, size: u32) -> Result<Vec<u8>, DataError> {
    let reader = ImageReader::open(path).and_then(ImageReader::with_guessed_format).map_err(DataError::io(path.display()))?;
    let image = reader.decode().map_err(|e| DataError::invalid(path.display(), format!("not a decodable image: {e}")))?;
    Ok(image.resize_to_fill(size, size, FilterType::Triangle).into_rgb8().into_raw())
}

/// Reads `class/file,timestamp` lines (the first may be a header) and gives each source its
/// timestamp; paths are split at the last comma and not unquoted.
fn attach_timestamps(csv: &Path, sources: &mut [Source]) -> Result<(), DataError> {
    let text = std::fs::read_to_string(csv).map_err(DataError::io(csv.display()))?;
    let mut times = HashMap::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |problem: String| DataError::invalid(csv.display(), format!("line {}: {problem}", n + 1));
        let Some((path, time)) = line.rsplit_once(',') else {
            return Err(bad("expected `class/file,timestamp`".into()));
        };
        let time = match time.trim().parse::<i64>() {
            Ok(time) => time,
            Err(_) if n == 0 => continue,
            Err(e) => return Err(bad(format!("timestamp `{}`: {e}", time.trim()))),
        };
        if times.insert(path.trim(), time).is_some() {
            return Err(bad(format!("a second timestamp for {}", path.trim())));
        }
    }
    for source in sources {
        let time = times.get(source.relative.as_str()).ok_or_else(|| DataError::invalid(csv.display(), format!("no timestamp for {}", source.relative)))?;
        source.timestamp = Some(*time);
    }
    Ok(())
}
