//! The compute budget of one time step: `B` optimizer steps at the effective batch, split into
//! stage 1 (joint training) and stage 2 (buffer-only fine-tuning), and each effective batch split
//! into unlabelled current data, labelled current data and buffer (`B = B_u + B_l`, with the
//! labelled share split between current data and buffer).

use serde::{Deserialize, Serialize};

/// How `B` splits between the stages. DietCL phrases it as a ratio (0.8) or as a threshold
/// (≈ 400 of 500 steps); both are expressible. At `t = 0` stage 1 always gets all of `B`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageSplit {
    /// Stage 1 gets `floor(ratio · B)` steps.
    Ratio(f64),
    /// Stage 1 gets `min(steps, B)` steps.
    Threshold(usize),
}

impl StageSplit {
    /// (stage 1 steps, stage 2 steps) at time step `t` with budget `b`.
    pub fn stage_steps(&self, b: usize, t: usize) -> (usize, usize) {
        if t == 0 {
            return (b, 0);
        }
        let first = match *self {
            StageSplit::Ratio(r) => (r * b as f64).floor() as usize,
            StageSplit::Threshold(k) => k.min(b),
        };
        (first, b - first)
    }
}

/// Fractions of one effective batch drawn from each source; they sum to 1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// Current step's images without labels (MAE reconstruction).
    pub unlabelled: f64,
    /// Current step's labelled images (masked cross-entropy).
    pub labelled: f64,
    /// Replay buffer (cross-entropy over every class seen).
    pub buffer: f64,
}

/// Images of one effective batch from each source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MixCounts {
    pub unlabelled: usize,
    pub labelled: usize,
    pub buffer: usize,
}

impl Mix {
    /// DietCL stage 1 at `t > 0`: 40% unlabelled, 30% labelled, 30% buffer.
    pub const DIETCL: Mix = Mix { unlabelled: 0.4, labelled: 0.3, buffer: 0.3 };
    /// DietCL stage 1 at `t = 0`, when the buffer holds only the current step: 40/60/0.
    pub const DIETCL_FIRST: Mix = Mix { unlabelled: 0.4, labelled: 0.6, buffer: 0.0 };
    /// Buffer only (stage 2, GDumb, replay fine-tuning).
    pub const BUFFER: Mix = Mix { unlabelled: 0.0, labelled: 0.0, buffer: 1.0 };
    /// Current labelled data only (fine-tune).
    pub const LABELLED: Mix = Mix { unlabelled: 0.0, labelled: 1.0, buffer: 0.0 };
    /// Current unlabelled data only (MAE pre-training).
    pub const UNLABELLED: Mix = Mix { unlabelled: 1.0, labelled: 0.0, buffer: 0.0 };

    /// Counts for an effective batch of `n`: the unlabelled and labelled shares are rounded to
    /// the nearest image and the buffer takes the rest, so the counts always sum to `n`.
    pub fn counts(&self, n: usize) -> MixCounts {
        let unlabelled = (self.unlabelled * n as f64).round() as usize;
        let labelled = ((self.labelled * n as f64).round() as usize).min(n - unlabelled);
        MixCounts { unlabelled, labelled, buffer: n - unlabelled - labelled }
    }
}

/// Micro-batches per optimizer step: `effective / (micro × world)`, which must be a whole number.
pub fn accumulation(effective: usize, micro: usize, world: usize) -> Option<usize> {
    let per_step = micro * world;
    (per_step > 0 && effective.is_multiple_of(per_step) && effective >= per_step).then(|| effective / per_step)
}

/// Splits `n` images into micro-batches of at most `micro` (the last one may be smaller).
pub fn micro_batches(n: usize, micro: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..n.div_ceil(micro.max(1))).map(move |i| i * micro..((i + 1) * micro).min(n))
}
