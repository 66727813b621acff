use thiserror::Error;

/// Everything that can go wrong building, loading or saving a model, each naming its cause.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("invalid model config: `{key}`: {reason}")]
    Config { key: String, reason: String },
    #[error("checkpoint {path}: tensor `{tensor}` is missing (the model needs shape {expected:?})")]
    MissingTensor { path: String, tensor: String, expected: Vec<usize> },
    #[error("checkpoint {path}: tensor `{tensor}` has shape {found:?}, the model needs {expected:?}")]
    ShapeMismatch { path: String, tensor: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: String, reason: String },
    /// The OS's reason is part of the message and not a `source()` as well, or `{:#}` would
    /// print it twice.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
}
