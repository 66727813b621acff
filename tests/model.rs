//! Model behaviour: head growth, checkpoint round trips and checkpoint errors, config errors,
//! parameter and FLOP counts.

use rekindle_model::{load_checkpoint, save_checkpoint, ClassifyPass, Flops, ModelConfig, ModelError, ParamTable, Part, Vit};
use rekindle_tensor::{Backend, CpuBackend};
use std::collections::HashMap;
use std::path::PathBuf;

fn micro() -> ModelConfig {
    ModelConfig::preset("vit-micro-4-28").unwrap()
}

fn images(n: usize, c: &ModelConfig) -> Vec<f32> {
    (0..n * c.channels * c.image_size * c.image_size).map(|i| ((i * 7919) % 255) as f32 / 64.0 - 2.0).collect()
}

fn logits(be: &mut CpuBackend, vit: &Vit, x: &[f32], n: usize) -> Vec<f32> {
    let pass = ClassifyPass::new(be, vit, n);
    be.upload(pass.images(), x);
    pass.forward(be, vit);
    be.download_vec(pass.logits)
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rekindle-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn head_growth_keeps_old_logits_bit_for_bit() {
    let mut be = CpuBackend::new(2);
    let c = micro();
    let mut vit = Vit::new(&mut be, &c, 3).unwrap();
    let x = images(4, &c);
    let before = logits(&mut be, &vit, &x, 4);
    let old_head = vit.download_tensor(&mut be, "head.weight", false);
    vit.grow_head(&mut be, 15, 11).unwrap();
    assert_eq!(vit.config.classes, 15);
    let after = logits(&mut be, &vit, &x, 4);
    for s in 0..4 {
        assert_eq!(&after[s * 15..s * 15 + 10], &before[s * 10..s * 10 + 10], "sample {s}: old logits changed");
    }
    let new_head = vit.download_tensor(&mut be, "head.weight", false);
    assert_eq!(&new_head[..old_head.len()], &old_head[..]);
    // New rows: uniform in ±1/sqrt(fan_in), and not all equal.
    let bound = 1.0 / (c.dim as f32).sqrt();
    let fresh = &new_head[old_head.len()..];
    assert!(fresh.iter().all(|w| w.abs() <= bound) && fresh.iter().any(|&w| w != fresh[0]));
    assert!(matches!(vit.grow_head(&mut be, 12, 0), Err(ModelError::Config { .. })), "the head cannot shrink");
}

#[test]
fn checkpoint_round_trip_is_exact() {
    let mut be = CpuBackend::new(2);
    let c = micro();
    let a = Vit::new(&mut be, &c, 1).unwrap();
    let b = Vit::new(&mut be, &c, 2).unwrap();
    let path = temp("round-trip.safetensors");
    save_checkpoint(&mut be, &a, &path, HashMap::new()).unwrap();
    let report = load_checkpoint(&mut be, &b, &path).unwrap();
    assert_eq!(report.loaded, vec![Part::Encoder, Part::Decoder, Part::Head]);
    assert!(report.unused.is_empty());
    assert_eq!(a.download_params(&mut be), b.download_params(&mut be));
}

/// Writes the table's tensors with `edit` applied to the (name, shape) list.
fn write_checkpoint(path: &PathBuf, c: &ModelConfig, edit: impl Fn(&mut Vec<(String, Vec<usize>)>)) {
    use safetensors::tensor::{Dtype, TensorView};
    let mut entries: Vec<(String, Vec<usize>)> = ParamTable::new(c).entries.iter().map(|e| (e.name.clone(), e.shape.clone())).collect();
    edit(&mut entries);
    let data: Vec<Vec<u8>> = entries.iter().map(|(_, s)| vec![0u8; 4 * s.iter().product::<usize>()]).collect();
    let views: Vec<(String, TensorView)> =
        entries.iter().zip(&data).map(|((n, s), d)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), d).unwrap())).collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

#[test]
fn checkpoint_errors_name_the_tensor_and_shapes() {
    let mut be = CpuBackend::new(2);
    let c = micro();
    let vit = Vit::new(&mut be, &c, 1).unwrap();
    let before = vit.download_params(&mut be);

    let missing = temp("missing.safetensors");
    write_checkpoint(&missing, &c, |e| e.retain(|(n, _)| n != "blocks.1.attn.proj.weight"));
    let err = load_checkpoint(&mut be, &vit, &missing).unwrap_err().to_string();
    assert!(err.contains("`blocks.1.attn.proj.weight` is missing") && err.contains("[64, 64]"), "{err}");

    let misshaped = temp("misshaped.safetensors");
    write_checkpoint(&misshaped, &c, |e| {
        e.iter_mut().find(|(n, _)| n == "blocks.0.mlp.fc1.weight").unwrap().1 = vec![128, 64];
    });
    let err = load_checkpoint(&mut be, &vit, &misshaped).unwrap_err().to_string();
    assert!(err.contains("`blocks.0.mlp.fc1.weight` has shape [128, 64]") && err.contains("needs [256, 64]"), "{err}");

    let corrupt = temp("corrupt.safetensors");
    std::fs::write(&corrupt, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json").unwrap();
    let err = load_checkpoint(&mut be, &vit, &corrupt).unwrap_err().to_string();
    assert!(err.contains("corrupt.safetensors") && err.contains("not a valid safetensors"), "{err}");

    assert_eq!(vit.download_params(&mut be), before, "a failed load must leave the model untouched");
}

#[test]
fn encoder_only_checkpoint_keeps_fresh_decoder_and_head() {
    let mut be = CpuBackend::new(2);
    let c = micro();
    let vit = Vit::new(&mut be, &c, 1).unwrap();
    let path = temp("encoder-only.safetensors");
    write_checkpoint(&path, &c, |e| {
        e.retain(|(n, _)| ParamTable::new(&c).get(n).unwrap().part == Part::Encoder);
        e.push(("pos_embed".into(), vec![1, 50, 64]));
        e.push(("fc_norm.weight".into(), vec![64]));
    });
    let head_before = vit.download_tensor(&mut be, "head.weight", false);
    let report = load_checkpoint(&mut be, &vit, &path).unwrap();
    assert_eq!(report.loaded, vec![Part::Encoder]);
    assert_eq!(report.kept, vec![Part::Decoder, Part::Head]);
    assert_eq!(report.unused, vec!["fc_norm.weight".to_string()], "pos_embed is known and fixed; fc_norm is reported");
    assert_eq!(vit.download_tensor(&mut be, "head.weight", false), head_before);
    assert!(vit.download_tensor(&mut be, "norm.weight", false).iter().all(|&v| v == 0.0), "encoder loaded from the file");
}

#[test]
fn impossible_configs_name_the_key() {
    let mut c = micro();
    let err = c.set("image_size", "30").unwrap_err().to_string();
    assert!(err.contains("`patch`") && err.contains("30 is not divisible by patch 4"), "{err}");
    let mut c = micro();
    let err = c.set("heads", "5").unwrap_err().to_string();
    assert!(err.contains("`heads`") && err.contains("5 heads do not divide width 64"), "{err}");
    let mut c = micro();
    assert!(c.set("depht", "3").unwrap_err().to_string().contains("`depht`: unknown model key"));
    assert!(ModelConfig::preset("vit-huge").unwrap_err().to_string().contains("unknown preset 'vit-huge'"));
    let mut be = CpuBackend::new(1);
    let mut bad = micro();
    bad.decoder_heads = 3;
    assert!(Vit::new(&mut be, &bad, 0).is_err(), "Vit::new validates too");
}

#[test]
fn vit_base_counts_match_timm() {
    let c = ModelConfig::preset("vit-base-16").unwrap();
    let t = ParamTable::new(&c);
    // timm vit_base_patch16_224: 86,567,656 parameters, of which 197·768 = 151,296 are its learned
    // position table (fixed sin-cos here).
    assert_eq!(t.count(Part::Encoder) + t.count(Part::Head), 86_567_656 - 151_296);
    let gmacs = Flops::of(&c).classify_forward / 2e9;
    assert!((gmacs - 17.6).abs() <= 0.1, "{gmacs} GMACs");
}

#[test]
fn layer_decay_and_weight_decay_groups() {
    let c = micro();
    let t = ParamTable::new(&c);
    let groups = t.groups(c.depth, 0.65);
    let scale = |name: &str| groups[t.entries.iter().position(|e| e.name == name).unwrap()];
    assert!((scale("patch_embed.proj.weight").lr_scale - 0.65f32.powi(5)).abs() < 1e-7);
    assert!((scale("blocks.0.attn.qkv.weight").lr_scale - 0.65f32.powi(4)).abs() < 1e-7);
    assert!((scale("blocks.3.mlp.fc2.weight").lr_scale - 0.65).abs() < 1e-7);
    assert_eq!(scale("head.weight").lr_scale, 1.0);
    assert_eq!(scale("decoder_blocks.0.attn.qkv.weight").lr_scale, 1.0);
    assert!(!scale("cls_token").weight_decay && !scale("blocks.0.norm1.weight").weight_decay);
    assert!(!scale("head.bias").weight_decay && scale("head.weight").weight_decay);
}
