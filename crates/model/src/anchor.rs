//! Continuous training's L2 lever (Verwimp et al. 2025, METHODS.md §3): the penalty
//! `λ‖θ − θ_ref‖²` with its gradient `2λ(θ − θ_ref)`, added once per optimizer step. Parameter-
//! space maths over the flat buffer, so it lives with the model.

use crate::Vit;
use rekindle_tensor::{Backend, Tensor};

/// Owns a copy of `θ_ref` and a scratch buffer for the difference, both on the backend.
pub struct L2Anchor {
    weight: f32,
    reference: Tensor,
    diff: Tensor,
}

impl L2Anchor {
    /// Anchors to `reference`, a flat parameter vector of `vit`'s layout.
    pub fn new(be: &mut dyn Backend, vit: &Vit, weight: f32, reference: &[f32]) -> L2Anchor {
        assert_eq!(reference.len(), vit.table.total, "L2 reference layout");
        let anchor = L2Anchor::alloc(be, vit, weight);
        be.upload(anchor.reference, reference);
        anchor
    }

    /// Anchors to `vit`'s parameters as they are now (copied on the backend).
    pub fn at_current(be: &mut dyn Backend, vit: &Vit, weight: f32) -> L2Anchor {
        let anchor = L2Anchor::alloc(be, vit, weight);
        be.copy(anchor.reference, vit.params);
        anchor
    }

    fn alloc(be: &mut dyn Backend, vit: &Vit, weight: f32) -> L2Anchor {
        let n = vit.table.total;
        L2Anchor { weight, reference: be.alloc(n), diff: be.alloc(n) }
    }

    /// Adds `2λ(θ − θ_ref)` to `vit`'s gradients and returns `λ‖θ − θ_ref‖²`.
    pub fn apply(&self, be: &mut dyn Backend, vit: &Vit) -> f32 {
        be.copy(self.diff, vit.params);
        be.axpy(self.diff, -1.0, self.reference);
        let squares = be.sum_squares(self.diff);
        be.axpy(vit.grads, 2.0 * self.weight, self.diff);
        self.weight * squares
    }

    pub fn free(self, be: &mut dyn Backend) {
        be.free(self.reference);
        be.free(self.diff);
    }
}
