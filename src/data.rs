//! `rekindle data prepare|info`: import datasets into shards, and look at a shard.

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rekindle_data::import::{import_cifar10, import_cifar100, import_folder, import_idx, ImportSummary, Split};
use rekindle_data::{Record, Shard, ShardWriter, SyntheticSpec};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// Import a dataset into a shard file.
    ///
    /// Examples:
    ///   rekindle data prepare --from idx --input /usr/share/datasets/fashion-mnist --split train --out fmnist-train.shard
    ///   rekindle data prepare --from cifar10 --input cifar-10-batches-bin --split test --out c10-test.shard
    ///   rekindle data prepare --from folder --input imagenet/train --size 224 --out in1k-train.shard
    ///   rekindle data prepare --from synthetic --classes 10 --per-class 500 --size 32 --out synthetic.shard
    #[command(verbatim_doc_comment)]
    Prepare(PrepareArgs),
    /// Print a shard's counts, class histogram and image size, and write a PNG grid of samples.
    Info(InfoArgs),
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    /// MNIST / Fashion-MNIST idx files, gzipped or not (--input: their directory, or the images file).
    Idx,
    /// CIFAR-10 binary version (--input: the cifar-10-batches-bin directory).
    Cifar10,
    /// CIFAR-100 binary version with fine labels; coarse labels are kept too.
    Cifar100,
    /// ImageNet-style tree, class_name/*.jpg|png (--input: the root), resized and centre-cropped to --size.
    Folder,
    /// rekindle's procedural dataset (no input files).
    Synthetic,
}

#[derive(clap::Args)]
pub struct PrepareArgs {
    #[arg(long, value_enum)]
    from: Format,
    /// Input directory or file (not needed for `synthetic`).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Output shard file (written atomically).
    #[arg(long)]
    out: PathBuf,
    /// Which half of a pre-split dataset: train or test (idx, cifar10, cifar100).
    #[arg(long, default_value = "train")]
    split: String,
    /// Image side for `folder` (shorter side resized, then centre crop) and `synthetic`.
    #[arg(long)]
    size: Option<u32>,
    /// `folder`: a CSV of `relative/path,timestamp` lines, for time-ordered streams.
    #[arg(long)]
    timestamps: Option<PathBuf>,
    /// Number of classes: `synthetic` makes this many (default 10); `idx` records this many
    /// (default: one more than the largest label, so a test split that lacks the top classes
    /// needs `--classes` to match its train split).
    #[arg(long)]
    classes: Option<u32>,
    /// `synthetic`: images per class.
    #[arg(long, default_value_t = 500)]
    per_class: usize,
    /// `synthetic`: seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// `synthetic`: appearance drift over time (0 = none).
    #[arg(long, default_value_t = 0.0)]
    drift: f32,
}

#[derive(clap::Args)]
pub struct InfoArgs {
    /// The shard to describe.
    file: PathBuf,
    /// Where to write the sample grid (default: FILE with `.png`).
    #[arg(long)]
    grid: Option<PathBuf>,
    /// Samples per class in the grid.
    #[arg(long, default_value_t = 8)]
    per_class: usize,
    /// Most classes shown in the grid.
    #[arg(long, default_value_t = 20)]
    max_classes: usize,
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Prepare(args) => prepare(&args),
        DataCommand::Info(args) => info(&args),
    }
}

fn prepare(a: &PrepareArgs) -> Result<()> {
    let input = || a.input.as_deref().with_context(|| format!("--from {:?} needs --input", a.from));
    let split: Split = a.split.parse()?;
    let summary = match a.from {
        Format::Idx => import_idx(input()?, split, &a.out, a.classes)?,
        Format::Cifar10 => import_cifar10(input()?, split, &a.out)?,
        Format::Cifar100 => import_cifar100(input()?, split, &a.out)?,
        Format::Folder => {
            let size = a.size.context("--from folder needs --size (the side of the square images to store)")?;
            let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template("{bar:40} {pos}/{len} images {per_sec} eta {eta}").unwrap());
            let s = import_folder(input()?, size, a.timestamps.as_deref(), &a.out, &|done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            s
        }
        Format::Synthetic => synthetic(a)?,
    };
    println!(
        "wrote {}: {} images, {}x{}x{}, {} classes",
        summary.path.display(),
        summary.images,
        summary.height,
        summary.width,
        summary.channels,
        summary.classes
    );
    Ok(())
}

fn synthetic(a: &PrepareArgs) -> Result<ImportSummary> {
    let spec = SyntheticSpec { classes: a.classes.unwrap_or(10), per_class: a.per_class, size: a.size.unwrap_or(32), seed: a.seed, drift: a.drift };
    let shard = spec.generate("synthetic")?;
    let mut w = ShardWriter::create(&a.out, shard.spec())?;
    w.set_class_names(shard.class_names().to_vec());
    let times = shard.timestamps().expect("synthetic data is time-stamped");
    for i in 0..shard.len() {
        w.push(Record { timestamp: Some(times[i]), ..Record::new(shard.image(i), shard.labels()[i]) })?;
    }
    let s = shard.spec();
    Ok(ImportSummary { images: w.len(), path: w.finish()?, classes: s.classes, height: s.height, width: s.width, channels: s.channels })
}

fn info(a: &InfoArgs) -> Result<()> {
    let shard = Shard::open(&a.file)?;
    let s = shard.spec();
    println!("{}: {} images, {}x{}x{} (HxWxC), {} classes", a.file.display(), shard.len(), s.height, s.width, s.channels, s.classes);
    if let Some(t) = shard.timestamps() {
        println!("timestamps: {} .. {}", t.iter().min().unwrap_or(&0), t.iter().max().unwrap_or(&0));
    }
    let mut counts = vec![0usize; s.classes as usize];
    shard.labels().iter().for_each(|&l| counts[l as usize] += 1);
    let most = counts.iter().copied().max().unwrap_or(1).max(1);
    for (c, &n) in counts.iter().enumerate() {
        let name = shard.class_names().get(c).map_or(String::new(), |n| format!(" {n}"));
        println!("{c:>5}{name:<24} {n:>8} {}", "#".repeat(n * 40 / most));
    }
    let grid = a.grid.clone().unwrap_or_else(|| a.file.with_extension("png"));
    write_grid(&shard, &grid, a.per_class, a.max_classes)?;
    println!("sample grid (a row per class): {}", grid.display());
    Ok(())
}

/// A PNG with one row per class (up to `max_classes`) of its first `per_class` images.
fn write_grid(shard: &Shard, path: &Path, per_class: usize, max_classes: usize) -> Result<()> {
    let s = shard.spec();
    let (h, w, c) = (s.height as usize, s.width as usize, s.channels as usize);
    let rows = (s.classes as usize).min(max_classes);
    if rows == 0 || per_class == 0 {
        bail!("nothing to draw: {rows} classes, {per_class} samples per class");
    }
    let gap = 2;
    let (gw, gh) = (per_class * (w + gap) + gap, rows * (h + gap) + gap);
    let mut img = image::RgbImage::from_pixel(gw as u32, gh as u32, image::Rgb([255, 255, 255]));
    let mut filled = vec![0usize; rows];
    for (i, &label) in shard.labels().iter().enumerate() {
        let row = label as usize;
        if row >= rows || filled[row] >= per_class {
            continue;
        }
        let (ox, oy) = (gap + filled[row] * (w + gap), gap + row * (h + gap));
        let px = shard.image(i);
        for y in 0..h {
            for x in 0..w {
                let p = &px[(y * w + x) * c..];
                let rgb = if c == 3 { [p[0], p[1], p[2]] } else { [p[0]; 3] };
                img.put_pixel((ox + x) as u32, (oy + y) as u32, image::Rgb(rgb));
            }
        }
        filled[row] += 1;
    }
    img.save(path).with_context(|| format!("cannot write {}", path.display()))
}
