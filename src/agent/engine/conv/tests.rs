//! Convolutional tables: the stated chains, every instruction set, and libtorch's `conv2d`,
//! `max_pool2d` and residual sums.
use super::*;
use crate::agent::engine::net::{Net, Op};
use crate::agent::engine::testing::{bits, isas};
use crate::agent::engine::{Isa, force};
use crate::agent::nn::Activation;
use rand::{Rng, SeedableRng, rngs::StdRng};

/// Two convolutions (the second strided), the flattening, two linear layers: the table, its
/// geometry `(height, width, channels)` in, and random parameters.
fn table(image: (usize, usize, usize), rng: &mut StdRng) -> (Net, Vec<f32>) {
    let (h, w, c) = image;
    let first = Conv { height: h, width: w, in_channels: c, out_channels: 6, kernel: 3, stride: 1, pad: 0 };
    let (h1, w1) = first.out_size().unwrap();
    let second = Conv { height: h1, width: w1, in_channels: 6, out_channels: 5, kernel: 3, stride: 2, pad: 0 };
    let (h2, w2) = second.out_size().unwrap();
    let flat = h2 * w2 * 5;
    let mut offset = 0;
    let mut take = |n: usize| {
        offset += n;
        offset - n
    };
    let ops = vec![
        Op::Divide(3.0),
        Op::Conv { weight: take(first.patch() * 6), bias: take(6), conv: first },
        Op::Act(Activation::Relu),
        Op::Conv { weight: take(second.patch() * 5), bias: take(5), conv: second },
        Op::Act(Activation::Relu),
        Op::Flatten(Flatten { positions: h2 * w2, channels: 5 }),
        Op::Linear { weight: take(flat * 16), bias: take(16), inputs: flat, outputs: 16 },
        Op::Act(Activation::Relu),
        Op::Linear { weight: take(16 * 3), bias: take(3), inputs: 16, outputs: 3 },
    ];
    let len = take(0);
    let params = (0..len).map(|_| rng.random_range(-0.5f32..0.5)).collect();
    (Net::new(ops, h * w * c, len).expect("a chained table"), params)
}

/// The IMPALA network's parts: a padded convolution, max pooling (3x3, stride 2, padding 1), a
/// residual block `x + conv(relu(conv(relu(x))))`, a ReLU, the flattening and a linear head.
fn residual_table(image: (usize, usize, usize), rng: &mut StdRng) -> (Net, Vec<f32>) {
    let (h, w, c) = image;
    let first = Conv { height: h, width: w, in_channels: c, out_channels: 4, kernel: 3, stride: 1, pad: 1 };
    let pool = Pool { height: h, width: w, channels: 4, kernel: 3, stride: 2, pad: 1 };
    let (h1, w1) = pool.out_size().unwrap();
    let inner = Conv { height: h1, width: w1, in_channels: 4, out_channels: 4, kernel: 3, stride: 1, pad: 1 };
    let flat = h1 * w1 * 4;
    let mut offset = 0;
    let mut take = |n: usize| {
        offset += n;
        offset - n
    };
    let ops = vec![
        Op::Conv { weight: take(first.patch() * 4), bias: take(4), conv: first },
        Op::MaxPool(pool),
        Op::Act(Activation::Relu),
        Op::Conv { weight: take(inner.patch() * 4), bias: take(4), conv: inner },
        Op::Act(Activation::Relu),
        Op::Conv { weight: take(inner.patch() * 4), bias: take(4), conv: inner },
        Op::Add { from: 2 },
        Op::Act(Activation::Relu),
        Op::Flatten(Flatten { positions: h1 * w1, channels: 4 }),
        Op::Linear { weight: take(flat * 3), bias: take(3), inputs: flat, outputs: 3 },
    ];
    let len = take(0);
    let params = (0..len).map(|_| rng.random_range(-0.5f32..0.5)).collect();
    (Net::new(ops, h * w * c, len).expect("a chained table"), params)
}

#[test]
fn a_padded_convolution_reads_zeros_outside_and_pooling_takes_the_first_largest() {
    let conv = Conv { height: 2, width: 2, in_channels: 1, out_channels: 1, kernel: 3, stride: 1, pad: 1 };
    assert_eq!(conv.out_size(), Some((2, 2)));
    // A kernel of ones sums each pixel's neighbourhood inside the image.
    let out = conv.forward(&[1.0, 2.0, 3.0, 4.0], 1, &[1.0; 9], &[0.5], &mut Vec::new());
    assert_eq!(out, [10.5; 4]);
    let pool = Pool { height: 2, width: 3, channels: 2, kernel: 3, stride: 2, pad: 1 };
    assert_eq!(pool.out_size(), Some((1, 2)));
    // Channel 0's first window holds 5 twice, at (0, 1) and (1, 0): the first in row order, index
    // 2, takes its gradient; the second window's largest is the same 5 at (0, 1).
    let x = [0.0, -1.0, 5.0, -2.0, 1.0, -3.0, 5.0, -4.0, 2.0, -5.0, 3.0, -6.0];
    assert_eq!(pool.forward(&x, 1), [5.0, -1.0, 5.0, -2.0]);
    let dx = pool.backward(&x, 1, &[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(dx, [0.0, 2.0, 4.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    assert!(Pool { pad: 2, ..pool }.out_size().is_none(), "padding over half the window");
}

#[test]
fn a_convolution_is_the_stated_chain() {
    let mut rng = StdRng::seed_from_u64(6);
    let conv = Conv { height: 7, width: 6, in_channels: 3, out_channels: 5, kernel: 3, stride: 2, pad: 0 };
    let (oh, ow) = conv.out_size().unwrap();
    let w: Vec<f32> = (0..conv.patch() * 5).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let b: Vec<f32> = (0..5).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let rows = 3;
    let x: Vec<f32> = (0..rows * conv.inputs()).map(|_| rng.random_range(-2.0f32..2.0)).collect();
    let got = conv.forward(&x, rows, &w, &b, &mut Vec::new());
    let mut want = Vec::new();
    for r in 0..rows {
        for (oy, ox) in (0..oh).flat_map(|y| (0..ow).map(move |x| (y, x))) {
            for o in 0..5 {
                let mut acc = b[o];
                for (ch, ky, kx) in (0..3).flat_map(|c| (0..3).flat_map(move |ky| (0..3).map(move |kx| (c, ky, kx)))) {
                    let pixel = x[r * conv.inputs() + ((oy * 2 + ky) * 6 + ox * 2 + kx) * 3 + ch];
                    acc = pixel.mul_add(w[o * conv.patch() + ch * 9 + ky * 3 + kx], acc);
                }
                want.push(acc);
            }
        }
    }
    assert_eq!(bits(&got), bits(&want));
}

#[test]
fn convolutional_passes_agree_across_instruction_sets() {
    let mut rng = StdRng::seed_from_u64(7);
    for (image, residual) in [((10, 10, 4), false), ((9, 7, 1), false), ((12, 11, 3), false), ((9, 7, 2), true), ((8, 8, 3), true)] {
        let (net, params) = if residual { residual_table(image, &mut rng) } else { table(image, &mut rng) };
        for rows in [1usize, 2, 5, 32] {
            let x: Vec<f32> = (0..rows * image.0 * image.1 * image.2).map(|_| rng.random_range(0.0f32..1.0)).collect();
            let g: Vec<f32> = (0..rows * net.outputs()).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let run = |isa| {
                force(isa, || {
                    let pass = net.forward(&params, &x, rows);
                    let mut grads = vec![0.0; params.len()];
                    let input = net.input_gradient(&params, &x, &pass, &g, Some(&mut grads));
                    [bits(pass.output()), bits(&net.infer(&params, &x, rows)), bits(&grads), bits(&input)]
                })
            };
            let portable = run(Isa::Portable);
            assert_eq!(portable[0], portable[1], "infer is the forward pass's output");
            for isa in isas() {
                assert_eq!(run(isa), portable, "{isa:?} {image:?} {rows} rows");
            }
        }
    }
}

#[test]
fn convolutional_passes_match_libtorch() {
    use tch::{Kind, Tensor};
    let _alone = crate::agent::engine::testing::libtorch_alone();
    let mut rng = StdRng::seed_from_u64(8);
    for (image, residual) in [((10, 10, 4), false), ((9, 7, 2), true)] {
    let (net, params) = if residual { residual_table(image, &mut rng) } else { table(image, &mut rng) };
    let rows = 9;
    let (h_, w_, c_) = image;
    let x: Vec<f32> = (0..rows * h_ * w_ * c_).map(|_| rng.random_range(0.0f32..1.0)).collect();
    let g: Vec<f32> = (0..rows * net.outputs()).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let pass = net.forward(&params, &x, rows);
    let mut grads = vec![0.0; params.len()];
    let input = net.input_gradient(&params, &x, &pass, &g, Some(&mut grads));

    let p = Tensor::from_slice(&params).set_requires_grad(true);
    let xt = Tensor::from_slice(&x).view([rows as i64, h_ as i64, w_ as i64, c_ as i64]).set_requires_grad(true);
    let mut h = xt.permute([0, 3, 1, 2]);
    let slice = |at: usize, shape: &[i64]| p.narrow(0, at as i64, shape.iter().product()).view(shape);
    // The value before each op, for the residual sums.
    let mut before = Vec::new();
    for op in net.ops() {
        before.push(h.shallow_clone());
        h = match *op {
            Op::Conv { weight, bias, conv } => {
                let (o, c, k) = (conv.out_channels as i64, conv.in_channels as i64, conv.kernel as i64);
                let (s, pad) = (conv.stride as i64, conv.pad as i64);
                h.conv2d(&slice(weight, &[o, c, k, k]), Some(&slice(bias, &[o])), [s, s], [pad, pad], [1, 1], 1)
            }
            Op::MaxPool(pool) => {
                let (k, s, pad) = (pool.kernel as i64, pool.stride as i64, pool.pad as i64);
                h.max_pool2d([k, k], [s, s], [pad, pad], [1, 1], false)
            }
            Op::Add { from } => &h + &before[from],
            Op::Flatten(_) => h.flatten(1, -1),
            Op::Divide(d) => h / f64::from(d),
            Op::Linear { weight, bias, inputs, outputs } => {
                h.linear(&slice(weight, &[outputs as i64, inputs as i64]), Some(&slice(bias, &[outputs as i64])))
            }
            Op::Act(Activation::Relu) => h.relu(),
            Op::Act(Activation::Tanh) => h.tanh(),
        };
    }
    let gt = Tensor::from_slice(&g).view([rows as i64, net.outputs() as i64]);
    (&h * &gt).sum(Kind::Float).backward();
    let close = |a: &[f32], b: Vec<f32>, what: &str| {
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1.0);
        let err = a.iter().zip(&b).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err <= 2e-5 * scale, "{what}: max difference {err} (scale {scale})");
    };
    close(pass.output(), Vec::<f32>::try_from(h.detach().view([-1])).unwrap(), "output");
    close(&grads, Vec::<f32>::try_from(p.grad()).unwrap(), "gradients");
    close(&input, Vec::<f32>::try_from(xt.grad().view([-1])).unwrap(), "input gradient");
    }
}

#[test]
fn convolutional_tables_are_checked() {
    let conv = Conv { height: 5, width: 5, in_channels: 2, out_channels: 3, kernel: 3, stride: 1, pad: 0 };
    let op = |weight| Op::Conv { weight, bias: weight + 54, conv };
    assert!(Net::new(vec![op(0)], 50, 57).is_some());
    assert!(Net::new(vec![op(0)], 50, 56).is_none(), "past the parameters");
    assert!(Net::new(vec![op(0)], 49, 57).is_none(), "reads another width");
    let too_big = Conv { kernel: 6, ..conv };
    assert!(Net::new(vec![Op::Conv { weight: 0, bias: 72, conv: too_big }], 50, 100).is_none(), "kernel past the image");
    let flatten = Op::Flatten(Flatten { positions: 9, channels: 2 });
    assert!(Net::new(vec![op(0), flatten], 50, 57).is_none(), "flattens another width");
    let pool = Op::MaxPool(Pool { height: 3, width: 3, channels: 3, kernel: 3, stride: 2, pad: 1 });
    assert!(Net::new(vec![op(0), pool.clone()], 50, 57).is_some());
    assert!(Net::new(vec![pool.clone()], 50, 57).is_none(), "pools another width");
    let act = Op::Act(Activation::Relu);
    assert!(Net::new(vec![op(0), act.clone(), Op::Add { from: 1 }], 50, 57).is_some(), "adds the convolution's output");
    assert!(Net::new(vec![op(0), act.clone(), Op::Add { from: 0 }], 50, 57).is_none(), "adds another width");
    assert!(Net::new(vec![op(0), act, Op::Add { from: 2 }], 50, 57).is_none(), "adds itself");
    let linear = Op::Linear { weight: 0, bias: 0, inputs: 27, outputs: 27 };
    let flat = Op::Flatten(Flatten { positions: 9, channels: 3 });
    let table = vec![op(0), flat, linear, Op::Add { from: 2 }];
    assert!(Net::new(table, 50, 1000).is_none(), "a residual sum after a linear layer");
    assert!(Pool { height: 0, ..Pool { height: 3, width: 3, channels: 3, kernel: 2, stride: 2, pad: 1 } }.out_size().is_none());
}
