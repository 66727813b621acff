//! A procedural image dataset that needs no files: rekindle's embedded default.
//!
//! A class is a (shape, stripe orientation) pair: one of four shapes (disc, square, ring, cross)
//! filled with stripes at one of `ceil(K/4)` orientations. Every image draws its own position,
//! size, stripe phase and frequency, foreground and background colours from a shared palette,
//! and pixel noise. Colour says nothing about the class and position varies, so a linear model
//! on pixels does poorly, while a small ViT can learn shape and orientation.
//!
//! With `drift > 0` the appearance moves with time: the stripe orientation of every class
//! rotates by up to `drift · π/4` and the palette's hue turns by up to `drift · 120°` over the
//! dataset's time span, for time-incremental streams. Images are ordered by time on a common
//! axis: image i of n has timestamp `round(10⁶ · i / (n − 1))`, so a train and a test set of
//! different sizes share one clock.

use crate::shard::{encode, ShardSpec};
use crate::{DataError, Shard};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::f32::consts::PI;

/// What to generate. Every field has a default (`SyntheticSpec::default()`).
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticSpec {
    pub classes: u32,
    /// Images per class.
    pub per_class: usize,
    /// Side of the square RGB images.
    pub size: u32,
    pub seed: u64,
    /// Strength of the appearance drift over time, 0 for none.
    pub drift: f32,
}

impl Default for SyntheticSpec {
    fn default() -> SyntheticSpec {
        SyntheticSpec { classes: 10, per_class: 500, size: 32, seed: 0, drift: 0.0 }
    }
}

const SHAPES: [&str; 4] = ["disc", "square", "ring", "cross"];

impl SyntheticSpec {
    fn validate(&self) -> Result<(), DataError> {
        let bad = |key: &str, reason: &str| Err(DataError::Config { key: key.into(), reason: reason.into() });
        if self.classes == 0 {
            return bad("classes", "must be at least 1");
        }
        if self.per_class == 0 {
            return bad("per_class", "must be at least 1");
        }
        if self.size < 8 {
            return bad("size", "synthetic images need at least 8 pixels a side");
        }
        if !(0.0..=4.0).contains(&self.drift) {
            return bad("drift", "must be between 0 and 4");
        }
        Ok(())
    }

    fn orientations(&self) -> u32 {
        self.classes.div_ceil(SHAPES.len() as u32)
    }

    /// "disc / 45°"-style names.
    pub fn class_names(&self) -> Vec<String> {
        (0..self.classes)
            .map(|c| {
                let degrees = 180.0 * (c / 4) as f32 / self.orientations() as f32;
                format!("{} {:.0}deg", SHAPES[(c % 4) as usize], degrees)
            })
            .collect()
    }

    /// The dataset as an in-memory shard (`name` labels it in messages).
    pub fn generate(&self, name: &str) -> Result<Shard, DataError> {
        self.validate()?;
        let n = self.classes as usize * self.per_class;
        let side = self.size as usize;
        let image_len = side * side * 3;
        // A seeded permutation interleaves the classes over time.
        let mut order_rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut labels: Vec<u32> = (0..n).map(|i| (i % self.classes as usize) as u32).collect();
        for i in (1..n).rev() {
            labels.swap(i, order_rng.random_range(0..=i));
        }
        let mut pixels = vec![0u8; n * image_len];
        pixels.par_chunks_mut(image_len).enumerate().for_each(|(i, img)| {
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1)));
            let time = if n > 1 { i as f32 / (n - 1) as f32 } else { 0.0 };
            self.draw(img, labels[i], time, &mut rng);
        });
        let timestamps: Vec<i64> = (0..n).map(|i| if n > 1 { (1e6 * i as f64 / (n - 1) as f64).round() as i64 } else { 0 }).collect();
        let spec = ShardSpec { height: self.size, width: self.size, channels: 3, classes: self.classes };
        Shard::from_bytes(name, &encode(spec, &pixels, &labels, Some(&timestamps), &self.class_names()))
    }

    fn draw(&self, img: &mut [u8], class: u32, time: f32, rng: &mut ChaCha8Rng) {
        let side = self.size as f32;
        let shape = class % 4;
        let angle = PI * (class / 4) as f32 / self.orientations() as f32 + self.drift * time * PI / 4.0;
        let (sin, cos) = angle.sin_cos();
        let hue_shift = self.drift * time / 3.0;
        let fg = palette(rng.random_range(0.0..1.0) + hue_shift);
        let bg = palette(rng.random_range(0.0..1.0) + hue_shift + 0.5);
        let radius = side * rng.random_range(0.22..0.38);
        let (cx, cy) = (side * rng.random_range(0.3..0.7), side * rng.random_range(0.3..0.7));
        let frequency = rng.random_range(2.5..4.0) * 2.0 * PI / side;
        let phase = rng.random_range(0.0..2.0 * PI);
        let noise = 0.08;
        for y in 0..self.size as usize {
            for x in 0..self.size as usize {
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                let inside = match shape {
                    0 => dx * dx + dy * dy < radius * radius,
                    1 => dx.abs() < radius * 0.8 && dy.abs() < radius * 0.8,
                    2 => {
                        let r = (dx * dx + dy * dy).sqrt();
                        r < radius && r > radius * 0.55
                    }
                    _ => (dx.abs() < radius * 0.3 && dy.abs() < radius) || (dy.abs() < radius * 0.3 && dx.abs() < radius),
                };
                let stripes = 0.5 + 0.5 * ((x as f32 * cos + y as f32 * sin) * frequency + phase).sin();
                for ch in 0..3 {
                    let base = if inside { fg[ch] * (0.35 + 0.65 * stripes) } else { bg[ch] * 0.8 };
                    let v = base + noise * rng.random_range(-1.0f32..1.0);
                    img[(y * self.size as usize + x) * 3 + ch] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
        }
    }
}

/// A saturated colour at hue `h` (turns; wraps).
fn palette(h: f32) -> [f32; 3] {
    let h = h.rem_euclid(1.0) * 6.0;
    let f = |offset: f32| {
        let k = (offset + h).rem_euclid(6.0);
        1.0 - (k.min(4.0 - k).clamp(0.0, 1.0)) * 0.85
    };
    [f(5.0), f(3.0), f(1.0)]
}
