//! Classification targets: global class ids map to head rows in arrival order (the head grows as
//! classes arrive), soft targets carry label smoothing, and a class mask picks the softmax.

use crate::config::CurrentSmoothing;
use rekindle_data::Scenario;

/// Head rows in order of arrival: row `r` predicts class `classes[r]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClassMap {
    classes: Vec<u32>,
    row_of: Vec<Option<usize>>,
}

impl serde::Serialize for ClassMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.classes.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for ClassMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ClassMap, D::Error> {
        let mut map = ClassMap::default();
        map.add(&Vec::<u32>::deserialize(d)?);
        Ok(map)
    }
}

impl ClassMap {
    /// Appends classes not seen before; returns how many were new.
    pub fn add(&mut self, classes: &[u32]) -> usize {
        let before = self.classes.len();
        for &c in classes {
            if self.row_of.len() <= c as usize {
                self.row_of.resize(c as usize + 1, None);
            }
            if self.row_of[c as usize].is_none() {
                self.row_of[c as usize] = Some(self.classes.len());
                self.classes.push(c);
            }
        }
        self.classes.len() - before
    }

    pub fn len(&self) -> usize {
        self.classes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    pub fn row(&self, class: u32) -> usize {
        self.row_of.get(class as usize).copied().flatten().unwrap_or_else(|| panic!("class {class} has no head row yet"))
    }

    pub fn class(&self, row: usize) -> u32 {
        self.classes[row]
    }

    /// A mask over head rows: 1 for `classes`, 0 elsewhere.
    pub fn mask(&self, classes: &[u32]) -> Vec<f32> {
        let mut m = vec![0.0; self.len()];
        classes.iter().for_each(|&c| m[self.row(c)] = 1.0);
        m
    }
}

/// The current-data loss's softmax rows and the rows its label smoothing spreads over, as masks.
/// - Class-incremental streams: the softmax over the step's classes; smoothing over those
///   classes, or with [`CurrentSmoothing::SeenSliced`] over every class seen. The loss reads
///   targets on the softmax's rows only, so mass left on other rows is the reference's slice
///   without renormalising.
/// - Data- and time-incremental streams: the softmax over every class seen, smoothing over the
///   classes present in the step.
/// - Rounds (`rounds`): both over every class seen.
pub fn current_rows(map: &ClassMap, scenario: Scenario, rounds: bool, smoothing: CurrentSmoothing, step_classes: &[u32], seen: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let class_incremental = scenario == Scenario::ClassIncremental && !rounds;
    let mask = if class_incremental { map.mask(step_classes) } else { map.mask(seen) };
    let spread = if rounds || (class_incremental && smoothing == CurrentSmoothing::SeenSliced) { map.mask(seen) } else { map.mask(step_classes) };
    (mask, spread)
}

/// Soft targets `[labels.len(), mask.len()]`: `1 − ε` on the label's row plus `ε` spread evenly
/// over the rows in `spread` (a subset of the softmax's rows).
pub fn soft_targets(labels: &[u32], map: &ClassMap, smoothing: f32, spread: &[f32], out: &mut Vec<f32>) {
    let k = map.len();
    let active: f32 = spread.iter().sum();
    out.clear();
    out.resize(labels.len() * k, 0.0);
    for (row, &l) in out.chunks_exact_mut(k).zip(labels) {
        if smoothing > 0.0 && active > 0.0 {
            row.iter_mut().zip(spread).for_each(|(t, &s)| *t = smoothing * s / active);
        }
        row[map.row(l)] += 1.0 - smoothing;
    }
}
