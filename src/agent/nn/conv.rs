//! Convolutional encoders in front of a network's trunk, for image observations.
//!
//! A network with an encoder named `q` owns, before its trunk,
//!
//! | name | shape |
//! |---|---|
//! | `q.encoder.conv.{i}.weight` | `[channels[i], in, kernel, kernel]` (`in` is the image's channels for `i = 0`) |
//! | `q.encoder.conv.{i}.bias` | `[channels[i]]` |
//!
//! each convolution followed by a ReLU (the IMPALA network adds max pooling and residual blocks:
//! [`Encoder::Impala`]), the last image flattened in PyTorch's `(channel, row, column)` order
//! into `q.trunk.0`. Observations are images `(height, width, channels)`, as
//! MinAtar and Gymnasium give them; the agent reads that shape from the observation space. The
//! tensors are PyTorch's (and Stable-Baselines3's) as they are.

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, ConvConfig, Init};

use super::super::error::{AgentError, check};
use crate::agent::engine::conv::{Conv, Pool};

/// A convolutional encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Encoder {
    /// MinAtar's network (Young & Tian, 2019): one 3x3 convolution of 16 channels, stride 1
    /// (with `hidden: [128]`, their DQN's).
    MinAtar,
    /// The Nature DQN's convolutions (Mnih et al., 2015; Stable-Baselines3's `NatureCNN`):
    /// 32 of 8x8 stride 4, 64 of 4x4 stride 2, 64 of 3x3 stride 1 (its 512-wide linear layer is
    /// the trunk's first: `hidden: [512]`).
    Nature,
    /// The IMPALA network (Espeholt et al., 2018; Procgen's baseline, Cobbe et al., 2020), a
    /// stage per number of channels (`[16, 32, 32]` in the paper): a 3x3 convolution (padding 1),
    /// a 3x3 max pool of stride 2 (padding 1), and two residual blocks
    /// `x + conv(relu(conv(relu(x))))` of 3x3 convolutions (padding 1); a ReLU after the last
    /// stage (its 256-wide linear layer is the trunk's first: `hidden: [256]`). Its convolutions
    /// are numbered in that order: five a stage.
    Impala(Vec<usize>),
    /// Convolutions of one's own, in order.
    Convs(Vec<ConvLayer>),
}

/// One step of an encoder's pass over images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Convolution `i` (`{net}.encoder.conv.{i}`).
    Conv(usize, Conv),
    /// A ReLU.
    Relu,
    /// Max pooling.
    MaxPool(Pool),
    /// A residual block starts: the value here is kept.
    Save,
    /// The block ends: the value kept at its start is added.
    AddSaved,
}

/// One convolution of an encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvLayer {
    /// Output channels.
    pub channels: usize,
    /// The square kernel's side.
    pub kernel: usize,
    /// The step between windows (1 by default).
    #[serde(default = "one")]
    pub stride: usize,
}

fn one() -> usize {
    1
}

const fn layer(channels: usize, kernel: usize, stride: usize) -> ConvLayer {
    ConvLayer { channels, kernel, stride }
}

impl Encoder {
    /// The encoder's pass over an image `(height, width, channels)`, checked: every kernel fits
    /// the image it reads (a field error naming `net.encoder` otherwise).
    pub fn steps(&self, image: [usize; 3]) -> Result<Vec<Step>, AgentError> {
        let mut pass = Pass { image, now: image, steps: Vec::new(), convs: 0 };
        match self {
            Encoder::Impala(stages) => {
                check("net.encoder", !stages.is_empty(), "the IMPALA network needs at least one stage")?;
                check("net.encoder", stages.iter().all(|&c| c > 0), "every stage needs a positive number of channels")?;
                for &channels in stages {
                    pass.conv(layer(channels, 3, 1), 1)?;
                    let [height, width, channels] = pass.now;
                    let pool = Pool { height, width, channels, kernel: 3, stride: 2, pad: 1 };
                    let (h, w) = pool.out_size().expect("a 3x3 window padded by 1 fits any image");
                    pass.steps.push(Step::MaxPool(pool));
                    pass.now = [h, w, channels];
                    for _ in 0..2 {
                        pass.steps.extend([Step::Save, Step::Relu]);
                        pass.conv(layer(channels, 3, 1), 1)?;
                        pass.steps.push(Step::Relu);
                        pass.conv(layer(channels, 3, 1), 1)?;
                        pass.steps.push(Step::AddSaved);
                    }
                }
                pass.steps.push(Step::Relu);
            }
            Encoder::MinAtar | Encoder::Nature | Encoder::Convs(_) => {
                let layers = match self {
                    Encoder::MinAtar => vec![layer(16, 3, 1)],
                    Encoder::Nature => vec![layer(32, 8, 4), layer(64, 4, 2), layer(64, 3, 1)],
                    Encoder::Convs(layers) => layers.clone(),
                    Encoder::Impala(_) => unreachable!(),
                };
                check("net.encoder", !layers.is_empty(), "an encoder needs at least one convolution")?;
                for l in layers {
                    pass.conv(l, 0)?;
                    pass.steps.push(Step::Relu);
                }
            }
        }
        Ok(pass.steps)
    }

    /// Each convolution's geometry over an image, in order ([`Encoder::steps`]' convolutions).
    pub fn geometry(&self, image: [usize; 3]) -> Result<Vec<Conv>, AgentError> {
        Ok(self.steps(image)?.iter().filter_map(Step::conv).collect())
    }
}

impl Step {
    /// The convolution of a convolution's step.
    pub fn conv(&self) -> Option<Conv> {
        match self {
            Step::Conv(_, conv) => Some(*conv),
            _ => None,
        }
    }
}

/// An encoder's pass being laid out: the observation's image, the image now, the steps so far.
struct Pass {
    image: [usize; 3],
    now: [usize; 3],
    steps: Vec<Step>,
    convs: usize,
}

impl Pass {
    /// Adds the next convolution over the image now.
    fn conv(&mut self, l: ConvLayer, pad: usize) -> Result<(), AgentError> {
        let i = self.convs;
        check(
            "net.encoder",
            l.channels > 0 && l.kernel > 0 && l.stride > 0,
            &format!("convolution {i}: channels, kernel and stride must be positive"),
        )?;
        let [height, width, channels] = self.now;
        let conv = Conv { height, width, in_channels: channels, out_channels: l.channels, kernel: l.kernel, stride: l.stride, pad };
        let Some((h, w)) = conv.out_size() else {
            let [a, b, c] = self.image;
            return Err(AgentError::Config {
                field: "net.encoder",
                message: format!(
                    "convolution {i} ({k}x{k}) does not fit the {height}x{width} image it reads (the observation is {a}x{b}x{c})",
                    k = l.kernel
                ),
            });
        };
        self.steps.push(Step::Conv(i, conv));
        self.now = [h, w, l.channels];
        self.convs += 1;
        Ok(())
    }
}

/// The image shape `(height, width, channels)` of an observation space of that shape.
pub fn image_shape(shape: &[usize]) -> Option<[usize; 3]> {
    <[usize; 3]>::try_from(shape).ok()
}

/// The encoder's libtorch layers under `encoder / "conv" / i` (`encoder` is `{net}.encoder`,
/// or `{net}.encoder.{key}` for a dictionary observation's part): orthogonal weights of gain √2
/// and zero biases (Stable-Baselines3's PPO), or PyTorch's default (uniform in `±1/√fan_in`, as
/// its DQN).
pub(super) fn build(encoder: &nn::Path, convs: &[Conv], ortho: bool) -> Vec<(nn::Conv2D, Conv)> {
    let root = encoder / "conv";
    convs
        .iter()
        .enumerate()
        .map(|(i, conv)| {
            let bound = 1.0 / (conv.patch().max(1) as f64).sqrt();
            let uniform = Init::Uniform { lo: -bound, up: bound };
            let (ws_init, bs_init) = if ortho { (Init::Const(0.0), Init::Const(0.0)) } else { (uniform, uniform) };
            let config = ConvConfig { stride: conv.stride as i64, padding: conv.pad as i64, ws_init, bs_init, ..Default::default() };
            let (o, c, k) = (conv.out_channels as i64, conv.in_channels as i64, conv.kernel as i64);
            let layer = nn::conv2d(&root / i, c, o, k, config);
            if ortho {
                // Orthogonal over `[out, in·k·k]`, as torch.nn.init.orthogonal_ treats a kernel
                // (tch's own returns the matrix unshaped).
                let matrix = nn::init(Init::Orthogonal { gain: std::f64::consts::SQRT_2 }, &[o, c * k * k], root.device());
                tch::no_grad(|| layer.ws.shallow_clone().copy_(&matrix.view([o, c, k, k])));
            }
            (layer, *conv)
        })
        .collect()
}

/// The encoder's pass in libtorch over images laid out channels first.
pub(super) fn forward(layers: &[(nn::Conv2D, Conv)], steps: &[Step], image: Tensor) -> Tensor {
    use tch::nn::Module;
    let mut saved = Vec::new();
    steps.iter().fold(image, |h, step| match step {
        Step::Conv(i, _) => layers[*i].0.forward(&h),
        Step::Relu => h.relu(),
        Step::MaxPool(p) => {
            let (k, s, pad) = (p.kernel as i64, p.stride as i64, p.pad as i64);
            h.max_pool2d([k, k], [s, s], [pad, pad], [1, 1], false)
        }
        Step::Save => {
            saved.push(h.shallow_clone());
            h
        }
        Step::AddSaved => h + saved.pop().expect("a block's start"),
    })
}

#[cfg(test)]
mod tests {
    use tch::nn::{Module, VarStore};
    use tch::{Device, Tensor};

    use super::*;
    use crate::agent::nn::{Activation, Mlp, MlpConfig, with_seed};
    use crate::agent::optim::FlatParams;
    use crate::env::Space;

    /// The engine's table over the module's parameters computes the module (libtorch's conv2d
    /// over the image turned to channels first, flattened as PyTorch flattens), and the names and
    /// shapes are the ones the module documents.
    #[test]
    fn the_engine_runs_the_named_network() {
        let _alone = crate::agent::engine::testing::libtorch_alone();
        for (encoder, image, ortho) in [
            (Encoder::MinAtar, [10, 10, 4], false),
            (Encoder::Nature, [44, 36, 2], true),
            (Encoder::Convs(vec![layer(5, 2, 1), layer(3, 3, 2)]), [9, 8, 3], true),
            (Encoder::Impala(vec![4, 6]), [13, 10, 3], true),
            (Encoder::Impala(vec![16, 32, 32]), [16, 16, 3], false),
        ] {
            let space = Space::Box { low: vec![0.0; image.iter().product()], high: vec![1.0; image.iter().product()], shape: image.to_vec() };
            let config = MlpConfig { hidden: vec![32], activation: Activation::Relu, ortho_init: ortho, encoder: Some(encoder), ..Default::default() };
            let config = config.for_observation(&space, false).unwrap();
            let inputs: usize = image.iter().product();
            let vs = VarStore::new(Device::Cpu);
            let mlp = with_seed(3, || Mlp::new(&(vs.root() / "q"), &config, inputs, 5, 1.0));
            let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            let shape0 = vars.iter().find(|(n, _)| n == "q.encoder.conv.0.weight").map(|(_, t)| t.size()).unwrap();
            let first = config.convs().unwrap()[0];
            assert_eq!(shape0, [first.out_channels as i64, image[2] as i64, first.kernel as i64, first.kernel as i64]);
            let params = FlatParams::new(vars);
            let net = params.mlp("q", &config).expect("the encoder's parameters");
            let rows = 6;
            // Drawn here, not from libtorch's generator, which other tests seed under a lock.
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(image[0] as u64);
            let xs: Vec<f32> = (0..rows as usize * inputs).map(|_| rand::Rng::random_range(&mut rng, 0.0f32..1.0)).collect();
            let x = Tensor::from_slice(&xs).view([rows, inputs as i64]);
            let engine = net.infer(params.values(), &xs, rows as usize);
            let module: Vec<f32> = Vec::try_from(mlp.forward(&x).flatten(0, -1)).unwrap();
            for (a, b) in engine.iter().zip(&module) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "engine {a}, module {b}");
            }
        }
    }

    /// The IMPALA network's parameters: five convolutions a stage, the first reading the stage's
    /// input channels; its flattened image a quarter of the sides (twice halved, rounded up).
    #[test]
    fn the_impala_network_is_the_papers() {
        let convs = Encoder::Impala(vec![16, 32, 32]).geometry([64, 64, 3]).unwrap();
        assert_eq!(convs.len(), 15);
        let first_of_stages: Vec<(usize, usize)> = convs.iter().step_by(5).map(|c| (c.in_channels, c.out_channels)).collect();
        assert_eq!(first_of_stages, [(3, 16), (16, 32), (32, 32)]);
        assert!(convs.iter().all(|c| c.kernel == 3 && c.stride == 1 && c.pad == 1));
        let last = convs.last().unwrap();
        assert_eq!((last.out_size(), last.out_channels), (Some((8, 8)), 32), "64 -> 32 -> 16 -> 8");
        let steps = Encoder::Impala(vec![16]).steps([5, 5, 1]).unwrap();
        assert_eq!(steps.iter().filter(|s| matches!(s, Step::Save)).count(), 2);
        assert_eq!(steps.last(), Some(&Step::Relu));
        let e = Encoder::Impala(vec![]).steps([5, 5, 1]).unwrap_err().to_string();
        assert!(e.contains("net.encoder") && e.contains("stage"), "{e}");
    }

    #[test]
    fn encoders_that_do_not_fit_are_field_errors() {
        let image = |shape: Vec<usize>| {
            let n = shape.iter().product();
            Space::Box { low: vec![0.0; n], high: vec![1.0; n], shape }
        };
        let config = |encoder| MlpConfig { encoder: Some(encoder), ..Default::default() };
        let e = config(Encoder::Nature).for_observation(&image(vec![10, 10, 4]), false).unwrap_err().to_string();
        assert!(e.contains("net.encoder") && e.contains("convolution 1 (4x4)") && e.contains("1x1"), "{e}");
        let e = config(Encoder::MinAtar).for_observation(&image(vec![4]), false).unwrap_err().to_string();
        assert!(e.contains("net.encoder") && e.contains("[4]"), "{e}");
        let e = config(Encoder::Convs(vec![])).for_observation(&image(vec![5, 5, 1]), false).unwrap_err().to_string();
        assert!(e.contains("at least one"), "{e}");
        let e = config(Encoder::Convs(vec![layer(3, 2, 0)])).for_observation(&image(vec![5, 5, 1]), false).unwrap_err().to_string();
        assert!(e.contains("stride"), "{e}");
        assert!(MlpConfig::default().for_observation(&image(vec![4]), false).is_ok(), "no encoder, any observation");
    }
}
