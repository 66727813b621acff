//! `rekindle reconstruct`: what the MAE decoder makes of masked images, as a picture.

use crate::eval::trained_model;
use anyhow::{Context, Result};
use rekindle_data::{BatchRequest, Loader, Normalize, Shard};
use rekindle_model::{write_tensors, MaePass, MaskIds, Vit};
use rekindle_tensor::{Backend, CpuBackend, PatchOrder};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct ReconstructArgs {
    /// A checkpoint written by `rekindle train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Shard to take images from (its first `--n`).
    #[arg(long)]
    data: PathBuf,
    /// Output PNG: a row per image, original | masked | reconstruction. The mask and the
    /// predicted patches go to the same name with `.safetensors`.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 8)]
    n: usize,
    /// Seeds the random mask.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: &ReconstructArgs) -> Result<()> {
    let shard = Arc::new(Shard::open(&args.data)?);
    let mut be = CpuBackend::new(0);
    let (vit, _) = trained_model(&mut be, &args.checkpoint, &shard)?;
    let n = args.n.clamp(1, shard.len());
    let images: Vec<u32> = (0..n as u32).collect();
    draw(&mut be, &vit, shard, &images, args.seed, &args.out)
}

/// Writes `out` (a PNG: a row per image of `images`, original | masked | reconstruction under a
/// random mask from `seed`) and, beside it, the mask and predicted patches as safetensors.
pub fn draw(be: &mut dyn Backend, vit: &Vit, shard: Arc<Shard>, images: &[u32], seed: u64, out: &Path) -> Result<()> {
    let Picture { image, mask, pred } = picture(be, vit, shard, images, seed)?;
    save_png(&image, out)?;
    let c = &vit.config;
    let (n, l, p) = (images.len(), c.patches(), c.patch_len());
    let tensors_path = out.with_extension("safetensors");
    write_tensors(&tensors_path, &[("mask", &[n, l], &mask), ("pred", &[n, l, p], &pred)], HashMap::new())?;
    println!("{} (original | masked | reconstruction), mask and predicted patches in {}", out.display(), tensors_path.display());
    Ok(())
}

/// What the decoder makes of some images: the picture, the mask (1: hidden patch) and the
/// predicted patches, `[n, patches]` and `[n, patches, patch_len]`.
pub struct Picture {
    pub image: image::RgbImage,
    pub mask: Vec<f32>,
    pub pred: Vec<f32>,
}

/// Writes `image` as a PNG at `path`, creating its folder.
pub fn save_png(image: &image::RgbImage, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    image.save(path).with_context(|| format!("cannot write {}", path.display()))
}

/// [`Picture`] of `images` (a row each: original | masked | reconstruction) under a random mask
/// from `seed`. Every buffer it takes on the backend is returned, so training can go on after.
pub fn picture(be: &mut dyn Backend, vit: &Vit, shard: Arc<Shard>, images: &[u32], seed: u64) -> Result<Picture> {
    let c = vit.config.clone();
    let n = images.len();
    let norm = Normalize::default_for(c.channels);
    let loader = Loader::new(shard, c.image_size, norm.clone(), 2, 1);
    loader.submit(BatchRequest { images: images.to_vec(), augment: None, seed: 0, first: 0 });
    let batch = loader.next();

    let pass = MaePass::new(be, vit, n);
    be.upload(pass.images(), &batch.pixels);
    let ids = MaskIds::random(seed, 0, n, c.patches(), c.kept_patches());
    pass.set_mask(be, &ids);
    pass.forward(be, vit);
    let (l, p) = (c.patches(), c.patch_len());
    let pred_all = be.download_vec(pass.pred());
    let pred: Vec<f32> = pred_all.chunks_exact((1 + l) * p).flat_map(|s| s[p..].to_vec()).collect();

    // The input's patches in the target order; predictions are per-patch normalised, so each is
    // mapped back with its patch's mean and unbiased std (as MAE's visualisation does).
    let shape = c.patch_shape(n);
    let (images, patches) = (be.alloc(batch.pixels.len()), be.alloc(batch.pixels.len()));
    be.upload(images, &batch.pixels);
    be.patchify(patches, images, shape, PatchOrder::RowColChannel);
    let target = be.download_vec(patches);
    let (mut recon, mut masked) = (target.clone(), target.clone());
    for (k, t) in target.chunks_exact(p).enumerate() {
        if ids.mask[k] == 0.0 {
            continue;
        }
        let mean = t.iter().sum::<f32>() / p as f32;
        let std = (t.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / (p - 1) as f32 + 1e-6).sqrt();
        recon[k * p..(k + 1) * p].iter_mut().zip(&pred[k * p..(k + 1) * p]).for_each(|(r, y)| *r = y * std + mean);
        masked[k * p..(k + 1) * p].fill(0.0);
    }
    let mut panels = Vec::new();
    for view in [&target, &masked, &recon] {
        be.upload(patches, view);
        be.unpatchify(images, patches, shape, PatchOrder::RowColChannel);
        panels.push(be.download_vec(images));
    }
    be.free(images);
    be.free(patches);
    pass.free(be);

    let (s, ch, gap) = (c.image_size, c.channels, 2);
    let mut img = image::RgbImage::from_pixel((3 * (s + gap) + gap) as u32, (n * (s + gap) + gap) as u32, image::Rgb([255, 255, 255]));
    for (col, panel) in panels.iter().enumerate() {
        for i in 0..n {
            for y in 0..s {
                for x in 0..s {
                    let value = |k: usize| {
                        let v = panel[((i * ch + k) * s + y) * s + x] * norm.std[k] + norm.mean[k];
                        (v * 255.0).round().clamp(0.0, 255.0) as u8
                    };
                    let rgb = if ch == 3 { [value(0), value(1), value(2)] } else { [value(0); 3] };
                    img.put_pixel((gap + col * (s + gap) + x) as u32, (gap + i * (s + gap) + y) as u32, image::Rgb(rgb));
                }
            }
        }
    }
    Ok(Picture { image: img, mask: ids.mask, pred })
}
