//! Elementwise ops: fills, residual adds, position-table adds, and exact-erf GELU.
//!
//! Loops are written over plain slices with no branches so the compiler vectorises them.

use rayon::prelude::*;
use wide::f32x8;

/// Elements per parallel task for streaming ops (large enough to amortise task overhead).
const CHUNK: usize = 1 << 14;

pub fn fill(dst: &mut [f32], value: f32) {
    dst.par_chunks_mut(CHUNK).for_each(|d| d.fill(value));
}

pub fn copy(dst: &mut [f32], src: &[f32]) {
    dst.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(|(d, s)| d.copy_from_slice(s));
}

pub fn axpy(dst: &mut [f32], alpha: f32, src: &[f32]) {
    dst.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(|(d, s)| {
        d.iter_mut().zip(s).for_each(|(d, s)| *d += alpha * s);
    });
}

/// `x[s, r, :] += table[r, :]` for every sample `s`.
pub fn add_rows(x: &mut [f32], table: &[f32]) {
    x.par_chunks_mut(table.len()).for_each(|sample| {
        sample.iter_mut().zip(table).for_each(|(x, t)| *x += t);
    });
}

/// Σ x, eight lanes at a time: a plain `f32` fold is sequential and never vectorises.
pub fn sum(x: &[f32]) -> f32 {
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    chunks.fold(f32x8::ZERO, |acc, c| acc + f32x8::new(c.try_into().unwrap())).reduce_add() + tail
}

/// Σ a·b, eight lanes at a time.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    ca.zip(cb).fold(f32x8::ZERO, |acc, (x, y)| f32x8::new(x.try_into().unwrap()).mul_add(f32x8::new(y.try_into().unwrap()), acc)).reduce_add()
        + tail
}

/// max x, eight lanes at a time.
pub fn max(x: &[f32]) -> f32 {
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let lanes = chunks.fold(f32x8::splat(f32::NEG_INFINITY), |acc, c| acc.max(f32x8::new(c.try_into().unwrap())));
    lanes.to_array().iter().fold(tail, |m, &v| m.max(v))
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1/sqrt(2π).
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

pub fn gelu_forward(out: &mut [f32], inp: &[f32]) {
    out.par_chunks_mut(CHUNK).zip(inp.par_chunks(CHUNK)).for_each(|(o, i)| {
        o.iter_mut().zip(i).for_each(|(o, &x)| *o = 0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2)));
    });
}

pub fn gelu_backward(dinp: &mut [f32], inp: &[f32], dout: &[f32]) {
    dinp.par_chunks_mut(CHUNK).zip(inp.par_chunks(CHUNK)).zip(dout.par_chunks(CHUNK)).for_each(|((di, i), d)| {
        for ((di, &x), &d) in di.iter_mut().zip(i).zip(d) {
            let cdf = 0.5 * (1.0 + erf(x * FRAC_1_SQRT_2));
            let pdf = FRAC_1_SQRT_2PI * exp(-0.5 * x * x);
            *di = d * (cdf + x * pdf);
        }
    });
}

/// erf(x) for f32 as a branch-free rational function of x (odd numerator over even denominator)
/// on the clamped range [-4, 4], where f32 erf is already ±1. Max error is a few ulp; it
/// vectorises, unlike a call into libm. Coefficients: the minimax fit used by Eigen and XLA.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p.mul_add(x2, 2.770_681_4e-8);
    p = p.mul_add(x2, -2.101_024e-6);
    p = p.mul_add(x2, -5.692_506_4e-5);
    p = p.mul_add(x2, -7.349_906_3e-4);
    p = p.mul_add(x2, -2.954_6e-3);
    p = p.mul_add(x2, -1.609_603_3e-2);
    let mut q = -1.456_607_2e-5_f32;
    q = q.mul_add(x2, -2.133_740_6e-4);
    q = q.mul_add(x2, -1.682_827e-3);
    q = q.mul_add(x2, -7.373_329e-3);
    q = q.mul_add(x2, -1.426_474e-2);
    x * p / q
}

/// e^x for f32, branch-free so it vectorises: x = n·ln2 + r with |r| ≤ ln2/2, a degree-6
/// polynomial for e^r, and 2^n built in the exponent bits. Relative error ≤ 2e-7 over the range
/// where the result is a normal f32; inputs are clamped to [-87, 88], so e^-1000 gives e^-87
/// (≈ 1.6e-38, zero for every softmax purpose) rather than a denormal.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Adding and removing 1.5·2^23 rounds to the nearest integer without a (non-vectorising) call.
    const ROUND: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    // ln2 split in a high part exact in f32 and a low correction (Cody-Waite reduction).
    let r = n.mul_add(-1.428_606_8e-6, n.mul_add(-0.693_145_75, x));
    let mut p = 1.0 / 720.0_f32;
    p = p.mul_add(r, 1.0 / 120.0);
    p = p.mul_add(r, 1.0 / 24.0);
    p = p.mul_add(r, 1.0 / 6.0);
    p = p.mul_add(r, 0.5);
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_libm_to_a_few_ulp() {
        let mut worst = 0.0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            let err = (erf(x) as f64 - libm::erf(x as f64)).abs();
            worst = worst.max(err);
        }
        assert!(worst < 5e-7, "erf max abs error {worst}");
    }

    #[test]
    fn exp_matches_libm_in_relative_error() {
        let mut worst = 0.0f64;
        for i in -80_000..=80_000 {
            let x = i as f32 * 1e-3;
            let exact = libm::exp(x as f64);
            worst = worst.max(((exp(x) as f64 - exact) / exact).abs());
        }
        assert!(worst < 5e-7, "exp max rel error {worst}");
        assert_eq!(exp(-1000.0), exp(-87.0));
    }
}
