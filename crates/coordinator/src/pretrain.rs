//! MAE pre-training (`rekindle pretrain`): the encoder and decoder learn to reconstruct images
//! that no stream sees — the part of `data.train` that `data.holdout` keeps out, or all of
//! `pretrain.data` — so that every strategy of a comparison starts from the same pretrained
//! weights, as the DietCL reference does (METHODS.md §1, "Initialisation").
//!
//! One loop of optimizer steps over the shared [`Engine`] with an unlabelled-only mix: the
//! effective batch is accumulated from micro-batches and summed over ranks as in training, masks
//! and crops are seeded by the global iteration, so a resumed run (`checkpoints/pretrain-N`, with
//! the optimizer moments) continues bit for bit. The result, `mae.safetensors`, holds the encoder
//! and decoder (no head: pre-training never trains one) and records its data in its metadata,
//! which `model.init` checks against the stream's holdout.

use crate::budget::Mix;
use crate::config::{ConfigError, TrainConfig};
use crate::engine::{Engine, EngineSettings, Pools, Regularizers, Sources, StepSpec};
use crate::error::TrainError;
use crate::inputs::{check_images, check_ranks, loader_threads, open_data};
use crate::run_dir::{filter_lines, Checkpoint, RunDir, META_PRETRAIN_HOLDOUT, META_PRETRAIN_SOURCE, META_RUN_ID};
use crate::trainer::Place;
use crate::schedule::{scaled_lr, Cosine};
use crate::targets::ClassMap;
use rekindle_comm::Comm;
use rekindle_data::{holdout, Balance, Loader, Normalize, ReplayBuffer, Shard};
use rekindle_model::{Optimizer, Vit, BODY};
use rekindle_tensor::Backend;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// What pre-training reports as it goes.
pub enum PretrainProgress<'a> {
    Begin { steps: usize, images: usize, first: usize },
    /// One optimizer step, of `step_flops`; `flops` is the run's so far.
    Iteration { iteration: usize, loss: f32, lr: f64, grad_norm: f32, images_per_sec: f64, step_flops: f64, flops: f64 },
    Checkpoint { iteration: usize, path: &'a Path },
    /// On rank 0, every `logging.image_every` optimizer steps and after the last: the model
    /// after `steps` steps, to draw what it reconstructs (with the backend; the other ranks wait
    /// at the next step).
    Model { steps: usize, be: &'a mut dyn Backend, vit: &'a Vit },
}

/// `summary.json` of a pre-training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PretrainSummary {
    /// Where the images came from, and how many there were.
    pub source: String,
    pub images: usize,
    pub optimizer_steps: usize,
    pub effective_batch: usize,
    /// The MAE loss of the last optimizer step.
    pub final_loss: f32,
    pub flops: f64,
    pub wall_seconds: f64,
    /// The pretrained encoder and decoder, for `model.init`.
    pub checkpoint: PathBuf,
    /// The run these results are of (its `run.json` id).
    #[serde(default)]
    pub run_id: String,
}

/// What a resumed pre-training run needs besides tensors (`state.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct PretrainState {
    run_id: String,
    iteration: usize,
    optimizer_step: u32,
    checkpoint: String,
    flops: f64,
    wall_seconds: f64,
    last_loss: f32,
}

/// The images pre-training reads: the shard, the image ids and a description of the source.
pub fn pretrain_images(config: &TrainConfig) -> Result<(Arc<Shard>, Vec<u32>, String), TrainError> {
    if let Some(spec) = &config.pretrain.data {
        let shard = open_data(spec, config, false)?;
        let all = (0..shard.len() as u32).collect();
        return Ok((Arc::new(shard), all, spec.clone()));
    }
    let shard = open_data(&config.data.train, config, false)?;
    let (held, _) = holdout(shard.labels(), shard.spec().classes, config.data.holdout);
    if held.is_empty() {
        return Err(ConfigError::Invalid {
            key: "data.holdout".into(),
            reason: format!("{} holds out no images of {} to pre-train on: set it (e.g. 0.2), or pretrain.data to another shard", config.data.holdout, config.data.train),
        }
        .into());
    }
    Ok((Arc::new(shard), held, config.data.train.clone()))
}

/// The lines of a pre-training run's old `metrics.jsonl` (`text`) that its last checkpoint holds.
pub fn kept_lines(dir: &RunDir, text: &str) -> Result<String, TrainError> {
    let done = dir.load_state::<PretrainState>()?.map_or(0, |s| s.iteration);
    Ok(filter_lines(text, |line| line["iteration"].as_u64().is_some_and(|i| (i as usize) < done)))
}

/// Runs MAE pre-training on `comm`'s ranks into `place.dir` (rank 0 writes; with `place.resume`,
/// every rank first continues from its last checkpoint). Every rank returns the same summary.
/// A checkpoint is written every `pretrain.checkpoint_every` steps and when a stop is requested.
pub fn pretrain(config: &TrainConfig, be: &mut dyn Backend, comm: &dyn Comm, place: Place, mut report: impl FnMut(PretrainProgress)) -> Result<PretrainSummary, TrainError> {
    let dir = place.dir.expect("pre-training writes into a run directory");
    let start = Instant::now();
    let model_config = config.model_config()?;
    let p = &config.pretrain;
    check_ranks("pretrain.micro_batch", p.effective_batch, p.micro_batch, comm.world())?;
    let (shard, images, source) = pretrain_images(config)?;
    check_images(&shard, &model_config, &config.model.preset)?;
    let run_dir = RunDir::create(dir)?;
    let saved: Option<PretrainState> = if place.resume { run_dir.load_state()? } else { None };

    let vit = Vit::new(be, &model_config, config.seed)?;
    let optimizer = Optimizer::new(be, &vit, &p.optim().optimizer());
    let settings = EngineSettings { micro_batch: p.micro_batch, mae_weight: 1.0, label_smoothing: 0.0, augment: config.augment.enabled, mixing: config.augment.mixing, seed: config.seed };
    let mut engine = Engine::new(settings, optimizer);
    let (mut iteration, mut flops, mut wall_before, mut last_loss) = (0, 0.0, 0.0, f32::NAN);
    if let Some(s) = saved {
        run_dir.load_model(be, &vit, &s.checkpoint, &BODY, place.run_id)?;
        run_dir.restore_optimizer(be, &mut engine.optimizer, &s.checkpoint, s.optimizer_step)?;
        (iteration, flops, wall_before, last_loss) = (s.iteration, s.flops, s.wall_seconds, s.last_loss);
    }
    let loader = Loader::new(shard.clone(), model_config.image_size, Normalize::default_for(model_config.channels), loader_threads(), 4);
    let no_buffer = ReplayBuffer::new(Balance::Uniform, None, config.seed);
    let no_classes = ClassMap::default();
    let pools = Pools { step: 0, current: &images, labelled: &[], buffer: &no_buffer, buffer_past_only: false };
    let sources = Sources {
        pools,
        loader: &loader,
        map: &no_classes,
        current_mask: &[],
        current_spread: &[],
        seen_mask: &[],
    };
    let counts = Mix::UNLABELLED.counts(p.effective_batch);
    let warmup = (p.warmup_fraction * p.steps as f64).round() as usize;
    let schedule = Cosine { base: scaled_lr(p.lr, p.effective_batch), min: p.min_lr, steps: p.steps, warmup };
    let lead = comm.rank() == 0;

    report(PretrainProgress::Begin { steps: p.steps, images: images.len(), first: iteration });
    let wall = |start: &Instant| wall_before + start.elapsed().as_secs_f64();
    while iteration < p.steps {
        let started = Instant::now();
        let lr = schedule.lr(iteration);
        let spec = StepSpec { counts, iteration: iteration as u64, lr };
        let losses = engine.step(be, &vit, &sources, spec, Regularizers::default(), comm)?;
        if !losses.mae.is_finite() || !losses.grad_norm.is_finite() {
            return Err(TrainError::NonFinite { step: 0, stage: "pretrain".into(), iteration, loss: losses.mae });
        }
        iteration += 1;
        flops += losses.flops;
        last_loss = losses.mae;
        let images_per_sec = p.effective_batch as f64 / started.elapsed().as_secs_f64();
        report(PretrainProgress::Iteration { iteration: iteration - 1, loss: losses.mae, lr, grad_norm: losses.grad_norm, images_per_sec, step_flops: losses.flops, flops });
        let every = config.logging.image_every;
        if lead && every > 0 && (iteration.is_multiple_of(every) || iteration == p.steps) {
            report(PretrainProgress::Model { steps: iteration, be: &mut *be, vit: &vit });
        }
        let due = p.checkpoint_every > 0 && iteration % p.checkpoint_every == 0 && iteration < p.steps;
        if lead && (due || losses.stop) {
            let name = format!("pretrain-{iteration}");
            let state = PretrainState { run_id: place.run_id.into(), iteration, optimizer_step: engine.optimizer.step_count(), checkpoint: name.clone(), flops, wall_seconds: wall(&start), last_loss };
            let meta = HashMap::from([(META_RUN_ID.to_string(), place.run_id.to_string())]);
            let checkpoint = Checkpoint { name: &name, parts: &BODY, meta, optimizer: Some(&engine.optimizer) };
            run_dir.save_checkpoint(be, &vit, checkpoint, &state, &config.checkpoint)?;
            report(PretrainProgress::Checkpoint { iteration, path: &run_dir.model_path(&name) });
        }
        if losses.stop {
            return Err(TrainError::Interrupted { step: 0, iteration: iteration - 1 });
        }
    }
    let out = run_dir.mae_path();
    if lead {
        let mut meta = HashMap::from([(META_PRETRAIN_SOURCE.to_string(), source.clone())]);
        if config.pretrain.data.is_none() {
            meta.insert(META_PRETRAIN_HOLDOUT.into(), config.data.holdout.to_string());
        }
        rekindle_model::save_parts(be, &vit, &out, &BODY, meta)?;
    }
    Ok(PretrainSummary {
        source,
        images: images.len(),
        optimizer_steps: iteration,
        effective_batch: p.effective_batch,
        final_loss: last_loss,
        flops,
        wall_seconds: wall(&start),
        checkpoint: out,
        run_id: place.run_id.into(),
    })
}
