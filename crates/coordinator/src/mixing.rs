//! Mixup and CutMix of labelled micro-batches, timm's batch mode: one λ per micro-batch, and each
//! image is mixed with its partner in reverse batch order (image i with image n−1−i). With
//! probability `switch_prob` the batch uses CutMix (a box of area fraction 1−λ is swapped between
//! partners, and λ is corrected to the box actually cut), otherwise Mixup (a λ-blend). Targets
//! are mixed with the same λ, so soft targets (label smoothing) mix as well.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MixSettings {
    /// Beta(α, α) for Mixup's λ; 0 turns Mixup off.
    pub mixup_alpha: f32,
    /// Beta(α, α) for CutMix's λ; 0 turns CutMix off.
    pub cutmix_alpha: f32,
    /// Probability of CutMix rather than Mixup when both are on.
    pub switch_prob: f32,
    /// Probability that a micro-batch is mixed at all.
    pub prob: f32,
}

impl Default for MixSettings {
    fn default() -> MixSettings {
        MixSettings { mixup_alpha: 0.8, cutmix_alpha: 1.0, switch_prob: 0.5, prob: 1.0 }
    }
}

/// What one call did (for tests and logs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mixed {
    None,
    Mixup { lambda: f32 },
    /// The swapped box `[y0, y1) × [x0, x1)` and the λ it implies.
    Cutmix { lambda: f32, y0: usize, y1: usize, x0: usize, x1: usize },
}

/// Mixes `pixels` (`[n, channels, size, size]`) and `targets` (`[n, classes]`) in place.
pub fn mix(pixels: &mut [f32], targets: &mut [f32], n: usize, size: usize, m: &MixSettings, rng: &mut ChaCha8Rng) -> Mixed {
    let (mixup, cutmix) = (m.mixup_alpha > 0.0, m.cutmix_alpha > 0.0);
    if n < 2 || !(mixup || cutmix) || rng.random_range(0.0..1.0f32) >= m.prob {
        return Mixed::None;
    }
    let use_cutmix = cutmix && (!mixup || rng.random_range(0.0..1.0f32) < m.switch_prob);
    let alpha = if use_cutmix { m.cutmix_alpha } else { m.mixup_alpha };
    let lambda: f32 = Beta::new(alpha, alpha).expect("positive alpha").sample(rng);
    let per_image = pixels.len() / n;
    let channels = per_image / (size * size);
    let (lambda, mixed) = if use_cutmix {
        // A box of area fraction 1−λ centred uniformly, clipped to the image.
        let cut = (1.0 - lambda).sqrt();
        let (h, w) = ((size as f32 * cut) as usize, (size as f32 * cut) as usize);
        let (cy, cx) = (rng.random_range(0..size), rng.random_range(0..size));
        let (y0, y1) = (cy.saturating_sub(h / 2), (cy + h / 2).min(size));
        let (x0, x1) = (cx.saturating_sub(w / 2), (cx + w / 2).min(size));
        let lambda = 1.0 - ((y1 - y0) * (x1 - x0)) as f32 / (size * size) as f32;
        for i in 0..n / 2 {
            let (a, b) = pair(pixels, per_image, i, n - 1 - i);
            for c in 0..channels {
                for y in y0..y1 {
                    let row = (c * size + y) * size;
                    a[row + x0..row + x1].swap_with_slice(&mut b[row + x0..row + x1]);
                }
            }
        }
        (lambda, Mixed::Cutmix { lambda, y0, y1, x0, x1 })
    } else {
        for i in 0..n / 2 {
            let (a, b) = pair(pixels, per_image, i, n - 1 - i);
            blend(a, b, lambda);
        }
        (lambda, Mixed::Mixup { lambda })
    };
    let classes = targets.len() / n;
    for i in 0..n / 2 {
        let (a, b) = pair(targets, classes, i, n - 1 - i);
        blend(a, b, lambda);
    }
    mixed
}

/// Rows `i < j` of a `[rows, width]` buffer as two disjoint slices.
fn pair(data: &mut [f32], width: usize, i: usize, j: usize) -> (&mut [f32], &mut [f32]) {
    let (head, tail) = data.split_at_mut(j * width);
    (&mut head[i * width..(i + 1) * width], &mut tail[..width])
}

/// `a ← λa + (1−λ)b`, `b ← λb + (1−λ)a` (each image mixed with its partner).
fn blend(a: &mut [f32], b: &mut [f32], lambda: f32) {
    for (x, y) in a.iter_mut().zip(b.iter_mut()) {
        let (p, q) = (*x, *y);
        *x = lambda * p + (1.0 - lambda) * q;
        *y = lambda * q + (1.0 - lambda) * p;
    }
}
