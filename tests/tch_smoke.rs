//! The libtorch toolchain works: a tiny network runs forward and backward, and an optimiser step
//! lowers its loss. (If this fails to link or load, run `make setup`; see the README.)

use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

#[test]
fn forward_backward_and_a_step_lower_the_loss() {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = nn::seq()
        .add(nn::linear(vs.root() / "l0", 3, 16, Default::default()))
        .add_fn(|x| x.tanh())
        .add(nn::linear(vs.root() / "l1", 16, 1, Default::default()));
    let x = Tensor::randn([64, 3], (Kind::Float, Device::Cpu));
    let y = x.sum_dim_intlist(1, true, Kind::Float);
    let mut opt = nn::Adam::default().build(&vs, 1e-2).unwrap();
    let loss = |net: &nn::Sequential| net.forward(&x).mse_loss(&y, tch::Reduction::Mean);
    let before = loss(&net).double_value(&[]);
    for _ in 0..50 {
        opt.backward_step(&loss(&net));
    }
    let after = loss(&net).double_value(&[]);
    assert!(after < before * 0.5, "loss {before} -> {after}");
    let names: Vec<String> = vs.variables().into_keys().collect();
    assert!(names.contains(&"l0.weight".to_string()), "{names:?}");
}
