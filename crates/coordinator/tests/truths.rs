//! METHODS.md's small-scale truths for DietCL: stage step counts, sub-batch fractions, the LR at
//! stage boundaries and per layer group, masked cross-entropy's exact zeros, and config errors.

use rekindle_coordinator::budget::{accumulation, micro_batches, Mix, StageSplit};
use rekindle_coordinator::schedule::{scaled_lr, stages};
use rekindle_coordinator::targets::{soft_targets, ClassMap};
use rekindle_coordinator::{plan, TrainConfig};
use rekindle_model::{ClassifyPass, ModelConfig, ParamTable, Vit};
use rekindle_tensor::{Backend, CpuBackend};

#[test]
fn stage_steps_400_100_and_500_0_at_t0() {
    let ratio = StageSplit::Ratio(0.8);
    assert_eq!(ratio.stage_steps(500, 0), (500, 0));
    assert_eq!(ratio.stage_steps(500, 1), (400, 100));
    assert_eq!(ratio.stage_steps(500, 7), (400, 100));
    let threshold = StageSplit::Threshold(400);
    assert_eq!(threshold.stage_steps(500, 0), (500, 0));
    assert_eq!(threshold.stage_steps(500, 3), (400, 100));
    assert_eq!(threshold.stage_steps(300, 3), (300, 0));
    // The planned DietCL stages agree.
    let config = TrainConfig::default();
    let steps = |t| plan(&config, t).iter().map(|s| (s.name, s.steps)).collect::<Vec<_>>();
    assert_eq!(steps(0), vec![("joint", 500)]);
    assert_eq!(steps(2), vec![("joint", 400), ("buffer", 100)]);
}

#[test]
fn sub_batch_fractions_are_40_30_30_and_40_60_0_at_t0() {
    let c = Mix::DIETCL.counts(1024);
    assert_eq!((c.unlabelled, c.labelled, c.buffer), (410, 307, 307));
    let c = Mix::DIETCL_FIRST.counts(1024);
    assert_eq!((c.unlabelled, c.labelled, c.buffer), (410, 614, 0));
    let c = Mix::BUFFER.counts(1024);
    assert_eq!((c.unlabelled, c.labelled, c.buffer), (0, 0, 1024));
    for n in [1, 7, 100, 1023] {
        let c = Mix::DIETCL.counts(n);
        assert_eq!(c.unlabelled + c.labelled + c.buffer, n);
    }
    let config = TrainConfig::default();
    assert_eq!(plan(&config, 0)[0].mix, Mix::DIETCL_FIRST);
    assert_eq!(plan(&config, 1)[0].mix, Mix::DIETCL);
    assert_eq!(plan(&config, 1)[1].mix, Mix::BUFFER);
    assert_eq!(accumulation(1024, 256, 1), Some(4));
    assert_eq!(accumulation(1024, 256, 2), Some(2));
    assert_eq!(accumulation(1024, 300, 1), None);
    assert_eq!(micro_batches(410, 256).collect::<Vec<_>>(), vec![0..256, 256..410]);
}

#[test]
fn lr_at_stage_boundaries_and_per_layer_group() {
    // Base 1e-4 × 1024/256 = 4e-4, half-cosine to 5e-5; stage 2 at a tenth: 4e-5 < 5e-5, so its
    // minimum becomes 2e-5.
    let base = scaled_lr(1e-4, 1024);
    assert!((base - 4e-4).abs() < 1e-15);
    let (s1, s2) = stages(base, 5e-5, 0.1, 0.0, (400, 100));
    assert_eq!(s1.lr(0), 4e-4);
    assert!((s1.lr(400) - 5e-5).abs() < 1e-15);
    assert!((s1.lr(200) - (5e-5 + 3.5e-4 / 2.0)).abs() < 1e-15, "half-way is the mean");
    assert!((s2.lr(0) - 4e-5).abs() < 1e-15);
    assert!((s2.lr(100) - 2e-5).abs() < 1e-15);
    let config = TrainConfig::default();
    let p = plan(&config, 1);
    assert_eq!((p[0].lr, p[1].lr), (s1, s2));
    // Per group: scale = 0.65^(depth + 1 − id).
    let c = ModelConfig::preset("vit-base-16").unwrap();
    let table = ParamTable::new(&c);
    let groups = table.groups(c.depth, 0.65);
    let scale = |name: &str| groups[table.entries.iter().position(|e| e.name == name).unwrap()].lr_scale;
    assert!((scale("cls_token") - 0.65f32.powi(13)).abs() < 1e-9);
    assert!((scale("blocks.0.mlp.fc1.weight") - 0.65f32.powi(12)).abs() < 1e-9);
    assert!((scale("blocks.11.attn.proj.bias") - 0.65).abs() < 1e-7);
    assert_eq!(scale("norm.weight"), 1.0);
    assert_eq!(scale("head.weight"), 1.0);
}

/// Class-incremental current-data loss: the softmax covers the current step's classes only, so
/// the logits (and head rows) of old classes get exactly zero gradient, and the loss equals
/// cross-entropy on the sliced logits.
#[test]
fn masked_cross_entropy_leaves_old_classes_exactly_untouched() {
    let mut be = CpuBackend::new(2);
    let mut c = ModelConfig::preset("vit-micro-4-28").unwrap();
    c.classes = 6;
    let vit = Vit::new(&mut be, &c, 4).unwrap();
    let mut map = ClassMap::default();
    map.add(&[7, 2, 9]); // old step
    map.add(&[4, 0, 5]); // current step
    let pass = ClassifyPass::new(&mut be, &vit, 3);
    let images: Vec<f32> = (0..3 * 28 * 28).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
    be.upload(pass.images(), &images);
    let current = map.mask(&[4, 0, 5]);
    let mut targets = Vec::new();
    soft_targets(&[4, 5, 0], &map, 0.1, &current, &mut targets);
    assert!(targets.chunks(6).all(|row| row[..3].iter().all(|&t| t == 0.0)), "no target mass on old classes");
    be.upload(pass.targets, &targets);
    be.upload(pass.class_mask, &current);
    vit.zero_grads(&mut be);
    pass.forward(&mut be, &vit);
    let mut logits = vec![0.0; 18];
    be.download(pass.logits, &mut logits);
    let loss = pass.backward(&mut be, &vit, 1.0);
    let head = vit.download_tensor(&mut be, "head.weight", true);
    let bias = vit.download_tensor(&mut be, "head.bias", true);
    assert!(head[..3 * c.dim].iter().all(|&g| g == 0.0), "old head rows: exactly zero gradient");
    assert!(bias[..3].iter().all(|&g| g == 0.0) && bias[3..].iter().all(|&g| g != 0.0));
    // The same loss as plain cross-entropy on the current classes' logits.
    let want: f64 = (0..3)
        .map(|s| {
            let z: Vec<f64> = logits[s * 6 + 3..s * 6 + 6].iter().map(|&v| v as f64).collect();
            let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
            -(0..3).map(|k| targets[s * 6 + 3 + k] as f64 * (z[k] - lse)).sum::<f64>()
        })
        .sum::<f64>()
        / 3.0;
    assert!((loss as f64 - want).abs() < 1e-6, "{loss} vs {want}");
}

#[test]
fn config_errors_name_the_key() {
    let bad = |overrides: &[&str], needle: &str| {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let err = TrainConfig::from_yaml("test.yaml", "", &o).unwrap_err().to_string();
        assert!(err.contains(needle), "{overrides:?}: {err}");
    };
    bad(&["stream.label_rate=0"], "`stream.label_rate`");
    bad(&["stream.label_rate=1.5"], "`stream.label_rate`");
    bad(&["budget.steps=0"], "`budget.steps`");
    bad(&["budget.micro_batch=2048"], "`budget.micro_batch`");
    bad(&["strategy.name=lwf"], "unknown variant `lwf`");
    bad(&["model.preset=vit-huge"], "`model.preset`");
    bad(&["model.overrides.heads=5"], "`model.overrides.heads`");
    bad(&["stream.stepz=3"], "--set stream.stepz=3: unknown key stream.stepz (stream has: ");
    // Every numeric key of the optimizer and the strategy is checked: a negative weight decay or
    // clipping norm would flip the update, a zero buffer would train on nothing.
    for (o, key) in [
        ("optim.betas=[0.9, 1.0]", "`optim.betas`"),
        ("optim.betas=[-0.1, 0.95]", "`optim.betas`"),
        ("optim.eps=0", "`optim.eps`"),
        ("optim.weight_decay=-0.05", "`optim.weight_decay`"),
        ("optim.layer_decay=0", "`optim.layer_decay`"),
        ("optim.layer_decay=1.5", "`optim.layer_decay`"),
        ("optim.momentum=1.0", "`optim.momentum`"),
        ("optim.stage2_lr_scale=-1", "`optim.stage2_lr_scale`"),
        ("optim.clip_grad=-1", "`optim.clip_grad`"),
        ("optim.clip_grad=.nan", "`optim.clip_grad`"),
        ("optim.lr=.inf", "`optim.lr`"),
        ("strategy.buffer_capacity=0", "`strategy.buffer_capacity`"),
        ("strategy.mae_weight=-1", "`strategy.mae_weight`"),
        ("pretrain.betas=[1.0, 0.95]", "`pretrain.betas`"),
        ("pretrain.weight_decay=-1", "`pretrain.weight_decay`"),
        ("pretrain.min_lr=1.0", "`pretrain.min_lr`"),
        ("data.synthetic.classes=0", "`data.synthetic.classes`"),
        ("data.synthetic.drift=-1", "`data.synthetic.drift`"),
    ] {
        bad(&[o], key);
    }
    let err = TrainConfig::from_yaml("x.yaml", "budget: {steps: 10}\nbogus: 1\n", &[]).unwrap_err().to_string();
    assert!(err.starts_with("x.yaml line 2: unknown key bogus (the config has: seed, model, "), "{err}");
    let ok = TrainConfig::from_yaml("x.yaml", "budget: {steps: 10, stage_split: {threshold: 7}}\n", &["strategy.name=er".into()]).unwrap();
    assert_eq!(ok.budget.steps, 10);
    assert_eq!(ok.budget.stage_split, StageSplit::Threshold(7));
}
