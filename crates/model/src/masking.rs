//! MAE random masking: per sample, uniform noise per patch; `ids_shuffle = argsort(noise)`,
//! `ids_restore = argsort(ids_shuffle)`; the first `kept` shuffled patches are encoded.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Which patches each sample keeps and how to restore patch order, as MAE names them.
#[derive(Clone, Debug, PartialEq)]
pub struct MaskIds {
    pub samples: usize,
    pub patches: usize,
    pub kept: usize,
    /// `[samples, kept]`: the encoded patches, in shuffled order.
    pub keep: Vec<i32>,
    /// `[samples, patches]`: the shuffled position of each patch.
    pub restore: Vec<i32>,
    /// `[samples, patches]`: 1 where the patch was removed (the loss is taken there), else 0.
    pub mask: Vec<f32>,
}

impl MaskIds {
    pub fn random(seed: u64, samples: usize, patches: usize, kept: usize) -> MaskIds {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut ids = MaskIds {
            samples,
            patches,
            kept,
            keep: Vec::with_capacity(samples * kept),
            restore: vec![0; samples * patches],
            mask: vec![0.0; samples * patches],
        };
        let mut noise = vec![0.0f32; patches];
        let mut shuffle: Vec<usize> = Vec::with_capacity(patches);
        for s in 0..samples {
            noise.iter_mut().for_each(|n| *n = rng.random());
            shuffle.clear();
            shuffle.extend(0..patches);
            shuffle.sort_by(|&a, &b| noise[a].total_cmp(&noise[b]));
            for (position, &patch) in shuffle.iter().enumerate() {
                ids.restore[s * patches + patch] = position as i32;
                ids.mask[s * patches + patch] = if position < kept { 0.0 } else { 1.0 };
            }
            ids.keep.extend(shuffle[..kept].iter().map(|&p| p as i32));
        }
        ids
    }
}
