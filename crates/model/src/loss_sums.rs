//! Loss sums kept on the device: each micro-batch's backward adds its weighted loss into one
//! slot, and a step reads every slot with one download at its end, so the host never waits for
//! the device between micro-batches.

use rekindle_tensor::{Backend, Tensor};

pub struct LossSums {
    sums: Tensor,
}

impl LossSums {
    pub fn new(be: &mut dyn Backend, slots: usize) -> LossSums {
        LossSums { sums: be.alloc(slots) }
    }

    pub fn zero(&self, be: &mut dyn Backend) {
        be.fill(self.sums, 0.0);
    }

    /// The device scalar of slot `i`, for a pass's `backward_into`.
    pub fn slot(&self, i: usize) -> Tensor {
        self.sums.slice(i, 1)
    }

    pub fn read(&self, be: &mut dyn Backend) -> Vec<f32> {
        be.download_vec(self.sums)
    }
}
