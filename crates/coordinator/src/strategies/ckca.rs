//! CKCA (Shen et al. 2024, METHODS.md §2): rounds that warm-start from the last checkpoint and
//! add FeatReg and AdaKD against a frozen copy of it, the teacher (`crate::distill`). The
//! teacher is made at the second round and re-synced to the old model at every later one.

use super::rounds::{round_pool, round_rows, round_stages};
use crate::config::TrainConfig;
use crate::distill::Distiller;
use crate::engine::Regularizers;
use crate::error::TrainError;
use crate::stage::StagePlan;
use crate::strategy::Strategy;
use crate::targets::ClassMap;
use crate::trainer::Trainer;

#[derive(Default)]
pub struct Ckca {
    teacher: Option<Distiller>,
}

impl Strategy for Ckca {
    fn stages(&self, config: &TrainConfig, _t: usize) -> Vec<StagePlan> {
        round_stages(config, config.budget.steps)
    }

    fn prepare(&mut self, trainer: &mut Trainer, t: usize, old_classes: usize) -> Result<Vec<u32>, TrainError> {
        let (new, old) = round_pool(trainer.config, trainer, t);
        if t > 0 {
            match &mut self.teacher {
                Some(teacher) => teacher.sync(trainer.be, &trainer.vit, old_classes)?,
                None => self.teacher = Some(Distiller::new(trainer.be, &trainer.vit, old_classes, &trainer.config.ckca)?),
            }
        }
        Ok(new.into_iter().chain(old).collect())
    }

    fn current_rows(&self, config: &TrainConfig, map: &ClassMap, step_classes: &[u32], seen: &[u32]) -> (Vec<f32>, Vec<f32>) {
        round_rows(config, map, step_classes, seen)
    }

    fn regularizers(&mut self) -> Regularizers<'_> {
        Regularizers { distill: self.teacher.as_mut(), anchor: None }
    }
}
