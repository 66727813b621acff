//! The kernel sources, embedded from `kernels/`. Each module is compiled as `common.cuh`
//! followed by its `.cu` file, so the shared reductions are written once.

/// Reductions, grid-stride loops and constants shared by every module.
pub const COMMON: &str = include_str!("../../../kernels/common.cuh");

/// One compilation unit and the kernels it defines.
#[derive(Clone, Copy, Debug)]
pub struct Module {
    pub name: &'static str,
    pub source: &'static str,
    pub kernels: &'static [&'static str],
    /// The lowest compute capability (major · 10 + minor) the module is for: 80 where it uses bf16
    /// tensor-core instructions, which older GPUs lack (their backend runs fp32 without it).
    pub min_compute: u32,
}

pub const MODULES: &[Module] = &[
    Module { name: "elementwise", source: include_str!("../../../kernels/elementwise.cu"), kernels: &["fill", "convert", "axpy", "broadcast_rows", "gelu_forward", "gelu_backward"], min_compute: 0 },
    Module { name: "layernorm", source: include_str!("../../../kernels/layernorm.cu"), kernels: &["layernorm_forward", "layernorm_backward_input", "layernorm_param_partials"], min_compute: 0 },
    Module { name: "reduce", source: include_str!("../../../kernels/reduce.cu"), kernels: &["column_partials", "column_sum_accumulate", "sum_partials", "sum_f64"], min_compute: 0 },
    Module {
        name: "attention",
        source: include_str!("../../../kernels/attention.cu"),
        kernels: &[
            "attention_forward_d8",
            "attention_forward_d16",
            "attention_forward_d32",
            "attention_forward_d64",
            "attention_delta",
            "attention_backward_dq_d8",
            "attention_backward_dq_d16",
            "attention_backward_dq_d32",
            "attention_backward_dq_d64",
            "attention_backward_dkv_d8",
            "attention_backward_dkv_d16",
            "attention_backward_dkv_d32",
            "attention_backward_dkv_d64",
        ],
        min_compute: 0,
    },
    Module {
        name: "attention_tc",
        source: include_str!("../../../kernels/attention_tc.cu"),
        kernels: &[
            "attention_tc_forward_d16",
            "attention_tc_forward_d32",
            "attention_tc_forward_d64",
            "attention_tc_backward_dq_d16",
            "attention_tc_backward_dq_d32",
            "attention_tc_backward_dq_d64",
            "attention_tc_backward_dkv_d16",
            "attention_tc_backward_dkv_d32",
            "attention_tc_backward_dkv_d64",
        ],
        min_compute: 80,
    },
    Module { name: "tokens", source: include_str!("../../../kernels/tokens.cu"), kernels: &["gather_rows", "gather_rows_backward_input", "gather_rows_backward_fill", "mean_pool_forward", "mean_pool_backward"], min_compute: 0 },
    Module { name: "images", source: include_str!("../../../kernels/images.cu"), kernels: &["patchify", "render_images"], min_compute: 0 },
    Module { name: "losses", source: include_str!("../../../kernels/losses.cu"), kernels: &["cross_entropy", "mae_patch_loss", "mae_total"], min_compute: 0 },
    Module { name: "optim", source: include_str!("../../../kernels/optim.cu"), kernels: &["adamw", "sgd"], min_compute: 0 },
];

impl Module {
    /// The text NVRTC compiles.
    pub fn full_source(&self) -> String {
        format!("{COMMON}\n// ---- {}.cu ----\n{}", self.name, self.source)
    }
}
