//! `canonicalize`: rewrites the imported graph into layers.
//!
//! Linear ops (Dense, Conv2d, per-channel affine, Add) accumulate into a *pending* population: a
//! list of synapse groups plus a bias. The pending population becomes a [`Layer`] when a neuron
//! model is applied (Relu, Clip) or when something needs the value itself (a view, a concat, an
//! output), in which case the neuron is linear. So batch normalisation folds into the weights of
//! the synapses before it, a residual Add becomes two synapse groups into one population, and max
//! pooling before a monotone activation moves after it (max commutes with monotone functions).
//! Pooling after a layer with no pooling yet fuses into it. A transpose that only feeds dense
//! synapses (possibly through reshapes) folds into their weight columns. Where nothing fuses, an
//! identity synapse (a depthwise 1×1 kernel or a diagonal matrix, stored sparse) keeps the graph in
//! canonical form: correct, and visible in the cost report.

use super::{describe, PassError};
use nmc_ir::{
    Activation, ConstId, Constant, ConvGeom, Graph, Layer, Neuron, NodeId, Op, Output, Pool,
    PoolKind, Synapse, TensorType,
};
use std::collections::BTreeMap;

const PASS: &str = "canonicalize";

/// A linear combination of synapse outputs, not yet a population.
#[derive(Clone)]
struct Pending {
    /// Synapse groups: (float weights shape, weights, kind, source value in the new graph).
    groups: Vec<Group>,
    /// Bias per output channel.
    bias: Vec<f32>,
    /// Pre-pool shape of the population.
    shape: Vec<usize>,
    /// A max pool waiting for the activation (commuted past it).
    pool: Option<Pool>,
    /// Name of the last ONNX node folded in.
    name: Option<String>,
}

#[derive(Clone)]
struct Group {
    kind: GroupKind,
    weight_shape: Vec<usize>,
    weight: Weights,
    src: NodeId,
}

/// A group's weights: the imported constant as is (sparse storage kept, nothing copied) until a
/// rewrite needs to change values, then an owned dense copy.
#[derive(Clone)]
enum Weights {
    Shared(std::sync::Arc<Constant>),
    Owned(std::rc::Rc<Vec<f32>>),
}

impl Weights {
    fn values_mut(&mut self) -> &mut Vec<f32> {
        if let Weights::Shared(c) = self {
            *self = Weights::Owned(std::rc::Rc::new(
                c.to_f32().expect("float weights checked at import"),
            ));
        }
        match self {
            Weights::Owned(v) => std::rc::Rc::make_mut(v),
            Weights::Shared(_) => unreachable!("converted above"),
        }
    }

    fn into_constant(self, shape: Vec<usize>) -> std::sync::Arc<Constant> {
        match self {
            Weights::Shared(c) => c,
            Weights::Owned(v) => {
                std::sync::Arc::new(Constant::f32(shape, std::rc::Rc::unwrap_or_clone(v)))
            }
        }
    }
}

#[derive(Clone)]
enum GroupKind {
    Dense,
    Conv(ConvGeom),
}

/// A value whose flat order is a permutation of `src`'s (a transpose, maybe reshaped after).
#[derive(Clone)]
struct Permuted {
    src: NodeId,
    /// `perm_index[i]` = flat index in `src` of flat element `i` of this value.
    perm_index: Vec<usize>,
    shape: Vec<usize>,
}

#[derive(Clone)]
enum Val {
    /// A value of the new graph.
    Done(NodeId),
    Pending(Pending),
    Permuted(Permuted),
}

struct Cx {
    new: Graph,
    /// Layers of the new graph that may still take an output pool: no pool yet, no users yet.
    poolable: BTreeMap<NodeId, ()>,
}

/// The source and `[top, left, bottom, right]` amounts of a constant-zero Pad of only the spatial
/// axes of a `[C, H, W]` value.
fn zero_spatial_pad(graph: &Graph, id: NodeId) -> Option<(NodeId, [usize; 4])> {
    let node = graph.node(id);
    match &node.op {
        Op::Tensor(nmc_ir::TensorOp::Pad {
            pads,
            mode: nmc_ir::PadMode::Constant,
            value,
        }) if *value == 0.0 && pads.len() == 6 && pads[0] == 0 && pads[3] == 0 => {
            Some((node.inputs[0], [pads[1], pads[2], pads[4], pads[5]]))
        }
        _ => None,
    }
}

/// Whether `id` is a zero spatial pad that only convolutions read (and so folds into them).
pub fn folds_into_convolutions(graph: &Graph, users: &[Vec<NodeId>], id: NodeId) -> bool {
    zero_spatial_pad(graph, id).is_some()
        && !users[id.index()].is_empty()
        && users[id.index()].iter().all(|&u| {
            matches!(graph.node(u).op, Op::Conv2d { .. }) && graph.node(u).inputs[0] == id
        })
        && !graph.outputs.iter().any(|o| o.node == id)
}

/// Whether a value of the new graph is a layer whose neuron never outputs a negative value.
fn non_negative(g: &Graph, id: NodeId) -> bool {
    match &g.node(id).op {
        Op::Layer(l) => match l.neuron {
            Neuron::Relu => true,
            Neuron::Clip { lo, .. } => lo >= 0.0,
            _ => false,
        },
        _ => false,
    }
}

/// Rewrites `graph` (imported form) into canonical form.
pub fn canonicalize(graph: &Graph) -> Result<Graph, PassError> {
    let order = graph.topo_order().map_err(|c| PassError {
        pass: PASS,
        node: describe(graph, c.0),
        message: "the graph has a cycle".into(),
    })?;
    let users = graph.users();
    let mut cx = Cx {
        new: Graph::new(graph.name.clone()),
        poolable: BTreeMap::new(),
    };
    let mut vals: Vec<Option<Val>> = vec![None; graph.nodes.len()];
    // Inputs first, in order, so that the new graph's inputs keep their positions.
    for &i in &graph.inputs {
        let n = graph.node(i);
        vals[i.index()] = Some(Val::Done(
            cx.new
                .add_input(n.ty.clone(), n.name.clone().unwrap_or_default()),
        ));
    }
    for id in order {
        if vals[id.index()].is_some() {
            continue;
        }
        let node = graph.node(id);
        let err = |message: String| PassError {
            pass: PASS,
            node: describe(graph, id),
            message,
        };
        let arg = |k: usize, vals: &Vec<Option<Val>>| {
            vals[node.inputs[k].index()]
                .clone()
                .expect("topological order")
        };
        let v = match &node.op {
            Op::Input { .. } => unreachable!("inputs handled first"),
            Op::Dense { weight, bias } => {
                let konst = graph.consts.get(*weight);
                let out = konst.shape[0];
                let n_in = konst.shape[1];
                let src = arg(0, &vals);
                let (src, w) = match src {
                    Val::Permuted(p) => {
                        // y = W · P x  =>  columns of W permuted back onto x's order.
                        let w = floats(graph, *weight).map_err(err)?;
                        let mut wp = vec![0f32; w.len()];
                        for o in 0..out {
                            for (i, &s) in p.perm_index.iter().enumerate() {
                                wp[o * n_in + s] = w[o * n_in + i];
                            }
                        }
                        (p.src, Weights::Owned(std::rc::Rc::new(wp)))
                    }
                    other => (
                        cx.materialize(other),
                        Weights::Shared(graph.consts.get_shared(*weight)),
                    ),
                };
                let bias = bias
                    .map(|b| floats(graph, b))
                    .transpose()
                    .map_err(err)?
                    .unwrap_or_else(|| vec![0.0; out]);
                Val::Pending(Pending {
                    groups: vec![Group {
                        kind: GroupKind::Dense,
                        weight_shape: vec![out, n_in],
                        weight: w,
                        src,
                    }],
                    bias,
                    shape: node.ty.shape.clone(),
                    pool: None,
                    name: node.name.clone(),
                })
            }
            Op::Conv2d { weight, bias, geom } => {
                let w = Weights::Shared(graph.consts.get_shared(*weight));
                let wshape = graph.consts.get(*weight).shape.clone();
                // A zero Pad of the spatial axes before a convolution (how PyTorch users write
                // asymmetric padding) is the convolution's own zero padding: fold it, so the
                // chips run it.
                let mut geom = geom.clone();
                let mut input = node.inputs[0];
                if let Some((src, [top, left, bottom, right])) = zero_spatial_pad(graph, input) {
                    input = src;
                    for (p, add) in geom.pads.iter_mut().zip([top, left, bottom, right]) {
                        *p += add;
                    }
                }
                let src = cx.materialize(vals[input.index()].clone().ok_or_else(|| {
                    err("operand has no value".into())
                })?);
                let bias = bias
                    .map(|b| floats(graph, b))
                    .transpose()
                    .map_err(err)?
                    .unwrap_or_else(|| vec![0.0; wshape[0]]);
                Val::Pending(Pending {
                    groups: vec![Group {
                        kind: GroupKind::Conv(geom),
                        weight_shape: wshape,
                        weight: w,
                        src,
                    }],
                    bias,
                    shape: node.ty.shape.clone(),
                    pool: None,
                    name: node.name.clone(),
                })
            }
            Op::ChannelAffine { scale, shift } => {
                let s = floats(graph, *scale).map_err(err)?;
                let t = floats(graph, *shift).map_err(err)?;
                let mut p = match arg(0, &vals) {
                    Val::Pending(p) if p.pool.is_none() => p,
                    other => {
                        let src = cx.materialize(other);
                        cx.identity(src)?
                    }
                };
                // Scale each output channel's synapses and bias, then add the shift (BN folding).
                for g in &mut p.groups {
                    let w = g.weight.values_mut();
                    let per = w.len() / s.len();
                    w.iter_mut().enumerate().for_each(|(i, w)| *w *= s[i / per]);
                }
                for (c, b) in p.bias.iter_mut().enumerate() {
                    *b = *b * s[c] + t[c];
                }
                p.name = p.name.or(node.name.clone());
                Val::Pending(p)
            }
            Op::Add => {
                let a = cx.pending(arg(0, &vals))?;
                let b = cx.pending(arg(1, &vals))?;
                let mut p = a;
                p.groups.extend(b.groups);
                p.bias.iter_mut().zip(&b.bias).for_each(|(x, y)| *x += y);
                p.name = p.name.or(node.name.clone());
                Val::Pending(p)
            }
            // relu(y) = y where y is already non-negative (a ReLU or a Clip at or above zero):
            // chains of activations fold instead of becoming identity layers.
            Op::Act(Activation::Relu) if matches!(arg(0, &vals), Val::Done(src) if non_negative(&cx.new, src)) => {
                arg(0, &vals)
            }
            Op::Act(a) => {
                let neuron = match a {
                    Activation::Relu => Neuron::Relu,
                    Activation::Clip { lo, hi } => Neuron::Clip { lo: *lo, hi: *hi },
                    Activation::Spiking(m) => Neuron::Spiking(*m),
                };
                let mut p = match arg(0, &vals) {
                    Val::Pending(p) => p,
                    other => {
                        let src = cx.materialize(other);
                        cx.identity(src)?
                    }
                };
                p.name = p.name.or(node.name.clone());
                Val::Done(cx.emit_layer(p, neuron, users[id.index()].len() == 1))
            }
            Op::Pool2d(pool) => match arg(0, &vals) {
                Val::Pending(mut p)
                    if pool.kind == PoolKind::Max
                        && p.pool.is_none()
                        && monotone_next(graph, &users, id) =>
                {
                    p.pool = Some(pool.clone());
                    p.name = p.name.or(node.name.clone());
                    Val::Pending(p)
                }
                Val::Done(src) if cx.poolable.contains_key(&src) => {
                    cx.poolable.remove(&src);
                    let n = cx.new.node_mut(src);
                    let Op::Layer(l) = &mut n.op else {
                        unreachable!("poolable nodes are layers")
                    };
                    l.pool = Some(pool.clone());
                    n.ty = node.ty.clone();
                    Val::Done(src)
                }
                other => {
                    let src = cx.materialize(other);
                    let mut p = cx.identity(src)?;
                    p.pool = Some(pool.clone());
                    p.name = node.name.clone();
                    Val::Done(cx.emit_layer(p, Neuron::Linear, false))
                }
            },
            Op::Reshape => match arg(0, &vals) {
                Val::Permuted(mut p) => {
                    p.shape = node.ty.shape.clone();
                    Val::Permuted(p)
                }
                other => {
                    let src = cx.materialize(other);
                    Val::Done(cx.new.add(
                        Op::Reshape,
                        vec![src],
                        node.ty.clone(),
                        node.name.clone(),
                    ))
                }
            },
            Op::Transpose { perm } => {
                let in_shape = graph.ty(node.inputs[0]).shape.clone();
                let (src, base) = match arg(0, &vals) {
                    Val::Permuted(p) => (p.src, p.perm_index),
                    other => (
                        cx.materialize(other),
                        (0..in_shape.iter().product()).collect(),
                    ),
                };
                let idx = transpose_index(&in_shape, perm);
                Val::Permuted(Permuted {
                    src,
                    perm_index: idx.iter().map(|&i| base[i]).collect(),
                    shape: node.ty.shape.clone(),
                })
            }
            Op::Concat { axis } => {
                let srcs: Vec<NodeId> = (0..node.inputs.len())
                    .map(|k| cx.materialize(arg(k, &vals)))
                    .collect();
                Val::Done(cx.new.add(
                    Op::Concat { axis: *axis },
                    srcs,
                    node.ty.clone(),
                    node.name.clone(),
                ))
            }
            Op::Softmax { axis, log } => {
                let src = cx.materialize(arg(0, &vals));
                Val::Done(cx.new.add(
                    Op::Softmax {
                        axis: *axis,
                        log: *log,
                    },
                    vec![src],
                    node.ty.clone(),
                    node.name.clone(),
                ))
            }
            Op::FakeQuant { .. } => {
                // Quantisation grids are chosen per target by `quantize`; in the float graph the
                // pair is kept so that `eval` of the canonical graph still matches the model.
                let src = cx.materialize(arg(0, &vals));
                Val::Done(cx.new.add(
                    node.op.clone(),
                    vec![src],
                    node.ty.clone(),
                    node.name.clone(),
                ))
            }
            // A zero spatial pad that only convolutions read: they take its amounts into their
            // own padding (above) and read its source; the pad itself becomes nothing.
            Op::Tensor(_) if folds_into_convolutions(graph, &users, id) => {
                arg(0, &vals)
            }
            Op::Tensor(t) => {
                return Err(err(format!(
                    "`{}` is a float tensor op with no neuromorphic form: no chip runs it (`nmc eval` computes it)",
                    t.mnemonic()
                )))
            }
            Op::Layer(_) | Op::Quantize(_) | Op::Dequantize { .. } => {
                return Err(err(format!(
                    "`{}` is already canonical; canonicalize runs once",
                    node.op.mnemonic()
                )))
            }
        };
        vals[id.index()] = Some(v);
    }
    let outputs: Vec<Output> = graph
        .outputs
        .iter()
        .map(|o| {
            let v = vals[o.node.index()].clone().expect("outputs computed");
            Output {
                node: cx.materialize(v),
                name: o.name.clone(),
            }
        })
        .collect();
    cx.new.outputs = outputs;
    let out = std::mem::replace(&mut cx.new, nmc_ir::Graph::new("")).into_compact();
    nmc_ir::verify(&out).map_err(|e| PassError {
        pass: PASS,
        node: "graph".into(),
        message: e.to_string(),
    })?;
    Ok(out)
}

/// Whether every user of the pooled value is a monotone activation (so max pooling may move past it).
fn monotone_next(graph: &Graph, users: &[Vec<NodeId>], id: NodeId) -> bool {
    let u = &users[id.index()];
    u.len() == 1 && matches!(graph.node(u[0]).op, Op::Act(_))
}

fn floats(graph: &Graph, c: ConstId) -> Result<Vec<f32>, String> {
    graph
        .consts
        .get(c)
        .to_f32()
        .ok_or_else(|| format!("constant {c} has no values"))
}

/// `out[i]` = flat index in the input of flat element `i` of the transposed value.
fn transpose_index(shape: &[usize], perm: &[usize]) -> Vec<usize> {
    let n = shape.len();
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let mut strides = vec![1usize; n];
    for i in (0..n.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    let total: usize = shape.iter().product();
    (0..total)
        .map(|mut flat| {
            let mut src = 0;
            for d in (0..n).rev() {
                let c = flat % out_shape[d];
                flat /= out_shape[d];
                src += c * strides[perm[d]];
            }
            src
        })
        .collect()
}

impl Cx {
    /// Turns a value into a node of the new graph, emitting a linear layer for pending sums.
    fn materialize(&mut self, v: Val) -> NodeId {
        match v {
            Val::Done(n) => {
                self.poolable.remove(&n);
                n
            }
            Val::Pending(p) => self.emit_layer(p, Neuron::Linear, false),
            Val::Permuted(p) => {
                // A dense permutation matrix (one non-zero per row), stored sparse.
                let n = p.perm_index.len();
                let mut w = vec![0f32; n * n];
                for (i, &s) in p.perm_index.iter().enumerate() {
                    w[i * n + s] = 1.0;
                }
                let pending = Pending {
                    groups: vec![Group {
                        kind: GroupKind::Dense,
                        weight_shape: vec![n, n],
                        weight: Weights::Owned(std::rc::Rc::new(w)),
                        src: p.src,
                    }],
                    bias: vec![0.0; n],
                    shape: vec![n],
                    pool: None,
                    name: None,
                };
                let layer = self.emit_layer(pending, Neuron::Linear, false);
                if p.shape == [n] {
                    layer
                } else {
                    let ty = TensorType::f32(p.shape.clone());
                    self.new.add(Op::Reshape, vec![layer], ty, None)
                }
            }
        }
    }

    /// Any value as a pending sum (identity synapse for values that already exist).
    fn pending(&mut self, v: Val) -> Result<Pending, PassError> {
        match v {
            Val::Pending(p) if p.pool.is_none() => Ok(p),
            other => {
                let src = self.materialize(other);
                self.identity(src)
            }
        }
    }

    /// A pending population that copies `src` through identity synapses.
    fn identity(&mut self, src: NodeId) -> Result<Pending, PassError> {
        let ty = self.new.ty(src).clone();
        let (kind, weight_shape, weight) = match ty.shape.as_slice() {
            [c, _, _] => {
                let geom = ConvGeom {
                    kernel: [1, 1],
                    strides: [1, 1],
                    pads: [0; 4],
                    dilations: [1, 1],
                    groups: *c,
                };
                (GroupKind::Conv(geom), vec![*c, 1, 1, 1], vec![1.0; *c])
            }
            [n] => {
                let mut w = vec![0f32; n * n];
                (0..*n).for_each(|i| w[i * n + i] = 1.0);
                (GroupKind::Dense, vec![*n, *n], w)
            }
            s => {
                return Err(PassError {
                    pass: PASS,
                    node: describe(&self.new, src),
                    message: format!(
                    "cannot route a value of shape {s:?} into a population (needs [c,h,w] or [n])"
                ),
                })
            }
        };
        let channels = ty.shape[0];
        Ok(Pending {
            groups: vec![Group {
                kind,
                weight_shape,
                weight: Weights::Owned(std::rc::Rc::new(weight)),
                src,
            }],
            bias: vec![0.0; channels],
            shape: ty.shape,
            pool: None,
            name: None,
        })
    }

    fn emit_layer(&mut self, p: Pending, neuron: Neuron, poolable: bool) -> NodeId {
        let mut synapses = Vec::new();
        let mut srcs = Vec::new();
        for g in p.groups {
            let weight = self
                .new
                .consts
                .add_shared(g.weight.into_constant(g.weight_shape));
            synapses.push(match g.kind {
                GroupKind::Dense => Synapse::Dense { weight },
                GroupKind::Conv(geom) => Synapse::Conv { weight, geom },
            });
            srcs.push(g.src);
        }
        let bias = if p.bias.iter().all(|b| *b == 0.0) {
            None
        } else {
            Some(
                self.new
                    .consts
                    .add(Constant::f32(vec![p.bias.len()], p.bias)),
            )
        };
        let mut shape = p.shape;
        if let Some(pool) = &p.pool {
            if let Some((oh, ow)) = pool.out_hw(shape[1], shape[2]) {
                shape = vec![shape[0], oh, ow];
            }
        }
        let has_pool = p.pool.is_some();
        let layer = Layer {
            synapses,
            bias,
            neuron,
            pool: p.pool,
            quant: None,
        };
        let id = self
            .new
            .add(Op::Layer(layer), srcs, TensorType::f32(shape), p.name);
        if poolable && !has_pool && self.new.ty(id).shape.len() == 3 {
            self.poolable.insert(id, ());
        }
        id
    }
}
