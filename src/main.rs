//! `rekindle`: compute-budgeted continual training of ViT/MAE models.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod data;
mod device;
mod eval;
mod info;
mod model_args;
mod plot;
mod progress_bar;
mod pretrain;
mod reconstruct;
mod run_claim;
mod report;
mod speedup;
mod sweep;
mod train;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "rekindle", version, about, long_about = None)]
#[command(after_help = "Start with `rekindle train configs/quickstart.yaml` (DietCL on a synthetic stream \
from a shipped MAE-pretrained ViT, about 35 s on a laptop CPU); `rekindle pretrain CONFIG.yaml` \
makes such a start for any config; `rekindle info` lists the model presets and \
`rekindle bench step --preset vit-tiny-4-32 --batch 64 --task classify` times training on this machine.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model over a continual stream (DietCL, CKCA, continuous training and baselines), e.g. `rekindle train configs/quickstart.yaml`.
    Train(train::TrainArgs),
    /// MAE pre-training of encoder and decoder on the images the stream never sees (`data.holdout`
    /// or `pretrain.data`), the shared start of every strategy, e.g. `rekindle pretrain configs/fashion-mnist/pretrained/dietcl.yaml`.
    Pretrain(train::TrainArgs),
    /// Train every point of a cross product of config values, each in its own run directory and
    /// resumably, then report them, e.g. `rekindle sweep configs/quickstart.yaml --set seed=0,1,2 --set strategy.name=dietcl,er`.
    Sweep(sweep::SweepArgs),
    /// Top-1 accuracy of a checkpoint on a shard, overall and per class.
    Eval(eval::EvalArgs),
    /// MAE reconstructions of a shard's first images: original | masked | reconstruction (PNG).
    Reconstruct(reconstruct::ReconstructArgs),
    /// One table comparing finished runs: A(T-1), average accuracy, forgetting, compute, A(t).
    Report(report::ReportArgs),
    /// Compute to reach the from-scratch accuracy: S/I per run, the shortened-schedule search, a plot.
    Speedup(speedup::SpeedupArgs),
    /// List the model presets: parameter counts and forward GFLOPs per image.
    Info(info::InfoArgs),
    /// Import datasets into shards and inspect them.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Measure throughput.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// A closed stdout (`rekindle data info F | head`) ends the process quietly, as it does any Unix
/// tool, instead of `println!` panicking on the broken pipe: Rust starts programs with SIGPIPE
/// ignored, so this restores the default action.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any thread exists; SIG_DFL is always valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train::run(&args),
        Command::Pretrain(args) => pretrain::run(&args),
        Command::Sweep(args) => sweep::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Speedup(args) => speedup::run(&args),
        Command::Reconstruct(args) => reconstruct::run(&args),
        Command::Info(args) => info::run(&args),
        Command::Data(cmd) => data::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        // A stop by a signal exits 128 + its number, as shells report it (130 for Ctrl-C).
        let interrupted = e.chain().any(|c| matches!(c.downcast_ref(), Some(rekindle_coordinator::TrainError::Interrupted { .. })));
        std::process::exit(if interrupted { train::stopped_status() } else { 1 });
    }
}
