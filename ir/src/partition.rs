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
