//! Mixup and CutMix: partners in reverse batch order, exact λ for pixels and targets.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rekindle_coordinator::mixing::{mix, MixSettings, Mixed};

const N: usize = 4;
const SIZE: usize = 6;
const C: usize = 2;

fn batch() -> (Vec<f32>, Vec<f32>) {
    let pixels: Vec<f32> = (0..N * C * SIZE * SIZE).map(|i| (i / (C * SIZE * SIZE)) as f32 * 10.0 + (i % 7) as f32).collect();
    let mut targets = vec![0.0; N * 3];
    for (i, label) in [0usize, 1, 2, 1].iter().enumerate() {
        targets[i * 3 + label] = 1.0;
    }
    (pixels, targets)
}

#[test]
fn mixup_blends_partners_with_one_lambda() {
    let (orig_px, orig_t) = batch();
    let (mut px, mut t) = batch();
    let settings = MixSettings { cutmix_alpha: 0.0, ..MixSettings::default() };
    let Mixed::Mixup { lambda } = mix(&mut px, &mut t, N, SIZE, &settings, &mut ChaCha8Rng::seed_from_u64(1)) else { panic!("mixup expected") };
    assert!(lambda > 0.0 && lambda < 1.0);
    let per = C * SIZE * SIZE;
    for i in 0..N {
        let j = N - 1 - i;
        for p in [0, 13, per - 1] {
            let want = lambda * orig_px[i * per + p] + (1.0 - lambda) * orig_px[j * per + p];
            assert!((px[i * per + p] - want).abs() < 1e-5);
        }
        for k in 0..3 {
            let want = lambda * orig_t[i * 3 + k] + (1.0 - lambda) * orig_t[j * 3 + k];
            assert!((t[i * 3 + k] - want).abs() < 1e-6);
        }
        assert!((t[i * 3..i * 3 + 3].iter().sum::<f32>() - 1.0).abs() < 1e-6, "targets still sum to 1");
    }
}

#[test]
fn cutmix_swaps_a_box_and_lambda_is_its_complement() {
    let (orig_px, orig_t) = batch();
    for seed in 0..20 {
        let (mut px, mut t) = batch();
        let settings = MixSettings { mixup_alpha: 0.0, ..MixSettings::default() };
        let Mixed::Cutmix { lambda, y0, y1, x0, x1 } = mix(&mut px, &mut t, N, SIZE, &settings, &mut ChaCha8Rng::seed_from_u64(seed)) else { panic!("cutmix expected") };
        let area = ((y1 - y0) * (x1 - x0)) as f32 / (SIZE * SIZE) as f32;
        assert!((lambda - (1.0 - area)).abs() < 1e-6);
        let per = C * SIZE * SIZE;
        for i in 0..N {
            let j = N - 1 - i;
            for c in 0..C {
                for y in 0..SIZE {
                    for x in 0..SIZE {
                        let p = (c * SIZE + y) * SIZE + x;
                        let inside = (y0..y1).contains(&y) && (x0..x1).contains(&x);
                        let from = if inside { j } else { i };
                        assert_eq!(px[i * per + p], orig_px[from * per + p]);
                    }
                }
            }
            for k in 0..3 {
                assert!((t[i * 3 + k] - (lambda * orig_t[i * 3 + k] + (1.0 - lambda) * orig_t[j * 3 + k])).abs() < 1e-6);
            }
        }
    }
}

#[test]
fn switched_off_leaves_the_batch_alone() {
    let (mut px, mut t) = batch();
    let off = MixSettings { mixup_alpha: 0.0, cutmix_alpha: 0.0, ..MixSettings::default() };
    assert_eq!(mix(&mut px, &mut t, N, SIZE, &off, &mut ChaCha8Rng::seed_from_u64(1)), Mixed::None);
    let never = MixSettings { prob: 0.0, ..MixSettings::default() };
    assert_eq!(mix(&mut px, &mut t, N, SIZE, &never, &mut ChaCha8Rng::seed_from_u64(1)), Mixed::None);
    assert_eq!((px, t), batch());
}
