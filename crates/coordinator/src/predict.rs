//! Logits under the eval transform, for evaluation, old-data scoring and `rekindle eval`.

use crate::budget::micro_batches;
use rekindle_data::{BatchRequest, Loader};
use rekindle_model::{ClassifyPass, Vit};
use rekindle_tensor::Backend;

/// The activations of prediction: one pass for full batches and one for the last, shorter batch.
/// Each is replaced (the old one freed) when a call needs another size: the short batch's size
/// changes with the number of images (each round scores a different number of old samples), so
/// a pass per size would keep growing, while a fixed test set reuses both passes every time.
#[derive(Default)]
pub struct EvalPasses {
    full: Option<ClassifyPass>,
    short: Option<ClassifyPass>,
}

impl EvalPasses {
    /// Keeps the passes in step with a grown head.
    pub fn set_classes(&mut self, be: &mut dyn Backend, classes: usize) {
        for pass in [&mut self.full, &mut self.short].into_iter().flatten() {
            pass.set_classes(be, classes);
        }
    }

    /// The pass for `n` images: the full one when `n == batch`, else the short one.
    fn pass(&mut self, be: &mut dyn Backend, vit: &Vit, n: usize, batch: usize) -> &mut ClassifyPass {
        let slot = if n == batch { &mut self.full } else { &mut self.short };
        if let Some(old) = slot.take_if(|p| p.samples() != n) {
            old.free(be);
        }
        slot.get_or_insert_with(|| ClassifyPass::new(be, vit, n))
    }
}

/// Head-row logits `[images.len(), classes]` of `images` under the eval transform, in batches of
/// `batch`.
pub fn logits(be: &mut dyn Backend, vit: &Vit, passes: &mut EvalPasses, loader: &Loader, images: &[u32], batch: usize) -> Vec<f32> {
    let k = vit.config.classes;
    for range in micro_batches(images.len(), batch) {
        loader.submit(BatchRequest { images: images[range].to_vec(), augment: None, seed: 0, first: 0 });
    }
    let mut out = vec![0.0; images.len() * k];
    for range in micro_batches(images.len(), batch) {
        let b = loader.next();
        let pass = passes.pass(be, vit, range.len(), batch);
        pass.set_images(be, &b.pixels);
        pass.forward(be, vit);
        pass.read_logits(be, &mut out[range.start * k..range.end * k]);
        loader.recycle(b);
    }
    out
}
