//! The FFN's activation function and the FLOPs it is charged.

use serde::Serialize;

/// The FFN's activation function (`hidden_act`, `hidden_activation` or OPT's
/// `activation_function`), which fixes the FLOPs its `act` op (and each expert) is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// silu(x) = x / (1 + e^−x) (Llama, Mistral, Qwen, DeepSeek): 4 FLOPs (negate, exp, add
    /// one, divide).
    #[default]
    Silu,
    /// GELU in its tanh form, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (Gemma-2's
    /// `gelu_pytorch_tanh`, GLaM): 9 FLOPs (x³ in two products, the scale 0.044715, the add,
    /// the scale √(2/π), tanh, the add of one, the product with x, the half).
    GeluTanh,
    /// ReLU, max(0, x) (OPT): 1 FLOP, as FLOP counts of ReLU networks count it.
    Relu,
}

impl Activation {
    /// The activation named `name` in a config (`silu`/`swish`, `gelu_pytorch_tanh`/
    /// `gelu_new`/`gelu`, `relu`); `None` for a name dyad does not model.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "silu" | "swish" => Some(Activation::Silu),
            "gelu_pytorch_tanh" | "gelu_new" | "gelu" | "gelu_fast" => Some(Activation::GeluTanh),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }

    /// HuggingFace's default where a config names none: ReLU for OPT, SiLU otherwise.
    pub fn default_for(opt: bool) -> Self {
        if opt {
            Activation::Relu
        } else {
            Activation::Silu
        }
    }

    /// FLOPs per element of the activation alone.
    pub fn flops(self) -> u64 {
        match self {
            Activation::Silu => 4,
            Activation::GeluTanh => 9,
            Activation::Relu => 1,
        }
    }

    /// FLOPs per inner element of an FFN's activation: the activation, and in a gated FFN the
    /// product with the up projection (SwiGLU: 5; GeGLU: 10).
    pub fn ffn_flops(self, gated: bool) -> u64 {
        self.flops() + u64::from(gated)
    }
}
