//! The reference interpreter: executes a graph on one sample, in float for the imported graph and in
//! exact integer arithmetic for quantised layers. It is the golden model: emulators must reproduce
//! its integer outputs bit for bit.
//!
//! Integer semantics of a quantised [`Layer`](crate::Layer) with operands `x_g` (integers):
//! 1. per synapse group `g`: `acc_g = Σ w·x` (exact, 64-bit), then `acc_g << e_g` for
//!    `e_g = weight_exp[g] ≥ 0`, or `acc_g >> -e_g` (arithmetic, i.e. floor) when negative;
//!    `acc = Σ_g acc_g`;
//! 2. only with `pool_first`: `acc` is pooled per channel (max; sum; average as
//!    `floor(sum / count)`) and the rest runs on the pooled sums;
//! 3. `v = sat_state(acc + bias[c])`, saturating to `state_bits` two's complement;
//! 4. `y = clamp(R(v / (step[c] · 2^act_shift)), act_min, act_max)` with `step[c]` the layer's
//!    `act_step` (1 when absent) and `R` its `act_round`: floor (the default, so with step 1 this
//!    is the arithmetic shift `v >> act_shift`) or ceil (Akida's rule, docs/chips.md §6). The neuron
//!    model is encoded in the range: ReLU has `act_min = 0`, a clip its upper bound, a linear
//!    readout the full range;
//! 5. without `pool_first`, pooling on `y`: max; sum; average as `floor(sum / count)`.
//!
//! With the defaults (`act_step` absent, floor, no `pool_first`) steps 2 and 4 reduce to
//! `y = clamp(v >> act_shift, act_min, act_max)` followed by pooling, the original semantics.
//!
//! Native spiking neurons in the *float* graph ([`crate::SpikingModel`], imported from the
//! `ai.nmc` ONNX domain, NIR or netx) run as their rate limit: IF gives `max(x, 0) / threshold`
//! (spikes per timestep as T → ∞, exact for subtractive reset), SigmaDelta its activation; LIF and
//! CubaLIF have no single-pass meaning and are rejected here: they run quantised, in snn mode.
//!
//! # Rate mode (time-stepped integer semantics)
//!
//! A graph whose layers carry [`crate::SpikeQuant`] (`quant.spiking`) runs over `T` timesteps with
//! [`Interpreter::run_steps`] (dense inputs, rate-encoded) or [`Interpreter::run_events`] (input
//! event counts per step). [`Interpreter::run`] rejects it. Values are *event counts*: non-negative
//! integers per element and timestep. Each timestep `t = 0, 1, …, T−1`:
//!
//! 1. **inputs**: a `Quantize` node reading graph input `i` is a deterministic rate encoder
//!    ([`RateEncoder`]): `q = quantize(x) ∈ [0, max]` (its `min` must be 0); each element keeps
//!    an accumulator that starts at `⌊max/2⌋`, adds `q` every step and emits one event whenever
//!    it reaches `max` (then subtracts `max`). So an element at full scale fires every step and
//!    the count after `T` steps is `⌊(⌊max/2⌋ + T·q) / max⌋`. With `run_events` the given counts
//!    replace the encoder's output.
//! 2. **nodes in topological order, all within the same step** (no synaptic delay: an event
//!    emitted by a layer at step `t` reaches its consumers at step `t`): views pass the step's
//!    counts through (`Reshape`, `Concat`), integer `Pool2d` sums them, and each spiking layer
//!    does, per neuron with state `v` (initially 0) in output channel `c`:
//!    1. `I = Σ_g shift(W_g · e_g, weight_exp[g]) + bias[c]` over this step's input counts `e_g`
//!       (exact, 64-bit; the bias is added every step, so a negative bias is a constant leak);
//!    2. `v = v + I`, exact, with no cap within the step: the chip applies events one at a time
//!       and fires as the state crosses the threshold, so it never holds the step's whole sum, and
//!       sinabs integrates in floating point without a cap (docs/chips.md §7); `state_bits` only
//!       chose the discretisation;
//!    3. `k = min(⌊v / threshold⌋, act_max)` spikes if `v ≥ threshold`, else `k = 0` (sinabs'
//!       `MultiSpike`: several spikes in one step when `v` exceeds several thresholds);
//!    4. reset: `subtract` gives `v −= k · threshold`; `zero` gives `v = 0` when `k > 0`;
//!    5. lower clamp: `v = max(v, v_min)`;
//!    6. the layer's events this step are the `k`s, then its pooling (sum) over them.
//! 3. **outputs**: a `Dequantize` sums its operand's counts over the run; the float output is the
//!    mean rate times the scale, `Σ_t counts · scale / T`.
//!
//! Because `v < threshold` after every step (given `v_min ≤ 0 < threshold`), a neuron that
//! receives no event and has zero bias never changes and never fires: work can be proportional to
//! events, which is what an event-driven emulator exploits.
//!
//! # Snn mode (Loihi's CUBA-LIF, time-stepped)
//!
//! A graph whose layers carry [`crate::CubaQuant`] (`quant.cuba`) runs the same way, over `T`
//! timesteps with [`Interpreter::run_events`] (spike tensors: `events[t][i]`, binary or graded) or
//! [`Interpreter::run_steps`] (rate-encoded dense inputs), with two differences that make it
//! Lava's `Loihi2SimCfg(select_tag="fixed_pt")` execution of a netx network (docs/chips.md §1.4, §1.6):
//!
//! 1. **one timestep of synaptic delay per hop**: a CUBA layer at step `t` reads what its
//!    operands held at step `t − 1` (zeros at `t = 0`), as Lava's `Dense` sends at step `t` the
//!    activation it accumulated from the spikes of step `t − 1`; views (`Reshape`, `Concat`, sum
//!    `Pool2d`) pass values on within the step. A layer `d` hops from the input first sees input
//!    step `t` at step `t + d`, so a run needs `T + depth` steps for the last input to reach the
//!    output (`nmc run --timesteps`);
//! 2. **the neuron** is [`crate::CubaQuant::step`] with `a = Σ_g shift(W_g · e_g, weight_exp[g]) +
//!    bias[c]` (exact, 64-bit; the bias is a constant input current each step): the current
//!    decays and wraps at 24 bits, the voltage decays and saturates, a spike is `v > vth <<
//!    act_shift`, then reset. Each spike is one event (value 1).
//!
//! Outputs are as in rate mode: per-step spikes (`StepRun::per_step`) and their counts.

use crate::{Activation, ConstId, ConvGeom, Graph, NodeId, Op, Pool, PoolKind, Synapse};

/// Values of one node for one sample, flattened row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Float values.
    F32(Vec<f32>),
    /// Integer values (quantised domain).
    I64(Vec<i64>),
}

impl Value {
    /// The values as floats (integers converted).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Value::F32(v) => v.clone(),
            Value::I64(v) => v.iter().map(|x| *x as f32).collect(),
        }
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Value::F32(v) => v.len(),
            Value::I64(v) => v.len(),
        }
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why the interpreter could not run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InterpError {
    /// The graph is invalid (run the verifier for details).
    #[error("cannot interpret {node}: {message}")]
    Unsupported {
        /// The node.
        node: NodeId,
        /// Why.
        message: String,
    },
    /// An input has the wrong number of elements.
    #[error("input #{index} has {got} values, the model expects {expected}")]
    InputSize {
        /// Input position.
        index: usize,
        /// Values given.
        got: usize,
        /// Values expected.
        expected: usize,
    },
    /// Wrong number of inputs.
    #[error("the model has {expected} input(s), {got} given")]
    InputCount {
        /// Inputs given.
        got: usize,
        /// Inputs expected.
        expected: usize,
    },
}

/// `max(x, 0)` as IEEE 754 and onnxruntime compute it: NaN stays NaN (`f32::max` would return
/// the other operand).
fn relu(x: f32) -> f32 {
    if x.is_nan() {
        x
    } else {
        x.max(0.0)
    }
}

/// `min(max(x, lo), hi)`, NaN propagating like [`relu`].
fn clip(x: f32, lo: f32, hi: f32) -> f32 {
    if x.is_nan() {
        x
    } else {
        x.max(lo).min(hi)
    }
}

enum Weights {
    F(Vec<f32>),
    I(Vec<i64>),
}

/// A prepared interpreter: weights densified once, then any number of samples.
pub struct Interpreter<'g> {
    graph: &'g Graph,
    order: Vec<NodeId>,
    weights: std::collections::BTreeMap<ConstId, Weights>,
}

impl<'g> Interpreter<'g> {
    /// Prepares `graph`, which must be valid (see [`crate::verify`]).
    pub fn new(graph: &'g Graph) -> Result<Self, InterpError> {
        let order = graph.topo_order().map_err(|c| InterpError::Unsupported {
            node: c.0,
            message: "graph has a cycle".into(),
        })?;
        let mut weights = std::collections::BTreeMap::new();
        for id in graph.ids() {
            for c in graph.node(id).op.constants() {
                let k = graph.consts.get(c);
                let w = if let Some(v) = k.to_i32() {
                    Weights::I(v.into_iter().map(i64::from).collect())
                } else if let Some(v) = k.to_f32() {
                    Weights::F(v)
                } else {
                    return Err(InterpError::Unsupported {
                        node: id,
                        message: format!("constant {c} has no values"),
                    });
                };
                weights.insert(c, w);
            }
        }
        Ok(Interpreter {
            graph,
            order,
            weights,
        })
    }

    fn wf(&self, c: ConstId) -> &[f32] {
        match &self.weights[&c] {
            Weights::F(v) => v,
            Weights::I(_) => &[],
        }
    }
    fn wi(&self, c: ConstId) -> &[i64] {
        match &self.weights[&c] {
            Weights::I(v) => v,
            Weights::F(_) => &[],
        }
    }

    /// Runs one sample; returns the outputs (flattened, in graph output order).
    pub fn run(&self, inputs: &[&[f32]]) -> Result<Vec<Value>, InterpError> {
        let vals = self.run_all(inputs)?;
        Ok(self
            .graph
            .outputs
            .iter()
            .map(|o| vals[o.node.index()].clone().expect("output computed"))
            .collect())
    }

    /// Runs one sample; returns the value of every node (indexed by arena position).
    pub fn run_all(&self, inputs: &[&[f32]]) -> Result<Vec<Option<Value>>, InterpError> {
        let g = self.graph;
        if inputs.len() != g.inputs.len() {
            return Err(InterpError::InputCount {
                got: inputs.len(),
                expected: g.inputs.len(),
            });
        }
        let mut vals: Vec<Option<Value>> = vec![None; g.nodes.len()];
        for &id in &self.order {
            let node = g.node(id);
            let bad = |m: &str| InterpError::Unsupported {
                node: id,
                message: m.to_string(),
            };
            let arg = |k: usize| -> &Value {
                vals[node.inputs[k].index()]
                    .as_ref()
                    .expect("topological order")
            };
            let in_shape = |k: usize| g.ty(node.inputs[k]).shape.as_slice();
            let v = match &node.op {
                Op::Input { index } => {
                    let x = inputs[*index];
                    if x.len() != node.ty.numel() {
                        return Err(InterpError::InputSize {
                            index: *index,
                            got: x.len(),
                            expected: node.ty.numel(),
                        });
                    }
                    Value::F32(x.to_vec())
                }
                Op::Dense { weight, bias } => {
                    let Value::F32(x) = arg(0) else {
                        return Err(bad("float dense on integers"));
                    };
                    let mut y = dense_f(self.wf(*weight), x, node.ty.numel());
                    if let Some(b) = bias {
                        add_bias_f(&mut y, self.wf(*b));
                    }
                    Value::F32(y)
                }
                Op::Conv2d { weight, bias, geom } => {
                    let Value::F32(x) = arg(0) else {
                        return Err(bad("float conv on integers"));
                    };
                    let mut y = conv_f(self.wf(*weight), x, in_shape(0), &node.ty.shape, geom);
                    if let Some(b) = bias {
                        add_bias_f(&mut y, self.wf(*b));
                    }
                    Value::F32(y)
                }
                Op::Pool2d(p) => match arg(0) {
                    Value::F32(x) => Value::F32(pool_f(x, in_shape(0), &node.ty.shape, p)),
                    Value::I64(x) => Value::I64(pool_i(x, in_shape(0), &node.ty.shape, p)),
                },
                Op::ChannelAffine { scale, shift } => {
                    let Value::F32(x) = arg(0) else {
                        return Err(bad("channel affine on integers"));
                    };
                    let (s, t) = (self.wf(*scale), self.wf(*shift));
                    let per = x.len() / s.len().max(1);
                    Value::F32(
                        x.iter()
                            .enumerate()
                            .map(|(i, v)| v * s[i / per] + t[i / per])
                            .collect(),
                    )
                }
                Op::Add => match (arg(0), arg(1)) {
                    (Value::F32(a), Value::F32(b)) => {
                        Value::F32(a.iter().zip(b).map(|(x, y)| x + y).collect())
                    }
                    (Value::I64(a), Value::I64(b)) => {
                        Value::I64(a.iter().zip(b).map(|(x, y)| x + y).collect())
                    }
                    _ => return Err(bad("add of mixed types")),
                },
                Op::Act(a) => {
                    let Value::F32(x) = arg(0) else {
                        return Err(bad("activation on integers"));
                    };
                    Value::F32(match a {
                        Activation::Relu => x.iter().map(|&v| relu(v)).collect(),
                        Activation::Clip { lo, hi } => {
                            x.iter().map(|&v| clip(v, *lo, *hi)).collect()
                        }
                        Activation::Spiking(m) => {
                            let f = rate_limit(m).map_err(|e| bad(&e))?;
                            x.iter().map(|v| f(*v)).collect()
                        }
                    })
                }
                Op::Concat { axis } => {
                    let parts: Vec<(&Value, &[usize])> = (0..node.inputs.len())
                        .map(|k| (arg(k), in_shape(k)))
                        .collect();
                    concat(&parts, *axis)
                }
                Op::Reshape => arg(0).clone(),
                Op::Tensor(t) => {
                    let mut xs = Vec::with_capacity(node.inputs.len());
                    for k in 0..node.inputs.len() {
                        let Value::F32(x) = arg(k) else {
                            return Err(bad("float tensor op on integers"));
                        };
                        xs.push((x.as_slice(), in_shape(k)));
                    }
                    let c = |id: ConstId| (self.wf(id).to_vec(), g.consts.get(id).shape.clone());
                    Value::F32(crate::tensor_op::eval(t, &xs, &c, &node.ty.shape))
                }
                Op::Transpose { perm } => transpose(arg(0), in_shape(0), perm),
                Op::Softmax { axis, log } => {
                    let Value::F32(x) = arg(0) else {
                        return Err(bad("softmax on integers"));
                    };
                    Value::F32(softmax(x, &node.ty.shape, *axis, *log))
                }
                Op::Layer(l) => {
                    let pre_shape = match &l.synapses[0] {
                        Synapse::Dense { weight } => vec![g.consts.get(*weight).shape[0]],
                        Synapse::Conv { weight, geom } => {
                            let s = in_shape(0);
                            let (oh, ow) = geom
                                .out_hw(s[1], s[2])
                                .ok_or_else(|| bad("kernel does not fit"))?;
                            vec![g.consts.get(*weight).shape[0], oh, ow]
                        }
                    };
                    let n: usize = pre_shape.iter().product();
                    match &l.quant {
                        None => {
                            let mut y = vec![0f32; n];
                            for (k, s) in l.synapses.iter().enumerate() {
                                let Value::F32(x) = arg(k) else {
                                    return Err(bad("float layer on integers"));
                                };
                                let part = match s {
                                    Synapse::Dense { weight } => dense_f(self.wf(*weight), x, n),
                                    Synapse::Conv { weight, geom } => {
                                        conv_f(self.wf(*weight), x, in_shape(k), &pre_shape, geom)
                                    }
                                };
                                y.iter_mut().zip(part).for_each(|(a, b)| *a += b);
                            }
                            if let Some(b) = l.bias {
                                add_bias_f(&mut y, self.wf(b));
                            }
                            match l.neuron {
                                crate::Neuron::Relu => y.iter_mut().for_each(|v| *v = relu(*v)),
                                crate::Neuron::Clip { lo, hi } => {
                                    y.iter_mut().for_each(|v| *v = clip(*v, lo, hi))
                                }
                                crate::Neuron::Linear => {}
                                crate::Neuron::Spiking(m) => {
                                    let f = rate_limit(&m).map_err(|e| bad(&e))?;
                                    y.iter_mut().for_each(|v| *v = f(*v))
                                }
                            }
                            match &l.pool {
                                Some(p) => Value::F32(pool_f(&y, &pre_shape, &node.ty.shape, p)),
                                None => Value::F32(y),
                            }
                        }
                        Some(q) if q.is_stepped() => {
                            return Err(bad(
                                "a spiking (rate- or snn-mode) layer runs over timesteps: use run_steps or run_events",
                            ))
                        }
                        Some(q) => {
                            let mut acc = vec![0i64; n];
                            for (k, s) in l.synapses.iter().enumerate() {
                                let Value::I64(x) = arg(k) else {
                                    return Err(bad("integer layer on floats"));
                                };
                                let part = match s {
                                    Synapse::Dense { weight } => dense_i(self.wi(*weight), x, n),
                                    Synapse::Conv { weight, geom } => {
                                        conv_i(self.wi(*weight), x, in_shape(k), &pre_shape, geom)
                                    }
                                };
                                let e = q.weight_exp[k];
                                acc.iter_mut()
                                    .zip(part)
                                    .for_each(|(a, b)| *a += shift(b, e));
                            }
                            let (mut acc, n) = match (&l.pool, q.pool_first()) {
                                (Some(p), true) => {
                                    let pooled = pool_i(&acc, &pre_shape, &node.ty.shape, p);
                                    let m = pooled.len();
                                    (pooled, m)
                                }
                                _ => (acc, n),
                            };
                            if let Some(b) = q.bias {
                                let b = self.wi(b);
                                let per = n / b.len().max(1);
                                acc.iter_mut()
                                    .enumerate()
                                    .for_each(|(i, a)| *a += b[i / per]);
                            }
                            let y: Vec<i64> = match q.act_step() {
                                None => acc.into_iter().map(|v| activate(v, q)).collect(),
                                Some(st) => {
                                    let st = self.wi(st);
                                    let per = n / st.len().max(1);
                                    acc.into_iter()
                                        .enumerate()
                                        .map(|(i, v)| activate_div(v, q, st[i / per]))
                                        .collect()
                                }
                            };
                            match &l.pool {
                                Some(p) if !q.pool_first() => {
                                    Value::I64(pool_i(&y, &pre_shape, &node.ty.shape, p))
                                }
                                _ => Value::I64(y),
                            }
                        }
                    }
                }
                Op::Quantize(q) => {
                    let Value::F32(x) = arg(0) else {
                        return Err(bad("quantize of integers"));
                    };
                    Value::I64(x.iter().map(|v| quantize(*v, q)).collect())
                }
                Op::FakeQuant {
                    scale,
                    zero_point,
                    min,
                    max,
                } => {
                    let Value::F32(x) = arg(0) else {
                        return Err(bad("fake quantisation of integers"));
                    };
                    let zp = *zero_point as f32;
                    let q = |v: f32| {
                        (crate::round_even_f32(v / scale) + zp).clamp(*min as f32, *max as f32)
                    };
                    Value::F32(x.iter().map(|v| (q(*v) - zp) * scale).collect())
                }
                Op::Dequantize { scale } => {
                    let Value::I64(x) = arg(0) else {
                        return Err(bad("dequantize of floats"));
                    };
                    Value::F32(x.iter().map(|v| *v as f32 * scale).collect())
                }
            };
            vals[id.index()] = Some(v);
        }
        Ok(vals)
    }
}

/// The result of a rate-mode run ([`Interpreter::run_steps`], [`Interpreter::run_events`]).
#[derive(Clone, Debug, PartialEq)]
pub struct StepRun {
    /// Timesteps run.
    pub timesteps: u32,
    /// Per graph output: the event counts of its integer value (the operand of its
    /// `Dequantize`), summed over all timesteps.
    pub counts: Vec<Vec<i64>>,
    /// Per graph output and timestep: that step's counts.
    pub per_step: Vec<Vec<Vec<i64>>>,
    /// Per graph output: the float output, `counts · scale / T`.
    pub outputs: Vec<Vec<f32>>,
    /// Per node (indexed by `NodeId::index`) of a layer or an input's `Quantize`: per element,
    /// the steps in which it sent an event (a non-zero value); empty for other nodes. What the
    /// floorline model's activity profile of a stepped network is measured from.
    pub active_steps: Vec<Vec<u32>>,
}

/// The deterministic rate encoder of rate mode (see the module docs): one accumulator per
/// element, starting at `⌊full/2⌋`, adding the element's level each step and emitting one event
/// per crossing of `full`. Emulators use the same encoder, so they see the same input events.
#[derive(Clone, Debug)]
pub struct RateEncoder {
    /// (element, level) for every element with a non-zero level, in element order.
    levels: Vec<(usize, i64)>,
    acc: Vec<i64>,
    full: i64,
}

impl RateEncoder {
    /// An encoder for integer levels in `[0, full]` (values outside are clamped).
    pub fn new(levels: &[i64], full: i64) -> Self {
        let full = full.max(1);
        let levels: Vec<(usize, i64)> = levels
            .iter()
            .enumerate()
            .filter(|(_, q)| **q > 0)
            .map(|(i, q)| (i, (*q).min(full)))
            .collect();
        RateEncoder {
            acc: vec![full / 2; levels.len()],
            levels,
            full,
        }
    }

    /// Advances one timestep; calls `fire` with the index of every element that emits an event
    /// (at most one per element and step), in increasing order.
    pub fn step(&mut self, mut fire: impl FnMut(usize)) {
        for ((i, q), a) in self.levels.iter().zip(&mut self.acc) {
            *a += q;
            if *a >= self.full {
                *a -= self.full;
                fire(*i);
            }
        }
    }
}

/// One timestep of a quantised integrate-and-fire neuron (steps 2–5 of the rate-mode semantics in
/// the module docs): `v` is the state, `input` this step's summed input including the bias.
/// Returns the number of spikes.
pub fn if_step(v: &mut i64, input: i64, q: &crate::LayerQuant, s: &crate::SpikeQuant) -> i64 {
    let th = i64::from(s.threshold.max(1));
    // No cap within a step: the chip applies events one at a time and fires as the state
    // crosses the threshold, so it never holds the step's whole sum, and sinabs integrates it
    // in floating point without a cap (docs/chips.md §7). `state_bits` sets the discretisation.
    let mut x = v.saturating_add(input);
    let k = if x >= th {
        (x / th).min(i64::from(q.act_max))
    } else {
        0
    };
    match s.reset {
        crate::Reset::Subtract => x -= k * th,
        crate::Reset::Zero => {
            if k > 0 {
                x = 0
            }
        }
    }
    *v = x.max(i64::from(s.v_min));
    k
}

/// The single-pass (rate-limit) meaning of a spiking model in the float graph.
fn rate_limit(m: &crate::SpikingModel) -> Result<impl Fn(f32) -> f32, String> {
    use crate::SpikingModel as M;
    let (scale, relu) = match *m {
        M::If { threshold, .. } => (1.0 / threshold, true),
        M::SigmaDelta { relu, .. } => (1.0, relu),
        M::Lif { .. } | M::CubaLif { .. } => {
            return Err(format!(
                "`{}` neurons have no single-pass (rate-limit) meaning; they need the snn execution mode, which nmc does not implement yet",
                m.name()
            ))
        }
    };
    Ok(move |x: f32| if relu { x.max(0.0) * scale } else { x * scale })
}

/// Where a rate-mode run gets its input events.
enum EventSource<'a> {
    /// Rate-encode dense inputs.
    Dense(&'a [&'a [f32]]),
    /// Given counts: `[step][graph input][element]`.
    Counts(&'a [Vec<Vec<i64>>]),
}

impl Interpreter<'_> {
    /// Runs a rate-mode graph for `timesteps` steps on one sample of dense inputs, each
    /// rate-encoded by its `Quantize` node (see the module docs).
    pub fn run_steps(&self, inputs: &[&[f32]], timesteps: u32) -> Result<StepRun, InterpError> {
        self.run_rate(EventSource::Dense(inputs), timesteps)
    }

    /// Runs a rate-mode graph on input event counts: `events[t][i]` holds, for timestep `t` and
    /// graph input `i`, the number of events of each element of that input's `Quantize` output.
    pub fn run_events(&self, events: &[Vec<Vec<i64>>]) -> Result<StepRun, InterpError> {
        self.run_rate(EventSource::Counts(events), events.len() as u32)
    }

    fn run_rate(&self, src: EventSource, timesteps: u32) -> Result<StepRun, InterpError> {
        let g = self.graph;
        let n_inputs = g.inputs.len();
        match &src {
            EventSource::Dense(x) if x.len() != n_inputs => {
                return Err(InterpError::InputCount {
                    got: x.len(),
                    expected: n_inputs,
                })
            }
            EventSource::Counts(ev) => {
                for step in ev.iter() {
                    if step.len() != n_inputs {
                        return Err(InterpError::InputCount {
                            got: step.len(),
                            expected: n_inputs,
                        });
                    }
                    for (index, e) in step.iter().enumerate() {
                        let want = g.ty(g.inputs[index]).numel();
                        if e.len() != want || e.iter().any(|c| *c < 0) {
                            return Err(InterpError::InputSize {
                                index,
                                got: e.len(),
                                expected: want,
                            });
                        }
                    }
                }
            }
            _ => {}
        }
        // Per-node state: rate encoders (Quantize), membranes (layers), sums (Dequantize).
        let mut encoders: Vec<Option<RateEncoder>> = vec![None; g.nodes.len()];
        let mut membranes: Vec<Vec<i64>> = vec![Vec::new(); g.nodes.len()];
        // Snn mode: CUBA currents, and whether layers read the previous step (synaptic delay).
        let mut currents: Vec<Vec<i64>> = vec![Vec::new(); g.nodes.len()];
        let mut delayed = false;
        let mut totals: Vec<Vec<i64>> = vec![Vec::new(); g.nodes.len()];
        let out_nodes: Vec<NodeId> = g.outputs.iter().map(|o| o.node).collect();
        let mut per_step: Vec<Vec<Vec<i64>>> = vec![Vec::new(); out_nodes.len()];
        for &id in &self.order {
            let node = g.node(id);
            let bad = |m: &str| InterpError::Unsupported {
                node: id,
                message: m.to_string(),
            };
            match &node.op {
                Op::Quantize(q) => {
                    if q.min != 0 || q.max < 1 {
                        return Err(bad(
                            "rate encoding needs a non-negative input grid [0, max] with max ≥ 1",
                        ));
                    }
                    let Some(Op::Input { index }) = node.inputs.first().map(|i| &g.node(*i).op)
                    else {
                        return Err(bad("in rate mode a quantize must read a graph input"));
                    };
                    if let EventSource::Dense(x) = &src {
                        let x = x[*index];
                        if x.len() != node.ty.numel() {
                            return Err(InterpError::InputSize {
                                index: *index,
                                got: x.len(),
                                expected: node.ty.numel(),
                            });
                        }
                        let levels: Vec<i64> = x.iter().map(|v| quantize(*v, q)).collect();
                        encoders[id.index()] = Some(RateEncoder::new(&levels, i64::from(q.max)));
                    }
                }
                Op::Layer(l) => {
                    match &l.quant {
                        Some(q) if q.is_stepped() => {
                            membranes[id.index()] = vec![0; pre_numel(g, id, l)?];
                            if q.cuba().is_some() {
                                delayed = true;
                                currents[id.index()] = vec![0; pre_numel(g, id, l)?];
                            }
                        }
                        _ => return Err(bad(
                            "rate and snn modes run spiking layers only (this layer has neither quant.spiking nor quant.cuba)",
                        )),
                    }
                }
                Op::Dequantize { .. } => totals[id.index()] = vec![0; node.ty.numel()],
                Op::Input { .. } | Op::Reshape | Op::Concat { .. } => {}
                Op::Pool2d(p) if p.kind == PoolKind::Sum => {}
                other => {
                    return Err(bad(&format!(
                        "`{}` has no rate-mode semantics",
                        other.mnemonic()
                    )))
                }
            }
        }
        let mut vals: Vec<Vec<i64>> = vec![Vec::new(); g.nodes.len()];
        let mut active: Vec<Vec<u32>> = vec![Vec::new(); g.nodes.len()];
        // Every value of the previous step (all zeros before the first): what a CUBA layer reads.
        let mut before: Vec<Vec<i64>> = Vec::new();
        for t in 0..timesteps as usize {
            if delayed {
                before = if t == 0 {
                    self.order.iter().map(|&id| (id, g.ty(id).numel())).fold(
                        vec![Vec::new(); g.nodes.len()],
                        |mut b, (id, n)| {
                            b[id.index()] = vec![0; n];
                            b
                        },
                    )
                } else {
                    vals.clone()
                };
            }
            for &id in &self.order {
                let node = g.node(id);
                let arg = |k: usize| &vals[node.inputs[k].index()];
                let in_shape = |k: usize| g.ty(node.inputs[k]).shape.as_slice();
                let v: Vec<i64> = match &node.op {
                    Op::Input { .. } => Vec::new(),
                    Op::Quantize(_) => match &src {
                        EventSource::Dense(_) => {
                            let mut e = vec![0i64; node.ty.numel()];
                            if let Some(enc) = encoders[id.index()].as_mut() {
                                enc.step(|i| e[i] += 1);
                            }
                            e
                        }
                        EventSource::Counts(ev) => {
                            let Op::Input { index } = g.node(node.inputs[0]).op else {
                                unreachable!("checked above")
                            };
                            ev[t][index].clone()
                        }
                    },
                    Op::Reshape => arg(0).clone(),
                    Op::Concat { axis } => {
                        let parts: Vec<Value> = (0..node.inputs.len())
                            .map(|k| Value::I64(arg(k).clone()))
                            .collect();
                        let refs: Vec<(&Value, &[usize])> = parts
                            .iter()
                            .enumerate()
                            .map(|(k, v)| (v, in_shape(k)))
                            .collect();
                        match concat(&refs, *axis) {
                            Value::I64(v) => v,
                            Value::F32(_) => unreachable!("integer parts"),
                        }
                    }
                    Op::Pool2d(p) => pool_i(arg(0), in_shape(0), &node.ty.shape, p),
                    Op::Layer(l) => {
                        let q = l.quant.as_ref().expect("checked above");
                        let v = &mut membranes[id.index()];
                        let n = v.len();
                        let pre_shape = pre_shape(g, id, l);
                        let mut acc = vec![0i64; n];
                        let cuba = q.cuba();
                        for (k, syn) in l.synapses.iter().enumerate() {
                            // A CUBA layer reads what its sources sent the step before.
                            let x = if cuba.is_some() {
                                &before[node.inputs[k].index()]
                            } else {
                                arg(k)
                            };
                            let part = match syn {
                                Synapse::Dense { weight } => dense_i(self.wi(*weight), x, n),
                                Synapse::Conv { weight, geom } => {
                                    conv_i(self.wi(*weight), x, in_shape(k), &pre_shape, geom)
                                }
                            };
                            let e = q.weight_exp[k];
                            acc.iter_mut()
                                .zip(part)
                                .for_each(|(a, b)| *a += shift(b, e));
                        }
                        if let Some(b) = q.bias {
                            let b = self.wi(b);
                            let per = n / b.len().max(1);
                            acc.iter_mut()
                                .enumerate()
                                .for_each(|(i, a)| *a += b[i / per]);
                        }
                        let spikes: Vec<i64> = match (cuba, q.spiking()) {
                            (Some(c), _) => v
                                .iter_mut()
                                .zip(currents[id.index()].iter_mut())
                                .zip(acc)
                                .map(|((v, u), a)| i64::from(c.step(u, v, a, q.act_shift)))
                                .collect(),
                            (None, Some(sq)) => v
                                .iter_mut()
                                .zip(acc)
                                .map(|(v, i)| if_step(v, i, q, sq))
                                .collect(),
                            (None, None) => unreachable!("checked above"),
                        };
                        match &l.pool {
                            Some(p) => pool_i(&spikes, &pre_shape, &node.ty.shape, p),
                            None => spikes,
                        }
                    }
                    Op::Dequantize { .. } => {
                        let x = arg(0);
                        totals[id.index()]
                            .iter_mut()
                            .zip(x)
                            .for_each(|(s, c)| *s += c);
                        x.clone()
                    }
                    _ => unreachable!("rejected above"),
                };
                vals[id.index()] = v;
            }
            for (k, o) in out_nodes.iter().enumerate() {
                per_step[k].push(vals[o.index()].clone());
            }
            for &id in &self.order {
                if matches!(g.node(id).op, Op::Layer(_) | Op::Quantize(_)) {
                    let a = &mut active[id.index()];
                    let v = &vals[id.index()];
                    if a.len() != v.len() {
                        a.resize(v.len(), 0);
                    }
                    a.iter_mut()
                        .zip(v)
                        .for_each(|(a, x)| *a += u32::from(*x != 0));
                }
            }
        }
        let mut counts = Vec::with_capacity(out_nodes.len());
        let mut outputs = Vec::with_capacity(out_nodes.len());
        for o in &out_nodes {
            let Op::Dequantize { scale } = g.node(*o).op else {
                return Err(InterpError::Unsupported {
                    node: *o,
                    message: "a rate-mode output must be a dequantize".into(),
                });
            };
            let c = std::mem::take(&mut totals[o.index()]);
            let t = timesteps.max(1) as f32;
            outputs.push(c.iter().map(|v| *v as f32 * scale / t).collect());
            counts.push(c);
        }
        Ok(StepRun {
            timesteps,
            counts,
            per_step,
            outputs,
            active_steps: active,
        })
    }
}

/// The pre-pool shape of a layer's population.
fn pre_shape(g: &Graph, id: NodeId, l: &crate::Layer) -> Vec<usize> {
    match &l.synapses[0] {
        Synapse::Dense { weight } => vec![g.consts.get(*weight).shape[0]],
        Synapse::Conv { weight, geom } => {
            let s = &g.ty(g.node(id).inputs[0]).shape;
            let (oh, ow) = geom.out_hw(s[1], s[2]).unwrap_or((0, 0));
            vec![g.consts.get(*weight).shape[0], oh, ow]
        }
    }
}

fn pre_numel(g: &Graph, id: NodeId, l: &crate::Layer) -> Result<usize, InterpError> {
    let n: usize = pre_shape(g, id, l).iter().product();
    if n == 0 {
        return Err(InterpError::Unsupported {
            node: id,
            message: "kernel does not fit".into(),
        });
    }
    Ok(n)
}

/// `acc << e` for `e ≥ 0`, arithmetic (floor) `acc >> -e` otherwise.
pub fn shift(acc: i64, e: i32) -> i64 {
    if e >= 0 {
        acc << e
    } else {
        acc >> (-e).min(63)
    }
}

/// Saturates `v` to a signed `bits`-bit integer.
pub fn saturate(v: i64, bits: u32) -> i64 {
    let max = (1i64 << (bits - 1)) - 1;
    v.clamp(-max - 1, max)
}

/// Steps 3–4 of the layer semantics for one neuron whose summed input (with bias) is `v`, with a
/// step of 1 (layers without `act_step`).
pub fn activate(v: i64, q: &crate::LayerQuant) -> i64 {
    activate_div(v, q, 1)
}

/// Steps 3–4 of the layer semantics for one neuron whose summed input (with bias) is `v` and whose
/// channel's step is `step` (values below 1 count as 1).
pub fn activate_div(v: i64, q: &crate::LayerQuant, step: i64) -> i64 {
    let v = saturate(v, q.state_bits);
    let y = if step <= 1 && q.act_round() == crate::ActRound::Floor {
        v >> q.act_shift.min(63)
    } else {
        // In i128: |v| ≤ 2^63 and step · 2^shift < 2^95, so the division is exact.
        let d = i128::from(step.max(1)) << q.act_shift.min(63);
        let (v, d) = (i128::from(v), d);
        let y = match q.act_round() {
            crate::ActRound::Floor => v.div_euclid(d),
            crate::ActRound::Ceil => -((-v).div_euclid(d)),
        };
        y.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    };
    y.clamp(q.act_min as i64, q.act_max as i64)
}

/// `clamp(round_half_even(x / scale), min, max)`; NaN maps to 0.
pub fn quantize(x: f32, q: &crate::QuantParams) -> i64 {
    let r = crate::round_even_f32(x / q.scale);
    if r.is_nan() {
        return 0;
    }
    (r.clamp(q.min as f32, q.max as f32)) as i64
}

fn add_bias_f(y: &mut [f32], b: &[f32]) {
    let per = y.len() / b.len().max(1);
    y.iter_mut().enumerate().for_each(|(i, v)| *v += b[i / per]);
}

fn dense_f(w: &[f32], x: &[f32], n_out: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let n_in = x.len();
    // Each output sums in input order (the float result depends on it); outputs are independent.
    let row = |o: usize| -> f32 {
        w[o * n_in..(o + 1) * n_in]
            .iter()
            .zip(x)
            .map(|(a, b)| a * b)
            .sum()
    };
    if n_out * n_in >= PARALLEL_MIN_MACS * 16 {
        (0..n_out).into_par_iter().map(row).collect()
    } else {
        (0..n_out).map(row).collect()
    }
}

fn dense_i(w: &[i64], x: &[i64], n_out: usize) -> Vec<i64> {
    let n_in = x.len();
    let mut y = vec![0i64; n_out];
    // Event-driven order: skip zero inputs, as the hardware does; the result is exact either way.
    for (i, &xi) in x.iter().enumerate() {
        if xi != 0 {
            for o in 0..n_out {
                y[o] += w[o * n_in + i] * xi;
            }
        }
    }
    y
}

/// Output positions `o` along one axis whose input `o·stride + k·dil − pad` lies in `0..len`,
/// as a range (the valid outputs of one kernel offset are contiguous).
fn valid_outputs(out: usize, len: usize, stride: usize, pad: usize, off: usize) -> (usize, usize) {
    // i = o·stride + off − pad ≥ 0  ⇔  o ≥ ceil((pad − off) / stride) when pad > off.
    let lo = pad.saturating_sub(off).div_ceil(stride);
    // i < len  ⇔  o·stride < len + pad − off.
    let hi = if len + pad > off {
        (len + pad - off).div_ceil(stride).min(out)
    } else {
        0
    };
    (lo, hi.max(lo))
}

/// Output channels' worth of work (multiply–adds) above which a convolution or dense layer
/// splits its output channels over threads. Each output keeps its own summation order, so the
/// result does not depend on the threads.
const PARALLEL_MIN_MACS: usize = 1 << 16;

macro_rules! conv_impl {
    ($name:ident, $t:ty) => {
        /// Direct convolution. Each output sums `w · x` over (input channel, kernel row, kernel
        /// column) in that order, skipping zero weights: that order defines the float result.
        /// The inner loop runs over a precomputed range of valid output columns, so it has no
        /// bounds test and vectorises where the stride is 1.
        fn $name(w: &[$t], x: &[$t], xs: &[usize], ys: &[usize], g: &ConvGeom) -> Vec<$t> {
            use rayon::prelude::*;
            let (ci, h, wd) = (xs[0], xs[1], xs[2]);
            let (co, oh, ow) = (ys[0], ys[1], ys[2]);
            let (kh, kw) = (g.kernel[0], g.kernel[1]);
            let (sh, sw) = (g.strides[0], g.strides[1]);
            let cig = ci / g.groups;
            let cog = co / g.groups;
            let rows: Vec<(usize, usize)> = (0..kh)
                .map(|ky| valid_outputs(oh, h, sh, g.pads[0], ky * g.dilations[0]))
                .collect();
            let cols: Vec<(usize, usize)> = (0..kw)
                .map(|kx| valid_outputs(ow, wd, sw, g.pads[1], kx * g.dilations[1]))
                .collect();
            let channel = |(o, y): (usize, &mut [$t])| {
                let grp = o / cog;
                for c in 0..cig {
                    let ic = grp * cig + c;
                    for ky in 0..kh {
                        let (oy0, oy1) = rows[ky];
                        for kx in 0..kw {
                            let wv = w[((o * cig + c) * kh + ky) * kw + kx];
                            if wv == <$t>::default() {
                                continue;
                            }
                            let (ox0, ox1) = cols[kx];
                            if ox0 >= ox1 {
                                continue;
                            }
                            // Input column of output column ox0 (in range by construction).
                            let ix0 = ox0 * sw + kx * g.dilations[1] - g.pads[1];
                            for oy in oy0..oy1 {
                                let iy = oy * sh + ky * g.dilations[0] - g.pads[0];
                                let xrow = &x[(ic * h + iy) * wd..(ic * h + iy + 1) * wd];
                                let yrow = &mut y[oy * ow + ox0..oy * ow + ox1];
                                if sw == 1 {
                                    let xs = &xrow[ix0..ix0 + yrow.len()];
                                    for (yv, &xv) in yrow.iter_mut().zip(xs) {
                                        *yv += wv * xv;
                                    }
                                } else {
                                    for (j, yv) in yrow.iter_mut().enumerate() {
                                        *yv += wv * xrow[ix0 + j * sw];
                                    }
                                }
                            }
                        }
                    }
                }
            };
            let mut y = vec![<$t>::default(); co * oh * ow];
            let plane = (oh * ow).max(1);
            if co * plane * cig * kh * kw >= PARALLEL_MIN_MACS * 16 {
                y.par_chunks_mut(plane).enumerate().for_each(channel);
            } else {
                y.chunks_mut(plane).enumerate().for_each(channel);
            }
            y
        }
    };
}
conv_impl!(conv_f, f32);
conv_impl!(conv_i, i64);

/// Window positions `(c, oy, ox) -> [(flat input index)]` helper shared by the poolings.
fn pool_windows(xs: &[usize], ys: &[usize], p: &Pool, mut f: impl FnMut(usize, &[usize], usize)) {
    let (c, h, w) = (xs[0], xs[1], xs[2]);
    let (oh, ow) = (ys[1], ys[2]);
    let mut idx = Vec::with_capacity(p.kernel[0] * p.kernel[1]);
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                idx.clear();
                for ky in 0..p.kernel[0] {
                    for kx in 0..p.kernel[1] {
                        let iy = (oy * p.strides[0] + ky) as isize - p.pads[0] as isize;
                        let ix = (ox * p.strides[1] + kx) as isize - p.pads[1] as isize;
                        if iy >= 0 && iy < h as isize && ix >= 0 && ix < w as isize {
                            idx.push((ch * h + iy as usize) * w + ix as usize);
                        }
                    }
                }
                f((ch * oh + oy) * ow + ox, &idx, p.kernel[0] * p.kernel[1]);
            }
        }
    }
}

fn pool_f(x: &[f32], xs: &[usize], ys: &[usize], p: &Pool) -> Vec<f32> {
    let mut y = vec![0f32; ys.iter().product()];
    pool_windows(xs, ys, p, |o, idx, full| {
        y[o] = match p.kind {
            PoolKind::Max => idx.iter().map(|i| x[*i]).fold(f32::NEG_INFINITY, f32::max),
            PoolKind::Sum => idx.iter().map(|i| x[*i]).sum(),
            PoolKind::Avg => {
                let n = if p.count_include_pad { full } else { idx.len() };
                idx.iter().map(|i| x[*i]).sum::<f32>() / n.max(1) as f32
            }
        }
    });
    y
}

fn pool_i(x: &[i64], xs: &[usize], ys: &[usize], p: &Pool) -> Vec<i64> {
    let mut y = vec![0i64; ys.iter().product()];
    pool_windows(xs, ys, p, |o, idx, full| {
        y[o] = match p.kind {
            PoolKind::Max => idx.iter().map(|i| x[*i]).max().unwrap_or(0),
            PoolKind::Sum => idx.iter().map(|i| x[*i]).sum(),
            PoolKind::Avg => {
                let n = if p.count_include_pad { full } else { idx.len() };
                idx.iter()
                    .map(|i| x[*i])
                    .sum::<i64>()
                    .div_euclid(n.max(1) as i64)
            }
        }
    });
    y
}

fn concat(parts: &[(&Value, &[usize])], axis: usize) -> Value {
    // outer = product of dims before axis; each part contributes blocks of dims[axis..] size.
    let outer: usize = parts[0].1[..axis].iter().product();
    let block = |s: &[usize]| s[axis..].iter().product::<usize>();
    match parts[0].0 {
        Value::F32(_) => {
            let mut out = Vec::new();
            for o in 0..outer {
                for (v, s) in parts {
                    let b = block(s);
                    if let Value::F32(d) = v {
                        out.extend_from_slice(&d[o * b..(o + 1) * b]);
                    }
                }
            }
            Value::F32(out)
        }
        Value::I64(_) => {
            let mut out = Vec::new();
            for o in 0..outer {
                for (v, s) in parts {
                    let b = block(s);
                    if let Value::I64(d) = v {
                        out.extend_from_slice(&d[o * b..(o + 1) * b]);
                    }
                }
            }
            Value::I64(out)
        }
    }
}

fn transpose(v: &Value, s: &[usize], perm: &[usize]) -> Value {
    let n = s.len();
    let out_shape: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
    let mut in_strides = vec![1usize; n];
    for i in (0..n.saturating_sub(1)).rev() {
        in_strides[i] = in_strides[i + 1] * s[i + 1];
    }
    let total: usize = s.iter().product();
    let src_index = |mut flat: usize| {
        let mut src = 0;
        for d in (0..n).rev() {
            let c = flat % out_shape[d];
            flat /= out_shape[d];
            src += c * in_strides[perm[d]];
        }
        src
    };
    match v {
        Value::F32(d) => Value::F32((0..total).map(|i| d[src_index(i)]).collect()),
        Value::I64(d) => Value::I64((0..total).map(|i| d[src_index(i)]).collect()),
    }
}

fn softmax(x: &[f32], s: &[usize], axis: usize, log: bool) -> Vec<f32> {
    let outer: usize = s[..axis].iter().product();
    let len = s[axis];
    let inner: usize = s[axis + 1..].iter().product();
    let mut y = vec![0f32; x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * len + k) * inner + i;
            let m = (0..len).map(|k| x[at(k)]).fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = (0..len).map(|k| (x[at(k)] - m).exp()).sum();
            for k in 0..len {
                y[at(k)] = if log {
                    x[at(k)] - m - sum.ln()
                } else {
                    (x[at(k)] - m).exp() / sum
                };
            }
        }
    }
    y
}

#[cfg(test)]
mod rate_tests {
    use crate::*;

    /// input[2] → quantize → one dense IF neuron: W = [3, −2], bias 1, threshold 4, v_min −3.
    fn graph(reset: Reset, state_bits: u32) -> Graph {
        let mut g = Graph::new("rate");
        let x = g.add_input(TensorType::f32([2]), "x");
        let q = g.add(
            Op::Quantize(QuantParams {
                scale: 1.0 / 255.0,
                min: 0,
                max: 255,
            }),
            vec![x],
            TensorType::i32([2]),
            None,
        );
        let w = g.consts.add(Constant::i32(vec![1, 2], vec![3, -2]));
        let b = g.consts.add(Constant::i32(vec![1], vec![1]));
        let quant = LayerQuant {
            weight_exp: vec![0],
            bias: Some(b),
            state_bits,
            act_shift: 0,
            act_min: 0,
            act_max: 32767,
            scale: 0.5,
            mode: crate::QuantMode::Spiking(SpikeQuant {
                threshold: 4,
                v_min: -3,
                reset,
            }),
        };
        let l = g.add(
            Op::Layer(Layer {
                synapses: vec![Synapse::Dense { weight: w }],
                bias: None,
                neuron: Neuron::Spiking(SpikingModel::If {
                    threshold: 1.0,
                    reset,
                    v_min: -0.75,
                }),
                pool: None,
                quant: Some(quant),
            }),
            vec![q],
            TensorType::i32([1]),
            None,
        );
        let d = g.add(
            Op::Dequantize { scale: 0.5 },
            vec![l],
            TensorType::f32([1]),
            None,
        );
        g.outputs.push(Output {
            node: d,
            name: "y".into(),
        });
        verify(&g).unwrap();
        g
    }

    fn steps(g: &Graph) -> StepRun {
        let events: Vec<Vec<Vec<i64>>> = [[2, 0], [3, 0], [0, 4], [0, 0]]
            .iter()
            .map(|e| vec![e.to_vec()])
            .collect();
        Interpreter::new(g).unwrap().run_events(&events).unwrap()
    }

    #[test]
    fn integrate_fire_reset_and_clamp_by_hand() {
        // Subtract: v = 7 → 1 spike, v 3; v = 13 → 3 spikes, v 1; v = −6 → clamp −3; v = −2.
        let r = steps(&graph(Reset::Subtract, 16));
        let per: Vec<i64> = r.per_step[0].iter().map(|s| s[0]).collect();
        assert_eq!(per, vec![1, 3, 0, 0]);
        assert_eq!(r.counts[0], vec![4]);
        assert_eq!(r.outputs[0], vec![4.0 * 0.5 / 4.0]);
        // Zero: v = 7 → 1 spike, v 0; v = 10 → 2 spikes, v 0; then −7 → −3; −2.
        let r = steps(&graph(Reset::Zero, 16));
        let per: Vec<i64> = r.per_step[0].iter().map(|s| s[0]).collect();
        assert_eq!(per, vec![1, 2, 0, 0]);
        // The state width does not cap the sum within a step (as on the chip and in sinabs):
        // with a 4-bit state, 3 + 10 = 13 still gives 3 spikes.
        let r = steps(&graph(Reset::Subtract, 4));
        let per: Vec<i64> = r.per_step[0].iter().map(|s| s[0]).collect();
        assert_eq!(per, vec![1, 3, 0, 0]);
        // The graded interpreter refuses a rate-mode graph.
        let g = graph(Reset::Subtract, 16);
        assert!(Interpreter::new(&g).unwrap().run(&[&[0.0, 0.0]]).is_err());
    }

    #[test]
    fn rate_encoder_fires_once_per_crossing_of_full_scale() {
        let mut enc = RateEncoder::new(&[255, 128, 0, 1], 255);
        let mut fired = vec![Vec::new(); 4];
        for f in fired.iter_mut() {
            enc.step(|i| f.push(i));
        }
        // Accumulators start at 127: level 255 fires every step, 128 every other step, 1 not
        // within 4 steps.
        assert_eq!(fired, vec![vec![0, 1], vec![0], vec![0, 1], vec![0]]);
        // run_steps encodes a dense input the same way: x = [1.0, 0.5] are levels 255 and 128.
        let g = graph(Reset::Subtract, 16);
        let r = Interpreter::new(&g)
            .unwrap()
            .run_steps(&[&[1.0, 128.0 / 255.0]], 4)
            .unwrap();
        // Inputs per step [1,1], [1,0], [1,1], [1,0]: I = 2, 4, 2, 4 → v 2, 6→2 (1), 4→0 (1), 4→0 (1).
        let per: Vec<i64> = r.per_step[0].iter().map(|s| s[0]).collect();
        assert_eq!(per, vec![0, 1, 1, 1]);
    }
}
