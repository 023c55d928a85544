//! Partitioning and placement: which cores hold which channels of each population, and where
//! those cores sit. Partitioners are target-independent; a [`CoreModel`] answers "does this slice
//! fit one core" and "where is core k" for the target.

pub mod greedy;
pub mod search;

pub use greedy::{assign, greedy};

use nmc_ir::{CoreLoc, Graph, NodeId};

/// What a partitioner needs to know about a target.
pub trait CoreModel: Sync {
    /// Number of cores in the system.
    fn cores_available(&self) -> usize;
    /// Sizes `layer` once; the result checks slices of it cheaply.
    fn sizer<'g>(
        &self,
        graph: &'g Graph,
        layer: NodeId,
    ) -> Result<Box<dyn LayerSizer + 'g>, String>;
    /// Physical location of logical core `core` when cores are used in id order.
    fn location(&self, core: usize) -> CoreLoc;
}

/// A layer's resource needs, ready to check any slice of its channels.
pub trait LayerSizer {
    /// Whether channels `[start, end)` fit one core; the error names the resource, what the
    /// slice needs and what a core has.
    fn check_slice(&self, start: u32, end: u32) -> Result<(), String>;
    /// A lower bound on the cores the whole layer needs (1 is always correct).
    fn min_cores(&self) -> usize;
}

/// A layer that fits no partition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("layer {layer}: {message}")]
pub struct FitError {
    /// The layer (node and ONNX name).
    pub layer: String,
    /// Resource, needed and available.
    pub message: String,
}
