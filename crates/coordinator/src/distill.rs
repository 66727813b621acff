//! CKCA's terms against the frozen previous checkpoint (METHODS.md §2):
//! `λ_f·FeatReg + λ_kd·AdaKD`, with
//! - FeatReg `mean_d ‖h_s(x) − h_T(x)‖²` on the pooled encoder features, and
//! - AdaKD `w(x)·τ²·KL(softmax(z_T/τ) ‖ softmax(z_s/τ))`, `w` never differentiated.
//!
//! Both need only `[n, classes]` logits and `[n, dim]` features per micro-batch, so they are
//! computed on the host from downloaded values and their gradients are uploaded and added inside
//! the student's backward pass. The teacher is a second `Vit` that is never updated.
//!
//! When the student equals the teacher (the first iteration of a round) `h_s = h_T` and
//! `z_s = z_T` bit for bit, so both terms and both gradients are exactly zero.

use crate::config::{CkcaSection, KdWeighting};
use rekindle_model::{ClassifyPass, ModelError, Vit};
use rekindle_tensor::{Backend, Tensor};
use std::collections::HashMap;

/// The two terms of one micro-batch (means over its samples, before `λ`), and their gradients.
#[derive(Clone, Debug, PartialEq)]
pub struct Terms {
    pub feat: f32,
    pub kd: f32,
    /// `∂/∂z_s` of `scale·(λ_f·FeatReg + λ_kd·AdaKD)`, `[n, classes of the student]`.
    pub dlogits: Vec<f32>,
    /// `∂/∂h_s` of the same, `[n, dim]`.
    pub dfeatures: Vec<f32>,
}

/// Logits and pooled features of one model on one micro-batch.
pub struct Outputs<'a> {
    pub logits: &'a [f32],
    /// Head rows per sample in `logits`.
    pub classes: usize,
    pub features: &'a [f32],
}

fn softmax(z: &[f32], temperature: f32) -> Vec<f64> {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = z.iter().map(|&v| (((v - max) / temperature) as f64).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// FeatReg and AdaKD of a micro-batch whose labels (head rows) are `labels`. KD runs over the
/// teacher's head rows, a prefix of the student's; a sample whose label the teacher has no row
/// for gets `w = 0` under every weighting. Gradients are scaled by `scale / n` (the sub-batch's
/// share, as the cross-entropy's are).
pub fn terms(student: &Outputs, teacher: &Outputs, labels: &[usize], settings: &CkcaSection, scale: f32) -> Terms {
    let n = labels.len();
    let (ks, kt) = (student.classes, teacher.classes);
    let d = student.features.len() / n.max(1);
    let tau = settings.temperature;
    let per = scale / n as f32;
    let mut dfeatures = vec![0.0; n * d];
    let mut feat = 0.0f64;
    for ((g, hs), ht) in dfeatures.chunks_exact_mut(d).zip(student.features.chunks_exact(d)).zip(teacher.features.chunks_exact(d)) {
        for ((g, &s), &t) in g.iter_mut().zip(hs).zip(ht) {
            feat += ((s - t) as f64).powi(2) / d as f64;
            *g = settings.feat_weight * per * 2.0 * (s - t) / d as f32;
        }
    }
    fn row<'a>(o: &Outputs<'a>, i: usize, kt: usize) -> &'a [f32] {
        &o.logits[i * o.classes..i * o.classes + kt]
    }
    // The plain (τ = 1) probabilities of the label, for the weights.
    let label_prob = |o: &Outputs, i: usize| if labels[i] < kt { softmax(row(o, i, kt), 1.0)[labels[i]] } else { 0.0 };
    let weights: Vec<f64> = match settings.kd_weighting {
        KdWeighting::TeacherProb => (0..n).map(|i| label_prob(teacher, i)).collect(),
        KdWeighting::TeacherCorrect => (0..n)
            .map(|i| {
                let z = row(teacher, i, kt);
                let top = (0..kt).max_by(|&a, &b| z[a].total_cmp(&z[b]).then(b.cmp(&a))).unwrap_or(0);
                (labels[i] < kt && top == labels[i]) as u8 as f64
            })
            .collect(),
        KdWeighting::Batch => {
            let known: Vec<usize> = (0..n).filter(|&i| labels[i] < kt).collect();
            let ce = |o: &Outputs| known.iter().map(|&i| -label_prob(o, i).max(1e-30).ln()).sum::<f64>();
            let (t, s) = (ce(teacher), ce(student));
            let w = if t + s > 0.0 { t / (t + s) } else { 0.5 };
            (0..n).map(|i| if labels[i] < kt { w } else { 0.0 }).collect()
        }
    };
    let mut dlogits = vec![0.0; n * ks];
    let mut kd = 0.0f64;
    for i in 0..n {
        let (pt, ps) = (softmax(row(teacher, i, kt), tau), softmax(row(student, i, kt), tau));
        let kl: f64 = pt.iter().zip(&ps).map(|(&t, &s)| if t > 0.0 { t * (t.ln() - s.max(1e-300).ln()) } else { 0.0 }).sum();
        kd += weights[i] * (tau * tau) as f64 * kl;
        // ∂/∂z_s of τ²·KL(p_T ‖ softmax(z_s/τ)) is τ·(p_s − p_T).
        for c in 0..kt {
            dlogits[i * ks + c] = (settings.kd_weight as f64 * per as f64 * weights[i] * tau as f64 * (ps[c] - pt[c])) as f32;
        }
    }
    Terms { feat: (feat / n as f64) as f32, kd: (kd / n as f64) as f32, dlogits, dfeatures }
}

/// The frozen teacher and the device buffers for the extra gradients.
pub struct Distiller {
    pub settings: CkcaSection,
    teacher: Vit,
    /// Head rows the old model had: KD runs over these (a prefix of the student's).
    teacher_classes: usize,
    passes: HashMap<usize, ClassifyPass>,
    /// Extra `(dlogits, dfeatures)` buffers per (micro-batch, student classes).
    grads: HashMap<(usize, usize), (Tensor, Tensor)>,
}

impl Distiller {
    /// A frozen copy of `vit` as it is now, which knew its first `teacher_classes` head rows.
    pub fn new(be: &mut dyn Backend, vit: &Vit, teacher_classes: usize, settings: &CkcaSection) -> Result<Distiller, ModelError> {
        let teacher = Vit::new(be, &vit.config, 0)?;
        be.copy(teacher.params, vit.params);
        Ok(Distiller { settings: settings.clone(), teacher, teacher_classes, passes: HashMap::new(), grads: HashMap::new() })
    }

    /// Makes the teacher a copy of `vit` as it is now (a new round), growing its head to match.
    pub fn sync(&mut self, be: &mut dyn Backend, vit: &Vit, teacher_classes: usize) -> Result<(), ModelError> {
        self.teacher_classes = teacher_classes;
        if self.teacher.config.classes != vit.config.classes {
            self.teacher.grow_head(be, vit.config.classes, 0)?;
            let classes = vit.config.classes;
            self.passes.values_mut().for_each(|p| p.set_classes(be, classes));
        }
        be.copy(self.teacher.params, vit.params);
        Ok(())
    }

    /// Runs the teacher on the images of `student`'s last forward, computes the terms for
    /// `labels` over the teacher's head rows, and uploads their gradients. Returns the terms and
    /// the `(dlogits, dfeatures)` tensors for `ClassifyPass::backward_with`.
    pub fn run(&mut self, be: &mut dyn Backend, student: &ClassifyPass, vit: &Vit, labels: &[usize], scale: f32) -> (Terms, (Tensor, Tensor)) {
        let n = labels.len();
        let (k, d, teacher_classes) = (vit.config.classes, vit.config.dim, self.teacher_classes);
        let teacher = &self.teacher;
        let pass = self.passes.entry(n).or_insert_with(|| ClassifyPass::new(be, teacher, n));
        be.copy(pass.images(), student.images());
        pass.forward(be, teacher);
        let (zs, hs, zt, ht) = (be.download_vec(student.logits), be.download_vec(student.pooled), be.download_vec(pass.logits), be.download_vec(pass.pooled));
        // The teacher's head matches the student's; KD uses the rows the old model had.
        let zt: Vec<f32> = zt.chunks_exact(k).flat_map(|r| r[..teacher_classes].iter().copied()).collect();
        let terms = terms(
            &Outputs { logits: &zs, classes: k, features: &hs },
            &Outputs { logits: &zt, classes: teacher_classes, features: &ht },
            labels,
            &self.settings,
            scale,
        );
        let &mut (gl, gf) = self.grads.entry((n, k)).or_insert_with(|| (be.alloc(n * k), be.alloc(n * d)));
        be.upload(gl, &terms.dlogits);
        be.upload(gf, &terms.dfeatures);
        (terms, (gl, gf))
    }
}
