//! The kernel sources, embedded from `kernels/`. Each module is compiled as `common.cuh`
//! followed by its `.cu` file, so the shared reductions are written once.

/// Reductions, grid-stride loops and constants shared by every module.
pub const COMMON: &str = include_str!("../../../kernels/common.cuh");

/// A kernel's entry point in `kernels/*.cu`. The backend launches only these constants, each
/// declared with its module in the table below, so a launch cannot name a kernel that is not
/// compiled (and `tests/compile.rs` finds every listed entry point in the module's PTX).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kernel(pub &'static str);

/// One compilation unit and the kernels it defines.
#[derive(Clone, Copy, Debug)]
pub struct Module {
    pub name: &'static str,
    pub source: &'static str,
    pub kernels: &'static [Kernel],
    /// The lowest compute capability (major · 10 + minor) the module is for: 80 where it uses bf16
    /// tensor-core instructions, which older GPUs lack (their backend runs fp32 without it).
    pub min_compute: u32,
}

/// Declares every module with its kernels: one `Kernel` constant per entry point, and
/// [`MODULES`], the list NVRTC compiles.
macro_rules! modules {
    ($($module:literal (min_compute $min:literal): [$($kernel:ident),+ $(,)?];)+) => {
        $($(
            #[allow(non_upper_case_globals)]
            pub const $kernel: Kernel = Kernel(stringify!($kernel));
        )+)+
        pub const MODULES: &[Module] = &[
            $(Module {
                name: $module,
                source: include_str!(concat!("../../../kernels/", $module, ".cu")),
                kernels: &[$($kernel),+],
                min_compute: $min,
            }),+
        ];
    };
}

modules! {
    "elementwise" (min_compute 0): [fill, convert, axpy, broadcast_rows, gelu_forward, gelu_backward];
    "layernorm" (min_compute 0): [layernorm_forward, layernorm_backward_input, layernorm_param_partials];
    "reduce" (min_compute 0): [column_partials, column_sum_accumulate, sum_partials, sum_f64];
    "attention" (min_compute 0): [
        attention_forward_d8, attention_forward_d16, attention_forward_d32, attention_forward_d64,
        attention_delta,
        attention_backward_dq_d8, attention_backward_dq_d16, attention_backward_dq_d32, attention_backward_dq_d64,
        attention_backward_dkv_d8, attention_backward_dkv_d16, attention_backward_dkv_d32, attention_backward_dkv_d64,
    ];
    "attention_tc" (min_compute 80): [
        attention_tc_forward_d16, attention_tc_forward_d32, attention_tc_forward_d64,
        attention_tc_backward_dq_d16, attention_tc_backward_dq_d32, attention_tc_backward_dq_d64,
        attention_tc_backward_dkv_d16, attention_tc_backward_dkv_d32, attention_tc_backward_dkv_d64,
    ];
    "tokens" (min_compute 0): [gather_rows, gather_rows_backward_input, gather_rows_backward_fill, mean_pool_forward, mean_pool_backward];
    "images" (min_compute 0): [patchify, render_images];
    "losses" (min_compute 0): [cross_entropy, mae_patch_loss, mae_total];
    "optim" (min_compute 0): [adamw, sgd];
}

impl Module {
    /// The text NVRTC compiles.
    pub fn full_source(&self) -> String {
        format!("{COMMON}\n// ---- {}.cu ----\n{}", self.name, self.source)
    }
}
