//! Mapping annotations, kept in side tables beside the graph: which cores hold which slice of each
//! population, and where each core sits on the chip mesh.

use crate::NodeId;
use std::collections::BTreeMap;

/// A contiguous range of a population's output channels held by one core. For a dense population
/// a channel is one neuron; for a convolutional one it is a whole feature map, so pooling windows
/// never straddle cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CoreSlice {
    /// Logical core id (dense from 0).
    pub core: u32,
    /// First channel.
    pub start: u32,
    /// One past the last channel.
    pub end: u32,
}

/// Physical location of a logical core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CoreLoc {
    /// Chip index in a multi-chip system.
    pub chip: u32,
    /// Mesh column.
    pub x: u32,
    /// Mesh row.
    pub y: u32,
}

/// Population → core slices, and core → location.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapping {
    /// Slices of each layer node, ordered by channel.
    pub layers: BTreeMap<NodeId, Vec<CoreSlice>>,
    /// Location of each logical core, indexed by core id.
    pub placement: Vec<CoreLoc>,
}

impl Mapping {
    /// Number of logical cores that hold a slice (a target may list more locations than it
    /// uses: Speck places all nine cores).
    pub fn cores_used(&self) -> usize {
        self.layers
            .values()
            .flatten()
            .map(|s| s.core)
            .collect::<std::collections::BTreeSet<u32>>()
            .len()
    }
}

/// Integer widths a target imposes on quantisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantSpec {
    /// Bits of a weight mantissa, sign included.
    pub weight_bits: u32,
    /// Whether stored mantissas are doubled on use (Loihi's mixed-sign mode drops the weight's
    /// least significant bit, so effective weights are even: chips.md §6).
    pub even_weights: bool,
    /// Smallest and largest shared weight exponent of a synapse group.
    pub weight_exp_range: (i32, i32),
    /// Neuron state width in bits.
    pub state_bits: u32,
    /// Default activation (graded spike payload) width in bits.
    pub act_bits: u32,
    /// Largest activation width the target can carry.
    pub max_act_bits: u32,
    /// Bias mantissa bits (sign included) and largest bias exponent: bias = mant << exp.
    pub bias_mant_bits: u32,
    /// Largest bias exponent.
    pub bias_exp_max: u32,
}

/// One constant of a target's cost model, with its unit and provenance, so that reports can show
/// which numbers come from a datasheet or paper and which are assumptions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    /// The value, in `unit`.
    pub value: f64,
    /// Unit of `value` (ns per item, pJ per item, mW).
    pub unit: &'static str,
    /// Where the number comes from, or "assumed: …" with the reasoning.
    pub source: &'static str,
}

/// Splits `n` channels into `k` contiguous near-equal ranges (the first ones one larger; `k` is
/// clamped to `1..=n`), the rule every partitioner and mapper slices populations by.
pub fn even_split(n: u32, k: u32) -> Vec<(u32, u32)> {
    let k = k.clamp(1, n.max(1));
    let (base, extra) = (n / k, n % k);
    let mut start = 0;
    (0..k)
        .map(|i| {
            let len = base + u32::from(i < extra);
            let r = (start, start + len);
            start += len;
            r
        })
        .collect()
}

/// Which floorline term limits a core or a workload (papers.md §1.3): the vocabulary the cost
/// model and every emulator report in. The discriminants are stable (`Bound as usize` indexes
/// `["memory", "compute", "traffic"]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// Synaptic processing (synaptic operations and the weight reads feeding them): the
    /// floorline's slope, which sparser activity lowers.
    Memory = 0,
    /// Neuron updates: the floor that sparser inputs do not lower.
    #[default]
    Compute = 1,
    /// Messages (events) in or out, or a mesh link for the workload.
    Traffic = 2,
}

impl Bound {
    /// "memory", "compute" or "traffic".
    pub fn as_str(self) -> &'static str {
        match self {
            Bound::Memory => "memory",
            Bound::Compute => "compute",
            Bound::Traffic => "traffic",
        }
    }

    /// The largest term; ties go to compute, then memory.
    pub fn of(memory: f64, compute: f64, traffic: f64) -> Bound {
        if memory > compute && memory >= traffic {
            Bound::Memory
        } else if traffic > compute && traffic > memory {
            Bound::Traffic
        } else {
            Bound::Compute
        }
    }
}
