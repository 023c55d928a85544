//! Pooling rules: the same population pooled another way, with its consumer compensating.
//!
//! `avgpool-to-sumpool`: a population `b` whose average pool (after its activation) is read by a
//! layer `a` through synapse group `k` (directly or through a reshape) equals `b` with a sum pool
//! read by `a` with that group's weights divided by the window size:
//! `W · avg_k(y) = (W / (kh·kw)) · sum_k(y)`. Speck pools events by summing (sinabs turns
//! AvgPool2d into SumPool2d), so the target-aware cost (`cost.rs`) picks the sum form there and
//! the average form where the chip has it.
//!
//! The searcher is custom because layers are variadic: it finds every layer e-node with an operand
//! computed by an average-pooled layer, and the applier rewrites each such operand in turn.

use super::super::analysis::TypeAnalysis;
use super::super::lang::Nmc;
use super::leaf;
use egg::{EGraph, Id, Rewrite, Subst, Symbol};
use nmc_ir::{Op, Pool, PoolKind};

/// Whether an average pool has a sum-pool equivalent: one divisor (`kh·kw`) everywhere, i.e. no
/// padding or pads counted in the divisor.
fn uniform_divisor(p: &Pool) -> bool {
    p.kind == PoolKind::Avg && (p.pads == [0; 4] || p.count_include_pad)
}

/// One rewrite opportunity in a consumer e-node.
struct Site {
    /// The consumer e-node's operand index (0-based, after the attribute and type children).
    operand: usize,
    /// The producer layer's attribute symbol (average pool).
    producer: Symbol,
    /// The producer e-node's children (attribute, type, operands).
    producer_children: Vec<Id>,
    /// The reshape between producer and consumer: its attribute and type leaves.
    view: Option<(Id, Id)>,
}

/// Average-pooled, single-consumer producer layers in a class: `(symbol, children)`.
fn avg_producers(eg: &EGraph<Nmc, TypeAnalysis>, class: Id) -> Vec<(Symbol, Vec<Id>)> {
    eg[class]
        .nodes
        .iter()
        .filter_map(|n| match n {
            Nmc::Layer(c) => Some(c),
            _ => None,
        })
        .filter_map(|c| {
            let sym = leaf(eg, c[0])?;
            let l = super::float_layer(eg, sym)?;
            let ok =
                l.pool.as_ref().is_some_and(uniform_divisor) && !eg.analysis.shared.contains(&sym);
            ok.then(|| (sym, c.to_vec()))
        })
        .collect()
}

/// Every site of a consumer e-node (its float weights must exist for the rescaling).
fn sites(eg: &EGraph<Nmc, TypeAnalysis>, children: &[Id]) -> Vec<Site> {
    let Some(consumer) = leaf(eg, children[0]).and_then(|a| super::float_layer(eg, a)) else {
        return vec![];
    };
    let mut out = Vec::new();
    for (k, &x) in children.iter().skip(2).enumerate() {
        let float_weights = consumer.synapses.get(k).is_some_and(|s| {
            eg.analysis
                .consts
                .try_get(s.weight())
                .is_some_and(|c| c.dtype() == nmc_ir::DType::F32)
        });
        if !float_weights {
            continue;
        }
        for (producer, pc) in avg_producers(eg, x) {
            out.push(Site {
                operand: k,
                producer,
                producer_children: pc,
                view: None,
            });
        }
        for n in &eg[x].nodes {
            if let Nmc::Reshape([r, v, y]) = n {
                for (producer, pc) in avg_producers(eg, *y) {
                    out.push(Site {
                        operand: k,
                        producer,
                        producer_children: pc,
                        view: Some((*r, *v)),
                    });
                }
            }
        }
    }
    out
}

/// The consumer e-nodes of a class (their children).
fn consumers(eg: &EGraph<Nmc, TypeAnalysis>, class: Id) -> Vec<Vec<Id>> {
    eg[class]
        .nodes
        .iter()
        .filter_map(|n| match n {
            Nmc::Layer(c) => Some(c.to_vec()),
            _ => None,
        })
        .collect()
}

/// Whether a class has a layer that reads an average-pooled layer.
fn reads_avg_pool(eg: &EGraph<Nmc, TypeAnalysis>, class: Id) -> bool {
    consumers(eg, class)
        .iter()
        .any(|c| !sites(eg, c).is_empty())
}

/// Rewrites every site of every consumer in the matched class.
struct ToSumPool;

impl ToSumPool {
    /// The sum-pool form of one site, or `None` when a constant or attribute is missing.
    fn rewrite(eg: &mut EGraph<Nmc, TypeAnalysis>, consumer: &[Id], site: &Site) -> Option<Id> {
        let a = leaf(eg, consumer[0])?;
        let (Op::Layer(la), a_name) = eg.analysis.table.op_of(a)?.clone() else {
            return None;
        };
        let (Op::Layer(lb), b_name) = eg.analysis.table.op_of(site.producer)?.clone() else {
            return None;
        };
        let pool = lb.pool.clone()?;
        let window = pool.kernel[0] * pool.kernel[1];
        if window == 0 {
            return None;
        }
        let weight = la.synapses.get(site.operand)?.weight();
        let w = eg.analysis.consts.try_get(weight)?;
        let (shape, values) = (w.shape.clone(), w.to_f32()?);
        // Multiplied by the reciprocal, exactly as `passes::quantize_rate` folds the factor, so
        // Speck gets the same integer weights whichever of the two made the sum pool.
        let f = 1.0 / window as f32;
        let scaled = eg
            .analysis
            .memo_const(format!("avgpool-to-sumpool {} {window}", weight.0), |_| {
                nmc_ir::Constant::f32(shape, values.iter().map(|x| x * f).collect())
            });
        let mut na = la.clone();
        na.synapses[site.operand] = super::with_weight(&na.synapses[site.operand], scaled);
        let mut nb = lb.clone();
        nb.pool = Some(Pool {
            kind: PoolKind::Sum,
            count_include_pad: false,
            ..pool
        });
        let tab = &mut eg.analysis.table;
        let (sa, sb) = (
            tab.op(&Op::Layer(na), &a_name),
            tab.op(&Op::Layer(nb), &b_name),
        );
        let (sa, sb) = (eg.add(Nmc::Attr(sa)), eg.add(Nmc::Attr(sb)));
        let mut bc = site.producer_children.clone();
        bc[0] = sb;
        let mut operand = eg.add(Nmc::Layer(bc.into()));
        if let Some((r, v)) = site.view {
            operand = eg.add(Nmc::Reshape([r, v, operand]));
        }
        let mut ac = consumer.to_vec();
        ac[0] = sa;
        ac[2 + site.operand] = operand;
        Some(eg.add(Nmc::Layer(ac.into())))
    }
}

impl egg::Applier<Nmc, TypeAnalysis> for ToSumPool {
    fn apply_one(
        &self,
        eg: &mut EGraph<Nmc, TypeAnalysis>,
        eclass: Id,
        _s: &Subst,
        _ast: Option<&egg::PatternAst<Nmc>>,
        _rule: Symbol,
    ) -> Vec<Id> {
        let mut changed = Vec::new();
        for consumer in consumers(eg, eclass) {
            for site in sites(eg, &consumer) {
                if let Some(new) = Self::rewrite(eg, &consumer, &site) {
                    if eg.union(eclass, new) {
                        changed.push(new);
                    }
                }
            }
        }
        changed
    }
}

/// The pooling rules.
pub fn rules() -> Vec<Rewrite<Nmc, TypeAnalysis>> {
    // W·avg_k(y) = (W / (kh·kw))·sum_k(y) when the average has one divisor and y one consumer.
    vec![Rewrite::new(
        "avgpool-to-sumpool",
        super::ClassSearcher(reads_avg_pool),
        ToSumPool,
    )
    .expect("valid rule")]
}
