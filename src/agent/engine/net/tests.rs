//! `Net`'s passes against the chains they state, across instruction sets and against autograd.
use super::*;
use crate::agent::engine::testing::{bits, isas};
use crate::agent::engine::{Isa, force};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// An MLP table `widths[0] -> ... -> widths[last]` with `activation` between layers, its
/// parameters packed weight, bias, layer after layer; and random parameters for it.
fn mlp(widths: &[usize], activation: Activation, rng: &mut StdRng) -> (Net, Vec<f32>) {
    let mut ops = Vec::new();
    let mut offset = 0;
    for (l, w) in widths.windows(2).enumerate() {
        if l > 0 {
            ops.push(Op::Act(activation));
        }
        ops.push(Op::Linear { weight: offset, bias: offset + w[0] * w[1], inputs: w[0], outputs: w[1] });
        offset += w[0] * w[1] + w[1];
    }
    let params = (0..offset).map(|_| rng.random_range(-0.5f32..0.5)).collect();
    (Net::new(ops, widths[0], offset).expect("a chained table"), params)
}

/// Forward, backward (with and without a second head's gradient) and an Adam step give the
/// same bits on every instruction set, on widths and batches around every vector width.
#[test]
fn passes_agree_across_instruction_sets() {
    let mut rng = StdRng::seed_from_u64(3);
    for widths in [vec![4, 64, 64, 2], vec![3, 1], vec![7, 2, 3, 1], vec![5, 63, 65, 7], vec![17, 256, 256, 3]] {
        for activation in [Activation::Tanh, Activation::Relu] {
            let (net, params) = mlp(&widths, activation, &mut rng);
            for rows in [1usize, 2, 3, 7, 63, 64, 65, 256] {
                let x: Vec<f32> = (0..rows * widths[0]).map(|_| rng.random_range(-2.0f32..2.0)).collect();
                let g: Vec<f32> = (0..rows * net.outputs()).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                let features = widths[widths.len() - 2];
                let extra: Vec<f32> = (0..rows * features).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                let run = |isa| {
                    force(isa, || {
                        let pass = net.forward(&params, &x, rows);
                        let mut grads = vec![0.0; params.len()];
                        net.backward(&params, &x, &pass, &g, None, &mut grads);
                        let mut with_extra = vec![0.0; params.len()];
                        net.backward(&params, &x, &pass, &g, Some(&extra), &mut with_extra);
                        let (mut p, mut m, mut v) = (params.clone(), vec![0.0; params.len()], vec![0.0; params.len()]);
                        math::AdamStep {
                            grad: &grads,
                            exp_avg: &mut m,
                            exp_avg_sq: &mut v,
                            params: &mut p,
                            lr_scale: None,
                            one_minus_b1: 0.1,
                            b2: 0.999,
                            one_minus_b2: 0.001,
                            bias2_sqrt: 0.0316,
                            eps: 1e-8,
                            step: -3e-3,
                        }
                        .run();
                        [
                            bits(pass.output()),
                            bits(net.features(&pass, &x)),
                            bits(&grads),
                            bits(&with_extra),
                            bits(&p),
                            bits(&v),
                        ]
                    })
                };
                let portable = run(Isa::Portable);
                for isa in isas() {
                    assert_eq!(run(isa), portable, "{isa:?} {widths:?} {activation:?} {rows} rows");
                }
            }
        }
    }
}

/// The passes against libtorch's autograd on the same network (within float rounding: the
/// order of sums differs), gradients included.
#[test]
fn passes_match_autograd() {
    use tch::{Kind, Tensor};
    let mut rng = StdRng::seed_from_u64(4);
    for (widths, activation) in
        [(vec![4, 64, 64, 2], Activation::Tanh), (vec![6, 33, 17, 3], Activation::Relu), (vec![3, 1], Activation::Tanh)]
    {
        let (net, params) = mlp(&widths, activation, &mut rng);
        let rows = 37;
        let x: Vec<f32> = (0..rows * widths[0]).map(|_| rng.random_range(-2.0f32..2.0)).collect();
        let g: Vec<f32> = (0..rows * net.outputs()).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let pass = net.forward(&params, &x, rows);
        let mut grads = vec![0.0; params.len()];
        net.backward(&params, &x, &pass, &g, None, &mut grads);

        let input = net.input_gradient(&params, &x, &pass, &g, None);
        let p = Tensor::from_slice(&params).set_requires_grad(true);
        let xt = Tensor::from_slice(&x).view([rows as i64, widths[0] as i64]).set_requires_grad(true);
        let mut h = xt.shallow_clone();
        for op in net.ops() {
            h = match *op {
                Op::Linear { weight, bias, inputs, outputs } => {
                    let w = p.narrow(0, weight as i64, (inputs * outputs) as i64).view([outputs as i64, inputs as i64]);
                    let b = p.narrow(0, bias as i64, outputs as i64);
                    h.linear(&w, Some(&b))
                }
                Op::Act(Activation::Tanh) => h.tanh(),
                Op::Act(Activation::Relu) => h.relu(),
                Op::Conv { .. } | Op::Flatten(_) | Op::Divide(_) | Op::MaxPool(_) | Op::Add { .. } => unreachable!("MLP tables (convolutions: conv/tests.rs)"),
            };
        }
        let gt = Tensor::from_slice(&g).view([rows as i64, net.outputs() as i64]);
        (&h * &gt).sum(Kind::Float).backward();
        let close = |a: &[f32], b: &[f32], what: &str| {
            let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1.0);
            let err = a.iter().zip(b).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err <= 2e-5 * scale, "{what} {widths:?}: max difference {err} (scale {scale})");
        };
        close(pass.output(), &Vec::<f32>::try_from(h.detach().view([-1])).unwrap(), "output");
        close(&grads, &Vec::<f32>::try_from(p.grad()).unwrap(), "gradients");
        close(&input, &Vec::<f32>::try_from(xt.grad().view([-1])).unwrap(), "input gradient");
    }
}

/// A linear layer computes each element as the one chain its documentation states, whether it
/// is computed directly (more rows than outputs) or transposed, from an input laid out by rows
/// or by columns.
#[test]
fn linear_layers_are_the_stated_chains_either_way() {
    let mut rng = StdRng::seed_from_u64(5);
    for (inputs, outputs) in [(4, 64), (64, 2), (17, 65), (3, 1)] {
        let w: Vec<f32> = (0..inputs * outputs).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let b: Vec<f32> = (0..outputs).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        for rows in [1usize, 2, 3, 7, 64, 65, 100] {
            let x: Vec<f32> = (0..rows * inputs).map(|_| rng.random_range(-2.0f32..2.0)).collect();
            let want: Vec<f32> = (0..rows * outputs)
                .map(|e| {
                    let (r, o) = (e / outputs, e % outputs);
                    (0..inputs).fold(b[o], |acc, k| x[r * inputs + k].mul_add(w[o * inputs + k], acc))
                })
                .collect();
            let mut scratch = Vec::new();
            let mut x_t = Vec::new();
            gemm::transpose(&x, rows, inputs, &mut x_t);
            for (data, by_rows) in [(&x, true), (&x_t, false)] {
                let got = linear(Input { data, by_rows }, rows, &w, &b, inputs, outputs, &mut scratch);
                let got = got.into_rows(rows, &mut Vec::new());
                assert_eq!(bits(&got), bits(&want), "{rows} rows, {inputs} -> {outputs}, by rows: {by_rows}");
            }
        }
    }
}

/// A table that does not chain, or reads past the parameters, is refused.
#[test]
fn tables_are_checked() {
    let linear = |weight, inputs, outputs| Op::Linear { weight, bias: weight + inputs * outputs, inputs, outputs };
    assert!(Net::new(vec![linear(0, 3, 2)], 3, 8).is_some());
    assert!(Net::new(vec![linear(0, 3, 2)], 3, 7).is_none(), "past the parameters");
    assert!(Net::new(vec![linear(0, 3, 2), linear(8, 3, 1)], 3, 12).is_none(), "does not chain");
}
