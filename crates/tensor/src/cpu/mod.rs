//! The CPU backend: f32 everywhere, GEMMs through the `gemm` crate, everything else through rayon.
//!
//! Each op resolves its handles to slices and calls a plain function in one of the files below;
//! those functions know nothing about handles, so they read like the math they implement.

mod attention;
mod elementwise;
mod images;
mod losses;
mod matmul;
mod norm;
mod optim;
mod parallel;
mod tokens;

use crate::backend::{AdamW, AttentionShape, Backend, Gemm, ParamGroup, PatchOrder, PatchShape, Sgd};
use crate::checks::{self, Rows};
use crate::{Indices, Tensor};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;


pub struct CpuBackend {
    pool: rayon::ThreadPool,
    threads: usize,
    buffers: Vec<Option<Vec<f32>>>,
    index_buffers: Vec<Option<Vec<i32>>>,
    /// Seconds and calls per op, when profiling.
    profile: Option<Mutex<HashMap<&'static str, (f64, u64)>>>,
}

/// Time spent in one op kind (see [`Backend::op_times`]).
#[derive(Clone, Debug, PartialEq)]
pub struct OpTime {
    pub op: &'static str,
    pub seconds: f64,
    pub calls: u64,
}

impl CpuBackend {
    /// A backend running on `threads` worker threads (0: one per available core).
    pub fn new(threads: usize) -> CpuBackend {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("rekindle-cpu-{i}"))
            .build()
            .expect("cannot start the CPU worker threads");
        let threads = pool.current_num_threads();
        CpuBackend { pool, threads, buffers: Vec::new(), index_buffers: Vec::new(), profile: None }
    }

    fn ptr(&self, t: Tensor) -> *mut f32 {
        let buffer = self.buffers[t.buffer as usize].as_ref().expect("use of a freed buffer");
        assert!(t.offset + t.len <= buffer.len(), "view {t:?} outside its buffer of {}", buffer.len());
        // The buffer is never resized while views exist, so the pointer stays valid.
        unsafe { (buffer.as_ptr() as *mut f32).add(t.offset) }
    }

    /// Read access to a view.
    fn r(&self, t: Tensor) -> &'static [f32] {
        // SAFETY: `ptr` bounds-checks the view. The 'static lifetime is confined to one op call:
        // op implementations never keep slices past their return, and buffers are only freed by
        // `free`, which needs `&mut self` and so cannot run during an op.
        unsafe { std::slice::from_raw_parts(self.ptr(t), t.len) }
    }

    /// Write access to a view. Every op wrapper first checks with `disjoint` that its outputs
    /// overlap none of its other operands.
    #[allow(clippy::mut_from_ref)]
    fn w(&self, t: Tensor) -> &'static mut [f32] {
        // SAFETY: as for `r`; exclusivity of output views is part of every op's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(t), t.len) }
    }

    fn idx(&self, i: Indices) -> &[i32] {
        &self.index_buffers[i.buffer as usize].as_ref().expect("use of freed indices")[i.offset..i.offset + i.len]
    }

    /// Runs one op on the worker threads, timing it when profiling is on.
    fn run<R: Send>(&self, op: &'static str, f: impl FnOnce() -> R + Send) -> R {
        let Some(profile) = &self.profile else { return self.pool.install(f) };
        let start = Instant::now();
        let r = self.pool.install(f);
        let mut p = profile.lock().expect("profile lock");
        let entry = p.entry(op).or_default();
        entry.0 += start.elapsed().as_secs_f64();
        entry.1 += 1;
        r
    }
}

/// Panics when an output view overlaps an input view (an aliasing bug in the caller).
/// Puts `data` in the first free slot of `slots` (or a new one) and returns its index.
fn reuse_slot<T>(slots: &mut Vec<Option<T>>, data: T) -> usize {
    match slots.iter().position(Option::is_none) {
        Some(i) => {
            slots[i] = Some(data);
            i
        }
        None => {
            slots.push(Some(data));
            slots.len() - 1
        }
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        format!("cpu ({} threads)", self.threads)
    }

    fn start_profile(&mut self) {
        self.profile = Some(Mutex::new(HashMap::new()));
    }

    /// Wall time and call count per op since `start_profile`, slowest first.
    fn op_times(&self) -> Vec<OpTime> {
        let Some(profile) = &self.profile else { return Vec::new() };
        let mut v: Vec<OpTime> =
            profile.lock().expect("profile lock").iter().map(|(op, (s, c))| OpTime { op, seconds: *s, calls: *c }).collect();
        v.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        v
    }

    fn alloc(&mut self, len: usize) -> Tensor {
        Tensor { buffer: reuse_slot(&mut self.buffers, vec![0.0; len]) as u32, offset: 0, len }
    }

    fn alloc_indices(&mut self, len: usize) -> Indices {
        Indices { buffer: reuse_slot(&mut self.index_buffers, vec![0; len]) as u32, offset: 0, len }
    }

    fn free_indices(&mut self, whole: Indices) {
        let slot = &mut self.index_buffers[whole.buffer as usize];
        assert!(whole.offset == 0 && slot.as_ref().map(Vec::len) == Some(whole.len), "free_indices() needs a whole, live buffer");
        *slot = None;
    }

    fn allocated_bytes(&self) -> usize {
        let floats: usize = self.buffers.iter().flatten().map(Vec::len).sum();
        let indices: usize = self.index_buffers.iter().flatten().map(Vec::len).sum();
        4 * (floats + indices)
    }

    fn free(&mut self, whole: Tensor) {
        let slot = &mut self.buffers[whole.buffer as usize];
        let len = slot.as_ref().map(Vec::len);
        assert!(whole.offset == 0 && len == Some(whole.len), "free() needs a whole, live buffer");
        *slot = None;
    }

    fn upload(&mut self, dst: Tensor, src: &[f32]) {
        assert_eq!(dst.len, src.len(), "upload length");
        self.w(dst).copy_from_slice(src);
    }

    fn upload_indices(&mut self, dst: Indices, src: &[i32]) {
        assert_eq!(dst.len, src.len(), "upload length");
        self.index_buffers[dst.buffer as usize].as_mut().expect("use of freed indices")[dst.offset..dst.offset + dst.len].copy_from_slice(src);
    }

    fn download(&mut self, src: Tensor, dst: &mut [f32]) {
        assert_eq!(src.len, dst.len(), "download length");
        dst.copy_from_slice(self.r(src));
    }

    fn fill(&mut self, dst: Tensor, value: f32) {
        let d = self.w(dst);
        self.run("fill", || elementwise::fill(d, value));
    }

    fn copy(&mut self, dst: Tensor, src: Tensor) {
        checks::copy(dst, src);
        let (d, s) = (self.w(dst), self.r(src));
        self.run("copy", || elementwise::copy(d, s));
    }

    fn gemm(&mut self, g: &Gemm) {
        checks::gemm(g);
        let bias = g.bias.map(|b| self.r(b));
        let (a, b, c) = (self.r(g.a), self.r(g.b), self.w(g.c));
        let threads = self.threads;
        self.run(if g.trans_a { "gemm_weight_grad" } else if g.batch > 1 { "gemm_batched" } else { "gemm" }, || matmul::gemm(g, a, b, c, bias, threads));
    }

    fn bias_backward(&mut self, dbias: Tensor, dout: Tensor, rows: usize, cols: usize) {
        checks::bias_backward(dbias, dout, rows, cols);
        let (db, d) = (self.w(dbias), self.r(dout));
        self.run("bias_backward", || matmul::bias_backward(db, d, rows, cols));
    }

    fn axpy(&mut self, dst: Tensor, alpha: f32, src: Tensor) {
        checks::axpy(dst, src);
        let (d, s) = (self.w(dst), self.r(src));
        self.run("axpy", || elementwise::axpy(d, alpha, s));
    }

    fn add_rows(&mut self, x: Tensor, table: Tensor, rows: usize, width: usize) {
        checks::add_rows(x, table, rows, width);
        let (xs, t) = (self.w(x), self.r(table));
        self.run("add_rows", || elementwise::add_rows(xs, &t[..rows * width]));
    }

    fn gelu_forward(&mut self, out: Tensor, inp: Tensor) {
        checks::gelu_forward(out, inp);
        let (o, i) = (self.w(out), self.r(inp));
        self.run("gelu_forward", || elementwise::gelu_forward(o, i));
    }

    fn gelu_backward(&mut self, dinp: Tensor, inp: Tensor, dout: Tensor) {
        checks::gelu_backward(dinp, inp, dout);
        let (di, i, d) = (self.w(dinp), self.r(inp), self.r(dout));
        self.run("gelu_backward", || elementwise::gelu_backward(di, i, d));
    }

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
    ) {
        checks::layernorm_forward(out, [mean, rstd], inp, [weight, bias], rows, width);
        let (o, m, r) = (self.w(out), self.w(mean), self.w(rstd));
        let (i, w, b) = (self.r(inp), self.r(weight), self.r(bias));
        self.run("layernorm_forward", || norm::layernorm_forward(o, m, r, i, w, b, rows, width, eps));
    }

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
    ) {
        checks::layernorm_backward([dinp, dweight, dbias], [dout, inp, weight, mean, rstd], rows, width);
        let (di, dw, db) = (self.w(dinp), self.w(dweight), self.w(dbias));
        let (d, i, w, m, r) = (self.r(dout), self.r(inp), self.r(weight), self.r(mean), self.r(rstd));
        self.run("layernorm_backward", || norm::layernorm_backward(di, dw, db, d, i, w, m, r, rows, width));
    }

    fn attention_saved_len(&self, s: AttentionShape) -> usize {
        attention::saved_len(s)
    }

    fn attention_forward(&mut self, out: Tensor, saved: Tensor, qkv: Tensor, s: AttentionShape) {
        checks::attention_forward(out, saved, qkv, s, attention::saved_len(s));
        let (o, sv, q) = (self.w(out), self.w(saved), self.r(qkv));
        self.run("attention_forward", || attention::forward(o, sv, q, s));
    }

    fn attention_backward(
        &mut self,
        dqkv: Tensor,
        dout: Tensor,
        qkv: Tensor,
        out: Tensor,
        saved: Tensor,
        s: AttentionShape,
    ) {
        checks::attention_backward(dqkv, [dout, qkv, out, saved], s);
        let (dq, d, q, sv) = (self.w(dqkv), self.r(dout), self.r(qkv), self.r(saved));
        self.run("attention_backward", || attention::backward(dq, d, q, sv, s));
    }

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
    ) {
        checks::gather_rows(out, inp, idx, fill, Rows { samples, in_rows, out_rows, width });
        let (o, i, f, ix) = (self.w(out), self.r(inp), self.r(fill), self.idx(idx));
        self.run("gather_rows", || tokens::gather_rows(o, i, ix, f, in_rows, out_rows, width));
    }

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
    ) {
        checks::gather_rows_backward(dinp, dfill, dout, idx, Rows { samples, in_rows, out_rows, width });
        let (di, df, d, ix) = (self.w(dinp), self.w(dfill), self.r(dout), self.idx(idx));
        self.run("gather_rows_backward", || tokens::gather_rows_backward(di, df, d, ix, samples, in_rows, out_rows, width));
    }

    fn mean_pool_forward(&mut self, out: Tensor, inp: Tensor, samples: usize, rows: usize, width: usize, skip: usize) {
        checks::mean_pool_forward(out, inp, samples, rows, width);
        let (o, i) = (self.w(out), self.r(inp));
        self.run("mean_pool_forward", || tokens::mean_pool_forward(o, i, samples, rows, width, skip));
    }

    fn mean_pool_backward(&mut self, dinp: Tensor, dout: Tensor, samples: usize, rows: usize, width: usize, skip: usize) {
        checks::mean_pool_backward(dinp, dout, samples, rows, width);
        let (di, d) = (self.w(dinp), self.r(dout));
        self.run("mean_pool_backward", || tokens::mean_pool_backward(di, d, samples, rows, width, skip));
    }

    fn patchify(&mut self, patches: Tensor, images: Tensor, shape: PatchShape, order: PatchOrder) {
        checks::patches(patches, images, shape, true);
        let (p, i) = (self.w(patches), self.r(images));
        self.run("patchify", || images::patchify(p, i, shape, order));
    }

    fn unpatchify(&mut self, images: Tensor, patches: Tensor, shape: PatchShape, order: PatchOrder) {
        checks::patches(patches, images, shape, false);
        let (i, p) = (self.w(images), self.r(patches));
        self.run("unpatchify", || images::unpatchify(i, p, shape, order));
    }

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
    ) {
        checks::cross_entropy([losses, dlogits], [logits, targets, class_mask], rows, classes);
        let (l, dl) = (self.w(losses), self.w(dlogits));
        let (z, t, m) = (self.r(logits), self.r(targets), self.r(class_mask));
        self.run("cross_entropy", || losses::cross_entropy(l, dl, z, t, m, rows, classes, grad_scale));
    }

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
    ) {
        checks::mae_loss([loss, dpred], [pred, target, mask], samples, patches, patch_len);
        let (l, dp) = (self.w(loss), self.w(dpred));
        let (p, t, m) = (self.r(pred), self.r(target), self.r(mask));
        self.run("mae_loss", || losses::mae_loss(l, dp, p, t, m, samples, patches, patch_len, grad_scale));
    }

    fn sum_squares(&mut self, grads: Tensor) -> f32 {
        let g = self.r(grads);
        self.run("sum_squares", || optim::sum_squares(g))
    }

    fn adamw(&mut self, params: Tensor, grads: Tensor, m: Tensor, v: Tensor, groups: &[ParamGroup], hp: &AdamW) {
        checks::optimizer(&[params, m, v], grads, "adamw");
        let (p, g, ms, vs) = (self.w(params), self.r(grads), self.w(m), self.w(v));
        self.run("adamw", || optim::adamw(p, g, ms, vs, groups, hp));
    }

    fn sgd(&mut self, params: Tensor, grads: Tensor, momentum: Tensor, groups: &[ParamGroup], hp: &Sgd) {
        checks::optimizer(&[params, momentum], grads, "sgd");
        let (p, g, b) = (self.w(params), self.r(grads), self.w(momentum));
        self.run("sgd", || optim::sgd(p, g, b, groups, hp));
    }
}
