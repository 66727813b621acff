//! `rekindle pretrain CONFIG.yaml`: MAE pre-training of encoder and decoder on the images the
//! config's stream never sees (`data.holdout`, or `pretrain.data`), written as
//! `OUT/mae.safetensors` for `model.init`, with a reconstruction picture beside it. Takes the
//! same arguments, launchers and devices as `train`.

use crate::train::{nan_to_null, on_ranks, resume_hint, start_metrics, Session, TrainArgs};
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use rekindle_coordinator::pretrain::{pretrain, pretrain_images, PretrainProgress};
use rekindle_comm::{Comm, Launch};
use rekindle_model::{load_parts, Vit, BODY};

pub fn run(args: &TrainArgs) -> Result<()> {
    on_ranks(args, run_rank)
}

fn run_rank(args: &TrainArgs, launch: &Launch, comm: Box<dyn Comm>) -> Result<()> {
    let Session { config, out, mut backend, comm } = Session::open(args, launch, comm, "-pretrain")?;
    let (be, comm) = (backend.as_mut(), comm.as_ref());
    if comm.rank() != 0 {
        resume_hint(pretrain(&config, be, comm, &out, args.resume.is_some(), |_| {}), "pretrain", &out)?;
        return Ok(());
    }
    let (dir, mut metrics) = start_metrics(args, &config, &out, "iteration", "iteration")?;
    let bar = ProgressBar::new(config.pretrain.steps as u64);
    bar.set_style(ProgressStyle::with_template("pretrain {bar:30} {pos}/{len} {msg} eta {eta}").unwrap());
    let summary = pretrain(&config, be, comm, &out, args.resume.is_some(), |p| match p {
        PretrainProgress::Begin { steps, images, first } => {
            bar.set_position(first as u64);
            bar.suspend(|| eprintln!("MAE pre-training on {images} images, {steps} optimizer steps of {}", config.pretrain.effective_batch));
        }
        PretrainProgress::Iteration { iteration, loss, lr, grad_norm, images_per_sec } => {
            bar.set_position(iteration as u64 + 1);
            bar.set_message(format!("loss {loss:.4} {images_per_sec:.0} img/s"));
            metrics.write(serde_json::json!({
                "type": "pretrain", "iteration": iteration, "lr": lr, "loss_mae": nan_to_null(loss),
                "grad_norm": grad_norm, "images_per_sec": images_per_sec,
            }));
        }
        PretrainProgress::Checkpoint { iteration, path } => bar.suspend(|| eprintln!("iteration {iteration}: checkpoint {}", path.display())),
    });
    bar.finish_and_clear();
    metrics.finish()?;
    let summary = resume_hint(summary, "pretrain", &out)?;
    dir.write_summary(&summary)?;

    // What the decoder makes of eight pre-training images, from the file just written.
    let (shard, images, _) = pretrain_images(&config)?;
    let vit = Vit::new(be, &config.model_config()?, config.seed)?;
    load_parts(be, &vit, &summary.checkpoint, &BODY)?;
    let picture = out.join("reconstruction.png");
    crate::reconstruct::draw(be, &vit, shard, &images[..images.len().min(8)], config.seed, &picture)?;
    println!(
        "final MAE loss {:.4}; {} optimizer steps on {} images, {:.3e} FLOPs, {:.1} s -> {}",
        summary.final_loss,
        summary.optimizer_steps,
        summary.images,
        summary.flops,
        summary.wall_seconds,
        summary.checkpoint.display()
    );
    println!("start a stream from it with: rekindle train CONFIG.yaml --set model.init={}", summary.checkpoint.display());
    Ok(())
}
