//! Mapping rules: how many populations carry a set of channels.
//!
//! `merge-siblings`: two populations that read the same operands with the same synapse geometry,
//! neuron and pooling, whose outputs are concatenated along channels, are one population with
//! their weights and biases stacked: `concat₀(n(W₁·x + b₁), n(W₂·x + b₂)) = n([W₁; W₂]·x +
//! [b₁; b₂])`. Every step of a layer (synapses, bias, neuron, pooling) acts per output channel,
//! so stacking channels commutes with all of them. This is what an Inception block or a
//! SqueezeNet fire module exports: parallel branches over one input, then `Concat`. Kernels of
//! different sizes merge when the smaller lies inside the larger's window (a fire module's 1×1
//! and 3×3 expands): it is zero-embedded into a kernel of the larger's size (`covering`).
//!
//! The floorline cost decides (`cost.rs`): the merged population does both branches' synaptic
//! work on one core, so it wins only while the pair is cold (the slowest population elsewhere
//! still bounds the step: equal time, less energy, one node and the concatenation fewer). A pair
//! whose sum would become the slowest stays split. Targets without a concatenation (Speck, the
//! AKD1000) price the concat as unsupported, so there the merge wins whenever it applies.
//!
//! The opposite direction, splitting one population into channel slices, is not a graph rule:
//! slices of one population share its quantisation scale, while separate populations joined by
//! a concatenation must share the concatenation's grid (`passes::joins`), so a split gains no
//! precision and costs a population. nmc splits populations where that is free, in the
//! partitioner (channel slices on several cores, chosen by the floorline model:
//! `partition/search.rs`).

use super::super::analysis::TypeAnalysis;
use super::super::lang::Nmc;
use super::leaf;
use egg::{EGraph, Id, Rewrite, Subst, Symbol};
use nmc_ir::{ConvGeom, Layer, Op, Synapse, TensorType};

/// The convolution geometry that computes both `a` and `b`: the same geometry, or the larger
/// kernel when the smaller one lies inside its window at every output position, as a fire
/// module's 1×1 expand (no padding) lies inside its 3×3 expand (padding 1). Both need one
/// convolution group (with several, stacked filters would read other input channels), the same
/// strides and no dilation; the output sizes are checked by the caller (equal types). Then the
/// smaller kernel, placed at the offset between the two paddings in a kernel of the larger's
/// size with zeros around it, computes exactly what it did: it reads the same inputs, and the
/// other positions add `0 · x`.
fn covering(a: &ConvGeom, b: &ConvGeom) -> Option<ConvGeom> {
    if a.groups != 1 || b.groups != 1 {
        return None;
    }
    if a == b {
        return Some(a.clone());
    }
    if a.strides != b.strides || a.dilations != [1, 1] || b.dilations != [1, 1] {
        return None;
    }
    // `small`'s window starts `pads[d] − small.pads[d]` into `big`'s and ends inside it.
    let contains = |big: &ConvGeom, small: &ConvGeom| {
        (0..2).all(|d| {
            big.pads[d] >= small.pads[d]
                && big.pads[d] - small.pads[d] + small.kernel[d] <= big.kernel[d]
        })
    };
    if contains(a, b) {
        Some(a.clone())
    } else if contains(b, a) {
        Some(b.clone())
    } else {
        None
    }
}

/// Whether one synapse group can compute two siblings' groups: both dense, or convolutions
/// with a covering geometry.
fn same_synapse(a: &Synapse, b: &Synapse) -> bool {
    match (a, b) {
        (Synapse::Dense { .. }, Synapse::Dense { .. }) => true,
        (Synapse::Conv { geom: ga, .. }, Synapse::Conv { geom: gb, .. }) => {
            covering(ga, gb).is_some()
        }
        _ => false,
    }
}

/// A population e-node that can be merged: (symbol, type, children).
type Pop = (Symbol, TensorType, Vec<Id>);

/// The mergeable populations computing a class: float layers with a single consumer.
fn pops(eg: &EGraph<Nmc, TypeAnalysis>, class: Id) -> Vec<Pop> {
    let Some(ty) = eg[class].data.clone() else {
        return vec![];
    };
    eg[class]
        .nodes
        .iter()
        .filter_map(|n| match n {
            Nmc::Layer(c) => Some(c),
            _ => None,
        })
        .filter_map(|c| {
            let sym = leaf(eg, c[0])?;
            super::float_layer(eg, sym)?;
            (!eg.analysis.shared.contains(&sym)).then(|| (sym, ty.clone(), c.to_vec()))
        })
        .collect()
}

/// Whether two populations can be one: same operands, synapse geometry, neuron and pooling,
/// float weights, and outputs that differ only in their channel count.
fn siblings(eg: &EGraph<Nmc, TypeAnalysis>, a: &Pop, b: &Pop) -> bool {
    let (Some(la), Some(lb)) = (super::float_layer(eg, a.0), super::float_layer(eg, b.0)) else {
        return false;
    };
    let same_inputs = a.2.len() == b.2.len()
        && a.2[2..]
            .iter()
            .zip(&b.2[2..])
            .all(|(x, y)| eg.find(*x) == eg.find(*y));
    let float = |l: &Layer| {
        l.synapses.iter().all(|s| {
            eg.analysis
                .consts
                .try_get(s.weight())
                .is_some_and(|c| c.dtype() == nmc_ir::DType::F32)
        })
    };
    same_inputs
        && la.synapses.len() == lb.synapses.len()
        && la
            .synapses
            .iter()
            .zip(&lb.synapses)
            .all(|(x, y)| same_synapse(x, y))
        && la.neuron == lb.neuron
        && la.pool == lb.pool
        && float(la)
        && float(lb)
        && a.1.dtype == b.1.dtype
        && a.1.shape.len() == b.1.shape.len()
        && !a.1.shape.is_empty()
        && a.1.shape[1..] == b.1.shape[1..]
}

/// Adjacent mergeable operand pairs `(k, pop_k, pop_k+1)` of an axis-0 concatenation node.
fn pairs(eg: &EGraph<Nmc, TypeAnalysis>, children: &[Id]) -> Vec<(usize, Pop, Pop)> {
    let axis0 = leaf(eg, children[0])
        .and_then(|s| eg.analysis.table.op_of(s))
        .is_some_and(|(op, _)| matches!(op, Op::Concat { axis: 0 }));
    if !axis0 || children.len() < 4 {
        return vec![];
    }
    let mut out = Vec::new();
    for k in 2..children.len() - 1 {
        // The same population twice is one population read twice, not two siblings.
        if eg.find(children[k]) == eg.find(children[k + 1]) {
            continue;
        }
        for a in pops(eg, children[k]) {
            for b in pops(eg, children[k + 1]) {
                if siblings(eg, &a, &b) {
                    out.push((k, a.clone(), b));
                }
            }
        }
    }
    out
}

/// The concatenation e-nodes of a class (their children).
fn concats(eg: &EGraph<Nmc, TypeAnalysis>, class: Id) -> Vec<Vec<Id>> {
    eg[class]
        .nodes
        .iter()
        .filter_map(|n| match n {
            Nmc::Concat(c) => Some(c.to_vec()),
            _ => None,
        })
        .collect()
}

/// Whether a class has a concatenation of two sibling populations.
fn concats_siblings(eg: &EGraph<Nmc, TypeAnalysis>, class: Id) -> bool {
    concats(eg, class).iter().any(|c| !pairs(eg, c).is_empty())
}

/// Stacks two constants along their first axis (`None` if they are not float or disagree).
fn stack(
    eg: &mut EGraph<Nmc, TypeAnalysis>,
    a: nmc_ir::ConstId,
    b: nmc_ir::ConstId,
) -> Option<nmc_ir::ConstId> {
    let (ca, cb) = (
        eg.analysis.consts.try_get(a)?,
        eg.analysis.consts.try_get(b)?,
    );
    if ca.shape.is_empty() || ca.shape[1..] != cb.shape[1..] {
        return None;
    }
    let mut shape = ca.shape.clone();
    shape[0] += cb.shape[0];
    let mut data = ca.to_f32()?;
    data.extend(cb.to_f32()?);
    Some(
        eg.analysis
            .memo_const(format!("merge-siblings {} {}", a.0, b.0), |_| {
                nmc_ir::Constant::f32(shape, data)
            }),
    )
}

/// A convolution kernel `c` of geometry `from` as a kernel of the covering geometry `to`: the
/// same values at the offset between the two paddings, zeros around them (`covering`).
fn embed(
    eg: &mut EGraph<Nmc, TypeAnalysis>,
    c: nmc_ir::ConstId,
    from: &ConvGeom,
    to: &ConvGeom,
) -> Option<nmc_ir::ConstId> {
    if from.kernel == to.kernel && from.pads[..2] == to.pads[..2] {
        return Some(c);
    }
    let k = eg.analysis.consts.try_get(c)?;
    let [co, ci, kh, kw] = k.shape[..] else {
        return None;
    };
    if [kh, kw] != from.kernel {
        return None;
    }
    let [th, tw] = to.kernel;
    let (dy, dx) = (to.pads[0] - from.pads[0], to.pads[1] - from.pads[1]);
    let src = k.to_f32()?;
    let mut data = vec![0f32; co * ci * th * tw];
    for (plane, w) in src.chunks(kh * kw).enumerate() {
        for y in 0..kh {
            for x in 0..kw {
                data[plane * th * tw + (y + dy) * tw + x + dx] = w[y * kw + x];
            }
        }
    }
    Some(
        eg.analysis
            .memo_const(format!("embed {} {th}x{tw} at {dy},{dx}", c.0), |_| {
                nmc_ir::Constant::f32(vec![co, ci, th, tw], data)
            }),
    )
}

/// A bias vector of `n` zeros (for a sibling without bias).
fn zeros(eg: &mut EGraph<Nmc, TypeAnalysis>, n: usize) -> nmc_ir::ConstId {
    eg.analysis.memo_const(format!("zeros {n}"), |_| {
        nmc_ir::Constant::f32(vec![n], vec![0.0; n])
    })
}

/// Merges concatenation operands `k` and `k + 1` of the matched class.
struct MergeSiblings;

impl MergeSiblings {
    /// The concatenation with the pair replaced by one population (or that population alone).
    fn rewrite(
        eg: &mut EGraph<Nmc, TypeAnalysis>,
        concat: &[Id],
        (k, a, b): &(usize, Pop, Pop),
    ) -> Option<Id> {
        let (la, name) = match eg.analysis.table.op_of(a.0)?.clone() {
            (Op::Layer(l), n) => (l, n),
            _ => return None,
        };
        let lb = super::float_layer(eg, b.0)?.clone();
        let (ca, cb) = (a.1.shape[0], b.1.shape[0]);
        let mut merged = la.clone();
        for (g, (sa, sb)) in la.synapses.iter().zip(&lb.synapses).enumerate() {
            merged.synapses[g] = match (sa, sb) {
                (Synapse::Conv { geom: ga, .. }, Synapse::Conv { geom: gb, .. }) => {
                    let geom = covering(ga, gb)?;
                    let wa = embed(eg, sa.weight(), ga, &geom)?;
                    let wb = embed(eg, sb.weight(), gb, &geom)?;
                    let weight = stack(eg, wa, wb)?;
                    Synapse::Conv { weight, geom }
                }
                _ => super::with_weight(sa, stack(eg, sa.weight(), sb.weight())?),
            };
        }
        merged.bias = match (la.bias, lb.bias) {
            (None, None) => None,
            (ba, bb) => {
                let ba = ba.unwrap_or_else(|| zeros(eg, ca));
                let bb = bb.unwrap_or_else(|| zeros(eg, cb));
                Some(stack(eg, ba, bb)?)
            }
        };
        let mut ty = a.1.clone();
        ty.shape[0] = ca + cb;
        let tab = &mut eg.analysis.table;
        let (sa, st) = (tab.op(&Op::Layer(merged), &name), tab.ty(&ty));
        let (sa, st) = (eg.add(Nmc::Attr(sa)), eg.add(Nmc::Attr(st)));
        let mut children = vec![sa, st];
        children.extend_from_slice(&a.2[2..]);
        let pop = eg.add(Nmc::Layer(children.into()));
        if concat.len() == 4 {
            return Some(pop);
        }
        let mut rest = concat[..*k].to_vec();
        rest.push(pop);
        rest.extend_from_slice(&concat[k + 2..]);
        Some(eg.add(Nmc::Concat(rest.into())))
    }
}

impl egg::Applier<Nmc, TypeAnalysis> for MergeSiblings {
    fn apply_one(
        &self,
        eg: &mut EGraph<Nmc, TypeAnalysis>,
        eclass: Id,
        _s: &Subst,
        _ast: Option<&egg::PatternAst<Nmc>>,
        _rule: Symbol,
    ) -> Vec<Id> {
        let mut changed = Vec::new();
        for concat in concats(eg, eclass) {
            for pair in pairs(eg, &concat) {
                if let Some(new) = Self::rewrite(eg, &concat, &pair) {
                    if eg.union(eclass, new) {
                        changed.push(new);
                    }
                }
            }
        }
        changed
    }
}

/// The mapping rules.
pub fn rules() -> Vec<Rewrite<Nmc, TypeAnalysis>> {
    // concat₀(n(W₁·x + b₁), n(W₂·x + b₂)) = n([W₁; W₂]·x + [b₁; b₂]) for siblings with one
    // consumer each.
    vec![Rewrite::new(
        "merge-siblings",
        super::ClassSearcher(concats_siblings),
        MergeSiblings,
    )
    .expect("valid rule")]
}
