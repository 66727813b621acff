//! Why a config is refused: a value that names its key, or a file that does not parse.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("invalid config: `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error("config {path}: {reason}")]
    Parse { path: String, reason: String },
}

pub fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), reason: reason.into() }
}
