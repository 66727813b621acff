//! Fresh parameter values, drawn on the host from a seeded generator.

use crate::params::{Init, ParamEntry, ParamTable};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// A freshly initialised flat parameter vector for `table`, deterministic in `seed`.
pub fn fresh(table: &ParamTable, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values = vec![0.0; table.total];
    for e in &table.entries {
        fill(e, &mut values[e.offset..e.offset + e.len], &mut rng);
    }
    values
}

/// Draws `out` (the values of entry `e`, or some of its rows) from `e`'s initialiser.
pub fn fill(e: &ParamEntry, out: &mut [f32], rng: &mut ChaCha8Rng) {
    match e.init {
        Init::Xavier => {
            let fan_out = e.shape[0];
            let fan_in = e.len / fan_out;
            let bound = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
            out.iter_mut().for_each(|v| *v = rng.random_range(-bound..bound));
        }
        Init::LinearDefault { fan_in } => {
            let bound = 1.0 / (fan_in as f32).sqrt();
            out.iter_mut().for_each(|v| *v = rng.random_range(-bound..bound));
        }
        Init::Token => {
            let normal = Normal::new(0.0f32, 0.02).expect("valid normal");
            out.iter_mut().for_each(|v| *v = normal.sample(rng));
        }
        Init::Zeros => out.fill(0.0),
        Init::Ones => out.fill(1.0),
    }
}
