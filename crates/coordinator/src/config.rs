//! The experiment config (`rekindle train CONFIG.yaml`). Every field has a default; unknown keys
//! and impossible values are rejected with a message naming the key.

use crate::budget::{accumulation, StageSplit};
use crate::mixing::MixSettings;
use rekindle_data::{Balance, Scenario};
use rekindle_model::ModelConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("invalid config: `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error("config {path}: {reason}")]
    Parse { path: String, reason: String },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), reason: reason.into() }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Seeds model init, streams, label splits, buffer draws, masks and augmentation.
    pub seed: u64,
    pub model: ModelSection,
    pub data: DataSection,
    pub stream: StreamSection,
    pub budget: BudgetSection,
    pub strategy: StrategySection,
    pub optim: OptimSection,
    pub augment: AugmentSection,
    /// CKCA's distillation from the previous checkpoint (`strategy.name: ckca`).
    pub ckca: CkcaSection,
    /// The levers of continuous training (`strategy.name: continuous`).
    pub continuous: ContinuousSection,
    /// MAE pre-training (`rekindle pretrain`) on the held-out part of `data.train`.
    pub pretrain: PretrainSection,
    /// CPU worker threads for the model (0: one per core).
    pub threads: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// A preset from `rekindle info`.
    pub preset: String,
    /// Field overrides, e.g. `{image_size: 32, channels: 3}` (keys as `--set` of `rekindle bench`).
    pub overrides: BTreeMap<String, serde_yaml_ng::Value>,
    /// A safetensors checkpoint to start from (timm/MAE names), e.g. the `mae.safetensors` that
    /// `rekindle pretrain` writes. Every strategy starts its encoder and decoder from it (GDumb's
    /// and scratch's re-initialisations go back to it too); the head is always fresh.
    pub init: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// Training shard path, or `synthetic`.
    pub train: String,
    /// Test shard path, or `synthetic`.
    pub test: String,
    /// The synthetic generator, when `train`/`test` say `synthetic`.
    pub synthetic: SyntheticSection,
    /// Evaluation micro-batch.
    pub eval_batch: usize,
    /// Fraction of each class of `train` held out of the stream, for `rekindle pretrain` (0:
    /// none). The held-out images are the same for every seed.
    pub holdout: f32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticSection {
    pub classes: u32,
    pub train_per_class: usize,
    pub test_per_class: usize,
    pub size: u32,
    pub drift: f32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamSection {
    pub scenario: Scenario,
    /// Time steps `T`.
    pub steps: usize,
    /// Fraction of each class's images per step that carry labels, in (0, 1].
    pub label_rate: f32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetSection {
    /// Optimizer steps `B` per time step, each at the effective batch.
    pub steps: usize,
    pub effective_batch: usize,
    /// Images per forward/backward on one rank.
    pub micro_batch: usize,
    /// Stage 1 / stage 2 split: `{ratio: 0.8}` or `{threshold: 400}`.
    #[serde(with = "serde_yaml_ng::with::singleton_map")]
    pub stage_split: StageSplit,
    /// Also evaluate every this many optimizer steps inside a time step (0: only at its end),
    /// the grid on which `rekindle speedup` finds the first iteration reaching a target.
    pub eval_every: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyName {
    Dietcl,
    Finetune,
    Er,
    MaeThenFinetune,
    Gdumb,
    Joint,
    /// Fresh init every round, trained on the round's data.
    Scratch,
    /// Every round starts from the last checkpoint.
    Warmstart,
    /// Warm start plus FeatReg and AdaKD against the frozen previous checkpoint.
    Ckca,
    /// Warm start with the `continuous` levers.
    Continuous,
}

impl StrategyName {
    /// The strategies of rounds of supervised data (CKCA, continuous training), which sample
    /// uniformly from `strategy.round_data` instead of DietCL's sources and buffer.
    pub fn trains_rounds(self) -> bool {
        matches!(self, StrategyName::Scratch | StrategyName::Warmstart | StrategyName::Ckca | StrategyName::Continuous)
    }
}

/// Which labelled data a round of `scratch`, `warmstart`, `ckca` or `continuous` trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoundData {
    /// The newly arrived split only (the CKCA setting).
    New,
    /// Every split so far, old and new (the continuous-training setting).
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplayMode {
    /// Uniform over the buffer, the current step included.
    Uniform,
    /// Half current labelled data, half buffer of past steps.
    Batchmix,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StrategySection {
    pub name: StrategyName,
    /// Weight of the MAE loss in DietCL's stage 1.
    pub mae_weight: f32,
    /// ER's sampling (`er` only).
    pub replay: ReplayMode,
    /// How the buffer is sampled (`gdumb` is always class-balanced, `joint` always uniform).
    pub buffer_balance: Balance,
    /// Most images the buffer keeps (null: all).
    pub buffer_capacity: Option<usize>,
    /// The data of each round for `scratch`, `warmstart`, `ckca`, `continuous`.
    pub round_data: RoundData,
    /// Which current images the MAE term reconstructs (`dietcl`, `mae-then-finetune`).
    pub mae_source: MaeSource,
    /// `smallest-step`: every step of the buffer is cut to the smallest step's labelled count,
    /// as the DietCL reference's unlimited buffer does (`none`: keep every label).
    pub buffer_cut: BufferCut,
    /// Every this many optimizer steps (and at each stage's first), write the encoder-only
    /// gradient norm of each weighted loss term (MAE, current, buffer) to metrics.jsonl (0:
    /// never). Costs a copy of the gradients per term at those steps.
    pub term_norms_every: usize,
    /// `mae-then-finetune`'s supervised stage runs at this multiple of the base LR (the
    /// reference's MAE-then-finetune baseline fine-tunes at 5×; DietCL's stage 2 keeps
    /// `optim.stage2_lr_scale`).
    pub finetune_lr_scale: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaeSource {
    /// The step's unlabelled images only, the complement of the labelled ones (the reference).
    Unlabelled,
    /// Every image of the step, labelled ones included.
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BufferCut {
    None,
    SmallestStep,
}

/// Over which classes label smoothing spreads for the class-incremental current-data loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CurrentSmoothing {
    /// Over the current step's classes, so the targets over the softmax's classes sum to 1.
    Current,
    /// Over every class seen, then sliced to the current ones without renormalising (the
    /// DietCL reference: each row sums to `1 − ε + ε·|current| / |seen|`).
    SeenSliced,
}

/// AdaKD's per-sample weight `w(x)`, never differentiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KdWeighting {
    /// `p_T(y|x)`, the teacher's probability of the label.
    TeacherProb,
    /// `1[teacher correct]`.
    TeacherCorrect,
    /// One weight for the batch, `CE_T / (CE_T + CE_s)`.
    Batch,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CkcaSection {
    /// `λ_f`, the weight of FeatReg `mean_d ‖h_s − h_T‖²` on the pooled features.
    pub feat_weight: f32,
    /// `λ_kd`, the weight of AdaKD `w(x)·τ²·KL(p_T^τ ‖ p_s^τ)`.
    pub kd_weight: f32,
    /// `τ`.
    pub temperature: f32,
    pub kd_weighting: KdWeighting,
}

/// How a continuous round initialises the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitLever {
    /// The last checkpoint as it is.
    Warm,
    /// `θ ← shrink·θ_old + perturb·θ_fresh` (Ash & Adams).
    ShrinkPerturb,
}

/// What the L2 lever pulls the weights towards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum L2Reference {
    /// The round's starting point (after the init lever).
    Start,
    /// The previous checkpoint (before the init lever).
    Old,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContinuousSection {
    pub init: InitLever,
    /// `λ` of shrink-and-perturb.
    pub shrink: f32,
    /// `p` of shrink-and-perturb.
    pub perturb: f32,
    /// `λ` of the penalty `λ‖θ − θ_ref‖²` (0: off).
    pub l2: f32,
    pub l2_reference: L2Reference,
    /// Drop this fraction of old samples with the lowest old-model loss (the easiest).
    pub drop_easy: f32,
    /// Drop this fraction of old samples with the highest old-model loss (the hardest).
    pub drop_hard: f32,
    /// Train `round(f · budget.steps)` steps in rounds after the first (the shortened schedule).
    pub schedule_fraction: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimName {
    Adamw,
    Sgd,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimSection {
    pub name: OptimName,
    /// Base LR before scaling by `effective_batch / 256`.
    pub lr: f64,
    /// The half-cosine's floor.
    pub min_lr: f64,
    /// Stage 2 runs at this multiple of the base LR.
    pub stage2_lr_scale: f64,
    pub betas: (f32, f32),
    pub eps: f32,
    pub weight_decay: f32,
    /// Layer-wise LR decay; 1 turns it off.
    pub layer_decay: f32,
    /// SGD momentum.
    pub momentum: f32,
    pub nesterov: bool,
    /// Clip the global gradient norm to this (null: no clipping).
    pub clip_grad: Option<f32>,
    /// Start every stage of every time step with a fresh optimizer state.
    pub fresh_per_stage: bool,
    /// Linear warm-up over this fraction of every stage before the cosine (0: none, DietCL).
    pub warmup_fraction: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentSection {
    /// Random resized crops and flips; false is the deterministic path.
    pub enabled: bool,
    /// Label smoothing of the classification targets, spread over the classes in the softmax.
    pub label_smoothing: f32,
    /// Mixup / CutMix of labelled micro-batches (applied only when `enabled`).
    pub mixing: MixSettings,
    /// Label smoothing of the masked current-data loss (class-incremental).
    pub current_smoothing: CurrentSmoothing,
}

/// MAE pre-training of encoder and decoder on the images `data.holdout` keeps out of the stream,
/// with the MAE recipe (AdamW 0.9/0.95, weight decay 0.05, base LR 1.5e-4 × effective/256,
/// linear warm-up then half-cosine), the unlabelled augmentation when `augment.enabled`, and the
/// model's `mask_ratio`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainSection {
    /// Pre-train on this shard (or `synthetic`), all of it, instead of the part of `data.train`
    /// that `data.holdout` keeps out of the stream (e.g. an out-of-domain start).
    pub data: Option<String>,
    /// Optimizer steps, each at `effective_batch`.
    pub steps: usize,
    pub effective_batch: usize,
    /// Images per forward/backward on one rank.
    pub micro_batch: usize,
    /// Base LR before scaling by `effective_batch / 256`.
    pub lr: f64,
    /// The half-cosine's floor.
    pub min_lr: f64,
    /// Linear warm-up over this fraction of the steps.
    pub warmup_fraction: f64,
    pub betas: (f32, f32),
    pub weight_decay: f32,
    /// Write a resumable checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
}

impl Default for ModelSection {
    fn default() -> ModelSection {
        ModelSection { preset: "vit-tiny-4-32".into(), overrides: BTreeMap::new(), init: None }
    }
}

impl Default for DataSection {
    fn default() -> DataSection {
        DataSection { train: "synthetic".into(), test: "synthetic".into(), synthetic: SyntheticSection::default(), eval_batch: 256, holdout: 0.0 }
    }
}

impl Default for SyntheticSection {
    fn default() -> SyntheticSection {
        SyntheticSection { classes: 10, train_per_class: 500, test_per_class: 100, size: 32, drift: 0.0 }
    }
}

impl Default for StreamSection {
    fn default() -> StreamSection {
        StreamSection { scenario: Scenario::ClassIncremental, steps: 5, label_rate: 0.1 }
    }
}

impl Default for BudgetSection {
    fn default() -> BudgetSection {
        BudgetSection { steps: 500, effective_batch: 1024, micro_batch: 256, stage_split: StageSplit::Ratio(0.8), eval_every: 0 }
    }
}

impl Default for StrategySection {
    fn default() -> StrategySection {
        StrategySection {
            name: StrategyName::Dietcl,
            mae_weight: 50.0,
            replay: ReplayMode::Uniform,
            buffer_balance: Balance::Task,
            buffer_capacity: None,
            round_data: RoundData::All,
            mae_source: MaeSource::Unlabelled,
            buffer_cut: BufferCut::None,
            term_norms_every: 0,
            finetune_lr_scale: 5.0,
        }
    }
}

impl Default for CkcaSection {
    fn default() -> CkcaSection {
        CkcaSection { feat_weight: 1.0, kd_weight: 1.0, temperature: 2.0, kd_weighting: KdWeighting::TeacherProb }
    }
}

impl Default for ContinuousSection {
    fn default() -> ContinuousSection {
        ContinuousSection {
            init: InitLever::Warm,
            shrink: 0.4,
            perturb: 0.1,
            l2: 0.0,
            l2_reference: L2Reference::Start,
            drop_easy: 0.0,
            drop_hard: 0.0,
            schedule_fraction: 1.0,
        }
    }
}

impl Default for OptimSection {
    fn default() -> OptimSection {
        OptimSection {
            name: OptimName::Adamw,
            lr: 1e-4,
            min_lr: 5e-5,
            stage2_lr_scale: 0.1,
            betas: (0.9, 0.95),
            eps: 1e-8,
            weight_decay: 0.05,
            layer_decay: 0.65,
            momentum: 0.9,
            nesterov: false,
            clip_grad: None,
            fresh_per_stage: true,
            warmup_fraction: 0.0,
        }
    }
}

impl Default for AugmentSection {
    fn default() -> AugmentSection {
        AugmentSection { enabled: true, label_smoothing: 0.1, mixing: MixSettings::default(), current_smoothing: CurrentSmoothing::Current }
    }
}

impl Default for PretrainSection {
    fn default() -> PretrainSection {
        PretrainSection {
            data: None,
            steps: 1000,
            effective_batch: 1024,
            micro_batch: 256,
            lr: 1.5e-4,
            min_lr: 0.0,
            warmup_fraction: 0.05,
            betas: (0.9, 0.95),
            weight_decay: 0.05,
            checkpoint_every: 100,
        }
    }
}

impl PretrainSection {
    /// The AdamW settings of pre-training: no layer-wise decay, no clipping.
    pub fn optim(&self) -> OptimSection {
        OptimSection { lr: self.lr, min_lr: self.min_lr, betas: self.betas, weight_decay: self.weight_decay, layer_decay: 1.0, warmup_fraction: self.warmup_fraction, ..OptimSection::default() }
    }
}

impl TrainConfig {
    /// Parses YAML text, applies `key.path=value` overrides, and validates.
    pub fn from_yaml(source: &str, text: &str, overrides: &[String]) -> Result<TrainConfig, ConfigError> {
        let parse = |reason: String| ConfigError::Parse { path: source.into(), reason };
        let mut doc: serde_yaml_ng::Value = if text.trim().is_empty() {
            serde_yaml_ng::Value::Mapping(Default::default())
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| parse(e.to_string()))?
        };
        for o in overrides {
            let (key, value) = o.split_once('=').ok_or_else(|| invalid(o, "an override is KEY=VALUE, e.g. budget.steps=100"))?;
            let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(value).map_err(|e| invalid(key, e.to_string()))?;
            set_path(&mut doc, key, value)?;
        }
        let config: TrainConfig = serde_yaml_ng::from_value(doc).map_err(|e| parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The model geometry: the preset with the overrides applied.
    pub fn model_config(&self) -> Result<ModelConfig, ConfigError> {
        let mut m = ModelConfig::preset(&self.model.preset).map_err(|e| invalid("model.preset", e.to_string()))?;
        for (key, value) in &self.model.overrides {
            let text = match value {
                serde_yaml_ng::Value::String(s) => s.clone(),
                other => serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_string(),
            };
            m.set(key, &text).map_err(|e| invalid(&format!("model.overrides.{key}"), e.to_string()))?;
        }
        Ok(m)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.model_config()?;
        let b = &self.budget;
        if b.steps == 0 {
            return Err(invalid("budget.steps", "must be at least 1 optimizer step"));
        }
        if b.micro_batch == 0 || b.micro_batch > b.effective_batch {
            return Err(invalid("budget.micro_batch", format!("{} must be between 1 and the effective batch {}", b.micro_batch, b.effective_batch)));
        }
        if accumulation(b.effective_batch, b.micro_batch, 1).is_none() {
            return Err(invalid("budget.micro_batch", format!("{} does not divide the effective batch {}", b.micro_batch, b.effective_batch)));
        }
        match b.stage_split {
            StageSplit::Ratio(r) if !(0.0..=1.0).contains(&r) => return Err(invalid("budget.stage_split", format!("ratio {r} is outside [0, 1]"))),
            _ => {}
        }
        let s = &self.stream;
        if !(s.label_rate > 0.0 && s.label_rate <= 1.0) {
            return Err(invalid("stream.label_rate", format!("{} is outside (0, 1]", s.label_rate)));
        }
        if s.steps == 0 {
            return Err(invalid("stream.steps", "must be at least 1"));
        }
        let o = &self.optim;
        if !(o.lr > 0.0 && o.lr.is_finite()) {
            return Err(invalid("optim.lr", format!("{} must be a positive number", o.lr)));
        }
        if o.min_lr < 0.0 || o.min_lr > o.lr * self.budget.effective_batch as f64 / 256.0 {
            return Err(invalid("optim.min_lr", format!("{} must be between 0 and the scaled base LR", o.min_lr)));
        }
        let m = &self.augment.mixing;
        if m.mixup_alpha < 0.0 || m.cutmix_alpha < 0.0 || !(0.0..=1.0).contains(&m.switch_prob) || !(0.0..=1.0).contains(&m.prob) {
            return Err(invalid("augment.mixing", "alphas must be ≥ 0, probabilities in [0, 1]"));
        }
        if !(0.0..1.0).contains(&self.augment.label_smoothing) {
            return Err(invalid("augment.label_smoothing", "must be in [0, 1)"));
        }
        if self.data.eval_batch == 0 {
            return Err(invalid("data.eval_batch", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&o.warmup_fraction) {
            return Err(invalid("optim.warmup_fraction", format!("{} is outside [0, 1)", o.warmup_fraction)));
        }
        let k = &self.ckca;
        if !(k.temperature > 0.0 && k.temperature.is_finite()) {
            return Err(invalid("ckca.temperature", format!("{} must be a positive number", k.temperature)));
        }
        for (key, v) in [("ckca.feat_weight", k.feat_weight), ("ckca.kd_weight", k.kd_weight)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(invalid(key, format!("{v} must be ≥ 0")));
            }
        }
        if !(self.strategy.finetune_lr_scale > 0.0 && self.strategy.finetune_lr_scale.is_finite()) {
            return Err(invalid("strategy.finetune_lr_scale", format!("{} must be a positive number", self.strategy.finetune_lr_scale)));
        }
        if !(0.0..1.0).contains(&self.data.holdout) {
            return Err(invalid("data.holdout", format!("{} is outside [0, 1)", self.data.holdout)));
        }
        let p = &self.pretrain;
        if p.steps == 0 {
            return Err(invalid("pretrain.steps", "must be at least 1 optimizer step"));
        }
        if p.micro_batch == 0 || accumulation(p.effective_batch, p.micro_batch, 1).is_none() {
            return Err(invalid("pretrain.micro_batch", format!("{} must divide the effective batch {}", p.micro_batch, p.effective_batch)));
        }
        if !(p.lr > 0.0 && p.lr.is_finite()) || p.min_lr < 0.0 || p.min_lr > p.lr * p.effective_batch as f64 / 256.0 {
            return Err(invalid("pretrain.lr", format!("lr {} must be positive and min_lr {} between 0 and the scaled LR", p.lr, p.min_lr)));
        }
        if !(0.0..1.0).contains(&p.warmup_fraction) {
            return Err(invalid("pretrain.warmup_fraction", format!("{} is outside [0, 1)", p.warmup_fraction)));
        }
        let c = &self.continuous;
        for (key, v) in [("continuous.shrink", c.shrink), ("continuous.perturb", c.perturb), ("continuous.l2", c.l2)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(invalid(key, format!("{v} must be ≥ 0")));
            }
        }
        for (key, v) in [("continuous.drop_easy", c.drop_easy), ("continuous.drop_hard", c.drop_hard)] {
            if !(0.0..1.0).contains(&v) {
                return Err(invalid(key, format!("{v} is outside [0, 1)")));
            }
        }
        if c.drop_easy + c.drop_hard >= 1.0 {
            return Err(invalid("continuous.drop_hard", "drop_easy + drop_hard must leave some old data (sum < 1)"));
        }
        if !(c.schedule_fraction > 0.0 && c.schedule_fraction <= 1.0) {
            return Err(invalid("continuous.schedule_fraction", format!("{} is outside (0, 1]", c.schedule_fraction)));
        }
        Ok(())
    }
}

/// Sets `doc[a][b][c] = value` for the dotted key `a.b.c`, creating mappings on the way.
fn set_path(doc: &mut serde_yaml_ng::Value, key: &str, value: serde_yaml_ng::Value) -> Result<(), ConfigError> {
    let mut node = doc;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !node.is_mapping() {
            if node.is_null() {
                *node = serde_yaml_ng::Value::Mapping(Default::default());
            } else {
                return Err(invalid(key, format!("`{}` is not a section", parts[..i].join("."))));
            }
        }
        let map = node.as_mapping_mut().expect("mapping");
        let k = serde_yaml_ng::Value::String(part.to_string());
        if i + 1 == parts.len() {
            map.insert(k, value);
            return Ok(());
        }
        node = map.entry(k).or_insert(serde_yaml_ng::Value::Null);
    }
    Ok(())
}
