//! Lowering: quantised canonical IR + mapping → [`Artifact`].
//!
//! The graph's views disappear here: a `Reshape` keeps the flat order and an axis-0 `Concat` is a
//! flat concatenation, so every value that reaches a layer is a list of contiguous [`Source`]
//! pieces (graph inputs and population outputs). Each `Layer` becomes a [`Population`] whose
//! synapse groups read those pieces. Lowering also checks what the chip imposes: integer widths
//! (weights, bias, state, activations) and that every core's slices fit its memories.

use crate::artifact::*;
use crate::memory::{FitError, LayerFootprint, SliceUsage};
use crate::ChipSpec;
use nmc_ir::{
    Graph, Layer, Mapping, NodeId, NodeRef, Op, PoolKind, Synapse, SPARSE_DENSITY_THRESHOLD,
};
use std::collections::BTreeMap;

/// Why a graph cannot be lowered to Loihi 2.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LowerError {
    /// An operation Loihi 2 lowering does not handle.
    #[error("{node}: `{op}` cannot be lowered to loihi2")]
    Unsupported {
        /// The node.
        node: NodeRef,
        /// Its mnemonic.
        op: String,
    },
    /// The graph is not in the quantised canonical form lowering expects.
    #[error("{node}: {message}")]
    Invalid {
        /// The node.
        node: NodeRef,
        /// What is wrong.
        message: String,
    },
    /// A layer has no core slices in the mapping.
    #[error("{node}: layer has no core mapping")]
    Unmapped {
        /// The layer.
        node: NodeRef,
    },
    /// A value does not fit the chip's integer widths.
    #[error("{node}: {message}")]
    OutOfRange {
        /// The node.
        node: NodeRef,
        /// What exceeds which width.
        message: String,
    },
    /// A core's slices need more memory or neurons than a core has.
    #[error("{node}: core {core} does not fit: {fit}")]
    DoesNotFit {
        /// The layer whose slice overflowed the core.
        node: NodeRef,
        /// The core.
        core: u32,
        /// Resource, needed and available.
        fit: FitError,
    },
    /// A core's placement is not a location of the system.
    #[error("core {core}: {message}")]
    Placement {
        /// The core.
        core: u32,
        /// What is wrong.
        message: String,
    },
    /// Lowering produced an artifact that does not validate (a bug in this crate).
    #[error("lowering produced an invalid artifact (internal error): {0}")]
    Internal(String),
}

impl LowerError {
    /// The node the error is about, if any.
    pub fn node(&self) -> Option<&NodeRef> {
        match self {
            LowerError::Unsupported { node, .. }
            | LowerError::Invalid { node, .. }
            | LowerError::Unmapped { node }
            | LowerError::OutOfRange { node, .. }
            | LowerError::DoesNotFit { node, .. } => Some(node),
            LowerError::Placement { .. } | LowerError::Internal(_) => None,
        }
    }
}

/// Lowers a quantised canonical graph with its mapping to an artifact for `spec`.
pub fn lower(
    graph: &Graph,
    mapping: &Mapping,
    source_hash: u64,
    spec: &ChipSpec,
) -> Result<Artifact, LowerError> {
    let mut cx = Lowering {
        graph,
        mapping,
        spec,
        segs: vec![None; graph.nodes.len()],
        inputs: vec![None; graph.inputs.len()],
        populations: Vec::new(),
        dequant: BTreeMap::new(),
        core_usage: vec![SliceUsage::default(); mapping.placement.len()],
    };
    let cores = cx.cores()?;
    let order = graph.topo_order().map_err(|c| LowerError::Invalid {
        node: cx.at(c.0),
        message: "the graph has a cycle".into(),
    })?;
    for id in order {
        cx.node(id)?;
    }
    let mut inputs = Vec::with_capacity(graph.inputs.len());
    for (i, spec_i) in cx.inputs.iter().enumerate() {
        match spec_i {
            Some(s) => inputs.push(s.clone()),
            None => {
                return Err(LowerError::Invalid {
                    node: cx.at(graph.inputs[i]),
                    message: "graph input is not quantised (no quantize node uses it)".into(),
                })
            }
        }
    }
    let mut outputs = Vec::with_capacity(graph.outputs.len());
    for o in &graph.outputs {
        let Some(&(population, scale)) = cx.dequant.get(&o.node) else {
            return Err(LowerError::Invalid {
                node: cx.at(o.node),
                message: format!(
                    "output \"{}\" must be a dequantize of a layer's value",
                    o.name
                ),
            });
        };
        outputs.push(OutputSpec {
            name: o.name.clone(),
            population,
            shape: u32s(&graph.ty(o.node).shape).map_err(|m| cx.invalid(o.node, m))?,
            scale,
        });
    }
    let chips = cores.iter().map(|c| c.chip + 1).max().unwrap_or(1);
    let artifact = Artifact {
        header: Some(Header {
            chips,
            ..ENVELOPE.header(source_hash)
        }),
        inputs,
        populations: cx.populations,
        cores,
        outputs,
    };
    crate::validate::validate(&artifact).map_err(|e| LowerError::Internal(e.to_string()))?;
    Ok(artifact)
}

struct Lowering<'a> {
    graph: &'a Graph,
    mapping: &'a Mapping,
    spec: &'a ChipSpec,
    /// Per node: the integer value it carries, as contiguous sources (`None`: float or none).
    segs: Vec<Option<Vec<Source>>>,
    inputs: Vec<Option<InputSpec>>,
    populations: Vec<Population>,
    /// Dequantize node → (population, scale).
    dequant: BTreeMap<NodeId, (u32, f32)>,
    core_usage: Vec<SliceUsage>,
}

fn u32s(v: &[usize]) -> Result<Vec<u32>, String> {
    v.iter()
        .map(|&d| u32::try_from(d).map_err(|_| format!("dimension {d} exceeds 32 bits")))
        .collect()
}

impl Lowering<'_> {
    fn at(&self, id: NodeId) -> NodeRef {
        NodeRef {
            id,
            name: self
                .graph
                .nodes
                .get(id.index())
                .and_then(|n| n.name.clone()),
        }
    }

    fn invalid(&self, id: NodeId, message: impl Into<String>) -> LowerError {
        LowerError::Invalid {
            node: self.at(id),
            message: message.into(),
        }
    }

    fn out_of_range(&self, id: NodeId, message: impl Into<String>) -> LowerError {
        LowerError::OutOfRange {
            node: self.at(id),
            message: message.into(),
        }
    }

    fn cores(&self) -> Result<Vec<CoreMsg>, LowerError> {
        let mut seen = BTreeMap::new();
        let mut cores = Vec::with_capacity(self.mapping.placement.len());
        for (i, loc) in self.mapping.placement.iter().enumerate() {
            let core = i as u32;
            if !self.spec.has_loc(*loc) {
                return Err(LowerError::Placement {
                    core,
                    message: format!(
                        "location (chip {}, x {}, y {}) is outside the {}-chip system of {}×{} meshes",
                        loc.chip, loc.x, loc.y, self.spec.chips, self.spec.mesh_width, self.spec.mesh_height
                    ),
                });
            }
            if let Some(other) = seen.insert(*loc, core) {
                return Err(LowerError::Placement {
                    core,
                    message: format!("placed at the same location as core {other}"),
                });
            }
            cores.push(CoreMsg {
                id: core,
                chip: loc.chip,
                x: loc.x,
                y: loc.y,
            });
        }
        Ok(cores)
    }

    /// The sources of operand `k` of node `id`.
    fn operand(&self, id: NodeId, k: usize) -> Result<Vec<Source>, LowerError> {
        let node = self.graph.node(id);
        let src = *node
            .inputs
            .get(k)
            .ok_or_else(|| self.invalid(id, format!("missing operand {k}")))?;
        self.segs[src.index()].clone().ok_or_else(|| {
            self.invalid(
                id,
                format!("operand {src} is not an integer value produced on the chip"),
            )
        })
    }

    fn node(&mut self, id: NodeId) -> Result<(), LowerError> {
        let node = self.graph.node(id);
        match &node.op {
            Op::Input { .. } => {}
            Op::Quantize(q) => {
                let src = node.inputs.first().copied();
                let Some(Op::Input { index }) = src.map(|s| &self.graph.node(s).op) else {
                    return Err(self.invalid(id, "quantize must directly follow a graph input"));
                };
                let index = *index;
                let input_node = src.expect("checked above");
                let spec = InputSpec {
                    name: self.graph.node(input_node).name.clone().unwrap_or_default(),
                    shape: u32s(&node.ty.shape).map_err(|m| self.invalid(id, m))?,
                    scale: q.scale,
                    min: q.min,
                    max: q.max,
                };
                let slot = self
                    .inputs
                    .get_mut(index)
                    .ok_or_else(|| LowerError::Invalid {
                        node: NodeRef {
                            id,
                            name: node.name.clone(),
                        },
                        message: format!("input index {index} is not a graph input"),
                    })?;
                match slot {
                    Some(prev) if *prev != spec => {
                        return Err(self.invalid(
                            id,
                            "graph input is quantised twice with different parameters",
                        ))
                    }
                    _ => *slot = Some(spec),
                }
                self.segs[id.index()] = Some(vec![Source {
                    kind: SourceKind::Input as i32,
                    index: index as u32,
                    length: node.ty.numel() as u32,
                }]);
            }
            Op::Reshape => {
                self.segs[id.index()] = Some(self.operand(id, 0)?);
            }
            Op::Concat { axis } => {
                let first = node
                    .inputs
                    .first()
                    .map(|i| self.graph.ty(*i).shape.clone())
                    .unwrap_or_default();
                let outer: usize = first.iter().take(*axis).product();
                if *axis != 0 && outer != 1 {
                    return Err(self.invalid(
                        id,
                        format!(
                            "concat along axis {axis} interleaves its operands; only channel concatenation (axis 0) is supported"
                        ),
                    ));
                }
                let mut all = Vec::new();
                for k in 0..node.inputs.len() {
                    all.extend(self.operand(id, k)?);
                }
                self.segs[id.index()] = Some(all);
            }
            Op::Layer(l) => {
                let p = self.population(id, l)?;
                let index = self.populations.len() as u32;
                let length = node.ty.numel() as u32;
                self.populations.push(p);
                self.segs[id.index()] = Some(vec![Source {
                    kind: SourceKind::Population as i32,
                    index,
                    length,
                }]);
            }
            Op::Dequantize { scale } => {
                let segs = self.operand(id, 0)?;
                match segs.as_slice() {
                    [s] if s.kind == SourceKind::Population as i32 => {
                        self.dequant.insert(id, (s.index, *scale));
                    }
                    _ => {
                        return Err(self.invalid(
                            id,
                            "a dequantized output must be the value of exactly one layer",
                        ))
                    }
                }
            }
            other => {
                return Err(LowerError::Unsupported {
                    node: self.at(id),
                    op: other.mnemonic().into(),
                })
            }
        }
        Ok(())
    }

    fn population(&mut self, id: NodeId, l: &Layer) -> Result<Population, LowerError> {
        let g = self.graph;
        let node = g.node(id);
        let q = l
            .quant
            .as_ref()
            .ok_or_else(|| self.invalid(id, "layer is not quantised"))?;
        if q.spiking().is_some() {
            return Err(self.invalid(
                id,
                "layer has rate-mode integrate-and-fire neurons; Loihi 2 runs graded sigma-delta or snn-mode CUBA-LIF neurons",
            ));
        }
        if q.act_step().is_some() || q.act_round() != nmc_ir::ActRound::Floor || q.pool_first() {
            return Err(self.invalid(
                id,
                "layer uses a divided, rounded-up or pool-first activation, which Loihi 2 neurons do not compute",
            ));
        }
        if q.weight_exp.len() != l.synapses.len() || node.inputs.len() != l.synapses.len() {
            return Err(self.invalid(
                id,
                "one operand and one weight exponent per synapse group expected",
            ));
        }
        let channels = *node
            .ty
            .shape
            .first()
            .ok_or_else(|| self.invalid(id, "layer value has no channel axis"))?;
        let mut groups = Vec::with_capacity(l.synapses.len());
        let mut pre_shape = None;
        for (k, s) in l.synapses.iter().enumerate() {
            let sources = self.operand(id, k)?;
            let exp = q.weight_exp[k];
            let (lo, hi) = self.spec.weight_exp_range;
            if exp < lo.max(0) || exp > hi {
                return Err(self.out_of_range(
                    id,
                    format!(
                        "synapse group {k}: weight exponent {exp} outside {}..={hi}",
                        lo.max(0)
                    ),
                ));
            }
            let c = g
                .consts
                .try_get(s.weight())
                .ok_or_else(|| self.invalid(id, format!("unknown constant {}", s.weight())))?;
            let w = c.to_i32().ok_or_else(|| {
                self.invalid(id, format!("synapse group {k}: weights are not integers"))
            })?;
            // A CUBA layer's weights are what Lava's bit-accurate Dense multiplies by: within
            // its 8-bit clip `[-256, 255]` (docs/chips.md §1.4, §1.6), the exponent folded in.
            if q.cuba().is_some() {
                if let Some(bad) = w.iter().find(|w| !(-256..=255).contains(*w)) {
                    return Err(self.out_of_range(
                        id,
                        format!(
                            "synapse group {k}: CUBA weight {bad} is outside Lava's [-256, 255]"
                        ),
                    ));
                }
            } else if self.spec.group_exponent(&w, exp).is_none() {
                return Err(self.out_of_range(
                    id,
                    format!(
                        "synapse group {k}: weights do not fit {}-bit{} mantissas with a shared exponent in {}..={hi}",
                        self.spec.weight_bits,
                        if self.spec.even_weights { " even" } else { "" },
                        lo.max(0)
                    ),
                ));
            }
            let in_shape = &g.ty(node.inputs[k]).shape;
            let (kind, pre) = match s {
                Synapse::Dense { .. } => {
                    let (out, inn) = (c.shape[0], c.shape.get(1).copied().unwrap_or(0));
                    (
                        GroupKind::Dense(DenseShape {
                            out_features: out as u32,
                            in_features: inn as u32,
                        }),
                        vec![out],
                    )
                }
                Synapse::Conv { geom, .. } => {
                    let hw = (in_shape.len() == 3)
                        .then(|| geom.out_hw(in_shape[1], in_shape[2]))
                        .flatten()
                        .ok_or_else(|| {
                            self.invalid(
                                id,
                                format!("synapse group {k}: kernel does not fit its input"),
                            )
                        })?;
                    let m = |v: &[usize]| u32s(v).map_err(|e| self.invalid(id, e));
                    (
                        GroupKind::Conv(ConvShape {
                            in_shape: m(in_shape)?,
                            out_channels: c.shape[0] as u32,
                            kernel: m(&geom.kernel)?,
                            strides: m(&geom.strides)?,
                            pads: m(&geom.pads)?,
                            dilations: m(&geom.dilations)?,
                            groups: geom.groups as u32,
                        }),
                        vec![c.shape[0], hw.0, hw.1],
                    )
                }
            };
            pre_shape.get_or_insert(pre);
            groups.push(SynapseGroup {
                sources,
                weight_exp: exp,
                kind: Some(kind),
                weights: Some(store_weights(&w, c.shape[0])),
            });
        }
        let pre_shape = pre_shape.ok_or_else(|| self.invalid(id, "layer has no synapse groups"))?;

        let bias = match q.bias {
            None => Vec::new(),
            Some(b) => {
                let v = g
                    .consts
                    .try_get(b)
                    .and_then(|c| c.to_i32())
                    .ok_or_else(|| self.invalid(id, "bias is not an integer constant"))?;
                if v.len() != channels {
                    return Err(self.invalid(
                        id,
                        format!("{} bias values for {channels} channels", v.len()),
                    ));
                }
                if let Some(bad) = v.iter().find(|b| !self.spec.bias_fits(i64::from(**b))) {
                    return Err(self.out_of_range(
                        id,
                        format!(
                            "bias {bad} is not a {}-bit mantissa shifted by at most {}",
                            self.spec.bias_mant_bits, self.spec.bias_exp_max
                        ),
                    ));
                }
                v
            }
        };
        if q.state_bits == 0 || q.state_bits > self.spec.state_bits {
            return Err(self.out_of_range(
                id,
                format!(
                    "state width {} bits exceeds the chip's {} bits",
                    q.state_bits, self.spec.state_bits
                ),
            ));
        }
        let amax = (1i64 << (self.spec.max_act_bits - 1)) - 1;
        if i64::from(q.act_min) < -amax - 1 || i64::from(q.act_max) > amax {
            return Err(self.out_of_range(
                id,
                format!(
                    "activation range [{}, {}] exceeds {}-bit graded spikes",
                    q.act_min, q.act_max, self.spec.max_act_bits
                ),
            ));
        }
        let pool = l.pool.as_ref().map(|p| PoolMsg {
            kind: match p.kind {
                PoolKind::Max => PoolKindMsg::Max,
                PoolKind::Avg => PoolKindMsg::Avg,
                PoolKind::Sum => PoolKindMsg::Sum,
            } as i32,
            kernel: p.kernel.iter().map(|&v| v as u32).collect(),
            strides: p.strides.iter().map(|&v| v as u32).collect(),
            pads: p.pads.iter().map(|&v| v as u32).collect(),
            count_include_pad: p.count_include_pad,
        });
        let slices = self.slices(id, channels)?;
        Ok(Population {
            name: node.name.clone().unwrap_or_else(|| id.to_string()),
            shape: u32s(&node.ty.shape).map_err(|m| self.invalid(id, m))?,
            pre_shape: u32s(&pre_shape).map_err(|m| self.invalid(id, m))?,
            groups,
            bias,
            state_bits: q.state_bits,
            act_shift: q.act_shift,
            act_min: q.act_min,
            act_max: q.act_max,
            scale: q.scale,
            pool,
            slices,
            cuba: q.cuba().map(crate::artifact::CubaMsg::from_ir),
        })
    }

    /// The layer's slices, checked to form a grid over its outputs (channel bands, and row and
    /// column bands of a spatial tiling) and, summed per core, for fit.
    fn slices(&mut self, id: NodeId, channels: usize) -> Result<Vec<SliceMsg>, LowerError> {
        let slices = self
            .mapping
            .layers
            .get(&id)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| LowerError::Unmapped { node: self.at(id) })?;
        let fp = LayerFootprint::of(self.graph, id).map_err(|e| self.invalid(id, e.to_string()))?;
        let plane = fp.plane.map(|p| (p.rows.post, p.cols.post));
        let grid = crate::tiles::check_grid(slices, channels as u32, plane)
            .map_err(|m| self.invalid(id, format!("mapping: {m}")))?;
        let positions = grid.rows.len() * grid.cols.len();
        if positions > crate::validate::MAX_TILE_POSITIONS {
            return Err(self.invalid(
                id,
                format!(
                    "mapping: {positions} tile positions exceed the artifact's {}",
                    crate::validate::MAX_TILE_POSITIONS
                ),
            ));
        }
        let mut out = Vec::with_capacity(slices.len());
        for s in slices {
            let usage =
                self.core_usage
                    .get_mut(s.core as usize)
                    .ok_or_else(|| LowerError::Invalid {
                        node: NodeRef {
                            id,
                            name: self.graph.node(id).name.clone(),
                        },
                        message: format!("mapping uses core {} which has no placement", s.core),
                    })?;
            *usage += fp.usage_slice(s);
            let total = *usage;
            self.spec
                .check_slice(&total)
                .map_err(|fit| LowerError::DoesNotFit {
                    node: self.at(id),
                    core: s.core,
                    fit,
                })?;
            out.push(SliceMsg::from_ir(s));
        }
        Ok(out)
    }
}

/// Dense below the IR's sparsity threshold, CSR above it (rows = first weight axis).
fn store_weights(w: &[i32], rows: usize) -> Weights {
    let nnz = w.iter().filter(|v| **v != 0).count();
    if w.is_empty() || rows == 0 || (nnz as f64) / (w.len() as f64) >= SPARSE_DENSITY_THRESHOLD {
        return Weights::Dense(DenseWeights { values: w.to_vec() });
    }
    let cols = w.len() / rows;
    let mut indptr = Vec::with_capacity(rows + 1);
    let mut indices = Vec::with_capacity(nnz);
    let mut values = Vec::with_capacity(nnz);
    indptr.push(0u32);
    for r in 0..rows {
        for (c, &v) in w[r * cols..(r + 1) * cols].iter().enumerate() {
            if v != 0 {
                indices.push(c as u32);
                values.push(v);
            }
        }
        indptr.push(indices.len() as u32);
    }
    Weights::Csr(CsrWeights {
        indptr,
        indices,
        values,
    })
}
