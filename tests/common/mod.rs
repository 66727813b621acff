//! Shared helpers for the integration tests: loading the PyTorch fixtures; the tiny stream the
//! multi-process tests train (`distributed.rs` under mpirun, `slurm.rs` under Slurm), run
//! directories, and comparing what two runs wrote.
#![allow(dead_code)] // each test binary uses its own subset

use rekindle_model::{MaskIds, ModelConfig};
use safetensors::tensor::Dtype;
use safetensors::SafeTensors;
use rekindle_tensor::relative_error;
use std::path::{Path, PathBuf};

/// `tests/fixtures/NAME.safetensors`, or under `$REKINDLE_FIXTURES` (test binaries copied to
/// another machine, such as a GPU host without a Rust toolchain, point it at their fixtures).
pub fn fixture_path(name: &str) -> PathBuf {
    let dir = std::env::var("REKINDLE_FIXTURES").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"));
    dir.join(format!("{name}.safetensors"))
}

/// A fixture written by `scripts/reference/make_fixtures.py`.
pub struct Fixture {
    pub bytes: Vec<u8>,
    pub config: ModelConfig,
    pub batch: usize,
}

impl Fixture {
    pub fn load(name: &str) -> Fixture {
        let bytes = std::fs::read(fixture_path(name)).expect("fixture file (run scripts/reference/make_fixtures.py)");
        let (_, meta) = SafeTensors::read_metadata(&bytes).expect("safetensors header");
        let json = meta.metadata().as_ref().and_then(|m| m.get("config")).expect("config metadata").clone();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let u = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("config key {k}")) as usize;
        let config = ModelConfig {
            image_size: u("img_size"),
            channels: u("in_chans"),
            patch: u("patch_size"),
            dim: u("embed_dim"),
            depth: u("depth"),
            heads: u("num_heads"),
            mlp_ratio: v["mlp_ratio"].as_f64().unwrap() as usize,
            decoder_dim: u("decoder_embed_dim"),
            decoder_depth: u("decoder_depth"),
            decoder_heads: u("decoder_num_heads"),
            classes: u("num_classes"),
            mask_ratio: v["mask_ratio"].as_f64().unwrap() as f32,
        };
        Fixture { batch: u("batch"), config, bytes }
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).unwrap()
    }

    pub fn names(&self) -> Vec<String> {
        self.tensors().names().into_iter().map(|s| s.to_string()).collect()
    }

    pub fn f32(&self, name: &str) -> Vec<f32> {
        let st = self.tensors();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("fixture tensor {name}"));
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
    }

    pub fn i32(&self, name: &str) -> Vec<i32> {
        let st = self.tensors();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("fixture tensor {name}"));
        assert_eq!(t.dtype(), Dtype::I64, "{name}");
        t.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as i32).collect()
    }

    pub fn scalar(&self, name: &str) -> f32 {
        self.f32(name)[0]
    }

    pub fn mask_ids(&self) -> MaskIds {
        let c = &self.config;
        MaskIds {
            samples: self.batch,
            patches: c.patches(),
            kept: c.kept_patches(),
            keep: self.i32("ids_keep"),
            restore: self.i32("ids_restore"),
            mask: self.f32("mask"),
        }
    }
}

/// DietCL (MAE, current labels and buffer in every step) on a tiny synthetic stream, for runs on
/// several ranks; mixup pairs images within a micro-batch, so it is off (crops, flips and masks
/// stay on).
pub const TINY_RANKS: &str = "
seed: 5
model: {preset: vit-micro-4-28, overrides: {image_size: 16, channels: 3, depth: 2, dim: 32, heads: 2, decoder_dim: 32}}
data: {synthetic: {classes: 6, train_per_class: 40, test_per_class: 10, size: 16}, eval_batch: 16}
stream: {scenario: class-incremental, steps: 3, label_rate: 0.25}
budget: {steps: 8, effective_batch: 32, micro_batch: 8}
strategy: {name: dietcl}
optim: {lr: 1.0e-3, min_lr: 1.0e-5}
augment: {mixing: {prob: 0}}
threads: 1
";

/// Runs the binary with `args`, aborting at the named point when `fault` is given
/// (`REKINDLE_FAULT`, see crates/coordinator/src/fault.rs).
pub fn rekindle(args: &[&str], fault: Option<&str>) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_rekindle"));
    c.args(args);
    match fault {
        Some(f) => c.env("REKINDLE_FAULT", f),
        None => c.env_remove("REKINDLE_FAULT"),
    };
    c.output().expect("run rekindle")
}

/// A fresh temporary directory for test `name` of suite `suite`.
pub fn dir(suite: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rekindle-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes `text` as `d/tiny.yaml` and returns its path.
pub fn config(d: &Path, text: &str) -> String {
    let path = d.join("tiny.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// A run's `summary.json` without its wall time, the one field two equal runs may differ in.
pub fn summary_without_wall(run: &Path) -> serde_json::Value {
    let mut s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let fields = s.as_object_mut().unwrap();
    fields.remove("wall_seconds");
    // Every run has its own id; the results are what must match.
    assert!(fields.remove("run_id").is_some_and(|id| id.as_str().is_some_and(|id| !id.is_empty())), "{}: summary.json names its run", run.display());
    s
}

/// A run's training lines of `metrics.jsonl`, without their throughput.
pub fn train_lines(run: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "train")
        .map(|mut v| {
            v.as_object_mut().unwrap().remove("images_per_sec");
            v
        })
        .collect()
}

/// Every tensor of a checkpoint, concatenated in name order.
pub fn params(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    names.iter().flat_map(|n| st.tensor(n).unwrap().data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect::<Vec<_>>()).collect()
}

/// The two checkpoints hold the same parameters to a relative error of 1e-5 (what data-parallel
/// ranks reach against one process), and training moved them from time step 0's.
pub fn assert_same_params(a: &Path, b: &Path, what: &str) {
    let (pa, pb) = (params(a), params(b));
    let e = relative_error(&pa, &pb);
    eprintln!("{what}: relative parameter error {e:.3e} over {} values", pa.len());
    assert!(e <= 1e-5, "{what}: relative error {e:.3e} > 1e-5");
    assert!(pa != params(&a.with_file_name("step-0.safetensors")) || a.ends_with("step-0.safetensors"), "{what}: training changed the model");
}
