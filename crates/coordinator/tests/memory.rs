//! A long stream's memory stays flat: after the first rounds, every time step ends with exactly
//! as many bytes allocated on the backend as the one before, however the round's data sizes
//! change (continuous training scores a growing set of old samples each round; CKCA runs a
//! teacher). And a pass returns every byte it allocated when it is freed.

use rekindle_coordinator::{build_strategy, time_step, Place, Progress, TrainConfig, Trainer};
use rekindle_model::{ClassifyPass, MaePass, ModelConfig, Vit};
use rekindle_tensor::{Backend, CpuBackend};

const STEPS: usize = 20;

fn config(strategy: &str, extra: &[&str]) -> TrainConfig {
    let yaml = format!(
        "
seed: 2
model: {{preset: vit-micro-4-28, overrides: {{image_size: 16, channels: 3, depth: 1, dim: 32, heads: 2, decoder_dim: 32, decoder_depth: 1}}}}
data: {{synthetic: {{classes: 3, train_per_class: 100, test_per_class: 7, size: 16}}, eval_batch: 16}}
stream: {{scenario: data-incremental, steps: {STEPS}, label_rate: 0.35}}
budget: {{steps: 2, effective_batch: 16, micro_batch: 8}}
strategy: {{name: {strategy}}}
optim: {{lr: 1.0e-3, min_lr: 1.0e-5}}
threads: 1
"
    );
    let overrides: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    TrainConfig::from_yaml(strategy, &yaml, &overrides).unwrap()
}

/// Bytes allocated on the backend at the end of every time step.
fn bytes_per_step(config: &TrainConfig) -> Vec<usize> {
    let mut be = CpuBackend::new(1);
    let mut strategy = build_strategy(config);
    let mut quiet = |_: Progress| {};
    let place = Place { dir: None, resume: false, run_id: "" };
    let mut trainer = Trainer::open(config, &mut be, &rekindle_comm::Single, place, strategy.buffer_balance(config), &mut quiet).unwrap();
    (0..STEPS)
        .map(|t| {
            time_step(&mut trainer, strategy.as_mut(), t).unwrap();
            trainer.be.allocated_bytes()
        })
        .collect()
}

fn flat(name: &str, bytes: &[usize]) {
    // Round 2 is the first with everything a round holds (a teacher, an anchor, scored data).
    let settled = bytes[2];
    for (t, &b) in bytes.iter().enumerate().skip(2) {
        assert_eq!(b, settled, "{name}: {b} bytes after time step {} but {settled} after step 3 ({bytes:?})", t + 1);
    }
}

#[test]
fn continuous_training_with_data_selection_stays_flat_over_20_steps() {
    let bytes = bytes_per_step(&config("continuous", &["continuous.drop_easy=0.2", "continuous.l2=0.01", "continuous.init=shrink-perturb"]));
    flat("continuous", &bytes);
}

#[test]
fn ckca_stays_flat_over_20_steps() {
    flat("ckca", &bytes_per_step(&config("ckca", &["strategy.round_data=all"])));
}

#[test]
fn dietcl_stays_flat_over_20_steps() {
    flat("dietcl", &bytes_per_step(&config("dietcl", &[])));
}

#[test]
fn a_freed_pass_returns_every_byte() {
    let mut be = CpuBackend::new(1);
    let mut config = ModelConfig::preset("vit-micro-4-28").unwrap();
    config.classes = 5;
    let vit = Vit::new(&mut be, &config, 0).unwrap();
    let before = be.allocated_bytes();
    let pass = ClassifyPass::new(&mut be, &vit, 3);
    assert!(be.allocated_bytes() > before);
    pass.free(&mut be);
    assert_eq!(be.allocated_bytes(), before, "ClassifyPass::free");
    let pass = MaePass::new(&mut be, &vit, 3);
    pass.free(&mut be);
    assert_eq!(be.allocated_bytes(), before, "MaePass::free");
}
