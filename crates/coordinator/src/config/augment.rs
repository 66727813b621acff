//! `augment:`: crops and flips, label smoothing, mixup/CutMix.

use super::check::fraction;
use super::error::{invalid, ConfigError};
use crate::mixing::MixSettings;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentSection {
    /// Random resized crops and flips; false is the deterministic path.
    pub enabled: bool,
    /// Label smoothing of the classification targets, spread over the classes in the softmax.
    pub label_smoothing: f32,
    /// Mixup / CutMix of labelled micro-batches (applied only when `enabled`).
    pub mixing: MixSettings,
    /// Label smoothing of the masked current-data loss (class-incremental).
    pub current_smoothing: CurrentSmoothing,
}

/// Over which classes label smoothing spreads for the class-incremental current-data loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CurrentSmoothing {
    /// Over the current step's classes, so the targets over the softmax's classes sum to 1.
    Current,
    /// Over every class seen, then sliced to the current ones without renormalising (the
    /// DietCL reference: each row sums to `1 − ε + ε·|current| / |seen|`).
    SeenSliced,
}

impl Default for AugmentSection {
    fn default() -> AugmentSection {
        AugmentSection { enabled: true, label_smoothing: 0.1, mixing: MixSettings::default(), current_smoothing: CurrentSmoothing::Current }
    }
}

impl AugmentSection {
    pub fn check(&self) -> Result<(), ConfigError> {
        let m = &self.mixing;
        if !(m.mixup_alpha >= 0.0 && m.cutmix_alpha >= 0.0 && (0.0..=1.0).contains(&m.switch_prob) && (0.0..=1.0).contains(&m.prob)) {
            return Err(invalid("augment.mixing", "alphas must be ≥ 0, probabilities in [0, 1]"));
        }
        fraction("augment.label_smoothing", self.label_smoothing as f64)
    }
}
