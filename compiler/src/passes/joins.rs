//! Join grids: which values a concatenation joins, and the one integer grid they share.
//!
//! A concatenation is a view: the chip (Loihi 2's lowering, the reference interpreter) reads its
//! operands' integers side by side, so one integer must mean the same real value in every
//! operand. The graded quantiser therefore gives every operand of a concatenation one scale.
//! A residual `Add` needs nothing of the kind: canonicalisation made it two synapse groups of one
//! population, and each group has its own weight scale (`quantize_layer`'s `in_scales`).
//!
//! The plan, computed once before the integer graph is built:
//! - **groups**: a concatenation is joined with its operands' producers (looked up through
//!   `Reshape` and `FakeQuant`, which keep the scale). A concatenation inside another one
//!   joins the outer group, and a producer that feeds two concatenations joins them into one
//!   group: a value has one scale.
//! - **direct members**: a producer (layer or graph input) whose only readers are
//!   concatenations is quantised straight onto its group's grid, at no cost: nothing else reads
//!   its own grid.
//! - **pinned producers**: one that is also read by a layer or is a chip output keeps its own
//!   grid (its other readers keep their precision; a graph input keeps its one `Quantize`, as
//!   Loihi 2 requires), and each group reads it through one rescale population (an identity
//!   synapse onto the group's grid) unless its grid already is the group's. A pinned producer
//!   does not join groups: two concatenations that share only it keep a grid each.
//! - **the grid**: the union of the output ranges of every operand of every concatenation of
//!   the group, pinned ones included, so no operand loses range; the width is the activation
//!   width, or the output width when a concatenation of the group is a chip output.

use super::quantize::Range;
use nmc_ir::{Constant, ConvGeom, Graph, Layer, Neuron, NodeId, Op, PoolKind, Synapse, TensorType};
use std::collections::{BTreeMap, BTreeSet};

/// An integer grid: values `min..=max`, one step worth `scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Grid {
    pub(crate) min: i32,
    pub(crate) max: i32,
    pub(crate) scale: f32,
}

/// The join plan of a graph (see the module docs).
#[derive(Clone, Debug, Default)]
pub(crate) struct JoinPlan {
    /// Each group's grid, by group index.
    pub(crate) grids: Vec<Grid>,
    /// Concatenation → its group.
    pub(crate) concat_group: BTreeMap<NodeId, usize>,
    /// Producer quantised straight onto a group's grid → that group.
    pub(crate) direct: BTreeMap<NodeId, usize>,
}

/// The producer of a value: its node, looked up through the scale-keeping views.
pub(crate) fn producer(graph: &Graph, mut v: NodeId) -> NodeId {
    while matches!(graph.node(v).op, Op::Reshape | Op::FakeQuant { .. }) {
        v = graph.node(v).inputs[0];
    }
    v
}

/// The range a layer's output values can take, given the calibrated (or estimated) range `r`
/// of the node: a ReLU is never negative, a clip bounds the values before pooling (so a sum
/// pool of `n` windows may reach `n` times its bounds).
pub(crate) fn layer_output_range(l: &Layer, r: Range) -> Range {
    let n = match &l.pool {
        Some(p) if p.kind == PoolKind::Sum => (p.kernel[0] * p.kernel[1]) as f32,
        _ => 1.0,
    };
    let mut out = r;
    match l.neuron {
        Neuron::Relu => out.lo = out.lo.max(0.0),
        Neuron::Clip { lo, hi } => {
            out.lo = out.lo.max(lo * n);
            out.hi = out.hi.min(hi * n);
        }
        _ => {}
    }
    out
}

/// Union-find over node indices, with path halving; the smaller index becomes the root, so the
/// result does not depend on the order of unions.
struct Sets(Vec<usize>);

impl Sets {
    fn find(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }
    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        let (lo, hi) = (a.min(b), a.max(b));
        self.0[hi] = lo;
    }
}

/// Plans the join grids of `graph` (see the module docs). `needed` are the nodes the chip
/// outputs depend on, `output_nodes` the producers of the chip outputs, `range_of` a node's
/// calibrated or estimated range, and `grid` the quantiser's rule from a range and a width to a
/// grid.
pub(crate) fn plan(
    graph: &Graph,
    needed: &BTreeSet<NodeId>,
    output_nodes: &BTreeSet<NodeId>,
    range_of: &dyn Fn(NodeId) -> Range,
    bits: (u32, u32),
    grid: &dyn Fn(Range, u32) -> Grid,
) -> JoinPlan {
    let users = graph.users();
    let concats: Vec<NodeId> = graph
        .ids()
        .filter(|id| needed.contains(id) && matches!(graph.node(*id).op, Op::Concat { .. }))
        .collect();
    if concats.is_empty() {
        return JoinPlan::default();
    }
    // Whether a producer is read by concatenations only (through views), among needed nodes.
    let only_joins = |p: NodeId| -> bool {
        if output_nodes.contains(&p) {
            return false;
        }
        let mut stack = vec![p];
        let mut joins = 0usize;
        while let Some(v) = stack.pop() {
            for &u in &users[v.index()] {
                if !needed.contains(&u) {
                    continue;
                }
                match graph.node(u).op {
                    Op::Reshape | Op::FakeQuant { .. } => stack.push(u),
                    Op::Concat { .. } => joins += 1,
                    _ => return false,
                }
            }
        }
        joins > 0
    };
    let mut sets = Sets((0..graph.nodes.len()).collect());
    let mut free: BTreeSet<NodeId> = BTreeSet::new();
    for &c in &concats {
        for &o in &graph.node(c).inputs {
            let p = producer(graph, o);
            let joinable = match graph.node(p).op {
                Op::Concat { .. } => true,
                Op::Layer(_) | Op::Input { .. } => only_joins(p),
                _ => false,
            };
            if joinable {
                sets.union(c.index(), p.index());
                if !matches!(graph.node(p).op, Op::Concat { .. }) {
                    free.insert(p);
                }
            }
        }
    }
    // Groups in order of their root (the smallest node index): deterministic.
    let mut group_of_root: BTreeMap<usize, usize> = BTreeMap::new();
    let mut ranges: Vec<Option<Range>> = Vec::new();
    let mut wide: Vec<bool> = Vec::new();
    let mut plan = JoinPlan::default();
    for &c in &concats {
        let root = sets.find(c.index());
        let g = *group_of_root.entry(root).or_insert_with(|| {
            ranges.push(None);
            wide.push(false);
            ranges.len() - 1
        });
        plan.concat_group.insert(c, g);
        wide[g] |= output_nodes.contains(&c);
        let mut add = |r: Range| {
            let u = ranges[g].get_or_insert(r);
            u.lo = u.lo.min(r.lo);
            u.hi = u.hi.max(r.hi);
        };
        add(range_of(c));
        for &o in &graph.node(c).inputs {
            let p = producer(graph, o);
            match &graph.node(p).op {
                Op::Layer(l) => add(layer_output_range(l, range_of(p))),
                Op::Input { .. } => add(range_of(p)),
                _ => {}
            }
        }
    }
    plan.grids = ranges
        .iter()
        .zip(&wide)
        .map(|(r, &w)| {
            let r = r.unwrap_or(Range { lo: -1.0, hi: 1.0 });
            grid(r, if w { bits.1 } else { bits.0 })
        })
        .collect();
    for p in free {
        let root = sets.find(p.index());
        if let Some(&g) = group_of_root.get(&root) {
            plan.direct.insert(p, g);
        }
    }
    plan
}

/// A producer's own act range on a group's grid: a value whose range is non-negative clamps at
/// zero (a ReLU's `act_min = 0`, as on its own grid), a clip keeps its bounds in the grid's
/// steps, and everything else may use the whole grid.
pub(crate) fn member_grid(g: Grid, own: Range, neuron: Option<Neuron>) -> Grid {
    let mut min = if own.lo >= 0.0 { 0 } else { g.min };
    let mut max = g.max;
    if let Some(Neuron::Clip { lo, hi }) = neuron {
        let steps = |x: f32| (x as f64 / g.scale as f64).round();
        max = max.min(steps(hi).clamp(g.min as f64, g.max as f64) as i32);
        if lo < 0.0 {
            min = min.max(steps(lo).clamp(g.min as f64, g.max as f64) as i32);
        }
    }
    Grid {
        min: min.min(max),
        max,
        scale: g.scale,
    }
}

/// Whether two scales are the same grid step (the tolerance `carry_view` uses).
pub(crate) fn same_scale(a: f32, b: f32) -> bool {
    (a - b).abs() <= b.abs() * 1e-6
}

/// The float identity population a rescale is quantised from: a depthwise 1×1 kernel of ones
/// over `[c, h, w]`, in a scratch graph that holds its weights. A value that is not `[c, h, w]`
/// is viewed as `[n, 1, 1]` (the returned shape): the copy is elementwise either way, and a
/// depthwise kernel stores one weight per channel where an identity matrix would store `n²`.
pub(crate) fn identity_layer(shape: &[usize], neuron: Neuron) -> (Graph, Layer, Vec<usize>) {
    let shape3 = match shape {
        [c, h, w] => vec![*c, *h, *w],
        _ => vec![shape.iter().product(), 1, 1],
    };
    let channels = shape3[0];
    let mut scratch = Graph::new(String::new());
    let weight = scratch
        .consts
        .add(Constant::f32(vec![channels, 1, 1, 1], vec![1.0; channels]));
    let layer = Layer {
        synapses: vec![Synapse::Conv {
            weight,
            geom: ConvGeom {
                kernel: [1, 1],
                strides: [1, 1],
                pads: [0; 4],
                dilations: [1, 1],
                groups: channels,
            },
        }],
        bias: None,
        neuron,
        pool: None,
        quant: None,
    };
    (scratch, layer, shape3)
}

/// Adds the quantised rescale population `layer` reading `src` to `out`, with reshapes around
/// it when `src` is not `[c, h, w]`; returns the node that has `src`'s type.
pub(crate) fn add_rescale(
    out: &mut Graph,
    src: NodeId,
    layer: Layer,
    shape3: Vec<usize>,
    name: String,
) -> NodeId {
    let ty = out.ty(src).clone();
    let ty3 = TensorType::i32(shape3);
    let reshaped = ty.shape != ty3.shape;
    let input = if reshaped {
        out.add(Op::Reshape, vec![src], ty3.clone(), None)
    } else {
        src
    };
    let node = out.add(Op::Layer(layer), vec![input], ty3, Some(name));
    if reshaped {
        out.add(Op::Reshape, vec![node], ty, None)
    } else {
        node
    }
}

/// The name of a rescale population: its operand's name (or its producer's) and `/rescale`,
/// which tests and listings recognise.
pub(crate) fn rescale_name(graph: &Graph, operand: NodeId) -> String {
    let p = producer(graph, operand);
    let base = graph
        .node(operand)
        .name
        .clone()
        .or_else(|| graph.node(p).name.clone())
        .unwrap_or_else(|| format!("%{}", operand.0));
    format!("{base}/rescale")
}
