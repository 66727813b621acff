//! Shared helpers for the integration tests: loading the PyTorch fixtures.

use rekindle_model::{MaskIds, ModelConfig};
use safetensors::tensor::Dtype;
use safetensors::SafeTensors;
use std::path::PathBuf;

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
