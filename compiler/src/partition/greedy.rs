//! `greedy`: the baseline that vendor toolchains use. Each layer goes to the fewest cores its
//! memory allows (channels split evenly), cores are filled in order and placed in core-id order.
//! Every other partitioner is reported against it. [`assign`] generalises it with extra cores per
//! layer and a placement permutation (the genome of a mapping search).

use super::{CoreModel, FitError};
use crate::passes::describe_node;
use nmc_ir::even_split;
use nmc_ir::{CoreSlice, Graph, Mapping, Op};

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
        layer: describe_node(graph, c.0),
        message: "cycle".into(),
    })?;
    let layers = order
        .into_iter()
        .filter(|&id| matches!(graph.node(id).op, Op::Layer(_)));
    for (li, id) in layers.enumerate() {
        let channels = graph.ty(id).shape.first().copied().unwrap_or(1) as u32;
        let fail = |message: String| FitError {
            layer: describe_node(graph, id),
            message,
        };
        let sizer = model.sizer(graph, id).map_err(fail)?;
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
