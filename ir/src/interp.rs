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
//!    is the arithmetic shift `v >> act_shift`) or ceil (Akida's rule, chips.md §6). The neuron
//!    model is encoded in the range: ReLU has `act_min = 0`, a clip its upper bound, a linear
//!    readout the full range;
//! 5. without `pool_first`, pooling on `y`: max; sum; average as `floor(sum / count)`.
//!
//! With the defaults (`act_step` absent, floor, no `pool_first`) steps 2 and 4 reduce to
//! `y = clamp(v >> act_shift, act_min, act_max)` followed by pooling, the original semantics.

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
                        Activation::Relu => x.iter().map(|v| v.max(0.0)).collect(),
                        Activation::Clip { lo, hi } => {
                            x.iter().map(|v| v.max(*lo).min(*hi)).collect()
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
                                crate::Neuron::Relu => y.iter_mut().for_each(|v| *v = v.max(0.0)),
                                crate::Neuron::Clip { lo, hi } => {
                                    y.iter_mut().for_each(|v| *v = v.max(lo).min(hi))
                                }
                                crate::Neuron::Linear => {}
                            }
                            match &l.pool {
                                Some(p) => Value::F32(pool_f(&y, &pre_shape, &node.ty.shape, p)),
                                None => Value::F32(y),
                            }
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
                            let (mut acc, n) = match (&l.pool, q.pool_first) {
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
                            let y: Vec<i64> = match q.act_step {
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
                                Some(p) if !q.pool_first => {
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
                        ((v / scale).round_ties_even() + zp).clamp(*min as f32, *max as f32)
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
    let y = if step <= 1 && q.act_round == crate::ActRound::Floor {
        v >> q.act_shift.min(63)
    } else {
        // In i128: |v| ≤ 2^63 and step · 2^shift < 2^95, so the division is exact.
        let d = i128::from(step.max(1)) << q.act_shift.min(63);
        let (v, d) = (i128::from(v), d);
        let y = match q.act_round {
            crate::ActRound::Floor => v.div_euclid(d),
            crate::ActRound::Ceil => -((-v).div_euclid(d)),
        };
        y.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    };
    y.clamp(q.act_min as i64, q.act_max as i64)
}

/// `clamp(round_half_even(x / scale), min, max)`; NaN maps to 0.
pub fn quantize(x: f32, q: &crate::QuantParams) -> i64 {
    let r = (x / q.scale).round_ties_even();
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
    let n_in = x.len();
    (0..n_out)
        .map(|o| {
            w[o * n_in..(o + 1) * n_in]
                .iter()
                .zip(x)
                .map(|(a, b)| a * b)
                .sum()
        })
        .collect()
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

macro_rules! conv_impl {
    ($name:ident, $t:ty) => {
        fn $name(w: &[$t], x: &[$t], xs: &[usize], ys: &[usize], g: &ConvGeom) -> Vec<$t> {
            let (ci, h, wd) = (xs[0], xs[1], xs[2]);
            let (co, oh, ow) = (ys[0], ys[1], ys[2]);
            let (kh, kw) = (g.kernel[0], g.kernel[1]);
            let cig = ci / g.groups;
            let cog = co / g.groups;
            let mut y = vec![<$t>::default(); co * oh * ow];
            for o in 0..co {
                let grp = o / cog;
                for c in 0..cig {
                    let ic = grp * cig + c;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let wv = w[((o * cig + c) * kh + ky) * kw + kx];
                            if wv == <$t>::default() {
                                continue;
                            }
                            for oy in 0..oh {
                                let iy = (oy * g.strides[0] + ky * g.dilations[0]) as isize
                                    - g.pads[0] as isize;
                                if iy < 0 || iy >= h as isize {
                                    continue;
                                }
                                let xrow = &x
                                    [(ic * h + iy as usize) * wd..(ic * h + iy as usize + 1) * wd];
                                let yrow = &mut y[(o * oh + oy) * ow..(o * oh + oy + 1) * ow];
                                for ox in 0..ow {
                                    let ix = (ox * g.strides[1] + kx * g.dilations[1]) as isize
                                        - g.pads[1] as isize;
                                    if ix >= 0 && ix < wd as isize {
                                        yrow[ox] += wv * xrow[ix as usize];
                                    }
                                }
                            }
                        }
                    }
                }
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
