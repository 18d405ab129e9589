//! Strategies: how a target agent starts from a source policy, in RON.

use serde::{Deserialize, Serialize};

use super::TransferError;
use crate::agent::Distill;
use crate::util::ron_options;

/// How a target agent starts from a source policy. Every field has a default, so `()` is plain
/// fine-tuning and `(copy: false)` is learning from scratch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Strategy {
    /// The label in reports [default: derived from the settings].
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Start from the source's weights; `false` is the scratch baseline.
    pub copy: bool,
    /// Learning-rate factor for copied (and mapped) parameters; new ones train at 1.
    pub lr_scale: f64,
    /// Parts trained with learning rate zero ...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<String>,
    /// ... until this environment step of the target run [default: the whole budget].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze_until: Option<u64>,
    /// Parts that keep the target's fresh initialisation instead of the source's values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reinit: Vec<String>,
    /// L2-SP coefficient: adds `l2_init * ||θ - θ_source||²` over the copied parameters.
    pub l2_init: f64,
    /// Kickstarting towards the source policy (PPO and SAC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distill: Option<Distill>,
    /// Which training state starts fresh rather than from the source's.
    pub reset: Resets,
    /// Layers added to the source's networks, each starting as the identity on them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<Addition>,
    /// The networks the additions go to (`actor`, `critic`, `q`, `critic.q0`, ...) [default: every
    /// network of the agent].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add_to: Vec<String>,
    /// Which parameters train: everything, only the added layers, or a schedule.
    #[serde(skip_serializing_if = "Train::is_all")]
    pub train: Train,
    /// From a skill-discovery (DIAYN) source: the skill the target starts from [default:
    /// `Best(episodes: 3)`, the best on the target's reward].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skill: Option<Skill>,
    /// From a multitask source: the task whose input layer and head the target starts from
    /// (the trunk is shared) [default: the first task with the target's spaces].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

/// Which skill of a skill-discovery source the target starts from: its policy with that skill
/// is the target's (the skill's one-hot input folded into the first layer's bias).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Skill {
    /// The skill with the best mean return on the target over `episodes` deterministic
    /// episodes of each skill (URLB's choice); the steps it takes are counted in the
    /// transfer report and the study's cost.
    Best {
        /// Episodes per skill.
        episodes: usize,
    },
    /// This skill.
    Fixed(usize),
}

/// A layer added to every network of the source (see [`crate::agent::nn::Added`] for the
/// parameters each one makes and how it starts).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Addition {
    /// A learned input layer before the trunk: the identity where observation sizes match, else
    /// a learned map, started from the written map when one is declared.
    Input,
    /// A learned input layer with a small MLP of the raw observation beside it (its output added
    /// to the linear map's, zero at first): a map that need not be linear.
    InputMlp {
        /// Units of the MLP's hidden layer.
        hidden: usize,
    },
    /// A learned output layer after the head of each network that outputs actions: the
    /// identity, or the written action map.
    Output,
    /// A bottleneck adapter after hidden layer `after` (0-based), `width` units.
    Adapter {
        /// The hidden layer whose output it transforms.
        after: usize,
        /// Units of the bottleneck.
        width: usize,
    },
    /// An extra hidden layer after hidden layer `after`: a residual block as wide as it.
    Depth {
        /// The hidden layer it follows.
        after: usize,
    },
    /// Hidden layer `layer` made `units` wider (the new units' outgoing weights start at zero).
    Widen {
        /// The hidden layer.
        layer: usize,
        /// Units added.
        units: usize,
    },
    /// LoRA on the named layers (`trunk.0`, `trunk.1`, `head`): `W + (alpha/rank) B A`.
    Lora {
        /// The layers, by name within each network.
        layers: Vec<String>,
        /// The rank of `B A`.
        rank: usize,
        /// The update's scale is `alpha / rank`.
        alpha: f64,
        /// Merge the factors into the weights when the run's checkpoint is saved.
        #[serde(default)]
        merge: bool,
    },
    /// A progressive network: the source as a frozen first column, lateral connections into
    /// the trained column.
    Progressive,
}

/// Which parameters train.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Train {
    /// Every parameter [default].
    #[default]
    All,
    /// Only the added layers, for the whole run.
    Added,
    /// Only the added layers until this environment step, then everything.
    AddedThenAll(u64),
    /// Gradual unfreezing (Howard & Ruder 2018): the added layers and the head from the start,
    /// then one hidden layer more every this many steps, from the last down.
    Gradual(u64),
}

impl Train {
    fn is_all(&self) -> bool {
        *self == Train::All
    }
}

/// Which training state starts fresh (`true`) rather than carried from the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Resets {
    /// Adam's moments and step count [default: fresh].
    pub optimizer: bool,
    /// The replay buffer of DQN and SAC [default: fresh; `false` starts the target's buffer with
    /// the source's transitions, which needs the same spaces].
    pub replay: bool,
    /// The observation and return normalisers' running statistics [default: carried, since the
    /// copied weights expect inputs normalised the source's way].
    pub obs_rms: bool,
    /// SAC's entropy temperature `log_ent_coef` [default: carried].
    pub ent_coef: bool,
}

impl Default for Resets {
    fn default() -> Self {
        Resets { optimizer: true, replay: true, obs_rms: false, ent_coef: false }
    }
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy {
            name: String::new(),
            copy: true,
            lr_scale: 1.0,
            freeze: Vec::new(),
            freeze_until: None,
            reinit: Vec::new(),
            l2_init: 0.0,
            distill: None,
            reset: Resets::default(),
            add: Vec::new(),
            add_to: Vec::new(),
            train: Train::All,
            skill: None,
            task: None,
        }
    }
}

impl Strategy {
    /// Learning from scratch: the baseline every transfer is measured against.
    pub fn scratch() -> Self {
        Strategy { name: "scratch".into(), copy: false, ..Strategy::default() }
    }

    /// Copy everything that matches and train all of it.
    pub fn finetune() -> Self {
        Strategy { name: "finetune".into(), ..Strategy::default() }
    }

    /// Parses a strategy in RON, refusing unknown fields.
    pub fn from_ron(text: &str) -> Result<Self, ron::error::SpannedError> {
        ron_options().from_str(text)
    }

    /// The strategy as RON, as [`Strategy::from_ron`] reads it.
    pub fn to_ron(&self) -> String {
        crate::util::to_ron(self)
    }

    /// The name, or one derived from the settings.
    pub fn label(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        if !self.copy {
            return "scratch".into();
        }
        let mut parts = vec!["finetune".to_string()];
        if self.lr_scale != 1.0 {
            parts.push(format!("lr×{}", self.lr_scale));
        }
        if !self.freeze.is_empty() {
            let until = self.freeze_until.map(|s| format!("@{s}")).unwrap_or_default();
            parts.push(format!("freeze({}){until}", self.freeze.join(",")));
        }
        if !self.reinit.is_empty() {
            parts.push(format!("reinit({})", self.reinit.join(",")));
        }
        if self.l2_init > 0.0 {
            parts.push(format!("l2_init({})", self.l2_init));
        }
        if let Some(d) = self.distill {
            parts.push(format!("distill({}, {})", d.weight, d.decay_steps));
        }
        for a in &self.add {
            parts.push(match a {
                Addition::Input => "input".into(),
                Addition::InputMlp { hidden } => format!("input-mlp({hidden})"),
                Addition::Output => "output".into(),
                Addition::Adapter { after, width } => format!("adapter({after}, {width})"),
                Addition::Depth { after } => format!("depth({after})"),
                Addition::Widen { layer, units } => format!("widen({layer}, {units})"),
                Addition::Lora { rank, .. } => format!("lora({rank})"),
                Addition::Progressive => "progressive".into(),
            });
        }
        match self.train {
            Train::All => {}
            Train::Added => parts.push("train-added".into()),
            Train::AddedThenAll(s) => parts.push(format!("train-added@{s}")),
            Train::Gradual(s) => parts.push(format!("gradual({s})")),
        }
        parts.join("+")
    }

    /// A strategy named on a command line: `finetune`, `scratch`, a `.ron` file, or RON text.
    pub fn from_arg(arg: &str) -> Result<Strategy, TransferError> {
        match arg {
            "finetune" => return Ok(Strategy::finetune()),
            "scratch" => return Ok(Strategy::scratch()),
            _ => {}
        }
        let (text, origin) = if arg.ends_with(".ron") {
            let text = crate::util::read_to_string(std::path::Path::new(arg))
                .map_err(|e| TransferError::StrategyArg { origin: arg.to_string(), message: e.error.to_string() })?;
            (text, arg.to_string())
        } else {
            (arg.to_string(), "strategy".to_string())
        };
        Strategy::from_ron(&text).map_err(|e| TransferError::StrategyArg { origin, message: e.to_string() })
    }

    /// Checks the values, naming the field at fault.
    pub fn validate(&self) -> Result<(), TransferError> {
        let bad = |field: &'static str, message: &str| Err(TransferError::Strategy { field, message: message.into() });
        if !(self.lr_scale.is_finite() && self.lr_scale >= 0.0) {
            return bad("lr_scale", "must be finite and >= 0");
        }
        if !(self.l2_init.is_finite() && self.l2_init >= 0.0) {
            return bad("l2_init", "must be finite and >= 0");
        }
        if self.skill == Some(Skill::Best { episodes: 0 }) {
            return bad("skill", "Best needs at least one episode per skill");
        }
        if let Some(d) = self.distill
            && !(d.weight.is_finite() && d.weight >= 0.0 && d.decay_steps >= 1)
        {
            return bad("distill", "needs a finite weight >= 0 and decay_steps >= 1");
        }
        if self.freeze_until.is_some() && self.freeze.is_empty() {
            return bad("freeze_until", "is set but `freeze` names no part");
        }
        for a in &self.add {
            match a {
                Addition::Adapter { width: 0, .. } => return bad("add", "an adapter needs a width of at least 1"),
                Addition::Widen { units: 0, .. } => return bad("add", "Widen needs at least 1 unit"),
                Addition::InputMlp { hidden: 0 } => return bad("add", "InputMlp needs at least 1 hidden unit"),
                Addition::Lora { rank: 0, .. } => return bad("add", "LoRA needs a rank of at least 1"),
                Addition::Lora { alpha, .. } if !(alpha.is_finite() && *alpha > 0.0) => {
                    return bad("add", "LoRA's alpha must be finite and positive");
                }
                Addition::Lora { layers, .. } if layers.is_empty() => return bad("add", "LoRA names no layer"),
                _ => {}
            }
        }
        if !self.add_to.is_empty() && self.add.is_empty() {
            return bad("add_to", "names networks, but `add` adds nothing to them");
        }
        if matches!(self.train, Train::Added | Train::AddedThenAll(_)) && self.add.is_empty() {
            return bad("train", "trains the added layers first, but `add` adds none");
        }
        if matches!(self.train, Train::Gradual(0)) {
            return bad("train", "Gradual needs a step count of at least 1");
        }
        let transfer_only = self.lr_scale != 1.0
            || !self.add.is_empty()
            || !self.freeze.is_empty()
            || !self.reinit.is_empty()
            || self.l2_init > 0.0
            || self.distill.is_some();
        if !self.copy && transfer_only {
            return bad(
                "copy",
                "is false (scratch), so freeze, reinit, lr_scale, l2_init, distill and add have nothing to act on",
            );
        }
        Ok(())
    }
}
