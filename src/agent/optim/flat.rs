//! [`FlatParams`]: parameters whose data are views of one flat buffer, and the engine's tables of
//! the networks laid out in it.

use tch::{Kind, Tensor};

use super::super::engine::front::{Front, Part};
use super::super::engine::{Net, conv::Flatten, math, net::Op};
use super::super::nn::conv::Step;
use super::super::nn::{Activation, Layout, MlpConfig};
use super::{floats, floats_mut};

/// Where one parameter lives in the flat buffers.
pub(super) struct Slot {
    pub(super) name: String,
    pub(super) param: Tensor,
    pub(super) offset: i64,
    pub(super) numel: i64,
    pub(super) shape: Vec<i64>,
}

/// Parameters whose data are views of one flat buffer, in a chosen order: what [`Optimizer`] steps
/// over, and what a target network is laid out as so that its Polyak update is one operation.
pub(crate) struct FlatParams {
    pub(super) slots: Vec<Slot>,
    pub(super) flat: Tensor,
}

impl FlatParams {
    /// Moves the data of `params` (name, tensor), in the given order, into one flat buffer
    /// (values unchanged; other handles to the same tensors see it).
    pub(crate) fn new(params: Vec<(String, Tensor)>) -> Self {
        let total: i64 = params.iter().map(|(_, p)| p.numel() as i64).sum();
        let flat = Tensor::zeros([total], (Kind::Float, tch::Device::Cpu));
        let mut slots = Vec::with_capacity(params.len());
        let mut offset = 0;
        tch::no_grad(|| {
            for (name, mut param) in params {
                let numel = param.numel() as i64;
                let shape = param.size();
                let view = flat.narrow(0, offset, numel).view(shape.as_slice());
                let mut dst = view.shallow_clone();
                dst.copy_(&param);
                param.set_data(&view);
                slots.push(Slot { name, param, offset, numel, shape });
                offset += numel;
            }
        });
        FlatParams { slots, flat }
    }

    /// The values of the flat buffer, in slot order (what the engine's networks read).
    pub(crate) fn values(&self) -> &[f32] {
        // SAFETY: `flat` is this value's own contiguous float buffer; the parameters' tensors
        // are views of it and are written only through `&mut` of their owner (an optimiser step,
        // a Polyak update, a load), never while this borrow lives.
        unsafe { floats(&self.flat) }
    }

    /// The values of the flat buffer, to write.
    pub(crate) fn values_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `values`; `&mut self` excludes every other borrow of the buffer.
        unsafe { floats_mut(&self.flat) }
    }

    /// Where the parameter `name` lives in the flat buffer: its offset and its shape.
    pub(crate) fn slot(&self, name: &str) -> Option<(usize, &[i64])> {
        self.slots.iter().find(|s| s.name == name).map(|s| (s.offset as usize, s.shape.as_slice()))
    }

    /// The engine's network of the MLP that [`Mlp`](super::nn::Mlp) lays out under `name` with
    /// `config` (a chain of layers, or a graph where layers were added): `None` when a layer is
    /// missing or the layers do not fit together.
    pub(crate) fn mlp(&self, name: &str, config: &MlpConfig) -> Option<Net> {
        self.chain(name, config, true)
    }

    /// The engine's network of the torso that [`Mlp::torso`](super::nn::Mlp::torso) lays out
    /// under `name` with `config`: the encoder and the hidden layers, each followed by its
    /// activation.
    pub(crate) fn torso(&self, name: &str, config: &MlpConfig) -> Option<Net> {
        if !config.added.is_empty() {
            return None;
        }
        self.chain(name, config, false)
    }

    /// [`FlatParams::mlp`], or without `head` [`FlatParams::torso`].
    fn chain(&self, name: &str, config: &MlpConfig, head: bool) -> Option<Net> {
        if config.added.is_empty() {
            let depth = config.hidden.len();
            let divisor = config.input_divisor;
            let steps = config.encoder_steps()?;
            let (mut ops, image_inputs) = self.encoder_ops(&format!("{name}.encoder"), steps, divisor)?;
            let layers = (0..depth).map(|i| format!("{name}.trunk.{i}")).chain(head.then(|| format!("{name}.head")));
            for (i, layer) in layers.enumerate() {
                if i > 0 {
                    ops.push(Op::Act(config.activation));
                }
                ops.push(self.linear_op(&layer)?);
            }
            if !head && depth > 0 {
                ops.push(Op::Act(config.activation));
            }
            if !config.parts.is_empty() {
                return Net::with_front(self.parts_front(name, config)?, ops, self.flat.numel());
            }
            let inputs = match (image_inputs, ops.first()?) {
                (Some(inputs), _) => inputs,
                (None, Op::Linear { inputs, .. }) => *inputs,
                _ => return None,
            };
            return Net::new(ops, inputs, self.flat.numel());
        }
        // Added layers run as a graph over what the encoder (or the parts) gives.
        let front = match config.encoder_steps()? {
            _ if config.encoder.is_none() => None,
            _ if !config.parts.is_empty() => Some(self.parts_front(name, config)?),
            steps => {
                let (ops, inputs) = self.encoder_ops(&format!("{name}.encoder"), steps, config.input_divisor)?;
                let (encoder, width) = (Net::new(ops, inputs?, self.flat.numel())?, inputs?);
                Some(Front::new(vec![Part { offset: 0, width, encoder: Some(encoder) }], width)?)
            }
        };
        Net::from_graph(Layout::graph_of(name, config, |n| self.slot(n), self.flat.numel())?, front)
    }

    /// A dictionary observation's parts under `name`: each image part through its own encoder
    /// (`{name}.encoder.{key}`), the others as they are.
    fn parts_front(&self, name: &str, config: &MlpConfig) -> Option<Front> {
        let (mut parts, mut offset) = (Vec::new(), 0);
        for (part, steps) in config.part_steps()? {
            let encoder = match steps {
                Some(steps) => {
                    let prefix = format!("{name}.encoder.{}", part.key);
                    let (ops, inputs) = self.encoder_ops(&prefix, steps, config.input_divisor)?;
                    Some(Net::new(ops, inputs?, self.flat.numel())?)
                }
                None => None,
            };
            parts.push(Part { offset, width: part.width, encoder });
            offset += part.width;
        }
        Front::new(parts, offset)
    }

    /// The ops of an encoder's pass over an image, its layers named `{prefix}.conv.{i}`: the
    /// inputs' division, the convolutions with their ReLUs, pooling and residual blocks, the last
    /// image flattened; with the width of the image it reads (`None` without a convolution).
    /// `None` when a layer is missing or of another shape.
    fn encoder_ops(&self, prefix: &str, steps: Vec<Step>, divisor: Option<f32>) -> Option<(Vec<Op>, Option<usize>)> {
        let mut ops = Vec::new();
        let convs: Vec<_> = steps.iter().filter_map(Step::conv).collect();
        if let Some(d) = divisor.filter(|_| !convs.is_empty()) {
            ops.push(Op::Divide(d));
        }
        let mut blocks = Vec::new();
        for step in steps {
            match step {
                Step::Conv(i, conv) => {
                    let layer = format!("{prefix}.conv.{i}");
                    let (weight, shape) = self.slot(&format!("{layer}.weight"))?;
                    let (bias, bias_shape) = self.slot(&format!("{layer}.bias"))?;
                    let (o, c, k) = (conv.out_channels as i64, conv.in_channels as i64, conv.kernel as i64);
                    if *shape != [o, c, k, k] || *bias_shape != [o] {
                        return None;
                    }
                    ops.push(Op::Conv { weight, bias, conv });
                }
                Step::Relu => ops.push(Op::Act(Activation::Relu)),
                Step::MaxPool(pool) => ops.push(Op::MaxPool(pool)),
                Step::Save => blocks.push(ops.len()),
                Step::AddSaved => ops.push(Op::Add { from: blocks.pop()? }),
            }
        }
        if let Some(last) = convs.last() {
            let (h, w) = last.out_size()?;
            ops.push(Op::Flatten(Flatten { positions: h * w, channels: last.out_channels }));
        }
        Some((ops, convs.first().map(|c| c.inputs())))
    }

    /// The engine's table of the one linear layer `{name}.weight`, `{name}.bias`.
    pub(crate) fn linear(&self, name: &str) -> Option<Net> {
        let op = self.linear_op(name)?;
        let Op::Linear { inputs, .. } = op else { return None };
        Net::new(vec![op], inputs, self.flat.numel())
    }

    /// The linear layer `{name}.weight` (`[outputs, inputs]`), `{name}.bias`.
    fn linear_op(&self, name: &str) -> Option<Op> {
        let (weight, shape) = self.slot(&format!("{name}.weight"))?;
        let (bias, bias_shape) = self.slot(&format!("{name}.bias"))?;
        let [outputs, inputs] = *shape else { return None };
        (bias_shape == [outputs]).then_some(Op::Linear {
            weight,
            bias,
            inputs: inputs as usize,
            outputs: outputs as usize,
        })
    }

    /// Moves every parameter a fraction `tau` of the way to the same parameter of `source`, laid
    /// out the same (a Polyak update of target networks; a copy at `tau = 1`).
    pub(crate) fn lerp_towards(&mut self, source: &FlatParams, tau: f64) {
        let (src, dst) = (source.values(), self.values_mut());
        assert_eq!(src.len(), dst.len(), "target and online networks laid out alike");
        if tau >= 1.0 {
            dst.copy_from_slice(src);
        } else {
            math::lerp_(dst, src, tau as f32);
        }
    }
}
