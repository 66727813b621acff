//! The background loader: a producer thread turns batch requests into ready micro-batches of
//! normalised f32 images (`[n, C, size, size]`), decoding and augmenting on its own worker pool.
//!
//! - Order: batches come out in the order they were submitted.
//! - Determinism: image `k` of a batch draws its augmentation from `(seed, first + k)` alone, where
//!   `first` is the batch's position in the list it was cut from. The result depends neither on
//!   thread scheduling nor on how the list is cut into micro-batches or split across ranks;
//!   `batch_seed` derives the list's seed from (seed, time step, iteration, source).
//! - Memory: the ready queue is bounded (`prefetch`), and returned batches (`recycle`) are reused,
//!   so nothing is allocated per batch after warm-up.

use crate::augment::{centre_crop, render, Augment, Normalize};
use crate::Shard;
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::sync::Arc;
use std::thread::JoinHandle;

/// One micro-batch to prepare.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchRequest {
    /// Indices into the shard.
    pub images: Vec<u32>,
    /// `None`: the eval transform (centre crop, no randomness).
    pub augment: Option<Augment>,
    /// Seed of the list the images were cut from.
    pub seed: u64,
    /// Position of `images[0]` in that list.
    pub first: usize,
}

/// A ready micro-batch. Its vectors keep their capacity when recycled.
#[derive(Debug, Default)]
pub struct Batch {
    /// `[len, channels, size, size]`, normalised.
    pub pixels: Vec<f32>,
    pub labels: Vec<u32>,
    pub images: Vec<u32>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A list's seed from (seed, time step, iteration, source).
pub fn batch_seed(seed: u64, step: u64, iteration: u64, source: u64) -> u64 {
    let mut h = seed ^ 0x5851_F42D_4C95_7F2D;
    for v in [step, iteration, source] {
        h = (h ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
    h
}

/// This rank's contiguous part of a list of `len` items; the parts of ranks `0..world` are
/// disjoint, cover the list, and differ in size by at most one.
pub fn rank_range(len: usize, rank: usize, world: usize) -> std::ops::Range<usize> {
    rank * len / world..(rank + 1) * len / world
}

pub struct Loader {
    requests: Option<Sender<BatchRequest>>,
    ready: Receiver<Batch>,
    free: Sender<Batch>,
    producer: Option<JoinHandle<()>>,
}

impl Loader {
    /// A loader over `shard` producing `size × size` images on `threads` worker threads, with at
    /// most `prefetch` batches ready ahead of the consumer.
    pub fn new(shard: Arc<Shard>, size: usize, norm: Normalize, threads: usize, prefetch: usize) -> Loader {
        let (req_tx, req_rx) = unbounded::<BatchRequest>();
        let (ready_tx, ready_rx) = bounded::<Batch>(prefetch.max(1));
        let (free_tx, free_rx) = unbounded::<Batch>();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("rekindle-loader-{i}"))
            .build()
            .expect("cannot start loader threads");
        let producer = std::thread::Builder::new()
            .name("rekindle-loader".into())
            .spawn(move || {
                for req in req_rx {
                    let mut batch = free_rx.try_recv().unwrap_or_default();
                    pool.install(|| fill(&mut batch, &shard, &req, size, &norm));
                    if ready_tx.send(batch).is_err() {
                        return; // the loader was dropped
                    }
                }
            })
            .expect("cannot start the loader thread");
        Loader { requests: Some(req_tx), ready: ready_rx, free: free_tx, producer: Some(producer) }
    }

    /// Queues a batch; `next` returns batches in submission order.
    pub fn submit(&self, req: BatchRequest) {
        self.requests.as_ref().expect("loader open").send(req).expect("loader thread alive");
    }

    /// Blocks until the next submitted batch is ready.
    pub fn next(&self) -> Batch {
        self.ready.recv().expect("a batch was submitted and the loader thread is alive")
    }

    /// Returns a consumed batch so its buffers are reused.
    pub fn recycle(&self, batch: Batch) {
        let _ = self.free.send(batch);
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.requests = None; // ends the producer's request loop
        while self.ready.try_recv().is_ok() {}
        if let Some(p) = self.producer.take() {
            // Drain so a producer blocked on a full queue can finish, then join it.
            while !p.is_finished() {
                let _ = self.ready.recv_timeout(std::time::Duration::from_millis(10));
            }
            let _ = p.join();
        }
    }
}

fn fill(batch: &mut Batch, shard: &Shard, req: &BatchRequest, size: usize, norm: &Normalize) {
    let spec = shard.spec();
    let (h, w, c) = (spec.height as usize, spec.width as usize, spec.channels as usize);
    let per = c * size * size;
    batch.pixels.resize(req.images.len() * per, 0.0);
    batch.images.clear();
    batch.images.extend_from_slice(&req.images);
    batch.labels.clear();
    batch.labels.extend(req.images.iter().map(|&i| shard.labels()[i as usize]));
    batch.pixels.par_chunks_mut(per).zip(req.images.par_iter()).enumerate().for_each(|(k, (out, &i))| {
        let crop = match &req.augment {
            Some(a) => a.crop(&mut ChaCha8Rng::seed_from_u64(req.seed ^ ((req.first + k) as u64).wrapping_mul(0xA24B_AED4_963E_E407)), h, w),
            None => centre_crop(h, w),
        };
        render(shard.image(i as usize), h, w, c, crop, size, norm, out);
    });
}
