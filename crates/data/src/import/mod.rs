//! Importers that turn public dataset formats into shards, so training only ever reads one
//! format: idx (MNIST, Fashion-MNIST), the CIFAR-10/100 binary versions, and ImageNet-style
//! folders of JPEG/PNG files.

mod cifar;
mod folder;
mod idx;

pub use cifar::{import_cifar10, import_cifar100};
pub use folder::import_folder;
pub use idx::import_idx;

use crate::{DataError, ShardSpec, ShardWriter};
use std::path::PathBuf;
use std::str::FromStr;

/// What an import wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportSummary {
    pub path: PathBuf,
    pub images: usize,
    pub classes: u32,
    pub height: u32,
    pub width: u32,
    pub channels: u32,
}

/// Which half of a dataset that ships pre-split (idx, CIFAR) to import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl FromStr for Split {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Split, DataError> {
        match s {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            _ => Err(DataError::Config { key: "split".into(), reason: format!("`{s}` is neither `train` nor `test`") }),
        }
    }
}

/// Finishes the shard and reports what went into it; every importer ends here.
fn finish(writer: ShardWriter, spec: ShardSpec) -> Result<ImportSummary, DataError> {
    let images = writer.len();
    let path = writer.finish()?;
    Ok(ImportSummary { path, images, classes: spec.classes, height: spec.height, width: spec.width, channels: spec.channels })
}
