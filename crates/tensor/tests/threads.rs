//! The CPU backend gives bitwise the same results on any number of threads: every op of the
//! op-case table (at two models' shapes, large enough that every op splits its work), and GEMMs
//! at shapes around the sizes where the `gemm` crate changes how it blocks the k-reduction.
//! Whole runs rely on this (tests/threads.rs): `threads` is a key that cannot change results.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rekindle_tensor::cases::{op_cases, Shapes};
use rekindle_tensor::{Backend, CpuBackend, Gemm, PatchShape};

/// Thread counts compared against one thread (more than the machine's cores is fine: the result
/// must not depend on the count, however many cores run it).
const THREADS: [usize; 5] = [2, 3, 4, 6, 8];

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Every output of every case in the table at `shapes`, as bits, named.
fn case_outputs(be: &mut dyn Backend, shapes: &Shapes) -> Vec<(String, Vec<u32>)> {
    let mut all = Vec::new();
    for (i, case) in op_cases(shapes, 4.0).iter().enumerate() {
        let operands = case.prepare(be, i as u64);
        let result = case.run(be, &operands);
        for (slot, values) in case.outputs(be, &operands) {
            all.push((format!("{} {} output {slot}", case.name, case.shape), bits(&values)));
        }
        if let Some(r) = result {
            all.push((format!("{} {} result", case.name, case.shape), bits(&[r])));
        }
        operands.free(be);
    }
    all
}

/// What differs, bitwise, from the one-thread results `one` in each of `many` (one per count of
/// `THREADS`).
fn differences(one: &[(String, Vec<u32>)], many: &[Vec<(String, Vec<u32>)>]) -> Vec<String> {
    let mut differ = Vec::new();
    for (threads, results) in THREADS.into_iter().zip(many) {
        assert_eq!(one.len(), results.len());
        for ((name, a), (_, b)) in one.iter().zip(results) {
            let count = a.iter().zip(b).filter(|(x, y)| x != y).count();
            if count > 0 {
                differ.push(format!("{threads} threads: {name} ({count} of {} values)", a.len()));
            }
        }
    }
    differ
}

#[test]
fn every_op_case_is_bitwise_identical_for_any_thread_count() {
    // vit-micro-4-28 at 16×16 images and vit-tiny-4-32, at batches whose token rows (1088, 1040)
    // pass the gemm crate's 512-deep k-blocks.
    let micro = Shapes {
        batch: 64,
        tokens: 17,
        kept_tokens: 5,
        dim: 64,
        heads: 4,
        hidden: 256,
        classes: 10,
        patch: PatchShape { batch: 64, channels: 3, image_size: 16, patch: 4 },
        params: 100_000,
    };
    let tiny = Shapes {
        batch: 16,
        tokens: 65,
        kept_tokens: 17,
        dim: 192,
        heads: 3,
        hidden: 768,
        classes: 10,
        patch: PatchShape { batch: 16, channels: 3, image_size: 32, patch: 4 },
        params: 300_000,
    };
    let mut differ = Vec::new();
    for shapes in [micro, tiny] {
        let one = case_outputs(&mut CpuBackend::new(1), &shapes);
        let many: Vec<_> = THREADS.into_iter().map(|threads| case_outputs(&mut CpuBackend::new(threads), &shapes)).collect();
        differ.extend(differences(&one, &many));
    }
    assert!(differ.is_empty(), "results that differ from one thread's:\n  {}", differ.join("\n  "));
}

/// Products at the sizes where the `gemm` crate switches paths: blocks at most 64×64 (another
/// k-blocking), at most 256 outputs (dot-product kernels), single rows or columns (gemv); k past
/// 512 (several k-blocks); with every transpose, accumulation and a bias.
#[test]
fn gemm_is_bitwise_identical_for_any_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // k past 512 with blocks on both sides of 64×64; blocks of few outputs; a last block of one
    // row or column; a single column.
    let deep = [(256, 64, 1088), (192, 64, 1040), (64, 256, 1088), (1088, 64, 700), (65, 200, 1500), (300, 17, 2000), (17, 300, 2000), (129, 129, 513)];
    let narrow = [(256, 10, 200), (10, 256, 200), (257, 64, 64), (64, 257, 64), (1041, 1, 600)];
    let mut outputs: Vec<Vec<(String, Vec<u32>)>> = vec![Vec::new(); 1 + THREADS.len()];
    let mut backends: Vec<CpuBackend> = std::iter::once(1).chain(THREADS).map(CpuBackend::new).collect();
    for (m, n, k) in deep.into_iter().chain(narrow) {
        let [a, b, c0, bias] = [m * k, k * n, m * n, n].map(|len| (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<f32>>());
        for (trans_a, trans_b, accumulate, with_bias) in [(false, false, false, false), (true, false, true, false), (false, true, false, true), (true, true, true, true)] {
            for (be, out) in backends.iter_mut().zip(&mut outputs) {
                let (ta, tb, tc, tbias) = (be.upload_new(&a), be.upload_new(&b), be.upload_new(&c0), be.upload_new(&bias));
                be.gemm(&Gemm { trans_a, trans_b, accumulate, bias: with_bias.then_some(tbias), ..Gemm::new(m, n, k, ta, tb, tc) });
                let name = format!("gemm {m}x{n}x{k} trans_a={trans_a} trans_b={trans_b} accumulate={accumulate} bias={with_bias}");
                out.push((name, bits(&be.download_vec(tc))));
                [ta, tb, tc, tbias].into_iter().for_each(|t| be.free(t));
            }
        }
    }
    let differ = differences(&outputs[0], &outputs[1..]);
    assert!(differ.is_empty(), "products that differ from one thread's:\n  {}", differ.join("\n  "));
}
