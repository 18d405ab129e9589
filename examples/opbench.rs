use headstart::nn::{Mlp, MlpConfig};
use std::time::Instant;
use tch::nn::Module;
use tch::{Kind, Tensor, nn};
fn bench(name: &str, n: usize, mut f: impl FnMut()) {
    for _ in 0..50 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    println!("{name:40} {:8.1} us", t.elapsed().as_secs_f64() * 1e6 / n as f64);
}
unsafe extern "C" {
    fn vmlSetMode(mode: u32) -> u32;
}
fn main() {
    tch::set_num_threads(1);
    let hh = Tensor::randn([256, 64], (Kind::Float, tch::Device::Cpu));
    let ref_t = hh.to_kind(Kind::Double).tanh();
    for (name, mode) in [("HA", 2u32), ("LA", 1), ("EP", 3)] {
        unsafe {
            vmlSetMode(mode);
        }
        bench(&format!("tanh {name}"), 5000, || {
            let _ = hh.tanh();
        });
        let err = (hh.tanh().to_kind(Kind::Double) - &ref_t).abs().max().double_value(&[]);
        println!("   max abs err {err:e}");
        bench(&format!("sigmoid {name}"), 5000, || {
            let _ = hh.sigmoid();
        });
    }
    unsafe {
        vmlSetMode(1);
    }
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let cfg = MlpConfig::default();
    let actor = Mlp::new(&(vs.root() / "actor"), &cfg, 4, 2, 0.01);
    let critic = Mlp::new(&(vs.root() / "critic"), &cfg, 4, 1, 1.0);
    let x = Tensor::randn([256, 4], (Kind::Float, tch::Device::Cpu));
    let h = Tensor::randn([256, 64], (Kind::Float, tch::Device::Cpu));
    let w = Tensor::randn([64, 64], (Kind::Float, tch::Device::Cpu));
    bench("actor fwd no_grad", 2000, || {
        tch::no_grad(|| {
            let _ = actor.forward(&x);
        });
    });
    bench("actor fwd grad", 2000, || {
        let _ = actor.forward(&x);
    });
    bench("actor fwd+bwd", 2000, || {
        actor.forward(&x).sum(Kind::Float).backward();
    });
    bench("actor+critic fwd+bwd", 2000, || {
        (actor.forward(&x).sum(Kind::Float) + critic.forward(&x).sum(Kind::Float)).backward();
    });
    bench("tanh 256x64", 5000, || {
        let _ = h.tanh();
    });
    bench("mm 256x64 @ 64x64", 5000, || {
        let _ = h.mm(&w);
    });
    bench("mm 64x256 @ 256x64 (grad W)", 5000, || {
        let _ = h.tr().mm(&h);
    });
    bench("mm 256x64 @ 64x64^T", 5000, || {
        let _ = h.mm(&w.tr());
    });
    bench("sum dim0 256x64", 5000, || {
        let _ = h.sum_dim_intlist(0, false, Kind::Float);
    });
    let h2 = Tensor::randn([256, 2], (Kind::Float, tch::Device::Cpu));
    let w2 = Tensor::randn([2, 64], (Kind::Float, tch::Device::Cpu));
    bench("mm 256x2 @ 2x64 (head grad in)", 5000, || {
        let _ = h2.mm(&w2);
    });
    bench("mm 2x256 @ 256x64 (head grad W)", 5000, || {
        let _ = h2.tr().mm(&h);
    });
    let x4 = Tensor::randn([256, 4], (Kind::Float, tch::Device::Cpu));
    bench("mm 64x256 @ 256x4 (L0 grad W)", 5000, || {
        let _ = h.tr().mm(&x4);
    });
    let hg = h.set_requires_grad(true);
    bench("tanh fwd+bwd", 2000, || {
        hg.tanh().sum(Kind::Float).backward();
    });
    let wg = w.set_requires_grad(true);
    bench("mm fwd+bwd (w grad only)", 2000, || {
        h.mm(&wg).sum(Kind::Float).backward();
    });
    let y = h.tanh();
    bench("tanh_backward", 5000, || {
        let _ = Tensor::tanh_backward(&h, &y);
    });
}
