//! Safetensors import/export under timm/MAE tensor names with PyTorch shapes, so a PyTorch MAE or
//! timm checkpoint converted with `scripts/convert_checkpoint.py` loads directly.
//!
//! Loading rules: the encoder must be complete. The decoder and the head may be absent as a whole
//! (a timm classifier has no decoder, an MAE pre-training checkpoint has no head); an absent part
//! keeps its current values. A part that is present but incomplete, or any tensor of the wrong
//! shape, is an error naming the tensor and both shapes.

use crate::{ModelError, Part, Vit};
use rekindle_tensor::Backend;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// Fixed (non-trainable) tables that checkpoints carry and rekindle recomputes.
const FIXED_TABLES: [&str; 2] = ["pos_embed", "decoder_pos_embed"];

/// What a load took from the file.
#[derive(Debug, Default, PartialEq)]
pub struct LoadReport {
    pub loaded: Vec<Part>,
    /// Parts absent from the file, left as they were.
    pub kept: Vec<Part>,
    /// Tensors in the file that the model does not use.
    pub unused: Vec<String>,
}

/// Every part of the model.
pub const ALL_PARTS: [Part; 3] = [Part::Encoder, Part::Decoder, Part::Head];

/// Encoder and decoder: what MAE pre-training trains and saves, and what a stream takes from a
/// pretrained start (the head is always fresh).
pub const BODY: [Part; 2] = [Part::Encoder, Part::Decoder];

/// The metadata key of every checkpoint's model geometry (a `ModelConfig` as JSON), so a file
/// can be loaded without its config.
pub const META_MODEL: &str = "rekindle.model";

/// Writes the model's parameters, plus `metadata`, atomically (temp file, fsync, rename).
pub fn save_checkpoint(be: &mut dyn Backend, vit: &Vit, path: &Path, metadata: HashMap<String, String>) -> Result<(), ModelError> {
    save_parts(be, vit, path, &ALL_PARTS, metadata)
}

/// Writes the tensors of `parts` only (MAE pre-training leaves out the head, which it never
/// trains), plus `metadata`, atomically.
pub fn save_parts(be: &mut dyn Backend, vit: &Vit, path: &Path, parts: &[Part], mut metadata: HashMap<String, String>) -> Result<(), ModelError> {
    let values = vit.download_params(be);
    let tensors: Vec<(&str, &[usize], &[f32])> = vit
        .table
        .entries
        .iter()
        .filter(|e| parts.contains(&e.part))
        .map(|e| (e.name.as_str(), e.shape.as_slice(), &values[e.offset..e.offset + e.len]))
        .collect();
    metadata.insert(META_MODEL.into(), serde_json::to_string(&vit.config).expect("config serialises"));
    write_tensors(path, &tensors, metadata)
}

/// Writes named f32 tensors to a safetensors file atomically: temp file, fsync, rename, so a
/// crash never leaves a half-written file under `path`.
pub fn write_tensors(path: &Path, tensors: &[(&str, &[usize], &[f32])], metadata: HashMap<String, String>) -> Result<(), ModelError> {
    let io = |error| ModelError::Io { path: path.display().to_string(), error };
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, shape, values)| {
            let view = TensorView::new(Dtype::F32, shape.to_vec(), bytemuck::cast_slice(values)).expect("shape matches length");
            (name.to_string(), view)
        })
        .collect();
    let data = safetensors::serialize(views, Some(metadata))
        .map_err(|e| ModelError::Checkpoint { path: path.display().to_string(), reason: e.to_string() })?;
    let tmp = path.with_extension("safetensors.tmp");
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(&data).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// One named tensor of a safetensors file, as f32.
pub fn read_tensor(path: &Path, name: &str) -> Result<Vec<f32>, ModelError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|error| ModelError::Io { path: p.clone(), error })?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| ModelError::Checkpoint { path: p.clone(), reason: format!("not a valid safetensors file: {e}") })?;
    let t = file.tensor(name).map_err(|_| ModelError::MissingTensor { path: p.clone(), tensor: name.into(), expected: vec![] })?;
    to_f32(&t).map_err(|reason| ModelError::Checkpoint { path: p, reason })
}

/// The string metadata of a safetensors file (empty when it has none).
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>, ModelError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|error| ModelError::Io { path: p.clone(), error })?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| ModelError::Checkpoint { path: p, reason: format!("not a valid safetensors file: {e}") })?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// Loads parameters from a safetensors file into `vit` (see the module docs for the rules).
pub fn load_checkpoint(be: &mut dyn Backend, vit: &Vit, path: &Path) -> Result<LoadReport, ModelError> {
    load_parts(be, vit, path, &ALL_PARTS)
}

/// Like [`load_checkpoint`], but only `parts` are read; the others keep their values whatever
/// the file holds (a stream starts from a pretrained body with a fresh head).
pub fn load_parts(be: &mut dyn Backend, vit: &Vit, path: &Path, parts: &[Part]) -> Result<LoadReport, ModelError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|error| ModelError::Io { path: p.clone(), error })?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| ModelError::Checkpoint { path: p.clone(), reason: format!("not a valid safetensors file: {e}") })?;
    let names: Vec<String> = file.names().into_iter().map(|s| s.to_string()).collect();
    let mut report = LoadReport::default();
    for part in ALL_PARTS {
        let entries: Vec<_> = vit.table.entries.iter().filter(|e| e.part == part).collect();
        let present = entries.iter().filter(|e| names.contains(&e.name)).count();
        if !parts.contains(&part) || (present == 0 && part != Part::Encoder) {
            report.kept.push(part);
            continue;
        }
        // Check the whole part before writing any of it.
        let mut staged = Vec::with_capacity(entries.len());
        for e in &entries {
            let t = file.tensor(&e.name).map_err(|_| ModelError::MissingTensor {
                path: p.clone(),
                tensor: e.name.clone(),
                expected: e.shape.clone(),
            })?;
            if t.shape() != e.shape.as_slice() {
                return Err(ModelError::ShapeMismatch {
                    path: p.clone(),
                    tensor: e.name.clone(),
                    expected: e.shape.clone(),
                    found: t.shape().to_vec(),
                });
            }
            staged.push((e.name.clone(), to_f32(&t).map_err(|reason| ModelError::Checkpoint { path: p.clone(), reason: format!("tensor `{}`: {reason}", e.name) })?));
        }
        for (name, values) in staged {
            vit.upload_tensor(be, &name, &values);
        }
        report.loaded.push(part);
    }
    report.unused = names
        .into_iter()
        .filter(|n| vit.table.get(n).is_none() && !FIXED_TABLES.contains(&n.as_str()))
        .collect();
    report.unused.sort();
    Ok(report)
}

fn to_f32(t: &TensorView) -> Result<Vec<f32>, String> {
    let d = t.data();
    Ok(match t.dtype() {
        Dtype::F32 => d.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
        Dtype::F64 => d.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32).collect(),
        Dtype::F16 => d.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => d.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        other => return Err(format!("dtype {other:?} is not a floating-point type rekindle reads")),
    })
}
