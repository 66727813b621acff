//! DietCL's real regime (METHODS.md §1): MAE pre-training and the hand-off of its weights to a
//! stream, the MAE term's source, the reference's label smoothing of the masked loss.

use rekindle_coordinator::config::{CurrentSmoothing, MaeSource};
use rekindle_coordinator::pretrain::{pretrain, PretrainProgress};
use rekindle_coordinator::targets::{current_rows, soft_targets, ClassMap};
use rekindle_coordinator::{draw, initial_model, mae_images, restart, Place, Pools, TrainConfig};
use rekindle_data::{Balance, ReplayBuffer, Scenario, Stream, StreamConfig};
use rekindle_comm::Single;
use rekindle_model::{read_tensor, Part, Vit};
use rekindle_tensor::CpuBackend;
use std::path::Path;

/// A small synthetic config whose pre-training runs in a few seconds.
fn tiny(steps: usize, extra: &[&str]) -> TrainConfig {
    let yaml = format!(
        "seed: 3
model: {{preset: vit-micro-4-28, overrides: {{image_size: 16, channels: 3, patch: 4, depth: 2, dim: 32, heads: 2, decoder_dim: 32, decoder_heads: 2, decoder_depth: 1}}}}
data: {{synthetic: {{classes: 4, train_per_class: 40, test_per_class: 10, size: 16}}, holdout: 0.5}}
augment: {{enabled: false}}
pretrain: {{steps: {steps}, effective_batch: 32, micro_batch: 16, lr: 2.0e-3, warmup_fraction: 0.1, checkpoint_every: 10}}
threads: 2
"
    );
    let overrides: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    TrainConfig::from_yaml("tiny", &yaml, &overrides).unwrap()
}

fn run_pretrain(config: &TrainConfig, dir: &Path, resume: bool) -> Vec<f32> {
    let mut be = CpuBackend::new(2);
    let mut losses = Vec::new();
    pretrain(config, &mut be, &Single, Place { dir: Some(dir), resume, run_id: "" }, |p| {
        if let PretrainProgress::Iteration { loss, .. } = p {
            losses.push(loss)
        }
    })
    .unwrap();
    losses
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rekindle-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn pretrain_loss_falls_and_resumes_bit_for_bit() {
    let config = tiny(40, &[]);
    let dir = temp_dir("pretrain");
    let losses = run_pretrain(&config, &dir, false);
    assert_eq!(losses.len(), 40);
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let (first, last) = (mean(&losses[..5]), mean(&losses[35..]));
    assert!(last < 0.8 * first, "the MAE loss falls: first five {first:.4}, last five {last:.4}");
    let file = dir.join("mae.safetensors");
    let tensors = |path: &Path| -> Vec<(String, Vec<u32>)> {
        let bytes = std::fs::read(path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut out: Vec<_> = st.tensors().into_iter().map(|(name, view)| (name, view.data().chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().unwrap())).collect())).collect();
        out.sort();
        out
    };
    let once = tensors(&file);

    // state.json points at the checkpoint of iteration 30: resuming redoes 30..40 from it and
    // must write the same file, bit for bit.
    let resumed = run_pretrain(&config, &dir, true);
    assert_eq!(resumed, losses[30..].to_vec(), "the resumed steps have the same losses");
    assert!(tensors(&file) == once, "the resumed run writes the same weights, bit for bit");
    assert!(!dir.join("checkpoints/pretrain-10.safetensors").exists(), "older checkpoints go (checkpoint.keep: 1)");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stream_starts_from_every_pretrained_encoder_and_decoder_tensor_with_a_fresh_head() {
    let dir = temp_dir("handoff");
    let pre = tiny(12, &[]);
    run_pretrain(&pre, &dir, false);
    let file = dir.join("mae.safetensors");
    let stream = tiny(12, &[&format!("model.init={}", file.display()), "seed=11"]);
    let mut model_config = stream.model_config().unwrap();
    model_config.classes = 2;
    let mut be = CpuBackend::new(2);
    let vit = initial_model(&mut be, &stream, &model_config, 11).unwrap();
    let fresh = Vit::new(&mut be, &model_config, 11).unwrap();
    let mut body = 0;
    for e in &vit.table.entries {
        let got = vit.download_tensor(&mut be, &e.name, false);
        if e.part == Part::Head {
            assert!(read_tensor(&file, &e.name).is_err(), "pre-training writes no head");
            assert_eq!(got, fresh.download_tensor(&mut be, &e.name, false), "{}: the head is fresh", e.name);
            continue;
        }
        let want = read_tensor(&file, &e.name).unwrap();
        assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()) && got.len() == want.len(), "{} differs from the file", e.name);
        body += 1;
    }
    assert_eq!(body, vit.table.entries.iter().filter(|e| e.part != Part::Head).count());
    assert!(vit.table.entries.iter().any(|e| e.part == Part::Decoder), "the decoder is handed off too");

    // GDumb's retraining from scratch goes back to the pretrained body with a fresh head.
    vit.upload_tensor(&mut be, "blocks.0.attn.qkv.weight", &vec![0.5; vit.table.get("blocks.0.attn.qkv.weight").unwrap().len]);
    vit.upload_tensor(&mut be, "head.weight", &vec![0.5; vit.table.get("head.weight").unwrap().len]);
    restart(&mut be, &vit, &stream, 99).unwrap();
    let reseeded = Vit::new(&mut be, &model_config, 99).unwrap();
    for e in &vit.table.entries {
        let got = vit.download_tensor(&mut be, &e.name, false);
        let want = if e.part == Part::Head { reseeded.download_tensor(&mut be, &e.name, false) } else { read_tensor(&file, &e.name).unwrap() };
        assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{} after a restart", e.name);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_mae_term_never_draws_a_labelled_image() {
    let labels: Vec<u32> = (0..2000).map(|i| (i % 10) as u32).collect();
    let stream = Stream::build(&labels, None, 10, &StreamConfig { scenario: Scenario::ClassIncremental, steps: 5, label_rate: 0.05, seed: 1 }).unwrap();
    let buffer = ReplayBuffer::new(Balance::Task, None, 0);
    for (source, may_be_labelled) in [(MaeSource::Unlabelled, false), (MaeSource::All, true)] {
        let mut labelled_drawn = 0;
        for (t, step) in stream.steps.iter().enumerate() {
            let pool = mae_images(step, source);
            let src = Pools { step: t as u32, current: &pool, labelled: &step.labelled, buffer: &buffer, buffer_past_only: false };
            let counts = rekindle_coordinator::budget::Mix::DIETCL_FIRST.counts(256);
            for iteration in 0..50 {
                let drawn = draw(7, &src, counts, iteration);
                assert_eq!(drawn.unlabelled.len(), counts.unlabelled);
                labelled_drawn += drawn.unlabelled.iter().filter(|i| step.labelled.binary_search(i).is_ok()).count();
            }
        }
        if may_be_labelled {
            assert!(labelled_drawn > 0, "with mae_source all, labelled images are drawn too (the test can fail)");
        } else {
            assert_eq!(labelled_drawn, 0, "the MAE term drew {labelled_drawn} labelled images");
        }
    }
}

#[test]
fn smoothing_variants_give_the_reference_targets() {
    // Four classes seen, the current step holds classes 2 and 3; label 3, ε = 0.1.
    let mut map = ClassMap::default();
    map.add(&[0, 1, 2, 3]);
    let (seen, current) = ([0, 1, 2, 3], [2, 3]);
    let expect = [
        // Spread over the current classes: the softmax's targets sum to 1.
        (CurrentSmoothing::Current, [0.0, 0.0, 0.05, 0.95]),
        // Reference: ε/4 on every class seen, sliced to classes 2 and 3 (mass 0.95).
        (CurrentSmoothing::SeenSliced, [0.025, 0.025, 0.025, 0.925]),
    ];
    for (mode, want) in expect {
        let (mask, spread) = current_rows(&map, Scenario::ClassIncremental, false, mode, &current, &seen);
        assert_eq!(mask, vec![0.0, 0.0, 1.0, 1.0], "{mode:?}: the softmax is over the current classes");
        let mut targets = Vec::new();
        soft_targets(&[3], &map, 0.1, &spread, &mut targets);
        for (k, (&got, &w)) in targets.iter().zip(&want).enumerate() {
            assert!((got - w).abs() < 1e-7, "{mode:?}: row {k} is {got}, not {w}");
        }
        // What the loss reads: the targets on the softmax's rows.
        let sliced: f32 = targets.iter().zip(&mask).map(|(t, m)| t * m).sum();
        let mass = if mode == CurrentSmoothing::Current { 1.0 } else { 0.95 };
        assert!((sliced - mass).abs() < 1e-6, "{mode:?}: sliced mass {sliced}");
    }
}
