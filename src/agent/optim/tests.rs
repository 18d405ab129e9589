//! The optimiser against its update rules, computed by hand.

use super::*;

/// Adam on `f(x, y) = Σ (x - 3)² + Σ (y + 1)²` against the update rule computed by hand in
/// f64, with clipping inactive and one parameter's step scaled down.
#[test]
fn flat_adam_matches_the_update_rule() {
    let x = Tensor::from_slice(&[0.5f32, -2.0, 1.0]).set_requires_grad(true);
    let y = Tensor::from_slice(&[4.0f32, 0.0]).view([1, 2]).set_requires_grad(true);
    let mut opt = Optimizer::adam(vec![("x".into(), x.shallow_clone()), ("y".into(), y.shallow_clone())], 1e-8);
    opt.set_lr_scale(|n| n == "y", 0.5);
    let mut xs = [0.5f64, -2.0, 1.0, 4.0, 0.0];
    let (mut m, mut v) = ([0.0f64; 5], [0.0f64; 5]);
    for t in 1..=5 {
        let loss = (&x - 3.0).square().sum(Kind::Float) + (&y + 1.0).square().sum(Kind::Float);
        opt.backward_step(&loss, 0.1, Some(1e9));
        for i in 0..5 {
            let target = if i < 3 { 3.0 } else { -1.0 };
            let g = 2.0 * (xs[i] - target);
            m[i] = 0.9 * m[i] + 0.1 * g;
            v[i] = 0.999 * v[i] + 0.001 * g * g;
            let step = (m[i] / (1.0 - 0.9f64.powi(t))) / ((v[i] / (1.0 - 0.999f64.powi(t))).sqrt() + 1e-8);
            xs[i] -= 0.1 * if i < 3 { 1.0 } else { 0.5 } * step;
        }
    }
    let got: Vec<f32> = Vec::try_from(Tensor::cat(&[x.detach(), y.detach().view([-1])], 0)).unwrap();
    for (g, e) in got.iter().zip(xs) {
        assert!((*g as f64 - e).abs() < 1e-5, "{got:?} vs {xs:?}");
    }
}

/// The anchor adds `2 coef (θ - θ₀)` to the gradient; a scheduled scale of 0 freezes a
/// parameter until its step comes.
#[test]
fn anchor_and_scheduled_freeze() {
    let x = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
    let y = Tensor::from_slice(&[5.0f32]).set_requires_grad(true);
    let mut opt = Optimizer::adam(vec![("x".into(), x.shallow_clone()), ("y".into(), y.shallow_clone())], 1e-8);
    opt.set_anchor(|n| n == "x", 0.5);
    let _ = tch::no_grad(|| x.shallow_clone().g_add_scalar_(1.0));
    opt.set_lr_scale(|n| n == "y", 0.0);
    opt.schedule_lr_scale(100, vec!["y".into()], 1.0);
    opt.advance(10);
    let loss = (&y * 1.0).sum(Kind::Float) + (&x * 0.0).sum(Kind::Float);
    opt.compute_gradients(&loss);
    opt.step_with_gradients(0.1, None);
    let g: Vec<f32> = Vec::try_from(&opt.grad).unwrap();
    assert_eq!(g, vec![1.0, 1.0, 1.0], "the pull towards the anchor");
    assert_eq!(y.double_value(&[0]), 5.0, "frozen before step 100");
    opt.advance(100);
    let loss = (&y * 1.0).sum(Kind::Float);
    opt.backward_step(&loss, 0.1, None);
    assert!(y.double_value(&[0]) < 5.0, "trains after step 100");
}

#[test]
fn clipping_bounds_the_global_norm() {
    let x = Tensor::from_slice(&[0.0f32; 4]).set_requires_grad(true);
    let mut opt = Optimizer::adam(vec![("x".into(), x.shallow_clone())], 1e-8);
    let loss = (&x * Tensor::from_slice(&[30.0f32, 40.0, 0.0, 0.0])).sum(Kind::Float);
    opt.backward_step(&loss, 0.0, Some(1.0));
    let g: Vec<f32> = Vec::try_from(&opt.grad).unwrap();
    assert!((g[0] - 0.6).abs() < 1e-4 && (g[1] - 0.8).abs() < 1e-4, "{g:?}");
}
