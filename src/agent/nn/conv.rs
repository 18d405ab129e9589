//! Convolutional encoders in front of a network's trunk, for image observations.
//!
//! A network with an encoder named `q` owns, before its trunk,
//!
//! | name | shape |
//! |---|---|
//! | `q.encoder.conv.{i}.weight` | `[channels[i], in, kernel, kernel]` (`in` is the image's channels for `i = 0`) |
//! | `q.encoder.conv.{i}.bias` | `[channels[i]]` |
//!
//! each convolution followed by a ReLU, the last image flattened in PyTorch's `(channel, row,
//! column)` order into `q.trunk.0`. Observations are images `(height, width, channels)`, as
//! MinAtar and Gymnasium give them; the agent reads that shape from the observation space. The
//! tensors are PyTorch's (and Stable-Baselines3's) as they are.

use serde::{Deserialize, Serialize};
use tch::nn::{self, ConvConfig, Init};

use super::super::error::{AgentError, check};
use crate::agent::engine::conv::Conv;

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
    /// Convolutions of one's own, in order.
    Convs(Vec<ConvLayer>),
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
    /// The convolutions, in order.
    pub fn layers(&self) -> Vec<ConvLayer> {
        match self {
            Encoder::MinAtar => vec![layer(16, 3, 1)],
            Encoder::Nature => vec![layer(32, 8, 4), layer(64, 4, 2), layer(64, 3, 1)],
            Encoder::Convs(layers) => layers.clone(),
        }
    }

    /// Each convolution's geometry over an image `(height, width, channels)`, checked: every
    /// kernel fits the image it reads (a field error naming `net.encoder` otherwise).
    pub fn geometry(&self, image: [usize; 3]) -> Result<Vec<Conv>, AgentError> {
        let layers = self.layers();
        check("net.encoder", !layers.is_empty(), "an encoder needs at least one convolution")?;
        let [mut height, mut width, mut channels] = image;
        let mut convs = Vec::with_capacity(layers.len());
        for (i, l) in layers.iter().enumerate() {
            check(
                "net.encoder",
                l.channels > 0 && l.kernel > 0 && l.stride > 0,
                &format!("convolution {i}: channels, kernel and stride must be positive"),
            )?;
            let conv = Conv { height, width, in_channels: channels, out_channels: l.channels, kernel: l.kernel, stride: l.stride };
            let Some((h, w)) = conv.out_size() else {
                return Err(AgentError::Config {
                    field: "net.encoder",
                    message: format!(
                        "convolution {i} ({k}x{k}) does not fit the {height}x{width} image it reads (the observation is {}x{}x{})",
                        image[0],
                        image[1],
                        image[2],
                        k = l.kernel
                    ),
                });
            };
            convs.push(conv);
            (height, width, channels) = (h, w, l.channels);
        }
        Ok(convs)
    }
}

/// The image shape `(height, width, channels)` of an observation space of that shape.
pub fn image_shape(shape: &[usize]) -> Option<[usize; 3]> {
    <[usize; 3]>::try_from(shape).ok()
}

/// The encoder's libtorch layers under `path / "encoder" / "conv" / i`: orthogonal weights of
/// gain √2 and zero biases (Stable-Baselines3's PPO), or PyTorch's default (uniform in
/// `±1/√fan_in`, as its DQN).
pub(super) fn build(path: &nn::Path, convs: &[Conv], ortho: bool) -> Vec<(nn::Conv2D, Conv)> {
    let root = path / "encoder" / "conv";
    convs
        .iter()
        .enumerate()
        .map(|(i, conv)| {
            let bound = 1.0 / (conv.patch().max(1) as f64).sqrt();
            let uniform = Init::Uniform { lo: -bound, up: bound };
            let (ws_init, bs_init) = if ortho { (Init::Const(0.0), Init::Const(0.0)) } else { (uniform, uniform) };
            let config = ConvConfig { stride: conv.stride as i64, ws_init, bs_init, ..Default::default() };
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
