//! Learning rates: an optional linear warm-up, then a half-cosine per stage from the stage's base
//! LR down to the minimum LR, and DietCL's stage-2 rule.

/// One stage's schedule. During the first `warmup` steps the LR climbs linearly,
/// `lr(i) = base · (i + 1) / (warmup + 1)`, so no step runs at zero; after it,
/// `lr(i) = min + (base − min) · (1 + cos(π (i − warmup) / (steps − warmup))) / 2`, so the first
/// cosine step runs at `base` and the (virtual) step `steps` would run at `min`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cosine {
    pub base: f64,
    pub min: f64,
    pub steps: usize,
    pub warmup: usize,
}

impl Cosine {
    pub fn lr(&self, i: usize) -> f64 {
        if i < self.warmup {
            return self.base * (i + 1) as f64 / (self.warmup + 1) as f64;
        }
        let span = self.steps.saturating_sub(self.warmup);
        if span == 0 {
            return self.base;
        }
        let progress = (i - self.warmup).min(span) as f64 / span as f64;
        self.min + (self.base - self.min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// The base LR scaled by the effective batch: `lr × effective / 256` (the MAE/DietCL rule).
pub fn scaled_lr(lr: f64, effective_batch: usize) -> f64 {
    lr * effective_batch as f64 / 256.0
}

/// Stage schedules of one time step, each warming up over `warmup_fraction` of its steps.
/// Stage 2 runs at `stage2_scale × base`; when that falls under `min`, the minimum becomes half
/// of it, so the stage still decays.
pub fn stages(base: f64, min: f64, stage2_scale: f64, warmup_fraction: f64, steps: (usize, usize)) -> (Cosine, Cosine) {
    let base2 = base * stage2_scale;
    let min2 = if base2 < min { base2 / 2.0 } else { min };
    let warmup = |n: usize| (warmup_fraction * n as f64).round() as usize;
    (Cosine { base, min, steps: steps.0, warmup: warmup(steps.0) }, Cosine { base: base2, min: min2, steps: steps.1, warmup: warmup(steps.1) })
}
