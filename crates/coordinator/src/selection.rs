//! Continuous training's data-selection lever (Verwimp et al. 2025, METHODS.md §3): old data
//! chosen by the old model's loss. The parameter-space levers, shrink-and-perturb
//! (`Vit::shrink_perturb`) and the L2 pull (`rekindle_model::L2Anchor`), live with the model;
//! the shortened schedule is a step count of the `continuous` strategy.

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
