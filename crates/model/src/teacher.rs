//! A frozen copy of a model that sees the student's micro-batches (CKCA's teacher): its own
//! parameters and activations, and the buffers through which the distillation terms' gradients
//! reach the student's backward.

use crate::{ClassifyPass, ModelError, Vit};
use rekindle_tensor::{Backend, Tensor};
use std::collections::HashMap;

pub struct Teacher {
    vit: Vit,
    passes: HashMap<usize, ClassifyPass>,
    /// `∂/∂logits` and `∂/∂pooled` buffers per (samples, classes).
    grads: HashMap<(usize, usize), (Tensor, Tensor)>,
}

/// One micro-batch's outputs on the host: the student's and the teacher's logits
/// `[samples, classes]` and pooled features `[samples, dim]`.
pub struct PairOutputs {
    pub student_logits: Vec<f32>,
    pub student_features: Vec<f32>,
    pub teacher_logits: Vec<f32>,
    pub teacher_features: Vec<f32>,
}

impl Teacher {
    /// A frozen copy of `vit` as it is now.
    pub fn new(be: &mut dyn Backend, vit: &Vit) -> Result<Teacher, ModelError> {
        let teacher = Vit::new(be, &vit.config, 0)?;
        be.copy(teacher.params, vit.params);
        Ok(Teacher { vit: teacher, passes: HashMap::new(), grads: HashMap::new() })
    }

    /// Becomes a copy of `vit` again, growing its head first if `vit`'s grew.
    pub fn sync(&mut self, be: &mut dyn Backend, vit: &Vit) -> Result<(), ModelError> {
        if self.vit.config.classes != vit.config.classes {
            self.vit.grow_head(be, vit.config.classes, 0)?;
            let classes = vit.config.classes;
            self.passes.values_mut().for_each(|p| p.set_classes(be, classes));
            // Gradient buffers of the old head size are not used again.
            for (_, (logits, features)) in self.grads.drain() {
                be.free(logits);
                be.free(features);
            }
        }
        be.copy(self.vit.params, vit.params);
        Ok(())
    }

    /// Runs the teacher on the images of `student` (after the student's forward) and returns
    /// both models' outputs.
    pub fn outputs(&mut self, be: &mut dyn Backend, student: &ClassifyPass) -> PairOutputs {
        let n = student.samples();
        let teacher = &self.vit;
        let pass = self.passes.entry(n).or_insert_with(|| ClassifyPass::new(be, teacher, n));
        pass.copy_images(be, student);
        pass.forward(be, teacher);
        let (student_logits, student_features) = student.outputs(be);
        let (teacher_logits, teacher_features) = pass.outputs(be);
        PairOutputs { student_logits, student_features, teacher_logits, teacher_features }
    }

    /// Uploads the distillation terms' `∂/∂logits [samples, classes]` and `∂/∂pooled
    /// [samples, dim]`, for the student's `backward_into`.
    pub fn gradients(&mut self, be: &mut dyn Backend, samples: usize, dlogits: &[f32], dfeatures: &[f32]) -> (Tensor, Tensor) {
        let (k, d) = (dlogits.len() / samples, dfeatures.len() / samples);
        let &mut (gl, gf) = self.grads.entry((samples, k)).or_insert_with(|| (be.alloc(samples * k), be.alloc(samples * d)));
        be.upload(gl, dlogits);
        be.upload(gf, dfeatures);
        (gl, gf)
    }
}
