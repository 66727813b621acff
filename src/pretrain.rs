//! `rekindle pretrain CONFIG.yaml`: MAE pre-training of encoder and decoder on the images the
//! config's stream never sees (`data.holdout`, or `pretrain.data`), written as
//! `OUT/mae.safetensors` for `model.init`, with a reconstruction picture beside it. Takes the
//! same arguments, launchers and devices as `train`.

use crate::progress_bar::Progress as Bar;
use crate::train::{nan_to_null, on_ranks, print_results, resume_hint, Mfu, Session, TrainArgs};
use anyhow::Result;
use rekindle_coordinator::pretrain::kept_lines;
use rekindle_coordinator::Place;
use std::time::Duration;
use rekindle_coordinator::pretrain::{pretrain, pretrain_images, PretrainProgress};
use rekindle_comm::{Comm, Launch};
use rekindle_model::{load_parts, Vit, BODY};

pub fn run(args: &TrainArgs) -> Result<()> {
    on_ranks(args, run_rank)
}

fn run_rank(args: &TrainArgs, launch: &Launch, comm: Box<dyn Comm>) -> Result<()> {
    let mut session = Session::open(args, launch, comm, "-pretrain")?;
    let result = pretrain_rank(args, &mut session);
    session.conclude(result)
}

fn pretrain_rank(args: &TrainArgs, session: &mut Session) -> Result<()> {
    let opened = if session.comm.rank() == 0 { Some(session.start_metrics(kept_lines)?) } else { None };
    let Session { config, out, run_id, backend, comm, resumed, .. } = session;
    let place = Place { dir: Some(out), resume: *resumed, run_id };
    let (be, comm) = (backend.as_mut(), comm.as_ref());
    let Some((dir, mut metrics)) = opened else {
        resume_hint(pretrain(config, be, comm, place, |_| {}), "pretrain", out)?;
        return Ok(());
    };
    let mut bar = Bar::new(Duration::from_secs(args.progress_every));
    let mfu = Mfu::of(&be.name(), comm.world());
    // The images the pictures along the way show: those of the final one.
    let (shard, images, _) = pretrain_images(config)?;
    let shown = &images[..images.len().min(8)];
    let summary = pretrain(config, be, comm, place, |p| match p {
        PretrainProgress::Begin { steps, images, first } => {
            bar.println(format!("MAE pre-training on {images} images, {steps} optimizer steps of {}", config.pretrain.effective_batch));
            bar.stage("pretrain".into(), steps as u64, first as u64);
        }
        PretrainProgress::Iteration { iteration, loss, lr, grad_norm, images_per_sec, step_flops, flops } => {
            bar.update(iteration as u64 + 1, format!("loss {loss:.4} {images_per_sec:.0} img/s"));
            let mut line = serde_json::json!({
                "type": "pretrain", "iteration": iteration, "optimizer_step": iteration + 1, "flops": flops, "lr": lr,
                "loss_mae": nan_to_null(loss), "grad_norm": grad_norm, "images_per_sec": images_per_sec,
            });
            mfu.add_to(&mut line, step_flops, config.pretrain.effective_batch, images_per_sec);
            metrics.write(line);
        }
        PretrainProgress::Model { steps, be, vit } => {
            // Beside the run's other files, so that a resume writes it to TensorBoard again.
            let path = format!("reconstructions/pretrain-{steps}.png");
            let picture = crate::reconstruct::picture(be, vit, shard.clone(), shown, config.seed);
            match picture.and_then(|p| crate::reconstruct::save_png(&p.image, &out.join(&path))) {
                Ok(()) => metrics.write(serde_json::json!({
                    "type": "image", "iteration": steps - 1, "optimizer_step": steps, "tag": "pretrain/reconstruction", "path": path,
                })),
                Err(e) => bar.println(format!("warning: no reconstruction after {steps} steps: {e:#}")),
            }
        }
        PretrainProgress::Checkpoint { iteration, path } => bar.println(format!("iteration {iteration}: checkpoint {}", path.display())),
    });
    bar.clear();
    metrics.finish()?;
    let summary = resume_hint(summary, "pretrain", out)?;
    dir.write_summary(&summary)?;

    // What the decoder makes of eight pre-training images, from the file just written.
    let vit = Vit::new(be, &config.model_config()?, config.seed)?;
    load_parts(be, &vit, &summary.checkpoint, &BODY)?;
    let picture = out.join("reconstruction.png");
    crate::reconstruct::draw(be, &vit, shard, shown, config.seed, &picture)?;
    print_results(&format!(
        "final MAE loss {:.4}; {} optimizer steps on {} images, {:.3e} FLOPs, {:.1} s -> {}\nstart a stream from it with: rekindle train CONFIG.yaml --set model.init={}\n",
        summary.final_loss,
        summary.optimizer_steps,
        summary.images,
        summary.flops,
        summary.wall_seconds,
        summary.checkpoint.display(),
        summary.checkpoint.display()
    ));
    Ok(())
}
