//! Per-core memory model: how much synaptic and neuron-state memory a slice of a population
//! needs. The partitioner sizes slices with it and lowering and the emulator re-check it, so all
//! three agree by construction.
//!
//! Model (all assumed where Intel publishes no layout, docs/chips.md §1.5):
//! - **Dense synapses** (a `[out, in]` matrix): per synapse group, the cheaper of dense storage
//!   (1 byte per weight over the slice's rows, zeros included) and sparse storage (3 bytes per
//!   non-zero: an 8-bit weight and a 16-bit index). The choice is made per group and slice.
//! - **Conv synapses**: kernels are shared across positions, so a slice stores its output
//!   channels' kernels densely: `channels × ci/g × kh × kw` bytes.
//! - **Neuron state**: a sigma-delta neuron keeps `sigma`, `act_prev` and `bias` (Lava
//!   `PySigmaDeltaModelFixed`, docs/chips.md §1.4), one 32-bit word each (24-bit values padded). A
//!   pooled population also keeps one `act_prev` word per pooled output, while its pre-pool
//!   neurons keep their current activation in the `act_prev` slot.
//! - **Spatial tiles** ([`crate::tiles`]): a tile holds its channels' kernels in full and the
//!   neurons of its rectangle, plus the halo rows its outputs' pooling windows share with the
//!   neighbouring tile.

use crate::artifact::{GroupKind, Population, Weights};
use crate::tiles::{Axis, Plane};
use nmc_ir::{CoreSlice, Graph, NodeId, Op, Synapse};
use std::fmt;

/// Bytes of one sparse synapse: 8-bit weight + 16-bit index (assumed).
pub const SPARSE_SYNAPSE_BYTES: u64 = 3;
/// Bytes of one dense synapse (8-bit weight).
pub const DENSE_SYNAPSE_BYTES: u64 = 1;
/// Bytes of one neuron-state word (24-bit value in a 32-bit word).
pub const STATE_WORD_BYTES: u64 = 4;
/// State words per (pre-pool) neuron: sigma, act_prev, bias.
pub const STATE_WORDS_PER_NEURON: u64 = 3;
/// State bytes per neuron.
pub const STATE_BYTES_PER_NEURON: u64 = STATE_WORDS_PER_NEURON * STATE_WORD_BYTES;

/// A per-core resource that can run out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// Neuron count.
    Neurons,
    /// Synaptic memory (bytes).
    SynapseMemory,
    /// Neuron-state memory (bytes).
    StateMemory,
}

impl Resource {
    /// Name used in messages and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Neurons => "neurons",
            Resource::SynapseMemory => "synaptic memory (bytes)",
            Resource::StateMemory => "neuron-state memory (bytes)",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A core would need more of a resource than it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{resource}: needs {needed}, a core has {available}")]
pub struct FitError {
    /// Which resource.
    pub resource: Resource,
    /// How much the slice (or core) needs.
    pub needed: u64,
    /// How much one core has.
    pub available: u64,
}

/// Why a node's memory cannot be sized.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// The node is not a layer of the graph.
    #[error("{0} is not a layer")]
    NotALayer(NodeId),
    /// The layer's weights or operand shapes are inconsistent.
    #[error("{0}: cannot size the layer (inconsistent weights or shapes)")]
    Unsized(NodeId),
}

/// Resources one slice of a population (or one core, summed) needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SliceUsage {
    /// Output channels in the slice.
    pub channels: u64,
    /// Pre-pool neurons (what the core updates).
    pub neurons: u64,
    /// Post-pool outputs (what the core sends).
    pub outputs: u64,
    /// Synaptic memory in bytes.
    pub synapse_bytes: u64,
    /// Neuron-state memory in bytes.
    pub state_bytes: u64,
}

impl std::ops::AddAssign for SliceUsage {
    fn add_assign(&mut self, o: SliceUsage) {
        self.channels += o.channels;
        self.neurons += o.neurons;
        self.outputs += o.outputs;
        self.synapse_bytes += o.synapse_bytes;
        self.state_bytes += o.state_bytes;
    }
}

/// How a dense synapse group's slice is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SynapseStorage {
    /// One byte per weight of the slice's rows.
    Dense,
    /// Three bytes per non-zero.
    Sparse,
}

/// The storage and its size in bytes for `rows × cols` weights with `nnz` non-zeros; sparse wins
/// only when strictly smaller.
pub fn dense_group_storage(rows: u64, cols: u64, nnz: u64) -> (SynapseStorage, u64) {
    let dense = rows
        .saturating_mul(cols)
        .saturating_mul(DENSE_SYNAPSE_BYTES);
    let sparse = nnz.saturating_mul(SPARSE_SYNAPSE_BYTES);
    if sparse < dense {
        (SynapseStorage::Sparse, sparse)
    } else {
        (SynapseStorage::Dense, dense)
    }
}

/// Synapse-memory footprint of one group, precomputed so that any slice costs O(1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupFootprint {
    /// Dense matrix: prefix sums of non-zeros per row (`rows + 1` entries) and the column count.
    Dense {
        /// `nnz_prefix[r]` = non-zeros in rows `0..r`.
        nnz_prefix: Vec<u64>,
        /// Input size.
        cols: u64,
    },
    /// Convolution: kernel bytes per output channel (`ci/g × kh × kw`).
    Conv {
        /// Bytes per output channel.
        per_channel: u64,
    },
}

/// Memory footprint of a whole population, from which any channel range's usage follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerFootprint {
    /// Output channels.
    pub channels: u64,
    /// Pre-pool neurons per channel (1 for dense populations, `oh × ow` for conv).
    pub pre_per_channel: u64,
    /// Post-pool outputs per channel.
    pub post_per_channel: u64,
    /// Whether the population pools its outputs.
    pub pooled: bool,
    /// One entry per synapse group.
    pub groups: Vec<GroupFootprint>,
    /// The output plane of a `[c, h, w]` population (what spatial tiles split).
    pub plane: Option<Plane>,
}

impl LayerFootprint {
    /// The footprint of layer node `layer`. Weights whose values are unknown (parsed from the
    /// text format) count as all non-zero.
    pub fn of(graph: &Graph, layer: NodeId) -> Result<LayerFootprint, UsageError> {
        let node = graph
            .nodes
            .get(layer.index())
            .ok_or(UsageError::NotALayer(layer))?;
        let Op::Layer(l) = &node.op else {
            return Err(UsageError::NotALayer(layer));
        };
        Self::of_layer(graph, node, l).ok_or(UsageError::Unsized(layer))
    }

    fn of_layer(graph: &Graph, node: &nmc_ir::Node, l: &nmc_ir::Layer) -> Option<LayerFootprint> {
        let channels = *node.ty.shape.first()? as u64;
        let post = node.ty.numel() as u64;
        let mut pre = None;
        let mut groups = Vec::with_capacity(l.synapses.len());
        for (k, s) in l.synapses.iter().enumerate() {
            let w = graph.consts.try_get(s.weight())?;
            match s {
                Synapse::Dense { .. } => {
                    let (rows, cols) = (*w.shape.first()?, *w.shape.get(1)?);
                    pre.get_or_insert(rows as u64);
                    let mut nnz_prefix = Vec::with_capacity(rows + 1);
                    nnz_prefix.push(0u64);
                    match w.row_nnz(rows, cols) {
                        Some(per_row) => {
                            for (r, n) in per_row.into_iter().enumerate() {
                                nnz_prefix.push(nnz_prefix[r] + n);
                            }
                        }
                        // Values unknown (parsed from text): assume every weight non-zero.
                        _ => (1..=rows).for_each(|r| nnz_prefix.push((r * cols) as u64)),
                    }
                    groups.push(GroupFootprint::Dense {
                        nnz_prefix,
                        cols: cols as u64,
                    });
                }
                Synapse::Conv { geom, .. } => {
                    let x = &graph.nodes.get(node.inputs.get(k)?.index())?.ty.shape;
                    if geom.kernel.contains(&0) || geom.dilations.contains(&0) {
                        return None;
                    }
                    let (oh, ow) = geom.out_hw(*x.get(1)?, *x.get(2)?)?;
                    pre.get_or_insert((*w.shape.first()? * oh * ow) as u64);
                    let per_channel: usize = w.shape.iter().skip(1).product();
                    groups.push(GroupFootprint::Conv {
                        per_channel: per_channel as u64,
                    });
                }
            }
        }
        let pre = pre?;
        if channels == 0 {
            return None;
        }
        // The plane: pre-pool extent from the first convolution, post-pool from the value.
        let plane = match (l.synapses.first(), node.ty.shape.as_slice()) {
            (Some(Synapse::Conv { geom, .. }), &[_, ph, pw]) => {
                let x = &graph.nodes.get(node.inputs.first()?.index())?.ty.shape;
                let (oh, ow) = geom.out_hw(*x.get(1)?, *x.get(2)?)?;
                let axis = |pre: usize, post: usize, i: usize| {
                    let u = |v: usize| u32::try_from(v).ok();
                    Some(match &l.pool {
                        None => Axis::plain(u(pre)?),
                        Some(p) => Axis {
                            pre: u(pre)?,
                            post: u(post)?,
                            k: u(p.kernel[i])?,
                            s: u(p.strides[i])?,
                            pad: u(p.pads[i])?,
                        },
                    })
                };
                Some(Plane {
                    rows: axis(oh, ph, 0)?,
                    cols: axis(ow, pw, 1)?,
                })
            }
            _ => None,
        };
        Some(LayerFootprint {
            channels,
            pre_per_channel: pre / channels,
            post_per_channel: post / channels,
            pooled: l.pool.is_some(),
            groups,
            plane,
        })
    }

    /// The footprint of an artifact population, which must be valid
    /// ([`crate::validate`]); lowering and the emulator size cores with the same numbers.
    pub fn of_population(p: &Population) -> LayerFootprint {
        let channels = u64::from(p.pre_shape[0]);
        let pre: u64 = p.pre_shape.iter().map(|&d| u64::from(d)).product();
        let post: u64 = p.shape.iter().map(|&d| u64::from(d)).product();
        let groups = p
            .groups
            .iter()
            .map(|g| match (&g.kind, &g.weights) {
                (Some(GroupKind::Conv(c)), _) => GroupFootprint::Conv {
                    per_channel: u64::from(c.in_shape[0] / c.groups)
                        * u64::from(c.kernel[0])
                        * u64::from(c.kernel[1]),
                },
                (Some(GroupKind::Dense(d)), w) => {
                    let rows = d.out_features as usize;
                    let cols = d.in_features as usize;
                    let mut nnz_prefix = Vec::with_capacity(rows + 1);
                    nnz_prefix.push(0u64);
                    for r in 0..rows {
                        let n = match w {
                            Some(Weights::Dense(v)) => v.values[r * cols..(r + 1) * cols]
                                .iter()
                                .filter(|x| **x != 0)
                                .count(),
                            Some(Weights::Csr(c)) => c.values
                                [c.indptr[r] as usize..c.indptr[r + 1] as usize]
                                .iter()
                                .filter(|x| **x != 0)
                                .count(),
                            None => cols,
                        };
                        nnz_prefix.push(nnz_prefix[r] + n as u64);
                    }
                    GroupFootprint::Dense {
                        nnz_prefix,
                        cols: cols as u64,
                    }
                }
                (None, _) => GroupFootprint::Conv { per_channel: 0 },
            })
            .collect();
        LayerFootprint {
            channels,
            pre_per_channel: pre / channels,
            post_per_channel: post / channels,
            pooled: p.pool.is_some(),
            groups,
            plane: Plane::of_population(p),
        }
    }

    /// Usage of one slice of the population: its channels (clamped) and, for a spatial tile,
    /// the pre-pool neurons and outputs of its rectangle, halo included. Each tile stores the
    /// kernels of its channels in full.
    pub fn usage_slice(&self, s: &CoreSlice) -> SliceUsage {
        let whole = self.usage(s.start, s.end);
        let Some(plane) = self.plane.filter(|_| s.is_tile()) else {
            return whole;
        };
        let t = plane.resolve(s);
        let neurons = whole.channels * t.pre_area();
        let outputs = whole.channels * t.post_area();
        let pooled_words = if self.pooled { outputs } else { 0 };
        SliceUsage {
            neurons,
            outputs,
            state_bytes: neurons * STATE_BYTES_PER_NEURON + pooled_words * STATE_WORD_BYTES,
            ..whole
        }
    }

    /// Usage of channels `start..end` (clamped to the population).
    pub fn usage(&self, start: u32, end: u32) -> SliceUsage {
        let end = u64::from(end).min(self.channels);
        let start = u64::from(start).min(end);
        let ch = end - start;
        let neurons = ch * self.pre_per_channel;
        let outputs = ch * self.post_per_channel;
        let synapse_bytes = self
            .groups
            .iter()
            .map(|g| match g {
                GroupFootprint::Dense { nnz_prefix, cols } => {
                    let nnz = nnz_prefix[end as usize] - nnz_prefix[start as usize];
                    // Rows of a dense group are neurons (one per channel).
                    dense_group_storage(ch, *cols, nnz).1
                }
                GroupFootprint::Conv { per_channel } => ch * per_channel * DENSE_SYNAPSE_BYTES,
            })
            .sum();
        let pooled_words = if self.pooled { outputs } else { 0 };
        SliceUsage {
            channels: ch,
            neurons,
            outputs,
            synapse_bytes,
            state_bytes: neurons * STATE_BYTES_PER_NEURON + pooled_words * STATE_WORD_BYTES,
        }
    }
}

/// Resources needed by channels `start..end` (clamped) of layer node `layer`. Each call scans
/// the layer's weights; use [`LayerFootprint`] directly to size many slices of one layer.
pub fn slice_usage(
    graph: &Graph,
    layer: NodeId,
    start: u32,
    end: u32,
) -> Result<SliceUsage, UsageError> {
    LayerFootprint::of(graph, layer).map(|f| f.usage(start, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nmc_ir::{Constant, ConvGeom, Layer, LayerQuant, Neuron, Pool, PoolKind, TensorType};

    fn quant(groups: usize) -> LayerQuant {
        LayerQuant {
            weight_exp: vec![0; groups],
            bias: None,
            state_bits: 24,
            act_shift: 0,
            act_min: 0,
            act_max: 127,
            scale: 1.0,
            mode: nmc_ir::QuantMode::Shift,
        }
    }

    #[test]
    fn dense_layer_chooses_cheaper_storage_per_slice() {
        let mut g = Graph::new("t");
        let x = g.add_input(TensorType::i32([100]), "x");
        // 4 rows × 100: row 0 dense, rows 1-3 have 2 non-zeros each.
        let mut w = vec![0i32; 400];
        w[..100].fill(2);
        for r in 1..4 {
            w[r * 100] = 2;
            w[r * 100 + 50] = -4;
        }
        let wc = g.consts.add(Constant::i32(vec![4, 100], w));
        let l = g.add(
            Op::Layer(Layer {
                synapses: vec![Synapse::Dense { weight: wc }],
                bias: None,
                neuron: Neuron::Relu,
                pool: None,
                quant: Some(quant(1)),
            }),
            vec![x],
            TensorType::i32([4]),
            Some("fc".into()),
        );
        // Row 0 alone: dense 100 B < sparse 300 B.
        let u = slice_usage(&g, l, 0, 1).unwrap();
        assert_eq!((u.neurons, u.synapse_bytes, u.state_bytes), (1, 100, 12));
        // Rows 1..4: dense 300 B vs sparse 6 × 3 = 18 B.
        let u = slice_usage(&g, l, 1, 4).unwrap();
        assert_eq!((u.neurons, u.synapse_bytes, u.state_bytes), (3, 18, 36));
        // All rows: dense 400 B vs sparse (100 + 6) × 3 = 318 B.
        assert_eq!(slice_usage(&g, l, 0, 4).unwrap().synapse_bytes, 318);
        assert_eq!(slice_usage(&g, x, 0, 4), Err(UsageError::NotALayer(x)));
        assert_eq!(
            slice_usage(&g, NodeId(99), 0, 4),
            Err(UsageError::NotALayer(NodeId(99)))
        );
    }

    #[test]
    fn conv_layer_counts_shared_kernels_and_pre_pool_neurons() {
        let mut g = Graph::new("t");
        let x = g.add_input(TensorType::i32([2, 8, 8]), "x");
        let wc = g.consts.add(Constant::i32(vec![6, 2, 3, 3], vec![2; 108]));
        let l = g.add(
            Op::Layer(Layer {
                synapses: vec![Synapse::Conv {
                    weight: wc,
                    geom: ConvGeom {
                        kernel: [3, 3],
                        strides: [1, 1],
                        pads: [1, 1, 1, 1],
                        dilations: [1, 1],
                        groups: 1,
                    },
                }],
                bias: None,
                neuron: Neuron::Relu,
                pool: Some(Pool {
                    kind: PoolKind::Max,
                    kernel: [2, 2],
                    strides: [2, 2],
                    pads: [0; 4],
                    count_include_pad: false,
                }),
                quant: Some(quant(1)),
            }),
            vec![x],
            TensorType::i32([6, 4, 4]),
            None,
        );
        let u = slice_usage(&g, l, 2, 5).unwrap();
        assert_eq!(u.channels, 3);
        assert_eq!(u.neurons, 3 * 64);
        assert_eq!(u.outputs, 3 * 16);
        assert_eq!(u.synapse_bytes, 3 * 2 * 9);
        assert_eq!(u.state_bytes, 3 * 64 * 12 + 3 * 16 * 4);
        let spec = crate::loihi2();
        assert!(spec.check_slice(&u).is_ok());
        let big = SliceUsage { neurons: 9000, ..u };
        let e = spec.check_slice(&big).unwrap_err();
        assert_eq!(e.resource, Resource::Neurons);
        assert_eq!((e.needed, e.available), (9000, 8192));
        assert_eq!(e.to_string(), "neurons: needs 9000, a core has 8192");
    }
}
