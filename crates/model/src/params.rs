//! The flat parameter table: every tensor's timm/MAE name, PyTorch shape and offset in one buffer.
//! Gradients and optimiser state use the same layout, so one offset serves all of them.

use crate::ModelConfig;
use rekindle_tensor::{ParamGroup, Tensor};

/// Which part of the model a tensor belongs to (checkpoints may carry any subset of parts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    Encoder,
    Decoder,
    Head,
}

/// How a fresh model initialises a tensor (MAE's recipe; the head as PyTorch's `nn.Linear`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// Xavier-uniform over `[fan_out, fan_in]` (conv weights flattened to 2-D).
    Xavier,
    /// Uniform ±1/sqrt(fan_in): PyTorch's default for `nn.Linear` weights and biases.
    LinearDefault { fan_in: usize },
    /// Normal(0, 0.02): CLS and mask tokens.
    Token,
    Zeros,
    Ones,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamEntry {
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
    pub len: usize,
    pub part: Part,
    /// Layer id for layer-wise LR decay: 0 for patch embedding and CLS, k+1 for encoder block k,
    /// and depth+1 for everything after the encoder blocks (LR scale 1).
    pub layer_id: usize,
    pub weight_decay: bool,
    pub init: Init,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamTable {
    pub entries: Vec<ParamEntry>,
    pub total: usize,
}

impl ParamTable {
    /// The layout for `config`: encoder, then decoder, then the head last, so that growing the
    /// head never moves another tensor.
    pub fn new(c: &ModelConfig) -> ParamTable {
        let mut t = ParamTable { entries: Vec::new(), total: 0 };
        let (d, dd) = (c.dim, c.decoder_dim);
        let top = c.depth + 1;
        t.push("cls_token", &[1, 1, d], Part::Encoder, 0, Init::Token);
        t.push("patch_embed.proj.weight", &[d, c.channels, c.patch, c.patch], Part::Encoder, 0, Init::Xavier);
        t.push("patch_embed.proj.bias", &[d], Part::Encoder, 0, Init::Zeros);
        for i in 0..c.depth {
            t.push_block(&format!("blocks.{i}"), d, d * c.mlp_ratio, Part::Encoder, i + 1);
        }
        t.push("norm.weight", &[d], Part::Encoder, top, Init::Ones);
        t.push("norm.bias", &[d], Part::Encoder, top, Init::Zeros);
        t.push("decoder_embed.weight", &[dd, d], Part::Decoder, top, Init::Xavier);
        t.push("decoder_embed.bias", &[dd], Part::Decoder, top, Init::Zeros);
        t.push("mask_token", &[1, 1, dd], Part::Decoder, top, Init::Token);
        for i in 0..c.decoder_depth {
            t.push_block(&format!("decoder_blocks.{i}"), dd, dd * c.mlp_ratio, Part::Decoder, top);
        }
        t.push("decoder_norm.weight", &[dd], Part::Decoder, top, Init::Ones);
        t.push("decoder_norm.bias", &[dd], Part::Decoder, top, Init::Zeros);
        t.push("decoder_pred.weight", &[c.patch_len(), dd], Part::Decoder, top, Init::Xavier);
        t.push("decoder_pred.bias", &[c.patch_len()], Part::Decoder, top, Init::Zeros);
        t.push("head.weight", &[c.classes, d], Part::Head, top, Init::LinearDefault { fan_in: d });
        t.push("head.bias", &[c.classes], Part::Head, top, Init::LinearDefault { fan_in: d });
        t
    }

    fn push_block(&mut self, prefix: &str, width: usize, hidden: usize, part: Part, layer: usize) {
        let linears = [("attn.qkv", 3 * width, width), ("attn.proj", width, width), ("mlp.fc1", hidden, width), ("mlp.fc2", width, hidden)];
        self.push(&format!("{prefix}.norm1.weight"), &[width], part, layer, Init::Ones);
        self.push(&format!("{prefix}.norm1.bias"), &[width], part, layer, Init::Zeros);
        for (name, out_f, in_f) in &linears[..2] {
            self.push(&format!("{prefix}.{name}.weight"), &[*out_f, *in_f], part, layer, Init::Xavier);
            self.push(&format!("{prefix}.{name}.bias"), &[*out_f], part, layer, Init::Zeros);
        }
        self.push(&format!("{prefix}.norm2.weight"), &[width], part, layer, Init::Ones);
        self.push(&format!("{prefix}.norm2.bias"), &[width], part, layer, Init::Zeros);
        for (name, out_f, in_f) in &linears[2..] {
            self.push(&format!("{prefix}.{name}.weight"), &[*out_f, *in_f], part, layer, Init::Xavier);
            self.push(&format!("{prefix}.{name}.bias"), &[*out_f], part, layer, Init::Zeros);
        }
    }

    fn push(&mut self, name: &str, shape: &[usize], part: Part, layer_id: usize, init: Init) {
        let len = shape.iter().product();
        // METHODS §1: no decay on 1-D tensors, the CLS token or position tables.
        let weight_decay = shape.len() > 1 && name != "cls_token";
        self.entries.push(ParamEntry {
            name: name.to_string(),
            shape: shape.to_vec(),
            offset: self.total,
            len,
            part,
            layer_id,
            weight_decay,
            init,
        });
        self.total += len;
    }

    pub fn get(&self, name: &str) -> Option<&ParamEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The view of tensor `name` inside a buffer laid out by this table.
    pub fn view(&self, buffer: Tensor, name: &str) -> Tensor {
        let e = self.get(name).unwrap_or_else(|| panic!("no parameter named {name}"));
        buffer.slice(e.offset, e.len)
    }

    /// Number of values in one part.
    pub fn count(&self, part: Part) -> usize {
        self.entries.iter().filter(|e| e.part == part).map(|e| e.len).sum()
    }

    /// Optimiser groups with layer-wise LR decay: scale = decay^(depth + 1 − layer_id).
    pub fn groups(&self, depth: usize, layer_decay: f32) -> Vec<ParamGroup> {
        self.entries
            .iter()
            .map(|e| ParamGroup {
                offset: e.offset,
                len: e.len,
                lr_scale: layer_decay.powi((depth + 1 - e.layer_id) as i32),
                weight_decay: e.weight_decay,
            })
            .collect()
    }
}
