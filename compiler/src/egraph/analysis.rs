//! Shape/dtype analysis: every e-class holding a value knows its tensor type. The analysis also
//! owns the attribute [`Table`] and the constant pool, so appliers can intern new attributes and
//! add new weights.

use super::lang::{Nmc, Table};
use egg::{Analysis, DidMerge, EGraph, Id};
use nmc_ir::{ConstPool, TensorType};

/// Per-class data: the value's type (`None` for attribute leaves and the root).
pub type ClassType = Option<TensorType>;

/// The analysis with the shared tables.
#[derive(Clone, Debug, Default)]
pub struct TypeAnalysis {
    /// Interned attributes and types.
    pub table: Table,
    /// The graph's constants (appliers may add to it).
    pub consts: ConstPool,
    /// Constants already made by appliers, by a key describing their inputs.
    pub memo: std::collections::BTreeMap<String, nmc_ir::ConstId>,
    /// Attribute symbols of input layers with more than one consumer (through reshapes) or
    /// that are outputs besides feeding something: the fold rules leave these alone.
    pub shared: std::collections::BTreeSet<egg::Symbol>,
}

impl TypeAnalysis {
    /// The analysis for a start expression: tables, constants and the shared layers.
    pub fn new(table: Table, consts: ConstPool, start: &egg::RecExpr<Nmc>) -> Self {
        use egg::Language;
        let nodes = start.as_ref();
        let mut uses = vec![0usize; nodes.len()];
        for k in (0..nodes.len()).rev() {
            let n = &nodes[k];
            let values: Vec<usize> = n
                .children()
                .iter()
                .map(|&c| usize::from(c))
                .filter(|&c| !matches!(nodes[c], Nmc::Attr(_)))
                .collect();
            for c in values {
                uses[c] += if matches!(n, Nmc::Reshape(_)) {
                    uses[k]
                } else {
                    1
                };
            }
        }
        let mut per: std::collections::BTreeMap<egg::Symbol, usize> = Default::default();
        for (k, n) in nodes.iter().enumerate() {
            if let Nmc::Layer(c) = n {
                if let Nmc::Attr(a) = nodes[usize::from(c[0])] {
                    *per.entry(a).or_default() += uses[k];
                }
            }
        }
        TypeAnalysis {
            table,
            consts,
            memo: Default::default(),
            shared: per
                .into_iter()
                .filter(|&(_, u)| u > 1)
                .map(|(a, _)| a)
                .collect(),
        }
    }
}

impl Analysis<Nmc> for TypeAnalysis {
    type Data = ClassType;

    fn make(egraph: &mut EGraph<Nmc, Self>, enode: &Nmc, _id: Id) -> Self::Data {
        let ty = enode.ty_child()?;
        let leaf = egraph[ty].nodes.iter().find_map(|n| match n {
            Nmc::Attr(s) => Some(*s),
            _ => None,
        })?;
        egraph.analysis.table.ty_of(leaf).cloned()
    }

    fn merge(&mut self, a: &mut Self::Data, b: Self::Data) -> DidMerge {
        match (a.as_ref(), b) {
            (None, Some(b)) => {
                *a = Some(b);
                DidMerge(true, false)
            }
            (Some(x), Some(y)) => {
                // Rules preserve types (rules/README.md); a mismatch is a rule bug.
                assert_eq!(x, &y, "e-graph: a rewrite changed a value's type");
                DidMerge(false, false)
            }
            (_, None) => DidMerge(false, a.is_some()),
        }
    }
}

/// The type of a class, if it holds a value.
pub fn class_type(egraph: &EGraph<Nmc, TypeAnalysis>, id: Id) -> Option<&TensorType> {
    egraph[id].data.as_ref()
}

impl TypeAnalysis {
    /// Adds a constant made by `make` once per `key` (appliers run on every match of every
    /// iteration; the memo keeps the pool and the e-graph from growing with duplicates).
    pub fn memo_const(
        &mut self,
        key: String,
        make: impl FnOnce(&ConstPool) -> nmc_ir::Constant,
    ) -> nmc_ir::ConstId {
        if let Some(&c) = self.memo.get(&key) {
            return c;
        }
        let c = make(&self.consts);
        let id = self.consts.add(c);
        self.memo.insert(key, id);
        id
    }

    /// Records `id` as the constant of `key` unless one is known. Inverse rules use it so that
    /// undoing a rewrite finds the original weights (and the original e-node) instead of making
    /// an equal copy with a new id, which would grow the e-graph without end.
    pub fn memo_alias(&mut self, key: String, id: nmc_ir::ConstId) {
        self.memo.entry(key).or_insert(id);
    }
}
