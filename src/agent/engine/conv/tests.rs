//! Convolutional tables: the stated chains, every instruction set, and libtorch's `conv2d`.
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
    let first = Conv { height: h, width: w, in_channels: c, out_channels: 6, kernel: 3, stride: 1 };
    let (h1, w1) = first.out_size().unwrap();
    let second = Conv { height: h1, width: w1, in_channels: 6, out_channels: 5, kernel: 3, stride: 2 };
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

#[test]
fn a_convolution_is_the_stated_chain() {
    let mut rng = StdRng::seed_from_u64(6);
    let conv = Conv { height: 7, width: 6, in_channels: 3, out_channels: 5, kernel: 3, stride: 2 };
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
    for image in [(10, 10, 4), (9, 7, 1), (12, 11, 3)] {
        let (net, params) = table(image, &mut rng);
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
    let image = (10, 10, 4);
    let (net, params) = table(image, &mut rng);
    let rows = 9;
    let x: Vec<f32> = (0..rows * 400).map(|_| rng.random_range(0.0f32..1.0)).collect();
    let g: Vec<f32> = (0..rows * net.outputs()).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let pass = net.forward(&params, &x, rows);
    let mut grads = vec![0.0; params.len()];
    let input = net.input_gradient(&params, &x, &pass, &g, Some(&mut grads));

    let p = Tensor::from_slice(&params).set_requires_grad(true);
    let xt = Tensor::from_slice(&x).view([rows as i64, 10, 10, 4]).set_requires_grad(true);
    let mut h = xt.permute([0, 3, 1, 2]);
    let slice = |at: usize, shape: &[i64]| p.narrow(0, at as i64, shape.iter().product()).view(shape);
    for op in net.ops() {
        h = match *op {
            Op::Conv { weight, bias, conv } => {
                let (o, c, k) = (conv.out_channels as i64, conv.in_channels as i64, conv.kernel as i64);
                let s = conv.stride as i64;
                h.conv2d(&slice(weight, &[o, c, k, k]), Some(&slice(bias, &[o])), [s, s], [0, 0], [1, 1], 1)
            }
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

#[test]
fn convolutional_tables_are_checked() {
    let conv = Conv { height: 5, width: 5, in_channels: 2, out_channels: 3, kernel: 3, stride: 1 };
    let op = |weight| Op::Conv { weight, bias: weight + 54, conv };
    assert!(Net::new(vec![op(0)], 50, 57).is_some());
    assert!(Net::new(vec![op(0)], 50, 56).is_none(), "past the parameters");
    assert!(Net::new(vec![op(0)], 49, 57).is_none(), "reads another width");
    let too_big = Conv { kernel: 6, ..conv };
    assert!(Net::new(vec![Op::Conv { weight: 0, bias: 72, conv: too_big }], 50, 100).is_none(), "kernel past the image");
    let flatten = Op::Flatten(Flatten { positions: 9, channels: 2 });
    assert!(Net::new(vec![op(0), flatten], 50, 57).is_none(), "flattens another width");
}
