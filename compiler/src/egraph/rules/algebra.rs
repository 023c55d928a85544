//! Algebraic rules on populations (float semantics: synapses, bias, neuron, then pool).

use super::super::analysis::{class_type, TypeAnalysis};
use super::super::lang::Nmc;
use super::{is_identity_synapse, layers_in, non_negative, op_at, ty_at, var};
use egg::{rewrite, EGraph, Rewrite, Subst};
use nmc_ir::{Neuron, Op};

/// `?y` is a layer whose only synapse is the identity, with neuron `want`, typed like `?x`,
/// and `?x` is computed by a layer (so every consumer of `?y` can take `?x`).
fn identity_over_layer(eg: &EGraph<Nmc, TypeAnalysis>, s: &Subst, relu: bool) -> bool {
    let Some(Op::Layer(l)) = op_at(eg, s, "?a") else {
        return false;
    };
    let neuron_ok = match l.neuron {
        Neuron::Linear => !relu,
        Neuron::Relu => relu,
        _ => false,
    };
    let x = s[var("?x")];
    let producers = layers_in(eg, x);
    neuron_ok
        && is_identity_synapse(eg, l)
        && ty_at(eg, s, "?t").is_some()
        && class_type(eg, x) == ty_at(eg, s, "?t")
        && !producers.is_empty()
        && (!relu || producers.iter().any(|p| non_negative(p)))
}

/// The algebra rules.
pub fn rules() -> Vec<Rewrite<Nmc, TypeAnalysis>> {
    vec![
        // linear(I·x) = x: an identity population with a linear neuron is a wire.
        rewrite!("identity-layer-elim"; "(layer ?a ?t ?x)" => "?x"
            if |eg: &mut EGraph<Nmc, TypeAnalysis>, _, s: &Subst| identity_over_layer(eg, s, false)),
        // relu(I·x) = x when x ≥ 0 (x from a ReLU or a clip with lo ≥ 0).
        rewrite!("relu-of-nonneg"; "(layer ?a ?t ?x)" => "?x"
            if |eg: &mut EGraph<Nmc, TypeAnalysis>, _, s: &Subst| identity_over_layer(eg, s, true)),
    ]
}

/// `fuse-identity-neuron`: n(I·y) = n(y) where y = linear(W·x + b) has no pool: the neuron of
/// an identity population moves into the linear population that feeds it.
fn fuse_identity_neuron(eg: &EGraph<Nmc, TypeAnalysis>, s: &Subst) -> bool {
    let (Some(Op::Layer(outer)), Some(Op::Layer(inner))) = (op_at(eg, s, "?a"), op_at(eg, s, "?b"))
    else {
        return false;
    };
    is_identity_synapse(eg, outer)
        && inner.neuron == Neuron::Linear
        && inner.pool.is_none()
        && inner.quant.is_none()
        && ty_at(eg, s, "?t") == ty_at(eg, s, "?u")
        && ty_at(eg, s, "?t").is_some()
}

/// The applier of `fuse-identity-neuron`: the inner layer with the outer neuron. The inner
/// layer's operands are the pattern variables `operands` (one per synapse group), so the same
/// applier fuses into a residual population (two groups, the canonical form of `Add`).
struct FuseNeuron {
    operands: &'static [&'static str],
}

impl egg::Applier<Nmc, TypeAnalysis> for FuseNeuron {
    fn apply_one(
        &self,
        eg: &mut EGraph<Nmc, TypeAnalysis>,
        eclass: egg::Id,
        s: &Subst,
        _ast: Option<&egg::PatternAst<Nmc>>,
        _rule: egg::Symbol,
    ) -> Vec<egg::Id> {
        if !fuse_identity_neuron(eg, s) || !super::single_user(eg, s) {
            return vec![];
        }
        let (Some(Op::Layer(outer)), Some(Op::Layer(inner))) =
            (op_at(eg, s, "?a"), op_at(eg, s, "?b"))
        else {
            return vec![];
        };
        let mut fused = inner.clone();
        fused.neuron = outer.neuron;
        let name = super::leaf(eg, s[var("?b")])
            .and_then(|b| eg.analysis.table.op_of(b))
            .and_then(|(_, n)| n.clone());
        let a = eg.analysis.table.op(&Op::Layer(fused), &name);
        let a = eg.add(Nmc::Attr(a));
        let mut ch = vec![a, s[var("?u")]];
        ch.extend(self.operands.iter().map(|v| s[var(v)]));
        let new = eg.add(Nmc::Layer(ch.into()));
        if eg.union(eclass, new) {
            vec![new]
        } else {
            vec![]
        }
    }
}

/// Largest folded dense matrix `global-avgpool-fold` makes (out × in entries).
pub const GAP_FOLD_MAX: usize = 1 << 17;

/// `global-avgpool-fold`: avg_{p}(conv(x)[c, p] + b_c) = (Σ_p K_p)[c, :] · x / P + b_c. A linear
/// convolution followed by a linear population that only averages each channel over every
/// output position (identity depthwise synapse, global average pool) is one dense population
/// whose weights are the kernel summed over the valid output positions and divided by their
/// number. The result has the pooled type `[C, 1, 1]` through a reshape of the dense `[C]`.
struct GapFold;

impl GapFold {
    /// The folded weight (`[C, Ci·H·W]`), or `None` when the pattern does not apply.
    fn fold(eg: &EGraph<Nmc, TypeAnalysis>, s: &Subst) -> Option<(nmc_ir::Layer, Vec<usize>)> {
        let (Some(Op::Layer(gap)), Some(Op::Layer(conv))) =
            (op_at(eg, s, "?a"), op_at(eg, s, "?b"))
        else {
            return None;
        };
        let (tu, tx) = (ty_at(eg, s, "?u")?, class_type(eg, s[var("?x")])?);
        let pool = gap.pool.as_ref()?;
        let full = tu.shape.len() == 3
            && pool.kind == nmc_ir::PoolKind::Avg
            && pool.kernel == [tu.shape[1], tu.shape[2]]
            && pool.pads == [0; 4]
            && ty_at(eg, s, "?t")?.shape == [tu.shape[0], 1, 1];
        let gap_ok = full
            && gap.neuron == Neuron::Linear
            && gap.bias.is_none()
            && super::identity_synapse(eg, gap);
        let conv_ok = conv.neuron == Neuron::Linear
            && conv.pool.is_none()
            && conv.quant.is_none()
            && conv.synapses.len() == 1
            && matches!(conv.synapses[0], nmc_ir::Synapse::Conv { .. })
            && tx.shape.len() == 3
            && tu.shape[0] * tx.numel() <= GAP_FOLD_MAX
            && !pointwise_after_depthwise(eg, conv, s[var("?x")]);
        (gap_ok && conv_ok).then(|| (conv.clone(), tx.shape.clone()))
    }
}

/// Whether `conv` is a pointwise 1×1 convolution reading class `x` that holds a linear depthwise
/// convolution: a separable block, which `global-avgpool-fold` leaves alone. Folding its pointwise
/// kernel and the pooling into one dense population over the depthwise map would leave the
/// depthwise convolution without the pointwise layer it pairs with, and the AKD1000 runs a
/// depthwise convolution only as the first half of that pair (docs/chips.md §3.6); the fold
/// saves no synaptic operation a chip pays for there either (the dense population reads every
/// depthwise output once, as the 1×1 convolution does).
fn pointwise_after_depthwise(
    eg: &EGraph<Nmc, TypeAnalysis>,
    conv: &nmc_ir::Layer,
    x: egg::Id,
) -> bool {
    let pointwise = matches!(&conv.synapses[..], [nmc_ir::Synapse::Conv { geom, .. }]
        if geom.kernel == [1, 1] && geom.groups == 1);
    pointwise && eg[x].nodes.iter().any(|n| {
        let Nmc::Layer(ch) = n else { return false };
        let Some(Op::Layer(l)) = ch
            .first()
            .and_then(|&a| super::leaf(eg, a))
            .and_then(|sym| eg.analysis.table.op_of(sym))
            .map(|(op, _)| op)
        else {
            return false;
        };
        l.neuron == Neuron::Linear
            && l.pool.is_none()
            && matches!(&l.synapses[..], [nmc_ir::Synapse::Conv { geom, .. }] if geom.groups > 1)
    })
}

/// Sums a conv kernel over every output position: `[co, ci·h·w]` divided by the position count.
fn fold_conv(
    w: &[f32],
    geom: &nmc_ir::ConvGeom,
    co: usize,
    xs: &[usize],
    out_hw: (usize, usize),
) -> Vec<f32> {
    let (ci, h, wd) = (xs[0], xs[1], xs[2]);
    let (kh, kw) = (geom.kernel[0], geom.kernel[1]);
    let (oh, ow) = out_hw;
    let cig = ci / geom.groups;
    let cog = co / geom.groups;
    let n_in = ci * h * wd;
    let mut d = vec![0f32; co * n_in];
    for o in 0..co {
        let grp = o / cog;
        for c in 0..cig {
            let ic = grp * cig + c;
            for ky in 0..kh {
                for kx in 0..kw {
                    let wv = w[((o * cig + c) * kh + ky) * kw + kx];
                    for oy in 0..oh {
                        let iy = (oy * geom.strides[0] + ky * geom.dilations[0]) as isize
                            - geom.pads[0] as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        for ox in 0..ow {
                            let ix = (ox * geom.strides[1] + kx * geom.dilations[1]) as isize
                                - geom.pads[1] as isize;
                            if ix >= 0 && ix < wd as isize {
                                d[o * n_in + (ic * h + iy as usize) * wd + ix as usize] += wv;
                            }
                        }
                    }
                }
            }
        }
    }
    let p = (oh * ow) as f32;
    d.iter_mut().for_each(|v| *v /= p);
    d
}

impl egg::Applier<Nmc, TypeAnalysis> for GapFold {
    fn apply_one(
        &self,
        eg: &mut EGraph<Nmc, TypeAnalysis>,
        eclass: egg::Id,
        s: &Subst,
        _ast: Option<&egg::PatternAst<Nmc>>,
        _rule: egg::Symbol,
    ) -> Vec<egg::Id> {
        let Some((conv, xs)) = Self::fold(eg, s) else {
            return vec![];
        };
        if !super::single_user(eg, s) {
            return vec![];
        }
        let Some(tu) = ty_at(eg, s, "?u").cloned() else {
            return vec![];
        };
        let nmc_ir::Synapse::Conv { weight, geom } = conv.synapses[0].clone() else {
            return vec![];
        };
        let co = tu.shape[0];
        let Some(w) = eg.analysis.consts.try_get(weight).and_then(|c| c.to_f32()) else {
            return vec![];
        };
        let key = format!("gap-fold {} {geom:?} {xs:?} {:?}", weight.0, tu.shape);
        let n_in: usize = xs.iter().product();
        let dense = eg.analysis.memo_const(key, |_| {
            nmc_ir::Constant::f32(
                vec![co, n_in],
                fold_conv(&w, &geom, co, &xs, (tu.shape[1], tu.shape[2])),
            )
        });
        let folded = nmc_ir::Layer {
            synapses: vec![nmc_ir::Synapse::Dense { weight: dense }],
            bias: conv.bias,
            neuron: Neuron::Linear,
            pool: None,
            quant: None,
        };
        let gap_name = super::leaf(eg, s[var("?a")])
            .and_then(|a| eg.analysis.table.op_of(a))
            .and_then(|(_, n)| n.clone());
        let conv_name = super::leaf(eg, s[var("?b")])
            .and_then(|a| eg.analysis.table.op_of(a))
            .and_then(|(_, n)| n.clone());
        let t = &mut eg.analysis.table;
        let la = t.op(&Op::Layer(folded), &conv_name);
        let lt = t.ty(&nmc_ir::TensorType::f32(vec![co]));
        let ra = t.op(&Op::Reshape, &gap_name);
        let (la, lt, ra) = (
            eg.add(Nmc::Attr(la)),
            eg.add(Nmc::Attr(lt)),
            eg.add(Nmc::Attr(ra)),
        );
        let layer = eg.add(Nmc::Layer(vec![la, lt, s[var("?x")]].into()));
        let new = eg.add(Nmc::Reshape([ra, s[var("?t")], layer]));
        if eg.union(eclass, new) {
            vec![new]
        } else {
            vec![]
        }
    }
}

/// The rules that fold populations together (they change what the chip runs).
pub fn fold_rules() -> Vec<Rewrite<Nmc, TypeAnalysis>> {
    vec![
        // n(I·linear(W·x + b)) = n(W·x + b) (inner without pool).
        rewrite!("fuse-identity-neuron"; "(layer ?a ?t (layer ?b ?u ?x))"
            => { FuseNeuron { operands: &["?x"] } }),
        // n(I·linear(W·x + V·y + b)) = n(W·x + V·y + b): the same for a two-group population.
        rewrite!("fuse-identity-neuron-2"; "(layer ?a ?t (layer ?b ?u ?x ?y))"
            => { FuseNeuron { operands: &["?x", "?y"] } }),
        // gap(I·linear(conv_K(x) + b)) = reshape(linear((Σ_p K_p / P)·x + b)).
        rewrite!("global-avgpool-fold"; "(layer ?a ?t (layer ?b ?u ?x))" => { GapFold }),
    ]
}

/// `conv1x1-on-vector`: a 1×1 convolution (stride 1, no pads, no pool) over the `[C, 1, 1]`
/// view of a vector `y` is a dense synapse on `y`: `conv_K(view(y)) = view(K' · y)` with
/// `K'[o, i] = K[o, i, 0, 0]` (groups 1) or `K[o, 0, 0, 0]·[i = o]` (depthwise). The dense form
/// lets `fuse-identity-neuron` and the reshape rules see through the view.
struct ConvOnVector;

impl egg::Applier<Nmc, TypeAnalysis> for ConvOnVector {
    fn apply_one(
        &self,
        eg: &mut EGraph<Nmc, TypeAnalysis>,
        eclass: egg::Id,
        s: &Subst,
        _ast: Option<&egg::PatternAst<Nmc>>,
        _rule: egg::Symbol,
    ) -> Vec<egg::Id> {
        let Some(Op::Layer(l)) = op_at(eg, s, "?a").cloned() else {
            return vec![];
        };
        let (Some(t), Some(v), Some(y)) = (
            ty_at(eg, s, "?t").cloned(),
            ty_at(eg, s, "?v").cloned(),
            class_type(eg, s[var("?y")]).cloned(),
        ) else {
            return vec![];
        };
        let [nmc_ir::Synapse::Conv { weight, geom }] = &l.synapses[..] else {
            return vec![];
        };
        let c = match (&y.shape[..], &v.shape[..], &t.shape[..]) {
            ([c], [c2, 1, 1], [_, 1, 1]) if c == c2 => *c,
            _ => return vec![],
        };
        let co = t.shape[0];
        let ok = l.pool.is_none()
            && l.quant.is_none()
            && geom.kernel == [1, 1]
            && geom.strides == [1, 1]
            && geom.pads == [0; 4]
            && (geom.groups == 1 || (geom.groups == c && co == c));
        let Some(w) = eg.analysis.consts.try_get(*weight).and_then(|k| k.to_f32()) else {
            return vec![];
        };
        if !ok || w.len() != co * c / geom.groups {
            return vec![];
        }
        let (weight, groups) = (*weight, geom.groups);
        let dense =
            eg.analysis
                .memo_const(format!("conv1x1-on-vector {} {groups}", weight.0), |_| {
                    let d = if groups == 1 {
                        w.clone()
                    } else {
                        let mut d = vec![0f32; c * c];
                        for i in 0..c {
                            d[i * c + i] = w[i];
                        }
                        d
                    };
                    nmc_ir::Constant::f32(vec![co, c], d)
                });
        if groups == 1 {
            // dense-to-conv1x1 of the result gives this kernel back.
            eg.analysis
                .memo_alias(format!("dense-to-conv1x1 {}", dense.0), weight);
        }
        let mut nl = l.clone();
        nl.synapses = vec![nmc_ir::Synapse::Dense { weight: dense }];
        let name = super::leaf(eg, s[var("?a")])
            .and_then(|a| eg.analysis.table.op_of(a))
            .and_then(|(_, n)| n.clone());
        let tab = &mut eg.analysis.table;
        let la = tab.op(&Op::Layer(nl), &name);
        let lt = tab.ty(&nmc_ir::TensorType::f32(vec![co]));
        let (la, lt) = (eg.add(Nmc::Attr(la)), eg.add(Nmc::Attr(lt)));
        let layer = eg.add(Nmc::Layer(vec![la, lt, s[var("?y")]].into()));
        let new = eg.add(Nmc::Reshape([s[var("?r")], s[var("?t")], layer]));
        if eg.union(eclass, new) {
            vec![new]
        } else {
            vec![]
        }
    }
}

/// `dense-to-conv1x1`: the inverse of `conv1x1-on-vector`. A dense population on a vector `y`
/// whose result is viewed as `[Co, 1, 1]` is a 1×1 convolution (groups 1) on the `[C, 1, 1]`
/// view of `y`: `view(K'·y) = conv1x1_K(view(y))` with `K[o, i, 0, 0] = K'[o, i]`. The pair
/// makes Gemm ⇄ 1×1 Conv one equivalence; the cost's conv count keeps the dense form where
/// the two tie (they always do), so this direction only matters for rules that need the conv.
struct DenseToConv;

impl egg::Applier<Nmc, TypeAnalysis> for DenseToConv {
    fn apply_one(
        &self,
        eg: &mut EGraph<Nmc, TypeAnalysis>,
        eclass: egg::Id,
        s: &Subst,
        _ast: Option<&egg::PatternAst<Nmc>>,
        _rule: egg::Symbol,
    ) -> Vec<egg::Id> {
        let Some(Op::Layer(l)) = op_at(eg, s, "?a").cloned() else {
            return vec![];
        };
        let (Some(t), Some(u), Some(y)) = (
            ty_at(eg, s, "?t").cloned(),
            ty_at(eg, s, "?u").cloned(),
            class_type(eg, s[var("?y")]).cloned(),
        ) else {
            return vec![];
        };
        let [nmc_ir::Synapse::Dense { weight }] = l.synapses[..] else {
            return vec![];
        };
        let (c, co) = match (&y.shape[..], &u.shape[..], &t.shape[..]) {
            ([c], [co], [co2, 1, 1]) if co == co2 => (*c, *co),
            _ => return vec![],
        };
        let Some(w) = eg.analysis.consts.try_get(weight) else {
            return vec![];
        };
        let ok = l.pool.is_none()
            && l.quant.is_none()
            && w.shape == [co, c]
            && w.dtype() == nmc_ir::DType::F32;
        let Some(values) = w.to_f32().filter(|_| ok) else {
            return vec![];
        };
        let conv = eg
            .analysis
            .memo_const(format!("dense-to-conv1x1 {}", weight.0), |_| {
                nmc_ir::Constant::f32(vec![co, c, 1, 1], values)
            });
        // conv1x1-on-vector of the result gives this matrix back.
        eg.analysis
            .memo_alias(format!("conv1x1-on-vector {} 1", conv.0), weight);
        let mut nl = l.clone();
        nl.synapses = vec![nmc_ir::Synapse::Conv {
            weight: conv,
            geom: nmc_ir::ConvGeom {
                kernel: [1, 1],
                strides: [1, 1],
                pads: [0; 4],
                dilations: [1, 1],
                groups: 1,
            },
        }];
        let name = super::leaf(eg, s[var("?a")])
            .and_then(|a| eg.analysis.table.op_of(a))
            .and_then(|(_, n)| n.clone());
        let tab = &mut eg.analysis.table;
        let la = tab.op(&Op::Layer(nl), &name);
        let vt = tab.ty(&nmc_ir::TensorType::f32(vec![c, 1, 1]));
        let (la, vt) = (eg.add(Nmc::Attr(la)), eg.add(Nmc::Attr(vt)));
        let view = eg.add(Nmc::Reshape([s[var("?r")], vt, s[var("?y")]]));
        let new = eg.add(Nmc::Layer(vec![la, s[var("?t")], view].into()));
        if eg.union(eclass, new) {
            vec![new]
        } else {
            vec![]
        }
    }
}

/// Layout-changing algebra: convolutions on vector views, in both directions.
pub fn view_rules() -> Vec<Rewrite<Nmc, TypeAnalysis>> {
    vec![
        // conv1x1_K(view(y)) = view(K'·y) for y a vector and view(y) : [C, 1, 1].
        rewrite!("conv1x1-on-vector"; "(layer ?a ?t (reshape ?r ?v ?y))" => { ConvOnVector }),
        // view(K'·y) = conv1x1_K(view(y)): the inverse (the dense form wins ties).
        rewrite!("dense-to-conv1x1"; "(reshape ?r ?t (layer ?a ?u ?y))" => { DenseToConv }),
    ]
}
