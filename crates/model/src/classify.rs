//! Classification: encoder on the full image → final norm → mean of the patch tokens (CLS
//! excluded) → linear head, with the soft-target masked cross-entropy.

use crate::encoder::Encoder;
use crate::linear;
use crate::Vit;
use rekindle_tensor::{Backend, Tensor};

pub struct ClassifyPass {
    pub encoder: Encoder,
    classes: usize,
    /// The pooled features `[samples, dim]` the head sees (CKCA's FeatReg compares them).
    pub pooled: Tensor,
    /// Output `[samples, classes]`.
    pub logits: Tensor,
    /// Soft targets `[samples, classes]`, filled by the caller before `backward`.
    pub targets: Tensor,
    /// `[classes]`: 1 for classes inside the softmax, 0 for classes excluded (their logits get
    /// exactly zero gradient).
    pub class_mask: Tensor,
    losses: Tensor,
    /// `[1]`: the sum of `losses`, and the mean `backward_with` reads back.
    loss_total: Tensor,
    mean_loss: Tensor,
    dlogits: Tensor,
    dpooled: Tensor,
    dnormed: Tensor,
}

impl ClassifyPass {
    /// Activations for micro-batches of `samples` images.
    pub fn new(be: &mut dyn Backend, vit: &Vit, samples: usize) -> ClassifyPass {
        let c = &vit.config;
        let encoder = Encoder::new(be, c, samples, c.patches());
        let (d, rows) = (c.dim, encoder.shape.rows());
        let mut pass = ClassifyPass {
            encoder,
            classes: 0,
            pooled: be.alloc(samples * d),
            logits: be.alloc(1),
            targets: be.alloc(1),
            class_mask: be.alloc(1),
            losses: be.alloc(samples),
            loss_total: be.alloc(1),
            mean_loss: be.alloc(1),
            dlogits: be.alloc(1),
            dpooled: be.alloc(samples * d),
            dnormed: be.alloc(rows * d),
        };
        pass.set_classes(be, c.classes);
        pass
    }

    /// Re-sizes the head-sized buffers after the head grew (the encoder's stay as they are).
    /// The class mask starts with every class in the softmax.
    pub fn set_classes(&mut self, be: &mut dyn Backend, classes: usize) {
        let n = self.encoder.shape.samples;
        for t in [self.logits, self.targets, self.class_mask, self.dlogits] {
            be.free(t);
        }
        self.classes = classes;
        self.logits = be.alloc(n * classes);
        self.targets = be.alloc(n * classes);
        self.dlogits = be.alloc(n * classes);
        self.class_mask = be.alloc(classes);
        be.fill(self.class_mask, 1.0);
    }

    /// Returns every buffer of the pass (a batch size that will not come back).
    pub fn free(self, be: &mut dyn Backend) {
        self.encoder.free(be);
        for t in [self.pooled, self.logits, self.targets, self.class_mask, self.losses, self.loss_total, self.mean_loss, self.dlogits, self.dpooled, self.dnormed] {
            be.free(t);
        }
    }

    /// Images per forward.
    pub fn samples(&self) -> usize {
        self.encoder.shape.samples
    }

    /// Input images `[samples, C, H, W]` to fill before `forward`.
    pub fn images(&self) -> Tensor {
        self.encoder.images
    }

    /// Fills the inputs of a supervised step: images `[samples, C, H, W]`, soft targets
    /// `[samples, classes]` and the softmax's class mask `[classes]`.
    pub fn set_batch(&self, be: &mut dyn Backend, pixels: &[f32], targets: &[f32], class_mask: &[f32]) {
        be.upload(self.images(), pixels);
        be.upload(self.targets, targets);
        be.upload(self.class_mask, class_mask);
    }

    /// Fills the images alone (prediction, scoring).
    pub fn set_images(&self, be: &mut dyn Backend, pixels: &[f32]) {
        be.upload(self.images(), pixels);
    }

    /// Takes the images of another pass of the same size (a teacher sees the student's batch).
    pub fn copy_images(&self, be: &mut dyn Backend, from: &ClassifyPass) {
        be.copy(self.images(), from.images());
    }

    /// The last forward's logits `[samples, classes]` into `out`.
    pub fn read_logits(&self, be: &mut dyn Backend, out: &mut [f32]) {
        be.download(self.logits, out);
    }

    /// The last forward's logits `[samples, classes]` and pooled features `[samples, dim]`.
    pub fn outputs(&self, be: &mut dyn Backend) -> (Vec<f32>, Vec<f32>) {
        (be.download_vec(self.logits), be.download_vec(self.pooled))
    }

    pub fn forward(&self, be: &mut dyn Backend, vit: &Vit) {
        assert_eq!(self.classes, vit.config.classes, "the head grew: call ClassifyPass::set_classes");
        let s = self.encoder.shape;
        self.encoder.forward(be, &vit.w.encoder, vit.pos_embed);
        be.mean_pool_forward(self.pooled, self.encoder.normed(), s.samples, s.tokens, s.width, 1);
        linear::forward(be, self.logits, self.pooled, vit.w.head, s.samples, s.width, self.classes, false);
    }

    /// Cross-entropy of the last `forward` against `targets`, and its gradient (times `weight`)
    /// accumulated into the model's gradients. Returns the mean loss over the micro-batch.
    pub fn backward(&self, be: &mut dyn Backend, vit: &Vit, weight: f32) -> f32 {
        self.backward_with(be, vit, weight, None)
    }

    /// `backward`, plus the gradients of other terms on the same forward: `extra` holds their
    /// `∂/∂logits [samples, classes]` and `∂/∂pooled [samples, dim]`, already scaled.
    pub fn backward_with(&self, be: &mut dyn Backend, vit: &Vit, weight: f32, extra: Option<(Tensor, Tensor)>) -> f32 {
        be.fill(self.mean_loss, 0.0);
        self.backward_into(be, vit, weight, extra, self.mean_loss, 1.0);
        be.download_vec(self.mean_loss)[0]
    }

    /// `backward_with` without reading anything back: adds `loss_scale` times the mean loss into
    /// the device scalar `loss`. A training step reads all its losses with one download at its
    /// end, so the host never waits for the device between micro-batches and prepares the next
    /// one while the device computes.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_into(&self, be: &mut dyn Backend, vit: &Vit, weight: f32, extra: Option<(Tensor, Tensor)>, loss: Tensor, loss_scale: f32) {
        let s = self.encoder.shape;
        let (n, k, d) = (s.samples, self.classes, s.width);
        be.cross_entropy(self.losses, self.dlogits, self.logits, self.targets, self.class_mask, n, k, weight / n as f32);
        if let Some((dlogits, _)) = extra {
            be.axpy(self.dlogits, 1.0, dlogits);
        }
        linear::backward(be, Some(self.dpooled), vit.g.head, self.dlogits, self.pooled, vit.w.head, n, d, k);
        if let Some((_, dpooled)) = extra {
            be.axpy(self.dpooled, 1.0, dpooled);
        }
        be.mean_pool_backward(self.dnormed, self.dpooled, n, s.tokens, d, 1);
        self.encoder.backward(be, &vit.w.encoder, &vit.g.encoder, self.dnormed);
        be.fill(self.loss_total, 0.0);
        be.bias_backward(self.loss_total, self.losses, n, 1);
        be.axpy(loss, loss_scale / n as f32, self.loss_total);
    }
}
