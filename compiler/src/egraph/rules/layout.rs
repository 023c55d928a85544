//! Layout rules: reshapes (free on every chip, but each one is a node the mappers walk).

use super::super::analysis::{class_type, TypeAnalysis};
use super::super::lang::Nmc;
use super::{ty_at, var};
use egg::{rewrite, Rewrite};

/// The layout rules.
pub fn rules() -> Vec<Rewrite<Nmc, TypeAnalysis>> {
    vec![
        // reshape(t, reshape(u, x)) = reshape(t, x): row-major views compose.
        rewrite!("reshape-of-reshape";
            "(reshape ?a ?t (reshape ?b ?u ?x))" => "(reshape ?a ?t ?x)"),
        // reshape(t, x) = x when x already has type t (and x is computed, not a bare input, so
        // an output never becomes an input).
        rewrite!("reshape-elim"; "(reshape ?a ?t ?x)" => "?x"
        if |eg: &mut egg::EGraph<Nmc, TypeAnalysis>, _, s: &egg::Subst| {
            let t = ty_at(eg, s, "?t");
            let x = s[var("?x")];
            t.is_some()
                && class_type(eg, x) == t
                && eg[x].nodes.iter().any(|n| !matches!(n, Nmc::Input(_)))
        }),
    ]
}
