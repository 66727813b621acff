//! `budget:`: optimizer steps per time step, the effective and micro-batch, the stage split.

use super::check::at_least_one;
use super::error::{invalid, ConfigError};
use crate::budget::{accumulation, StageSplit};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetSection {
    /// Optimizer steps `B` per time step, each at the effective batch.
    pub steps: usize,
    pub effective_batch: usize,
    /// Images per forward/backward on one rank.
    pub micro_batch: usize,
    /// Stage 1 / stage 2 split: `{ratio: 0.8}` or `{threshold: 400}`.
    #[serde(with = "serde_yaml_ng::with::singleton_map")]
    pub stage_split: StageSplit,
    /// Also evaluate every this many optimizer steps inside a time step (0: only at its end),
    /// the grid on which `rekindle speedup` finds the first iteration reaching a target.
    pub eval_every: usize,
    /// Also write a resumable checkpoint (model and optimizer) every this many optimizer steps
    /// inside a time step (0: only at its end), so a job stopped late in a long time step loses
    /// at most this many steps; `--resume` continues it exactly.
    pub checkpoint_every: usize,
}

impl Default for BudgetSection {
    fn default() -> BudgetSection {
        BudgetSection { steps: 500, effective_batch: 1024, micro_batch: 256, stage_split: StageSplit::Ratio(0.8), eval_every: 0, checkpoint_every: 0 }
    }
}

impl BudgetSection {
    pub fn check(&self) -> Result<(), ConfigError> {
        at_least_one("budget.steps", self.steps, "optimizer step")?;
        if self.micro_batch == 0 || self.micro_batch > self.effective_batch {
            return Err(invalid("budget.micro_batch", format!("{} must be between 1 and the effective batch {}", self.micro_batch, self.effective_batch)));
        }
        if accumulation(self.effective_batch, self.micro_batch, 1).is_none() {
            return Err(invalid("budget.micro_batch", format!("{} does not divide the effective batch {}", self.micro_batch, self.effective_batch)));
        }
        match self.stage_split {
            StageSplit::Ratio(r) if !(0.0..=1.0).contains(&r) => Err(invalid("budget.stage_split", format!("ratio {r} is outside [0, 1]"))),
            _ => Ok(()),
        }
    }
}
