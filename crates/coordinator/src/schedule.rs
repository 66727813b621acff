//! Learning rates: a half-cosine per stage from the stage's base LR down to the minimum LR, with
//! no warm-up, and DietCL's stage-2 rule.

/// One stage's schedule: `lr(i) = min + (base − min) · (1 + cos(π i / steps)) / 2`, so step 0
/// runs at `base` and the (virtual) step `steps` would run at `min`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cosine {
    pub base: f64,
    pub min: f64,
    pub steps: usize,
}

impl Cosine {
    pub fn lr(&self, i: usize) -> f64 {
        if self.steps == 0 {
            return self.base;
        }
        let progress = i.min(self.steps) as f64 / self.steps as f64;
        self.min + (self.base - self.min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// The base LR scaled by the effective batch: `lr × effective / 256` (the MAE/DietCL rule).
pub fn scaled_lr(lr: f64, effective_batch: usize) -> f64 {
    lr * effective_batch as f64 / 256.0
}

/// Stage schedules of one time step. Stage 2 runs at `stage2_scale × base`; when that falls
/// under `min`, the minimum becomes half of it, so the stage still decays.
pub fn stages(base: f64, min: f64, stage2_scale: f64, steps: (usize, usize)) -> (Cosine, Cosine) {
    let base2 = base * stage2_scale;
    let min2 = if base2 < min { base2 / 2.0 } else { min };
    (Cosine { base, min, steps: steps.0 }, Cosine { base: base2, min: min2, steps: steps.1 })
}
