//! A whole stream: for each time step, grow the head, add the step's labels to the buffer, set up
//! the round (re-init, teacher, levers), train the strategy's stages under the budget, evaluate,
//! and record metrics.

use crate::config::{BufferCut, ConfigError, InitLever, L2Reference, StrategyName, TrainConfig};
use crate::distill::Distiller;
use crate::budget::accumulation;
use crate::engine::{gather_parts, Engine, Regularizers, Sources, StepLosses};
use crate::levers::{sample_losses, select_old, shrink_perturb, L2Anchor};
use crate::metrics::{step_accuracy, CurvePoint, Evaluation, Summary};
use crate::optimizer::Optimizer;
use crate::strategy;
use crate::state::{RunDir, RunState};
use crate::targets::{current_rows, ClassMap};
use rekindle_dist::{Comm, CommError};
use rekindle_data::{holdout, DataError, Loader, Normalize, ReplayBuffer, Shard, Stream, StreamConfig, SyntheticSpec};
use rekindle_model::{load_checkpoint, load_parts, read_metadata, Flops, ModelConfig, ModelError, Vit, BODY};
use rekindle_tensor::Backend;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Comm(#[from] CommError),
    #[error("non-finite loss ({loss}) at time step {step}, stage `{stage}`, iteration {iteration}: lower optim.lr or set optim.clip_grad")]
    NonFinite { step: usize, stage: String, iteration: usize, loss: f32 },
    #[error("data: {0}")]
    Mismatch(String),
    #[error("interrupted at time step {step}, iteration {iteration}; the last checkpoint is kept")]
    Interrupted { step: usize, iteration: usize },
}

/// What the run reports as it goes (the CLI draws progress bars from it).
pub enum Progress<'a> {
    /// A time step begins: what it revealed, the buffer, and the stages it will train.
    Step { step: usize, steps: usize, revealed: usize, labelled: usize, mae_images: usize, buffer: usize, stages: &'a [crate::StagePlan] },
    Stage { step: usize, steps: usize, stage: &'a str, iterations: usize },
    Iteration { step: usize, stage: &'a str, iteration: usize, losses: &'a StepLosses, lr: f64, images_per_sec: f64 },
    /// An evaluation inside a time step (`budget.eval_every`), or at its end.
    Curve(&'a CurvePoint),
    Evaluated(&'a Evaluation),
    /// The data-selection lever kept `kept` of `old` old samples.
    Selected { step: usize, kept: usize, old: usize },
}

/// Loads `spec` (a shard path or `synthetic`) for the train (`test = false`) or test split.
pub fn open_data(spec: &str, config: &TrainConfig, test: bool) -> Result<Shard, DataError> {
    if spec != "synthetic" {
        return Shard::open(Path::new(spec));
    }
    let s = &config.data.synthetic;
    let per_class = if test { s.test_per_class } else { s.train_per_class };
    // Train and test draw different images from the same classes.
    let seed = config.seed.wrapping_mul(2).wrapping_add(test as u64);
    SyntheticSpec { classes: s.classes, per_class, size: s.size, seed, drift: s.drift }.generate(if test { "synthetic test" } else { "synthetic train" })
}

/// Refuses an effective batch that is not a whole number of micro-batches on every rank.
pub(crate) fn check_ranks(key: &str, effective: usize, micro: usize, world: usize) -> Result<(), ConfigError> {
    if accumulation(effective, micro, world).is_none() {
        return Err(ConfigError::Invalid {
            key: key.into(),
            reason: format!("the effective batch {effective} is not a whole number of micro-batches of {micro} on each of {world} ranks"),
        });
    }
    Ok(())
}

/// Refuses a shard whose images the model cannot take.
pub(crate) fn check_images(shard: &Shard, model: &ModelConfig, preset: &str) -> Result<(), TrainError> {
    let spec = shard.spec();
    if spec.channels as usize != model.channels || spec.height != spec.width {
        return Err(TrainError::Mismatch(format!(
            "{} holds {}x{}x{} images; model {preset} takes {} channels (square images)",
            shard.path(),
            spec.height,
            spec.width,
            spec.channels,
            model.channels
        )));
    }
    Ok(())
}

/// Trains the whole stream on `comm`'s ranks. With `run_dir`, rank 0 checkpoints every time step
/// there; with `resume`, every rank first continues from that directory's last completed time
/// step, whatever world size wrote it. Every rank returns the same summary.
pub fn train(config: &TrainConfig, be: &mut dyn Backend, comm: &dyn Comm, run_dir: Option<&Path>, resume: bool, mut report: impl FnMut(Progress)) -> Result<Summary, TrainError> {
    let start = Instant::now();
    let mut model_config = config.model_config()?;
    check_ranks("budget.micro_batch", config.budget.effective_batch, config.budget.micro_batch, comm.world())?;
    let train = Arc::new(open_data(&config.data.train, config, false)?);
    let test = Arc::new(open_data(&config.data.test, config, true)?);
    let spec = train.spec();
    check_images(&train, &model_config, &config.model.preset)?;
    if test.spec().channels != spec.channels || test.spec().classes != spec.classes {
        return Err(TrainError::Mismatch(format!("{} and {} differ in channels or classes", train.path(), test.path())));
    }
    let stream_config = StreamConfig { scenario: config.stream.scenario, steps: config.stream.steps, label_rate: config.stream.label_rate, seed: config.seed };
    let (_, streamed) = holdout(train.labels(), spec.classes, config.data.holdout);
    let stream = Stream::build_over(&streamed, train.labels(), train.timestamps(), spec.classes, &stream_config)?;

    let dir = run_dir.map(RunDir::new).transpose()?;
    let saved = match (&dir, resume) {
        (Some(d), true) => d.load_state::<RunState>()?,
        _ => None,
    };
    let mut map = saved.as_ref().map_or_else(ClassMap::default, |s| s.classes.clone());
    map.add(&stream.steps[0].classes);
    model_config.classes = map.len();
    let mut vit = initial_model(be, config, &model_config, config.seed)?;
    if let (Some(s), Some(d)) = (&saved, &dir) {
        load_checkpoint(be, &vit, &d.model_path(&RunDir::step_name(s.completed_steps - 1)))?;
    }
    let size = model_config.image_size;
    let norm = Normalize::default_for(model_config.channels);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4);
    let train_loader = Loader::new(train.clone(), size, norm.clone(), threads, 4);
    let test_loader = Loader::new(test.clone(), size, norm, threads, 4);
    let mut engine = Engine::new(config.budget.micro_batch, config.strategy.mae_weight, config.augment.label_smoothing, config.augment.enabled, config.augment.mixing, config.seed);
    let mut optimizer = Optimizer::new(be, &vit, &config.optim);
    let mut buffer = ReplayBuffer::new(strategy::buffer_balance(config), config.strategy.buffer_capacity, config.seed);
    if config.strategy.buffer_cut == BufferCut::SmallestStep {
        buffer = buffer.with_equal_steps();
    }

    let mut summary = Summary::new(config);
    let mut iteration = 0usize;
    let mut first_step = 0;
    if let (Some(s), Some(d)) = (saved, &dir) {
        d.restore_optimizer(be, &mut optimizer, &RunDir::step_name(s.completed_steps - 1), s.optimizer_step)?;
        (first_step, iteration, buffer, summary) = (s.completed_steps, s.iteration, s.buffer, s.summary);
    }
    // Wall time already added to `summary` (at each checkpoint), so a resumed run sums its parts.
    let mut wall_saved = 0.0;
    let mut extra = Regularizers::default();
    let test_images: Vec<u32> = (0..test.len() as u32).collect();
    for (t, step) in stream.steps.iter().enumerate().skip(first_step) {
        let old_classes = map.len();
        if map.add(&step.classes) > 0 {
            vit.grow_head(be, map.len(), config.seed ^ (t as u64 + 1))?;
            engine.head_grew(be, map.len());
        }
        buffer.add_step(t as u32, &step.labelled, train.labels());
        // The first step starts from the model as built; later re-inits go back to the same start
        // (a fresh head, and the body of `model.init` when set).
        if strategy::retrains_from_scratch(config) && t > 0 {
            restart(be, &vit, config, config.seed ^ (0x05C4_A7C4 + t as u64))?;
        }
        // Each step's compute is counted with the head that step trains, so the count does not
        // depend on where a (resumed) run started.
        let flops = Flops::of(&vit.config);
        let flops_at_start = summary.flops;
        let rounds = config.strategy.name.trains_rounds();
        let pool = if rounds {
            let (new, old) = strategy::round_pool(config, &stream, t);
            let old = setup_round(config, be, &mut vit, &mut engine, &train_loader, train.labels(), &mut extra, &stream, &map, t, old_classes, old, &flops, &mut summary, &mut report, comm)?;
            new.into_iter().chain(old).collect()
        } else {
            step.labelled.clone()
        };
        let seen = stream.classes_seen(t);
        let seen_mask = map.mask(&seen);
        let (current_mask, current_spread) = current_rows(&map, config.stream.scenario, rounds, config.augment.current_smoothing, &step.classes, &seen);
        let mae_source = strategy::mae_images(step, config.strategy.mae_source);
        let sources = Sources {
            step: t as u32,
            current: &mae_source,
            labelled: &pool,
            buffer: &buffer,
            buffer_past_only: false,
            current_mask: &current_mask,
            current_spread: &current_spread,
            seen_mask: &seen_mask,
        };
        let stages = strategy::plan(config, t);
        report(Progress::Step { step: t, steps: stream.steps.len(), revealed: step.images.len(), labelled: step.labelled.len(), mae_images: mae_source.len(), buffer: buffer.len(), stages: &stages });
        let step_iterations: usize = stages.iter().map(|s| s.steps).sum();
        let mut round_iteration = 0;
        for (s, stage) in stages.iter().enumerate() {
            if s == 0 || config.optim.fresh_per_stage {
                optimizer.reset(be, &vit);
            }
            report(Progress::Stage { step: t, steps: stream.steps.len(), stage: stage.name, iterations: stage.steps });
            let counts = stage.mix.counts(config.budget.effective_batch);
            let src = Sources { buffer_past_only: stage.buffer_past_only, ..sources };
            for i in 0..stage.steps {
                crate::fault::at(|| format!("train:{t}:{}:{i}", stage.name));
                let started = Instant::now();
                let lr = stage.lr.lr(i);
                let every = config.strategy.term_norms_every;
                engine.term_norms = every > 0 && (i == 0 || i % every == 0);
                let losses = engine.step(be, &vit, &map, &train_loader, &mut optimizer, &src, counts, iteration as u64, lr, &mut extra, comm)?;
                if !losses.total.is_finite() || !losses.grad_norm.is_finite() {
                    return Err(TrainError::NonFinite { step: t, stage: stage.name.into(), iteration: i, loss: losses.total });
                }
                if losses.stop {
                    return Err(TrainError::Interrupted { step: t, iteration: i });
                }
                let teacher = if extra.distill.is_some() { flops.classify_forward * counts.labelled as f64 } else { 0.0 };
                let per_image = flops.train(flops.mae_forward) * counts.unlabelled as f64
                    + flops.train(flops.classify_forward) * (counts.labelled + counts.buffer) as f64;
                summary.count_step(per_image + teacher);
                let images_per_sec = config.budget.effective_batch as f64 / started.elapsed().as_secs_f64();
                report(Progress::Iteration { step: t, stage: stage.name, iteration: i, losses: &losses, lr, images_per_sec });
                iteration += 1;
                round_iteration += 1;
                let k = config.budget.eval_every;
                if k > 0 && round_iteration % k == 0 && round_iteration < step_iterations {
                    let row = evaluate(be, &vit, &mut engine, &test_loader, &test, &test_images, &stream, &map, t, config.data.eval_batch, comm)?;
                    let point = CurvePoint { step: t, iteration: round_iteration, round_flops: summary.flops - flops_at_start, accuracy: step_accuracy(&row, t, config.stream.scenario) };
                    summary.curve.push(point);
                    report(Progress::Curve(&point));
                }
            }
        }
        crate::fault::at(|| format!("eval:{t}"));
        let row = evaluate(be, &vit, &mut engine, &test_loader, &test, &test_images, &stream, &map, t, config.data.eval_batch, comm)?;
        let evaluation = summary.record_eval(t, row, config.stream.scenario);
        let point = CurvePoint { step: t, iteration: round_iteration, round_flops: summary.flops - flops_at_start, accuracy: evaluation.accuracy };
        summary.curve.push(point);
        report(Progress::Curve(&point));
        report(Progress::Evaluated(&evaluation));
        if let (Some(d), 0) = (&dir, comm.rank()) {
            summary.wall_seconds += start.elapsed().as_secs_f64() - wall_saved;
            wall_saved = start.elapsed().as_secs_f64();
            let state = RunState { completed_steps: t + 1, iteration, classes: map.clone(), buffer: buffer.clone(), summary: summary.clone(), optimizer_step: optimizer.step_count() };
            d.save(be, &vit, &optimizer, &state)?;
        }
    }
    summary.finish(start.elapsed().as_secs_f64() - wall_saved);
    Ok(summary)
}

/// The model a stream starts from: a fresh init from `seed`, with the encoder and decoder of
/// `model.init` when it is set; the head is always fresh, whatever the file holds.
pub fn initial_model(be: &mut dyn Backend, config: &TrainConfig, model_config: &ModelConfig, seed: u64) -> Result<Vit, TrainError> {
    let vit = Vit::new(be, model_config, seed)?;
    if let Some(path) = &config.model.init {
        check_init(config, path)?;
    }
    load_init_body(be, &vit, config)?;
    Ok(vit)
}

/// Sends `vit` back to the start of the stream, as GDumb's and scratch's retraining "from
/// scratch" does: every parameter drawn afresh from `seed`, then the encoder and decoder of
/// `model.init` when it is set, so a pretrained comparison retrains from the pretrained weights.
pub fn restart(be: &mut dyn Backend, vit: &Vit, config: &TrainConfig, seed: u64) -> Result<(), TrainError> {
    vit.reinitialize(be, seed);
    load_init_body(be, vit, config)
}

/// Loads the encoder and decoder of `model.init`, when set, over `vit`.
fn load_init_body(be: &mut dyn Backend, vit: &Vit, config: &TrainConfig) -> Result<(), TrainError> {
    if let Some(path) = &config.model.init {
        load_parts(be, vit, path, &BODY)?;
    }
    Ok(())
}

/// Refuses a `model.init` that `rekindle pretrain` trained on images this stream would see: the
/// same `data.train` shard with another (or no) holdout.
fn check_init(config: &TrainConfig, path: &Path) -> Result<(), TrainError> {
    let meta = read_metadata(path)?;
    let Some(source) = meta.get(crate::pretrain::META_SOURCE) else { return Ok(()) };
    if source == "synthetic" || *source != config.data.train {
        return Ok(());
    }
    let held = meta.get(crate::pretrain::META_HOLDOUT).and_then(|h| h.parse::<f32>().ok());
    if held != Some(config.data.holdout) {
        return Err(ConfigError::Invalid {
            key: "data.holdout".into(),
            reason: format!(
                "model.init {} was pre-trained on {} of {source}, but this stream holds out {}: it would train on images the pretrained start has seen; set data.holdout to the pre-training value",
                path.display(),
                held.map_or("all".to_string(), |h| format!("the {h} held out")),
                config.data.holdout
            ),
        }
        .into());
    }
    Ok(())
}

/// `a[t][·]`: the accuracy on each step's test set so far; each rank predicts its part.
#[allow(clippy::too_many_arguments)]
fn evaluate(
    be: &mut dyn Backend,
    vit: &Vit,
    engine: &mut Engine,
    loader: &Loader,
    test: &Shard,
    images: &[u32],
    stream: &Stream,
    map: &ClassMap,
    t: usize,
    batch: usize,
    comm: &dyn Comm,
) -> Result<Vec<f64>, CommError> {
    let correct = gather_parts(comm, images.len(), |part| {
        let rows = engine.predict(be, vit, loader, &images[part.clone()], batch);
        rows.iter().zip(&images[part]).map(|(&r, &i)| (map.class(r) == test.labels()[i as usize]) as u8 as f32).collect()
    })?;
    Ok((0..=t)
        .map(|i| {
            let subset = stream.test_images(i, test.labels(), test.timestamps());
            subset.iter().filter(|&&j| correct[j as usize] > 0.5).count() as f64 / subset.len().max(1) as f64
        })
        .collect())
}

/// Prepares round `t > 0` of `scratch`, `warmstart`, `ckca` or `continuous` from the model as
/// the previous round left it (the "old model"): CKCA's teacher, and continuous training's data
/// selection, shrink-and-perturb and L2 anchor. Returns the old samples the round trains on.
#[allow(clippy::too_many_arguments)]
fn setup_round(
    config: &TrainConfig,
    be: &mut dyn Backend,
    vit: &mut Vit,
    engine: &mut Engine,
    loader: &Loader,
    labels: &[u32],
    extra: &mut Regularizers,
    stream: &Stream,
    map: &ClassMap,
    t: usize,
    old_classes: usize,
    old: Vec<u32>,
    flops: &Flops,
    summary: &mut Summary,
    report: &mut impl FnMut(Progress),
    comm: &dyn Comm,
) -> Result<Vec<u32>, TrainError> {
    if let Some(anchor) = extra.anchor.take() {
        anchor.free(be);
    }
    if t == 0 {
        return Ok(old);
    }
    if config.strategy.name == StrategyName::Ckca {
        match &mut extra.distill {
            Some(teacher) => teacher.sync(be, vit, old_classes)?,
            None => extra.distill = Some(Distiller::new(be, vit, old_classes, &config.ckca)?),
        }
    }
    if config.strategy.name != StrategyName::Continuous {
        return Ok(old);
    }
    let c = &config.continuous;
    let mut old = old;
    if (c.drop_easy > 0.0 || c.drop_hard > 0.0) && !old.is_empty() {
        // Each old sample is scored once, by the old model, over the classes it knew; each rank
        // scores its part.
        let known = map.mask(&stream.classes_seen(t - 1));
        let losses = gather_parts(comm, old.len(), |part| {
            let logits = engine.logits(be, vit, loader, &old[part.clone()], config.data.eval_batch);
            let rows: Vec<usize> = old[part].iter().map(|&i| map.row(labels[i as usize])).collect();
            sample_losses(&logits, &rows, &known)
        })?;
        summary.count_flops(flops.classify_forward * old.len() as f64);
        let before = old.len();
        old = select_old(&old, &losses, c.drop_easy, c.drop_hard);
        report(Progress::Selected { step: t, kept: old.len(), old: before });
    }
    let old_params = (c.l2 > 0.0 && c.l2_reference == L2Reference::Old).then(|| vit.download_params(be));
    if c.init == InitLever::ShrinkPerturb {
        shrink_perturb(be, vit, c.shrink, c.perturb, old_classes, config.seed ^ (0x5B_12E + t as u64));
    }
    if c.l2 > 0.0 {
        let reference = old_params.unwrap_or_else(|| vit.download_params(be));
        extra.anchor = Some(L2Anchor::new(be, vit, c.l2, &reference));
    }
    Ok(old)
}
