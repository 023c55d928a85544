//! Rewrite rules, by topic. See `README.md` for the invariants every rule keeps.

pub mod algebra;
pub mod layout;
pub mod mapping;
pub mod pooling;

use super::analysis::TypeAnalysis;
use super::lang::Nmc;
use egg::{EGraph, Id, Rewrite, Subst, Var};
use nmc_ir::{Layer, Neuron, Op, Synapse, TensorType};

/// Every rule of the pass, in a fixed order.
pub fn all() -> Vec<Rewrite<Nmc, TypeAnalysis>> {
    let mut r = layout::rules();
    r.extend(algebra::rules());
    r.extend(algebra::fold_rules());
    r.extend(algebra::view_rules());
    r.extend(pooling::rules());
    r.extend(mapping::rules());
    r
}

/// The same synapse group reading another weight constant.
pub(crate) fn with_weight(s: &Synapse, weight: nmc_ir::ConstId) -> Synapse {
    match s {
        Synapse::Dense { .. } => Synapse::Dense { weight },
        Synapse::Conv { geom, .. } => Synapse::Conv {
            weight,
            geom: geom.clone(),
        },
    }
}

/// The unquantised float layer of an attribute symbol.
pub(crate) fn float_layer(eg: &EGraph<Nmc, TypeAnalysis>, sym: egg::Symbol) -> Option<&Layer> {
    match eg.analysis.table.op_of(sym) {
        Some((Op::Layer(l), _)) if l.quant.is_none() => Some(l),
        _ => None,
    }
}

/// The searcher of a rule whose applier finds its own sites in a class (layers and
/// concatenations are variadic, which egg's patterns do not express): matches every class for
/// which `hit` holds, binding nothing.
pub(crate) struct ClassSearcher(pub fn(&EGraph<Nmc, TypeAnalysis>, Id) -> bool);

impl egg::Searcher<Nmc, TypeAnalysis> for ClassSearcher {
    fn search_eclass_with_limit(
        &self,
        eg: &EGraph<Nmc, TypeAnalysis>,
        eclass: Id,
        limit: usize,
    ) -> Option<egg::SearchMatches<'_, Nmc>> {
        (limit > 0 && (self.0)(eg, eclass)).then(|| egg::SearchMatches {
            eclass,
            substs: vec![Subst::default()],
            ast: None,
        })
    }

    fn vars(&self) -> Vec<Var> {
        vec![]
    }
}

/// The attribute (op) of the `aN` leaf bound to `v`.
pub(crate) fn op_at<'e>(eg: &'e EGraph<Nmc, TypeAnalysis>, s: &Subst, v: &str) -> Option<&'e Op> {
    let sym = leaf(eg, s[var(v)])?;
    eg.analysis.table.op_of(sym).map(|(op, _)| op)
}

/// The type of the `tN` leaf bound to `v`.
pub(crate) fn ty_at<'e>(
    eg: &'e EGraph<Nmc, TypeAnalysis>,
    s: &Subst,
    v: &str,
) -> Option<&'e TensorType> {
    let sym = leaf(eg, s[var(v)])?;
    eg.analysis.table.ty_of(sym)
}

/// The attribute symbol in a leaf class.
pub(crate) fn leaf(eg: &EGraph<Nmc, TypeAnalysis>, id: Id) -> Option<egg::Symbol> {
    eg[id].nodes.iter().find_map(|n| match n {
        Nmc::Attr(s) => Some(*s),
        _ => None,
    })
}

/// Pattern variable by name (`"?x"`).
pub(crate) fn var(v: &str) -> Var {
    v.parse().expect("pattern variable")
}

/// The layers (attribute ops) a value class can be computed by.
pub(crate) fn layers_in(eg: &EGraph<Nmc, TypeAnalysis>, id: Id) -> Vec<&Layer> {
    eg[id]
        .nodes
        .iter()
        .filter_map(|n| match n {
            Nmc::Layer(c) => leaf(eg, c[0]).and_then(|s| eg.analysis.table.op_of(s)),
            _ => None,
        })
        .filter_map(|(op, _)| match op {
            Op::Layer(l) => Some(l),
            _ => None,
        })
        .collect()
}

/// A single synapse group that passes its input through unchanged (`y = x`), and nothing else
/// between input and neuron: no bias, no pool, not yet quantised.
pub(crate) fn is_identity_synapse(eg: &EGraph<Nmc, TypeAnalysis>, l: &Layer) -> bool {
    l.bias.is_none() && l.pool.is_none() && identity_synapse(eg, l)
}

/// A single synapse group that passes its input through unchanged (`y = x`), not quantised.
pub(crate) fn identity_synapse(eg: &EGraph<Nmc, TypeAnalysis>, l: &Layer) -> bool {
    if l.synapses.len() != 1 || l.quant.is_some() {
        return false;
    }
    let w = eg.analysis.consts.try_get(l.synapses[0].weight());
    let Some(w) = w.and_then(|c| c.to_f32().map(|v| (c.shape.clone(), v))) else {
        return false;
    };
    let (shape, v) = w;
    // Row-major identity of `n × n` (dense, or conv 1×1 with groups 1).
    let eye = |n: usize| {
        v.len() == n * n
            && v.iter()
                .enumerate()
                .all(|(i, &x)| x == if i / n == i % n { 1.0 } else { 0.0 })
    };
    match &l.synapses[0] {
        Synapse::Dense { .. } => shape.len() == 2 && shape[0] == shape[1] && eye(shape[0]),
        Synapse::Conv { geom, .. } => {
            let pointwise = geom.kernel == [1, 1]
                && geom.strides == [1, 1]
                && geom.pads == [0; 4]
                && shape.len() == 4
                && shape[2] == 1
                && shape[3] == 1;
            let c = shape[0];
            pointwise
                && ((geom.groups == c && shape[1] == 1 && v.iter().all(|&x| x == 1.0))
                    || (geom.groups == 1 && shape[1] == c && eye(c)))
        }
    }
}

/// Whether every value a layer emits (float semantics) is ≥ 0.
pub(crate) fn non_negative(l: &Layer) -> bool {
    match l.neuron {
        Neuron::Relu => true,
        Neuron::Clip { lo, .. } => lo >= 0.0,
        _ => false,
    }
}

/// Whether the layer bound to `?b` has a single consumer in the input graph (looking through
/// reshapes), so folding it into its consumer does not duplicate it on the chip (egg's tree
/// cost would not see the duplicate). Layers the rules create are never shared.
pub(crate) fn single_user(eg: &EGraph<Nmc, TypeAnalysis>, s: &Subst) -> bool {
    leaf(eg, s[var("?b")]).is_some_and(|b| !eg.analysis.shared.contains(&b))
}
