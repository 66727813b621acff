//! The model: configuration, the flat parameter and gradient buffers, the fixed position tables,
//! and named views into both buffers for the layers.

use crate::decoder::DecoderWeights;
use crate::encoder::EncoderWeights;
use crate::linear::Affine;
use crate::{init, sincos_2d, ModelConfig, ModelError, ParamTable, Part};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rekindle_tensor::{Backend, Tensor};

/// Views of every tensor of one buffer laid out by the parameter table.
pub struct Weights {
    pub encoder: EncoderWeights,
    pub decoder: DecoderWeights,
    pub head: Affine,
}

impl Weights {
    fn view(table: &ParamTable, buffer: Tensor, c: &ModelConfig) -> Weights {
        Weights {
            encoder: EncoderWeights::view(table, buffer, c.depth),
            decoder: DecoderWeights::view(table, buffer, c.decoder_depth),
            head: Affine::view(table, buffer, "head"),
        }
    }
}

pub struct Vit {
    pub config: ModelConfig,
    pub table: ParamTable,
    /// Every trainable value, laid out by `table`.
    pub params: Tensor,
    /// Gradients, same layout; passes accumulate into it until `zero_grads`.
    pub grads: Tensor,
    /// Fixed sin-cos tables `[1 + patches, width]` for the encoder and the decoder.
    pub pos_embed: Tensor,
    pub decoder_pos_embed: Tensor,
    pub(crate) w: Weights,
    pub(crate) g: Weights,
}

impl Vit {
    /// A freshly initialised model (MAE's init; the head as PyTorch's `nn.Linear`).
    pub fn new(be: &mut dyn Backend, config: &ModelConfig, seed: u64) -> Result<Vit, ModelError> {
        config.validate()?;
        let table = ParamTable::new(config);
        let values = init::fresh(&table, seed);
        let grid = config.grid();
        let pos_embed = be.alloc((1 + grid * grid) * config.dim);
        be.upload(pos_embed, &sincos_2d(config.dim, grid));
        let decoder_pos_embed = be.alloc((1 + grid * grid) * config.decoder_dim);
        be.upload(decoder_pos_embed, &sincos_2d(config.decoder_dim, grid));
        let (params, grads) = (be.alloc_weights(table.total), be.alloc(table.total));
        be.upload(params, &values);
        let (w, g) = (Weights::view(&table, params, config), Weights::view(&table, grads, config));
        Ok(Vit { config: config.clone(), table, params, grads, pos_embed, decoder_pos_embed, w, g })
    }

    /// Draws every parameter afresh from `seed` (GDumb retrains from scratch each time step).
    pub fn reinitialize(&self, be: &mut dyn Backend, seed: u64) {
        be.upload(self.params, &self.fresh_params(seed));
    }

    /// A fresh init of this model's flat parameters, on the host (shrink-and-perturb mixes it in).
    pub fn fresh_params(&self, seed: u64) -> Vec<f32> {
        init::fresh(&self.table, seed)
    }

    pub fn zero_grads(&self, be: &mut dyn Backend) {
        be.fill(self.grads, 0.0);
    }

    /// The gradients' host copy into `out` (a host all-reduce sums them across ranks).
    pub fn read_grads(&self, be: &mut dyn Backend, out: &mut [f32]) {
        be.download(self.grads, out);
    }

    /// Replaces the gradients with `values` (the all-reduced sum).
    pub fn write_grads(&self, be: &mut dyn Backend, values: &[f32]) {
        be.upload(self.grads, values);
    }

    /// The gradients' device address, when the backend has one (NCCL reduces them in place).
    pub fn grads_address(&self, be: &dyn Backend) -> Option<u64> {
        be.device_address(self.grads)
    }

    /// The norm of the encoder's part of the gradient (its tensors come first in the table).
    pub fn encoder_grad_norm(&self, be: &mut dyn Backend) -> f32 {
        be.sum_squares(self.grads.slice(0, self.table.count(Part::Encoder))).sqrt()
    }

    pub fn download_params(&self, be: &mut dyn Backend) -> Vec<f32> {
        be.download_vec(self.params)
    }

    /// Values of one named tensor (parameters, or gradients with `grads = true`).
    pub fn download_tensor(&self, be: &mut dyn Backend, name: &str, grads: bool) -> Vec<f32> {
        be.download_vec(self.table.view(if grads { self.grads } else { self.params }, name))
    }

    pub fn upload_tensor(&self, be: &mut dyn Backend, name: &str, values: &[f32]) {
        be.upload(self.table.view(self.params, name), values);
    }

    /// Grows the head to `classes` outputs. Old rows and biases are kept bit-for-bit; new ones
    /// get PyTorch's `nn.Linear` default init, drawn from `seed`. Gradients restart at zero.
    pub fn grow_head(&mut self, be: &mut dyn Backend, classes: usize, seed: u64) -> Result<(), ModelError> {
        let old_classes = self.config.classes;
        if classes < old_classes {
            return Err(ModelError::Config {
                key: "classes".into(),
                reason: format!("the head can only grow: {old_classes} -> {classes}"),
            });
        }
        let mut config = self.config.clone();
        config.classes = classes;
        let table = ParamTable::new(&config);
        let old = self.download_params(be);
        let mut values = vec![0.0; table.total];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for e in &table.entries {
            let src = self.table.get(&e.name).expect("same layout apart from the head");
            let dst = &mut values[e.offset..e.offset + e.len];
            // Every tensor but the head has the same size; the head keeps its first rows.
            dst[..src.len].copy_from_slice(&old[src.offset..src.offset + src.len]);
            if e.part == Part::Head {
                init::fill(e, &mut dst[src.len..], &mut rng);
            }
        }
        be.free(self.params);
        be.free(self.grads);
        let (params, grads) = (be.alloc_weights(table.total), be.alloc(table.total));
        be.upload(params, &values);
        self.w = Weights::view(&table, params, &config);
        self.g = Weights::view(&table, grads, &config);
        (self.config, self.table, self.params, self.grads) = (config, table, params, grads);
        Ok(())
    }
}
