//! `stream:`: the scenario, the number of time steps and the label rate.

use super::check::{at_least_one, share};
use super::error::ConfigError;
use rekindle_data::Scenario;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamSection {
    pub scenario: Scenario,
    /// Time steps `T`.
    pub steps: usize,
    /// Fraction of each class's images per step that carry labels, in (0, 1].
    pub label_rate: f32,
}

impl Default for StreamSection {
    fn default() -> StreamSection {
        StreamSection { scenario: Scenario::ClassIncremental, steps: 5, label_rate: 0.1 }
    }
}

impl StreamSection {
    pub fn check(&self) -> Result<(), ConfigError> {
        share("stream.label_rate", self.label_rate as f64)?;
        at_least_one("stream.steps", self.steps, "time step")
    }
}
