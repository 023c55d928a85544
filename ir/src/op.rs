//! Operations. One enum, each variant with typed attributes. Import-level ops mirror ONNX; the
//! canonical form that partitioning and the backends see uses only [`Op::Input`], [`Op::Quantize`],
//! [`Op::Layer`], [`Op::Reshape`], [`Op::Concat`] and [`Op::Dequantize`].

use crate::ConstId;

/// 2-D convolution geometry (NCHW, weights `[co, ci/groups, kh, kw]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConvGeom {
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Strides (h, w).
    pub strides: [usize; 2],
    /// Padding (top, left, bottom, right).
    pub pads: [usize; 4],
    /// Dilations (h, w).
    pub dilations: [usize; 2],
    /// Number of groups.
    pub groups: usize,
}

impl ConvGeom {
    /// Output spatial size for an input of `h × w`, or `None` if the kernel does not fit.
    pub fn out_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        // Checked throughout: attributes come from untrusted models.
        let eff = |k: usize, d: usize| k.checked_sub(1)?.checked_mul(d)?.checked_add(1);
        let eff_h = eff(self.kernel[0], self.dilations[0])?;
        let eff_w = eff(self.kernel[1], self.dilations[1])?;
        let ph = h.checked_add(self.pads[0])?.checked_add(self.pads[2])?;
        let pw = w.checked_add(self.pads[1])?.checked_add(self.pads[3])?;
        if ph < eff_h || pw < eff_w || self.strides[0] == 0 || self.strides[1] == 0 {
            return None;
        }
        Some((
            (ph - eff_h) / self.strides[0] + 1,
            (pw - eff_w) / self.strides[1] + 1,
        ))
    }
}

/// Pooling kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolKind {
    /// Maximum over the window.
    Max,
    /// Mean over the window (`count_include_pad` decides the divisor at the border).
    Avg,
    /// Sum over the window (what Speck's pooling does).
    Sum,
}

impl PoolKind {
    /// Text-format name.
    pub fn name(self) -> &'static str {
        match self {
            PoolKind::Max => "max",
            PoolKind::Avg => "avg",
            PoolKind::Sum => "sum",
        }
    }
}

/// 2-D pooling attributes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pool {
    /// Max, average or sum.
    pub kind: PoolKind,
    /// Window (h, w).
    pub kernel: [usize; 2],
    /// Strides (h, w).
    pub strides: [usize; 2],
    /// Padding (top, left, bottom, right); padded positions never win a max and add zero to sums.
    pub pads: [usize; 4],
    /// For average pooling: whether padded positions count in the divisor.
    pub count_include_pad: bool,
}

impl Pool {
    /// Output spatial size for an input of `h × w`.
    pub fn out_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        ConvGeom {
            kernel: self.kernel,
            strides: self.strides,
            pads: self.pads,
            dilations: [1, 1],
            groups: 1,
        }
        .out_hw(h, w)
    }
}

/// What a spiking neuron's membrane does after it spikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reset {
    /// Back to zero (sinabs `MembraneReset`, samna `return_to_zero = true`).
    Zero,
    /// Minus the threshold once per spike (sinabs `MembraneSubtract`).
    Subtract,
}

impl Reset {
    /// Text-format name.
    pub fn name(self) -> &'static str {
        match self {
            Reset::Zero => "zero",
            Reset::Subtract => "subtract",
        }
    }

    /// Parses the text-format (and ONNX attribute) name.
    pub fn from_name(s: &str) -> Option<Reset> {
        match s {
            "zero" => Some(Reset::Zero),
            "subtract" => Some(Reset::Subtract),
            _ => None,
        }
    }
}

/// A native spiking neuron model, as imported from the `ai.nmc` ONNX domain, NIR or lava-dl netx
/// (NIR-like parameters, in the units of the float graph, time in timesteps). Discrete time, per
/// step: `i ← (1 − 1/τ_syn)·i + w_in·x` (CubaLif only; LIF and IF take `i = x`),
/// `v ← (1 − 1/τ_mem)·v + r·i + v_leak/τ_mem` (IF: `v ← v + x`), a spike when `v > threshold`
/// (IF: `v ≥ threshold`, sinabs' rule), then reset. In the float graph (`eval`, calibration) IF
/// and SigmaDelta have a single-pass meaning, their *rate limit* (see [`crate::Interpreter`]);
/// the time-stepped integer semantics of a quantised layer are [`SpikeQuant`] (rate mode) and
/// [`CubaQuant`] (snn mode).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SpikingModel {
    /// Integrate-and-fire: `v += x`; `k = floor(v / threshold)` spikes when `v ≥ threshold`;
    /// reset; `v = max(v, v_min)`. Rate limit: `max(x, 0) / threshold` spikes per step.
    If {
        /// Firing threshold (> 0).
        threshold: f32,
        /// Reset mode.
        reset: Reset,
        /// Lower bound of the membrane potential (≤ 0).
        v_min: f32,
    },
    /// Leaky integrate-and-fire (NIR `LIF`): `tau_mem · dv/dt = (v_leak − v) + r · x`.
    Lif {
        /// Membrane time constant, in timesteps.
        tau_mem: f32,
        /// Input resistance.
        r: f32,
        /// Leak (resting) potential.
        v_leak: f32,
        /// Firing threshold.
        threshold: f32,
        /// Reset mode.
        reset: Reset,
        /// Lower bound of the membrane potential.
        v_min: f32,
    },
    /// Current-based LIF (NIR `CubaLIF`): a synaptic current with `tau_syn` feeds a LIF membrane.
    CubaLif {
        /// Synaptic current time constant, in timesteps.
        tau_syn: f32,
        /// Membrane time constant, in timesteps.
        tau_mem: f32,
        /// Input resistance.
        r: f32,
        /// Leak (resting) potential.
        v_leak: f32,
        /// Input weight of the synaptic current (NIR `w_in`).
        w_in: f32,
        /// Firing threshold.
        threshold: f32,
        /// Reset mode.
        reset: Reset,
        /// Lower bound of the membrane potential.
        v_min: f32,
    },
    /// Graded sigma-delta neuron (Lava `SigmaDelta`): sends the change of its activation once it
    /// exceeds `threshold`. Rate (graded) limit: the activation itself.
    SigmaDelta {
        /// Smallest change that is sent.
        threshold: f32,
        /// ReLU activation (else identity).
        relu: bool,
    },
}

impl SpikingModel {
    /// Text-format name (also the IR mnemonic of the activation op).
    pub fn name(&self) -> &'static str {
        match self {
            SpikingModel::If { .. } => "if",
            SpikingModel::Lif { .. } => "lif",
            SpikingModel::CubaLif { .. } => "cuba_lif",
            SpikingModel::SigmaDelta { .. } => "sigma_delta",
        }
    }

    /// Checks the parameters: thresholds positive and finite; time constants positive, and
    /// `+∞` allowed (no decay: netx's `iDecay = 0` or `vDecay = 0`); lower bounds ≤ 0, and `−∞`
    /// allowed (no lower bound, as netx and NIR neurons have); everything else finite.
    pub fn check(&self) -> Result<(), String> {
        let pos = |k: &str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "{} `{k}` must be finite and > 0, is {v}",
                    self.name()
                ))
            }
        };
        let fin = |k: &str, v: f32| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(format!("{} `{k}` must be finite, is {v}", self.name()))
            }
        };
        let tau = |k: &str, v: f32| {
            if v > 0.0 && !v.is_nan() {
                Ok(())
            } else {
                Err(format!(
                    "{} `{k}` must be > 0 (or inf), is {v}",
                    self.name()
                ))
            }
        };
        let low = |v: f32| {
            if v <= 0.0 && !v.is_nan() {
                Ok(())
            } else {
                Err(format!(
                    "{} `v_min` must be ≤ 0 (or -inf), is {v}",
                    self.name()
                ))
            }
        };
        match *self {
            SpikingModel::If {
                threshold, v_min, ..
            } => {
                pos("threshold", threshold)?;
                low(v_min)
            }
            SpikingModel::Lif {
                tau_mem,
                r,
                v_leak,
                threshold,
                v_min,
                ..
            } => {
                tau("tau_mem", tau_mem)?;
                pos("r", r)?;
                fin("v_leak", v_leak)?;
                pos("threshold", threshold)?;
                low(v_min)
            }
            SpikingModel::CubaLif {
                tau_syn,
                tau_mem,
                r,
                v_leak,
                w_in,
                threshold,
                v_min,
                ..
            } => {
                tau("tau_syn", tau_syn)?;
                tau("tau_mem", tau_mem)?;
                pos("r", r)?;
                fin("v_leak", v_leak)?;
                fin("w_in", w_in)?;
                pos("threshold", threshold)?;
                low(v_min)
            }
            SpikingModel::SigmaDelta { threshold, .. } => {
                if threshold.is_finite() && threshold >= 0.0 {
                    Ok(())
                } else {
                    Err(format!(
                        "sigma_delta `threshold` must be finite and ≥ 0, is {threshold}"
                    ))
                }
            }
        }
    }
}

/// Element-wise activation functions of the import-level graph.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// max(x, 0).
    Relu,
    /// clamp(x, lo, hi) (ONNX Clip, ReLU6).
    Clip {
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
    /// A native spiking neuron (ONNX domain `ai.nmc`).
    Spiking(SpikingModel),
}

/// Neuron model of a population (a canonical [`Layer`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Neuron {
    /// Graded ReLU neuron: output = max(v, 0). Sigma-delta on Loihi 2.
    Relu,
    /// Graded clipped neuron: output = clamp(v, lo, hi) in the float graph.
    Clip {
        /// Lower bound (float graph units).
        lo: f32,
        /// Upper bound (float graph units).
        hi: f32,
    },
    /// Linear readout: output = v (the last layer before a softmax or the output).
    Linear,
    /// A native spiking neuron model (from the `ai.nmc` ONNX domain).
    Spiking(SpikingModel),
}

/// How a population receives one input: dense (all-to-all by a matrix) or convolutional.
#[derive(Clone, Debug, PartialEq)]
pub enum Synapse {
    /// `y[o] += Σ_i W[o, i] · x[i]` with `W: [out, in]` over the flattened input.
    Dense {
        /// Weight matrix `[out, in]`.
        weight: ConstId,
    },
    /// 2-D convolution (cross-correlation, as ONNX) with weights `[co, ci/g, kh, kw]`.
    Conv {
        /// Kernel weights.
        weight: ConstId,
        /// Geometry.
        geom: ConvGeom,
    },
}

impl Synapse {
    /// The weight constant.
    pub fn weight(&self) -> ConstId {
        match self {
            Synapse::Dense { weight } | Synapse::Conv { weight, .. } => *weight,
        }
    }
}

/// How the state is divided down to an activation (step 4 of the integer layer semantics in
/// the interpreter's module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ActRound {
    /// Toward negative infinity (an arithmetic right shift when the step is 1); the default.
    #[default]
    Floor,
    /// Toward positive infinity: BrainChip Akida's `ceil((Σ w·x − threshold) / act_step)`
    /// (docs/chips.md §6).
    Ceil,
}

impl ActRound {
    /// Text-format name.
    pub fn name(self) -> &'static str {
        match self {
            ActRound::Floor => "floor",
            ActRound::Ceil => "ceil",
        }
    }
}

/// Integer semantics of a quantised layer (see the crate docs for the exact arithmetic): the
/// fields every mode shares, and the [`QuantMode`] that says which neuron the chip runs, so that
/// a combination no target runs (an Akida step on a spiking layer, say) cannot be written.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerQuant {
    /// Per synapse group: shift applied to that group's accumulated sum (left if positive,
    /// arithmetic right — floor — if negative) before the groups are added.
    pub weight_exp: Vec<i32>,
    /// Integer bias per output channel, in state units (already shifted by its exponent).
    pub bias: Option<ConstId>,
    /// Width of the neuron state in bits (two's complement); sums saturate to it.
    pub state_bits: u32,
    /// Arithmetic right shift from state to output units.
    pub act_shift: u32,
    /// Smallest output value (after the shift).
    pub act_min: i32,
    /// Largest output value (after the shift).
    pub act_max: i32,
    /// Real value of one output unit: `x_real ≈ scale · x_int`. For a spiking layer: the real
    /// value of one spike per timestep.
    pub scale: f32,
    /// Which neuron: graded shift-and-floor, graded integer step, or rate-mode spiking.
    pub mode: QuantMode,
}

/// The neuron a quantised layer runs. The text format prints nothing for [`QuantMode::Shift`]
/// and only the non-default fields of the others.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum QuantMode {
    /// Graded: `y = clamp(floor(v / 2^act_shift), act_min, act_max)` (Loihi 2's sigma-delta
    /// activation).
    #[default]
    Shift,
    /// Graded with an integer divisor per channel (Akida's `ceil((Σ w·x − threshold) / step)`).
    Step {
        /// Integer divisor per output channel (an i32 constant of one positive value per
        /// channel), applied with `act_shift` before rounding: `y = round(v / (step[c] ·
        /// 2^act_shift))`. `None` means 1 for every channel.
        act_step: Option<ConstId>,
        /// Rounding of that division.
        act_round: ActRound,
        /// Pool the accumulated sums before the bias and the activation instead of pooling the
        /// activations (Akida pools potentials; for max pooling the two orders agree).
        pool_first: bool,
    },
    /// Rate mode: time-stepped integrate-and-fire (see [`crate::Interpreter::run_steps`]).
    Spiking(SpikeQuant),
    /// Snn mode: Loihi's fixed-point current-based LIF neuron, stepped over time with one step
    /// of synaptic delay per hop (see the snn section of [`crate::Interpreter`]'s module docs).
    Cuba(CubaQuant),
}

impl LayerQuant {
    /// The per-channel integer divisor, if the layer has one.
    pub fn act_step(&self) -> Option<ConstId> {
        match self.mode {
            QuantMode::Step { act_step, .. } => act_step,
            _ => None,
        }
    }

    /// The rounding of the division down to an activation.
    pub fn act_round(&self) -> ActRound {
        match self.mode {
            QuantMode::Step { act_round, .. } => act_round,
            _ => ActRound::Floor,
        }
    }

    /// Whether sums are pooled before the activation.
    pub fn pool_first(&self) -> bool {
        matches!(
            self.mode,
            QuantMode::Step {
                pool_first: true,
                ..
            }
        )
    }

    /// The rate-mode neuron, for a spiking layer.
    pub fn spiking(&self) -> Option<&SpikeQuant> {
        match &self.mode {
            QuantMode::Spiking(s) => Some(s),
            _ => None,
        }
    }

    /// The snn-mode CUBA-LIF neuron, for a layer of an snn-mode graph.
    pub fn cuba(&self) -> Option<&CubaQuant> {
        match &self.mode {
            QuantMode::Cuba(c) => Some(c),
            _ => None,
        }
    }

    /// Whether the layer is stepped over time (rate or snn mode) rather than run once.
    pub fn is_stepped(&self) -> bool {
        matches!(self.mode, QuantMode::Spiking(_) | QuantMode::Cuba(_))
    }
}

/// Integer semantics of an snn-mode CUBA-LIF layer: the neuron of Lava's bit-accurate `LIF`
/// process model (`PyLifModelBitAcc`, docs/chips.md §1.4, §1.6), which lava-dl's netx loads for a
/// CUBA layer. Per neuron and timestep, with `a` the step's synaptic input (see the snn section
/// of [`crate::Interpreter`]'s module docs for the whole step):
///
/// 1. `u = wrap24(decay(u, du) + (a << act_shift))`,
/// 2. `v = clamp(decay(v, dv) + u + v_bias, max(v_min, −(2^23 − 1)), 2^23 − 1)`,
/// 3. a spike when `v > vth << act_shift`; then `v = 0` (reset zero) or `v −= vth << act_shift`
///    (reset subtract),
///
/// with `decay(x, d) = sign(x) · ((|x| · (4096 − d)) >> 12)` and `wrap24` Lava's single wrap of
/// the 24-bit current (`x > 2^23` gives `x − 2^24`, `x ≤ −2^23` gives `x + 2^24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CubaQuant {
    /// Current decay, `0..=4096` (Lava's `du + 1`, netx's `iDecay`).
    pub du: u32,
    /// Voltage decay, `0..=4096` (Lava's `dv`, netx's `vDecay`).
    pub dv: u32,
    /// Threshold mantissa, `0..2^17` (Lava's `vth`, netx's `vThMant`).
    pub vth: i32,
    /// Added to the voltage every step, in state units (Lava's `bias_mant << bias_exp`).
    pub v_bias: i32,
    /// Lower bound of the voltage in state units (Lava: `−(2^23 − 1)`).
    pub v_min: i32,
    /// What a spike does to the voltage.
    pub reset: Reset,
}

/// Largest magnitude of a CUBA neuron's 24-bit current and voltage: `2^23`.
pub const CUBA_STATE_LIMIT: i64 = 1 << 23;

impl CubaQuant {
    /// `sign(x) · ((|x| · (4096 − d)) >> 12)`: Loihi's 12-bit decay, rounding toward zero.
    pub fn decay(x: i64, d: u32) -> i64 {
        let m = (x.unsigned_abs() as i128 * i128::from(4096 - d.min(4096))) >> 12;
        let m = m.min(i128::from(i64::MAX)) as i64;
        if x < 0 {
            -m
        } else {
            m
        }
    }

    /// One timestep of one neuron (steps 1–3 above): `u` and `v` are its state, `a` the step's
    /// synaptic input (bias included). Returns whether it spiked.
    pub fn step(&self, u: &mut i64, v: &mut i64, a: i64, act_shift: u32) -> bool {
        let m = CUBA_STATE_LIMIT;
        let d = Self::decay(*u, self.du).saturating_add(a.saturating_mul(1 << act_shift));
        // Lava wraps once, not modulo: a sum beyond ±3·2^23 stays out of range, as there.
        *u = if d > m {
            d - 2 * m
        } else if d <= -m {
            d + 2 * m
        } else {
            d
        };
        let lo = i64::from(self.v_min).max(-(m - 1));
        let x = Self::decay(*v, self.dv)
            .saturating_add(*u)
            .saturating_add(i64::from(self.v_bias));
        *v = x.clamp(lo, m - 1);
        let th = i64::from(self.vth) << act_shift;
        let spiked = *v > th;
        if spiked {
            *v = match self.reset {
                Reset::Zero => 0,
                Reset::Subtract => *v - th,
            };
        }
        spiked
    }
}

/// Integer integrate-and-fire semantics of a quantised spiking layer (state units; the exact
/// per-timestep arithmetic is in the docs of [`crate::Interpreter::run_steps`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpikeQuant {
    /// Firing threshold (≥ 1): a neuron emits `floor(v / threshold)` spikes when `v ≥ threshold`.
    pub threshold: i32,
    /// Lower clamp of the membrane state after reset (≤ 0; samna `threshold_low`).
    pub v_min: i32,
    /// Reset mode.
    pub reset: Reset,
}

/// A canonical layer: one population fed by one synapse group per input value, with a neuron
/// model and optional output pooling. Residual adds become two synapse groups into one population
/// because neuromorphic cores sum their inputs for free.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// One synapse group per node input, in input order.
    pub synapses: Vec<Synapse>,
    /// Bias per output channel (float graph), if any.
    pub bias: Option<ConstId>,
    /// Neuron model.
    pub neuron: Neuron,
    /// Pooling applied to the neuron outputs.
    pub pool: Option<Pool>,
    /// Integer semantics once quantised; `None` in the float graph.
    pub quant: Option<LayerQuant>,
}

/// Quantisation of a float tensor to integers: `q = clamp(round_half_even(x / scale), min, max)`.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantParams {
    /// Real value of one integer unit.
    pub scale: f32,
    /// Smallest integer.
    pub min: i32,
    /// Largest integer.
    pub max: i32,
}

/// Operations.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Graph input number `index` (per-sample shape in the node type).
    Input {
        /// Position in the graph's input list.
        index: usize,
    },
    /// `y = W x + b` over the flattened input, `W: [out, in]`.
    Dense {
        /// Weight `[out, in]`.
        weight: ConstId,
        /// Bias `[out]`.
        bias: Option<ConstId>,
    },
    /// 2-D convolution with optional bias.
    Conv2d {
        /// Weight `[co, ci/g, kh, kw]`.
        weight: ConstId,
        /// Bias `[co]`.
        bias: Option<ConstId>,
        /// Geometry.
        geom: ConvGeom,
    },
    /// 2-D pooling.
    Pool2d(Pool),
    /// Per-channel affine `y = x · scale[c] + shift[c]` (batch normalisation, folded at import).
    ChannelAffine {
        /// Scale per channel.
        scale: ConstId,
        /// Shift per channel.
        shift: ConstId,
    },
    /// Element-wise sum of two equally shaped inputs.
    Add,
    /// Element-wise activation.
    Act(Activation),
    /// Concatenation along a per-sample axis.
    Concat {
        /// Per-sample axis.
        axis: usize,
    },
    /// Reinterprets the row-major data with a new per-sample shape (a view: no data moves).
    Reshape,
    /// Permutes the per-sample axes.
    Transpose {
        /// `out.shape[i] = in.shape[perm[i]]`.
        perm: Vec<usize>,
    },
    /// Softmax (or log-softmax) along a per-sample axis; kept by `eval`, never lowered to a chip.
    Softmax {
        /// Per-sample axis.
        axis: usize,
        /// Log-softmax instead of softmax.
        log: bool,
    },
    /// A float tensor op of the imported graph that no chip runs (see [`crate::tensor_op`]):
    /// kept by `eval`, rejected by the compile pipeline.
    Tensor(crate::TensorOp),
    /// Canonical layer (synapses + population + pooling).
    Layer(Layer),
    /// Float to integer conversion at the chip boundary.
    Quantize(QuantParams),
    /// Float rounding to a quantisation grid, as an ONNX QuantizeLinear→DequantizeLinear pair on an
    /// activation: `y = (clamp(round_half_even(x / scale) + zero_point, min, max) − zero_point) · scale`.
    /// Its scale is a hint for quantisation; the canonical pipeline removes it.
    FakeQuant {
        /// Grid step.
        scale: f32,
        /// Integer that represents real zero.
        zero_point: i32,
        /// Smallest integer of the grid.
        min: i32,
        /// Largest integer of the grid.
        max: i32,
    },
    /// Integer to float conversion at the chip boundary: `x = scale · q`.
    Dequantize {
        /// Real value of one integer unit.
        scale: f32,
    },
}

impl Op {
    /// Text-format mnemonic.
    pub fn mnemonic(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Dense { .. } => "dense",
            Op::Conv2d { .. } => "conv2d",
            Op::Pool2d(_) => "pool2d",
            Op::ChannelAffine { .. } => "channel_affine",
            Op::Add => "add",
            Op::Act(Activation::Relu) => "relu",
            Op::Act(Activation::Clip { .. }) => "clip",
            Op::Act(Activation::Spiking(m)) => m.name(),
            Op::Concat { .. } => "concat",
            Op::Reshape => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Softmax { .. } => "softmax",
            Op::Tensor(t) => t.mnemonic(),
            Op::Layer(_) => "layer",
            Op::Quantize(_) => "quantize",
            Op::Dequantize { .. } => "dequantize",
            Op::FakeQuant { .. } => "fake_quant",
        }
    }

    /// Constants this op refers to, in a fixed order.
    pub fn constants(&self) -> Vec<ConstId> {
        match self {
            Op::Dense { weight, bias } | Op::Conv2d { weight, bias, .. } => {
                std::iter::once(*weight).chain(*bias).collect()
            }
            Op::ChannelAffine { scale, shift } => vec![*scale, *shift],
            Op::Tensor(t) => t.constants(),
            Op::Layer(l) => {
                let mut v: Vec<ConstId> = l.synapses.iter().map(Synapse::weight).collect();
                v.extend(l.bias);
                if let Some(q) = &l.quant {
                    v.extend(q.bias);
                    v.extend(q.act_step());
                }
                v
            }
            _ => Vec::new(),
        }
    }
}

/// Rewrites every constant id of an op with `f` (used when constants move between pools).
pub fn remap_constants(op: &mut Op, mut f: impl FnMut(ConstId) -> ConstId) {
    match op {
        Op::Dense { weight, bias } | Op::Conv2d { weight, bias, .. } => {
            *weight = f(*weight);
            if let Some(b) = bias {
                *b = f(*b);
            }
        }
        Op::ChannelAffine { scale, shift } => {
            *scale = f(*scale);
            *shift = f(*shift);
        }
        Op::Tensor(t) => t.remap_constants(f),
        Op::Layer(l) => {
            for s in &mut l.synapses {
                match s {
                    Synapse::Dense { weight } | Synapse::Conv { weight, .. } => {
                        *weight = f(*weight)
                    }
                }
            }
            if let Some(b) = &mut l.bias {
                *b = f(*b);
            }
            if let Some(q) = &mut l.quant {
                if let Some(b) = &mut q.bias {
                    *b = f(*b);
                }
                if let QuantMode::Step {
                    act_step: Some(s), ..
                } = &mut q.mode
                {
                    *s = f(*s);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// netx's zero decays are infinite time constants and netx and NIR neurons have no lower
    /// bound: `check` accepts `+∞` taus and a `−∞` `v_min`, nothing else non-finite.
    #[test]
    fn check_accepts_infinite_taus_and_unbounded_v_min() {
        let m = SpikingModel::CubaLif {
            tau_syn: f32::INFINITY,
            tau_mem: f32::INFINITY,
            r: 1.0,
            v_leak: 0.0,
            w_in: 1.0,
            threshold: 64.0,
            reset: Reset::Zero,
            v_min: f32::NEG_INFINITY,
        };
        assert_eq!(m.check(), Ok(()));
        let bad = |m: SpikingModel| assert!(m.check().is_err(), "{m:?}");
        if let SpikingModel::CubaLif { .. } = m {
            let mut x = m;
            if let SpikingModel::CubaLif { tau_syn, .. } = &mut x {
                *tau_syn = f32::NAN;
            }
            bad(x);
            let mut x = m;
            if let SpikingModel::CubaLif { tau_mem, .. } = &mut x {
                *tau_mem = f32::NEG_INFINITY;
            }
            bad(x);
            let mut x = m;
            if let SpikingModel::CubaLif { threshold, .. } = &mut x {
                *threshold = f32::INFINITY;
            }
            bad(x);
            let mut x = m;
            if let SpikingModel::CubaLif { v_min, .. } = &mut x {
                *v_min = f32::INFINITY;
            }
            bad(x);
        }
        bad(SpikingModel::If {
            threshold: 1.0,
            reset: Reset::Zero,
            v_min: f32::NAN,
        });
    }
}
