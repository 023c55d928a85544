//! Mapping annotations, kept in side tables beside the graph: which cores hold which slice of each
//! population, and where each core sits on the chip mesh.

use crate::NodeId;
use std::collections::BTreeMap;

/// The part of a population one core holds: a contiguous range of output channels and, for a
/// convolutional population, optionally a rectangle of its output plane (a spatial tile). For a
/// dense population a channel is one neuron. Rows and columns are in the coordinates of the
/// layer's value (after pooling); the core holds every pre-pool neuron the windows of its outputs
/// read, so with overlapping pooling windows neighbouring tiles share a halo of neurons, each
/// computing it. `None` is the whole axis: a population split by channels only never names its
/// rows, which keeps such mappings (and their artifacts) as they were before tiling.
///
/// The slices of a layer form a grid: channel bands in order, each split into the same row bands,
/// each split into the same column bands, listed channel band first, then row, then column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CoreSlice {
    /// Logical core id (dense from 0).
    pub core: u32,
    /// First channel.
    pub start: u32,
    /// One past the last channel.
    pub end: u32,
    /// Output rows `[first, one past the last)`; `None`: all of them.
    pub rows: Option<(u32, u32)>,
    /// Output columns `[first, one past the last)`; `None`: all of them.
    pub cols: Option<(u32, u32)>,
}

impl CoreSlice {
    /// Channels `start..end` on `core`, the whole plane.
    pub fn channels(core: u32, start: u32, end: u32) -> CoreSlice {
        CoreSlice {
            core,
            start,
            end,
            rows: None,
            cols: None,
        }
    }

    /// Whether the slice is a spatial tile (names rows or columns).
    pub fn is_tile(&self) -> bool {
        self.rows.is_some() || self.cols.is_some()
    }
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
    /// Slices of each layer node, ordered by channel band, then row band, then column band.
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
