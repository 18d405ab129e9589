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

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, Init, LinearConfig, Module};

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

/// The non-linearity between layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// `tanh` (PPO's default).
    Tanh,
    /// `max(0, x)` (DQN's and SAC's default).
    Relu,
}

impl Activation {
    fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.relu(),
        }
    }
}

/// The shape of a network: hidden sizes and activation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// The non-linearity after each hidden layer.
    pub activation: Activation,
    /// Orthogonal initialisation (else PyTorch's default).
    #[serde(default = "yes")]
    pub ortho_init: bool,
}

fn yes() -> bool {
    true
}

impl Default for MlpConfig {
    /// Two hidden layers of 64 with tanh, orthogonal initialisation: Stable-Baselines3's default
    /// for PPO.
    fn default() -> Self {
        MlpConfig { hidden: vec![64, 64], activation: Activation::Tanh, ortho_init: true }
    }
}

impl MlpConfig {
    /// Hidden layers of the given sizes with ReLU and PyTorch's default initialisation:
    /// Stable-Baselines3's networks for DQN and SAC.
    pub fn relu(hidden: &[usize]) -> Self {
        MlpConfig { hidden: hidden.to_vec(), activation: Activation::Relu, ortho_init: false }
    }

    /// Refuses empty layers.
    pub fn validate(&self) -> Result<(), super::error::AgentError> {
        super::error::check(
            "net.hidden",
            self.hidden.iter().all(|&h| h > 0),
            "every hidden layer needs a positive size",
        )
    }

    /// Refuses a network from `in_dim` to `out_dim` inputs with more than [`MAX_PARAMETERS`]
    /// weights (a configuration or a space, perhaps of a damaged card, that no memory holds).
    pub fn check_size(&self, in_dim: usize, out_dim: usize) -> Result<(), super::error::AgentError> {
        let widths = std::iter::once(in_dim).chain(self.hidden.iter().copied()).chain(std::iter::once(out_dim));
        let widths: Vec<usize> = widths.collect();
        let parameters =
            widths.windows(2).try_fold(0usize, |sum, w| w[0].checked_add(1)?.checked_mul(w[1])?.checked_add(sum));
        super::error::check(
            "net.hidden",
            parameters.is_some_and(|p| p <= MAX_PARAMETERS),
            &format!(
                "a network from {in_dim} inputs through {:?} to {out_dim} outputs holds more than {MAX_PARAMETERS} weights",
                self.hidden
            ),
        )
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

/// The most weights one network may hold (400 MB of `f32`).
pub const MAX_PARAMETERS: usize = 100_000_000;

/// A trunk of hidden layers and a linear head.
#[derive(Debug)]
pub struct Mlp {
    trunk: Vec<nn::Linear>,
    head: nn::Linear,
    activation: Activation,
}

impl Mlp {
    /// Builds the network under `path` (for example `vs.root() / "actor"`), mapping `in_dim`
    /// inputs to `out_dim` outputs; `head_gain` scales the head's orthogonal initialisation.
    pub fn new(path: &nn::Path, config: &MlpConfig, in_dim: usize, out_dim: usize, head_gain: f64) -> Self {
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
        let trunk_path = path / "trunk";
        let mut trunk = Vec::with_capacity(config.hidden.len());
        let mut width = in_dim;
        for (i, &h) in config.hidden.iter().enumerate() {
            trunk.push(layer(&trunk_path / i, width, h, std::f64::consts::SQRT_2));
            width = h;
        }
        let head = layer(path / "head", width, out_dim, head_gain);
        Mlp { trunk, head, activation: config.activation }
    }

    /// The head applied to features from [`Mlp::features`].
    pub fn head_forward(&self, features: &Tensor) -> Tensor {
        self.head.forward(features)
    }

    /// The trunk's output (the features the head reads), `[batch, hidden[last]]`.
    pub fn features(&self, x: &Tensor) -> Tensor {
        self.trunk.iter().fold(x.shallow_clone(), |h, layer| self.activation.apply(&layer.forward(&h)))
    }
}

impl Module for Mlp {
    /// `[batch, in] -> [batch, out]`.
    fn forward(&self, x: &Tensor) -> Tensor {
        self.head.forward(&self.features(x))
    }
}
