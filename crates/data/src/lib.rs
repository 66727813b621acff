//! rekindle's data layer: the shard format, importers, the synthetic generator, continual streams
//! and label splits, the replay buffer, and the background loader with augmentation.

pub mod augment;
mod buffer;
mod error;
pub mod import;
mod loader;
pub mod shard;
mod stream;
mod synthetic;

pub use augment::{Augment, Normalize};
pub use buffer::{Balance, ReplayBuffer};
pub use error::DataError;
pub use loader::{batch_seed, rank_range, Batch, BatchRequest, Loader};
pub use shard::{Record, Shard, ShardSpec, ShardWriter};
pub use stream::{holdout, Scenario, Step, Stream, StreamConfig};
pub use synthetic::SyntheticSpec;
