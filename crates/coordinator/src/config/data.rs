//! `data:`: the shards (or the synthetic generator), the evaluation batch and the holdout.

use super::check::{at_least_one, fraction, non_negative};
use super::error::ConfigError;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// Training shard path, or `synthetic`.
    pub train: String,
    /// Test shard path, or `synthetic`.
    pub test: String,
    /// The synthetic generator, when `train`/`test` say `synthetic`.
    pub synthetic: SyntheticSection,
    /// Evaluation micro-batch.
    pub eval_batch: usize,
    /// Fraction of each class of `train` held out of the stream, for `rekindle pretrain` (0:
    /// none). The held-out images are the same for every seed.
    pub holdout: f32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticSection {
    pub classes: u32,
    pub train_per_class: usize,
    pub test_per_class: usize,
    pub size: u32,
    pub drift: f32,
}

impl Default for DataSection {
    fn default() -> DataSection {
        DataSection { train: "synthetic".into(), test: "synthetic".into(), synthetic: SyntheticSection::default(), eval_batch: 256, holdout: 0.0 }
    }
}

impl Default for SyntheticSection {
    fn default() -> SyntheticSection {
        SyntheticSection { classes: 10, train_per_class: 500, test_per_class: 100, size: 32, drift: 0.0 }
    }
}

impl DataSection {
    pub fn check(&self) -> Result<(), ConfigError> {
        at_least_one("data.eval_batch", self.eval_batch, "image")?;
        fraction("data.holdout", self.holdout as f64)?;
        let s = &self.synthetic;
        at_least_one("data.synthetic.classes", s.classes as usize, "class")?;
        at_least_one("data.synthetic.train_per_class", s.train_per_class, "image")?;
        at_least_one("data.synthetic.test_per_class", s.test_per_class, "image")?;
        at_least_one("data.synthetic.size", s.size as usize, "pixel")?;
        non_negative("data.synthetic.drift", s.drift as f64)
    }
}
