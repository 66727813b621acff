//! One process: rank 0 of 1, and every collective leaves its buffer as it is.

use crate::{Comm, CommError, Reduce};

pub struct Single;

impl Comm for Single {
    fn rank(&self) -> usize {
        0
    }
    fn world(&self) -> usize {
        1
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn all_reduce(&self, _data: &mut [f32], _op: Reduce) -> Result<(), CommError> {
        Ok(())
    }
    fn broadcast(&self, _data: &mut Vec<u8>, _root: usize) -> Result<(), CommError> {
        Ok(())
    }
    fn barrier(&self) -> Result<(), CommError> {
        Ok(())
    }
    fn describe(&self) -> String {
        "single process".into()
    }
}
