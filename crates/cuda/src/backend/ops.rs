//! The `Backend` ops on the GPU, each a kernel launch (or a few) over the views' addresses.

use super::launch::{attention_grid, attention_kernels, config, stride_config};
use super::{CudaBackend, CHUNK_ROWS, SUM_BLOCKS, TC_ROWS, TC_THREADS, THREADS, TILE, WARP_ROWS};
use crate::kernels as k;
use cudarc::driver::{result as driver, PushKernelArg};
use half::bf16;
use rekindle_tensor::checks::{self, Rows};
use rekindle_tensor::{AdamW, AttentionShape, Backend, Gemm, Indices, ParamGroup, PatchOrder, PatchShape, Precision, Sgd, Tensor};

impl Backend for CudaBackend {
    fn name(&self) -> String {
        format!("cuda:{} ({}, {})", self.ordinal, self.device_name, self.precision)
    }

    fn synchronize(&mut self) {
        self.wait();
    }

    fn device_address(&self, t: Tensor) -> Option<u64> {
        Some(self.f32_address(t, "a collective"))
    }

    fn alloc(&mut self, len: usize) -> Tensor {
        self.new_buffer(len, Precision::Fp32, false)
    }

    fn alloc_activations(&mut self, len: usize) -> Tensor {
        self.new_buffer(len, self.precision, false)
    }

    fn alloc_weights(&mut self, len: usize) -> Tensor {
        self.new_buffer(len, Precision::Fp32, true)
    }

    fn alloc_indices(&mut self, len: usize) -> Indices {
        let allocation = self.allocate(len);
        self.index_buffers.push(Some(allocation));
        Indices { buffer: (self.index_buffers.len() - 1) as u32, offset: 0, len }
    }

    /// The allocation is released in stream order, after the ops already enqueued on it.
    fn free(&mut self, whole: Tensor) {
        self.buffers[whole.buffer as usize] = None;
    }

    fn free_indices(&mut self, whole: Indices) {
        self.index_buffers[whole.buffer as usize] = None;
    }

    fn error(&self) -> Option<String> {
        self.failure.get().cloned()
    }

    fn allocated_bytes(&self) -> usize {
        let buffers: usize = self.buffers.iter().flatten().map(|b| b.memory.slice.len() + b.copy.as_ref().map_or(0, |c| c.memory.slice.len())).sum();
        let indices: usize = self.index_buffers.iter().flatten().map(|a| 4 * a.slice.len()).sum();
        buffers + indices
    }

    fn upload(&mut self, dst: Tensor, src: &[f32]) {
        assert_eq!(src.len(), dst.len, "upload of {} values into a view of {}", src.len(), dst.len);
        match self.buffer(dst).storage {
            Precision::Fp32 => self.copy_in(self.address(dst), src),
            Precision::Bf16 => self.copy_in(self.address(dst), &src.iter().map(|&v| bf16::from_f32(v)).collect::<Vec<_>>()),
        }
        self.written(dst);
    }

    fn upload_indices(&mut self, dst: Indices, src: &[i32]) {
        assert_eq!(src.len(), dst.len, "upload of {} indices into a view of {}", src.len(), dst.len);
        self.copy_in(self.index_address(dst), src);
    }

    fn download(&mut self, src: Tensor, dst: &mut [f32]) {
        assert_eq!(src.len, dst.len(), "download of a view of {} into {} values", src.len, dst.len());
        match self.buffer(src).storage {
            Precision::Fp32 => self.copy_out(dst, self.address(src)),
            Precision::Bf16 => {
                let mut staged = vec![bf16::ZERO; src.len];
                self.copy_out(&mut staged, self.address(src));
                dst.iter_mut().zip(&staged).for_each(|(d, s)| *d = s.to_f32());
            }
        }
    }

    fn fill(&mut self, dst: Tensor, value: f32) {
        let operand = self.operand(dst);
        launch!(self, k::fill, stride_config(dst.len), operand, value, dst.len as u64);
        self.written(dst);
    }

    fn copy(&mut self, dst: Tensor, src: Tensor) {
        checks::copy(dst, src);
        let storage = self.buffer(dst).storage;
        if storage == self.buffer(src).storage {
            let (d, s) = (self.address(dst), self.address(src));
            // SAFETY: both views hold `len` elements of `storage`.
            if !self.failed() {
                if let Err(e) = unsafe { driver::memcpy_dtod_async(d, s, storage.bytes() * dst.len, self.stream.cu_stream()) } {
                    self.fail(format!("cuda:{}: copy: {e:?}", self.ordinal));
                }
            }
        } else {
            let (d, s) = (self.operand(dst), self.operand(src));
            launch!(self, k::convert, stride_config(dst.len), d, s, dst.len as u64);
        }
        self.written(dst);
    }

    fn gemm(&mut self, g: &Gemm) {
        checks::gemm(g);
        self.cublas_gemm(g);
    }

    fn bias_backward(&mut self, dbias: Tensor, dout: Tensor, rows: usize, cols: usize) {
        checks::bias_backward(dbias, dout, rows, cols);
        let (d, s) = (self.f32_address(dbias, "bias_backward"), self.operand(dout));
        self.column_sums(d, s, rows, cols);
    }

    fn axpy(&mut self, dst: Tensor, alpha: f32, src: Tensor) {
        checks::axpy(dst, src);
        let (d, s) = (self.operand(dst), self.operand(src));
        launch!(self, k::axpy, stride_config(dst.len), d, alpha, s, dst.len as u64);
        self.written(dst);
    }

    fn add_rows(&mut self, x: Tensor, table: Tensor, rows: usize, width: usize) {
        checks::add_rows(x, table, rows, width);
        let (xa, ta) = (self.operand(x), self.operand(table));
        launch!(self, k::broadcast_rows, stride_config(x.len), xa, ta, (rows * width) as u64, x.len as u64, 1i32);
        self.written(x);
    }

    fn gelu_forward(&mut self, out: Tensor, inp: Tensor) {
        checks::gelu_forward(out, inp);
        let (o, i) = (self.operand(out), self.operand(inp));
        launch!(self, k::gelu_forward, stride_config(out.len), o, i, out.len as u64);
    }

    fn gelu_backward(&mut self, dinp: Tensor, inp: Tensor, dout: Tensor) {
        checks::gelu_backward(dinp, inp, dout);
        let (di, i, d) = (self.operand(dinp), self.operand(inp), self.operand(dout));
        launch!(self, k::gelu_backward, stride_config(dinp.len), di, i, d, dinp.len as u64);
    }

    fn layernorm_forward(&mut self, out: Tensor, mean: Tensor, rstd: Tensor, inp: Tensor, weight: Tensor, bias: Tensor, rows: usize, width: usize, eps: f32) {
        checks::layernorm_forward(out, [mean, rstd], inp, [weight, bias], rows, width);
        let op = "layernorm_forward";
        let args = (self.operand(out), self.f32_address(mean, op), self.f32_address(rstd, op), self.operand(inp), self.f32_address(weight, op), self.f32_address(bias, op));
        let blocks = (rows as u32).div_ceil(WARP_ROWS);
        launch!(self, k::layernorm_forward, config((blocks, 1), THREADS), args.0, args.1, args.2, args.3, args.4, args.5, rows as i32, width as i32, eps);
    }

    fn layernorm_backward(&mut self, dinp: Tensor, dweight: Tensor, dbias: Tensor, dout: Tensor, inp: Tensor, weight: Tensor, mean: Tensor, rstd: Tensor, rows: usize, width: usize) {
        checks::layernorm_backward([dinp, dweight, dbias], [dout, inp, weight, mean, rstd], rows, width);
        let op = "layernorm_backward";
        let (di, dw, db) = (self.operand(dinp), self.f32_address(dweight, op), self.f32_address(dbias, op));
        let (d, x, w, m, r) = (self.operand(dout), self.operand(inp), self.f32_address(weight, op), self.f32_address(mean, op), self.f32_address(rstd, op));
        let blocks = (rows as u32).div_ceil(WARP_ROWS);
        launch!(self, k::layernorm_backward_input, config((blocks, 1), THREADS), di, d, x, w, m, r, rows as i32, width as i32);
        let chunks = rows.div_ceil(CHUNK_ROWS).max(1);
        let partials = self.scratch(chunks * 2 * width);
        let cols = (width as u32).div_ceil(THREADS);
        launch!(self, k::layernorm_param_partials, config((cols, chunks as u32), THREADS), partials, d, x, m, r, rows as i32, width as i32, CHUNK_ROWS as i32);
        let stride = (2 * width) as u64;
        launch!(self, k::column_sum_accumulate, config((cols, 1), THREADS), dw, partials, chunks as i32, stride, width as i32);
        launch!(self, k::column_sum_accumulate, config((cols, 1), THREADS), db, partials + 4 * width as u64, chunks as i32, stride, width as i32);
    }

    /// The log-sum-exp of every (batch, head, query) row, then the backward's row sums.
    fn attention_saved_len(&self, s: AttentionShape) -> usize {
        2 * s.batch * s.heads * s.tokens
    }

    fn attention_forward(&mut self, out: Tensor, saved: Tensor, qkv: Tensor, s: AttentionShape) {
        checks::attention_forward(out, saved, qkv, s, self.attention_saved_len(s));
        let (o, lse, x) = (self.operand(out), self.f32_address(saved, "attention_forward"), self.operand(qkv));
        let scale = 1.0 / (s.head_dim as f32).sqrt();
        let (b, t, h) = (s.batch as i32, s.tokens as i32, s.heads as i32);
        match self.tensor_core_attention(s) {
            Some([forward, _, _]) => launch!(self, forward, attention_grid(s, TC_ROWS, TC_THREADS), o, lse, x, t, h, scale),
            None => {
                let [forward, _, _] = attention_kernels(s.head_dim);
                launch!(self, forward, attention_grid(s, TILE, TILE), o, lse, x, b, t, h, scale);
            }
        }
    }

    fn attention_backward(&mut self, dqkv: Tensor, dout: Tensor, qkv: Tensor, out: Tensor, saved: Tensor, s: AttentionShape) {
        checks::attention_backward(dqkv, [dout, qkv, out, saved], s);
        let rows = s.batch * s.heads * s.tokens;
        let (dx, d, x, o) = (self.operand(dqkv), self.operand(dout), self.operand(qkv), self.operand(out));
        let lse = self.f32_address(saved, "attention_backward");
        let delta = lse + 4 * rows as u64;
        let (b, t, h, hd) = (s.batch as i32, s.tokens as i32, s.heads as i32, s.head_dim as i32);
        launch!(self, k::attention_delta, stride_config(rows), delta, d, o, b, t, h, hd);
        let scale = 1.0 / (s.head_dim as f32).sqrt();
        match self.tensor_core_attention(s) {
            Some([_, dq, dkv]) => {
                let grid = attention_grid(s, TC_ROWS, TC_THREADS);
                launch!(self, dq, grid, dx, d, x, lse, delta, t, h, scale);
                launch!(self, dkv, grid, dx, d, x, lse, delta, t, h, scale);
            }
            None => {
                let [_, dq, dkv] = attention_kernels(s.head_dim);
                let grid = attention_grid(s, TILE, TILE);
                launch!(self, dq, grid, dx, d, x, lse, delta, b, t, h, scale);
                launch!(self, dkv, grid, dx, d, x, lse, delta, b, t, h, scale);
            }
        }
    }

    fn gather_rows(&mut self, out: Tensor, inp: Tensor, idx: Indices, fill: Tensor, samples: usize, in_rows: usize, out_rows: usize, width: usize) {
        checks::gather_rows(out, inp, idx, fill, Rows { samples, in_rows, out_rows, width });
        let (o, i, ix, f) = (self.operand(out), self.operand(inp), self.index_address(idx), self.operand(fill));
        let n = samples * out_rows * width;
        launch!(self, k::gather_rows, stride_config(n), o, i, ix, f, samples as i32, in_rows as i32, out_rows as i32, width as i32);
    }

    fn gather_rows_backward(&mut self, dinp: Tensor, dfill: Tensor, dout: Tensor, idx: Indices, samples: usize, in_rows: usize, out_rows: usize, width: usize) {
        checks::gather_rows_backward(dinp, dfill, dout, idx, Rows { samples, in_rows, out_rows, width });
        let (di, df, d, ix) = (self.operand(dinp), self.operand(dfill), self.operand(dout), self.index_address(idx));
        let n = samples * out_rows * width;
        launch!(self, k::gather_rows_backward_input, stride_config(n), di, d, ix, samples as i32, in_rows as i32, out_rows as i32, width as i32);
        let cols = (width as u32).div_ceil(THREADS);
        launch!(self, k::gather_rows_backward_fill, config((cols, 1), THREADS), df, d, ix, (samples * out_rows) as u64, width as i32);
    }

    fn mean_pool_forward(&mut self, out: Tensor, inp: Tensor, samples: usize, rows: usize, width: usize, skip: usize) {
        checks::mean_pool_forward(out, inp, samples, rows, width);
        let (o, i) = (self.operand(out), self.operand(inp));
        launch!(self, k::mean_pool_forward, stride_config(samples * width), o, i, samples as i32, rows as i32, width as i32, skip as i32);
    }

    fn mean_pool_backward(&mut self, dinp: Tensor, dout: Tensor, samples: usize, rows: usize, width: usize, skip: usize) {
        checks::mean_pool_backward(dinp, dout, samples, rows, width);
        let (di, d) = (self.operand(dinp), self.operand(dout));
        launch!(self, k::mean_pool_backward, stride_config(samples * rows * width), di, d, samples as i32, rows as i32, width as i32, skip as i32);
    }

    fn patchify(&mut self, patches: Tensor, images: Tensor, s: PatchShape, order: PatchOrder) {
        checks::patches(patches, images, s, true);
        self.patch_copy(patches, images, s, order, true);
    }

    fn unpatchify(&mut self, images: Tensor, patches: Tensor, s: PatchShape, order: PatchOrder) {
        checks::patches(patches, images, s, false);
        self.patch_copy(patches, images, s, order, false);
    }

    fn cross_entropy(&mut self, losses: Tensor, dlogits: Tensor, logits: Tensor, targets: Tensor, class_mask: Tensor, rows: usize, classes: usize, grad_scale: f32) {
        checks::cross_entropy([losses, dlogits], [logits, targets, class_mask], rows, classes);
        let a = |t| self.f32_address(t, "cross_entropy");
        let (l, dz, z, t, m) = (a(losses), a(dlogits), a(logits), a(targets), a(class_mask));
        launch!(self, k::cross_entropy, config((rows as u32, 1), 128), l, dz, z, t, m, rows as i32, classes as i32, grad_scale);
    }

    fn mae_loss(&mut self, loss: Tensor, dpred: Tensor, pred: Tensor, target: Tensor, mask: Tensor, samples: usize, patches: usize, patch_len: usize, grad_scale: f32) {
        checks::mae_loss([loss, dpred], [pred, target, mask], samples, patches, patch_len);
        let a = |t| self.f32_address(t, "mae_loss");
        let (l, dp, p, t, m) = (a(loss), a(dpred), a(pred), a(target), a(mask));
        // f64 scratch: [masked count | sum partials (SUM_BLOCKS) | per-patch losses].
        let base = self.scratch_f64(1 + SUM_BLOCKS as usize + samples * patches);
        self.device_sum(base, m, samples * patches, false);
        let partial = base + 8 * (1 + SUM_BLOCKS as u64);
        let blocks = (samples * patches) as u32;
        let (s, n, len) = (samples as i32, patches as i32, patch_len as i32);
        launch!(self, k::mae_patch_loss, config((blocks, 1), 128), partial, dp, p, t, m, base, s, n, len, grad_scale);
        launch!(self, k::mae_total, config((1, 1), THREADS), l, partial, base, blocks as i32);
    }

    fn sum_squares(&mut self, grads: Tensor) -> f32 {
        let out = self.scratch_f64(1 + SUM_BLOCKS as usize);
        let g = self.f32_address(grads, "sum_squares");
        self.device_sum(out, g, grads.len, true);
        let mut value = [0.0f64];
        self.copy_out(&mut value, out);
        value[0] as f32
    }

    fn adamw(&mut self, params: Tensor, grads: Tensor, m: Tensor, v: Tensor, groups: &[ParamGroup], hp: &AdamW) {
        checks::optimizer(&[params, m, v], grads, "adamw");
        let a = |t| self.f32_address(t, "adamw");
        let (p, g, ma, va) = (a(params), a(grads), a(m), a(v));
        // The bf16 copy (if any) is brought up to date first, then kept so by the update itself.
        let copy = match self.buffer(params).copy.is_some() {
            true => (self.current_copy(params.buffer) + 2 * params.offset as u64) | 1,
            false => 0u64,
        };
        let (table, count) = self.groups(groups);
        let bc1 = 1.0 - hp.beta1.powi(hp.step as i32);
        let bc2_sqrt = (1.0 - hp.beta2.powi(hp.step as i32)).sqrt();
        let n = params.len;
        launch!(self, k::adamw, stride_config(n), p, copy, g, ma, va, table, count, n as u64, hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay, hp.grad_scale, bc1, bc2_sqrt);
    }

    fn sgd(&mut self, params: Tensor, grads: Tensor, momentum: Tensor, groups: &[ParamGroup], hp: &Sgd) {
        checks::optimizer(&[params, momentum], grads, "sgd");
        let a = |t| self.f32_address(t, "sgd");
        let (p, g, b) = (a(params), a(grads), a(momentum));
        let (table, count) = self.groups(groups);
        let n = params.len;
        launch!(self, k::sgd, stride_config(n), p, g, b, table, count, n as u64, hp.lr, hp.momentum, hp.nesterov as i32, hp.weight_decay, hp.grad_scale);
        self.written(params);
    }
}

impl CudaBackend {
    /// `dst[j] += Σ_rows src[r, j]` through fixed row chunks (deterministic).
    pub(super) fn column_sums(&mut self, dst: u64, src: u64, rows: usize, width: usize) {
        let chunks = rows.div_ceil(CHUNK_ROWS).max(1);
        let partials = self.scratch(chunks * width);
        let cols = (width as u32).div_ceil(THREADS);
        launch!(self, k::column_partials, config((cols, chunks as u32), THREADS), partials, src, rows as i32, width as i32, CHUNK_ROWS as i32);
        launch!(self, k::column_sum_accumulate, config((cols, 1), THREADS), dst, partials, chunks as i32, width as u64, width as i32);
    }

    /// Σ x (or Σ x² with `square`) over `n` values, into `out` (one f64 on the device). No more
    /// blocks than `n` needs: the ones past it would only add zeros (so the sum is the same), and
    /// a mask of eight values is not worth 1024 blocks.
    pub(super) fn device_sum(&mut self, out: u64, x: u64, n: usize, square: bool) {
        let blocks = (n.div_ceil(THREADS as usize) as u32).clamp(1, SUM_BLOCKS);
        let partials = self.scratch_f64(SUM_BLOCKS as usize + 1) + 8;
        launch!(self, k::sum_partials, config((blocks, 1), THREADS), partials, x, n as u64, square as i32);
        launch!(self, k::sum_f64, config((1, 1), THREADS), out, partials, blocks as i32);
    }

    /// The optimiser's group table, uploaded once and reused while the groups stay the same.
    pub(super) fn groups(&mut self, groups: &[ParamGroup]) -> (u64, i32) {
        let stale = self.group_table.as_ref().is_none_or(|(g, _)| g != groups);
        if stale {
            let mut sorted = groups.to_vec();
            sorted.sort_by_key(|g| g.offset);
            // kernels/optim.cu's `Group`: u64 offset, u64 len, f32 lr_scale, i32 decay (24 bytes).
            let mut bytes = Vec::with_capacity(24 * sorted.len());
            for g in &sorted {
                bytes.extend((g.offset as u64).to_le_bytes());
                bytes.extend((g.len as u64).to_le_bytes());
                bytes.extend(g.lr_scale.to_le_bytes());
                bytes.extend((g.weight_decay as i32).to_le_bytes());
            }
            let table = self.allocate::<u8>(bytes.len());
            self.copy_in(table.address, &bytes);
            self.group_table = Some((groups.to_vec(), table));
        }
        let (_, table) = self.group_table.as_ref().expect("group table");
        (table.address, groups.len() as i32)
    }

    pub(super) fn patch_copy(&mut self, patches: Tensor, images: Tensor, s: PatchShape, order: PatchOrder, to_patches: bool) {
        let (p, i) = (self.f32_address(patches, "patchify"), self.f32_address(images, "patchify"));
        let order = match order {
            PatchOrder::ChannelRowCol => 0i32,
            PatchOrder::RowColChannel => 1,
        };
        let n = s.batch * s.channels * s.image_size * s.image_size;
        let (b, c, size, patch) = (s.batch as i32, s.channels as i32, s.image_size as i32, s.patch as i32);
        launch!(self, k::patchify, stride_config(n), p, i, b, c, size, patch, order, to_patches as i32);
    }
}
