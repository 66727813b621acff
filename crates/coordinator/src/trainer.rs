//! The state of one training stream and the steps every strategy is made of. A [`Trainer`]
//! owns the model, the engine (with its optimizer), the buffer, the class map, the summary, the
//! loaders and the stream; `run::train` drives it through each time step:
//! [`Trainer::begin_step`], the strategy's set-up, [`Trainer::run_stage`] per stage, then
//! [`Trainer::end_step`] (evaluation and checkpoint). What a resume needs is a projection of
//! it, [`RunState`], written at every time step's end and, inside one, every
//! `budget.checkpoint_every` optimizer steps and when a signal stops the run.

use crate::config::{BufferCut, TrainConfig};
use crate::engine::{check_devices, gather_parts, Engine, EngineSettings, Pools, Regularizers, Sources, StepSpec};
use crate::error::TrainError;
use crate::init::{initial_model, restart};
use crate::inputs::{check_images, check_ranks, loader_threads, open_data};
use crate::metrics::{step_accuracy, CurvePoint, Summary};
use crate::progress::Progress;
use crate::run_dir::{filter_lines, Checkpoint, RunDir, META_CLASSES, META_RUN_ID, META_TIME_STEP};
use crate::selection::sample_losses;
use crate::stage::StagePlan;
use crate::targets::ClassMap;
use rekindle_comm::Comm;
use rekindle_data::{holdout, Balance, Loader, Normalize, ReplayBuffer, Shard, Stream, StreamConfig};
use rekindle_model::{Flops, Optimizer, Vit, ALL_PARTS};
use rekindle_tensor::Backend;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Everything besides tensors that a resumed run needs to continue exactly (`state.json`).
///
/// A checkpoint inside time step `completed_steps` (`inside`) keeps the class map and buffer as
/// that step began: a resume loads the previous step's model, begins the step and sets it up
/// again as the uninterrupted run did (teacher, anchor, data selection, re-init), and only then
/// loads the checkpoint's model and optimizer and skips the optimizer steps already taken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The run this state belongs to (its `run.json` id).
    pub run_id: String,
    /// Time steps finished (trained and evaluated).
    pub completed_steps: usize,
    /// Global optimizer iteration (it seeds draws, masks and augmentation).
    pub iteration: usize,
    pub classes: ClassMap,
    pub buffer: ReplayBuffer,
    pub summary: Summary,
    pub inside: Option<InsideStep>,
}

/// Where inside time step `completed_steps` a checkpoint was written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InsideStep {
    /// Its model and optimizer files (`checkpoints/NAME.*`).
    pub checkpoint: String,
    /// The next optimizer step to take: stage index (past the last: only the evaluation is
    /// left) and iteration within it.
    pub stage: usize,
    pub stage_iteration: usize,
    /// Optimizer steps taken in the time step, of `step_iterations`.
    pub step_iteration: usize,
    pub step_iterations: usize,
    pub optimizer_step: u32,
    /// The summary's FLOPs when the time step began.
    pub flops_at_step: f64,
}

impl RunState {
    /// The lines of a training run's old `metrics.jsonl` (`text`) that its last checkpoint
    /// holds.
    pub fn kept_lines(dir: &RunDir, text: &str) -> Result<String, TrainError> {
        let Some(state) = dir.load_state::<RunState>()? else { return Ok(filter_lines(text, |_| false)) };
        let mut train_lines_in_step = 0;
        Ok(filter_lines(text, |line| {
            let held = state.holds_line(line, train_lines_in_step);
            if line["type"] == "train" && line["step"].as_u64() == Some(state.completed_steps as u64) {
                train_lines_in_step += 1;
            }
            held
        }))
    }

    /// Whether `line` of `metrics.jsonl` records work this state holds. Inside a time step:
    /// its selection (set-up is not reported again), its first `step_iteration` training lines
    /// (`seen_train` counts the ones before this line) and the curve points among them.
    fn holds_line(&self, line: &serde_json::Value, seen_train: usize) -> bool {
        let Some(step) = line["step"].as_u64().map(|s| s as usize) else { return false };
        match &self.inside {
            _ if step < self.completed_steps => true,
            Some(inside) if step == self.completed_steps => match line["type"].as_str() {
                Some("selection") => true,
                Some("train") => seen_train < inside.step_iteration,
                Some("curve") => line["iteration"].as_u64().is_some_and(|i| (i as usize) <= inside.step_iteration && (i as usize) < inside.step_iterations),
                _ => false,
            },
            _ => false,
        }
    }
}


/// Where a run keeps its checkpoints, whether it continues from them, and its id (which every
/// checkpoint carries and a resume checks).
pub struct Place<'p> {
    pub dir: Option<&'p Path>,
    pub resume: bool,
    pub run_id: &'p str,
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
    /// The class map and buffer as the current time step began (what a checkpoint inside it
    /// records).
    step_start: (ClassMap, ReplayBuffer),
    /// A checkpoint inside the first time step to train, loaded once that step is set up again,
    /// with the summary as it was written.
    resume_inside: Option<(InsideStep, Summary)>,
    run_id: String,
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
            if s.run_id != place.run_id {
                return Err(TrainError::State { path: d.root().join("state.json"), reason: format!("it belongs to run {}, not to this directory's run {}", s.run_id, place.run_id) });
            }
            if s.completed_steps > 0 {
                d.load_model(be, &vit, &RunDir::step_name(s.completed_steps - 1), &ALL_PARTS, place.run_id)?;
            }
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
            step_start: (ClassMap::default(), ReplayBuffer::new(balance, None, 0)),
            resume_inside: None,
            run_id: place.run_id.to_string(),
            report,
        };
        if let Some(s) = saved {
            trainer.resume_inside = s.inside.map(|inside| (inside, s.summary.clone()));
            (trainer.first_step, trainer.iteration, trainer.buffer, trainer.summary) = (s.completed_steps, s.iteration, s.buffer, s.summary);
        }
        Ok(trainer)
    }

    /// Passes `progress` on, but not a selection made again while a time step is set up anew
    /// for a resume inside it (its line was kept).
    pub fn report(&mut self, progress: Progress) {
        if !(self.resume_inside.is_some() && matches!(progress, Progress::Selected { .. })) {
            (self.report)(progress)
        }
    }

    /// After the first time step to train is set up: with a checkpoint inside it, loads its
    /// model, optimizer and summary, and returns where its optimizer steps continue (stage,
    /// iteration); otherwise (0, 0).
    pub fn resume_position(&mut self) -> Result<(usize, usize), TrainError> {
        let Some((inside, summary)) = self.resume_inside.take() else { return Ok((0, 0)) };
        let dir = self.dir.as_ref().expect("a resume has a run directory");
        dir.load_model(self.be, &self.vit, &inside.checkpoint, &ALL_PARTS, &self.run_id)?;
        // Sized for the head as the step began it, then filled.
        self.engine.optimizer.reset(self.be, &self.vit);
        dir.restore_optimizer(self.be, &mut self.engine.optimizer, &inside.checkpoint, inside.optimizer_step)?;
        (self.summary, self.flops_at_step, self.step_iteration) = (summary, inside.flops_at_step, inside.step_iteration);
        Ok((inside.stage, inside.stage_iteration))
    }

    /// Begins time step `t`: grows the head for its new classes, adds its labels to the buffer,
    /// and with `restarts` (after the first step) sends the model back to the stream's start.
    /// Returns the number of classes the model knew before.
    pub fn begin_step(&mut self, t: usize, restarts: bool) -> Result<usize, TrainError> {
        let step = &self.stream.steps[t];
        self.step_start = (self.map.clone(), self.buffer.clone());
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

    /// Trains one stage of time step `t` (the `index`-th) from its iteration `from` (0, or
    /// where a resumed checkpoint left it): a fresh optimizer state where the config asks for
    /// one, then the stage's optimizer steps, with evaluations every `budget.eval_every` steps and
    /// checkpoints every `budget.checkpoint_every`. A stop request ends it after the step in
    /// progress, with a checkpoint.
    pub fn run_stage(&mut self, t: usize, index: usize, stage: &StagePlan, from: usize, data: &StepData, extra: &mut Regularizers) -> Result<(), TrainError> {
        let config = self.config;
        if from == 0 && (index == 0 || config.optim.fresh_per_stage) {
            self.engine.optimizer.reset(self.be, &self.vit);
        }
        self.report(Progress::Stage { step: t, steps: self.stream.steps.len(), stage: stage.name, iterations: stage.steps });
        let counts = stage.mix.counts(config.budget.effective_batch);
        for i in from..stage.steps {
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
            self.summary.count_step(losses.flops);
            let images_per_sec = config.budget.effective_batch as f64 / started.elapsed().as_secs_f64();
            self.iteration += 1;
            let (optimizer_step, flops) = (self.iteration, self.summary.flops);
            self.report(Progress::Iteration { step: t, stage: stage.name, iteration: i, optimizer_step, flops, losses: &losses, lr, images_per_sec });
            self.step_iteration += 1;
            let k = config.budget.eval_every;
            if k > 0 && self.step_iteration.is_multiple_of(k) && self.step_iteration < self.step_iterations {
                let (row, _) = self.evaluate(t)?;
                self.curve_point(t, step_accuracy(&row, t, config.stream.scenario));
            }
            let next = if i + 1 < stage.steps { (index, i + 1) } else { (index + 1, 0) };
            if losses.stop {
                self.checkpoint_inside(t, next)?;
                return Err(TrainError::Interrupted { step: t, iteration: i });
            }
            let every = config.budget.checkpoint_every;
            if every > 0 && self.step_iteration.is_multiple_of(every) && self.step_iteration < self.step_iterations {
                self.checkpoint_inside(t, next)?;
            }
        }
        Ok(())
    }

    /// Ends time step `t`: evaluates on every step's test set so far, records it, and (rank 0,
    /// with a run directory) writes the checkpoint.
    pub fn end_step(&mut self, t: usize) -> Result<(), TrainError> {
        crate::fault::at(|| format!("eval:{t}"));
        let (row, per_class) = self.evaluate(t)?;
        // A device that failed during the evaluation computed nothing: no record, no checkpoint.
        check_devices(self.be, self.comm)?;
        let evaluation = self.summary.record_eval(t, row, per_class, self.config.stream.scenario);
        self.curve_point(t, evaluation.accuracy);
        self.report(Progress::Evaluated(&evaluation));
        self.checkpoint(t)
    }

    fn curve_point(&mut self, t: usize, accuracy: f64) {
        let point = CurvePoint { step: t, iteration: self.step_iteration, round_flops: self.summary.flops - self.flops_at_step, accuracy };
        self.summary.curve.push(point);
        self.report(Progress::Curve(&point));
    }

    /// `a[t][·]`, the accuracy on each step's test set so far, and the accuracy of each class
    /// on the test images those sets hold; each rank predicts its part.
    pub fn evaluate(&mut self, t: usize) -> Result<(Vec<f64>, BTreeMap<u32, f64>), TrainError> {
        let (be, vit, engine, loader, test, map) = (&mut *self.be, &self.vit, &mut self.engine, &self.test_loader, &self.test, &self.map);
        let batch = self.config.data.eval_batch;
        let correct = gather_parts(self.comm, test.len(), |part| {
            let images: Vec<u32> = (part.start as u32..part.end as u32).collect();
            let rows = engine.predict(be, vit, loader, &images, batch);
            rows.iter().zip(&images).map(|(&r, &i)| (map.class(r) == test.labels()[i as usize]) as u8 as f32).collect()
        })?;
        let subsets: Vec<Vec<u32>> = (0..=t).map(|i| self.stream.test_images(i, test.labels(), test.timestamps())).collect();
        let row = subsets.iter().map(|subset| subset.iter().filter(|&&j| correct[j as usize] > 0.5).count() as f64 / subset.len().max(1) as f64).collect();
        let mut evaluated: Vec<u32> = subsets.concat();
        evaluated.sort_unstable();
        evaluated.dedup();
        // (right, seen) per class.
        let mut counts: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
        for &j in &evaluated {
            let c = counts.entry(test.labels()[j as usize]).or_default();
            c.0 += (correct[j as usize] > 0.5) as usize;
            c.1 += 1;
        }
        Ok((row, counts.into_iter().map(|(class, (right, seen))| (class, right as f64 / seen as f64)).collect()))
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

    /// Rank 0 writes time step `t`'s checkpoint (the model alone: the next step restarts the
    /// optimizer) into the run directory, when there is one.
    fn checkpoint(&mut self, t: usize) -> Result<(), TrainError> {
        let state = RunState {
            run_id: self.run_id.clone(),
            completed_steps: t + 1,
            iteration: self.iteration,
            classes: self.map.clone(),
            buffer: self.buffer.clone(),
            summary: self.summary.clone(),
            inside: None,
        };
        self.write_checkpoint(t, &RunDir::step_name(t), state, false)
    }

    /// Rank 0 writes a checkpoint inside time step `t` (model and optimizer), whose optimizer
    /// steps continue at `next` (stage, iteration).
    fn checkpoint_inside(&mut self, t: usize, next: (usize, usize)) -> Result<(), TrainError> {
        let name = RunDir::inside_name(t, self.step_iteration);
        let inside = InsideStep {
            checkpoint: name.clone(),
            stage: next.0,
            stage_iteration: next.1,
            step_iteration: self.step_iteration,
            step_iterations: self.step_iterations,
            optimizer_step: self.engine.optimizer.step_count(),
            flops_at_step: self.flops_at_step,
        };
        let (classes, buffer) = self.step_start.clone();
        let state = RunState { run_id: self.run_id.clone(), completed_steps: t, iteration: self.iteration, classes, buffer, summary: self.summary.clone(), inside: Some(inside) };
        self.write_checkpoint(t, &name, state, true)
    }

    /// Rank 0 writes checkpoint `name` of time step `t` with `state` (its summary's wall time
    /// brought up to now), with the optimizer when `with_optimizer`.
    fn write_checkpoint(&mut self, t: usize, name: &str, mut state: RunState, with_optimizer: bool) -> Result<(), TrainError> {
        let Some(dir) = (self.comm.rank() == 0).then_some(self.dir.as_ref()).flatten() else { return Ok(()) };
        let elapsed = self.started.elapsed().as_secs_f64();
        self.summary.wall_seconds += elapsed - self.wall_saved;
        self.wall_saved = elapsed;
        state.summary.wall_seconds = self.summary.wall_seconds;
        // The head's row order, so `rekindle eval` can map predictions back to class ids.
        let classes = serde_json::to_string(&self.map).expect("class map serialises");
        let meta = HashMap::from([(META_TIME_STEP.to_string(), t.to_string()), (META_CLASSES.to_string(), classes), (META_RUN_ID.to_string(), self.run_id.clone())]);
        let optimizer = with_optimizer.then_some(&self.engine.optimizer);
        let checkpoint = Checkpoint { name, parts: &ALL_PARTS, meta, optimizer };
        dir.save_checkpoint(self.be, &self.vit, checkpoint, &state, &self.config.checkpoint)
    }

    /// The final summary (every rank returns the same).
    pub fn finish(mut self) -> Summary {
        self.summary.finish(self.started.elapsed().as_secs_f64() - self.wall_saved);
        self.summary
    }
}
