//! One table of op cases: every compute op of a training step at one model's shapes, with its
//! operands placed as the model places them and the work it does. `rekindle bench kernels` times
//! each case; the CUDA parity test (crates/cuda/tests/parity.rs) runs each on both backends and
//! compares what it wrote, so the ops that are timed are the ops that are checked, at the same
//! shapes.

use crate::{AdamW, AttentionShape, Backend, Gemm, Indices, ParamGroup, PatchOrder, PatchShape, Sgd, Tensor};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Where an operand lives: an activation (bf16 under mixed precision), parameters (with their
/// bf16 copy), or plain f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Activation,
    Weights,
    F32,
}

/// What an operand starts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Values {
    /// Uniform in (−1, 1).
    Random,
    /// Uniform in (0, 1): variances, reciprocal deviations, soft targets.
    Positive,
    Ones,
    /// A mask keeping three patches of four.
    EveryFourthOff,
}

/// How many elements an operand holds.
#[derive(Clone, Copy, Debug)]
enum Len {
    Fixed(usize),
    /// What the backend's attention saves for the backward (`Backend::attention_saved_len`).
    AttentionSaved(AttentionShape),
}

#[derive(Clone, Copy, Debug)]
struct Operand {
    len: Len,
    place: Place,
    values: Values,
}

/// What an op's rate is measured in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Work {
    Flops(f64),
    Bytes(f64),
}

type Run = Box<dyn Fn(&mut dyn Backend, &[Tensor], &[Indices]) -> Option<f32>>;

pub struct OpCase {
    /// The op as `bench kernels` names it.
    pub name: &'static str,
    pub shape: String,
    /// The work of one run: FLOPs for products and attention, else the bytes the op must move.
    pub work: Work,
    operands: Vec<Operand>,
    indices: Vec<Vec<i32>>,
    /// Operands the op writes (what the parity test compares).
    outputs: Vec<usize>,
    /// Runs once after the operands are filled (the forward that a backward case reads).
    before: Option<Run>,
    /// The op; returns its host result where it has one (a norm).
    run: Run,
}

/// A case's operands on one backend.
pub struct Prepared {
    tensors: Vec<Tensor>,
    indices: Vec<Indices>,
}

impl OpCase {
    /// Allocates and fills the operands on `be`, from `seed` (the same values on every backend).
    pub fn prepare(&self, be: &mut dyn Backend, seed: u64) -> Prepared {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let tensors = self
            .operands
            .iter()
            .map(|o| {
                let len = match o.len {
                    Len::Fixed(n) => n,
                    Len::AttentionSaved(s) => be.attention_saved_len(s),
                };
                let values: Vec<f32> = (0..len)
                    .map(|i| match o.values {
                        Values::Random => rng.random_range(-1.0f32..1.0),
                        Values::Positive => rng.random_range(0.0f32..1.0),
                        Values::Ones => 1.0,
                        Values::EveryFourthOff => (i % 4 != 0) as u8 as f32,
                    })
                    .collect();
                let t = match o.place {
                    Place::Activation => be.alloc_activations(len),
                    Place::Weights => be.alloc_weights(len),
                    Place::F32 => be.alloc(len),
                };
                be.upload(t, &values);
                t
            })
            .collect();
        let indices = self
            .indices
            .iter()
            .map(|v| {
                let i = be.alloc_indices(v.len());
                be.upload_indices(i, v);
                i
            })
            .collect();
        let prepared = Prepared { tensors, indices };
        if let Some(before) = &self.before {
            before(be, &prepared.tensors, &prepared.indices);
        }
        prepared
    }

    /// One run of the op; its host result, if it has one.
    pub fn run(&self, be: &mut dyn Backend, p: &Prepared) -> Option<f32> {
        (self.run)(be, &p.tensors, &p.indices)
    }

    /// What the op wrote, named by operand position.
    pub fn outputs(&self, be: &mut dyn Backend, p: &Prepared) -> Vec<(usize, Vec<f32>)> {
        self.outputs.iter().map(|&i| (i, be.download_vec(p.tensors[i]))).collect()
    }

}

impl Prepared {
    pub fn free(self, be: &mut dyn Backend) {
        self.tensors.into_iter().for_each(|t| be.free(t));
        self.indices.into_iter().for_each(|i| be.free_indices(i));
    }
}

/// The shapes of one model's training step (the encoder's, at one batch).
#[derive(Clone, Copy, Debug)]
pub struct Shapes {
    pub batch: usize,
    /// 1 + patches.
    pub tokens: usize,
    /// 1 + the patches the MAE encoder keeps.
    pub kept_tokens: usize,
    pub dim: usize,
    pub heads: usize,
    /// The MLP's hidden width.
    pub hidden: usize,
    pub classes: usize,
    pub patch: PatchShape,
    /// Parameters the optimizer cases update.
    pub params: usize,
}

fn op(len: usize, place: Place) -> Operand {
    Operand { len: Len::Fixed(len), place, values: Values::Random }
}

fn with(len: usize, place: Place, values: Values) -> Operand {
    Operand { len: Len::Fixed(len), place, values }
}

/// Every compute op of a training step at `s`, in `bench kernels`' order. `activation_bytes` (4,
/// or 2 under bf16) sizes what the memory-bound ops move.
///
/// Counting conventions: bytes are the minimum each op must move (inputs read once, outputs
/// written once, accumulated outputs read and written); attention FLOPs are `4·B·H·T²·D` forward
/// and 2.5× that backward (FlashAttention's: five T×T products, one of them the recomputed
/// scores).
pub fn op_cases(s: &Shapes, activation_bytes: f64) -> Vec<OpCase> {
    use Place::{Activation as A, Weights as W, F32 as F};
    let (a, f) = (activation_bytes, 4.0);
    let (b, t, d, h) = (s.batch, s.tokens, s.dim, s.hidden);
    let rows = b * t;
    let image_len = s.patch.channels * s.patch.image_size * s.patch.image_size;
    let patches = s.patch.patches();
    let patch_len = s.patch.patch_len();
    let pred_len = b * (patches + 1) * patch_len;
    let mut cases = Vec::new();
    let add = |cases: &mut Vec<OpCase>, name, shape: String, work, operands, outputs, run: Run| cases.push(OpCase { name, shape, work, operands, indices: Vec::new(), outputs, before: None, run });

    add(&mut cases, "gemm qkv forward", format!("{rows}x{}x{d}", 3 * d), Work::Flops(2.0 * (rows * 3 * d * d) as f64), vec![op(rows * d, A), op(3 * d * d, W), op(rows * 3 * d, A)], vec![2], Box::new(move |be, x, _| {
        be.gemm(&Gemm { trans_b: true, ..Gemm::new(rows, 3 * d, d, x[0], x[1], x[2]) });
        None
    }));
    add(&mut cases, "gemm fc1 weight grad", format!("{h}x{d}x{rows}"), Work::Flops(2.0 * (rows * h * d) as f64), vec![op(rows * h, A), op(rows * d, A), op(h * d, F)], vec![2], Box::new(move |be, x, _| {
        be.gemm(&Gemm { trans_a: true, accumulate: true, ..Gemm::new(h, d, rows, x[0], x[1], x[2]) });
        None
    }));
    // Attention over every token, and over the MAE encoder's kept ones (T = 50 for ViT-B/16).
    for tokens in [t, s.kept_tokens] {
        let shape = AttentionShape { batch: b, tokens, heads: s.heads, head_dim: d / s.heads };
        let n = b * tokens;
        let label = format!("B{b} H{} T{tokens} D{}", s.heads, shape.head_dim);
        let forward_flops = 4.0 * (b * s.heads * tokens * tokens * shape.head_dim) as f64;
        let saved = Operand { len: Len::AttentionSaved(shape), place: F, values: Values::Random };
        add(&mut cases, "attention forward", label.clone(), Work::Flops(forward_flops), vec![op(n * 3 * d, A), op(n * d, A), saved], vec![1], Box::new(move |be, x, _| {
            be.attention_forward(x[1], x[2], x[0], shape);
            None
        }));
        // What a forward saves is each backend's own layout, so only its output is compared. The
        // backward reads what its forward saved, so the forward runs once first.
        cases.push(OpCase {
            name: "attention backward",
            shape: label,
            work: Work::Flops(2.5 * forward_flops),
            operands: vec![op(n * 3 * d, A), op(n * d, A), op(n * d, A), saved, op(n * 3 * d, A)],
            indices: Vec::new(),
            outputs: vec![4],
            before: Some(Box::new(move |be, x, _| {
                be.attention_forward(x[2], x[3], x[0], shape);
                None
            })),
            run: Box::new(move |be, x, _| {
                be.attention_backward(x[4], x[1], x[0], x[2], x[3], shape);
                None
            }),
        });
    }
    // LayerNorm reads the f32 residual stream and writes an activation; its backward reads the
    // activation gradient and the input, and adds into the residual stream's gradient.
    add(
        &mut cases,
        "layernorm forward",
        format!("{rows}x{d}"),
        Work::Bytes((f + a) * (rows * d) as f64),
        vec![op(rows * d, A), op(rows, F), op(rows, F), op(rows * d, F), op(d, F), op(d, F)],
        vec![0, 1, 2],
        Box::new(move |be, x, _| {
            be.layernorm_forward(x[0], x[1], x[2], x[3], x[4], x[5], rows, d, 1e-6);
            None
        }),
    );
    add(
        &mut cases,
        "layernorm backward",
        format!("{rows}x{d}"),
        Work::Bytes((a + 3.0 * f) * (rows * d) as f64),
        vec![op(rows * d, F), op(d, F), op(d, F), op(rows * d, A), op(rows * d, F), op(d, F), op(rows, F), with(rows, F, Values::Positive)],
        vec![0, 1, 2],
        Box::new(move |be, x, _| {
            be.layernorm_backward(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], rows, d);
            None
        }),
    );
    // GELU on a third of the hidden layer.
    let n = rows * h / 3;
    add(&mut cases, "gelu forward", format!("{n}"), Work::Bytes(a * 2.0 * n as f64), vec![op(n, A), op(n, A)], vec![0], Box::new(|be, x, _| {
        be.gelu_forward(x[0], x[1]);
        None
    }));
    add(&mut cases, "gelu backward", format!("{n}"), Work::Bytes(a * 3.0 * n as f64), vec![op(n, A), op(n, A), op(n, A)], vec![0], Box::new(|be, x, _| {
        be.gelu_backward(x[0], x[1], x[2]);
        None
    }));
    add(&mut cases, "bias gradient", format!("{rows}x{d}"), Work::Bytes(a * (rows * d) as f64), vec![op(d, F), op(rows * d, A)], vec![0], Box::new(move |be, x, _| {
        be.bias_backward(x[0], x[1], rows, d);
        None
    }));
    add(&mut cases, "mean pool forward", format!("{b}x{t}x{d}"), Work::Bytes(f * (rows * d) as f64), vec![op(b * d, F), op(rows * d, F)], vec![0], Box::new(move |be, x, _| {
        be.mean_pool_forward(x[0], x[1], b, t, d, 1);
        None
    }));
    add(&mut cases, "mean pool backward", format!("{b}x{t}x{d}"), Work::Bytes(f * (rows * d) as f64), vec![op(rows * d, F), op(b * d, F)], vec![0], Box::new(move |be, x, _| {
        be.mean_pool_backward(x[0], x[1], b, t, d, 1);
        None
    }));
    // The residual stream's updates: a gradient term added in (axpy), the position table added
    // to every sample.
    add(&mut cases, "axpy", format!("{}", rows * d), Work::Bytes(f * 3.0 * (rows * d) as f64), vec![op(rows * d, F), op(rows * d, F)], vec![0], Box::new(|be, x, _| {
        be.axpy(x[0], 0.5, x[1]);
        None
    }));
    add(&mut cases, "add position rows", format!("{b}x{t}x{d}"), Work::Bytes(f * 2.0 * (rows * d) as f64), vec![op(rows * d, F), op(t * d, F)], vec![0], Box::new(move |be, x, _| {
        be.add_rows(x[0], x[1], t, d);
        None
    }));
    // The MAE encoder's input: CLS (the fill row) then the kept patches of each sample.
    let kept = s.kept_tokens;
    let ids: Vec<i32> = (0..b).flat_map(|_| std::iter::once(-1).chain((0..kept as i32 - 1).map(|i| i * 3 % (patches as i32)))).collect();
    cases.push(OpCase {
        name: "gather kept patches",
        shape: format!("{b}x{kept}x{d}"),
        work: Work::Bytes(f * 2.0 * (b * kept * d) as f64),
        operands: vec![op(b * kept * d, F), op(rows * d, F), op(d, F)],
        indices: vec![ids.clone()],
        outputs: vec![0],
        before: None,
        run: Box::new(move |be, x, i| {
            be.gather_rows(x[0], x[1], i[0], x[2], b, t, kept, d);
            None
        }),
    });
    cases.push(OpCase {
        name: "scatter kept patches",
        shape: format!("{b}x{kept}x{d}"),
        work: Work::Bytes(f * 3.0 * (b * kept * d) as f64),
        operands: vec![op(rows * d, F), op(d, F), op(b * kept * d, F)],
        indices: vec![ids],
        outputs: vec![0, 1],
        before: None,
        run: Box::new(move |be, x, i| {
            be.gather_rows_backward(x[0], x[1], x[2], i[0], b, t, kept, d);
            None
        }),
    });
    let (pixels, ps) = (b * image_len, PatchShape { batch: b, ..s.patch });
    add(&mut cases, "patchify", format!("{b}x{image_len}"), Work::Bytes(f * 2.0 * pixels as f64), vec![op(pixels, F), op(pixels, F)], vec![0], Box::new(move |be, x, _| {
        be.patchify(x[0], x[1], ps, PatchOrder::RowColChannel);
        None
    }));
    add(&mut cases, "unpatchify", format!("{b}x{image_len}"), Work::Bytes(f * 2.0 * pixels as f64), vec![op(pixels, F), op(pixels, F)], vec![0], Box::new(move |be, x, _| {
        be.unpatchify(x[0], x[1], ps, PatchOrder::RowColChannel);
        None
    }));
    add(
        &mut cases,
        "mae loss",
        format!("{b}x{patches}x{patch_len}"),
        Work::Bytes(f * 3.0 * (b * patches * patch_len) as f64),
        vec![op(1, F), op(pred_len, F), op(pred_len, F), op(b * patches * patch_len, F), with(b * patches, F, Values::EveryFourthOff)],
        vec![0, 1],
        Box::new(move |be, x, _| {
            be.mae_loss(x[0], x[1], x[2], x[3], x[4], b, patches, patch_len, 1.0);
            None
        }),
    );
    let k = s.classes;
    add(
        &mut cases,
        "cross-entropy",
        format!("{b}x{k}"),
        Work::Bytes(f * 3.0 * (b * k) as f64),
        vec![op(b, F), op(b * k, F), op(b * k, F), with(b * k, F, Values::Positive), with(k, F, Values::Ones)],
        vec![0, 1],
        Box::new(move |be, x, _| {
            be.cross_entropy(x[0], x[1], x[2], x[3], x[4], b, k, 1.0);
            None
        }),
    );
    let p = s.params;
    let groups = [ParamGroup { offset: 0, len: p, lr_scale: 1.0, weight_decay: true }];
    // Reads parameters, gradients and both moments, writes those three back, and the bf16 copy.
    let copy = if a < f { a } else { 0.0 };
    add(&mut cases, "adamw", format!("{p}"), Work::Bytes((f * 7.0 + copy) * p as f64), vec![op(p, W), op(p, F), op(p, F), with(p, F, Values::Positive)], vec![0, 2, 3], Box::new(move |be, x, _| {
        be.adamw(x[0], x[1], x[2], x[3], &groups, &AdamW { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.05, step: 1, grad_scale: 1.0 });
        None
    }));
    // Reads parameters, gradients and momentum, writes parameters and momentum, and the bf16 copy.
    add(&mut cases, "sgd", format!("{p}"), Work::Bytes((f * 5.0 + copy) * p as f64), vec![op(p, W), op(p, F), op(p, F)], vec![0, 2], Box::new(move |be, x, _| {
        be.sgd(x[0], x[1], x[2], &groups, &Sgd { lr: 1e-3, momentum: 0.9, nesterov: false, weight_decay: 0.05, grad_scale: 1.0 });
        None
    }));
    add(&mut cases, "gradient norm", format!("{p}"), Work::Bytes(f * p as f64), vec![op(p, F)], vec![], Box::new(|be, x, _| Some(be.sum_squares(x[0]))));
    cases
}
