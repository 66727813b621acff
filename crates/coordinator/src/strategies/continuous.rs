//! Continuous training (Verwimp et al. 2025, METHODS.md §3): rounds that warm-start from the
//! last checkpoint with four levers, each a switch. At every round after the first, from the
//! old model as the previous round left it:
//! - data selection scores the old samples with the old model and drops the easiest and hardest
//!   (`crate::selection`);
//! - the init lever shrinks and perturbs the weights (`Vit::shrink_perturb`);
//! - the regularisation lever pulls towards the round's start or the old model
//!   (`rekindle_model::L2Anchor`);
//! - the shortened schedule trains `round(f · B)` steps.

use super::rounds::{round_pool, round_rows, round_stages};
use crate::config::{InitLever, L2Reference, TrainConfig};
use crate::engine::Regularizers;
use crate::error::TrainError;
use crate::progress::Progress;
use crate::selection::select_old;
use crate::stage::StagePlan;
use crate::strategy::Strategy;
use crate::targets::ClassMap;
use crate::trainer::Trainer;
use rekindle_model::L2Anchor;

#[derive(Default)]
pub struct Continuous {
    anchor: Option<L2Anchor>,
}

impl Strategy for Continuous {
    fn stages(&self, config: &TrainConfig, t: usize) -> Vec<StagePlan> {
        let steps = if t > 0 { ((config.continuous.schedule_fraction * config.budget.steps as f64).round() as usize).max(1) } else { config.budget.steps };
        round_stages(config, steps)
    }

    fn prepare(&mut self, trainer: &mut Trainer, t: usize, old_classes: usize) -> Result<Vec<u32>, TrainError> {
        if let Some(anchor) = self.anchor.take() {
            anchor.free(trainer.be);
        }
        let (new, mut old) = round_pool(trainer.config, trainer, t);
        if t == 0 {
            return Ok(new.into_iter().chain(old).collect());
        }
        let c = &trainer.config.continuous;
        if (c.drop_easy > 0.0 || c.drop_hard > 0.0) && !old.is_empty() {
            // Each old sample is scored once, by the old model, over the classes it knew.
            let known = trainer.stream.classes_seen(t - 1);
            let losses = trainer.score(&old, &known)?;
            let before = old.len();
            old = select_old(&old, &losses, c.drop_easy, c.drop_hard);
            trainer.report(Progress::Selected { step: t, kept: old.len(), old: before });
        }
        let anchored = c.l2 > 0.0;
        let old_model = (anchored && c.l2_reference == L2Reference::Old).then(|| L2Anchor::at_current(trainer.be, &trainer.vit, c.l2));
        if c.init == InitLever::ShrinkPerturb {
            trainer.vit.shrink_perturb(trainer.be, c.shrink, c.perturb, old_classes, trainer.config.seed ^ (0x5B_12E + t as u64));
        }
        if anchored {
            self.anchor = Some(old_model.unwrap_or_else(|| L2Anchor::at_current(trainer.be, &trainer.vit, c.l2)));
        }
        Ok(new.into_iter().chain(old).collect())
    }

    fn current_rows(&self, config: &TrainConfig, map: &ClassMap, step_classes: &[u32], seen: &[u32]) -> (Vec<f32>, Vec<f32>) {
        round_rows(config, map, step_classes, seen)
    }

    fn regularizers(&mut self) -> Regularizers<'_> {
        Regularizers { distill: None, anchor: self.anchor.as_ref() }
    }
}
