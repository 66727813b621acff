//! Evaluation bookkeeping: the accuracy matrix `a[t][i]`, `A(t)`, the stream average, forgetting,
//! and the honest compute count (optimizer steps and FLOPs).

use crate::config::TrainConfig;
use rekindle_data::Scenario;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The evaluation after time step `step`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    pub step: usize,
    /// `A(t)`.
    pub accuracy: f64,
    /// `a[t][i]` for `i ≤ t`.
    pub row: Vec<f64>,
    /// Accuracy on each class's test images among those `A(t)` evaluates, by class id.
    pub per_class: BTreeMap<u32, f64>,
}

/// One evaluation on the compute axis: after `iteration` optimizer steps of time step (round)
/// `step`, which had spent `round_flops` by then.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub step: usize,
    pub iteration: usize,
    pub round_flops: f64,
    /// `A(t)` at that point.
    pub accuracy: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub strategy: String,
    pub scenario: Scenario,
    /// `A(T−1)`.
    pub final_accuracy: f64,
    /// `mean_t A(t)`.
    pub average_accuracy: f64,
    /// `mean_{i<T−1} max_{t'<T−1} (a[t'][i] − a[T−1][i])`.
    pub forgetting: f64,
    pub accuracy_per_step: Vec<f64>,
    pub accuracy_matrix: Vec<Vec<f64>>,
    pub optimizer_steps: usize,
    /// Training FLOPs (2 per multiply-add), MAE forwards counted on the kept patches.
    pub flops: f64,
    pub wall_seconds: f64,
    /// Accuracy against compute inside every time step: every `budget.eval_every` steps and at
    /// the end of each step (what `rekindle speedup` reads).
    #[serde(default)]
    pub curve: Vec<CurvePoint>,
    /// Per time step, the accuracy of each class seen so far (class id → accuracy).
    #[serde(default)]
    pub per_class: Vec<BTreeMap<u32, f64>>,
    /// The run these results are of (its `run.json` id).
    #[serde(default)]
    pub run_id: String,
    /// Config keys that a resume changed with `--resume-with-changes` (`key: old -> new`): these
    /// results are not those of one config.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_on_resume: Vec<String>,
}

impl Summary {
    pub fn new(config: &TrainConfig) -> Summary {
        Summary {
            strategy: serde_json::to_value(config.strategy.name).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            scenario: config.stream.scenario,
            final_accuracy: 0.0,
            average_accuracy: 0.0,
            forgetting: 0.0,
            accuracy_per_step: Vec::new(),
            accuracy_matrix: Vec::new(),
            optimizer_steps: 0,
            flops: 0.0,
            wall_seconds: 0.0,
            curve: Vec::new(),
            per_class: Vec::new(),
            run_id: String::new(),
            changed_on_resume: Vec::new(),
        }
    }

    pub fn count_step(&mut self, flops: f64) {
        self.optimizer_steps += 1;
        self.flops += flops;
    }

    /// Compute spent outside optimizer steps (scoring old data for selection).
    pub fn count_flops(&mut self, flops: f64) {
        self.flops += flops;
    }

    /// Records `a[t][·]` and the per-class accuracy, and returns the evaluation with `A(t)` (see
    /// [`step_accuracy`]).
    pub fn record_eval(&mut self, t: usize, row: Vec<f64>, per_class: BTreeMap<u32, f64>, scenario: Scenario) -> Evaluation {
        let accuracy = step_accuracy(&row, t, scenario);
        self.accuracy_per_step.push(accuracy);
        self.accuracy_matrix.push(row.clone());
        self.per_class.push(per_class.clone());
        Evaluation { step: t, accuracy, row, per_class }
    }

    /// Final numbers; `wall_seconds` adds to the time of earlier (resumed-from) runs.
    pub fn finish(&mut self, wall_seconds: f64) {
        self.final_accuracy = *self.accuracy_per_step.last().unwrap_or(&0.0);
        self.average_accuracy = self.accuracy_per_step.iter().sum::<f64>() / self.accuracy_per_step.len().max(1) as f64;
        self.forgetting = forgetting(&self.accuracy_matrix);
        self.wall_seconds += wall_seconds;
    }
}

/// `A(t)` from the row `a[t][·]`: the mean over steps' test sets (class-incremental), or the
/// accuracy on the test set of step `t` (data- and time-incremental).
pub fn step_accuracy(row: &[f64], t: usize, scenario: Scenario) -> f64 {
    match scenario {
        Scenario::ClassIncremental => row.iter().sum::<f64>() / row.len() as f64,
        _ => row[t],
    }
}

/// `mean_{i<T−1} max_{t'<T−1} (a[t'][i] − a[T−1][i])`; 0 for a single step.
pub fn forgetting(a: &[Vec<f64>]) -> f64 {
    let Some(final_row) = a.last() else { return 0.0 };
    let last = a.len() - 1;
    if last == 0 {
        return 0.0;
    }
    let drops: Vec<f64> = (0..last)
        .map(|i| (i..last).map(|t| a[t][i] - final_row[i]).fold(f64::NEG_INFINITY, f64::max))
        .collect();
    drops.iter().sum::<f64>() / drops.len() as f64
}
