//! METHODS.md §2–3 small-scale truths: CKCA reduces to warm start and is zero at the first
//! iteration, shrink-and-perturb with λ 1, p 0 is warm start, the L2 gradient is 2λ(θ − θ_ref),
//! the sampler drops exactly the chosen quantiles, and S / I on synthetic accuracy curves.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rekindle_coordinator::config::{CkcaSection, KdWeighting};
use rekindle_coordinator::distill::{terms, Distiller, Outputs};
use rekindle_coordinator::selection::select_old;
use rekindle_coordinator::speedup::{first_reaching, smallest_fraction, speedup};
use rekindle_coordinator::{train, CurvePoint, Place, Summary, TrainConfig};
use rekindle_model::{ClassifyPass, L2Anchor, ModelConfig, Vit};
use rekindle_tensor::{Backend, CpuBackend};

fn micro(classes: usize) -> ModelConfig {
    let mut c = ModelConfig::preset("vit-micro-4-28").unwrap();
    c.classes = classes;
    c
}

fn random(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

#[test]
fn ckca_terms_and_gradients_are_zero_at_the_first_iteration() {
    let mut be = CpuBackend::new(2);
    let vit = Vit::new(&mut be, &micro(6), 3).unwrap();
    let n = 5;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let pass = ClassifyPass::new(&mut be, &vit, n);
    be.upload(pass.images(), &random(&mut rng, pass.images().len, 1.0));
    let mut targets = vec![0.0; n * 6];
    let labels = [0usize, 3, 5, 1, 1];
    labels.iter().enumerate().for_each(|(i, &y)| targets[i * 6 + y] = 1.0);
    be.upload(pass.targets, &targets);
    // Plain cross-entropy gradients, for comparison.
    pass.forward(&mut be, &vit);
    vit.zero_grads(&mut be);
    pass.backward(&mut be, &vit, 1.0);
    let plain = be.download_vec(vit.grads);
    for weighting in [KdWeighting::TeacherProb, KdWeighting::TeacherCorrect, KdWeighting::Batch] {
        let settings = CkcaSection { kd_weighting: weighting, ..CkcaSection::default() };
        let mut distiller = Distiller::new(&mut be, &vit, 6, &settings).unwrap();
        pass.forward(&mut be, &vit);
        let (t, grads) = distiller.run(&mut be, &pass, &vit, &labels, 1.0);
        assert_eq!((t.feat, t.kd), (0.0, 0.0), "{weighting:?}");
        assert!(t.dlogits.iter().chain(&t.dfeatures).all(|&g| g == 0.0), "{weighting:?}");
        vit.zero_grads(&mut be);
        pass.backward_with(&mut be, &vit, 1.0, Some(grads));
        let got = be.download_vec(vit.grads);
        let worst = got.iter().zip(&plain).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(got == plain, "{weighting:?}: the model gradient is plain CE (worst difference {worst})");
    }
}

/// `λ_f·FeatReg + λ_kd·AdaKD` as a function of the student's logits and features.
fn objective(zs: &[f32], hs: &[f32], zt: &[f32], ht: &[f32], labels: &[usize], s: &CkcaSection, k: usize) -> f64 {
    let t = terms(&Outputs { logits: zs, classes: k, features: hs }, &Outputs { logits: zt, classes: k, features: ht }, labels, s, 1.0);
    s.feat_weight as f64 * t.feat as f64 + s.kd_weight as f64 * t.kd as f64
}

/// Compares `grad` with central differences of `f` around `x`.
fn check_central_differences(name: &str, x: &[f32], grad: &[f32], f: impl Fn(&[f32]) -> f64) {
    let h = 1e-3f32;
    for i in 0..x.len() {
        let (mut up, mut down) = (x.to_vec(), x.to_vec());
        up[i] += h;
        down[i] -= h;
        let fd = (f(&up) - f(&down)) / (2.0 * h as f64);
        assert!((fd - grad[i] as f64).abs() < 1e-4, "{name}[{i}]: {} vs {fd}", grad[i]);
    }
}

#[test]
fn ckca_gradients_match_finite_differences() {
    let (n, k, d) = (3, 4, 5);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (zs, zt, hs, ht) = (random(&mut rng, n * k, 2.0), random(&mut rng, n * k, 2.0), random(&mut rng, n * d, 1.0), random(&mut rng, n * d, 1.0));
    let labels = [2usize, 0, 3];
    // TeacherProb and TeacherCorrect weights do not depend on the student; the batch weight
    // does, and METHODS.md says it is not differentiated, so it is checked only for the value.
    for weighting in [KdWeighting::TeacherProb, KdWeighting::TeacherCorrect] {
        let s = CkcaSection { feat_weight: 0.7, kd_weight: 1.3, temperature: 2.0, kd_weighting: weighting };
        let t = terms(&Outputs { logits: &zs, classes: k, features: &hs }, &Outputs { logits: &zt, classes: k, features: &ht }, &labels, &s, 1.0);
        assert!(t.kd > 0.0 || weighting == KdWeighting::TeacherCorrect);
        let objective = |zs: &[f32], hs: &[f32]| objective(zs, hs, &zt, &ht, &labels, &s, k);
        check_central_differences("dlogits", &zs, &t.dlogits, |z| objective(z, &hs));
        check_central_differences("dfeatures", &hs, &t.dfeatures, |h| objective(&zs, h));
    }
    // FeatReg is mean_d ‖h_s − h_T‖² averaged over samples.
    let s = CkcaSection { feat_weight: 1.0, kd_weight: 0.0, ..CkcaSection::default() };
    let t = terms(&Outputs { logits: &zs, classes: k, features: &hs }, &Outputs { logits: &zt, classes: k, features: &ht }, &labels, &s, 1.0);
    let want: f32 = hs.iter().zip(&ht).map(|(a, b)| (a - b) * (a - b)).sum::<f32>() / (n * d) as f32;
    assert!((t.feat - want).abs() < 1e-6);
}

#[test]
fn adakd_weights_follow_the_teacher() {
    // Sample 0: the teacher is confidently right; sample 1: confidently wrong. τ = 1, λ_kd = 1,
    // so row i of ∂/∂z_s is w_i · (softmax(z_s,i) − softmax(z_T,i)) / n.
    let (k, labels) = (3, [0usize, 0]);
    let zt = [5.0f32, 0.0, 0.0, 0.0, 5.0, 0.0];
    let zs = [0.0f32, 1.0, 0.0, 0.0, 1.0, 2.0];
    let (hs, ht) = ([0.0f32; 4], [0.0f32; 4]);
    let softmax = |z: &[f32]| {
        let e: Vec<f32> = z.iter().map(|v| v.exp()).collect();
        let sum: f32 = e.iter().sum();
        e.into_iter().map(|v| v / sum).collect::<Vec<f32>>()
    };
    let check = |weighting, w: [f32; 2]| {
        let s = CkcaSection { feat_weight: 0.0, kd_weight: 1.0, temperature: 1.0, kd_weighting: weighting };
        let t = terms(&Outputs { logits: &zs, classes: k, features: &hs }, &Outputs { logits: &zt, classes: k, features: &ht }, &labels, &s, 1.0);
        for i in 0..2 {
            let (ps, pt) = (softmax(&zs[i * k..i * k + k]), softmax(&zt[i * k..i * k + k]));
            for c in 0..k {
                let want = w[i] * (ps[c] - pt[c]) / 2.0;
                assert!((t.dlogits[i * k + c] - want).abs() < 1e-6, "{weighting:?} [{i}][{c}]: {} vs {want}", t.dlogits[i * k + c]);
            }
        }
    };
    check(KdWeighting::TeacherCorrect, [1.0, 0.0]);
    let p = |z: &[f32]| softmax(z)[0];
    check(KdWeighting::TeacherProb, [p(&zt[..3]), p(&zt[3..])]);
    // The batch weight CE_T / (CE_T + CE_s), the CEs summed over the batch.
    let (ce_t, ce_s) = (-p(&zt[..3]).ln() - p(&zt[3..]).ln(), -p(&zs[..3]).ln() - p(&zs[3..]).ln());
    let w = ce_t / (ce_t + ce_s);
    check(KdWeighting::Batch, [w, w]);
}

#[test]
fn shrink_perturb_with_1_0_is_warm_start_and_mixes_otherwise() {
    let mut be = CpuBackend::new(2);
    let mut vit = Vit::new(&mut be, &micro(4), 5).unwrap();
    let before = vit.download_params(&mut be);
    vit.shrink_perturb(&mut be, 1.0, 0.0, 4, 99);
    assert_eq!(vit.download_params(&mut be), before, "λ 1, p 0 leaves θ bit for bit");
    // Grow the head by 2 classes: old rows mix, new rows keep their fresh init.
    vit.grow_head(&mut be, 6, 7).unwrap();
    let grown = vit.download_params(&mut be);
    vit.shrink_perturb(&mut be, 0.4, 0.1, 4, 99);
    let after = vit.download_params(&mut be);
    let fresh = vit.fresh_params(99);
    let (weight, bias) = (vit.table.get("head.weight").unwrap(), vit.table.get("head.bias").unwrap());
    let d = vit.config.dim;
    for (i, ((&a, &g), &f)) in after.iter().zip(&grown).zip(&fresh).enumerate() {
        // Rows 4 and 5 of the head's weight and bias are the new classes.
        let new_head_row = (weight.offset + 4 * d..weight.offset + weight.len).contains(&i) || (bias.offset + 4..bias.offset + bias.len).contains(&i);
        let want = if new_head_row { g } else { 0.4 * g + 0.1 * f };
        assert_eq!(a, want, "parameter {i}");
    }
}

#[test]
fn l2_gradient_is_two_lambda_theta_minus_reference() {
    let mut be = CpuBackend::new(2);
    let vit = Vit::new(&mut be, &micro(3), 5).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let theta = vit.download_params(&mut be);
    let reference: Vec<f32> = theta.iter().map(|t| t + rng.random_range(-0.1f32..0.1)).collect();
    let lambda = 0.3;
    let anchor = L2Anchor::new(&mut be, &vit, lambda, &reference);
    let existing = random(&mut rng, theta.len(), 1.0);
    be.upload(vit.grads, &existing);
    let loss = anchor.apply(&mut be, &vit);
    let grads = be.download_vec(vit.grads);
    let mut want_loss = 0.0f64;
    for i in 0..theta.len() {
        let diff = theta[i] - reference[i];
        want_loss += (lambda * diff * diff) as f64;
        let want = existing[i] + 2.0 * lambda * diff;
        assert!((grads[i] - want).abs() <= 1e-6 * want.abs().max(1.0), "gradient {i}: {} vs {want}", grads[i]);
    }
    assert!((loss as f64 - want_loss).abs() < 1e-4 * want_loss, "{loss} vs {want_loss}");
    // At the reference the penalty and its gradient vanish.
    let at_ref = L2Anchor::new(&mut be, &vit, lambda, &theta);
    be.fill(vit.grads, 0.0);
    assert_eq!(at_ref.apply(&mut be, &vit), 0.0);
    assert!(be.download_vec(vit.grads).iter().all(|&g| g == 0.0));
}

#[test]
fn selection_drops_exactly_the_chosen_quantiles() {
    let n = 100;
    let ids: Vec<u32> = (0..n as u32).map(|i| 1000 + i).collect();
    // A shuffled set of distinct losses: sample i has rank rank[i].
    let mut rank: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for i in (1..n).rev() {
        rank.swap(i, rng.random_range(0..=i));
    }
    let losses: Vec<f32> = rank.iter().map(|&r| r as f32 * 0.01).collect();
    let kept = select_old(&ids, &losses, 0.1, 0.2);
    let want: Vec<u32> = (0..n).filter(|&i| (10..80).contains(&rank[i])).map(|i| ids[i]).collect();
    assert_eq!(kept, want, "drops the 10 easiest and 20 hardest, keeps order");
    assert_eq!(select_old(&ids, &losses, 0.0, 0.0), ids);
    // floor(q·n): 0.15 of 10 drops 1; ties break by position.
    let tied = vec![1.0f32; 10];
    assert_eq!(select_old(&ids[..10], &tied, 0.15, 0.15), ids[1..9].to_vec());
}

fn point(step: usize, iteration: usize, accuracy: f64) -> CurvePoint {
    CurvePoint { step, iteration, round_flops: iteration as f64 * 10.0, accuracy }
}

#[test]
fn speedup_on_synthetic_curves() {
    let scratch: Vec<CurvePoint> = (1..=10).map(|i| point(1, i * 100, 0.05 * i as f64)).collect();
    // A* = 0.5 at S = 1000. The fast run crosses 0.5 first at iteration 400.
    let fast: Vec<CurvePoint> = (1..=10).map(|i| point(1, i * 100, [0.2, 0.3, 0.45, 0.5, 0.49, 0.6, 0.6, 0.6, 0.6, 0.6][i - 1])).collect();
    let s = speedup(&scratch, &fast).unwrap();
    assert_eq!(s.target, 0.5);
    assert_eq!(s.scratch_steps, 1000);
    assert_eq!(s.reached.unwrap().iteration, 400);
    assert_eq!(s.steps(), Some(2.5));
    assert_eq!(s.flops(), Some(2.5));
    // A run that never reaches A*.
    let slow: Vec<CurvePoint> = (1..=10).map(|i| point(1, i * 100, 0.4)).collect();
    let s = speedup(&scratch, &slow).unwrap();
    assert_eq!((s.reached, s.steps(), s.flops()), (None, None, None));
    // Scratch against itself crosses at its end: speed-up 1.
    assert_eq!(speedup(&scratch, &scratch).unwrap().steps(), Some(1.0));
    assert_eq!(first_reaching(&fast, 0.6).unwrap().iteration, 600);
    assert!(speedup(&[], &fast).is_none());
    // The shortened-schedule search.
    assert_eq!(smallest_fraction(&[(1.0, 0.55), (0.5, 0.51), (0.25, 0.45)], 0.5), Some(0.5));
    assert_eq!(smallest_fraction(&[(0.5, 0.4)], 0.5), None);
}

/// A tiny data-incremental stream of 2 rounds on synthetic data.
fn rounds_config(extra: &[&str]) -> TrainConfig {
    let yaml = "seed: 3
model: {preset: vit-micro-4-28, overrides: {image_size: 16, channels: 3, patch: 4, depth: 2}}
data: {synthetic: {classes: 4, train_per_class: 24, test_per_class: 8, size: 16}, eval_batch: 32}
stream: {scenario: data-incremental, steps: 2, label_rate: 1.0}
budget: {steps: 6, effective_batch: 16, micro_batch: 8, eval_every: 2}
augment: {enabled: false}
optim: {lr: 1.0e-3, layer_decay: 1.0}
threads: 2
";
    let overrides: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    TrainConfig::from_yaml("test", yaml, &overrides).unwrap()
}

/// The parameters of a run's last checkpoint (time step 1).
fn weights(config: &TrainConfig, dir: &std::path::Path) -> Vec<f32> {
    let mut be = CpuBackend::new(2);
    let mut model = config.model_config().unwrap();
    model.classes = 4;
    let vit = Vit::new(&mut be, &model, 0).unwrap();
    rekindle_model::load_checkpoint(&mut be, &vit, &dir.join("checkpoints/step-1.safetensors")).unwrap();
    vit.download_params(&mut be)
}

fn run(config: &TrainConfig, dir: &std::path::Path) -> Summary {
    let mut be = CpuBackend::new(2);
    train(config, &mut be, &rekindle_comm::Single, Place { dir: Some(dir), resume: false, run_id: "" }, |_| {}).unwrap()
}

#[test]
fn ckca_with_zero_weights_is_exactly_warm_start() {
    let tmp = std::env::temp_dir().join(format!("rekindle-ckca-{}", std::process::id()));
    let warm = run(&rounds_config(&["strategy.name=warmstart", "strategy.round_data=new"]), &tmp.join("warm"));
    let warm2 = run(&rounds_config(&["strategy.name=warmstart", "strategy.round_data=new"]), &tmp.join("warm2"));
    assert_eq!(warm.curve, warm2.curve, "deterministic");
    let ckca0 = run(&rounds_config(&["strategy.name=ckca", "strategy.round_data=new", "ckca.feat_weight=0", "ckca.kd_weight=0"]), &tmp.join("ckca0"));
    let ckca = run(&rounds_config(&["strategy.name=ckca", "strategy.round_data=new"]), &tmp.join("ckca"));
    let model = |name: &str| weights(&rounds_config(&[]), &tmp.join(name));
    assert!(model("warm") == model("ckca0"), "same weights bit for bit");
    assert_eq!(warm.accuracy_matrix, ckca0.accuracy_matrix);
    assert!(model("warm") != model("ckca"), "the default weights change training");
    // Round 0 is the same for all (nothing to distil from yet); the curve has every 2nd step.
    assert_eq!(warm.curve.iter().filter(|p| p.step == 1).map(|p| p.iteration).collect::<Vec<_>>(), vec![2, 4, 6]);
    assert_eq!(warm.curve[..3], ckca.curve[..3]);
    // CKCA pays for the teacher's forward passes.
    assert!(ckca.flops > warm.flops);
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn continuous_levers_run_and_shorten_the_schedule() {
    let tmp = std::env::temp_dir().join(format!("rekindle-levers-{}", std::process::id()));
    let all = rounds_config(&[
        "strategy.name=continuous",
        "continuous.init=shrink-perturb",
        "continuous.l2=0.01",
        "continuous.l2_reference=old",
        "continuous.drop_easy=0.25",
        "continuous.drop_hard=0.25",
        "continuous.schedule_fraction=0.5",
    ]);
    let s = run(&all, &tmp.join("all"));
    // Round 1 trains round(0.5 · 6) = 3 steps, evaluated at 2 and at its end.
    assert_eq!(s.optimizer_steps, 6 + 3);
    assert_eq!(s.curve.iter().filter(|p| p.step == 1).map(|p| p.iteration).collect::<Vec<_>>(), vec![2, 3]);
    // A warm continuous run with every lever off is warm start.
    let warm = run(&rounds_config(&["strategy.name=warmstart"]), &tmp.join("warm"));
    let plain = run(&rounds_config(&["strategy.name=continuous"]), &tmp.join("plain"));
    assert_eq!(warm.accuracy_matrix, plain.accuracy_matrix);
    let model = |name: &str| weights(&rounds_config(&[]), &tmp.join(name));
    assert!(model("warm") == model("plain"), "same weights bit for bit");
    std::fs::remove_dir_all(&tmp).ok();
}
