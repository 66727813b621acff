//! MAE random masking: per sample, uniform noise per patch; `ids_shuffle = argsort(noise)`,
//! `ids_restore = argsort(ids_shuffle)`; the first `kept` shuffled patches are encoded. Sample
//! `s` draws its noise from `(seed, first + s)`, where `first` is the micro-batch's position in
//! its step's list of images, so masks do not depend on how the list is cut into micro-batches
//! or split across ranks.

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
    /// Masks for samples `first..first + samples` of the list seeded by `seed`.
    pub fn random(seed: u64, first: usize, samples: usize, patches: usize, kept: usize) -> MaskIds {
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
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((first + s) as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
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
