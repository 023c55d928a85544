//! E-graph rewriting (issue #7): one pass on the canonical float graph, after `canonicalize` and
//! before `quantize`. Builds an e-graph of the whole graph, saturates it with the rules of
//! [`rules`] under iteration and node limits (never a wall-clock limit, so the result does not
//! depend on the machine), extracts the cheapest form under the floorline [`cost`], converts it
//! back and verifies it. The graph is returned unchanged unless the extracted form is strictly
//! cheaper, so `-O2` only changes graphs where a rule pays off.

pub mod analysis;
pub mod convert;
pub mod cost;
pub mod lang;
pub mod rules;

use crate::passes::PassError;
use analysis::TypeAnalysis;
use cost::FloorlineCost;
use egg::{EGraph, Extractor, RecExpr, Runner};
use lang::{Nmc, Table};
use nmc_backend::NativeOps;
use nmc_ir::Graph;

const PASS: &str = "egraph";

/// Saturation limits (deterministic: counts, not time).
pub const ITER_LIMIT: usize = 16;
/// Node limit of the e-graph.
pub const NODE_LIMIT: usize = 20_000;

/// What the pass did, for the compile report.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EgraphReport {
    /// Rules that fired (applied at least once), in rule order, with their application counts.
    pub fired: Vec<(String, usize)>,
    /// Why saturation stopped.
    pub stop_reason: String,
    /// Whether the extracted graph replaced the input (strictly cheaper).
    pub changed: bool,
    /// Floorline cost (time, energy, nodes) before and after.
    pub cost_before: (u64, u64, u64),
    /// Floorline cost after.
    pub cost_after: (u64, u64, u64),
}

impl EgraphReport {
    /// One line for the compile report notes.
    pub fn note(&self) -> String {
        let fired = if self.fired.is_empty() {
            "none".to_string()
        } else {
            self.fired
                .iter()
                .map(|(r, n)| format!("{r}×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "egraph: rules fired: {fired}; stop: {}; {}",
            self.stop_reason,
            if self.changed {
                format!(
                    "cost (time, energy, nodes) {:?} -> {:?}",
                    self.cost_before, self.cost_after
                )
            } else {
                "graph unchanged".into()
            }
        )
    }
}

/// Runs the pass with every rule.
pub fn optimize(graph: &Graph) -> Result<(Graph, EgraphReport), PassError> {
    optimize_with(graph, &rules::all())
}

fn err(message: String) -> PassError {
    PassError {
        pass: PASS,
        node: String::new(),
        message,
    }
}

fn triple(c: cost::Cost) -> (u64, u64, u64) {
    (c.time, c.energy, c.nodes)
}

/// Runs the pass with the given rules, for no target in particular ([`NativeOps::ANY`]).
pub fn optimize_with(
    graph: &Graph,
    rules: &[egg::Rewrite<Nmc, TypeAnalysis>],
) -> Result<(Graph, EgraphReport), PassError> {
    optimize_for(graph, rules, NativeOps::ANY)
}

/// Runs the pass with the given rules; extraction prefers what `target` runs natively.
pub fn optimize_for(
    graph: &Graph,
    rules: &[egg::Rewrite<Nmc, TypeAnalysis>],
    target: NativeOps,
) -> Result<(Graph, EgraphReport), PassError> {
    let mut table = Table::default();
    let start = convert::to_expr(graph, &mut table).map_err(err)?;
    let before = expr_cost(&start, &table, &graph.consts, target);
    let analysis = TypeAnalysis::new(table, graph.consts.clone(), &start);
    let runner: Runner<Nmc, TypeAnalysis> = Runner::new(analysis)
        .with_iter_limit(ITER_LIMIT)
        .with_node_limit(NODE_LIMIT)
        .with_time_limit(std::time::Duration::from_secs(60 * 60 * 24))
        .with_expr(&start)
        .run(rules);
    let stop_reason = match &runner.stop_reason {
        Some(egg::StopReason::Saturated) => "saturated".to_string(),
        Some(egg::StopReason::IterationLimit(n)) => format!("iteration limit {n}"),
        Some(egg::StopReason::NodeLimit(n)) => format!("node limit {n}"),
        Some(egg::StopReason::TimeLimit(_)) => "time limit".to_string(),
        Some(egg::StopReason::Other(s)) => s.clone(),
        None => "not run".to_string(),
    };
    let mut fired: Vec<(String, usize)> = Vec::new();
    for r in rules {
        let n: usize = runner
            .iterations
            .iter()
            .filter_map(|it| it.applied.get(&r.name))
            .sum();
        if n > 0 {
            fired.push((r.name.to_string(), n));
        }
    }
    let root = runner.roots[0];
    let eg: &EGraph<Nmc, TypeAnalysis> = &runner.egraph;
    let best = extract(eg, root, target);
    let after = expr_cost(&best, &eg.analysis.table, &eg.analysis.consts, target);
    let mut report = EgraphReport {
        fired,
        stop_reason,
        changed: false,
        cost_before: triple(before),
        cost_after: triple(before),
    };
    // The conv count only breaks ties between forms; it never makes a graph worth replacing.
    if triple(after) >= triple(before) {
        return Ok((graph.clone(), report));
    }
    let out = convert::from_expr(&best, &eg.analysis.table, graph, eg.analysis.consts.clone())
        .map_err(err)?;
    nmc_ir::verify(&out).map_err(|e| err(format!("the rewritten graph does not verify: {e}")))?;
    report.changed = true;
    report.cost_after = triple(after);
    Ok((out, report))
}

/// The floorline cost of an expression (no floor).
fn expr_cost(
    expr: &RecExpr<Nmc>,
    table: &Table,
    consts: &nmc_ir::ConstPool,
    target: NativeOps,
) -> cost::Cost {
    let mut cf = FloorlineCost {
        table,
        consts,
        leaf: Box::new(|id| match &expr[id] {
            Nmc::Attr(s) => Some(*s),
            _ => None,
        }),
        target,
        floor: 0,
    };
    egg::CostFunction::cost_rec(&mut cf, expr)
}

/// Extraction in two passes: the smallest bottleneck time `T` the e-graph offers, then the
/// cheapest form (energy, nodes) among those whose every population stays within `T`. Ties: the
/// cost is lexicographic and egg (feature `deterministic`) keeps class and node order fixed, so
/// equal-cost choices resolve the same way every run.
fn extract(eg: &EGraph<Nmc, TypeAnalysis>, root: egg::Id, target: NativeOps) -> RecExpr<Nmc> {
    let cf = |floor: u64| FloorlineCost {
        table: &eg.analysis.table,
        consts: &eg.analysis.consts,
        leaf: Box::new(|id| rules::leaf(eg, id)),
        target,
        floor,
    };
    let (bottleneck, _) = Extractor::new(eg, cf(0)).find_best(root);
    let (_, best) = Extractor::new(eg, cf(bottleneck.time)).find_best(root);
    best
}

/// Start ⇒ goal check for rule tests: `start` and `expected` are s-expressions over leaves of
/// `table`; `rules` must rewrite `start` so that `expected` is in the same e-class, and the
/// floorline extraction must pick `expected`.
pub fn check_rewrite(
    table: Table,
    consts: nmc_ir::ConstPool,
    start: &str,
    rules: &[egg::Rewrite<Nmc, TypeAnalysis>],
    expected: &str,
) -> Result<(), String> {
    check_rewrite_for(table, consts, start, rules, expected, NativeOps::ANY)
}

/// [`check_rewrite`] with the extraction cost of a target.
pub fn check_rewrite_for(
    table: Table,
    consts: nmc_ir::ConstPool,
    start: &str,
    rules: &[egg::Rewrite<Nmc, TypeAnalysis>],
    expected: &str,
    target: NativeOps,
) -> Result<(), String> {
    let start: RecExpr<Nmc> = start.parse().map_err(|e| format!("{e}"))?;
    let expected: RecExpr<Nmc> = expected.parse().map_err(|e| format!("{e}"))?;
    let mut runner: Runner<Nmc, TypeAnalysis> =
        Runner::new(TypeAnalysis::new(table, consts, &start))
            .with_iter_limit(ITER_LIMIT)
            .with_node_limit(NODE_LIMIT)
            .with_time_limit(std::time::Duration::from_secs(60 * 60 * 24))
            .with_expr(&start)
            .run(rules);
    let root = runner.roots[0];
    let found = runner.egraph.lookup_expr(&expected);
    if found.map(|id| runner.egraph.find(id)) != Some(runner.egraph.find(root)) {
        return Err(format!("{expected} is not equivalent to the start"));
    }
    let eg = &mut runner.egraph;
    eg.rebuild();
    let eg: &EGraph<Nmc, TypeAnalysis> = eg;
    let best = extract(eg, root, target);
    if best.to_string() != expected.to_string() {
        return Err(format!("extracted {best}, expected {expected}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
