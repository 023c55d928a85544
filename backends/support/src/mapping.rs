//! Partitioning and placement helpers every backend can use: a [`CoreModel`] answers "does this
//! slice of a layer fit one core" and "where is core k"; [`greedy`] is the baseline that vendor
//! toolchains use (each layer on the fewest cores its memory allows, channels split evenly, cores
//! filled and placed in id order) and [`assign`] generalises it with extra cores per layer and a
//! placement permutation (the genome of a mapping search on chips with interchangeable cores,
//! [`uniform_space`]).

use crate::error::Source;
use crate::search_space::{Genome, Problem, SearchSpace};
use nmc_ir::{even_split, CoreLoc, CoreSlice, Graph, Mapping, NodeId, Op};

/// What a partitioner needs to know about a target.
pub trait CoreModel: Sync {
    /// Number of cores in the system.
    fn cores_available(&self) -> usize;
    /// Sizes `layer` once; the result checks slices of it cheaply.
    fn sizer<'g>(
        &self,
        graph: &'g Graph,
        layer: NodeId,
    ) -> Result<Box<dyn LayerSizer + 'g>, Source>;
    /// Physical location of logical core `core` when cores are used in id order.
    fn location(&self, core: usize) -> CoreLoc;
}

/// A layer's resource needs, ready to check any slice of its channels.
pub trait LayerSizer {
    /// Whether channels `[start, end)` fit one core; the error names the resource, what the
    /// slice needs and what a core has.
    fn check_slice(&self, start: u32, end: u32) -> Result<(), Source>;
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

/// Maps every layer of `graph` greedily.
pub fn greedy(graph: &Graph, model: &dyn CoreModel) -> Result<Mapping, FitError> {
    assign(graph, model, &[], None)
}

/// Maps layer `i` (in topological order) onto its greedy core count plus `extra[i]` (missing
/// entries are 0; never more cores than channels), numbering cores in order; logical core `c`
/// sits at physical position `placement[c]` (default: `c`).
pub fn assign(
    graph: &Graph,
    model: &dyn CoreModel,
    extra: &[u32],
    placement: Option<&[usize]>,
) -> Result<Mapping, FitError> {
    let mut mapping = Mapping::default();
    let mut next = 0usize;
    let order = graph.topo_order().map_err(|c| FitError {
        layer: graph.node_ref(c.0).to_string(),
        message: "cycle".into(),
    })?;
    let layers = order
        .into_iter()
        .filter(|&id| matches!(graph.node(id).op, Op::Layer(_)));
    for (li, id) in layers.enumerate() {
        let channels = graph.ty(id).shape.first().copied().unwrap_or(1) as u32;
        let fail = |message: String| FitError {
            layer: graph.node_ref(id).to_string(),
            message,
        };
        let sizer = model.sizer(graph, id).map_err(|e| fail(e.to_string()))?;
        // Start at the layer's lower bound; a single channel that does not fit never will.
        let mut k = (sizer.min_cores().max(1) as u32).min(channels.max(1));
        loop {
            match even_split(channels, k)
                .iter()
                .try_for_each(|&(s, e)| sizer.check_slice(s, e))
            {
                Ok(()) => break,
                Err(m) if k >= channels => {
                    return Err(fail(format!("one channel does not fit a core: {m}")))
                }
                Err(_) => k += 1,
            }
        }
        let k = (k + extra.get(li).copied().unwrap_or(0)).min(channels.max(1));
        let mut layer_slices = Vec::new();
        for (start, end) in even_split(channels, k) {
            if next >= model.cores_available() {
                return Err(fail(format!(
                    "needs more cores than the system has ({} available; layers so far use them all)",
                    model.cores_available()
                )));
            }
            let physical = match placement {
                Some(p) => *p
                    .get(next)
                    .ok_or_else(|| fail(format!("placement has no position for core {next}")))?,
                None => next,
            };
            if physical >= model.cores_available() {
                return Err(fail(format!(
                    "placement position {physical} is outside the system"
                )));
            }
            layer_slices.push(CoreSlice {
                core: next as u32,
                start,
                end,
            });
            mapping.placement.push(model.location(physical));
            next += 1;
        }
        mapping.layers.insert(id, layer_slices);
    }
    Ok(mapping)
}

/// The name the floorline analysis gives a layer node.
pub fn layer_name(graph: &Graph, id: NodeId) -> String {
    graph
        .node(id)
        .name
        .clone()
        .unwrap_or_else(|| id.to_string())
}

/// The search space of a target whose cores are interchangeable (Loihi 2): layers in
/// topological order, each on its greedy cores plus extra ones, any core anywhere.
pub fn uniform_space<'g>(
    graph: &'g Graph,
    model: Box<dyn CoreModel + 'g>,
) -> Result<SearchSpace<'g>, FitError> {
    let greedy = greedy(graph, model.as_ref())?;
    let order = graph.topo_order().map_err(|c| FitError {
        layer: graph.node_ref(c.0).to_string(),
        message: "cycle".into(),
    })?;
    let layers: Vec<NodeId> = order
        .into_iter()
        .filter(|id| greedy.layers.contains_key(id))
        .collect();
    let problem = Problem::uniform(
        layers
            .iter()
            .map(|l| greedy.layers[l].len() as u32)
            .collect(),
        layers
            .iter()
            .map(|&l| graph.ty(l).shape.first().copied().unwrap_or(1) as u32)
            .collect(),
        (0..model.cores_available())
            .map(|c| model.location(c))
            .collect(),
    );
    Ok(SearchSpace {
        problem,
        names: layers.iter().map(|&l| layer_name(graph, l)).collect(),
        greedy,
        decode: Box::new(move |g: &Genome| {
            assign(graph, model.as_ref(), &g.extra, Some(&g.placement)).ok()
        }),
        note: None,
    })
}
