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
