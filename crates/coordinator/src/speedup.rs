//! Compute to reach the from-scratch accuracy (Verwimp et al. 2025, METHODS.md §3).
//!
//! Scratch trains `S` steps in a round and ends at `A*`. For any other run, `I` is the first
//! evaluated iteration of the same round with accuracy ≥ `A*`, and the speed-up is `S / I`
//! (in optimizer steps; the same ratio in FLOPs is reported beside it, since methods differ in
//! their cost per step). Because a cosine schedule only decays near its end, the first crossing
//! of a full-length run understates what a shorter schedule could do, so runs shortened to
//! `f·S` are compared too: the smallest `f` whose run ends at ≥ `A*`.

use crate::metrics::CurvePoint;

/// The evaluations of time step `step`, in order.
pub fn round_curve(curve: &[CurvePoint], step: usize) -> Vec<CurvePoint> {
    curve.iter().filter(|p| p.step == step).copied().collect()
}

/// The first evaluated point with accuracy ≥ `target`.
pub fn first_reaching(curve: &[CurvePoint], target: f64) -> Option<CurvePoint> {
    curve.iter().find(|p| p.accuracy >= target).copied()
}

/// One run against the scratch run, on one round.
#[derive(Clone, Debug, PartialEq)]
pub struct Speedup {
    /// `A*`, scratch's accuracy at the end of the round.
    pub target: f64,
    /// `S`, scratch's optimizer steps in the round.
    pub scratch_steps: usize,
    pub scratch_flops: f64,
    /// The first point reaching `A*`, if any.
    pub reached: Option<CurvePoint>,
}

impl Speedup {
    /// `S / I`, or None when the run never reaches `A*`.
    pub fn steps(&self) -> Option<f64> {
        self.reached.map(|p| self.scratch_steps as f64 / p.iteration as f64)
    }

    /// Scratch's FLOPs over the run's FLOPs up to `I`.
    pub fn flops(&self) -> Option<f64> {
        self.reached.map(|p| self.scratch_flops / p.round_flops)
    }
}

/// Compares `run` with `scratch`, both the curve of the same round. None when scratch has no
/// evaluation in that round.
pub fn speedup(scratch: &[CurvePoint], run: &[CurvePoint]) -> Option<Speedup> {
    let end = scratch.last()?;
    Some(Speedup { target: end.accuracy, scratch_steps: end.iteration, scratch_flops: end.round_flops, reached: first_reaching(run, end.accuracy) })
}

/// The smallest schedule fraction `f` whose run ends at ≥ `target`, from `(f, final accuracy)`
/// pairs; None when none does.
pub fn smallest_fraction(runs: &[(f64, f64)], target: f64) -> Option<f64> {
    runs.iter().filter(|(_, a)| *a >= target).map(|(f, _)| *f).min_by(f64::total_cmp)
}
