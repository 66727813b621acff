//! The state of one training stream and the steps every strategy is made of. A [`Trainer`]
//! owns the model, the engine (with its optimizer), the buffer, the class map, the summary, the
//! loaders and the stream; `run::train` drives it through each time step:
//! [`Trainer::begin_step`], the strategy's set-up, [`Trainer::run_stage`] per stage, then
//! [`Trainer::end_step`] (evaluation and checkpoint). What a resume needs is a projection of
//! it, [`RunState`].

use crate::config::{BufferCut, TrainConfig};
use crate::engine::{check_devices, gather_parts, Engine, EngineSettings, Pools, Regularizers, Sources, StepSpec};
use crate::error::TrainError;
use crate::init::{initial_model, restart};
use crate::inputs::{check_images, check_ranks, loader_threads, open_data};
use crate::metrics::{step_accuracy, CurvePoint, Summary};
use crate::progress::Progress;
use crate::run_dir::{Checkpoint, RunDir, META_CLASSES, META_TIME_STEP};
use crate::selection::sample_losses;
use crate::stage::StagePlan;
use crate::targets::ClassMap;
use rekindle_comm::Comm;
use rekindle_data::{holdout, Balance, Loader, Normalize, ReplayBuffer, Shard, Stream, StreamConfig};
use rekindle_model::{load_checkpoint, Flops, Optimizer, Vit, ALL_PARTS};
use rekindle_tensor::Backend;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Everything besides tensors that a resumed run needs to continue exactly (`state.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Time steps finished (trained and evaluated).
    pub completed_steps: usize,
    /// Global optimizer iteration (it seeds draws, masks and augmentation).
    pub iteration: usize,
    pub classes: ClassMap,
    pub buffer: ReplayBuffer,
    pub summary: Summary,
    pub optimizer_step: u32,
}

/// Where a run keeps its checkpoints, and whether it continues from them.
pub struct Place<'p> {
    pub dir: Option<&'p Path>,
    pub resume: bool,
}

/// What one time step trains on, besides the buffer: the images of the MAE term, the labelled
/// pool, and the softmax and smoothing rows of the current and buffer losses.
pub struct StepData {
    pub mae_images: Vec<u32>,
    pub labelled: Vec<u32>,
    pub current_mask: Vec<f32>,
    pub current_spread: Vec<f32>,
    pub seen_mask: Vec<f32>,
}

pub struct Trainer<'t> {
    pub config: &'t TrainConfig,
    pub be: &'t mut dyn Backend,
    pub comm: &'t dyn Comm,
    pub vit: Vit,
    pub engine: Engine,
    pub buffer: ReplayBuffer,
    pub map: ClassMap,
    pub summary: Summary,
    pub stream: Stream,
    pub train: Arc<Shard>,
    test: Arc<Shard>,
    train_loader: Loader,
    test_loader: Loader,
    /// Global optimizer iteration.
    iteration: usize,
    /// The first time step still to train (after a resume, the one after the checkpoint).
    pub first_step: usize,
    dir: Option<RunDir>,
    started: Instant,
    /// Wall time already added to `summary` (at each checkpoint), so a resumed run sums its parts.
    wall_saved: f64,
    /// The summary's FLOPs when the current time step began (curve points count from there).
    flops_at_step: f64,
    /// Optimizer steps taken in the current time step, and how many it plans.
    step_iteration: usize,
    step_iterations: usize,
    report: &'t mut dyn FnMut(Progress),
}

impl<'t> Trainer<'t> {
    /// Opens the data, builds the stream and the starting model, and, with `place.resume`,
    /// continues from the run directory's last completed time step (whatever world size wrote
    /// it). `balance` is how the strategy samples its buffer.
    pub fn open(config: &'t TrainConfig, be: &'t mut dyn Backend, comm: &'t dyn Comm, place: Place, balance: Balance, report: &'t mut dyn FnMut(Progress)) -> Result<Trainer<'t>, TrainError> {
        let started = Instant::now();
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

        let dir = place.dir.map(RunDir::create).transpose()?;
        let saved: Option<RunState> = match (&dir, place.resume) {
            (Some(d), true) => d.load_state()?,
            _ => None,
        };
        let mut map = saved.as_ref().map_or_else(ClassMap::default, |s| s.classes.clone());
        map.add(&stream.steps[0].classes);
        model_config.classes = map.len();
        let vit = initial_model(be, config, &model_config, config.seed)?;
        if let (Some(s), Some(d)) = (&saved, &dir) {
            load_checkpoint(be, &vit, &d.model_path(&RunDir::step_name(s.completed_steps - 1)))?;
        }
        let size = model_config.image_size;
        let norm = Normalize::default_for(model_config.channels);
        let train_loader = Loader::new(train.clone(), size, norm.clone(), loader_threads(), 4);
        let test_loader = Loader::new(test.clone(), size, norm, loader_threads(), 4);
        let optimizer = Optimizer::new(be, &vit, &config.optim.optimizer());
        let engine = Engine::new(EngineSettings::training(config), optimizer);
        let mut buffer = ReplayBuffer::new(balance, config.strategy.buffer_capacity, config.seed);
        if config.strategy.buffer_cut == BufferCut::SmallestStep {
            buffer = buffer.with_equal_steps();
        }
        let mut trainer = Trainer {
            config,
            be,
            comm,
            vit,
            engine,
            buffer,
            map,
            summary: Summary::new(config),
            stream,
            train,
            test,
            train_loader,
            test_loader,
            iteration: 0,
            first_step: 0,
            dir,
            started,
            wall_saved: 0.0,
            flops_at_step: 0.0,
            step_iteration: 0,
            step_iterations: 0,
            report,
        };
        if let (Some(s), Some(d)) = (saved, &trainer.dir) {
            d.restore_optimizer(trainer.be, &mut trainer.engine.optimizer, &RunDir::step_name(s.completed_steps - 1), s.optimizer_step)?;
            (trainer.first_step, trainer.iteration, trainer.buffer, trainer.summary) = (s.completed_steps, s.iteration, s.buffer, s.summary);
        }
        Ok(trainer)
    }

    pub fn report(&mut self, progress: Progress) {
        (self.report)(progress)
    }

    /// Begins time step `t`: grows the head for its new classes, adds its labels to the buffer,
    /// and with `restarts` (after the first step) sends the model back to the stream's start.
    /// Returns the number of classes the model knew before.
    pub fn begin_step(&mut self, t: usize, restarts: bool) -> Result<usize, TrainError> {
        let step = &self.stream.steps[t];
        let old_classes = self.map.len();
        if self.map.add(&step.classes) > 0 {
            self.vit.grow_head(self.be, self.map.len(), self.config.seed ^ (t as u64 + 1))?;
            self.engine.head_grew(self.be, self.map.len());
        }
        self.buffer.add_step(t as u32, &step.labelled, self.train.labels());
        // The first step starts from the model as built; later re-inits go back to the same start
        // (a fresh head, and the body of `model.init` when set).
        if restarts && t > 0 {
            restart(self.be, &self.vit, self.config, self.config.seed ^ (0x05C4_A7C4 + t as u64))?;
        }
        self.flops_at_step = self.summary.flops;
        self.step_iteration = 0;
        Ok(old_classes)
    }

    /// Announces time step `t`'s plan (the CLI prints it) and remembers its length.
    pub fn announce(&mut self, t: usize, data: &StepData, stages: &[StagePlan]) {
        self.step_iterations = stages.iter().map(|s| s.steps).sum();
        let step = &self.stream.steps[t];
        let (steps, revealed, labelled, buffer) = (self.stream.steps.len(), step.images.len(), step.labelled.len(), self.buffer.len());
        self.report(Progress::Step { step: t, steps, revealed, labelled, mae_images: data.mae_images.len(), buffer, stages });
    }

    /// Trains one stage of time step `t` (the `index`-th): a fresh optimizer state where the
    /// config asks for one, then `stage.steps` optimizer steps, with evaluations every
    /// `budget.eval_every` steps.
    pub fn run_stage(&mut self, t: usize, index: usize, stage: &StagePlan, data: &StepData, extra: &mut Regularizers) -> Result<(), TrainError> {
        let config = self.config;
        if index == 0 || config.optim.fresh_per_stage {
            self.engine.optimizer.reset(self.be, &self.vit);
        }
        self.report(Progress::Stage { step: t, steps: self.stream.steps.len(), stage: stage.name, iterations: stage.steps });
        let counts = stage.mix.counts(config.budget.effective_batch);
        for i in 0..stage.steps {
            crate::fault::at(|| format!("train:{t}:{}:{i}", stage.name));
            let started = Instant::now();
            let lr = stage.lr.lr(i);
            let every = config.strategy.term_norms_every;
            self.engine.term_norms = every > 0 && (i == 0 || i % every == 0);
            let pools = Pools { step: t as u32, current: &data.mae_images, labelled: &data.labelled, buffer: &self.buffer, buffer_past_only: stage.buffer_past_only };
            let sources = Sources {
                pools,
                loader: &self.train_loader,
                map: &self.map,
                current_mask: &data.current_mask,
                current_spread: &data.current_spread,
                seen_mask: &data.seen_mask,
            };
            let spec = StepSpec { counts, iteration: self.iteration as u64, lr };
            let regularizers = Regularizers { distill: extra.distill.as_deref_mut(), anchor: extra.anchor };
            let losses = self.engine.step(self.be, &self.vit, &sources, spec, regularizers, self.comm)?;
            if !losses.total.is_finite() || !losses.grad_norm.is_finite() {
                return Err(TrainError::NonFinite { step: t, stage: stage.name.into(), iteration: i, loss: losses.total });
            }
            if losses.stop {
                return Err(TrainError::Interrupted { step: t, iteration: i });
            }
            self.summary.count_step(losses.flops);
            let images_per_sec = config.budget.effective_batch as f64 / started.elapsed().as_secs_f64();
            self.report(Progress::Iteration { step: t, stage: stage.name, iteration: i, losses: &losses, lr, images_per_sec });
            self.iteration += 1;
            self.step_iteration += 1;
            let k = config.budget.eval_every;
            if k > 0 && self.step_iteration.is_multiple_of(k) && self.step_iteration < self.step_iterations {
                let row = self.evaluate(t)?;
                self.curve_point(t, step_accuracy(&row, t, config.stream.scenario));
            }
        }
        Ok(())
    }

    /// Ends time step `t`: evaluates on every step's test set so far, records it, and (rank 0,
    /// with a run directory) writes the checkpoint.
    pub fn end_step(&mut self, t: usize) -> Result<(), TrainError> {
        crate::fault::at(|| format!("eval:{t}"));
        let row = self.evaluate(t)?;
        // A device that failed during the evaluation computed nothing: no record, no checkpoint.
        check_devices(self.be, self.comm)?;
        let evaluation = self.summary.record_eval(t, row, self.config.stream.scenario);
        self.curve_point(t, evaluation.accuracy);
        self.report(Progress::Evaluated(&evaluation));
        self.checkpoint(t)
    }

    fn curve_point(&mut self, t: usize, accuracy: f64) {
        let point = CurvePoint { step: t, iteration: self.step_iteration, round_flops: self.summary.flops - self.flops_at_step, accuracy };
        self.summary.curve.push(point);
        self.report(Progress::Curve(&point));
    }

    /// `a[t][·]`: the accuracy on each step's test set so far; each rank predicts its part.
    pub fn evaluate(&mut self, t: usize) -> Result<Vec<f64>, TrainError> {
        let (be, vit, engine, loader, test, map) = (&mut *self.be, &self.vit, &mut self.engine, &self.test_loader, &self.test, &self.map);
        let batch = self.config.data.eval_batch;
        let correct = gather_parts(self.comm, test.len(), |part| {
            let images: Vec<u32> = (part.start as u32..part.end as u32).collect();
            let rows = engine.predict(be, vit, loader, &images, batch);
            rows.iter().zip(&images).map(|(&r, &i)| (map.class(r) == test.labels()[i as usize]) as u8 as f32).collect()
        })?;
        Ok((0..=t)
            .map(|i| {
                let subset = self.stream.test_images(i, test.labels(), test.timestamps());
                subset.iter().filter(|&&j| correct[j as usize] > 0.5).count() as f64 / subset.len().max(1) as f64
            })
            .collect())
    }

    /// The current model's loss on each of `images` over the head rows of `classes` (each rank
    /// scores its part); its forward FLOPs count towards the budget's compute.
    pub fn score(&mut self, images: &[u32], classes: &[u32]) -> Result<Vec<f32>, TrainError> {
        let known = self.map.mask(classes);
        let (be, vit, engine, loader, map, labels) = (&mut *self.be, &self.vit, &mut self.engine, &self.train_loader, &self.map, self.train.labels());
        let batch = self.config.data.eval_batch;
        let losses = gather_parts(self.comm, images.len(), |part| {
            let logits = engine.logits(be, vit, loader, &images[part.clone()], batch);
            let rows: Vec<usize> = images[part].iter().map(|&i| map.row(labels[i as usize])).collect();
            sample_losses(&logits, &rows, &known)
        })?;
        self.summary.count_flops(Flops::of(&self.vit.config).classify_forward * images.len() as f64);
        Ok(losses)
    }

    /// What a resume after time step `t` needs.
    pub fn state(&self, t: usize) -> RunState {
        RunState {
            completed_steps: t + 1,
            iteration: self.iteration,
            classes: self.map.clone(),
            buffer: self.buffer.clone(),
            summary: self.summary.clone(),
            optimizer_step: self.engine.optimizer.step_count(),
        }
    }

    /// Rank 0 writes time step `t`'s checkpoint into the run directory, when there is one.
    fn checkpoint(&mut self, t: usize) -> Result<(), TrainError> {
        let Some(dir) = (self.comm.rank() == 0).then_some(self.dir.as_ref()).flatten() else { return Ok(()) };
        let elapsed = self.started.elapsed().as_secs_f64();
        self.summary.wall_seconds += elapsed - self.wall_saved;
        self.wall_saved = elapsed;
        // The head's row order, so `rekindle eval` can map predictions back to class ids.
        let classes = serde_json::to_string(&self.map).expect("class map serialises");
        let meta = HashMap::from([(META_TIME_STEP.to_string(), t.to_string()), (META_CLASSES.to_string(), classes)]);
        let checkpoint = Checkpoint { name: &RunDir::step_name(t), parts: &ALL_PARTS, meta };
        let state = self.state(t);
        dir.save_checkpoint(self.be, &self.vit, &self.engine.optimizer, checkpoint, &state)
    }

    /// The final summary (every rank returns the same).
    pub fn finish(mut self) -> Summary {
        self.summary.finish(self.started.elapsed().as_secs_f64() - self.wall_saved);
        self.summary
    }
}
