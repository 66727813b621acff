//! The training-step engine that every strategy shares: one optimizer step draws an effective
//! batch from up to three sources, runs it in micro-batches (MAE on unlabelled current data,
//! masked cross-entropy on labelled current data, cross-entropy on the buffer), accumulates the
//! gradients of `w_mae · L_mae + L_cur + L_buf` (each a mean over its own sub-batch), sums them
//! over the ranks and updates. A round of CKCA or continuous training adds its [`Regularizers`]:
//! distillation on every labelled micro-batch, and an L2 pull once per step.

use crate::budget::{micro_batches, MixCounts};
use crate::config::TrainConfig;
use crate::distill::Distiller;
use crate::error::TrainError;
use crate::mixing::{mix, MixSettings};
use crate::predict::{logits, EvalPasses};
use crate::reduce::GradientSum;
use crate::targets::{soft_targets, ClassMap};
use rekindle_comm::{Comm, CommError, Reduce};
use rekindle_data::{batch_seed, rank_range, Augment, Batch, BatchRequest, Loader, ReplayBuffer};
use rekindle_model::{ClassifyPass, Flops, GradStash, L2Anchor, LossSums, MaePass, MaskIds, Optimizer, Vit};
use rekindle_tensor::{Backend, Tensor};
use std::collections::HashMap;

/// The image ids one optimizer step draws from, at time step `step`.
#[derive(Clone, Copy)]
pub struct Pools<'a> {
    pub step: u32,
    /// The images the MAE term reconstructs (`mae_images`).
    pub current: &'a [u32],
    /// The labelled images the current-data term trains on.
    pub labelled: &'a [u32],
    pub buffer: &'a ReplayBuffer,
    /// Draw buffer images from past steps only (ER batchmix).
    pub buffer_past_only: bool,
}

/// Everything one optimizer step reads besides the model: the pools, the loader that decodes
/// and augments their images, the class map and the head rows of each loss.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub pools: Pools<'a>,
    pub loader: &'a Loader,
    /// Class id → head row.
    pub map: &'a ClassMap,
    /// Rows of the softmax for the current-data loss (class-incremental: the step's classes).
    pub current_mask: &'a [f32],
    /// Rows over which label smoothing spreads for the current-data loss.
    pub current_spread: &'a [f32],
    /// Rows of the softmax for the buffer loss (every class seen).
    pub seen_mask: &'a [f32],
}

/// What one optimizer step trains: how many images of each source, its global iteration (it
/// seeds the draws, masks and augmentation) and its learning rate.
#[derive(Clone, Copy, Debug)]
pub struct StepSpec {
    pub counts: MixCounts,
    pub iteration: u64,
    pub lr: f64,
}

/// The extra terms of a round, when its strategy has them.
#[derive(Default)]
pub struct Regularizers<'r> {
    /// CKCA: FeatReg and AdaKD against a frozen teacher.
    pub distill: Option<&'r mut Distiller>,
    /// Continuous training's `λ‖θ − θ_ref‖²`.
    pub anchor: Option<&'r L2Anchor>,
}

/// Mean losses of one optimizer step's sub-batches (NaN where a sub-batch was empty or a term
/// is off).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepLosses {
    pub mae: f32,
    pub current: f32,
    pub buffer: f32,
    /// CKCA's FeatReg and AdaKD, before their weights.
    pub feat: f32,
    pub kd: f32,
    /// `λ‖θ − θ_ref‖²`.
    pub l2: f32,
    /// `w_mae · mae + current + buffer + λ_f · feat + λ_kd · kd + l2` over the present terms.
    pub total: f32,
    pub grad_norm: f32,
    /// With [`Engine::term_norms`]: the encoder-only gradient norm of the weighted MAE, current
    /// and buffer terms (this rank's part, before the all-reduce); NaN where absent or not measured.
    pub encoder_norms: [f32; 3],
    /// Some rank was asked to stop ([`crate::interrupt`]): the loop ends after this step.
    pub stop: bool,
    /// The step's training FLOPs (forward and backward of every image, and a teacher's forward).
    pub flops: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Unlabelled,
    Labelled,
    Buffer,
}

/// How the engine turns images into gradients.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Images per forward/backward on one rank.
    pub micro_batch: usize,
    pub mae_weight: f32,
    pub label_smoothing: f32,
    /// Crops and flips of every source, mixup/CutMix of labelled micro-batches.
    pub augment: bool,
    pub mixing: MixSettings,
    pub seed: u64,
}

impl EngineSettings {
    /// The settings of a training stream.
    pub fn training(config: &TrainConfig) -> EngineSettings {
        EngineSettings {
            micro_batch: config.budget.micro_batch,
            mae_weight: config.strategy.mae_weight,
            label_smoothing: config.augment.label_smoothing,
            augment: config.augment.enabled,
            mixing: config.augment.mixing,
            seed: config.seed,
        }
    }
}

/// One micro-batch of a step: its images, where it starts in its source's list, its share of
/// that list (its loss weight), the device scalar its weighted loss is added into, and the seed
/// of its masks (MAE) or mixing (labelled).
struct Micro<'b> {
    batch: &'b mut Batch,
    first: usize,
    share: f32,
    loss: Tensor,
    seed: u64,
}

/// The rows of the softmax and of label smoothing for one classification term.
struct Rows<'r> {
    map: &'r ClassMap,
    mask: &'r [f32],
    spread: &'r [f32],
}

pub struct Engine {
    pub settings: EngineSettings,
    pub optimizer: Optimizer,
    /// Measure each loss term's encoder gradient norm in the next steps (costs a copy of the
    /// gradients per term).
    pub term_norms: bool,
    mae_passes: HashMap<usize, MaePass>,
    classify_passes: HashMap<usize, ClassifyPass>,
    /// Evaluation's and scoring's passes (a full batch and a last short one).
    eval_passes: EvalPasses,
    targets: Vec<f32>,
    gradient_sum: GradientSum,
    /// The step's MAE, current and buffer loss sums, read once at the step's end.
    loss_sums: Option<LossSums>,
    /// Where [`TermNorms`] keeps the gradient of the terms measured so far.
    grad_stash: Option<GradStash>,
}

/// What a step sums over the ranks besides the gradients: the MAE, current, buffer, FeatReg and
/// AdaKD losses, the stop flag, and the failed-device flag.
const SUMS: usize = 7;
const STOP: usize = 5;
const FAILED: usize = 6;

impl Engine {
    pub fn new(settings: EngineSettings, optimizer: Optimizer) -> Engine {
        Engine {
            settings,
            optimizer,
            term_norms: false,
            mae_passes: HashMap::new(),
            classify_passes: HashMap::new(),
            eval_passes: EvalPasses::default(),
            targets: Vec::new(),
            gradient_sum: GradientSum::default(),
            loss_sums: None,
            grad_stash: None,
        }
    }

    /// Keeps the cached classification passes in step with a grown head.
    pub fn head_grew(&mut self, be: &mut dyn Backend, classes: usize) {
        self.classify_passes.values_mut().for_each(|p| p.set_classes(be, classes));
        self.eval_passes.set_classes(be, classes);
    }

    /// One optimizer step.
    ///
    /// With several ranks, every rank draws the same lists and trains on its own contiguous part
    /// of each ([`rank_range`]). Each micro-batch's loss is weighted by its share of the *whole*
    /// list, so one all-reduce (sum) of the gradients, with the loss sums packed behind them,
    /// gives every rank exactly the gradient of the whole effective batch. Crops, masks and
    /// mixing are seeded by an image's position in its list, not by the micro-batch or rank that
    /// holds it, so the step does not depend on the world size or the micro-batch size (except
    /// mixup/CutMix pairs, which stay within a micro-batch).
    ///
    /// A backend that failed during the step (`Backend::error`) has skipped its ops; its flag
    /// rides the same all-reduce, so every rank returns [`TrainError::Device`] after this step.
    pub fn step(&mut self, be: &mut dyn Backend, vit: &Vit, src: &Sources, spec: StepSpec, extra: Regularizers, comm: &dyn Comm) -> Result<StepLosses, TrainError> {
        let Regularizers { mut distill, anchor } = extra;
        let (counts, iteration) = (spec.counts, spec.iteration);
        let run_seed = self.settings.seed;
        let seed = |source: u64| batch_seed(run_seed, src.pools.step as u64, iteration, source);
        let Drawn { unlabelled, labelled, buffer } = draw(run_seed, &src.pools, counts, iteration);
        // Queue every micro-batch of this rank's part, so the loader works while the model computes.
        let mut plan = Vec::new();
        for (source, images) in [(Source::Unlabelled, &unlabelled), (Source::Labelled, &labelled), (Source::Buffer, &buffer)] {
            let part = rank_range(images.len(), comm.rank(), comm.world());
            for range in micro_batches(part.len(), self.settings.micro_batch) {
                let range = part.start + range.start..part.start + range.end;
                let augment = match (self.settings.augment, source) {
                    (false, _) => None,
                    (true, Source::Unlabelled) => Some(Augment::UNLABELLED),
                    (true, _) => Some(Augment::LABELLED),
                };
                src.loader.submit(BatchRequest { images: images[range.clone()].to_vec(), augment, seed: seed(source as u64), first: range.start });
                plan.push((source, range.start, range.len(), images.len()));
            }
        }
        vit.zero_grads(be);
        // Loss sums: MAE, current, buffer (added on the device by each micro-batch), FeatReg,
        // AdaKD (computed on the host).
        let mut sums = [0.0f64; SUMS];
        let device_sums = self.loss_sums.get_or_insert_with(|| LossSums::new(be, 3));
        device_sums.zero(be);
        let slots = [device_sums.slot(0), device_sums.slot(1), device_sums.slot(2)];
        let mut terms = TermNorms { last: None, norms: [f32::NAN; 3], stash: if self.term_norms { Some(self.take_stash(be, vit)) } else { None } };
        for (source, first, m, n) in plan {
            if terms.stash.is_some() && terms.last != Some(source) {
                terms.close(be, vit);
                terms.last = Some(source);
            }
            let mut batch = src.loader.next();
            let share = m as f32 / n as f32;
            let loss = slots[source as usize];
            let mix_seed = seed(2000 + source as u64) ^ first as u64;
            match source {
                Source::Unlabelled => self.mae(be, vit, Micro { batch: &mut batch, first, share, loss, seed: seed(1000) }),
                Source::Labelled => {
                    let rows = Rows { map: src.map, mask: src.current_mask, spread: src.current_spread };
                    let distilled = self.classify(be, vit, Micro { batch: &mut batch, first, share, loss, seed: mix_seed }, rows, distill.as_deref_mut());
                    if let Some((feat, kd)) = distilled {
                        sums[3] += (feat * share) as f64;
                        sums[4] += (kd * share) as f64;
                    }
                }
                Source::Buffer => {
                    let rows = Rows { map: src.map, mask: src.seen_mask, spread: src.seen_mask };
                    self.classify(be, vit, Micro { batch: &mut batch, first, share, loss, seed: mix_seed }, rows, None);
                }
            }
            src.loader.recycle(batch);
        }
        terms.close(be, vit);
        let (encoder_norms, stash) = terms.finish(be, vit);
        if stash.is_some() {
            self.grad_stash = stash;
        }
        let device_sums = self.loss_sums.as_ref().expect("allocated above");
        for (sum, device) in sums.iter_mut().zip(device_sums.read(be)) {
            *sum = device as f64;
        }
        sums[STOP] = crate::interrupt::pending() as u8 as f64;
        let failure = be.error().or_else(|| crate::fault::device(iteration));
        sums[FAILED] = failure.is_some() as u8 as f64;
        if comm.world() > 1 {
            self.gradient_sum.all_reduce(be, vit, &mut sums, comm)?;
        }
        if sums[FAILED] > 0.0 {
            return Err(device_failure(failure, comm));
        }
        let l2 = anchor.map_or(f32::NAN, |a| a.apply(be, vit));
        let grad_norm = self.optimizer.update(be, vit, spec.lr);
        let mean = |i: usize, present: bool| if present { sums[i] as f32 } else { f32::NAN };
        let distilling = distill.is_some() && counts.labelled > 0;
        let (mae, current, buf) = (mean(0, counts.unlabelled > 0), mean(1, counts.labelled > 0), mean(2, counts.buffer > 0));
        let (feat, kd) = (mean(3, distilling), mean(4, distilling));
        let (wf, wk) = distill.as_ref().map_or((0.0, 0.0), |d| (d.settings.feat_weight, d.settings.kd_weight));
        let total = [self.settings.mae_weight * mae, current, buf, wf * feat, wk * kd, l2].iter().filter(|v| !v.is_nan()).sum();
        let flops = step_flops(&Flops::of(&vit.config), counts, distill.is_some());
        Ok(StepLosses { mae, current, buffer: buf, feat, kd, l2, total, grad_norm, encoder_norms, stop: sums[STOP] > 0.0, flops })
    }

    /// The gradient stash of [`TermNorms`], allocated once and again only when the head grows.
    fn take_stash(&mut self, be: &mut dyn Backend, vit: &Vit) -> GradStash {
        match self.grad_stash.take() {
            Some(stash) if stash.fits(vit) => stash,
            old => {
                if let Some(stash) = old {
                    stash.free(be);
                }
                GradStash::new(be, vit)
            }
        }
    }

    /// MAE on one micro-batch; `share` times its loss is added into the device scalar `loss`.
    fn mae(&mut self, be: &mut dyn Backend, vit: &Vit, micro: Micro) {
        let n = micro.batch.len();
        let c = &vit.config;
        let pass = self.mae_passes.entry(n).or_insert_with(|| MaePass::new(be, vit, n));
        pass.set_images(be, &micro.batch.pixels);
        pass.set_mask(be, &MaskIds::random(micro.seed, micro.first, n, c.patches(), c.kept_patches()));
        pass.forward(be, vit);
        pass.backward_into(be, vit, self.settings.mae_weight * micro.share, micro.loss, micro.share);
    }

    /// Cross-entropy on one micro-batch, `share` times its mean loss added into the device
    /// scalar `loss`; on current labelled data of a CKCA round also the distillation terms,
    /// returned as `(FeatReg, AdaKD)`.
    fn classify(&mut self, be: &mut dyn Backend, vit: &Vit, micro: Micro, rows: Rows, distill: Option<&mut Distiller>) -> Option<(f32, f32)> {
        let (batch, weight) = (micro.batch, micro.share);
        let n = batch.len();
        soft_targets(&batch.labels, rows.map, self.settings.label_smoothing, rows.spread, &mut self.targets);
        if self.settings.augment {
            use rand::SeedableRng;
            mix(&mut batch.pixels, &mut self.targets, n, vit.config.image_size, &self.settings.mixing, &mut rand_chacha::ChaCha8Rng::seed_from_u64(micro.seed));
        }
        let pass = self.classify_passes.entry(n).or_insert_with(|| ClassifyPass::new(be, vit, n));
        pass.set_batch(be, &batch.pixels, &self.targets, rows.mask);
        pass.forward(be, vit);
        let Some(distiller) = distill else {
            pass.backward_into(be, vit, weight, None, micro.loss, weight);
            return None;
        };
        // Under mixup a sample's weight follows its own label.
        let label_rows: Vec<usize> = batch.labels.iter().map(|&c| rows.map.row(c)).collect();
        let (terms, grads) = distiller.run(be, pass, vit, &label_rows, weight);
        pass.backward_into(be, vit, weight, Some(grads), micro.loss, weight);
        Some((terms.feat, terms.kd))
    }

    /// The head row each of `images` predicts, under the eval transform.
    pub fn predict(&mut self, be: &mut dyn Backend, vit: &Vit, loader: &Loader, images: &[u32], batch: usize) -> Vec<usize> {
        let k = vit.config.classes;
        self.logits(be, vit, loader, images, batch).chunks_exact(k).map(|row| (0..k).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0)).collect()
    }

    /// Head-row logits `[images.len(), classes]` of `images` under the eval transform.
    pub fn logits(&mut self, be: &mut dyn Backend, vit: &Vit, loader: &Loader, images: &[u32], batch: usize) -> Vec<f32> {
        logits(be, vit, &mut self.eval_passes, loader, images, batch)
    }
}

/// The error every rank returns once some rank's backend failed (every rank calls this at the
/// same point): its own message, or the first failed rank's, relayed. Relayed because the
/// launcher may stop the job as soon as one rank exits, before a failed rank has printed anything.
fn device_failure(failure: Option<String>, comm: &dyn Comm) -> TrainError {
    let mut failed = vec![0.0f32; comm.world()];
    failed[comm.rank()] = failure.is_some() as u8 as f32;
    let first = comm.all_reduce(&mut failed, Reduce::Sum).ok().and_then(|_| failed.iter().position(|&f| f > 0.0));
    // The first failed rank broadcasts its message; every rank takes part.
    let relayed = first.map(|r| {
        let mut bytes = if r == comm.rank() { failure.clone().unwrap_or_default().into_bytes() } else { Vec::new() };
        (r, comm.broadcast(&mut bytes, r).map(|_| bytes))
    });
    let message = match (failure, relayed) {
        (Some(own), _) => own,
        (None, Some((r, Ok(bytes)))) => format!("rank {r}: {}", String::from_utf8_lossy(&bytes)),
        (None, Some((r, Err(_)))) => format!("rank {r}'s device failed (its error names the cause)"),
        (None, None) => "another rank's device failed (its error names the cause)".into(),
    };
    TrainError::Device { rank: comm.rank(), message }
}

/// Whether any rank's backend has failed, checked with one all-reduce (before evaluation
/// results are trusted or a checkpoint is written).
pub fn check_devices(be: &dyn Backend, comm: &dyn Comm) -> Result<(), TrainError> {
    let failure = be.error();
    let mut failed = [failure.is_some() as u8 as f32];
    if comm.world() > 1 {
        comm.all_reduce(&mut failed, Reduce::Sum)?;
    }
    match failed[0] > 0.0 {
        true => Err(device_failure(failure, comm)),
        false => Ok(()),
    }
}

/// Training FLOPs of one step of `counts` (2 per multiply-add, a backward twice a forward), with
/// a teacher's forward on every labelled image when distilling.
fn step_flops(flops: &Flops, counts: MixCounts, distilling: bool) -> f64 {
    let teacher = if distilling { flops.classify_forward * counts.labelled as f64 } else { 0.0 };
    let per_image = flops.train(flops.mae_forward) * counts.unlabelled as f64 + flops.train(flops.classify_forward) * (counts.labelled + counts.buffer) as f64;
    per_image + teacher
}

/// Per-term encoder gradient norms over a [`GradStash`]: after each source's micro-batches the
/// gradient holds that term alone; its encoder part's norm is taken and the gradient is set
/// aside, and at the end the sum of every term becomes the gradient again. Without a stash
/// (`term_norms` off) it does nothing.
struct TermNorms {
    last: Option<Source>,
    norms: [f32; 3],
    stash: Option<GradStash>,
}

impl TermNorms {
    fn close(&mut self, be: &mut dyn Backend, vit: &Vit) {
        let (Some(source), Some(stash)) = (self.last.take(), self.stash.as_mut()) else { return };
        self.norms[source as usize] = vit.encoder_grad_norm(be);
        stash.set_aside(be, vit);
    }

    /// Restores the whole gradient; returns the norms (NaN for terms not measured) and the stash.
    fn finish(self, be: &mut dyn Backend, vit: &Vit) -> ([f32; 3], Option<GradStash>) {
        let mut stash = self.stash;
        if let Some(s) = stash.as_mut() {
            s.restore(be, vit);
        }
        (self.norms, stash)
    }
}

/// The images of one optimizer step, per source.
#[derive(Clone, Debug, PartialEq)]
pub struct Drawn {
    pub unlabelled: Vec<u32>,
    pub labelled: Vec<u32>,
    pub buffer: Vec<u32>,
}

/// Draws optimizer step `iteration`'s images from `src`: uniformly with replacement from the
/// current unlabelled and labelled images, balanced from the buffer; the same on every rank.
pub fn draw(run_seed: u64, src: &Pools, counts: MixCounts, iteration: u64) -> Drawn {
    let pick = |source: u64, from: &[u32], n: usize| -> Vec<u32> {
        use rand::{RngExt, SeedableRng};
        if n == 0 || from.is_empty() {
            return Vec::new();
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(batch_seed(run_seed, src.step as u64, iteration, 100 + source));
        (0..n).map(|_| from[rng.random_range(0..from.len())]).collect()
    };
    let buffer = match (counts.buffer, src.buffer_past_only) {
        (0, _) => Vec::new(),
        (n, false) => src.buffer.sample(n, iteration),
        (n, true) => src.buffer.sample_before(n, iteration, src.step),
    };
    Drawn { unlabelled: pick(0, src.current, counts.unlabelled), labelled: pick(1, src.labelled, counts.labelled), buffer }
}

/// One value per item of `0..n`, computed by `f` on this rank's part only (it gets the part's
/// range and returns one value per item) and gathered on every rank: each rank writes its part
/// into a vector of zeros, and the all-reduced sum is the whole.
pub fn gather_parts(comm: &dyn Comm, n: usize, f: impl FnOnce(std::ops::Range<usize>) -> Vec<f32>) -> Result<Vec<f32>, CommError> {
    let part = rank_range(n, comm.rank(), comm.world());
    let mut all = vec![0.0; n];
    let values = f(part.clone());
    assert_eq!(values.len(), part.len(), "one value per item of the part");
    all[part].copy_from_slice(&values);
    comm.all_reduce(&mut all, Reduce::Sum)?;
    Ok(all)
}
