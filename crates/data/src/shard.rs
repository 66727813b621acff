//! The shard: one binary file holding a labelled image dataset, read through memmap2 with no copy.
//! See `docs/FORMAT.md` for the byte layout.

use crate::DataError;
use memmap2::Mmap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const MAGIC: [u8; 8] = *b"RKSHARD\0";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 128;

const HAS_TIMESTAMPS: u32 = 1;
const HAS_NAMES: u32 = 2;
const HAS_COARSE: u32 = 4;

/// Image geometry and label space of a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardSpec {
    pub height: u32,
    pub width: u32,
    pub channels: u32,
    pub classes: u32,
}

impl ShardSpec {
    pub fn image_len(&self) -> usize {
        (self.height * self.width * self.channels) as usize
    }
}

/// Where each section starts; derived from the header fields alone, so a reader can check that
/// the stored offsets and the file length agree with them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    pixels: u64,
    labels: u64,
    timestamps: u64,
    coarse: u64,
    names: u64,
    names_len: u64,
    file_len: u64,
}

fn align8(x: u64) -> u64 {
    x.div_ceil(8) * 8
}

impl Layout {
    fn new(spec: ShardSpec, count: u64, flags: u32, names_len: u64) -> Layout {
        let pixels = HEADER_LEN as u64;
        let labels = align8(pixels + count * spec.image_len() as u64);
        let mut end = labels + 4 * count;
        let mut section = |present: bool, bytes: u64| {
            if !present {
                return 0;
            }
            let start = align8(end);
            end = start + bytes;
            start
        };
        let timestamps = section(flags & HAS_TIMESTAMPS != 0, 8 * count);
        let coarse = section(flags & HAS_COARSE != 0, 4 * count);
        let names = section(flags & HAS_NAMES != 0, names_len);
        Layout { pixels, labels, timestamps, coarse, names, names_len: if names == 0 { 0 } else { names_len }, file_len: end }
    }
}

struct Header {
    flags: u32,
    count: u64,
    spec: ShardSpec,
    coarse_classes: u32,
    layout: Layout,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        let u32s = [
            (8, VERSION),
            (12, self.flags),
            (24, self.spec.height),
            (28, self.spec.width),
            (32, self.spec.channels),
            (36, self.spec.classes),
            (40, self.coarse_classes),
        ];
        for (at, v) in u32s {
            h[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        let l = &self.layout;
        let u64s = [(16, self.count), (48, l.pixels), (56, l.labels), (64, l.timestamps), (72, l.coarse), (80, l.names), (88, l.names_len), (96, l.file_len)];
        for (at, v) in u64s {
            h[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        h
    }

    /// Parses and checks a header against the file's actual length.
    fn decode(path: &str, bytes: &[u8]) -> Result<Header, DataError> {
        let bad = |problem: String| DataError::invalid(path, problem);
        if bytes.len() < HEADER_LEN {
            return Err(bad(format!("truncated: {} bytes, a shard header alone needs {HEADER_LEN}", bytes.len())));
        }
        if bytes[0..8] != MAGIC {
            return Err(bad(format!("not a rekindle shard (magic {:?}, expected \"RKSHARD\\0\")", String::from_utf8_lossy(&bytes[0..8]))));
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let version = u32_at(8);
        if version != VERSION {
            return Err(bad(format!("shard format version {version}; this build reads version {VERSION}")));
        }
        let spec = ShardSpec { height: u32_at(24), width: u32_at(28), channels: u32_at(32), classes: u32_at(36) };
        if spec.height == 0 || spec.width == 0 || !matches!(spec.channels, 1 | 3) || spec.classes == 0 {
            return Err(bad(format!("impossible geometry {}x{}x{} with {} classes", spec.height, spec.width, spec.channels, spec.classes)));
        }
        let (flags, count) = (u32_at(12), u64_at(16));
        let stored = Layout {
            pixels: u64_at(48),
            labels: u64_at(56),
            timestamps: u64_at(64),
            coarse: u64_at(72),
            names: u64_at(80),
            names_len: u64_at(88),
            file_len: u64_at(96),
        };
        let expected = Layout::new(spec, count, flags, stored.names_len);
        if stored != expected {
            return Err(bad(format!("corrupt header: section offsets {stored:?} do not match {count} images of {spec:?}")));
        }
        if bytes.len() as u64 != expected.file_len {
            return Err(bad(format!("truncated or padded: file has {} bytes, its header says {}", bytes.len(), expected.file_len)));
        }
        Ok(Header { flags, count, spec, coarse_classes: u32_at(40), layout: expected })
    }
}

/// A read-only shard. Pixels are `u8`, HWC, one image after another.
pub struct Shard {
    path: String,
    bytes: Bytes,
    header: Header,
    class_names: Vec<String>,
}

/// The shard's bytes: a file mapping (page-aligned), or memory held as u64 words so that the
/// label and timestamp sections are aligned for zero-copy casts there too.
enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u64>, usize),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(words, len) => &bytemuck::cast_slice(words)[..*len],
        }
    }
}

impl Shard {
    /// Maps and validates a shard file: header, section sizes, label range and class names.
    pub fn open(path: &Path) -> Result<Shard, DataError> {
        let p = path.display().to_string();
        let file = File::open(path).map_err(DataError::io(&p))?;
        // SAFETY: the map is read-only; rekindle never writes a shard in place (writers rename a
        // finished temp file over it), so the mapped bytes do not change underneath us.
        let map = unsafe { Mmap::map(&file) }.map_err(DataError::io(&p))?;
        Shard::from_bytes_inner(p, Bytes::Mapped(map))
    }

    /// A shard held in memory (the synthetic generator builds one without touching disk).
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Shard, DataError> {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Shard::from_bytes_inner(name.to_string(), Bytes::Owned(words, bytes.len()))
    }

    fn from_bytes_inner(path: String, bytes: Bytes) -> Result<Shard, DataError> {
        let header = Header::decode(&path, &bytes)?;
        let mut shard = Shard { path, bytes, header, class_names: Vec::new() };
        let classes = shard.header.spec.classes;
        if let Some((i, &label)) = shard.labels().iter().enumerate().find(|(_, &l)| l >= classes) {
            return Err(DataError::invalid(&shard.path, format!("label {label} of image {i} is out of range: the shard has {classes} classes")));
        }
        if let Some(coarse) = shard.coarse_labels() {
            let n = shard.header.coarse_classes;
            if let Some((i, &label)) = coarse.iter().enumerate().find(|(_, &l)| l >= n) {
                return Err(DataError::invalid(&shard.path, format!("coarse label {label} of image {i} is out of range ({n} coarse classes)")));
            }
        }
        if shard.header.flags & HAS_NAMES != 0 {
            let l = shard.header.layout;
            let raw = &shard.bytes[l.names as usize..(l.names + l.names_len) as usize];
            let text = std::str::from_utf8(raw).map_err(|_| DataError::invalid(&shard.path, "class names are not UTF-8"))?;
            shard.class_names = text.split('\n').map(str::to_string).collect();
            if shard.class_names.len() != classes as usize {
                return Err(DataError::invalid(&shard.path, format!("{} class names for {classes} classes", shard.class_names.len())));
            }
        }
        Ok(shard)
    }

    pub fn path(&self) -> &str {
        &self.path
    }
    pub fn len(&self) -> usize {
        self.header.count as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn spec(&self) -> ShardSpec {
        self.header.spec
    }

    /// The pixels of image `i`, `[height, width, channels]` u8.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.header.spec.image_len();
        let start = self.header.layout.pixels as usize + i * n;
        &self.bytes[start..start + n]
    }

    pub fn labels(&self) -> &[u32] {
        let l = self.header.layout;
        bytemuck::cast_slice(&self.bytes[l.labels as usize..(l.labels + 4 * self.header.count) as usize])
    }

    /// Per-image timestamps, for time-ordered streams.
    pub fn timestamps(&self) -> Option<&[i64]> {
        let l = self.header.layout;
        (self.header.flags & HAS_TIMESTAMPS != 0)
            .then(|| bytemuck::cast_slice(&self.bytes[l.timestamps as usize..(l.timestamps + 8 * self.header.count) as usize]))
    }

    /// Secondary labels (CIFAR-100's 20 superclasses), when the source has them.
    pub fn coarse_labels(&self) -> Option<&[u32]> {
        let l = self.header.layout;
        (self.header.flags & HAS_COARSE != 0)
            .then(|| bytemuck::cast_slice(&self.bytes[l.coarse as usize..(l.coarse + 4 * self.header.count) as usize]))
    }

    /// Class names, one per class, or empty when the shard has none.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }
}

/// One image to append to a shard.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub pixels: &'a [u8],
    pub label: u32,
    pub timestamp: Option<i64>,
    pub coarse_label: Option<u32>,
}

impl<'a> Record<'a> {
    pub fn new(pixels: &'a [u8], label: u32) -> Record<'a> {
        Record { pixels, label, timestamp: None, coarse_label: None }
    }
}

/// Streams images into a temp file beside the destination and renames it into place on
/// `finish`; dropping an unfinished writer deletes the temp file, so no partial shard is left.
pub struct ShardWriter {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<BufWriter<File>>,
    spec: ShardSpec,
    labels: Vec<u32>,
    timestamps: Vec<i64>,
    coarse: Vec<u32>,
    coarse_classes: u32,
    names: Vec<String>,
}

impl ShardWriter {
    /// Starts a shard at `path`, creating its directory if needed.
    pub fn create(path: &Path, spec: ShardSpec) -> Result<ShardWriter, DataError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(DataError::io(dir.display()))?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut file = BufWriter::with_capacity(1 << 20, File::create(&tmp).map_err(DataError::io(tmp.display()))?);
        file.write_all(&[0u8; HEADER_LEN]).map_err(DataError::io(tmp.display()))?;
        Ok(ShardWriter {
            path: path.to_path_buf(),
            tmp,
            file: Some(file),
            spec,
            labels: Vec::new(),
            timestamps: Vec::new(),
            coarse: Vec::new(),
            coarse_classes: 0,
            names: Vec::new(),
        })
    }

    /// Class names, one per class (written when the shard is finished).
    pub fn set_class_names(&mut self, names: Vec<String>) {
        self.names = names;
    }

    /// The number of coarse classes, for records that carry `coarse_label`.
    pub fn set_coarse_classes(&mut self, n: u32) {
        self.coarse_classes = n;
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn push(&mut self, r: Record) -> Result<(), DataError> {
        let dst = self.path.display();
        if r.pixels.len() != self.spec.image_len() {
            return Err(DataError::invalid(&dst, format!("image {} has {} bytes, expected {}", self.len(), r.pixels.len(), self.spec.image_len())));
        }
        if r.label >= self.spec.classes {
            return Err(DataError::invalid(&dst, format!("label {} of image {} is ≥ the {} classes", r.label, self.len(), self.spec.classes)));
        }
        // Either every record has a timestamp (or a coarse label) or none has.
        let n = self.labels.len();
        if n > 0 && (r.timestamp.is_some() == self.timestamps.is_empty() || r.coarse_label.is_some() == self.coarse.is_empty()) {
            return Err(DataError::invalid(&dst, format!("image {n}: some images have timestamps (or coarse labels) and some do not")));
        }
        self.file.as_mut().expect("writer open").write_all(r.pixels).map_err(DataError::io(self.tmp.display()))?;
        self.labels.push(r.label);
        if let Some(t) = r.timestamp {
            self.timestamps.push(t);
        }
        if let Some(c) = r.coarse_label {
            self.coarse.push(c);
        }
        Ok(())
    }

    /// Writes the label sections and the header, fsyncs, and renames the shard into place.
    pub fn finish(mut self) -> Result<PathBuf, DataError> {
        let count = self.labels.len() as u64;
        let dst = self.path.display().to_string();
        if !self.timestamps.is_empty() && self.timestamps.len() as u64 != count {
            return Err(DataError::invalid(&dst, "some images have timestamps and some do not"));
        }
        if !self.coarse.is_empty() && self.coarse.len() as u64 != count {
            return Err(DataError::invalid(&dst, "some images have coarse labels and some do not"));
        }
        if !self.names.is_empty() && self.names.len() != self.spec.classes as usize {
            return Err(DataError::invalid(&dst, format!("{} class names for {} classes", self.names.len(), self.spec.classes)));
        }
        let mut flags = 0;
        if !self.timestamps.is_empty() {
            flags |= HAS_TIMESTAMPS;
        }
        if !self.coarse.is_empty() {
            flags |= HAS_COARSE;
        }
        let names = self.names.join("\n");
        if !self.names.is_empty() {
            flags |= HAS_NAMES;
        }
        let layout = Layout::new(self.spec, count, flags, names.len() as u64);
        let header = Header { flags, count, spec: self.spec, coarse_classes: self.coarse_classes, layout };
        let io = DataError::io(self.tmp.display());
        let mut file = self.file.take().expect("writer open");
        fn write_at(file: &mut BufWriter<File>, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
            let here = file.stream_position()?;
            file.write_all(&vec![0u8; (offset - here) as usize])?;
            file.write_all(bytes)
        }
        let result = (|| {
            write_at(&mut file, layout.labels, bytemuck::cast_slice(&self.labels))?;
            if layout.timestamps != 0 {
                write_at(&mut file, layout.timestamps, bytemuck::cast_slice(&self.timestamps))?;
            }
            if layout.coarse != 0 {
                write_at(&mut file, layout.coarse, bytemuck::cast_slice(&self.coarse))?;
            }
            if layout.names != 0 {
                write_at(&mut file, layout.names, names.as_bytes())?;
            }
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&header.encode())?;
            let file = file.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()
        })();
        result.map_err(io)?;
        std::fs::rename(&self.tmp, &self.path).map_err(DataError::io(&dst))?;
        Ok(self.path.clone())
    }
}

impl Drop for ShardWriter {
    fn drop(&mut self) {
        if self.file.is_some() || self.tmp.exists() {
            self.file = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Encodes a complete shard in memory (the synthetic generator's path; same layout as a file).
pub fn encode(spec: ShardSpec, pixels: &[u8], labels: &[u32], timestamps: Option<&[i64]>, names: &[String]) -> Vec<u8> {
    let count = labels.len() as u64;
    assert_eq!(pixels.len(), labels.len() * spec.image_len(), "pixel bytes");
    let names = names.join("\n");
    let mut flags = if timestamps.is_some() { HAS_TIMESTAMPS } else { 0 };
    if !names.is_empty() {
        flags |= HAS_NAMES;
    }
    let layout = Layout::new(spec, count, flags, names.len() as u64);
    let mut out = vec![0u8; layout.file_len as usize];
    out[..HEADER_LEN].copy_from_slice(&Header { flags, count, spec, coarse_classes: 0, layout }.encode());
    out[layout.pixels as usize..][..pixels.len()].copy_from_slice(pixels);
    out[layout.labels as usize..][..4 * labels.len()].copy_from_slice(bytemuck::cast_slice(labels));
    if let Some(t) = timestamps {
        out[layout.timestamps as usize..][..8 * t.len()].copy_from_slice(bytemuck::cast_slice(t));
    }
    if !names.is_empty() {
        out[layout.names as usize..][..names.len()].copy_from_slice(names.as_bytes());
    }
    out
}
