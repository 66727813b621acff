//! The hand-written forward and backward against PyTorch/timm (fixtures from
//! `scripts/reference/make_fixtures.py`, computed in float64): logits and losses to relative
//! error ≤ 1e-5, every parameter gradient to ‖a − b‖/‖b‖ ≤ 1e-4. Each test runs on the CPU backend
//! and, in a build with the `cuda` feature, on the CUDA backend (a GPU, else the software GPU) in fp32
//! (the same bounds) and in bf16 mixed precision. bf16 keeps 8 bits of mantissa, so its bounds are
//! 2e-2 for outputs and 1e-1 for gradients: loose enough for rounding through the layers, tight
//! enough that a wiring error (a stale weight copy, an operand read in the wrong precision) fails,
//! since those give errors of order 1.

mod common;

use common::Fixture;
use rekindle_model::{sincos_2d, ClassifyPass, MaePass, Vit};
use rekindle_tensor::{relative_error, Backend, CpuBackend};

/// Relative-error bounds for outputs (logits, predictions, losses) and parameter gradients.
#[derive(Clone, Copy)]
struct Bounds {
    output: f64,
    grad: f64,
}

const EXACT: Bounds = Bounds { output: 1e-5, grad: 1e-4 };

/// The CPU backend, and GPU 0 in both precisions where there is one.
fn backends() -> Vec<(Box<dyn Backend>, Bounds)> {
    let mut all: Vec<(Box<dyn Backend>, Bounds)> = vec![(Box::new(CpuBackend::new(2)), EXACT)];
    #[cfg(feature = "gpu")]
    for (precision, bounds) in [(rekindle_tensor::Precision::Fp32, EXACT), (rekindle_tensor::Precision::Bf16, Bounds { output: 2e-2, grad: 1e-1 })] {
        rekindle_gpu_sim::install();
        match rekindle_cuda::CudaBackend::new(0, precision) {
            Ok(gpu) => all.push((Box::new(gpu), bounds)),
            Err(e) => rekindle_gpu_sim::skip(&format!("CUDA backend: {e}")),
        }
    }
    all
}

const FIXTURES: [&str; 2] = ["vit_grey28", "vit_w48"];

fn model(be: &mut dyn Backend, f: &Fixture) -> Vit {
    let vit = Vit::new(be, &f.config, 0).unwrap();
    for e in &vit.table.entries {
        vit.upload_tensor(be, &e.name, &f.f32(&format!("param.{}", e.name)));
    }
    vit
}

/// Every `{prefix}.*` gradient in the fixture matches the model's, and the fixture has one for
/// every tensor the path uses (the others must have stayed exactly zero).
fn check_grads(be: &mut dyn Backend, vit: &Vit, f: &Fixture, prefix: &str, bound: f64) {
    let names = f.names();
    let mut checked = 0;
    for e in &vit.table.entries {
        let got = vit.download_tensor(be, &e.name, true);
        let key = format!("{prefix}.{}", e.name);
        if names.contains(&key) {
            let err = relative_error(&got, &f.f32(&key));
            assert!(err <= bound, "{key}: relative error {err:e}");
            checked += 1;
        } else {
            assert!(got.iter().all(|&g| g == 0.0), "{key}: unused by this path, yet its gradient is non-zero");
        }
    }
    assert_eq!(checked, names.iter().filter(|n| n.starts_with(&format!("{prefix}."))).count());
}

#[test]
fn position_tables_match_mae() {
    for name in FIXTURES {
        let f = Fixture::load(name);
        let c = &f.config;
        assert!(relative_error(&sincos_2d(c.dim, c.grid()), &f.f32("pos_embed")) < 1e-6, "{name}");
        assert!(relative_error(&sincos_2d(c.decoder_dim, c.grid()), &f.f32("decoder_pos_embed")) < 1e-6, "{name}");
    }
}

#[test]
fn classification_matches_timm() {
    for (name, (mut be, bounds)) in FIXTURES.iter().flat_map(|&n| backends().into_iter().map(move |b| (n, b))) {
        let f = Fixture::load(name);
        let name = format!("{name} on {}", be.name());
        let be = be.as_mut();
        let vit = model(be, &f);
        let pass = ClassifyPass::new(be, &vit, f.batch);
        be.upload(pass.images(), &f.f32("images"));
        be.upload(pass.targets, &f.f32("targets"));
        be.upload(pass.class_mask, &f.f32("class_mask"));
        vit.zero_grads(be);
        pass.forward(be, &vit);
        let logits = be.download_vec(pass.logits);
        let err = relative_error(&logits, &f.f32("logits"));
        assert!(err <= bounds.output, "{name}: logits relative error {err:e}");
        let loss = pass.backward(be, &vit, 1.0);
        let want = f.scalar("loss_cls");
        assert!(((loss - want) / want).abs() as f64 <= bounds.output, "{name}: loss {loss} vs {want}");
        check_grads(be, &vit, &f, "grad_cls", bounds.grad);
    }
}

#[test]
fn mae_matches_reference() {
    for (name, (mut be, bounds)) in FIXTURES.iter().flat_map(|&n| backends().into_iter().map(move |b| (n, b))) {
        let f = Fixture::load(name);
        let name = format!("{name} on {}", be.name());
        let be = be.as_mut();
        let vit = model(be, &f);
        let pass = MaePass::new(be, &vit, f.batch);
        be.upload(pass.images(), &f.f32("images"));
        pass.set_mask(be, &f.mask_ids());
        vit.zero_grads(be);
        pass.forward(be, &vit);
        let (c, n) = (&f.config, f.batch);
        let pred = be.download_vec(pass.pred());
        // Drop each sample's CLS row to compare with the reference's [B, L, p·p·C].
        let row = c.patch_len();
        let pred: Vec<f32> = pred.chunks_exact((1 + c.patches()) * row).take(n).flat_map(|s| s[row..].to_vec()).collect();
        let err = relative_error(&pred, &f.f32("pred"));
        assert!(err <= bounds.output, "{name}: pred relative error {err:e}");
        let loss = pass.backward(be, &vit, 1.0);
        let want = f.scalar("loss_mae");
        assert!(((loss - want) / want).abs() as f64 <= bounds.output, "{name}: loss {loss} vs {want}");
        check_grads(be, &vit, &f, "grad_mae", bounds.grad);
    }
}
