//! Per-term gradient norms: after one loss term's micro-batches the gradient holds that term
//! alone; its norm is read, the gradient is added into the stash and zeroed, and once every term
//! is measured the stash (the sum of every term) becomes the gradient again.

use crate::Vit;
use rekindle_tensor::{Backend, Tensor};

pub struct GradStash {
    stash: Tensor,
    /// The stash holds the terms set aside in this step.
    holds: bool,
}

impl GradStash {
    pub fn new(be: &mut dyn Backend, vit: &Vit) -> GradStash {
        GradStash { stash: be.alloc(vit.table.total), holds: false }
    }

    /// Whether the stash still fits `vit` (the head grows).
    pub fn fits(&self, vit: &Vit) -> bool {
        self.stash.len == vit.table.total
    }

    /// Moves the gradient so far into the stash (adding it to what the stash holds) and zeroes
    /// it, so the next term's micro-batches accumulate alone.
    pub fn set_aside(&mut self, be: &mut dyn Backend, vit: &Vit) {
        if self.holds {
            be.axpy(self.stash, 1.0, vit.grads);
        } else {
            be.copy(self.stash, vit.grads);
            self.holds = true;
        }
        be.fill(vit.grads, 0.0);
    }

    /// Makes the sum of every term set aside the gradient again, and empties the stash for the
    /// next step.
    pub fn restore(&mut self, be: &mut dyn Backend, vit: &Vit) {
        if self.holds {
            be.copy(vit.grads, self.stash);
        }
        self.holds = false;
    }

    pub fn free(self, be: &mut dyn Backend) {
        be.free(self.stash);
    }
}
