//! Multi-layer perceptrons whose parameters carry stable dotted names: the contract that
//! checkpoints and transfer rely on.
//!
//! An [`Mlp`] built under the path `actor` owns
//!
//! | name | shape |
//! |---|---|
//! | `actor.trunk.{i}.weight` | `[hidden[i], in]` (`in` is the input size for `i = 0`, else `hidden[i-1]`) |
//! | `actor.trunk.{i}.bias` | `[hidden[i]]` |
//! | `actor.head.weight` | `[out, hidden[last]]` |
//! | `actor.head.bias` | `[out]` |
//!
//! "Transfer the trunk" is then "copy every tensor under `actor.trunk.`", and a target whose
//! observation has a different size differs only in `actor.trunk.0.weight`.
//!
//! With `ortho_init` (the default) weights start orthogonal (gain √2 in the trunk, a per-head gain
//! chosen by the agent: 0.01 for a policy head, 1 for a value head) and biases at zero, as
//! Stable-Baselines3's PPO and CleanRL do; without it, PyTorch's default uniform initialisation,
//! as Stable-Baselines3's DQN and SAC use.

mod added;
mod config;
pub mod conv;

use std::collections::HashMap;

use tch::Tensor;
use tch::nn::{self, Init, LinearConfig, Module};

pub use added::{Adapter, Added, Lora, Widen, is_added, is_column};
pub use config::{Activation, MAX_PARAMETERS, MlpConfig, ObsPart};
pub use conv::{ConvLayer, Encoder};
pub(crate) use added::{Init as LayerInit, Layout, Node as LayoutNode, net_name};

/// Runs `f` with libtorch's global generator seeded with `seed`, holding a lock, so that
/// networks built in parallel threads (or tests) under `with_seed` draw their initial weights
/// independently of each other's timing. Every network headstart builds goes through it; code
/// that draws from libtorch's generator outside it can still interleave.
pub fn with_seed<T>(seed: u64, f: impl FnOnce() -> T) -> T {
    keep_freed_memory();
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed as i64);
    f()
}

/// Tells glibc's allocator to keep freed memory for reuse, once per process. libtorch allocates
/// every operation's output afresh; with glibc's defaults, blocks from 128 KiB up (a 256-wide
/// layer's activations for a batch of 256 are 256 KiB) are mapped and unmapped around each
/// operation and the heap's top is returned to the system, so each gradient step pays page
/// faults and zeroed pages: about a fifth of SAC's time on Pendulum-v1 (see the README's
/// speed section). Raising the mmap and trim thresholds keeps up to 256 MiB of freed memory in
/// the process. Numbers are unaffected: only where memory comes from changes.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes the allocator's thresholds; it is called once, before the
        // agents' tensors exist (it is safe at any time, as glibc takes its own lock).
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        });
    }
}

/// A linear layer initialised as PyTorch's `nn.Linear` is (and so Stable-Baselines3's networks
/// without orthogonal initialisation): weights and biases uniform in `±1/√in`. (tch's own
/// default draws weights with the ReLU gain, `±√(6/in)`: √6 times wider.)
pub fn torch_linear(path: nn::Path, in_dim: usize, out_dim: usize) -> nn::Linear {
    let bound = 1.0 / (in_dim.max(1) as f64).sqrt();
    let uniform = Init::Uniform { lo: -bound, up: bound };
    nn::linear(
        path,
        in_dim as i64,
        out_dim as i64,
        LinearConfig { ws_init: uniform, bs_init: Some(uniform), bias: true },
    )
}


/// A trunk of hidden layers and a linear head, and the layers a transfer added.
#[derive(Debug)]
pub struct Mlp {
    /// What reads the input before the trunk.
    front: Front,
    trunk: Vec<nn::Linear>,
    /// The head (none in a torso: [`Mlp::torso`]).
    head: Option<nn::Linear>,
    activation: Activation,
    /// With added layers: the layout and every linear layer's tensors by name.
    graph: Option<(Layout, HashMap<String, Tensors>)>,
}

/// What reads a network's input before its trunk.
#[derive(Debug)]
enum Front {
    /// Nothing: the trunk reads the input.
    Plain,
    /// A convolutional encoder over the image.
    Image(ImageEncoder),
    /// A dictionary observation's parts (first column, width), each image through its own
    /// encoder, concatenated.
    Parts(Vec<(i64, i64, Option<ImageEncoder>)>),
}

impl Front {
    /// The front of the network under `path` with `config`: its encoder (`{net}.encoder`), or its
    /// dictionary parts' (`{net}.encoder.{key}`), built before anything else of the network.
    fn new(path: &nn::Path, config: &MlpConfig) -> Self {
        let checked = "an encoder's image is set (MlpConfig::for_observation) and fits";
        let steps = config.encoder_steps().expect(checked);
        let (divisor, ortho) = (config.input_divisor, config.ortho_init);
        match ImageEncoder::new(&(path / "encoder"), steps, divisor, ortho) {
            Some(encoder) => Front::Image(encoder),
            None if config.parts.is_empty() => Front::Plain,
            None => {
                let (mut parts, mut offset) = (Vec::new(), 0);
                for (part, steps) in config.part_steps().expect(checked) {
                    let root = path / "encoder" / part.key.as_str();
                    let encoder = steps.and_then(|steps| ImageEncoder::new(&root, steps, divisor, ortho));
                    parts.push((offset as i64, part.width as i64, encoder));
                    offset += part.width;
                }
                Front::Parts(parts)
            }
        }
    }

    /// What the trunk reads of the rows `x`.
    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Front::Plain => x.shallow_clone(),
            Front::Image(encoder) => encoder.forward(x),
            Front::Parts(parts) => {
                let read = |(offset, width, encoder): &(i64, i64, Option<ImageEncoder>)| {
                    let part = x.narrow(1, *offset, *width);
                    encoder.as_ref().map_or(part.shallow_clone(), |e| e.forward(&part))
                };
                Tensor::cat(&parts.iter().map(read).collect::<Vec<_>>(), 1)
            }
        }
    }
}

/// A convolutional encoder's libtorch layers, its pass and what it divides its inputs by.
#[derive(Debug)]
struct ImageEncoder {
    layers: Vec<(nn::Conv2D, crate::agent::engine::conv::Conv)>,
    steps: Vec<conv::Step>,
    divisor: Option<f32>,
}

impl ImageEncoder {
    /// The encoder of `steps` under `root` (`{net}.encoder`, or `{net}.encoder.{key}`); `None`
    /// without a convolution.
    fn new(root: &nn::Path, steps: Vec<conv::Step>, divisor: Option<f32>, ortho: bool) -> Option<Self> {
        let convs: Vec<_> = steps.iter().filter_map(conv::Step::conv).collect();
        (!convs.is_empty()).then(|| ImageEncoder { layers: conv::build(root, &convs, ortho), steps, divisor })
    }

    /// Rows of images `(height, width, channels)` flattened, `[batch, h * w * c]`, to the last
    /// image flattened in PyTorch's order.
    fn forward(&self, x: &Tensor) -> Tensor {
        let first = self.layers[0].1;
        let x = match self.divisor {
            Some(d) => x / f64::from(d),
            None => x.shallow_clone(),
        };
        let image = x.view([-1, first.height as i64, first.width as i64, first.in_channels as i64]);
        conv::forward(&self.layers, &self.steps, image.permute([0, 3, 1, 2])).flatten(1, -1)
    }
}

/// A linear layer's tensors in a graph network: weight, bias, LoRA's `A`, `B` and scale.
#[derive(Debug)]
struct Tensors {
    weight: Tensor,
    bias: Option<Tensor>,
    lora: Option<(Tensor, Tensor, f64)>,
}

impl Mlp {
    /// Builds the network under `path` (for example `vs.root() / "actor"`), mapping `in_dim`
    /// inputs to `out_dim` outputs; `head_gain` scales the head's orthogonal initialisation. The
    /// layers `config.added` names are built too, after the base network's (so the base draws
    /// the same initial weights with or without them).
    pub fn new(path: &nn::Path, config: &MlpConfig, in_dim: usize, out_dim: usize, head_gain: f64) -> Self {
        Self::build(path, config, in_dim, Some((out_dim, head_gain)))
    }

    /// The encoder and hidden layers alone, each hidden layer followed by its activation: a trunk
    /// that heads built elsewhere read (PPO's shared trunk), whose [`Module::forward`] is
    /// [`Mlp::features`]. No added layers.
    pub fn torso(path: &nn::Path, config: &MlpConfig, in_dim: usize) -> Self {
        debug_assert!(config.added.is_empty(), "a torso has no added layers");
        Self::build(path, config, in_dim, None)
    }

    fn build(path: &nn::Path, config: &MlpConfig, in_dim: usize, head: Option<(usize, f64)>) -> Self {
        let ortho = config.ortho_init;
        let layer = |p: nn::Path, i: usize, o: usize, gain: f64| {
            if ortho {
                let c =
                    LinearConfig { ws_init: Init::Orthogonal { gain }, bs_init: Some(Init::Const(0.0)), bias: true };
                nn::linear(p, i as i64, o as i64, c)
            } else {
                torch_linear(p, i, o)
            }
        };
        // The encoders first: the trunk, the head and any added layers draw after them.
        let front = Front::new(path, config);
        if config.added.is_empty() {
            let trunk_path = path / "trunk";
            let mut trunk = Vec::with_capacity(config.hidden.len());
            let mut width = config.trunk_inputs(in_dim);
            for (i, &h) in config.hidden.iter().enumerate() {
                trunk.push(layer(&trunk_path / i, width, h, std::f64::consts::SQRT_2));
                width = h;
            }
            let head = head.map(|(out_dim, gain)| layer(path / "head", width, out_dim, gain));
            return Mlp { front, trunk, head, activation: config.activation, graph: None };
        }
        let (out_dim, head_gain) = head.expect("added layers end in a head");
        let net = net_name(path.components());
        let layout = Layout::new(&net, config, config.trunk_inputs(in_dim), out_dim, head_gain);
        let mut tensors = HashMap::new();
        let (mut trunk, mut head) = (Vec::new(), None);
        for l in layout.layers() {
            let sub = l.name.split('.').fold(path.clone(), |p, c| &p / c);
            let t = match l.init {
                LayerInit::Base(gain) => {
                    let linear = layer(sub, l.inputs, l.outputs, gain);
                    let t = Tensors { weight: linear.ws.shallow_clone(), bias: linear.bs.as_ref().map(|b| b.shallow_clone()), lora: None };
                    match l.name.as_str() {
                        "head" => head = Some(linear),
                        n if n.starts_with("trunk.") => trunk.push(linear),
                        _ => {}
                    }
                    t
                }
                LayerInit::Identity | LayerInit::Zero => {
                    let weight = sub.zeros("weight", &[l.outputs as i64, l.inputs as i64]);
                    if l.init == LayerInit::Identity {
                        tch::no_grad(|| {
                            let eye = Tensor::eye_m(l.outputs as i64, l.inputs as i64, (tch::Kind::Float, tch::Device::Cpu));
                            weight.shallow_clone().copy_(&eye);
                        });
                    }
                    let bias = l.bias.then(|| sub.zeros("bias", &[l.outputs as i64]));
                    Tensors { weight, bias, lora: None }
                }
            };
            tensors.insert(l.name.clone(), t);
        }
        // LoRA's factors after every layer: `A` as PyTorch's default for a layer of its inputs, `B` zero.
        for l in layout.layers() {
            if let Some((rank, scale)) = l.lora {
                let sub = l.name.split('.').fold(path / "lora", |p, c| &p / c);
                let bound = 1.0 / (l.inputs.max(1) as f64).sqrt();
                let a = sub.var("a", &[rank as i64, l.inputs as i64], Init::Uniform { lo: -bound, up: bound });
                let b = sub.zeros("b", &[l.outputs as i64, rank as i64]);
                if let Some(t) = tensors.get_mut(&l.name) {
                    t.lora = Some((a, b, scale));
                }
            }
        }
        let head = Some(head.expect("every layout has a head"));
        let graph = Some((layout, tensors));
        Mlp { front, trunk, head, activation: config.activation, graph }
    }

    /// The head applied to features from [`Mlp::features`] (with added layers: the head and what
    /// follows it, which reads only the features except in a progressive network or one whose
    /// last hidden layer is widened; the autograd paths that call it, gSDE's, are refused for any
    /// network with added layers when the agent is built).
    pub fn head_forward(&self, features: &Tensor) -> Tensor {
        match &self.graph {
            None => self.head.as_ref().expect("a network with a head").forward(features),
            Some((layout, tensors)) => {
                let from = match &layout.nodes[layout.head] {
                    LayoutNode::Linear { from, .. } => *from,
                    _ => unreachable!("the head is a linear layer"),
                };
                run_graph(layout, tensors, layout.head, vec![(from, features.shallow_clone())])
            }
        }
    }

    /// The trunk's output (the features the head reads), `[batch, hidden[last]]`.
    pub fn features(&self, x: &Tensor) -> Tensor {
        match &self.graph {
            None => self.trunk.iter().fold(self.front.forward(x), |h, layer| self.activation.apply(&layer.forward(&h))),
            Some((layout, tensors)) => {
                let sub = Layout { nodes: layout.nodes[..layout.head].to_vec(), ..layout.clone() };
                let values = graph_values(&sub, tensors, 0, vec![(0, self.front.forward(x))]);
                match &layout.nodes[layout.head] {
                    LayoutNode::Linear { from, .. } => values[*from].as_ref().expect("computed").shallow_clone(),
                    _ => unreachable!("the head is a linear layer"),
                }
            }
        }
    }
}

/// The layout's values from node `first` on, given the `known` ones; the last value.
fn run_graph(layout: &Layout, tensors: &HashMap<String, Tensors>, first: usize, known: Vec<(usize, Tensor)>) -> Tensor {
    let values = graph_values(layout, tensors, first, known);
    values.into_iter().last().flatten().expect("the layout's output")
}

/// Every value of the layout (autograd), from node `first` on.
fn graph_values(
    layout: &Layout,
    tensors: &HashMap<String, Tensors>,
    first: usize,
    known: Vec<(usize, Tensor)>,
) -> Vec<Option<Tensor>> {
    let mut values: Vec<Option<Tensor>> = (0..=layout.nodes.len()).map(|_| None).collect();
    for (i, t) in known {
        values[i] = Some(t);
    }
    let get = |values: &[Option<Tensor>], i: usize| values[i].as_ref().expect("a value the graph computed").shallow_clone();
    for (i, node) in layout.nodes.iter().enumerate().skip(first) {
        let value = match node {
            LayoutNode::Linear { from, layer, start } => {
                let t = &tensors[&layer.name];
                let w = match &t.lora {
                    Some((a, b, scale)) => &t.weight + b.matmul(a) * *scale,
                    None => t.weight.shallow_clone(),
                };
                let mut y = get(&values, *from).matmul(&w.tr());
                if let Some(b) = &t.bias {
                    y += b;
                }
                match start {
                    Some(s) => get(&values, *s) + y,
                    None => y,
                }
            }
            LayoutNode::Act { from } => layout.activation.apply(&get(&values, *from)),
            LayoutNode::Add { a, b } => get(&values, *a) + get(&values, *b),
        };
        values[i + 1] = Some(value);
    }
    values
}

impl Module for Mlp {
    /// `[batch, in] -> [batch, out]` (a torso's features).
    fn forward(&self, x: &Tensor) -> Tensor {
        match &self.graph {
            None => match &self.head {
                Some(head) => head.forward(&self.features(x)),
                None => self.features(x),
            },
            Some((layout, tensors)) => run_graph(layout, tensors, 0, vec![(0, self.front.forward(x))]),
        }
    }
}
