//! Networks with every kind of added layer: the engine's graph against libtorch's autograd on
//! the same module, across instruction sets, and starting as the network it augments.
use std::collections::BTreeMap;

use tch::nn::{Module, VarStore};
use tch::{Device, Kind, Tensor};

use super::*;
use crate::agent::engine::testing::{bits, isas};
use crate::agent::engine::{Isa, Net, force};
use crate::agent::nn::{Mlp, with_seed};
use crate::agent::optim::FlatParams;

/// Every addition at once on a `5 -> [8, 6] -> 4` network named `actor`.
fn everything(activation: Activation) -> MlpConfig {
    let added = Added {
        nets: Vec::new(),
        input: BTreeMap::from([("actor".to_string(), 3)]),
        input_hidden: Some(4),
        output: BTreeMap::from([("actor".to_string(), 2)]),
        adapters: vec![Adapter { after: 0, width: 3 }, Adapter { after: 1, width: 2 }],
        depth: vec![1],
        lora: Some(Lora { layers: vec!["trunk.0".into(), "trunk.1".into(), "head".into()], rank: 2, alpha: 3.0, merge: false }),
        widen: vec![Widen { layer: 0, units: 3 }, Widen { layer: 1, units: 2 }],
        progressive: true,
    };
    MlpConfig { hidden: vec![8, 6], activation, ortho_init: true, added, ..Default::default() }
}

/// The module, its parameters moved into a flat buffer, and the engine's network over them.
fn build(config: &MlpConfig, inputs: usize, outputs: usize, seed: u64) -> (VarStore, Mlp, FlatParams, Net) {
    let vs = VarStore::new(Device::Cpu);
    let mlp = with_seed(seed, || Mlp::new(&(vs.root() / "actor"), config, inputs, outputs, 1.0));
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let params = FlatParams::new(vars);
    let net = params.mlp("actor", config).expect("the layout's parameters");
    (vs, mlp, params, net)
}

fn rows_of(v: &[f32], cols: usize) -> Tensor {
    Tensor::from_slice(v).view([(v.len() / cols) as i64, cols as i64])
}

fn close(a: &[f32], b: &Tensor, what: &str) {
    let b: Vec<f32> = Vec::try_from(b.flatten(0, -1).to_kind(Kind::Float)).unwrap();
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{what}[{i}]: engine {x}, autograd {y}");
    }
}

/// Every addition that works after a convolutional encoder (all but an input layer and a
/// progressive column) on a `5x5x2 image -> MinAtar's convolution -> [8, 6] -> 4` network.
fn after_an_encoder(activation: Activation) -> MlpConfig {
    let mut config = everything(activation);
    config.added.input.clear();
    config.added.input_hidden = None;
    config.added.progressive = false;
    MlpConfig { encoder: Some(crate::agent::nn::Encoder::MinAtar), image: Some([5, 5, 2]), ..config }
}

/// The same behind a dictionary observation's parts: a discrete part (3 values one-hot) before a
/// `5x5x2` image read by MinAtar's convolution, its inputs divided by 4: `3 + 50` inputs.
fn after_dictionary_parts(activation: Activation) -> MlpConfig {
    use crate::env::Space;
    let image = Space::Box { low: vec![0.0; 50], high: vec![255.0; 50], shape: vec![5, 5, 2] };
    let space = Space::Dict { spaces: vec![("a".into(), Space::Discrete { n: 3 }), ("image".into(), image)] };
    let config = MlpConfig { image: None, input_divisor: Some(4.0), ..after_an_encoder(activation) };
    config.for_observation(&space, false).expect("an image part the encoder reads")
}

/// With every added parameter moved off its starting value, the engine's forward pass, its
/// parameter gradients (with a second head's gradient on the features) and its input gradient
/// equal autograd's through the module (within rounding), and every instruction set computes
/// the same bits.
#[test]
fn graphs_match_autograd_across_instruction_sets() {
    for activation in [Activation::Tanh, Activation::Relu] {
        match_autograd(&everything(activation), 5);
    }
}

/// The same with a convolutional encoder before the added layers: the engine runs the encoder
/// as the graph's front, and its gradients (the encoder's and the image's) equal autograd's.
#[test]
fn graphs_after_an_encoder_match_autograd() {
    for activation in [Activation::Tanh, Activation::Relu] {
        match_autograd(&after_an_encoder(activation), 50);
        match_autograd(&after_dictionary_parts(activation), 53);
    }
}

fn match_autograd(config: &MlpConfig, inputs: usize) {
    let (vs, mlp, mut params, net) = build(config, inputs, 4, 1);
    let n = params.values().len();
    let noise: Vec<f32> = (0..n).map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.6).collect();
    params.values_mut().iter_mut().zip(&noise).for_each(|(p, e)| *p += e);
    let rows = 7;
    let x: Vec<f32> = (0..rows * inputs).map(|i| ((i * 37 % 23) as f32 / 23.0 - 0.5) * 3.0).collect();
    let g: Vec<f32> = (0..rows * 4).map(|i| ((i * 13 % 11) as f32 / 11.0) - 0.5).collect();
    let extra: Vec<f32> = (0..rows * net.features_width()).map(|i| ((i * 5 % 7) as f32 / 7.0) - 0.5).collect();
    let run = || {
        let pass = net.forward(params.values(), &x, rows);
        let mut grads = vec![0.0; n];
        net.backward(params.values(), &x, &pass, &g, Some(&extra), &mut grads);
        let dx = net.input_gradient(params.values(), &x, &pass, &g, None);
        (pass.output().to_vec(), net.features(&pass, &x).to_vec(), grads, dx)
    };
    let (out, features, grads, dx) = run();
    let portable = force(Isa::Portable, || {
        let (a, b, c, d) = run();
        [bits(&a), bits(&b), bits(&c), bits(&d)]
    });
    for isa in isas() {
        let (a, b, c, d) = force(isa, run);
        assert_eq!([bits(&a), bits(&b), bits(&c), bits(&d)], portable, "{isa:?} {:?}", config.activation);
    }

    let xt = rows_of(&x, inputs).set_requires_grad(true);
    let y = mlp.forward(&xt);
    close(&out, &y, "output");
    let f = mlp.features(&xt);
    close(&features, &f, "features");
    let loss = (&y * rows_of(&g, 4)).sum(Kind::Float) + (&f * rows_of(&extra, net.features_width())).sum(Kind::Float);
    loss.backward();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in &vars {
        let (offset, _) = params.slot(name).unwrap();
        let ours = &grads[offset..offset + t.numel()];
        if name.contains(".column.") {
            assert!(ours.iter().all(|&v| v == 0.0), "{name}: the frozen column gets no gradient");
        } else {
            close(ours, &t.grad(), name);
        }
    }
    // The input's gradient of the output's loss alone.
    let xt = rows_of(&x, inputs).set_requires_grad(true);
    (mlp.forward(&xt) * rows_of(&g, 4)).sum(Kind::Float).backward();
    close(&dx, &xt.grad(), "input gradient");
}

/// Where the spaces match, the augmented network starts as the network it augments, bit for
/// bit: the base layers are drawn first from the same seed, and every addition's last factor is
/// zero (or the identity); the column copies the base (as transfer does).
#[test]
fn an_augmented_network_starts_as_its_base() {
    for activation in [Activation::Tanh, Activation::Relu] {
        let mut config = everything(activation);
        config.added.input = BTreeMap::from([("actor".to_string(), 5)]);
        config.added.output = BTreeMap::from([("actor".to_string(), 4)]);
        let plain = MlpConfig { added: Added::default(), ..config.clone() };
        let (_, _, base, base_net) = build(&plain, 5, 4, 9);
        let (_, _, mut params, net) = build(&config, 5, 4, 9);
        for i in 0..2 {
            for part in ["weight", "bias"] {
                let (from, shape) = base.slot(&format!("actor.trunk.{i}.{part}")).unwrap();
                let len = shape.iter().product::<i64>() as usize;
                let (to, _) = params.slot(&format!("actor.column.trunk.{i}.{part}")).unwrap();
                let value = base.values()[from..from + len].to_vec();
                params.values_mut()[to..to + len].copy_from_slice(&value);
            }
        }
        for name in ["actor.trunk.0.weight", "actor.trunk.1.bias", "actor.head.weight"] {
            let (a, shape) = base.slot(name).unwrap();
            let (b, _) = params.slot(name).unwrap();
            let len = shape.iter().product::<i64>() as usize;
            assert_eq!(bits(&base.values()[a..a + len]), bits(&params.values()[b..b + len]), "{name}");
        }
        let x: Vec<f32> = (0..9 * 5).map(|i| ((i * 31 % 17) as f32 / 17.0 - 0.5) * 4.0).collect();
        assert_eq!(bits(&net.infer(params.values(), &x, 9)), bits(&base_net.infer(base.values(), &x, 9)), "{activation:?}");
    }
}

/// After an encoder too (or a dictionary's parts), the augmented network starts as the network it
/// augments, bit for bit: the encoders and the base layers draw the same weights, and the
/// engine's graph behind the front computes what its chain computes.
#[test]
fn an_augmented_network_after_an_encoder_starts_as_its_base() {
    for (mut config, inputs, conv) in [
        (after_an_encoder(Activation::Relu), 50, "actor.encoder.conv.0.weight"),
        (after_dictionary_parts(Activation::Tanh), 53, "actor.encoder.image.conv.0.weight"),
    ] {
        config.added.output = BTreeMap::from([("actor".to_string(), 4)]);
        let plain = MlpConfig { added: Added::default(), ..config.clone() };
        let (_, _, base, base_net) = build(&plain, inputs, 4, 9);
        let (_, _, params, net) = build(&config, inputs, 4, 9);
        for name in [conv, "actor.trunk.0.weight", "actor.head.bias"] {
            let (a, shape) = base.slot(name).unwrap();
            let (b, _) = params.slot(name).unwrap();
            let len = shape.iter().product::<i64>() as usize;
            assert_eq!(bits(&base.values()[a..a + len]), bits(&params.values()[b..b + len]), "{name}");
        }
        let x: Vec<f32> = (0..9 * inputs).map(|i| ((i * 31 % 17) as f32 / 17.0 - 0.5) * 4.0).collect();
        assert_eq!(bits(&net.infer(params.values(), &x, 9)), bits(&base_net.infer(base.values(), &x, 9)), "{conv}");
    }
}
