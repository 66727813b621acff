//! The training step `bench step` and `bench scaling` time: one model, the passes of one step
//! over random images, and the optimizer training uses.

use crate::model_args::ModelArgs;
use anyhow::Result;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rekindle_coordinator::config::OptimSection;
use rekindle_model::{ClassifyPass, Flops, MaePass, MaskIds, Optimizer, Vit};
use rekindle_tensor::{Backend, Tensor};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Supervised classification on full images (soft-target cross-entropy).
    Classify,
    /// MAE reconstruction with 75% of the patches removed.
    Mae,
    /// DietCL's stage-1 step: 40% of the images through MAE, 60% through classification, one
    /// update.
    Dietcl,
}

/// What a timed training step runs, and how it is timed (shared by `step` and `scaling`).
#[derive(clap::Args)]
pub struct StepSettings {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Images per step (per rank, under `bench scaling`).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    #[arg(long, value_enum, default_value_t = Task::Classify)]
    pub task: Task,
    /// Timed steps (after `--warmup` untimed ones); medians are reported.
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// CPU worker threads (0: one per core; under a launcher, the node's cores shared among its ranks).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub device: crate::device::DeviceArgs,
}

impl StepSettings {
    pub fn check(&self) -> Result<()> {
        if self.batch == 0 || self.iters == 0 {
            anyhow::bail!("--batch and --iters must be at least 1");
        }
        Ok(())
    }
}

enum Pass {
    Classify(Box<ClassifyPass>),
    Mae(Box<MaePass>),
}

/// One model, the passes of one step over random images, and the optimizer training uses
/// (AdamW, layer decay 0.65): a training step without data loading, so the numbers are the
/// model's.
pub struct Workload {
    pub vit: Vit,
    pub batch: usize,
    /// Each pass and its number of images.
    passes: Vec<(Pass, usize)>,
    optimizer: Optimizer,
    /// `[1]`: the step's summed loss, read once at its end, as training does.
    loss: Tensor,
}

impl Workload {
    pub fn new(be: &mut dyn Backend, model: &ModelArgs, task: Task, batch: usize) -> Result<Workload> {
        let vit = model.build(be, 0)?;
        let config = vit.config.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mae_images = match task {
            Task::Classify => 0,
            Task::Mae => batch,
            Task::Dietcl => (0.4 * batch as f64).round() as usize,
        };
        let mut passes = Vec::new();
        for (mae, n) in [(true, mae_images), (false, batch - mae_images)] {
            if n == 0 {
                continue;
            }
            let images: Vec<f32> = (0..n * config.channels * config.image_size * config.image_size).map(|_| rng.random_range(-2.0f32..2.0)).collect();
            let pass = if mae {
                let p = MaePass::new(be, &vit, n);
                p.set_images(be, &images);
                Pass::Mae(Box::new(p))
            } else {
                let p = ClassifyPass::new(be, &vit, n);
                let mut targets = vec![0.0f32; n * config.classes];
                for row in targets.chunks_exact_mut(config.classes) {
                    row[rng.random_range(0..config.classes)] = 1.0;
                }
                p.set_batch(be, &images, &targets, &vec![1.0; config.classes]);
                Pass::Classify(Box::new(p))
            };
            passes.push((pass, n));
        }
        // The config's default recipe: AdamW (0.9, 0.95), weight decay 0.05, layer decay 0.65.
        let optimizer = Optimizer::new(be, &vit, &OptimSection::default().optimizer());
        let loss = be.alloc(1);
        Ok(Workload { vit, batch, passes, optimizer, loss })
    }

    /// Forward and backward of step `i` into fresh gradients (each pass weighted by its share of
    /// the images); returns the summed loss.
    pub fn forward_backward(&self, be: &mut dyn Backend, i: usize) -> f32 {
        let vit = &self.vit;
        vit.zero_grads(be);
        be.fill(self.loss, 0.0);
        for (pass, n) in &self.passes {
            let share = *n as f32 / self.batch as f32;
            match pass {
                Pass::Classify(p) => {
                    p.forward(be, vit);
                    p.backward_into(be, vit, share, None, self.loss, 1.0);
                }
                Pass::Mae(p) => {
                    // A fresh random mask every step, as in MAE training.
                    let c = &vit.config;
                    p.set_mask(be, &MaskIds::random(i as u64, 0, *n, c.patches(), c.kept_patches()));
                    p.forward(be, vit);
                    p.backward_into(be, vit, share, self.loss, 1.0);
                }
            }
        }
        be.download_vec(self.loss)[0]
    }

    /// The optimizer update at LR 1e-4, as a training step ends.
    pub fn update(&mut self, be: &mut dyn Backend) {
        self.optimizer.update(be, &self.vit, 1e-4);
    }

    /// Training FLOPs of one step (forward and backward of every pass).
    pub fn flops_per_step(&self) -> f64 {
        let flops = Flops::of(&self.vit.config);
        self.passes
            .iter()
            .map(|(pass, n)| {
                let forward = match pass {
                    Pass::Classify(_) => flops.classify_forward,
                    Pass::Mae(_) => flops.mae_forward,
                };
                flops.train(forward) * *n as f64
            })
            .sum()
    }
}

/// Dense bf16 tensor-core peak of a GPU by name (the usual MFU denominator), where known.
pub fn bf16_peak_tflops(device: &str) -> Option<f64> {
    [("H100 PCIe", 756.0), ("H100", 989.4), ("H200", 989.4), ("H800", 989.4), ("GH200", 989.4), ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.1), ("A10", 125.0)]
        .iter()
        .find(|(name, _)| device.contains(name))
        .map(|&(_, peak)| peak)
}

