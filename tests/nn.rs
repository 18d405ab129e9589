//! Network parameters carry the documented names and shapes, start orthogonal with zero biases,
//! and the same seed builds the same network.

use headstart::agent::nn::{Activation, Mlp, MlpConfig, with_seed};
use tch::nn::{Module, VarStore};
use tch::{Device, Kind, Tensor};

fn shapes(vs: &VarStore) -> Vec<(String, Vec<i64>)> {
    let mut v: Vec<_> = vs.variables().into_iter().map(|(k, t)| (k, t.size())).collect();
    v.sort();
    v
}

#[test]
fn parameters_have_stable_dotted_names_and_shapes() {
    let vs = VarStore::new(Device::Cpu);
    let config = MlpConfig { hidden: vec![32, 16], activation: Activation::Tanh, ortho_init: true, ..Default::default() };
    // Every build in this file holds the generator's lock: tests run in parallel threads.
    with_seed(0, || {
        let _actor = Mlp::new(&(vs.root() / "actor"), &config, 4, 2, 0.01);
        let _critic = Mlp::new(&(vs.root() / "critic"), &config, 4, 1, 1.0);
    });
    let expected: Vec<(String, Vec<i64>)> = [
        ("actor.head.bias", vec![2]),
        ("actor.head.weight", vec![2, 16]),
        ("actor.trunk.0.bias", vec![32]),
        ("actor.trunk.0.weight", vec![32, 4]),
        ("actor.trunk.1.bias", vec![16]),
        ("actor.trunk.1.weight", vec![16, 32]),
        ("critic.head.bias", vec![1]),
        ("critic.head.weight", vec![1, 16]),
        ("critic.trunk.0.bias", vec![32]),
        ("critic.trunk.0.weight", vec![32, 4]),
        ("critic.trunk.1.bias", vec![16]),
        ("critic.trunk.1.weight", vec![16, 32]),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s))
    .collect();
    assert_eq!(shapes(&vs), expected);
}

#[test]
fn forward_maps_a_batch_and_initialisation_is_orthogonal() {
    let vs = VarStore::new(Device::Cpu);
    let config = MlpConfig { hidden: vec![64], activation: Activation::Relu, ortho_init: true, ..Default::default() };
    let net = with_seed(0, || Mlp::new(&(vs.root() / "q"), &config, 3, 5, 0.5));
    let x = Tensor::randn([7, 3], (Kind::Float, Device::Cpu));
    assert_eq!(net.forward(&x).size(), [7, 5]);
    assert_eq!(net.features(&x).size(), [7, 64]);
    let vars = vs.variables();
    // A [5, 64] head with gain 0.5: its rows are orthogonal with norm 0.5.
    let w = &vars["q.head.weight"];
    let gram = w.matmul(&w.tr());
    let target = Tensor::eye(5, (Kind::Float, Device::Cpu)) * 0.25;
    assert!((gram - target).abs().max().double_value(&[]) < 1e-5);
    // A [64, 3] trunk layer with gain √2: its columns are orthogonal with norm √2.
    let w = &vars["q.trunk.0.weight"];
    let gram = w.tr().matmul(w);
    let target = Tensor::eye(3, (Kind::Float, Device::Cpu)) * 2.0;
    assert!((gram - target).abs().max().double_value(&[]) < 1e-4);
    assert_eq!(vars["q.trunk.0.bias"].abs().sum(Kind::Float).double_value(&[]), 0.0);
}

#[test]
fn the_same_seed_builds_the_same_network() {
    let build = |seed| {
        let vs = VarStore::new(Device::Cpu);
        with_seed(seed, || Mlp::new(&(vs.root() / "actor"), &MlpConfig::default(), 4, 2, 0.01));
        vs.variables()["actor.trunk.1.weight"].copy()
    };
    assert!(build(3).equal(&build(3)));
    assert!(!build(3).equal(&build(4)));
}
