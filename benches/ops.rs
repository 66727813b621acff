//! Criterion benchmarks of the CPU backend's ops at the shapes of one `vit-tiny-4-32` training
//! step at batch 64 (4160 token rows of width 192, 3 heads of 64, 65 tokens per image).
//! Throughput is reported in FLOPs for products and in elements for elementwise ops.
//!
//! `cargo bench --bench ops` (set RAYON_NUM_THREADS or edit THREADS to change the thread count).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rekindle_tensor::{AdamW, AttentionShape, Backend, CpuBackend, Gemm, ParamGroup};

const THREADS: usize = 2;
const ROWS: usize = 64 * 65;
const WIDTH: usize = 192;
const HIDDEN: usize = 768;

fn filled(be: &mut CpuBackend, len: usize) -> rekindle_tensor::Tensor {
    let t = be.alloc(len);
    let v: Vec<f32> = (0..len).map(|i| ((i * 2654435761) % 1000) as f32 / 500.0 - 1.0).collect();
    be.upload(t, &v);
    t
}

fn products(c: &mut Criterion) {
    let mut be = CpuBackend::new(THREADS);
    let mut group = c.benchmark_group("gemm");
    // (name, m, n, k, trans_a, trans_b): forward, input-gradient and weight-gradient shapes.
    for (name, m, n, k, ta, tb) in [
        ("qkv_forward", ROWS, 3 * WIDTH, WIDTH, false, true),
        ("fc1_forward", ROWS, HIDDEN, WIDTH, false, true),
        ("fc2_forward", ROWS, WIDTH, HIDDEN, false, true),
        ("fc2_input_grad", ROWS, HIDDEN, WIDTH, false, false),
        ("fc1_weight_grad", HIDDEN, WIDTH, ROWS, true, false),
    ] {
        let (a, b, out) = (filled(&mut be, m * k), filled(&mut be, k * n), be.alloc(m * n));
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        let g = Gemm { trans_a: ta, trans_b: tb, ..Gemm::new(m, n, k, a, b, out) };
        group.bench_function(name, |bench| bench.iter(|| be.gemm(&g)));
    }
    group.finish();
}

fn attention(c: &mut Criterion) {
    let mut be = CpuBackend::new(THREADS);
    let s = AttentionShape { batch: 64, tokens: 65, heads: 3, head_dim: 64 };
    let qkv = filled(&mut be, ROWS * 3 * WIDTH);
    let (out, dout, dqkv) = (be.alloc(ROWS * WIDTH), filled(&mut be, ROWS * WIDTH), be.alloc(ROWS * 3 * WIDTH));
    let saved = be.alloc(be.attention_saved_len(s));
    let flops = (4 * s.batch * s.heads * s.tokens * s.tokens * s.head_dim) as u64;
    let mut group = c.benchmark_group("attention");
    group.throughput(Throughput::Elements(flops));
    group.bench_function("forward", |b| b.iter(|| be.attention_forward(out, saved, qkv, s)));
    group.throughput(Throughput::Elements(2 * flops));
    group.bench_function("backward", |b| b.iter(|| be.attention_backward(dqkv, dout, qkv, out, saved, s)));
    group.finish();
}

fn elementwise(c: &mut Criterion) {
    let mut be = CpuBackend::new(THREADS);
    let mut group = c.benchmark_group("elementwise");
    let (x, w, bias) = (filled(&mut be, ROWS * WIDTH), filled(&mut be, WIDTH), filled(&mut be, WIDTH));
    let (y, mean, rstd, dx) = (be.alloc(ROWS * WIDTH), be.alloc(ROWS), be.alloc(ROWS), be.alloc(ROWS * WIDTH));
    let (dw, db) = (be.alloc(WIDTH), be.alloc(WIDTH));
    group.throughput(Throughput::Elements((ROWS * WIDTH) as u64));
    group.bench_function("layernorm_forward", |b| b.iter(|| be.layernorm_forward(y, mean, rstd, x, w, bias, ROWS, WIDTH, 1e-6)));
    group.bench_function("layernorm_backward", |b| b.iter(|| be.layernorm_backward(dx, dw, db, y, x, w, mean, rstd, ROWS, WIDTH)));
    let (h, hg, dh) = (filled(&mut be, ROWS * HIDDEN), be.alloc(ROWS * HIDDEN), be.alloc(ROWS * HIDDEN));
    group.throughput(Throughput::Elements((ROWS * HIDDEN) as u64));
    group.bench_function("gelu_forward", |b| b.iter(|| be.gelu_forward(hg, h)));
    group.bench_function("gelu_backward", |b| b.iter(|| be.gelu_backward(dh, h, hg)));
    group.finish();
}

fn optimiser(c: &mut Criterion) {
    let mut be = CpuBackend::new(THREADS);
    let n = 5_350_282; // vit-tiny-4-32 encoder + 10-class head
    let (p, g, m, v) = (filled(&mut be, n), filled(&mut be, n), be.alloc(n), be.alloc(n));
    let groups: Vec<ParamGroup> = (0..100)
        .map(|i| ParamGroup { offset: i * n / 100, len: (i + 1) * n / 100 - i * n / 100, lr_scale: 1.0, weight_decay: i % 2 == 0 })
        .collect();
    let hp = AdamW { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.05, step: 1, grad_scale: 1.0 };
    let mut group = c.benchmark_group("optimiser");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("adamw", |b| b.iter(|| be.adamw(p, g, m, v, &groups, &hp)));
    group.finish();
}

criterion_group!(benches, products, attention, elementwise, optimiser);
criterion_main!(benches);
