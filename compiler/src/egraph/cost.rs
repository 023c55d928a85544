//! Extraction cost from the floorline model.
//!
//! Not `AstSize`: the number of ops says nothing about what the chip does. A population's time
//! per step is bounded by the largest of its synaptic operations, neuron updates and outgoing
//! messages (the floorline roofs, `cost/mod.rs`), and the step time of the whole network by the
//! slowest population. So the cost is lexicographic: first the max over layers of
//! `max(synops, neurons, messages)` (time bound), then the sum of all three over layers (energy),
//! then the node count (tie-breaker, so that a free reshape or identity still loses). All three
//! are integers and never decrease from a child to its parent (monotone, as egg requires).
//!
//! The cost also knows what the target runs ([`NativeOps`], plain flags: this module knows no
//! backend). A population whose pooling the target does not have, or a concatenation on a target
//! without one, costs a large but finite [`UNSUPPORTED`] more in time and energy, so extraction picks an equivalent supported form when
//! a rule made one (an average pool as a sum pool for Speck) and still compares graphs that keep
//! an unsupported layer (the quantiser legalises or rejects it later).

use super::lang::{Nmc, Table};
use egg::{CostFunction, Id, Language, Symbol};
use nmc_backend::NativeOps;
use nmc_ir::{ConstPool, Op, Synapse};

/// Penalty (time and energy) of a population the target cannot run as is: larger than any real
/// network's synaptic operations, small enough that sums over many layers never saturate.
pub const UNSUPPORTED: u64 = 1 << 40;

/// Lexicographic (time, energy, nodes, convs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cost {
    /// Slowest population: max(synops, neuron updates, messages).
    pub time: u64,
    /// Sum of synops, neuron updates and messages.
    pub energy: u64,
    /// Operator nodes.
    pub nodes: u64,
    /// Convolution synapse groups: the last tie-breaker, so that where a dense and a 1×1
    /// convolution form cost the same (a vector seen as `[C, 1, 1]`) extraction keeps the dense
    /// one. Not part of the "strictly cheaper" test of the pass.
    pub convs: u64,
}

/// The floorline cost; `leaf` resolves a child id to its attribute symbol.
pub struct FloorlineCost<'a> {
    /// Interned attributes.
    pub table: &'a Table,
    /// Weights (for nnz).
    pub consts: &'a ConstPool,
    /// Child id ⇒ its attribute symbol.
    pub leaf: Box<dyn Fn(Id) -> Option<Symbol> + 'a>,
    /// What the target runs natively.
    pub target: NativeOps,
    /// Time at or below which every subtree counts the same (0: none). The pass extracts twice:
    /// first the smallest bottleneck `T`, then again with `floor = T`, so that populations off
    /// the critical path are chosen for energy (egg extracts class by class and cannot see that
    /// a locally faster subtree is dominated by a slower population elsewhere).
    pub floor: u64,
}

impl FloorlineCost<'_> {
    /// This node's own (time, energy, conv synapse groups).
    fn own(&self, enode: &Nmc) -> (u64, u64, u64) {
        let ch = enode.children();
        let (Some(a), Some(t)) = (
            ch.first().and_then(|&c| (self.leaf)(c)),
            ch.get(1).and_then(|&c| (self.leaf)(c)),
        ) else {
            return (0, 0, 0);
        };
        let (Some((op, _)), Some(ty)) = (self.table.op_of(a), self.table.ty_of(t)) else {
            return (0, 0, 0);
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
                let convs = l
                    .synapses
                    .iter()
                    .filter(|s| matches!(s, Synapse::Conv { .. }))
                    .count() as u64;
                let penalty = match &l.pool {
                    Some(p) if !self.target.has_pool(p.kind) => UNSUPPORTED,
                    _ => 0,
                };
                (
                    synops.max(out).saturating_add(penalty),
                    (synops + 2 * out).saturating_add(penalty),
                    convs,
                )
            }
            Op::Input { .. } | Op::Reshape => (0, 0, 0),
            Op::Concat { .. } if !self.target.concat => (
                out.saturating_add(UNSUPPORTED),
                out.saturating_add(UNSUPPORTED),
                0,
            ),
            // Concat and anything else: data movement of the result.
            _ => (out, out, 0),
        }
    }
}

impl CostFunction<Nmc> for FloorlineCost<'_> {
    type Cost = Cost;

    fn cost<C>(&mut self, enode: &Nmc, mut costs: C) -> Cost
    where
        C: FnMut(Id) -> Cost,
    {
        let (time, energy, convs) = match enode {
            Nmc::Attr(_) => return Cost::default(),
            Nmc::Outputs(_) => (0, 0, 0),
            _ => self.own(enode),
        };
        let mut c = Cost {
            time,
            energy,
            nodes: 1,
            convs,
        };
        for &k in enode.children() {
            let k = costs(k);
            c.time = c.time.max(k.time);
            c.energy = c.energy.saturating_add(k.energy);
            c.nodes = c.nodes.saturating_add(k.nodes);
            c.convs = c.convs.saturating_add(k.convs);
        }
        c.time = c.time.max(self.floor);
        c
    }
}
