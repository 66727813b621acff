//! `continuous:`: the levers of continuous training.

use super::check::{fraction, non_negative, share};
use super::error::{invalid, ConfigError};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContinuousSection {
    pub init: InitLever,
    /// `λ` of shrink-and-perturb.
    pub shrink: f32,
    /// `p` of shrink-and-perturb.
    pub perturb: f32,
    /// `λ` of the penalty `λ‖θ − θ_ref‖²` (0: off).
    pub l2: f32,
    pub l2_reference: L2Reference,
    /// Drop this fraction of old samples with the lowest old-model loss (the easiest).
    pub drop_easy: f32,
    /// Drop this fraction of old samples with the highest old-model loss (the hardest).
    pub drop_hard: f32,
    /// Train `round(f · budget.steps)` steps in rounds after the first (the shortened schedule).
    pub schedule_fraction: f64,
}

/// How a continuous round initialises the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitLever {
    /// The last checkpoint as it is.
    Warm,
    /// `θ ← shrink·θ_old + perturb·θ_fresh` (Ash & Adams).
    ShrinkPerturb,
}

/// What the L2 lever pulls the weights towards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum L2Reference {
    /// The round's starting point (after the init lever).
    Start,
    /// The previous checkpoint (before the init lever).
    Old,
}

impl Default for ContinuousSection {
    fn default() -> ContinuousSection {
        ContinuousSection {
            init: InitLever::Warm,
            shrink: 0.4,
            perturb: 0.1,
            l2: 0.0,
            l2_reference: L2Reference::Start,
            drop_easy: 0.0,
            drop_hard: 0.0,
            schedule_fraction: 1.0,
        }
    }
}

impl ContinuousSection {
    pub fn check(&self) -> Result<(), ConfigError> {
        non_negative("continuous.shrink", self.shrink as f64)?;
        non_negative("continuous.perturb", self.perturb as f64)?;
        non_negative("continuous.l2", self.l2 as f64)?;
        fraction("continuous.drop_easy", self.drop_easy as f64)?;
        fraction("continuous.drop_hard", self.drop_hard as f64)?;
        if self.drop_easy + self.drop_hard >= 1.0 {
            return Err(invalid("continuous.drop_hard", "drop_easy + drop_hard must leave some old data (sum < 1)"));
        }
        share("continuous.schedule_fraction", self.schedule_fraction)
    }
}
