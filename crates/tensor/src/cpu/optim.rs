//! Optimiser updates over the flat parameter buffer, one task per parameter tensor.

use crate::backend::{AdamW, ParamGroup, Sgd};
use super::parallel::SendPtr;
use rayon::prelude::*;

/// Σ g², with fixed chunks added in order so the result is bit-reproducible.
pub fn sum_squares(g: &[f32]) -> f32 {
    let partials: Vec<f64> = g.par_chunks(1 << 14).map(|c| c.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>()).collect();
    partials.iter().sum::<f64>() as f32
}


/// Runs `f(params, grads, states, group)` on every group in parallel, where `states` are the
/// group's slices of the optimiser state buffers (same layout as the parameters).
fn per_group<const S: usize>(
    params: &mut [f32],
    grads: &[f32],
    states: [&mut [f32]; S],
    groups: &[ParamGroup],
    f: impl Fn(&mut [f32], &[f32], [&mut [f32]; S], &ParamGroup) + Sync,
) {
    let n = params.len();
    let p = SendPtr(params.as_mut_ptr());
    let st = states.map(|s| {
        assert_eq!(s.len(), n, "optimiser state layout");
        SendPtr(s.as_mut_ptr())
    });
    groups.par_iter().for_each(|g| {
        let (p, st) = (p, st);
        assert!(g.offset + g.len <= n, "parameter group outside the buffer");
        // SAFETY: groups are disjoint tensors of the flat layout, so tasks never share elements.
        let view = |ptr: SendPtr| unsafe { std::slice::from_raw_parts_mut(ptr.0.add(g.offset), g.len) };
        f(view(p), &grads[g.offset..g.offset + g.len], st.map(view), g);
    });
}

/// Decoupled weight decay (PyTorch AdamW): `p -= lr·wd·p`, then the bias-corrected Adam step.
pub fn adamw(params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], groups: &[ParamGroup], hp: &AdamW) {
    let bc1 = 1.0 - hp.beta1.powi(hp.step as i32);
    let bc2_sqrt = (1.0 - hp.beta2.powi(hp.step as i32)).sqrt();
    per_group(params, grads, [m, v], groups, |p, g, [m, v], group| {
        let lr = hp.lr * group.lr_scale;
        let decay = if group.weight_decay { 1.0 - lr * hp.weight_decay } else { 1.0 };
        let step = lr / bc1;
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = g * hp.grad_scale;
            *m = hp.beta1 * *m + (1.0 - hp.beta1) * g;
            *v = hp.beta2 * *v + (1.0 - hp.beta2) * g * g;
            *p = *p * decay - step * *m / (v.sqrt() / bc2_sqrt + hp.eps);
        }
    });
}

/// PyTorch SGD: `g += wd·p; buf = μ·buf + g; p -= lr·(nesterov ? g + μ·buf : buf)`.
pub fn sgd(params: &mut [f32], grads: &[f32], momentum: &mut [f32], groups: &[ParamGroup], hp: &Sgd) {
    per_group(params, grads, [momentum], groups, |p, g, [buf], group| {
        let lr = hp.lr * group.lr_scale;
        let wd = if group.weight_decay { hp.weight_decay } else { 0.0 };
        for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
            let g = g * hp.grad_scale + wd * *p;
            *b = hp.momentum * *b + g;
            let d = if hp.nesterov { g + hp.momentum * *b } else { *b };
            *p -= lr * d;
        }
    });
}
