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
    /// The output plane `(rows, columns)` of a layer the target can tile spatially (`None`:
    /// split by channels only, the default).
    fn plane(&self) -> Option<(u32, u32)> {
        None
    }
    /// Whether slice `s` (channels and, for a spatial tile, rows and columns) fits one core.
    fn check_tile(&self, s: &CoreSlice) -> Result<(), Source> {
        if s.is_tile() {
            return Err("the target does not tile layers spatially".into());
        }
        self.check_slice(s.start, s.end)
    }
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

/// How a layer is split: channel bands × row bands × column bands, one core each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileShape {
    /// Channel bands.
    pub channels: u32,
    /// Row bands of the output plane (1: not tiled by rows).
    pub rows: u32,
    /// Column bands (1: not tiled by columns).
    pub cols: u32,
}

impl TileShape {
    /// Cores the layer takes.
    pub fn cores(&self) -> u64 {
        u64::from(self.channels) * u64::from(self.rows) * u64::from(self.cols)
    }

    /// The slices of a layer of `channels` channels over `plane` (cores numbered from 0 in
    /// grid order: channel band, then row band, then column band; see [`CoreSlice`]), each
    /// count clamped to its axis.
    pub fn slices(&self, channels: u32, plane: Option<(u32, u32)>) -> Vec<CoreSlice> {
        let (h, w) = plane.unwrap_or((1, 1));
        let rows = even_split(h, self.rows);
        let cols = even_split(w, self.cols);
        let tiled_rows = plane.is_some() && rows.len() > 1;
        let tiled_cols = plane.is_some() && cols.len() > 1;
        let mut out = Vec::new();
        for (start, end) in even_split(channels, self.channels) {
            for &r in &rows {
                for &c in &cols {
                    out.push(CoreSlice {
                        core: out.len() as u32,
                        start,
                        end,
                        rows: tiled_rows.then_some(r),
                        cols: tiled_cols.then_some(c),
                    });
                }
            }
        }
        out
    }
}

/// Whether every slice of `shape` fits a core. Usage grows with a band's channels, so only the
/// first (largest) channel band's tiles are checked.
fn shape_fits(sizer: &dyn LayerSizer, channels: u32, shape: TileShape) -> Result<(), Source> {
    let plane = sizer.plane();
    let band = TileShape {
        channels: 1,
        ..shape
    };
    let first = even_split(channels, shape.channels)[0];
    for mut s in band.slices(first.1 - first.0, plane) {
        s.start += first.0;
        s.end += first.0;
        sizer.check_tile(&s)?;
    }
    Ok(())
}

/// The fewest channel bands with which `rows × cols` spatial tiles fit, searching from `lower`
/// (fit is monotone in the bands: more bands, fewer channels each); `None` if even one channel
/// per band does not fit.
fn min_channel_bands(
    sizer: &dyn LayerSizer,
    channels: u32,
    rows: u32,
    cols: u32,
    lower: u32,
) -> Option<u32> {
    let fits = |c| {
        shape_fits(
            sizer,
            channels,
            TileShape {
                channels: c,
                rows,
                cols,
            },
        )
        .is_ok()
    };
    let (mut lo, mut hi) = (lower.clamp(1, channels), channels);
    if !fits(hi) {
        return None;
    }
    // lo may fit; find the first that does.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo)
}

/// The greedy split of one layer: the fewest channel bands when one channel fits a core (as
/// vendor toolchains split); otherwise spatial tiles, by output rows first and by columns only
/// when single rows do not fit, choosing the shape with the fewest cores (ties: fewer tiles).
/// The error says why no split fits a core at all.
pub fn greedy_shape(sizer: &dyn LayerSizer, channels: u32) -> Result<TileShape, String> {
    let channels = channels.max(1);
    let lower = sizer.min_cores().max(1) as u64;
    // Start at the layer's lower bound; a single channel that does not fit never will.
    let mut k = (lower as u32).min(channels);
    let untiled = loop {
        match even_split(channels, k)
            .iter()
            .try_for_each(|&(s, e)| sizer.check_slice(s, e))
        {
            Ok(()) => {
                return Ok(TileShape {
                    channels: k,
                    rows: 1,
                    cols: 1,
                })
            }
            Err(m) if k >= channels => break m,
            Err(_) => k += 1,
        }
    };
    let Some((h, w)) = sizer.plane() else {
        return Err(format!("one channel does not fit a core: {untiled}"));
    };
    // The smallest tile: if one channel of one output position does not fit, nothing does.
    let one = CoreSlice {
        core: 0,
        start: 0,
        end: 1,
        rows: Some((0, 1)),
        cols: Some((0, 1)),
    };
    if let Err(m) = sizer.check_tile(&one) {
        return Err(format!(
            "no tiling fits a core: even one channel of one output position needs {m}"
        ));
    }
    let mut best: Option<TileShape> = None;
    for cols in 1..=w {
        if best.is_some() {
            // Columns only where single rows do not fit.
            break;
        }
        // Skip a column count with which even single rows and channels do not fit.
        if min_channel_bands(sizer, channels, h, cols, channels).is_none() {
            continue;
        }
        for rows in 1..=h {
            let spatial = u64::from(rows) * u64::from(cols);
            if spatial == 1 {
                continue;
            }
            if best.is_some_and(|b| spatial >= b.cores()) {
                break;
            }
            let lower_c = lower.div_ceil(spatial) as u32;
            if let Some(c) = min_channel_bands(sizer, channels, rows, cols, lower_c) {
                let shape = TileShape {
                    channels: c,
                    rows,
                    cols,
                };
                if best.is_none_or(|b| shape.cores() < b.cores()) {
                    best = Some(shape);
                }
            }
        }
    }
    best.ok_or_else(|| format!("no tiling fits a core: {untiled}"))
}

/// Maps every layer of `graph` greedily.
pub fn greedy(graph: &Graph, model: &dyn CoreModel) -> Result<Mapping, FitError> {
    assign(graph, model, &[], None)
}

/// The layers of `graph` in topological order with their greedy split.
pub fn greedy_shapes(
    graph: &Graph,
    model: &dyn CoreModel,
) -> Result<Vec<(NodeId, TileShape)>, FitError> {
    let order = graph.topo_order().map_err(|c| FitError {
        layer: graph.node_ref(c.0).to_string(),
        message: "cycle".into(),
    })?;
    let mut out = Vec::new();
    for id in order {
        if !matches!(graph.node(id).op, Op::Layer(_)) {
            continue;
        }
        let fail = |message: String| FitError {
            layer: graph.node_ref(id).to_string(),
            message,
        };
        let sizer = model.sizer(graph, id).map_err(|e| fail(e.to_string()))?;
        let shape = greedy_shape(sizer.as_ref(), layer_channels(graph, id)).map_err(fail)?;
        out.push((id, shape));
    }
    Ok(out)
}

fn layer_channels(graph: &Graph, id: NodeId) -> u32 {
    graph.ty(id).shape.first().copied().unwrap_or(1) as u32
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
    let shapes = greedy_shapes(graph, model)?;
    place(graph, model, &shapes, extra, &[], placement)
}

/// Maps each layer of `shapes` (topological order) with `extra[i]` more channel bands and
/// `tiles[i]` more row bands than its shape (missing entries are 0; bands clamped to the
/// channels and rows), checking that every slice fits; cores are numbered in order and logical
/// core `c` sits at physical position `placement[c]` (default: `c`).
pub fn place(
    graph: &Graph,
    model: &dyn CoreModel,
    shapes: &[(NodeId, TileShape)],
    extra: &[u32],
    tiles: &[u32],
    placement: Option<&[usize]>,
) -> Result<Mapping, FitError> {
    let mut mapping = Mapping::default();
    let mut next = 0usize;
    let available = model.cores_available();
    for (li, &(id, shape)) in shapes.iter().enumerate() {
        let fail = |message: String| FitError {
            layer: graph.node_ref(id).to_string(),
            message,
        };
        let channels = layer_channels(graph, id);
        let sizer = model.sizer(graph, id).map_err(|e| fail(e.to_string()))?;
        let plane = sizer.plane();
        let shape = TileShape {
            channels: (shape.channels + extra.get(li).copied().unwrap_or(0)).min(channels.max(1)),
            rows: (shape.rows + tiles.get(li).copied().unwrap_or(0))
                .min(plane.map_or(1, |p| p.0.max(1))),
            cols: shape.cols,
        };
        let slices = shape.slices(channels, plane);
        if shape != shapes[li].1 {
            for s in &slices {
                sizer
                    .check_tile(s)
                    .map_err(|m| fail(format!("slice {s:?} does not fit a core: {m}")))?;
            }
        }
        if next + slices.len() > available {
            let split = if shape.rows > 1 || shape.cols > 1 {
                format!(
                    " ({} channel band(s) × {} row band(s) × {} column band(s))",
                    shape.channels, shape.rows, shape.cols
                )
            } else {
                String::new()
            };
            return Err(fail(format!(
                "needs {} core(s){split}, more than the system's {available} available cores leave (the layers before it use {next})",
                slices.len()
            )));
        }
        let mut layer_slices = Vec::with_capacity(slices.len());
        for mut s in slices {
            let physical = match placement {
                Some(p) => *p
                    .get(next)
                    .ok_or_else(|| fail(format!("placement has no position for core {next}")))?,
                None => next,
            };
            if physical >= available {
                return Err(fail(format!(
                    "placement position {physical} is outside the system"
                )));
            }
            s.core = next as u32;
            layer_slices.push(s);
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
/// topological order, each on its greedy split plus extra channel bands and, where the layer
/// can be tiled, extra row bands; any core anywhere.
pub fn uniform_space<'g>(
    graph: &'g Graph,
    model: Box<dyn CoreModel + 'g>,
) -> Result<SearchSpace<'g>, FitError> {
    let shapes = greedy_shapes(graph, model.as_ref())?;
    let greedy = place(graph, model.as_ref(), &shapes, &[], &[], None)?;
    let mut max_tiles = Vec::with_capacity(shapes.len());
    for &(id, shape) in &shapes {
        let plane = model
            .sizer(graph, id)
            .map_err(|e| FitError {
                layer: graph.node_ref(id).to_string(),
                message: e.to_string(),
            })?
            .plane();
        max_tiles.push(plane.map_or(0, |(h, _)| h.saturating_sub(shape.rows)));
    }
    let mut problem = Problem::uniform(
        shapes.iter().map(|(_, s)| s.cores() as u32).collect(),
        shapes
            .iter()
            .map(|&(l, _)| layer_channels(graph, l))
            .collect(),
        (0..model.cores_available())
            .map(|c| model.location(c))
            .collect(),
    );
    problem.spatial = shapes.iter().map(|(_, s)| (s.rows, s.cols)).collect();
    problem.max_extra = shapes
        .iter()
        .map(|&(l, s)| layer_channels(graph, l).max(1).saturating_sub(s.channels))
        .collect();
    problem.max_tiles = max_tiles;
    Ok(SearchSpace {
        problem,
        names: shapes.iter().map(|&(l, _)| layer_name(graph, l)).collect(),
        greedy,
        decode: Box::new(move |g: &Genome| {
            place(
                graph,
                model.as_ref(),
                &shapes,
                &g.extra,
                &g.tiles,
                Some(&g.placement),
            )
            .ok()
        }),
        note: None,
    })
}
