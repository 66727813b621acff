//! CKCA's terms against the frozen previous checkpoint (METHODS.md §2):
//! `λ_f·FeatReg + λ_kd·AdaKD`, with
//! - FeatReg `mean_d ‖h_s(x) − h_T(x)‖²` on the pooled encoder features, and
//! - AdaKD `w(x)·τ²·KL(softmax(z_T/τ) ‖ softmax(z_s/τ))`, `w` never differentiated.
//!
//! Both need only `[n, classes]` logits and `[n, dim]` features per micro-batch, so they are
//! computed on the host from downloaded values and their gradients are uploaded and added inside
//! the student's backward pass. The teacher is a second `Vit` that is never updated
//! (`rekindle_model::Teacher`).
//!
//! When the student equals the teacher (the first iteration of a round) `h_s = h_T` and
//! `z_s = z_T` bit for bit, so both terms and both gradients are exactly zero.

use crate::config::{CkcaSection, KdWeighting};
use rekindle_model::{ClassifyPass, ModelError, Teacher, Vit};
use rekindle_tensor::{Backend, Tensor};

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

/// CKCA's terms against a frozen teacher (`rekindle_model::Teacher`).
pub struct Distiller {
    pub settings: CkcaSection,
    teacher: Teacher,
    /// Head rows the old model had: KD runs over these (a prefix of the student's).
    teacher_classes: usize,
}

impl Distiller {
    /// A frozen copy of `vit` as it is now, which knew its first `teacher_classes` head rows.
    pub fn new(be: &mut dyn Backend, vit: &Vit, teacher_classes: usize, settings: &CkcaSection) -> Result<Distiller, ModelError> {
        Ok(Distiller { settings: settings.clone(), teacher: Teacher::new(be, vit)?, teacher_classes })
    }

    /// Makes the teacher a copy of `vit` as it is now (a new round), growing its head to match.
    pub fn sync(&mut self, be: &mut dyn Backend, vit: &Vit, teacher_classes: usize) -> Result<(), ModelError> {
        self.teacher_classes = teacher_classes;
        self.teacher.sync(be, vit)
    }

    /// Runs the teacher on the images of `student`'s last forward, computes the terms for
    /// `labels` over the teacher's head rows, and uploads their gradients. Returns the terms and
    /// the `(dlogits, dfeatures)` tensors for `ClassifyPass::backward_into`.
    pub fn run(&mut self, be: &mut dyn Backend, student: &ClassifyPass, vit: &Vit, labels: &[usize], scale: f32) -> (Terms, (Tensor, Tensor)) {
        let (k, teacher_classes) = (vit.config.classes, self.teacher_classes);
        let out = self.teacher.outputs(be, student);
        // The teacher's head matches the student's; KD uses the rows the old model had.
        let zt: Vec<f32> = out.teacher_logits.chunks_exact(k).flat_map(|r| r[..teacher_classes].iter().copied()).collect();
        let terms = terms(
            &Outputs { logits: &out.student_logits, classes: k, features: &out.student_features },
            &Outputs { logits: &zt, classes: teacher_classes, features: &out.teacher_features },
            labels,
            &self.settings,
            scale,
        );
        let grads = self.teacher.gradients(be, labels.len(), &terms.dlogits, &terms.dfeatures);
        (terms, grads)
    }
}
