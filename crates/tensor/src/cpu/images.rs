//! Cutting NCHW images into flattened patches and putting them back.

use crate::backend::{PatchOrder, PatchShape};
use rayon::prelude::*;

/// Position inside one flattened patch of pixel (channel, row-in-patch, col-in-patch).
fn inner_index(order: PatchOrder, s: PatchShape, c: usize, y: usize, x: usize) -> usize {
    match order {
        PatchOrder::ChannelRowCol => (c * s.patch + y) * s.patch + x,
        PatchOrder::RowColChannel => (y * s.patch + x) * s.channels + c,
    }
}

/// Calls `f(image_index, patch_index)` for every pixel of one sample.
fn for_each_pixel(s: PatchShape, order: PatchOrder, mut f: impl FnMut(usize, usize)) {
    let (g, p, size) = (s.grid(), s.patch, s.image_size);
    for c in 0..s.channels {
        for row in 0..size {
            for col in 0..size {
                let patch = (row / p) * g + col / p;
                let inner = inner_index(order, s, c, row % p, col % p);
                f((c * size + row) * size + col, patch * s.patch_len() + inner);
            }
        }
    }
}

pub fn patchify(patches: &mut [f32], images: &[f32], s: PatchShape, order: PatchOrder) {
    let per = s.channels * s.image_size * s.image_size;
    patches[..s.batch * per].par_chunks_mut(per).zip(images.par_chunks(per)).for_each(|(out, img)| {
        for_each_pixel(s, order, |i, p| out[p] = img[i]);
    });
}

pub fn unpatchify(images: &mut [f32], patches: &[f32], s: PatchShape, order: PatchOrder) {
    let per = s.channels * s.image_size * s.image_size;
    images[..s.batch * per].par_chunks_mut(per).zip(patches.par_chunks(per)).for_each(|(img, inp)| {
        for_each_pixel(s, order, |i, p| img[i] = inp[p]);
    });
}
