//! The loader's transforms, determinism and ordering, and the synthetic generator.

use rekindle_data::augment::{centre_crop, render, Augment, Normalize};
use rekindle_data::{batch_seed, rank_range, BatchRequest, Loader, SyntheticSpec};
use std::sync::Arc;

fn synthetic(classes: u32, per_class: usize, size: u32, seed: u64) -> rekindle_data::Shard {
    SyntheticSpec { classes, per_class, size, seed, drift: 0.0 }.generate("synthetic").unwrap()
}

#[test]
fn eval_transform_at_native_size_is_exact_normalisation() {
    let shard = synthetic(4, 2, 16, 0);
    let norm = Normalize::default_for(3);
    let mut out = vec![0.0; 3 * 16 * 16];
    render(shard.image(3), 16, 16, 3, centre_crop(16, 16), 16, &norm, &mut out);
    let src = shard.image(3);
    for c in 0..3 {
        for p in [0usize, 17, 255] {
            let want = (src[p * 3 + c] as f32 / 255.0 - norm.mean[c]) / norm.std[c];
            assert!((out[c * 256 + p] - want).abs() < 1e-5, "channel {c} pixel {p}");
        }
    }
}

#[test]
fn full_crop_with_flip_mirrors_the_image() {
    let shard = synthetic(4, 2, 16, 0);
    let norm = Normalize::default_for(3);
    let (mut plain, mut mirrored) = (vec![0.0; 768], vec![0.0; 768]);
    let mut crop = centre_crop(16, 16);
    render(shard.image(1), 16, 16, 3, crop, 16, &norm, &mut plain);
    crop.flip = true;
    render(shard.image(1), 16, 16, 3, crop, 16, &norm, &mut mirrored);
    for y in 0..16 {
        for x in 0..16 {
            assert_eq!(plain[y * 16 + x], mirrored[y * 16 + 15 - x]);
        }
    }
}

#[test]
fn random_resized_crops_stay_inside_and_follow_the_scale() {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for _ in 0..500 {
        let c = Augment::UNLABELLED.crop(&mut rng, 40, 30);
        assert!(c.x >= 0.0 && c.y >= 0.0 && c.x + c.width <= 30.0 && c.y + c.height <= 40.0, "{c:?}");
        let fraction = c.width * c.height / 1200.0;
        assert!((0.15..=1.0).contains(&fraction), "area fraction {fraction}");
    }
}

#[test]
fn loader_is_deterministic_ordered_and_reuses_buffers() {
    let shard = Arc::new(synthetic(5, 20, 24, 1));
    let loader = Loader::new(shard.clone(), 16, Normalize::default_for(3), 2, 2);
    let request = |seed: u64, first: u32| BatchRequest { images: (first..first + 8).collect(), augment: Some(Augment::LABELLED), seed, first: 0 };
    for (seed, first) in [(1, 0), (1, 0), (2, 0), (1, 50)] {
        loader.submit(request(seed, first));
    }
    let a = loader.next();
    let b = loader.next();
    let c = loader.next();
    let d = loader.next();
    assert_eq!(a.pixels.len(), 8 * 3 * 16 * 16);
    assert_eq!(a.pixels, b.pixels, "same request, same batch");
    assert_ne!(a.pixels, c.pixels, "another seed, other crops");
    assert_eq!(d.images, (50..58).collect::<Vec<_>>(), "batches come out in submission order");
    assert_eq!(d.labels, d.images.iter().map(|&i| shard.labels()[i as usize]).collect::<Vec<_>>());
    let ptr = a.pixels.as_ptr();
    loader.recycle(a);
    loader.submit(request(1, 0));
    let e = loader.next();
    assert_eq!(e.pixels.as_ptr(), ptr, "a recycled batch's buffer is reused");
    assert_eq!(e.pixels, b.pixels);
}

#[test]
fn augmentation_does_not_depend_on_how_a_list_is_cut() {
    let shard = Arc::new(synthetic(5, 20, 24, 1));
    let loader = Loader::new(shard, 16, Normalize::default_for(3), 2, 2);
    let list: Vec<u32> = (10..22).collect();
    let cut = |at: usize| BatchRequest { images: list[at..].to_vec(), augment: Some(Augment::LABELLED), seed: 9, first: at };
    loader.submit(BatchRequest { images: list[..5].to_vec(), ..cut(0) });
    loader.submit(cut(5));
    loader.submit(cut(0));
    let (head, tail, whole) = (loader.next(), loader.next(), loader.next());
    assert_eq!([head.pixels, tail.pixels].concat(), whole.pixels, "two micro-batches (or two ranks' parts) equal the whole list");
}

#[test]
fn batch_seeds_and_rank_ranges() {
    assert_ne!(batch_seed(1, 0, 0, 0), batch_seed(1, 0, 0, 1));
    assert_ne!(batch_seed(1, 0, 1, 0), batch_seed(1, 1, 0, 0));
    let images: Vec<u32> = (0..10).collect();
    let parts: Vec<&[u32]> = (0..3).map(|r| &images[rank_range(images.len(), r, 3)]).collect();
    assert_eq!(parts.concat(), images, "ranks' parts are disjoint and complete");
    assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [3, 3, 4]);
}

#[test]
fn synthetic_is_seeded_balanced_and_time_ordered() {
    let a = synthetic(8, 30, 16, 5);
    let b = synthetic(8, 30, 16, 5);
    let c = synthetic(8, 30, 16, 6);
    assert_eq!(a.image(17), b.image(17));
    assert_ne!(a.image(17), c.image(17));
    let mut counts = [0; 8];
    a.labels().iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [30; 8]);
    let times = a.timestamps().unwrap();
    assert_eq!((times[0], times[239]), (0, 1_000_000));
    assert!(times.windows(2).all(|w| w[0] < w[1]), "time-ordered");
    assert_eq!(a.class_names()[5], "square 90deg", "8 classes: 2 orientations, 0° and 90°");
}

/// Nearest class mean on raw pixels (a linear classifier) must do poorly: colour and position
/// carry no class information, only shape and stripe orientation do.
#[test]
fn synthetic_classes_are_not_linearly_obvious() {
    let train = synthetic(10, 200, 32, 1);
    let test = synthetic(10, 50, 32, 2);
    let dim = 32 * 32 * 3;
    let mut means = vec![vec![0.0f64; dim]; 10];
    for i in 0..train.len() {
        let m = &mut means[train.labels()[i] as usize];
        train.image(i).iter().zip(m.iter_mut()).for_each(|(&p, s)| *s += p as f64 / 200.0);
    }
    let correct = (0..test.len())
        .filter(|&i| {
            let img = test.image(i);
            let best = (0..10)
                .min_by(|&a, &b| {
                    let d = |m: &Vec<f64>| img.iter().zip(m).map(|(&p, &q)| (p as f64 - q).powi(2)).sum::<f64>();
                    d(&means[a]).total_cmp(&d(&means[b]))
                })
                .unwrap();
            best == test.labels()[i] as usize
        })
        .count();
    let accuracy = correct as f64 / test.len() as f64;
    eprintln!("nearest-class-mean accuracy on synthetic pixels: {accuracy:.3} (chance 0.1)");
    assert!(accuracy < 0.35, "nearest-class-mean accuracy {accuracy}");
}
