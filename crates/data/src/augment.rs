//! Image transforms, fused with normalisation: one pass from HWC u8 pixels to CHW f32.
//!
//! Train: random resized crop (torchvision's algorithm: area fraction in `scale`, aspect ratio
//! log-uniform in `ratio`, ten tries, then a centre crop) and a horizontal flip with probability
//! 1/2. Eval: the largest centred square, resized. Resampling is bilinear with pixel centres at
//! +0.5 (PIL/torchvision's convention).

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A crop box in source pixels, and whether to mirror it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Crop {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
    pub flip: bool,
}

/// Training augmentation settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// Range of the crop's area as a fraction of the image: (0.2, 1) for unlabelled data, (0.08, 1)
    /// for labelled data in DietCL.
    pub scale: (f32, f32),
    /// Range of the crop's aspect ratio.
    pub ratio: (f32, f32),
    pub flip: bool,
}

impl Augment {
    pub const UNLABELLED: Augment = Augment { scale: (0.2, 1.0), ratio: (0.75, 4.0 / 3.0), flip: true };
    pub const LABELLED: Augment = Augment { scale: (0.08, 1.0), ratio: (0.75, 4.0 / 3.0), flip: true };

    pub fn crop(&self, rng: &mut ChaCha8Rng, height: usize, width: usize) -> Crop {
        let (h, w) = (height as f32, width as f32);
        let area = h * w;
        let (log_lo, log_hi) = (self.ratio.0.ln(), self.ratio.1.ln());
        let flip = self.flip && rng.random_range(0.0..1.0f32) < 0.5;
        for _ in 0..10 {
            let target = area * rng.random_range(self.scale.0..=self.scale.1);
            let aspect = rng.random_range(log_lo..=log_hi).exp();
            let cw = (target * aspect).sqrt().round();
            let ch = (target / aspect).sqrt().round();
            if cw >= 1.0 && ch >= 1.0 && cw <= w && ch <= h {
                let x = rng.random_range(0..=(w - cw) as u32) as f32;
                let y = rng.random_range(0..=(h - ch) as u32) as f32;
                return Crop { x, y, width: cw, height: ch, flip };
            }
        }
        // Fallback: the central crop with the aspect ratio clamped into range.
        let aspect = w / h;
        let (cw, ch) = if aspect < self.ratio.0 {
            (w, (w / self.ratio.0).round())
        } else if aspect > self.ratio.1 {
            ((h * self.ratio.1).round(), h)
        } else {
            (w, h)
        };
        Crop { x: ((w - cw) / 2.0).floor(), y: ((h - ch) / 2.0).floor(), width: cw, height: ch, flip }
    }
}

/// The eval crop: the largest centred square.
pub fn centre_crop(height: usize, width: usize) -> Crop {
    let side = height.min(width) as f32;
    Crop { x: ((width as f32 - side) / 2.0).floor(), y: ((height as f32 - side) / 2.0).floor(), width: side, height: side, flip: false }
}

/// Per-channel normalisation `(v/255 − mean) / std`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalize {
    /// ImageNet statistics for RGB, (0.5, 0.5) for grey.
    pub fn default_for(channels: usize) -> Normalize {
        if channels == 3 {
            Normalize { mean: vec![0.485, 0.456, 0.406], std: vec![0.229, 0.224, 0.225] }
        } else {
            Normalize { mean: vec![0.5; channels], std: vec![0.5; channels] }
        }
    }
}

/// Largest output side `render` handles.
pub const MAX_SIZE: usize = 1024;

/// Resamples `crop` of `src` (`[height, width, channels]` u8) to `out` (`[channels, size, size]`
/// f32), normalised.
pub fn render(src: &[u8], height: usize, width: usize, channels: usize, crop: Crop, size: usize, norm: &Normalize, out: &mut [f32]) {
    assert!(size <= MAX_SIZE && channels <= 3, "output size {size} above {MAX_SIZE}, or {channels} channels");
    let (sx, sy) = (crop.width / size as f32, crop.height / size as f32);
    // Per output column: the two source columns and the weight of the right one (on the stack:
    // nothing is allocated per image).
    let mut cols = [(0usize, 0usize, 0.0f32); MAX_SIZE];
    let cols = &mut cols[..size];
    for (ox, c) in cols.iter_mut().enumerate() {
        let ox = if crop.flip { size - 1 - ox } else { ox };
        let fx = (crop.x + (ox as f32 + 0.5) * sx - 0.5).clamp(0.0, (width - 1) as f32);
        let x0 = fx.floor() as usize;
        *c = (x0, (x0 + 1).min(width - 1), fx - x0 as f32);
    }
    let scale: [(f32, f32); 3] = std::array::from_fn(|c| if c < channels { (1.0 / (255.0 * norm.std[c]), norm.mean[c] / norm.std[c]) } else { (0.0, 0.0) });
    for oy in 0..size {
        let fy = (crop.y + (oy as f32 + 0.5) * sy - 0.5).clamp(0.0, (height - 1) as f32);
        let y0 = fy.floor() as usize;
        let (y1, wy) = ((y0 + 1).min(height - 1), fy - y0 as f32);
        let (row0, row1) = (&src[y0 * width * channels..], &src[y1 * width * channels..]);
        for (c, &(mul, sub)) in scale[..channels].iter().enumerate() {
            let dst = &mut out[(c * size + oy) * size..(c * size + oy + 1) * size];
            for (d, &(x0, x1, wx)) in dst.iter_mut().zip(cols.iter()) {
                let top = row0[x0 * channels + c] as f32 * (1.0 - wx) + row0[x1 * channels + c] as f32 * wx;
                let bottom = row1[x0 * channels + c] as f32 * (1.0 - wx) + row1[x1 * channels + c] as f32 * wx;
                *d = (top * (1.0 - wy) + bottom * wy) * mul - sub;
            }
        }
    }
}
