//! Continual streams: how a training set is revealed over `T` time steps and which of each step's
//! images carry labels. Every split is a pure function of (labels, timestamps, config, seed).
//!
//! Label rule: in each step, each class present with `n` images gets `max(1, round(rate · n))`
//! labelled images, drawn at random. The DietCL reference code floors and can give a class no
//! label at all; here every class present in a step has at least one.

use crate::DataError;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// A seeded permutation of the classes, split into `T` groups; step `t` reveals its group's images.
    ClassIncremental,
    /// A seeded random split of all images into `T` parts, stratified so every class is in every step.
    DataIncremental,
    /// Images ordered by timestamp, cut into `T` equal chunks.
    TimeIncremental,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamConfig {
    pub scenario: Scenario,
    pub steps: usize,
    /// Fraction of each class's images in a step that carry labels, in (0, 1].
    pub label_rate: f32,
    pub seed: u64,
}

/// One time step of a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Classes with images in this step, ascending.
    pub classes: Vec<u32>,
    /// Every image revealed at this step (indices into the training set), ascending.
    pub images: Vec<u32>,
    /// The labelled subset of `images`, ascending.
    pub labelled: Vec<u32>,
    /// Time-incremental: the latest timestamp in this step.
    pub end_time: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stream {
    pub config: StreamConfig,
    pub steps: Vec<Step>,
}

fn shuffle<T>(v: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.random_range(0..=i));
    }
}

/// Splits `0..len` into `parts` contiguous ranges whose sizes differ by at most one.
fn even_ranges(len: usize, parts: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..parts).map(move |p| p * len / parts..(p + 1) * len / parts)
}

/// A generator seeded from the stream seed and a purpose, so splits do not share random draws.
fn rng(seed: u64, purpose: u64, a: u64, b: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ a.wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ b.wrapping_mul(0x1656_67B1_9E37_79F9))
}

/// Splits a training set of `labels` into `(held, rest)`: each class keeps `round(fraction · n)`
/// of its `n` images in `held`, for MAE pre-training (`data.holdout`), and the stream is built
/// over `rest`. The draw uses a fixed seed, not the run's, so runs of every seed stream the same
/// images and none of them sees what the shared pretrained start was trained on. Both lists are
/// ascending.
pub fn holdout(labels: &[u32], classes: u32, fraction: f32) -> (Vec<u32>, Vec<u32>) {
    let all: Vec<u32> = (0..labels.len() as u32).collect();
    let mut held = Vec::new();
    for (c, mut members) in by_class(&all, labels, classes).into_iter().enumerate() {
        let k = (fraction as f64 * members.len() as f64).round() as usize;
        shuffle(&mut members, &mut rng(HOLDOUT_SEED, 4, c as u64, 0));
        held.extend_from_slice(&members[..k]);
    }
    held.sort_unstable();
    let mut is_held = vec![false; labels.len()];
    held.iter().for_each(|&i| is_held[i as usize] = true);
    let rest = all.into_iter().filter(|&i| !is_held[i as usize]).collect();
    (held, rest)
}

/// The seed of [`holdout`], the same for every run.
const HOLDOUT_SEED: u64 = 0x4F1D_0A7E;

impl Stream {
    /// A stream over the whole training set.
    pub fn build(labels: &[u32], timestamps: Option<&[i64]>, classes: u32, config: &StreamConfig) -> Result<Stream, DataError> {
        let all: Vec<u32> = (0..labels.len() as u32).collect();
        Stream::build_over(&all, labels, timestamps, classes, config)
    }

    /// A stream over `pool` only (indices into the training set of `labels`), e.g. what
    /// [`holdout`] leaves.
    pub fn build_over(pool: &[u32], labels: &[u32], timestamps: Option<&[i64]>, classes: u32, config: &StreamConfig) -> Result<Stream, DataError> {
        let bad = |key: &str, reason: String| Err(DataError::Config { key: key.into(), reason });
        if config.steps == 0 {
            return bad("stream.steps", "must be at least 1".into());
        }
        if !(config.label_rate > 0.0 && config.label_rate <= 1.0) {
            return bad("stream.label_rate", format!("{} is outside (0, 1]", config.label_rate));
        }
        let t = config.steps;
        let mut parts: Vec<Vec<u32>> = vec![Vec::new(); t];
        match config.scenario {
            Scenario::ClassIncremental => {
                if (classes as usize) < t {
                    return bad("stream.steps", format!("{t} class-incremental steps need at least {t} classes; the data has {classes}"));
                }
                let mut order: Vec<u32> = (0..classes).collect();
                shuffle(&mut order, &mut rng(config.seed, 1, 0, 0));
                let mut step_of = vec![0usize; classes as usize];
                for (s, range) in even_ranges(order.len(), t).enumerate() {
                    order[range].iter().for_each(|&c| step_of[c as usize] = s);
                }
                for &i in pool {
                    parts[step_of[labels[i as usize] as usize]].push(i);
                }
            }
            Scenario::DataIncremental => {
                for (c, mut members) in by_class(pool, labels, classes).into_iter().enumerate() {
                    if members.is_empty() {
                        continue;
                    }
                    if members.len() < t {
                        return bad("stream.steps", format!("class {c} has {} images, fewer than the {t} steps that must each hold it", members.len()));
                    }
                    shuffle(&mut members, &mut rng(config.seed, 2, c as u64, 0));
                    for (s, range) in even_ranges(members.len(), t).enumerate() {
                        parts[s].extend_from_slice(&members[range]);
                    }
                }
            }
            Scenario::TimeIncremental => {
                let Some(ts) = timestamps else {
                    return bad("stream.scenario", "time-incremental streams need a dataset with timestamps".into());
                };
                let mut order = pool.to_vec();
                order.sort_by_key(|&i| (ts[i as usize], i));
                for (s, range) in even_ranges(order.len(), t).enumerate() {
                    parts[s] = order[range].to_vec();
                }
            }
        }
        let steps = parts
            .into_iter()
            .enumerate()
            .map(|(s, mut images)| {
                let end_time = match (config.scenario, timestamps) {
                    (Scenario::TimeIncremental, Some(ts)) => images.iter().map(|&i| ts[i as usize]).max(),
                    _ => None,
                };
                images.sort_unstable();
                let mut classes: Vec<u32> = images.iter().map(|&i| labels[i as usize]).collect();
                classes.sort_unstable();
                classes.dedup();
                let labelled = label_subset(&images, labels, config, s);
                Step { classes, images, labelled, end_time }
            })
            .collect();
        Ok(Stream { config: config.clone(), steps })
    }

    /// Classes seen in steps `0..=t`.
    pub fn classes_seen(&self, t: usize) -> Vec<u32> {
        let mut c: Vec<u32> = self.steps[..=t].iter().flat_map(|s| s.classes.iter().copied()).collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    /// The test images that evaluate step `t`: class-incremental, those of step `t`'s classes (the
    /// `a[·][t]` column); data-incremental, all of them; time-incremental, those with time ≤ the
    /// end of step `t`.
    pub fn test_images(&self, t: usize, test_labels: &[u32], test_timestamps: Option<&[i64]>) -> Vec<u32> {
        let step = &self.steps[t];
        (0..test_labels.len() as u32)
            .filter(|&i| match self.config.scenario {
                Scenario::ClassIncremental => step.classes.binary_search(&test_labels[i as usize]).is_ok(),
                Scenario::DataIncremental => true,
                Scenario::TimeIncremental => match (test_timestamps, step.end_time) {
                    (Some(ts), Some(end)) => ts[i as usize] <= end,
                    _ => false,
                },
            })
            .collect()
    }
}

/// `images` grouped by label, in their given order (one pass, so ImageNet-sized sets stay cheap).
fn by_class(images: &[u32], labels: &[u32], classes: u32) -> Vec<Vec<u32>> {
    let mut groups = vec![Vec::new(); classes as usize];
    for &i in images {
        groups[labels[i as usize] as usize].push(i);
    }
    groups
}

/// Each class present gets `max(1, round(rate · n))` of its `n` images labelled, at random.
fn label_subset(images: &[u32], labels: &[u32], config: &StreamConfig, step: usize) -> Vec<u32> {
    let classes = labels.iter().max().map_or(0, |&m| m + 1);
    let mut labelled = Vec::new();
    for (c, mut members) in by_class(images, labels, classes).into_iter().enumerate() {
        if members.is_empty() {
            continue;
        }
        let k = ((config.label_rate as f64 * members.len() as f64).round() as usize).max(1);
        shuffle(&mut members, &mut rng(config.seed, 3, step as u64, c as u64));
        labelled.extend_from_slice(&members[..k]);
    }
    labelled.sort_unstable();
    labelled
}
