//! A linear layer `y = x·Wᵀ + b` (PyTorch weight layout `[out, in]`) and its backward.

use crate::ParamTable;
use rekindle_tensor::{Backend, Gemm, Tensor};

/// A weight and a bias: the parameters of a linear layer, or the scale and shift of a LayerNorm.
#[derive(Clone, Copy, Debug)]
pub struct Affine {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Affine {
    /// The views of `{prefix}.weight` and `{prefix}.bias` inside a buffer laid out by `table`.
    pub fn view(table: &ParamTable, buffer: Tensor, prefix: &str) -> Affine {
        Affine {
            weight: table.view(buffer, &format!("{prefix}.weight")),
            bias: table.view(buffer, &format!("{prefix}.bias")),
        }
    }
}

/// `out[rows, out_f] (=|+=) inp[rows, in_f] · weightᵀ + bias`.
#[allow(clippy::too_many_arguments)]
pub fn forward(be: &mut dyn Backend, out: Tensor, inp: Tensor, w: Affine, rows: usize, in_f: usize, out_f: usize, accumulate: bool) {
    be.gemm(&Gemm { trans_b: true, bias: Some(w.bias), accumulate, ..Gemm::new(rows, out_f, in_f, inp, w.weight, out) });
}

/// Overwrites `dinp` (when given) and accumulates into the weight and bias gradients `g`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    be: &mut dyn Backend,
    dinp: Option<Tensor>,
    g: Affine,
    dout: Tensor,
    inp: Tensor,
    w: Affine,
    rows: usize,
    in_f: usize,
    out_f: usize,
) {
    if let Some(dinp) = dinp {
        be.gemm(&Gemm::new(rows, in_f, out_f, dout, w.weight, dinp));
    }
    be.gemm(&Gemm { trans_a: true, accumulate: true, ..Gemm::new(out_f, in_f, rows, dout, inp, g.weight) });
    be.bias_backward(g.bias, dout, rows, out_f);
}
