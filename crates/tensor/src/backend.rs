//! The backend trait: the complete list of operations the ViT/MAE model is built from.
//!
//! Conventions shared by every op:
//! - matrices are row-major; `[rows, cols]` shapes are given in elements, not bytes;
//! - an op whose doc says *accumulates* adds into its output (`+=`), so gradients of several uses
//!   of one parameter, and of several micro-batches, sum without extra buffers; every other op
//!   overwrites its output;
//! - outputs never overlap inputs unless the op says so.
//!
//! Ops are enqueued on the backend: a CPU backend runs them at once, a device backend may run them
//! asynchronously. Only `download` and the ops that return host values synchronise.

use crate::{Indices, OpTime, Tensor};

/// One (optionally batched) matrix product `C = alpha · op(A) · op(B) [+ C] [+ bias]`.
///
/// `op(A)` is `[m, k]`: A is stored `[m, k]`, or `[k, m]` when `trans_a`. `op(B)` is `[k, n]`: B is
/// stored `[k, n]`, or `[n, k]` when `trans_b`. C is `[m, n]`. With `batch > 1` the product is
/// repeated with each operand advanced by its stride (in elements); `bias` (length n) is added to
/// every row of every batch.
#[derive(Clone, Copy, Debug)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: Tensor,
    pub b: Tensor,
    pub c: Tensor,
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    /// Add into C instead of overwriting it.
    pub accumulate: bool,
    pub bias: Option<Tensor>,
    pub batch: usize,
    pub stride_a: usize,
    pub stride_b: usize,
    pub stride_c: usize,
}

impl Gemm {
    /// A single, non-accumulating product with no bias; adjust fields from here.
    pub fn new(m: usize, n: usize, k: usize, a: Tensor, b: Tensor, c: Tensor) -> Gemm {
        Gemm {
            m,
            n,
            k,
            a,
            b,
            c,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            accumulate: false,
            bias: None,
            batch: 1,
            stride_a: 0,
            stride_b: 0,
            stride_c: 0,
        }
    }
}

/// Multi-head self-attention over a fused qkv activation.
///
/// `qkv` is `[batch, tokens, 3 · heads · head_dim]` in timm's layout (q, k, v blocks, each split into
/// heads); the output is `[batch, tokens, heads · head_dim]` with head `h` in columns
/// `h·head_dim .. (h+1)·head_dim`. Scores are scaled by `head_dim^-1/2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    pub tokens: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    pub fn width(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// The geometry of square images cut into square patches.
///
/// Images are `[batch, channels, size, size]` (NCHW). Patches are `[batch, grid², patch²·channels]`,
/// with patch index `row · grid + col`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchShape {
    pub batch: usize,
    pub channels: usize,
    pub image_size: usize,
    pub patch: usize,
}

impl PatchShape {
    pub fn grid(&self) -> usize {
        self.image_size / self.patch
    }
    pub fn patches(&self) -> usize {
        self.grid() * self.grid()
    }
    pub fn patch_len(&self) -> usize {
        self.patch * self.patch * self.channels
    }
}

/// The order of pixels inside one flattened patch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchOrder {
    /// (channel, row, col): the order a stride-p convolution's weight `[D, C, p, p]` flattens to.
    ChannelRowCol,
    /// (row, col, channel): the MAE reconstruction-target order.
    RowColChannel,
}

/// One contiguous tensor of the flat parameter buffer, as the optimizer sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamGroup {
    pub offset: usize,
    pub len: usize,
    /// Multiplies the step's learning rate (layer-wise LR decay).
    pub lr_scale: f32,
    /// Whether decoupled weight decay applies (not to 1-D tensors, tokens or position tables).
    pub weight_decay: bool,
}

/// AdamW hyper-parameters for one update. `step` counts from 1 (bias correction).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub step: u32,
    /// Multiplies every gradient before use (gradient clipping by global norm, 1 otherwise).
    pub grad_scale: f32,
}

/// SGD hyper-parameters for one update (PyTorch semantics: coupled weight decay, dampening 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    pub lr: f32,
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    pub grad_scale: f32,
}

/// Every operation the model needs. See the module docs for the shared conventions.
pub trait Backend {
    /// A short name for logs ("cpu", "cuda:0").
    fn name(&self) -> String;
    /// Waits until every enqueued op has finished (timings need it; a CPU backend is always done).
    fn synchronize(&mut self) {}
    /// The device address of view `t`, for collectives that read device memory in place (NCCL);
    /// `None` for host memory.
    fn device_address(&self, _t: Tensor) -> Option<u64> {
        None
    }
    /// The backend's first failure (a device allocation that did not fit, a failed launch), if
    /// any. A backend that fails skips every later op instead of panicking, so a training rank
    /// can finish its step, tell the other ranks, and stop with this message.
    fn error(&self) -> Option<String> {
        None
    }
    /// Starts (or restarts) timing every op, for `op_times`; backends without per-op timing ignore it.
    fn start_profile(&mut self) {}
    /// Wall time and call count per op since `start_profile`, slowest first (empty where not
    /// measured).
    fn op_times(&self) -> Vec<OpTime> {
        Vec::new()
    }

    // --- memory ---------------------------------------------------------------------------------

    /// A new zero-filled buffer of `len` f32 elements, as one view.
    fn alloc(&mut self, len: usize) -> Tensor;
    /// A buffer of activations or of their gradients: values that only ops read and write, where a
    /// backend may store fewer bits (bf16 on a GPU under `--precision bf16`; uploads and downloads
    /// convert). Statistics, losses, the residual stream and anything summed over many steps stay
    /// in [`Backend::alloc`] buffers.
    fn alloc_activations(&mut self, len: usize) -> Tensor {
        self.alloc(len)
    }
    /// A buffer of parameters: f32 master values, which a backend whose GEMMs read bf16 mirrors in
    /// a bf16 copy that every write to the buffer keeps current.
    fn alloc_weights(&mut self, len: usize) -> Tensor {
        self.alloc(len)
    }
    /// A new zero-filled buffer of `len` i32 indices.
    fn alloc_indices(&mut self, len: usize) -> Indices;
    /// Releases the buffer that `whole` spans; every view into it becomes invalid.
    fn free(&mut self, whole: Tensor);
    /// Releases the index buffer that `whole` spans.
    fn free_indices(&mut self, whole: Indices);
    /// Bytes held by every live buffer (activations at their stored width, bf16 weight copies
    /// and index buffers included): what a long run's memory check watches.
    fn allocated_bytes(&self) -> usize;
    fn upload(&mut self, dst: Tensor, src: &[f32]);
    fn upload_indices(&mut self, dst: Indices, src: &[i32]);
    fn download(&mut self, src: Tensor, dst: &mut [f32]);
    fn fill(&mut self, dst: Tensor, value: f32);
    /// A new buffer holding `values`.
    fn upload_new(&mut self, values: &[f32]) -> Tensor {
        let t = self.alloc(values.len());
        self.upload(t, values);
        t
    }
    /// The values of view `t`.
    fn download_vec(&mut self, t: Tensor) -> Vec<f32> {
        let mut v = vec![0.0; t.len];
        self.download(t, &mut v);
        v
    }
    fn copy(&mut self, dst: Tensor, src: Tensor);

    // --- linear algebra ---------------------------------------------------------------------------

    fn gemm(&mut self, g: &Gemm);
    /// Accumulates the column sums of `dout [rows, cols]` into `dbias [cols]`.
    fn bias_backward(&mut self, dbias: Tensor, dout: Tensor, rows: usize, cols: usize);

    // --- elementwise ------------------------------------------------------------------------------

    /// `dst += alpha · src`: extra gradient terms (distillation, an L2 pull to a reference).
    fn axpy(&mut self, dst: Tensor, alpha: f32, src: Tensor);
    /// Adds `table [rows, width]` to every sample of `x [samples, rows, width]`, in place (fixed
    /// position embeddings: no gradient flows into the table).
    fn add_rows(&mut self, x: Tensor, table: Tensor, rows: usize, width: usize);
    /// Exact-erf GELU.
    fn gelu_forward(&mut self, out: Tensor, inp: Tensor);
    /// `dinp = dout · gelu'(inp)` (overwrites `dinp`).
    fn gelu_backward(&mut self, dinp: Tensor, inp: Tensor, dout: Tensor);

    // --- normalisation ----------------------------------------------------------------------------

    /// LayerNorm over the last axis of `inp [rows, width]`; saves `mean` and `rstd` (each `[rows]`).
    #[allow(clippy::too_many_arguments)]
    fn layernorm_forward(
        &mut self,
        out: Tensor,
        mean: Tensor,
        rstd: Tensor,
        inp: Tensor,
        weight: Tensor,
        bias: Tensor,
        rows: usize,
        width: usize,
        eps: f32,
    );
    /// Accumulates the input, weight and bias gradients of LayerNorm.
    #[allow(clippy::too_many_arguments)]
    fn layernorm_backward(
        &mut self,
        dinp: Tensor,
        dweight: Tensor,
        dbias: Tensor,
        dout: Tensor,
        inp: Tensor,
        weight: Tensor,
        mean: Tensor,
        rstd: Tensor,
        rows: usize,
        width: usize,
    );

    // --- attention --------------------------------------------------------------------------------

    /// Elements of the per-layer state the forward saves for the backward (a backend-specific
    /// choice: probabilities on CPU, log-sum-exp rows on a device).
    fn attention_saved_len(&self, shape: AttentionShape) -> usize;
    fn attention_forward(&mut self, out: Tensor, saved: Tensor, qkv: Tensor, shape: AttentionShape);
    /// Overwrites `dqkv` with the gradient of the attention input.
    fn attention_backward(
        &mut self,
        dqkv: Tensor,
        dout: Tensor,
        qkv: Tensor,
        out: Tensor,
        saved: Tensor,
        shape: AttentionShape,
    );

    // --- tokens -----------------------------------------------------------------------------------

    /// `out[s, i] = inp[s, idx[s, i]]` for `idx >= 0`, and `fill` where `idx < 0`.
    ///
    /// `inp` is `[samples, in_rows, width]`, `idx` is `[samples, out_rows]`, `out` is
    /// `[samples, out_rows, width]`. This one op builds the encoder input (CLS from `fill`, then
    /// the kept patches) and the decoder input (mask token where a patch was removed).
    #[allow(clippy::too_many_arguments)]
    fn gather_rows(
        &mut self,
        out: Tensor,
        inp: Tensor,
        idx: Indices,
        fill: Tensor,
        samples: usize,
        in_rows: usize,
        out_rows: usize,
        width: usize,
    );
    /// The mirror scatter of [`Backend::gather_rows`]: accumulates `dout` rows into `dinp` at
    /// their source rows and into `dfill` where `idx < 0`.
    #[allow(clippy::too_many_arguments)]
    fn gather_rows_backward(
        &mut self,
        dinp: Tensor,
        dfill: Tensor,
        dout: Tensor,
        idx: Indices,
        samples: usize,
        in_rows: usize,
        out_rows: usize,
        width: usize,
    );
    /// `out[s] = mean over rows skip..rows of inp[s, row]` for `inp [samples, rows, width]`.
    fn mean_pool_forward(&mut self, out: Tensor, inp: Tensor, samples: usize, rows: usize, width: usize, skip: usize);
    /// Overwrites `dinp` (rows before `skip` get zero).
    fn mean_pool_backward(&mut self, dinp: Tensor, dout: Tensor, samples: usize, rows: usize, width: usize, skip: usize);

    // --- images -----------------------------------------------------------------------------------

    fn patchify(&mut self, patches: Tensor, images: Tensor, shape: PatchShape, order: PatchOrder);
    fn unpatchify(&mut self, images: Tensor, patches: Tensor, shape: PatchShape, order: PatchOrder);

    // --- losses (forward and gradient fused) -----------------------------------------------------

    /// Soft-target cross-entropy with the softmax restricted to classes whose `class_mask` is
    /// non-zero. Writes each sample's loss into `losses [rows]` and overwrites
    /// `dlogits = grad_scale · ∂loss_row/∂logits`; masked-out classes get exactly zero gradient and
    /// their targets are ignored.
    #[allow(clippy::too_many_arguments)]
    fn cross_entropy(
        &mut self,
        losses: Tensor,
        dlogits: Tensor,
        logits: Tensor,
        targets: Tensor,
        class_mask: Tensor,
        rows: usize,
        classes: usize,
        grad_scale: f32,
    );
    /// MAE loss: per-patch normalised targets `(t − mean) / sqrt(var_unbiased + 1e-6)`, per-patch
    /// mean squared error, averaged over patches whose `mask` is 1.
    ///
    /// `pred` is `[samples, 1 + patches, patch_len]` (row 0 of each sample is the decoder's CLS
    /// output and is ignored), `target` and `mask` are `[samples, patches, patch_len]` and
    /// `[samples, patches]`. Writes the loss into `loss [1]` and overwrites
    /// `dpred = grad_scale · ∂loss/∂pred`.
    #[allow(clippy::too_many_arguments)]
    fn mae_loss(
        &mut self,
        loss: Tensor,
        dpred: Tensor,
        pred: Tensor,
        target: Tensor,
        mask: Tensor,
        samples: usize,
        patches: usize,
        patch_len: usize,
        grad_scale: f32,
    );

    // --- optimisation -----------------------------------------------------------------------------

    /// Sum of squares of `grads` (the square of the global gradient norm).
    fn sum_squares(&mut self, grads: Tensor) -> f32;
    /// One AdamW step over every group; `params`, `grads`, `m` and `v` share one layout.
    fn adamw(&mut self, params: Tensor, grads: Tensor, m: Tensor, v: Tensor, groups: &[ParamGroup], hp: &AdamW);
    /// One SGD step (momentum buffer `momentum` shares the parameter layout).
    fn sgd(&mut self, params: Tensor, grads: Tensor, momentum: Tensor, groups: &[ParamGroup], hp: &Sgd);
}
