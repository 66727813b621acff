//! MAE reconstruction: encoder on the kept patches, decoder over all patches, and the
//! per-patch-normalised MSE on the removed ones.

use crate::decoder::Decoder;
use crate::encoder::Encoder;
use crate::{MaskIds, Vit};
use rekindle_tensor::{Backend, PatchOrder, PatchShape, Tensor};

pub struct MaePass {
    pub encoder: Encoder,
    pub decoder: Decoder,
    patch_shape: PatchShape,
    /// Reconstruction targets: the input's patches in (row, col, channel) order.
    target: Tensor,
    mask: Tensor,
    loss: Tensor,
}

impl MaePass {
    pub fn new(be: &mut dyn Backend, vit: &Vit, samples: usize) -> MaePass {
        let c = &vit.config;
        let kept = c.kept_patches();
        MaePass {
            encoder: Encoder::new(be, c, samples, kept),
            decoder: Decoder::new(be, c, samples, kept),
            patch_shape: c.patch_shape(samples),
            target: be.alloc(samples * c.patches() * c.patch_len()),
            mask: be.alloc(samples * c.patches()),
            loss: be.alloc(1),
        }
    }

    /// Returns every buffer of the pass.
    pub fn free(self, be: &mut dyn Backend) {
        self.encoder.free(be);
        self.decoder.free(be);
        for t in [self.target, self.mask, self.loss] {
            be.free(t);
        }
    }

    /// Input images `[samples, C, H, W]` to fill before `forward`.
    pub fn images(&self) -> Tensor {
        self.encoder.images
    }

    /// Fills the input images `[samples, C, H, W]`.
    pub fn set_images(&self, be: &mut dyn Backend, pixels: &[f32]) {
        be.upload(self.images(), pixels);
    }

    /// The predicted patches `[samples, 1 + patches, patch_len]` (row 0: CLS, not a patch).
    pub fn pred(&self) -> Tensor {
        self.decoder.pred
    }

    pub fn set_mask(&self, be: &mut dyn Backend, ids: &MaskIds) {
        assert_eq!(ids.kept + 1, self.encoder.shape.tokens, "mask keeps a different number of patches");
        self.encoder.set_kept(be, &ids.keep);
        self.decoder.set_restore(be, &ids.restore);
        be.upload(self.mask, &ids.mask);
    }

    pub fn forward(&self, be: &mut dyn Backend, vit: &Vit) {
        self.encoder.forward(be, &vit.w.encoder, vit.pos_embed);
        self.decoder.forward(be, &vit.w.decoder, self.encoder.normed(), vit.decoder_pos_embed);
    }

    /// MAE loss of the last `forward`, and its gradient (times `weight`) accumulated into the
    /// model's gradients. Returns the loss.
    pub fn backward(&self, be: &mut dyn Backend, vit: &Vit, weight: f32) -> f32 {
        self.enqueue_backward(be, vit, weight);
        be.download_vec(self.loss)[0]
    }

    /// `backward` without reading anything back: adds `loss_scale` times the loss into the
    /// device scalar `loss` (see `ClassifyPass::backward_into`).
    pub fn backward_into(&self, be: &mut dyn Backend, vit: &Vit, weight: f32, loss: Tensor, loss_scale: f32) {
        self.enqueue_backward(be, vit, weight);
        be.axpy(loss, loss_scale, self.loss);
    }

    fn enqueue_backward(&self, be: &mut dyn Backend, vit: &Vit, weight: f32) {
        let ps = self.patch_shape;
        be.patchify(self.target, self.encoder.images, ps, PatchOrder::RowColChannel);
        be.mae_loss(self.loss, self.decoder.dpred, self.decoder.pred, self.target, self.mask, ps.batch, ps.patches(), ps.patch_len(), weight);
        self.decoder.backward(be, &vit.w.decoder, &vit.g.decoder, self.encoder.normed());
        self.encoder.backward(be, &vit.w.encoder, &vit.g.encoder, self.decoder.denc);
    }
}
