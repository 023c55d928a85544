//! How a target wants a model quantised: which of the compiler's quantisers runs and with which
//! integer widths. A backend declares it ([`crate::Backend::quantization`]); the compiler's passes
//! do the work, so a new target picks one of these schemes and writes no quantiser.

/// The quantiser a target runs and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Quantization {
    /// Graded integer activations, shift-and-floor neurons (`passes::quantize`; Loihi 2).
    Graded(QuantSpec),
    /// Akida 1.0's graded neuron: unsigned activations, `ceil((Σ w·x − threshold) / step)`,
    /// 1/2/4-bit weights and activations (`passes::quantize_akida`; AKD1000).
    Akida(AkidaWidths),
    /// Rate mode: ReLU → integrate-and-fire over T timesteps with sinabs' discretisation
    /// (`passes::quantize_rate`; Speck).
    Rate(RateOptions),
}

/// Integer widths a graded target imposes on quantisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantSpec {
    /// Bits of a weight mantissa, sign included.
    pub weight_bits: u32,
    /// Whether stored mantissas are doubled on use (Loihi's mixed-sign mode drops the weight's
    /// least significant bit, so effective weights are even: docs/chips.md §6).
    pub even_weights: bool,
    /// Smallest and largest shared weight exponent of a synapse group.
    pub weight_exp_range: (i32, i32),
    /// Neuron state width in bits.
    pub state_bits: u32,
    /// Default activation (graded spike payload) width in bits.
    pub act_bits: u32,
    /// Largest activation width the target can carry.
    pub max_act_bits: u32,
    /// Bias mantissa bits (sign included) and largest bias exponent: bias = mant << exp.
    pub bias_mant_bits: u32,
    /// Largest bias exponent.
    pub bias_exp_max: u32,
}

/// Default widths of Akida 1.0's quantisation (the user may override weights and activations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AkidaWidths {
    /// Weight bits of every layer but an InputConv2D (1, 2, 4; the vendor recommends 4).
    pub weight_bits: u32,
    /// Weight bits of an InputConv2D (8, QuantizeML's `input_weight_bits` default).
    pub input_weight_bits: u32,
    /// Activation bits (1, 2, 4; the vendor recommends 4).
    pub act_bits: u32,
}

impl Default for AkidaWidths {
    fn default() -> Self {
        AkidaWidths {
            weight_bits: 4,
            input_weight_bits: 8,
            act_bits: 4,
        }
    }
}

/// Widths of rate-mode quantisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateOptions {
    /// Weight bits, sign included (Speck: 8).
    pub weight_bits: u32,
    /// Bias bits, sign included (Speck: 8, the weight precision).
    pub bias_bits: u32,
    /// State, threshold and lower-bound bits (Speck: 16).
    pub state_bits: u32,
    /// Rate-encoder levels of the input.
    pub input_levels: i32,
    /// Target name for messages.
    pub target: &'static str,
}
