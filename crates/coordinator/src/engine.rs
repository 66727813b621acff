//! The training-step engine that every strategy shares: one optimizer step draws an effective
//! batch from up to three sources, runs it in micro-batches (MAE on unlabelled current data,
//! masked cross-entropy on labelled current data, cross-entropy on the buffer), accumulates the
//! gradients of `w_mae · L_mae + L_cur + L_buf` (each a mean over its own sub-batch), and updates.
//! A round of CKCA or continuous training adds its [`Regularizers`]: distillation on every
//! labelled micro-batch, and an L2 pull once per step.

use crate::budget::{micro_batches, MixCounts};
use crate::distill::Distiller;
use crate::levers::L2Anchor;
use crate::mixing::{mix, MixSettings};
use crate::optimizer::Optimizer;
use crate::targets::{soft_targets, ClassMap};
use rekindle_data::{batch_seed, rank_range, Augment, Batch, BatchRequest, Loader, ReplayBuffer};
use rekindle_dist::{Comm, CommError, Reduce};
use rekindle_model::{ClassifyPass, MaePass, MaskIds, Part, Vit};
use rekindle_tensor::{Backend, Tensor};
use std::collections::HashMap;

/// Where one optimizer step draws its images from, at time step `step`.
pub struct Sources<'a> {
    pub step: u32,
    /// The images the MAE term reconstructs (`strategy::mae_images`).
    pub current: &'a [u32],
    /// The labelled images revealed at this step.
    pub labelled: &'a [u32],
    pub buffer: &'a ReplayBuffer,
    /// Draw buffer images from past steps only (ER batchmix).
    pub buffer_past_only: bool,
    /// Rows of the softmax for the current-data loss (class-incremental: the step's classes).
    pub current_mask: &'a [f32],
    /// Rows over which label smoothing spreads for the current-data loss.
    pub current_spread: &'a [f32],
    /// Rows of the softmax for the buffer loss (every class seen).
    pub seen_mask: &'a [f32],
}

/// The extra terms of a round, when its strategy has them.
#[derive(Default)]
pub struct Regularizers {
    /// CKCA: FeatReg and AdaKD against a frozen teacher.
    pub distill: Option<Distiller>,
    /// Continuous training's `λ‖θ − θ_ref‖²`.
    pub anchor: Option<L2Anchor>,
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Unlabelled,
    Labelled,
    Buffer,
}

pub struct Engine {
    pub micro_batch: usize,
    pub mae_weight: f32,
    pub label_smoothing: f32,
    pub augment: bool,
    /// Mixup/CutMix of labelled micro-batches, when `augment` is on.
    pub mixing: MixSettings,
    pub seed: u64,
    /// Measure each loss term's encoder gradient norm in the next steps (costs a copy of the
    /// gradients per term).
    pub term_norms: bool,
    mae_passes: HashMap<usize, MaePass>,
    classify_passes: HashMap<usize, ClassifyPass>,
    targets: Vec<f32>,
    /// Host copy of the gradients (and loss sums) for the all-reduce across ranks.
    reduced: Vec<f32>,
    /// Device sums of the step's MAE, current and buffer losses, read once at the step's end.
    device_sums: Option<Tensor>,
    /// Where [`TermNorms`] keeps the gradient of the terms measured so far.
    grad_stash: Option<Tensor>,
}

/// What a step sums over the ranks besides the gradients: the MAE, current, buffer, FeatReg and
/// AdaKD losses, and the stop flag.
const SUMS: usize = 6;
const STOP: usize = 5;

impl Engine {
    pub fn new(micro_batch: usize, mae_weight: f32, label_smoothing: f32, augment: bool, mixing: MixSettings, seed: u64) -> Engine {
        Engine {
            micro_batch,
            mae_weight,
            label_smoothing,
            augment,
            mixing,
            seed,
            term_norms: false,
            mae_passes: HashMap::new(),
            classify_passes: HashMap::new(),
            targets: Vec::new(),
            reduced: Vec::new(),
            device_sums: None,
            grad_stash: None,
        }
    }

    /// Keeps the cached classification passes in step with a grown head.
    pub fn head_grew(&mut self, be: &mut dyn Backend, classes: usize) {
        self.classify_passes.values_mut().for_each(|p| p.set_classes(be, classes));
    }

    /// One optimizer step; `iteration` is global (it seeds the draws, masks and augmentation).
    ///
    /// With several ranks, every rank draws the same lists and trains on its own contiguous part
    /// of each ([`rank_range`]). Each micro-batch's loss is weighted by its share of the *whole*
    /// list, so one all-reduce (sum) of the gradients, with the loss sums packed behind them,
    /// gives every rank exactly the gradient of the whole effective batch. Crops, masks and
    /// mixing are seeded by an image's position in its list, not by the micro-batch or rank that
    /// holds it, so the step does not depend on the world size or the micro-batch size (except
    /// mixup/CutMix pairs, which stay within a micro-batch).
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        be: &mut dyn Backend,
        vit: &Vit,
        map: &ClassMap,
        loader: &Loader,
        optimizer: &mut Optimizer,
        src: &Sources,
        counts: MixCounts,
        iteration: u64,
        lr: f64,
        extra: &mut Regularizers,
        comm: &dyn Comm,
    ) -> Result<StepLosses, CommError> {
        let run_seed = self.seed;
        let seed = |source: u64| batch_seed(run_seed, src.step as u64, iteration, source);
        let Drawn { unlabelled, labelled, buffer } = draw(run_seed, src, counts, iteration);
        // Queue every micro-batch of this rank's part, so the loader works while the model computes.
        let mut plan = Vec::new();
        for (source, images) in [(Source::Unlabelled, &unlabelled), (Source::Labelled, &labelled), (Source::Buffer, &buffer)] {
            let part = rank_range(images.len(), comm.rank(), comm.world());
            for range in micro_batches(part.len(), self.micro_batch) {
                let range = part.start + range.start..part.start + range.end;
                let augment = match (self.augment, source) {
                    (false, _) => None,
                    (true, Source::Unlabelled) => Some(Augment::UNLABELLED),
                    (true, _) => Some(Augment::LABELLED),
                };
                loader.submit(BatchRequest { images: images[range.clone()].to_vec(), augment, seed: seed(source as u64), first: range.start });
                plan.push((source, range.start, range.len(), images.len()));
            }
        }
        vit.zero_grads(be);
        // Loss sums: MAE, current, buffer (added on the device by each micro-batch), FeatReg,
        // AdaKD (computed on the host).
        let mut sums = [0.0f64; SUMS];
        let device_sums = *self.device_sums.get_or_insert_with(|| be.alloc(3));
        be.fill(device_sums, 0.0);
        let stash = if self.term_norms { Some(self.grad_stash(be, vit)) } else { None };
        let mut terms = TermNorms { last: None, norms: [f32::NAN; 3], stash, stashed: false };
        for (source, first, m, n) in plan {
            if self.term_norms && terms.last != Some(source) {
                terms.close(be, vit);
                terms.last = Some(source);
            }
            let mut batch = loader.next();
            let mix_seed = seed(2000 + source as u64) ^ first as u64;
            let share = m as f32 / n as f32;
            let loss = device_sums.slice(source as usize, 1);
            match source {
                Source::Unlabelled => self.mae(be, vit, &batch, self.mae_weight * share, seed(1000), first, (loss, share)),
                Source::Labelled => {
                    let distilled = self.classify(be, vit, map, &mut batch, share, src.current_mask, src.current_spread, mix_seed, extra.distill.as_mut(), loss);
                    if let Some((feat, kd)) = distilled {
                        sums[3] += (feat * share) as f64;
                        sums[4] += (kd * share) as f64;
                    }
                }
                Source::Buffer => {
                    self.classify(be, vit, map, &mut batch, share, src.seen_mask, src.seen_mask, mix_seed, None, loss);
                }
            }
            loader.recycle(batch);
        }
        terms.close(be, vit);
        let encoder_norms = terms.finish(be, vit);
        for (sum, device) in sums.iter_mut().zip(be.download_vec(device_sums)) {
            *sum = device as f64;
        }
        sums[STOP] = crate::interrupt::pending() as u8 as f64;
        if comm.world() > 1 {
            self.reduce(be, vit, &mut sums, comm)?;
        }
        let l2 = extra.anchor.as_ref().map_or(f32::NAN, |a| a.apply(be, vit));
        let grad_norm = optimizer.update(be, vit, lr);
        let mean = |i: usize, present: bool| if present { sums[i] as f32 } else { f32::NAN };
        let distilling = extra.distill.is_some() && counts.labelled > 0;
        let (mae, current, buf) = (mean(0, counts.unlabelled > 0), mean(1, counts.labelled > 0), mean(2, counts.buffer > 0));
        let (feat, kd) = (mean(3, distilling), mean(4, distilling));
        let (wf, wk) = extra.distill.as_ref().map_or((0.0, 0.0), |d| (d.settings.feat_weight, d.settings.kd_weight));
        let total = [self.mae_weight * mae, current, buf, wf * feat, wk * kd, l2].iter().filter(|v| !v.is_nan()).sum();
        Ok(StepLosses { mae, current, buffer: buf, feat, kd, l2, total, grad_norm, encoder_norms, stop: sums[STOP] > 0.0 })
    }

    /// The gradient stash of [`TermNorms`], allocated once and again only when the head grows.
    fn grad_stash(&mut self, be: &mut dyn Backend, vit: &Vit) -> Tensor {
        match self.grad_stash {
            Some(t) if t.len == vit.table.total => t,
            old => {
                if let Some(t) = old {
                    be.free(t);
                }
                *self.grad_stash.insert(be.alloc(vit.table.total))
            }
        }
    }

    /// Sums the gradients and the loss sums over the ranks: in place on the device where the
    /// communicator can (NCCL, on the backend's stream), else in one all-reduce of a host copy
    /// with the loss sums packed behind the gradients.
    fn reduce(&mut self, be: &mut dyn Backend, vit: &Vit, sums: &mut [f64; SUMS], comm: &dyn Comm) -> Result<(), CommError> {
        let n = vit.table.total;
        if let Some(address) = be.device_address(vit.grads) {
            if comm.all_reduce_device(address, n, Reduce::Sum)? {
                let mut losses = sums.map(|s| s as f32);
                comm.all_reduce(&mut losses, Reduce::Sum)?;
                *sums = losses.map(|s| s as f64);
                return Ok(());
            }
        }
        self.reduced.resize(n + SUMS, 0.0);
        be.download(vit.grads, &mut self.reduced[..n]);
        self.reduced[n..].iter_mut().zip(sums.iter()).for_each(|(r, &s)| *r = s as f32);
        comm.all_reduce(&mut self.reduced, Reduce::Sum)?;
        be.upload(vit.grads, &self.reduced[..n]);
        sums.iter_mut().zip(&self.reduced[n..]).for_each(|(s, &r)| *s = r as f64);
        Ok(())
    }

    /// MAE on one micro-batch; `loss.1` times its loss is added into the device scalar `loss.0`.
    #[allow(clippy::too_many_arguments)]
    fn mae(&mut self, be: &mut dyn Backend, vit: &Vit, batch: &Batch, weight: f32, mask_seed: u64, first: usize, loss: (Tensor, f32)) {
        let n = batch.len();
        let c = &vit.config;
        let pass = self.mae_passes.entry(n).or_insert_with(|| MaePass::new(be, vit, n));
        be.upload(pass.images(), &batch.pixels);
        pass.set_mask(be, &MaskIds::random(mask_seed, first, n, c.patches(), c.kept_patches()));
        pass.forward(be, vit);
        pass.backward_into(be, vit, weight, loss.0, loss.1);
    }

    /// Cross-entropy on one micro-batch, `weight` times its mean loss added into the device
    /// scalar `loss`; on current labelled data of a CKCA round also the distillation terms,
    /// returned as `(FeatReg, AdaKD)`.
    #[allow(clippy::too_many_arguments)]
    fn classify(
        &mut self,
        be: &mut dyn Backend,
        vit: &Vit,
        map: &ClassMap,
        batch: &mut Batch,
        weight: f32,
        mask: &[f32],
        spread: &[f32],
        mix_seed: u64,
        distill: Option<&mut Distiller>,
        loss: Tensor,
    ) -> Option<(f32, f32)> {
        let n = batch.len();
        soft_targets(&batch.labels, map, self.label_smoothing, spread, &mut self.targets);
        if self.augment {
            use rand::SeedableRng;
            mix(&mut batch.pixels, &mut self.targets, n, vit.config.image_size, &self.mixing, &mut rand_chacha::ChaCha8Rng::seed_from_u64(mix_seed));
        }
        let pass = self.classify_passes.entry(n).or_insert_with(|| ClassifyPass::new(be, vit, n));
        be.upload(pass.images(), &batch.pixels);
        be.upload(pass.targets, &self.targets);
        be.upload(pass.class_mask, mask);
        pass.forward(be, vit);
        let Some(distiller) = distill else {
            pass.backward_into(be, vit, weight, None, loss, weight);
            return None;
        };
        // Under mixup a sample's weight follows its own label.
        let rows: Vec<usize> = batch.labels.iter().map(|&c| map.row(c)).collect();
        let (terms, grads) = distiller.run(be, pass, vit, &rows, weight);
        pass.backward_into(be, vit, weight, Some(grads), loss, weight);
        Some((terms.feat, terms.kd))
    }

    /// The head row each of `images` predicts, under the eval transform.
    pub fn predict(&mut self, be: &mut dyn Backend, vit: &Vit, loader: &Loader, images: &[u32], batch: usize) -> Vec<usize> {
        let k = vit.config.classes;
        self.logits(be, vit, loader, images, batch).chunks_exact(k).map(|row| (0..k).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0)).collect()
    }

    /// Head-row logits `[images.len(), classes]` of `images` under the eval transform.
    pub fn logits(&mut self, be: &mut dyn Backend, vit: &Vit, loader: &Loader, images: &[u32], batch: usize) -> Vec<f32> {
        logits(be, vit, &mut self.classify_passes, loader, images, batch)
    }
}

/// Per-term encoder gradient norms: after each source's micro-batches the gradient holds that
/// term alone; its encoder part's norm is taken, the gradient is added into the stash and zeroed,
/// and at the end the stash (the sum of every term) becomes the gradient again. Without a stash
/// (`term_norms` off) it does nothing.
struct TermNorms {
    last: Option<Source>,
    norms: [f32; 3],
    stash: Option<Tensor>,
    /// The stash holds the terms closed so far.
    stashed: bool,
}

impl TermNorms {
    fn close(&mut self, be: &mut dyn Backend, vit: &Vit) {
        let (Some(source), Some(stash)) = (self.last.take(), self.stash) else { return };
        // The encoder's tensors come first in the parameter table.
        let encoder = vit.grads.slice(0, vit.table.count(Part::Encoder));
        self.norms[source as usize] = be.sum_squares(encoder).sqrt();
        if self.stashed {
            be.axpy(stash, 1.0, vit.grads);
        } else {
            be.copy(stash, vit.grads);
            self.stashed = true;
        }
        be.fill(vit.grads, 0.0);
    }

    /// Restores the whole gradient and returns the norms (NaN for terms not measured).
    fn finish(self, be: &mut dyn Backend, vit: &Vit) -> [f32; 3] {
        if let (Some(stash), true) = (self.stash, self.stashed) {
            be.copy(vit.grads, stash);
        }
        self.norms
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
pub fn draw(run_seed: u64, src: &Sources, counts: MixCounts, iteration: u64) -> Drawn {
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

/// Head-row logits `[images.len(), classes]` of `images` under the eval transform, in batches of
/// `batch`; `passes` caches the activations per batch size.
pub fn logits(be: &mut dyn Backend, vit: &Vit, passes: &mut HashMap<usize, ClassifyPass>, loader: &Loader, images: &[u32], batch: usize) -> Vec<f32> {
    let k = vit.config.classes;
    for range in micro_batches(images.len(), batch) {
        loader.submit(BatchRequest { images: images[range].to_vec(), augment: None, seed: 0, first: 0 });
    }
    let mut out = vec![0.0; images.len() * k];
    for range in micro_batches(images.len(), batch) {
        let b = loader.next();
        let n = range.len();
        let pass = passes.entry(n).or_insert_with(|| ClassifyPass::new(be, vit, n));
        be.upload(pass.images(), &b.pixels);
        pass.forward(be, vit);
        be.download(pass.logits, &mut out[range.start * k..range.end * k]);
        loader.recycle(b);
    }
    out
}
