//! A line of `metrics.jsonl` as flat columns, the form both loggers take it in: a number, string
//! or null field is one column of its name; a list or map is one column per element, named
//! `FIELD_KEY` (`row_2` is `a[t][2]`, `per_class_7` class 7's accuracy). The CSV tables have
//! these columns and TensorBoard's tags are `TYPE/COLUMN`.

use serde_json::Value;
use std::cmp::Ordering;
use std::fmt;

/// The fields that place a line rather than measure something; they come first in a table and
/// are never a TensorBoard scalar (its step is `optimizer_step`, or else the time step `step`).
const INDEX: [&str; 4] = ["step", "stage", "iteration", "optimizer_step"];

/// A column's name, as the path of keys to its leaf. Columns sort as a reader wants them: the
/// index fields first, then by field name, then list positions and numeric keys by number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Column(Vec<String>);

impl Column {
    /// Whether the column places its line (see `INDEX`).
    pub fn is_index(&self) -> bool {
        self.0.len() == 1 && INDEX.contains(&self.0[0].as_str())
    }

    fn rank(&self) -> usize {
        INDEX.iter().position(|i| self.0.len() == 1 && self.0[0] == *i).unwrap_or(INDEX.len())
    }
}

impl Ord for Column {
    fn cmp(&self, other: &Column) -> Ordering {
        let key = |k: &String| (k.parse::<u64>().map_or(u64::MAX, |n| n), k.clone());
        self.rank().cmp(&other.rank()).then_with(|| self.0.iter().map(key).cmp(other.0.iter().map(key)))
    }
}

impl PartialOrd for Column {
    fn partial_cmp(&self, other: &Column) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0.join("_"))
    }
}

/// Every leaf of `line` but its `type`, with its column.
pub(super) fn columns(line: &Value) -> Vec<(Column, &Value)> {
    let mut out = Vec::new();
    if let Value::Object(fields) = line {
        for (name, value) in fields.iter().filter(|(name, _)| *name != "type") {
            leaves(vec![name.clone()], value, &mut out);
        }
    }
    out
}

fn leaves<'a>(path: Vec<String>, value: &'a Value, out: &mut Vec<(Column, &'a Value)>) {
    let child = |key: String| path.iter().cloned().chain([key]).collect();
    match value {
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| leaves(child(i.to_string()), v, out)),
        Value::Object(fields) => fields.iter().for_each(|(k, v)| leaves(child(k.clone()), v, out)),
        leaf => out.push((Column(path), leaf)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_maps_flatten_into_sorted_columns() {
        let line = serde_json::json!({"type": "eval", "step": 2, "accuracy": 0.5, "row": [0.1, 0.2, 0.3], "per_class": {"10": 0.4, "2": 0.6}});
        let mut cols: Vec<(Column, &Value)> = columns(&line);
        cols.sort_by(|a, b| a.0.cmp(&b.0));
        let names: Vec<String> = cols.iter().map(|(c, _)| c.to_string()).collect();
        assert_eq!(names, ["step", "accuracy", "per_class_2", "per_class_10", "row_0", "row_1", "row_2"]);
        assert!(cols[0].0.is_index() && !cols[1].0.is_index());
        assert_eq!(cols[3].1, &serde_json::json!(0.4));
    }
}
