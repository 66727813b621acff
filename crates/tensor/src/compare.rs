//! How rekindle compares two computations of the same tensor: backends, ranks, micro-batch splits
//! and PyTorch fixtures are all held to a norm-wise relative error.

/// `‖a − b‖ / ‖b‖` in f64 (b is the reference).
pub fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "comparing {} values with {}", a.len(), b.len());
    let diff: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum();
    let norm: f64 = b.iter().map(|&y| (y as f64).powi(2)).sum();
    (diff / norm.max(1e-30)).sqrt()
}
