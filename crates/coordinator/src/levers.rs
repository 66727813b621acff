//! The levers of continuous training (Verwimp et al. 2025, METHODS.md §3), each a switch:
//! shrink-and-perturb initialisation, an L2 pull towards a reference, and selection of old data
//! by the old model's loss. (The fourth lever, the shortened schedule, is a step count in
//! `strategy::rounds`.)

use rekindle_model::{Part, Vit};
use rekindle_tensor::{Backend, Tensor};

/// `θ ← shrink·θ + perturb·θ_fresh` over every tensor (Ash & Adams), with `θ_fresh` a seeded
/// fresh init. Head rows of classes the old model did not have (rows ≥ `old_classes`) keep the
/// fresh init they got when the head grew. With shrink 1 and perturb 0 this is the identity.
pub fn shrink_perturb(be: &mut dyn Backend, vit: &Vit, shrink: f32, perturb: f32, old_classes: usize, seed: u64) {
    let mut params = vit.download_params(be);
    let fresh = vit.fresh_params(seed);
    for e in &vit.table.entries {
        // Head tensors are [classes, …] row-major, so the old classes are a prefix.
        let mixed = if e.part == Part::Head { e.len / vit.config.classes * old_classes } else { e.len };
        for i in e.offset..e.offset + mixed {
            params[i] = shrink * params[i] + perturb * fresh[i];
        }
    }
    be.upload(vit.params, &params);
}

/// The penalty `λ‖θ − θ_ref‖²` with its gradient `2λ(θ − θ_ref)`, added once per optimizer
/// step. Owns a copy of `θ_ref` and a scratch buffer for the difference, both on the backend.
pub struct L2Anchor {
    weight: f32,
    reference: Tensor,
    diff: Tensor,
}

impl L2Anchor {
    /// Anchors to `reference`, a flat parameter vector of `vit`'s layout.
    pub fn new(be: &mut dyn Backend, vit: &Vit, weight: f32, reference: &[f32]) -> L2Anchor {
        assert_eq!(reference.len(), vit.table.total, "L2 reference layout");
        let (r, diff) = (be.alloc(reference.len()), be.alloc(reference.len()));
        be.upload(r, reference);
        L2Anchor { weight, reference: r, diff }
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

/// The old samples the data-selection lever keeps: with the samples ordered by the old model's
/// loss (ties by position), it drops exactly the `floor(drop_easy·n)` lowest (easiest) and
/// `floor(drop_hard·n)` highest (hardest). The kept ones stay in their original order.
pub fn select_old(old: &[u32], losses: &[f32], drop_easy: f32, drop_hard: f32) -> Vec<u32> {
    assert_eq!(old.len(), losses.len(), "one loss per old sample");
    let n = old.len();
    let easy = ((drop_easy as f64 * n as f64).floor() as usize).min(n);
    let hard = ((drop_hard as f64 * n as f64).floor() as usize).min(n - easy);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| losses[a].total_cmp(&losses[b]).then(a.cmp(&b)));
    let mut keep = vec![false; n];
    for &i in &order[easy..n - hard] {
        keep[i] = true;
    }
    old.iter().zip(keep).filter_map(|(&id, k)| k.then_some(id)).collect()
}

/// Per-sample cross-entropy `−log softmax(z)[row]` over the head rows where `mask` is 1: the
/// old model's score of each old sample.
pub fn sample_losses(logits: &[f32], rows: &[usize], mask: &[f32]) -> Vec<f32> {
    let k = mask.len();
    logits
        .chunks_exact(k)
        .zip(rows)
        .map(|(z, &y)| {
            let max = (0..k).filter(|&c| mask[c] > 0.0).map(|c| z[c]).fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = (0..k).filter(|&c| mask[c] > 0.0).map(|c| ((z[c] - max) as f64).exp()).sum();
            (sum.ln() - (z[y] - max) as f64) as f32
        })
        .collect()
}
