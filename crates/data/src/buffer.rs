//! The replay buffer: indices of every labelled image seen so far, the current step included
//! (it is updated before the step trains), sampled task-balanced or class-balanced.
//!
//! Balance is exact, not just in expectation: a draw of `n` images gives each step (or class)
//! `n / groups` of them, and the `n mod groups` left over go to distinct groups chosen at random.
//! Within a group, images are drawn uniformly with replacement.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// Every time step contributes equally (DietCL's default).
    Task,
    /// Every class contributes equally.
    Class,
    /// Every image equally likely, however unbalanced the steps and classes (joint training).
    Uniform,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Entry {
    image: u32,
    step: u32,
    class: u32,
}

/// Serialisable, so a checkpoint can carry the buffer and a resumed run draws the same images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplayBuffer {
    balance: Balance,
    /// Most images kept; beyond it every class is truncated at random to an equal share.
    capacity: Option<usize>,
    /// Cut every step to the smallest step's labelled count (the DietCL reference's "unlimited"
    /// buffer, `replay_buffer_size: -1`).
    #[serde(default)]
    equal_steps: bool,
    seed: u64,
    entries: Vec<Entry>,
}

impl ReplayBuffer {
    pub fn new(balance: Balance, capacity: Option<usize>, seed: u64) -> ReplayBuffer {
        ReplayBuffer { balance, capacity, equal_steps: false, seed, entries: Vec::new() }
    }

    /// After every step, each step keeps a random subset of the smallest step's labelled count,
    /// so every step holds the same number of images. (The reference keeps a random subset of the
    /// current step and the first images of older ones; here each cut is random.)
    pub fn with_equal_steps(mut self) -> ReplayBuffer {
        self.equal_steps = true;
        self
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds step `step`'s labelled images, then applies the capacity.
    pub fn add_step(&mut self, step: u32, labelled: &[u32], labels: &[u32]) {
        self.entries.extend(labelled.iter().map(|&i| Entry { image: i, step, class: labels[i as usize] }));
        if self.equal_steps {
            self.cut_steps(step);
        }
        if let Some(cap) = self.capacity {
            self.truncate(cap, step);
        }
    }

    /// Keeps at most `cap` images by water-filling: every class keeps `min(size, q)` images for the
    /// largest quota `q` that fits, the few places left go one each to the lowest-id classes still
    /// over quota, and each class keeps a random subset of that size. (The DietCL reference drops
    /// whole tail classes instead, which biases the buffer.)
    fn truncate(&mut self, cap: usize, step: u32) {
        let mut groups = self.groups(|e| e.class);
        if groups.iter().map(Vec::len).sum::<usize>() <= cap {
            return;
        }
        let kept_at = |q: usize| groups.iter().map(|g| g.len().min(q)).sum::<usize>();
        let (mut lo, mut hi) = (0, groups.iter().map(Vec::len).max().unwrap_or(0));
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if kept_at(mid) <= cap {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let mut spare = cap - kept_at(lo);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0xB0FF_E400 ^ step as u64);
        for g in groups.iter_mut() {
            let mut quota = g.len().min(lo);
            if g.len() > lo && spare > 0 {
                quota += 1;
                spare -= 1;
            }
            keep_random(g, quota, &mut rng);
        }
        self.keep(groups);
    }

    /// Cuts every step to the size of the smallest, each to a random subset.
    fn cut_steps(&mut self, step: u32) {
        let mut groups = self.groups(|e| e.step);
        let smallest = groups.iter().map(Vec::len).min().unwrap_or(0);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x57E9_C47 ^ step as u64);
        groups.iter_mut().for_each(|g| keep_random(g, smallest, &mut rng));
        self.keep(groups);
    }

    /// Keeps the entries at the positions in `groups`, in insertion order.
    fn keep(&mut self, groups: Vec<Vec<usize>>) {
        let mut kept: Vec<usize> = groups.into_iter().flatten().collect();
        kept.sort_unstable();
        self.entries = kept.into_iter().map(|i| self.entries[i].clone()).collect();
    }

    /// Entry positions grouped by `key`, groups in ascending key order.
    fn groups(&self, key: impl Fn(&Entry) -> u32) -> Vec<Vec<usize>> {
        let mut keys: Vec<u32> = self.entries.iter().map(&key).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut groups = vec![Vec::new(); keys.len()];
        for (i, e) in self.entries.iter().enumerate() {
            groups[keys.binary_search(&key(e)).unwrap()].push(i);
        }
        groups
    }

    /// Draws `n` image indices, balanced by step or class, deterministic in `draw` (e.g. the
    /// global iteration) and the buffer's seed.
    pub fn sample(&self, n: usize, draw: u64) -> Vec<u32> {
        self.sample_where(n, draw, |_| true)
    }

    /// Like `sample`, from the steps before `step` only (ER's "batchmix" half of past data).
    /// Empty when there are none.
    pub fn sample_before(&self, n: usize, draw: u64, step: u32) -> Vec<u32> {
        self.sample_where(n, draw, |e| e.step < step)
    }

    fn sample_where(&self, n: usize, draw: u64, keep: impl Fn(&Entry) -> bool) -> Vec<u32> {
        let groups: Vec<Vec<usize>> = match self.balance {
            Balance::Task => self.groups(|e| e.step),
            Balance::Class => self.groups(|e| e.class),
            Balance::Uniform => self.groups(|_| 0),
        }
        .into_iter()
        .map(|g| g.into_iter().filter(|&i| keep(&self.entries[i])).collect::<Vec<_>>())
        .filter(|g| !g.is_empty())
        .collect();
        if groups.is_empty() || n == 0 {
            return Vec::new();
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ draw.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let g = groups.len();
        let mut counts = vec![n / g; g];
        // The remainder goes to distinct groups, picked by a partial shuffle.
        let mut order: Vec<usize> = (0..g).collect();
        for i in 0..n % g {
            order.swap(i, rng.random_range(i..g));
            counts[order[i]] += 1;
        }
        let mut out = Vec::with_capacity(n);
        for (group, count) in groups.iter().zip(counts) {
            out.extend((0..count).map(|_| self.entries[group[rng.random_range(0..group.len())]].image));
        }
        out
    }

    /// Images per class (ascending class).
    pub fn per_class(&self) -> Vec<(u32, usize)> {
        let mut map = std::collections::BTreeMap::new();
        for e in &self.entries {
            *map.entry(e.class).or_insert(0) += 1;
        }
        map.into_iter().collect()
    }

    /// Every image in the buffer, in insertion order.
    pub fn images(&self) -> Vec<u32> {
        self.entries.iter().map(|e| e.image).collect()
    }
}

/// Truncates `g` to a uniformly random subset of `k` of its items (a partial shuffle).
fn keep_random(g: &mut Vec<usize>, k: usize, rng: &mut ChaCha8Rng) {
    for i in 0..k {
        let j = rng.random_range(i..g.len());
        g.swap(i, j);
    }
    g.truncate(k);
}
