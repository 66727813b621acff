//! rekindle's data layer: the shard format, importers, the synthetic generator, continual streams
//! and label splits, the replay buffer, and the background loader with augmentation.

mod error;
pub mod shard;

pub use error::DataError;
pub use shard::{Record, Shard, ShardSpec, ShardWriter};
