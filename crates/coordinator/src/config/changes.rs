//! What a resume may change: the config a resume is given is compared key by key with the
//! run's, and each differing key falls in one of three classes.

use super::TrainConfig;
use std::collections::{BTreeMap, BTreeSet};

/// Keys that cannot change a run's results: CPU threads (whole runs are bitwise identical at
/// any thread count, `tests/train.rs`), which checkpoints are written and kept, and the loggers.
const WITHOUT_EFFECT: &[&str] = &[
    "threads",
    "budget.checkpoint_every",
    "pretrain.checkpoint_every",
    "checkpoint.keep",
    "checkpoint.keep_all",
    "logging.tensorboard",
    "logging.csv",
    "logging.image_every",
];

/// Keys a resume may change, on request (`--resume-with-changes`), though they change results:
/// how the effective batch is cut into micro-batches (the rounding of gradient sums), the
/// evaluation batch (the rounding of the forward) and the evaluation grid inside time steps.
const WITH_EFFECT: &[&str] = &["budget.micro_batch", "pretrain.micro_batch", "data.eval_batch", "budget.eval_every"];

/// The keys a resume's config changes from the run's, as `key: old -> new`, by class.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// Keys that cannot change results: always allowed, and recorded.
    pub without_effect: Vec<String>,
    /// Allowed with `--resume-with-changes`, recorded in `run.json`, `summary.json` and `report`.
    pub with_effect: Vec<String>,
    /// Everything else (strategy, data, model, budget, seed, stream, optimiser, ...): refused.
    pub refused: Vec<String>,
}

/// How `new` differs from the run's config `run`, key by key (full key paths).
pub fn changes(run: &TrainConfig, new: &TrainConfig) -> Changes {
    let old_keys = flat_keys(&serde_yaml_ng::to_value(run).expect("config serialises"));
    let new_keys = flat_keys(&serde_yaml_ng::to_value(new).expect("config serialises"));
    let all: BTreeSet<&String> = old_keys.keys().chain(new_keys.keys()).collect();
    let value = |keys: &BTreeMap<String, String>, key: &str| keys.get(key).cloned().unwrap_or_else(|| "(none)".into());
    let mut out = Changes::default();
    for key in all {
        let (old, new) = (value(&old_keys, key), value(&new_keys, key));
        if old == new {
            continue;
        }
        let line = format!("{key}: {old} -> {new}");
        let class = if WITHOUT_EFFECT.contains(&key.as_str()) {
            &mut out.without_effect
        } else if WITH_EFFECT.contains(&key.as_str()) {
            &mut out.with_effect
        } else {
            &mut out.refused
        };
        class.push(line);
    }
    out
}

/// Every leaf of a config document as `a.b.c` → its YAML text on one line (a list is one leaf):
/// the key paths that resumes and `rekindle report` compare.
pub fn flat_keys(value: &serde_yaml_ng::Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    flatten("", value, &mut out);
    out
}

fn flatten(prefix: &str, value: &serde_yaml_ng::Value, out: &mut BTreeMap<String, String>) {
    match value {
        serde_yaml_ng::Value::Mapping(map) => {
            for (k, v) in map {
                let k = k.as_str().map_or_else(|| format!("{k:?}"), str::to_string);
                flatten(&if prefix.is_empty() { k } else { format!("{prefix}.{k}") }, v, out);
            }
        }
        leaf => {
            out.insert(prefix.to_string(), serde_yaml_ng::to_string(leaf).unwrap_or_default().trim().replace('\n', " "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(sets: &[&str]) -> TrainConfig {
        TrainConfig::from_yaml("test", "", &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn each_key_falls_in_its_class_with_its_full_path() {
        let run = config(&[]);
        let new = config(&["threads=3", "budget.micro_batch=128", "budget.steps=10", "strategy.name=er", "checkpoint.keep=4"]);
        let c = changes(&run, &new);
        assert_eq!(c.without_effect, ["checkpoint.keep: 1 -> 4", "threads: 0 -> 3"]);
        assert_eq!(c.with_effect, ["budget.micro_batch: 256 -> 128"]);
        assert_eq!(c.refused, ["budget.steps: 500 -> 10", "strategy.name: dietcl -> er"]);
        assert_eq!(changes(&run, &run), Changes::default());
    }
}
