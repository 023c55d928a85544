//! `greedy`: the baseline that vendor toolchains use. Each layer goes to the fewest cores its
//! memory allows (channels split evenly), cores are filled in order and placed in core-id order.
//! Every other partitioner is reported against it.

use super::{even_split, CoreModel, FitError};
use crate::passes::describe_node;
use nmc_ir::{CoreSlice, Graph, Mapping, Op};

/// Maps every layer of `graph` greedily.
pub fn greedy(graph: &Graph, model: &dyn CoreModel) -> Result<Mapping, FitError> {
    let mut mapping = Mapping::default();
    let mut next = 0usize;
    for id in graph.topo_order().map_err(|c| FitError {
        layer: describe_node(graph, c.0),
        message: "cycle".into(),
    })? {
        if !matches!(graph.node(id).op, Op::Layer(_)) {
            continue;
        }
        let channels = graph.ty(id).shape.first().copied().unwrap_or(1) as u32;
        let fail = |message: String| FitError {
            layer: describe_node(graph, id),
            message,
        };
        let sizer = model.sizer(graph, id).map_err(fail)?;
        // Start at the layer's lower bound; a single channel that does not fit never will.
        let mut k = (sizer.min_cores().max(1) as u32).min(channels.max(1));
        let slices = loop {
            let split = even_split(channels, k);
            match split.iter().try_for_each(|&(s, e)| sizer.check_slice(s, e)) {
                Ok(()) => break split,
                Err(m) if k >= channels => {
                    return Err(fail(format!("one channel does not fit a core: {m}")))
                }
                Err(_) => k += 1,
            }
        };
        let mut layer_slices = Vec::new();
        for (start, end) in slices {
            if next >= model.cores_available() {
                return Err(fail(format!(
                    "needs more cores than the system has ({} available; layers so far use them all)",
                    model.cores_available()
                )));
            }
            layer_slices.push(CoreSlice {
                core: next as u32,
                start,
                end,
            });
            mapping.placement.push(model.location(next));
            next += 1;
        }
        mapping.layers.insert(id, layer_slices);
    }
    Ok(mapping)
}
