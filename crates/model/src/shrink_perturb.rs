//! Continuous training's initialisation lever, shrink-and-perturb (Ash & Adams; METHODS.md §3).

use crate::{Part, Vit};
use rekindle_tensor::Backend;

impl Vit {
    /// `θ ← shrink·θ + perturb·θ_fresh` over every tensor, with `θ_fresh` a fresh init drawn from
    /// `seed`. Head rows of classes the old model did not have (rows ≥ `old_classes`) keep the
    /// fresh init they got when the head grew. With shrink 1 and perturb 0 this is the identity.
    pub fn shrink_perturb(&self, be: &mut dyn Backend, shrink: f32, perturb: f32, old_classes: usize, seed: u64) {
        let mut params = self.download_params(be);
        let fresh = self.fresh_params(seed);
        for e in &self.table.entries {
            // Head tensors are [classes, …] row-major, so the old classes are a prefix.
            let mixed = if e.part == Part::Head { e.len / self.config.classes * old_classes } else { e.len };
            for i in e.offset..e.offset + mixed {
                params[i] = shrink * params[i] + perturb * fresh[i];
            }
        }
        be.upload(self.params, &params);
    }
}
