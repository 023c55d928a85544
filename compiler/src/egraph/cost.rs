//! Extraction cost from the floorline model.
//!
//! Not `AstSize`: the number of ops says nothing about what the chip does. A population's time
//! per step is bounded by the largest of its synaptic operations, neuron updates and outgoing
//! messages (the floorline roofs, `cost/mod.rs`), and the step time of the whole network by the
//! slowest population. So the cost is lexicographic: first the max over layers of
//! `max(synops, neurons, messages)` (time bound), then the sum of all three over layers (energy),
//! then the node count (tie-breaker, so that a free reshape or identity still loses). All three
//! are integers and never decrease from a child to its parent (monotone, as egg requires).

use super::lang::{Nmc, Table};
use egg::{CostFunction, Id, Language, Symbol};
use nmc_ir::{ConstPool, Op, Synapse};

/// Lexicographic (time, energy, nodes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cost {
    /// Slowest population: max(synops, neuron updates, messages).
    pub time: u64,
    /// Sum of synops, neuron updates and messages.
    pub energy: u64,
    /// Operator nodes.
    pub nodes: u64,
}

/// The floorline cost; `leaf` resolves a child id to its attribute symbol.
pub struct FloorlineCost<'a> {
    /// Interned attributes.
    pub table: &'a Table,
    /// Weights (for nnz).
    pub consts: &'a ConstPool,
    /// Child id ⇒ its attribute symbol.
    pub leaf: Box<dyn Fn(Id) -> Option<Symbol> + 'a>,
}

impl FloorlineCost<'_> {
    /// This node's own (time, energy).
    fn own(&self, enode: &Nmc) -> (u64, u64) {
        let ch = enode.children();
        let (Some(a), Some(t)) = (
            ch.first().and_then(|&c| (self.leaf)(c)),
            ch.get(1).and_then(|&c| (self.leaf)(c)),
        ) else {
            return (0, 0);
        };
        let (Some((op, _)), Some(ty)) = (self.table.op_of(a), self.table.ty_of(t)) else {
            return (0, 0);
        };
        let out = ty.numel() as u64;
        match op {
            Op::Layer(l) => {
                // Output positions per channel (the pool, if any, only shrinks this).
                let positions = if ty.shape.len() == 3 {
                    (ty.shape[1] * ty.shape[2]) as u64
                } else {
                    1
                };
                let synops: u64 = l
                    .synapses
                    .iter()
                    .map(|s| {
                        let nnz = self.consts.try_get(s.weight()).map_or(0, |c| c.nnz()) as u64;
                        match s {
                            Synapse::Dense { .. } => nnz,
                            Synapse::Conv { .. } => nnz * positions,
                        }
                    })
                    .sum();
                (synops.max(out), synops + 2 * out)
            }
            Op::Input { .. } | Op::Reshape => (0, 0),
            // Concat and anything else: data movement of the result.
            _ => (out, out),
        }
    }
}

impl CostFunction<Nmc> for FloorlineCost<'_> {
    type Cost = Cost;

    fn cost<C>(&mut self, enode: &Nmc, mut costs: C) -> Cost
    where
        C: FnMut(Id) -> Cost,
    {
        let (time, energy) = match enode {
            Nmc::Attr(_) => return Cost::default(),
            Nmc::Outputs(_) => (0, 0),
            _ => self.own(enode),
        };
        let mut c = Cost {
            time,
            energy,
            nodes: 1,
        };
        for &k in enode.children() {
            let k = costs(k);
            c.time = c.time.max(k.time);
            c.energy = c.energy.saturating_add(k.energy);
            c.nodes = c.nodes.saturating_add(k.nodes);
        }
        c
    }
}
