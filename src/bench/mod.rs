//! `rekindle bench step|data|kernels|scaling|all-reduce`: throughput of training steps, of the
//! loader, of each op, and of data-parallel steps and all-reduces across world sizes.
//! `workload::Workload` is the training step `step` and `scaling` share; `measure` holds how
//! they take their numbers.

mod all_reduce;
mod data;
mod kernels;
mod measure;
mod scaling;
mod step;
mod workload;

/// The MFU denominator, which training lines share with `bench step`.
pub(crate) use workload::bf16_peak_tflops;

use anyhow::Result;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Time full training steps of one model on synthetic data.
    Step(step::StepArgs),
    /// Time the data loader: synthetic shard, random resized crop + flip + normalise, in batches.
    Data(data::DataArgs),
    /// Time each op of a training step at one model's shapes, against the device's measured copy
    /// and GEMM ceilings.
    Kernels(kernels::KernelArgs),
    /// Time data-parallel training steps at each world size up to the launcher's (run it under
    /// `mpirun -np N`): step time, all-reduce time and scaling efficiency.
    Scaling(scaling::ScalingArgs),
    /// Time all-reduces alone at each world size up to the launcher's, over MPI (host buffers)
    /// or NCCL (`--device cuda`): algorithm and bus bandwidth, as nccl-tests reports them.
    AllReduce(all_reduce::AllReduceArgs),
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Step(args) => step::run(&args),
        BenchCommand::Data(args) => data::run(&args),
        BenchCommand::Scaling(args) => scaling::run(&args),
        BenchCommand::Kernels(args) => kernels::run(&args),
        BenchCommand::AllReduce(args) => all_reduce::run(&args),
    }
}

