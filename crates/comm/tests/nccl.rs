//! NCCL on this machine's first GPU at world size 1: init through a bootstrap communicator, and
//! all-reduce (sum and average) and broadcast over device and host buffers. At one rank every
//! reduction is the identity, so the checks that matter are out of place: the result lands in a
//! zeroed buffer only if NCCL ran (the host paths stage out of place too). Where the machine has
//! no GPU, it runs on the software GPU (crates/gpu-sim).
#![cfg(feature = "cuda")]

use rekindle_comm::{Bootstrap, Comm, Launch, Nccl, Reduce, Single};
use std::time::Duration;

#[test]
fn nccl_all_reduces_at_world_size_one() {
    rekindle_gpu_sim::install();
    if let Err(e) = Nccl::available() {
        rekindle_gpu_sim::skip(&e.to_string());
        return;
    }
    let ctx = cudarc::driver::CudaContext::new(0).expect("a GPU");
    let stream = ctx.new_stream().unwrap();
    let nccl = Nccl::init(&Launch::SINGLE, stream.clone(), Bootstrap::Comm(&Single), Duration::from_secs(60)).expect("NCCL init");
    assert_eq!((nccl.rank(), nccl.world()), (0, 1));
    let values: Vec<f32> = (0..1_000_003).map(|i| (i % 977) as f32 * 0.25 - 3.0).collect();
    let mut device = stream.clone_htod(&values).unwrap();
    nccl.all_reduce_slice(&mut device, Reduce::Sum).unwrap();
    nccl.synchronize("all-reduce").unwrap();
    assert_eq!(stream.clone_dtoh(&device).unwrap(), values, "a sum over one rank is the identity");
    let address = cudarc::driver::DevicePtrMut::device_ptr_mut(&mut device, &stream).0;
    assert!(nccl.all_reduce_device(address, values.len(), Reduce::Average).unwrap(), "NCCL reads device memory");
    nccl.synchronize("all-reduce").unwrap();
    assert_eq!(stream.clone_dtoh(&device).unwrap(), values);
    // Out of place: a collective that did not run leaves the destination zero.
    let mut to = stream.alloc_zeros::<f32>(values.len()).unwrap();
    let to_address = cudarc::driver::DevicePtrMut::device_ptr_mut(&mut to, &stream).0;
    nccl.all_reduce_into(address, to_address, values.len(), Reduce::Sum).unwrap();
    nccl.synchronize("all-reduce").unwrap();
    assert_eq!(stream.clone_dtoh(&to).unwrap(), values, "NCCL wrote the out-of-place result");
    let mut host = values.clone();
    nccl.all_reduce(&mut host, Reduce::Average).unwrap();
    assert_eq!(host, values, "the host path reads back what NCCL wrote (staged out of place)");
    let mut bytes = b"nccl id".to_vec();
    nccl.broadcast(&mut bytes, 0).unwrap();
    assert_eq!(bytes, b"nccl id");
    nccl.barrier().unwrap();
}
