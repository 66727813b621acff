use thiserror::Error;

/// Data errors, each naming the file (or setting) and the problem.
#[derive(Debug, Error)]
pub enum DataError {
    #[error("{path}: {problem}")]
    Invalid { path: String, problem: String },
    /// The OS's reason is part of the message and not a `source()` as well, or `{:#}` would
    /// print it twice.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("invalid data config: `{key}`: {reason}")]
    Config { key: String, reason: String },
}

impl DataError {
    pub fn invalid(path: impl std::fmt::Display, problem: impl Into<String>) -> DataError {
        DataError::Invalid { path: path.to_string(), problem: problem.into() }
    }
    pub fn io(path: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> DataError {
        let path = path.to_string();
        move |error| DataError::Io { path, error }
    }
}
