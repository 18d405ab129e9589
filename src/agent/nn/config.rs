//! A network's configuration ([`MlpConfig`]): hidden layers, activation, initialisation, added
//! layers, and what reads the observation before the trunk (an encoder over an image, or over
//! each image part of a dictionary observation).

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::conv::{self, Encoder};
use crate::agent::error::AgentError;
use super::{Added, Layout};

/// The non-linearity between layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// `tanh` (PPO's default).
    Tanh,
    /// `max(0, x)` (DQN's and SAC's default).
    Relu,
}

impl Activation {
    pub(super) fn apply(self, x: &Tensor) -> Tensor {
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
    /// Layers a transfer strategy added ([`Added`]; none by default).
    #[serde(default, skip_serializing_if = "Added::is_empty")]
    pub added: Added,
    /// Convolutions in front of the trunk, for image observations ([`Encoder`]; none by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<Encoder>,
    /// The observation's `(height, width, channels)`, which the agent sets from its observation
    /// space when there is an encoder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<[usize; 3]>,
    /// Each input divided by this before the encoder reads it: `255.0` for images of bytes, as
    /// Stable-Baselines3's policies divide them (none by default; only with an encoder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_divisor: Option<f32>,
    /// A dictionary observation's parts, which the agent sets from its observation space when
    /// there is an encoder: each image part through an encoder of its own
    /// (`{net}.encoder.{key}.conv.{i}`), the other parts as they are, all concatenated in order
    /// into the trunk (the order of Stable-Baselines3's `MultiInputPolicy`, whose extractor adds
    /// a linear layer after each image's convolutions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<ObsPart>,
}

/// One part of a dictionary observation as a network reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObsPart {
    /// Its key.
    pub key: String,
    /// Its number of values in the flat observation.
    pub width: usize,
    /// Its `(height, width, channels)` when it is an image the encoder reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<[usize; 3]>,
}

fn yes() -> bool {
    true
}

impl Default for MlpConfig {
    /// Two hidden layers of 64 with tanh, orthogonal initialisation: Stable-Baselines3's default
    /// for PPO.
    fn default() -> Self {
        MlpConfig {
            hidden: vec![64, 64],
            activation: Activation::Tanh,
            ortho_init: true,
            added: Added::default(),
            encoder: None,
            image: None,
            input_divisor: None,
            parts: Vec::new(),
        }
    }
}

impl MlpConfig {
    /// Hidden layers of the given sizes with ReLU and PyTorch's default initialisation:
    /// Stable-Baselines3's networks for DQN and SAC.
    pub fn relu(hidden: &[usize]) -> Self {
        MlpConfig { hidden: hidden.to_vec(), activation: Activation::Relu, ortho_init: false, ..Default::default() }
    }

    /// Refuses empty layers.
    pub fn validate(&self) -> Result<(), crate::agent::error::AgentError> {
        crate::agent::error::check(
            "net.hidden",
            self.hidden.iter().all(|&h| h > 0),
            "every hidden layer needs a positive size",
        )?;
        if let Some(d) = self.input_divisor {
            crate::agent::error::check("net.input_divisor", self.encoder.is_some(), "divides the images an encoder reads: set `encoder` too")?;
            crate::agent::error::check("net.input_divisor", d.is_finite() && d > 0.0, "must be a positive number")?;
        }
        if self.encoder.is_some() {
            // Adapters, depth, widening, LoRA and output layers work on the trunk and head, after
            // the encoder; these two would need the encoder's part too.
            let why = "an input layer reads the observation, which a convolutional encoder reads here: add \
                       layers after the encoder (adapters, depth, LoRA); for images of other channels, give a \
                       channel map or learn the first convolution afresh (`reinit: [\"<net>.encoder.conv.0\"]`)";
            crate::agent::error::check("net.added", self.added.input.is_empty(), why)?;
            let why = "a progressive network's frozen column would need a frozen copy of the convolutional encoder, \
                       which is not built yet";
            crate::agent::error::check("net.added", !self.added.progressive, why)?;
        }
        self.added.validate(&self.hidden)
    }

    /// This configuration for observations of `space`: with an encoder, the image's shape set
    /// (an observation that is not an image `(height, width, channels)`, or one the agent
    /// `appends` inputs to (task ids, skills), is an error naming `net.encoder`) and every
    /// convolution checked against it.
    pub fn for_observation(
        &self,
        space: &crate::env::Space,
        appends: bool,
    ) -> Result<MlpConfig, crate::agent::error::AgentError> {
        // What the observation decides (the image, the parts) is set afresh: a card's configuration
        // may come from another observation space.
        let base = MlpConfig { image: None, parts: Vec::new(), ..self.clone() };
        let Some(encoder) = &self.encoder else { return Ok(base) };
        crate::agent::error::check(
            "net.encoder",
            !appends,
            "a convolutional encoder reads the image alone: no task ids or skills appended to it",
        )?;
        let shape: &[usize] = match space {
            crate::env::Space::Box { shape, .. } => shape,
            crate::env::Space::Discrete { .. } => &[],
            crate::env::Space::Dict { .. } => return base.for_parts(encoder, space),
        };
        let Some(image) = conv::image_shape(shape) else {
            return Err(crate::agent::error::AgentError::Config {
                field: "net.encoder",
                message: format!("a convolutional encoder reads images (height, width, channels); the observation's shape is {shape:?}"),
            });
        };
        encoder.geometry(image)?;
        Ok(MlpConfig { image: Some(image), ..base })
    }

    /// [`MlpConfig::for_observation`] for a dictionary observation: its parts set, each image
    /// part (`(height, width, channels)`, its key a plain name) checked against the encoder.
    fn for_parts(&self, encoder: &Encoder, space: &crate::env::Space) -> Result<MlpConfig, AgentError> {
        let fail = |message: String| Err(AgentError::Config { field: "net.encoder", message });
        let mut parts = Vec::new();
        for p in space.parts() {
            let image = match p.space {
                crate::env::Space::Box { shape, .. } => conv::image_shape(shape),
                _ => None,
            };
            if let Some(image) = image {
                let plain = p.key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                // Its encoder's names hold the key as a segment: not one that names a layer.
                if !plain || p.key == "conv" || super::is_added(&p.key) {
                    return fail(format!(
                        "the image part {:?} needs a plain key (letters, digits, _ and -, not `conv` or an added \
                         layer's `input`, `output`, `adapter`, `deep`, `widen`, `lora`, `lateral`, `column`) to name \
                         its encoder",
                        p.key
                    ));
                }
                if let Err(e) = encoder.geometry(image) {
                    return fail(format!("part {:?}: {e}", p.key));
                }
            }
            parts.push(ObsPart { key: p.key.to_string(), width: p.width, image });
        }
        if parts.iter().all(|p| p.image.is_none()) {
            return fail(format!(
                "a convolutional encoder reads images (height, width, channels); no part of {space} is one"
            ));
        }
        Ok(MlpConfig { parts, image: None, ..self.clone() })
    }

    /// The encoder's pass over the image (empty without an encoder; `None` when the image is not
    /// set or a kernel does not fit; empty for a dictionary observation's parts: see
    /// [`MlpConfig::part_steps`]).
    pub(crate) fn encoder_steps(&self) -> Option<Vec<conv::Step>> {
        match (&self.encoder, self.image) {
            (None, _) => Some(Vec::new()),
            (Some(_), None) if !self.parts.is_empty() => Some(Vec::new()),
            (Some(encoder), Some(image)) => encoder.steps(image).ok(),
            (Some(_), None) => None,
        }
    }

    /// Each part of a dictionary observation with the encoder's pass over it when it is an image
    /// (`None` when a kernel does not fit).
    pub(crate) fn part_steps(&self) -> Option<Vec<(&ObsPart, Option<Vec<conv::Step>>)>> {
        self.parts
            .iter()
            .map(|p| match (&self.encoder, p.image) {
                (Some(encoder), Some(image)) => Some((p, Some(encoder.steps(image).ok()?))),
                _ => Some((p, None)),
            })
            .collect()
    }

    /// The encoder's convolutions over the image, in order (as [`MlpConfig::encoder_steps`]; over
    /// every image part, part after part).
    pub(crate) fn convs(&self) -> Option<Vec<crate::agent::engine::conv::Conv>> {
        let parts = self.part_steps()?.into_iter().flat_map(|(_, steps)| steps.unwrap_or_default());
        Some(self.encoder_steps()?.into_iter().chain(parts).filter_map(|s| s.conv()).collect())
    }

    /// The width the trunk reads: the flattened last image with an encoder (the parts' widths
    /// added up for a dictionary observation, each image's flattened), else `in_dim`.
    pub fn trunk_inputs(&self, in_dim: usize) -> usize {
        if let Some(parts) = self.part_steps().filter(|p| !p.is_empty()) {
            return parts
                .iter()
                .map(|(p, steps)| match steps.iter().flatten().filter_map(|s| s.conv()).last() {
                    Some(last) => last.outputs(),
                    None => p.width,
                })
                .sum();
        }
        match self.convs().as_deref() {
            Some([.., last]) => last.outputs(),
            _ => in_dim,
        }
    }

    /// Refuses a network from `in_dim` to `out_dim` inputs with more than [`MAX_PARAMETERS`]
    /// weights (a configuration or a space, perhaps of a damaged card, that no memory holds).
    pub fn check_size(&self, in_dim: usize, out_dim: usize) -> Result<(), crate::agent::error::AgentError> {
        let encoder: usize = self.convs().unwrap_or_default().iter().map(|c| (c.patch() + 1) * c.out_channels).sum();
        let in_dim = self.trunk_inputs(in_dim);
        let widths = std::iter::once(in_dim).chain(self.hidden.iter().copied()).chain(std::iter::once(out_dim));
        let widths: Vec<usize> = widths.collect();
        let parameters =
            widths.windows(2).try_fold(encoder, |sum, w| w[0].checked_add(1)?.checked_mul(w[1])?.checked_add(sum));
        crate::agent::error::check(
            "net.hidden",
            parameters.is_some_and(|p| p <= MAX_PARAMETERS),
            &format!(
                "a network from {in_dim} inputs through {:?} to {out_dim} outputs holds more than {MAX_PARAMETERS} weights",
                self.hidden
            ),
        )?;
        // The added layers too, for each network they name (and the unnamed rest).
        let nets = self.added.input.keys().chain(self.added.output.keys()).map(String::as_str).chain([""]);
        let added = nets.map(|net| Layout::new(net, self, in_dim, out_dim, 1.0).weights()).max().flatten();
        crate::agent::error::check(
            "net.added",
            added.is_some_and(|p| p <= MAX_PARAMETERS),
            &format!("the added layers make a network of more than {MAX_PARAMETERS} weights"),
        )
    }
}


/// The most weights one network may hold (400 MB of `f32`).
pub const MAX_PARAMETERS: usize = 100_000_000;
