//! `rekindle eval`: top-1 accuracy of a checkpoint on a shard, overall and per class.

use anyhow::{bail, Context, Result};
use rekindle_coordinator::{logits, EvalPasses, META_CLASSES};
use rekindle_data::{Loader, Normalize, Shard};
use rekindle_model::{load_checkpoint, write_tensors, ModelConfig, Vit, META_MODEL};
use rekindle_tensor::Backend;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct EvalArgs {
    /// A checkpoint written by `rekindle train` (runs/NAME/checkpoints/step-T.safetensors).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The shard to evaluate on.
    #[arg(long)]
    data: PathBuf,
    /// Also write the logits: a safetensors file with `logits` [N, classes] in dataset order,
    /// one column per class id of the shard (-inf for classes the head has not seen).
    #[arg(long, value_name = "FILE")]
    save_logits: Option<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// CPU worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

/// A model rebuilt from a `rekindle train` checkpoint (its geometry is in the metadata), and the
/// class id of each head row.
pub fn trained_model(be: &mut dyn Backend, checkpoint: &Path, data: &Shard) -> Result<(Vit, Vec<u32>)> {
    let bytes = std::fs::read(checkpoint).with_context(|| format!("cannot read {}", checkpoint.display()))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).with_context(|| format!("{} is not a safetensors file", checkpoint.display()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let config: ModelConfig = serde_json::from_str(meta.get(META_MODEL).with_context(|| {
        format!("{} has no `rekindle.model` metadata (checkpoints written by `rekindle train` carry it)", checkpoint.display())
    })?)?;
    let classes: Vec<u32> = match meta.get(META_CLASSES) {
        Some(text) => serde_json::from_str(text)?,
        None => (0..config.classes as u32).collect(),
    };
    if data.spec().channels as usize != config.channels {
        bail!("{} has {} channels; the checkpoint's model takes {}", data.path(), data.spec().channels, config.channels);
    }
    let vit = Vit::new(be, &config, 0)?;
    let report = load_checkpoint(be, &vit, checkpoint)?;
    if report.kept.contains(&rekindle_model::Part::Head) {
        bail!(
            "{} has no classification head (an MAE pre-training checkpoint has none), and a fresh head would score chance; \
             train one from it with `rekindle train CONFIG --set model.init={0}` and evaluate that run's checkpoints/step-T.safetensors",
            checkpoint.display()
        );
    }
    Ok((vit, classes))
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let shard = Arc::new(Shard::open(&args.data)?);
    let mut backend = args.device.backend(args.threads)?;
    let be = backend.as_mut();
    let (vit, classes) = trained_model(be, &args.checkpoint, &shard)?;
    let config = vit.config.clone();
    let loader = Loader::new(shard.clone(), config.image_size, Normalize::default_for(config.channels), 2, 4);
    let images: Vec<u32> = (0..shard.len() as u32).collect();
    let k = config.classes;
    let head = logits(be, &vit, &mut EvalPasses::default(), &loader, &images, args.batch.max(1));
    if let Some(e) = be.error() {
        bail!("{e}");
    }

    let n_classes = shard.spec().classes as usize;
    let (mut hits, mut counts) = (vec![0usize; n_classes], vec![0usize; n_classes]);
    for (row, &label) in head.chunks_exact(k).zip(shard.labels()) {
        let best = (0..k).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0);
        counts[label as usize] += 1;
        hits[label as usize] += (classes[best] == label) as usize;
    }
    let total: usize = hits.iter().sum();
    println!("{}: top-1 {:.4} ({} of {} images)", args.data.display(), total as f64 / shard.len().max(1) as f64, total, shard.len());
    for c in 0..n_classes {
        let name = shard.class_names().get(c).map_or(String::new(), |n| format!(" {n}"));
        let seen = if classes.contains(&(c as u32)) { "" } else { "  (not in the head)" };
        println!("{c:>5}{name:<24} {:>8.4} of {:>6}{seen}", hits[c] as f64 / counts[c].max(1) as f64, counts[c]);
    }
    if let Some(path) = &args.save_logits {
        let mut by_class = vec![f32::NEG_INFINITY; shard.len() * n_classes];
        for (i, row) in head.chunks_exact(k).enumerate() {
            for (r, &class) in classes.iter().enumerate() {
                if (class as usize) < n_classes {
                    by_class[i * n_classes + class as usize] = row[r];
                }
            }
        }
        write_tensors(path, &[("logits", &[shard.len(), n_classes], &by_class)], HashMap::new())?;
        println!("logits [{}, {}] -> {}", shard.len(), n_classes, path.display());
    }
    Ok(())
}
