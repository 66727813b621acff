//! The checks every section's validation shares, each naming the key it refuses.

use super::error::{invalid, ConfigError};

/// A finite number > 0.
pub fn positive(key: &str, v: f64) -> Result<(), ConfigError> {
    if v > 0.0 && v.is_finite() {
        return Ok(());
    }
    Err(invalid(key, format!("{v} must be a positive number")))
}

/// A finite number ≥ 0 (a negative weight would flip the sign of its term).
pub fn non_negative(key: &str, v: f64) -> Result<(), ConfigError> {
    if v >= 0.0 && v.is_finite() {
        return Ok(());
    }
    Err(invalid(key, format!("{v} must be a number ≥ 0")))
}

/// A number in `[0, 1)`.
pub fn fraction(key: &str, v: f64) -> Result<(), ConfigError> {
    if (0.0..1.0).contains(&v) {
        return Ok(());
    }
    Err(invalid(key, format!("{v} is outside [0, 1)")))
}

/// A number in `(0, 1]`.
pub fn share(key: &str, v: f64) -> Result<(), ConfigError> {
    if v > 0.0 && v <= 1.0 {
        return Ok(());
    }
    Err(invalid(key, format!("{v} is outside (0, 1]")))
}

/// A count ≥ 1.
pub fn at_least_one(key: &str, v: usize, what: &str) -> Result<(), ConfigError> {
    if v >= 1 {
        return Ok(());
    }
    Err(invalid(key, format!("must be at least 1 {what}")))
}

/// AdamW's `(β1, β2)`, each in `[0, 1)`.
pub fn betas(key: &str, (b1, b2): (f32, f32)) -> Result<(), ConfigError> {
    if (0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2) {
        return Ok(());
    }
    Err(invalid(key, format!("({b1}, {b2}): each beta must be in [0, 1)")))
}

/// A half-cosine's base LR (before scaling to `effective_batch`) and floor.
pub fn schedule(prefix: &str, lr: f64, min_lr: f64, effective_batch: usize) -> Result<(), ConfigError> {
    positive(&format!("{prefix}.lr"), lr)?;
    let scaled = crate::schedule::scaled_lr(lr, effective_batch);
    if !(min_lr >= 0.0 && min_lr <= scaled) {
        return Err(invalid(&format!("{prefix}.min_lr"), format!("{min_lr} must be between 0 and the scaled base LR {scaled}")));
    }
    Ok(())
}
