//! AdamW and SGD against three steps of `torch.optim` (fixture from
//! `scripts/reference/make_optim_fixture.py`): two parameter groups, one decayed with an LR
//! scale of 0.65, one not; gradients are passed doubled with `grad_scale` 0.5.

use rekindle_tensor::{AdamW, Backend, CpuBackend, ParamGroup, Sgd, Tensor};
use safetensors::SafeTensors;

const BASE_LR: f32 = 1e-2;

fn fixture() -> impl Fn(&str) -> Vec<f32> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/optim.safetensors");
    let bytes = std::fs::read(path).expect("optim fixture");
    move |name| {
        let st = SafeTensors::deserialize(&bytes).unwrap();
        st.tensor(name).unwrap().data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
    }
}

fn groups() -> [ParamGroup; 2] {
    [
        ParamGroup { offset: 0, len: 12, lr_scale: 0.65, weight_decay: true },
        ParamGroup { offset: 12, len: 8, lr_scale: 1.0, weight_decay: false },
    ]
}

fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(1e-3)).fold(0.0, f32::max)
}

/// Runs `update` once per fixture gradient step and returns the final parameters.
fn run(be: &mut dyn Backend, mut update: impl FnMut(&mut dyn Backend, Tensor, Tensor, u32)) -> Vec<f32> {
    let f = fixture();
    let params = be.upload_new(&f("params"));
    let grads = be.alloc(20);
    for (i, g) in f("grads").chunks_exact(20).enumerate() {
        let doubled: Vec<f32> = g.iter().map(|x| 2.0 * x).collect();
        be.upload(grads, &doubled);
        update(be, params, grads, i as u32 + 1);
    }
    be.download_vec(params)
}

#[test]
fn adamw_matches_pytorch() {
    let mut be = CpuBackend::new(2);
    let (m, v) = (be.alloc(20), be.alloc(20));
    let got = run(&mut be, |be, p, g, step| {
        let hp = AdamW { lr: BASE_LR, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.05, step, grad_scale: 0.5 };
        be.adamw(p, g, m, v, &groups(), &hp);
    });
    let err = max_rel(&got, &fixture()("adamw"));
    assert!(err < 1e-5, "AdamW vs PyTorch: max relative error {err:e}");
}

#[test]
fn sgd_matches_pytorch() {
    for (nesterov, key) in [(false, "sgd"), (true, "sgd_nesterov")] {
        let mut be = CpuBackend::new(2);
        let buf = be.alloc(20);
        let got = run(&mut be, |be, p, g, _| {
            let hp = Sgd { lr: BASE_LR, momentum: 0.9, nesterov, weight_decay: 1e-3, grad_scale: 0.5 };
            be.sgd(p, g, buf, &groups(), &hp);
        });
        let err = max_rel(&got, &fixture()(key));
        assert!(err < 1e-5, "{key} vs PyTorch: max relative error {err:e}");
    }
}

#[test]
fn sum_squares_is_the_squared_global_norm() {
    let mut be = CpuBackend::new(2);
    let g: Vec<f32> = (0..100_000).map(|i| ((i % 17) as f32 - 8.0) * 1e-2).collect();
    let t = be.upload_new(&g);
    let want: f64 = g.iter().map(|&x| x as f64 * x as f64).sum();
    assert!(((be.sum_squares(t) as f64 - want) / want).abs() < 1e-6);
}
