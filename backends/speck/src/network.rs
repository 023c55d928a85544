//! The Speck view of a quantised rate-mode graph: a graph of DYNAP-CNN layers, each a convolution
//! (a dense layer becomes a convolution over a 1×1 or full-size input, as sinabs'
//! `_convert_linear_to_conv` does), an integrate-and-fire population and a sum pooling.
//!
//! Branches are what sinabs 3 maps (docs/chips.md §2.9): a layer (or the DVS layer) sends its
//! events to at most two destinations, and a layer may read two sources — sinabs' `Merge`, the
//! events of two maps of equal shape arriving at one core and one kernel. In the IR such a merge
//! is a layer with two synapse groups that are the same kernel (`quantize_rate::fold_merges`
//! makes them from an `Add` read by a convolution); groups with different kernels (a residual
//! add after a convolution, `relu(conv(x) + x)`) have no Speck form and are refused. Each
//! destination has its own sum pooling: a pooling population of a layer that something else
//! also reads runs as the pooling of its readers' destinations ([`SpeckLayer::consumer_pools`]).
//! [`extract`] reads it from the IR and checks every per-layer limit of the chip; the memory each
//! layer needs ([`MemoryUse`]) is what the layer → core matching works on.

use crate::memory::MemoryUse;
use crate::spec::ChipSpec;
use nmc_ir::{Graph, Layer, NodeId, NodeRef, Op, PoolKind, Reset, Synapse};
use std::fmt;

/// Where a layer's input events come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The network input (through the DVS layer or injected directly).
    Input,
    /// Another layer (index into [`Network::layers`]).
    Layer(usize),
}

/// One DYNAP-CNN layer.
#[derive(Clone, Debug, PartialEq)]
pub struct SpeckLayer {
    /// The IR node.
    pub node: NodeId,
    /// Name (from the source model).
    pub name: String,
    /// Inputs: one, or two for a merge (their events are summed before the kernel).
    pub sources: Vec<Source>,
    /// Input feature map `[c, h, w]` as this layer sees it.
    pub in_shape: [u32; 3],
    /// Square kernel side.
    pub kernel: u32,
    /// Stride `[y, x]`.
    pub stride: [u32; 2],
    /// Padding `[y, x]` (applied on both sides).
    pub padding: [u32; 2],
    /// Neuron map `[f, out_h, out_w]` (before pooling).
    pub neuron_shape: [u32; 3],
    /// Sum-pooling size (1 = none) of the layer's output events, to every destination.
    pub pool: u32,
    /// Weights in samna order `[f][c][kx][ky]` (x = column, y = row): sinabs transposes torch's
    /// OIHW kernel "to match samna convention" (docs/chips.md §2.4).
    pub weights: Vec<i32>,
    /// Bias per output channel, added every timestep (`None`: the layer has no bias).
    pub bias: Option<Vec<i32>>,
    /// `threshold_high`.
    pub threshold: i32,
    /// `threshold_low`: lower clamp of the state.
    pub v_min: i32,
    /// Reset mode (`return_to_zero` when [`Reset::Zero`]).
    pub reset: Reset,
    /// Largest spike count per neuron and step (`act_max` of the IR; the emulator honours it).
    pub max_spikes: i32,
    /// Whether it came from a dense (fully connected) synapse.
    pub dense: bool,
    /// Layers that read this one's events (at most two).
    pub consumers: Vec<usize>,
    /// The sum pooling toward each consumer (parallel to `consumers`): `pool`, times a pooling
    /// population folded into that destination (sinabs 3 pools per destination,
    /// docs/chips.md §2.9).
    pub consumer_pools: Vec<u32>,
    /// Memory entries needed, by sinabs' formulas.
    pub memory: MemoryUse,
}

impl SpeckLayer {
    /// The post-pool output map `[f, h, w]` (what consumers see).
    pub fn out_shape(&self) -> [u32; 3] {
        let [f, h, w] = self.neuron_shape;
        [f, h / self.pool, w / self.pool]
    }
}

/// The network input.
#[derive(Clone, Debug, PartialEq)]
pub struct InputDesc {
    /// Name in the source model.
    pub name: String,
    /// Per-sample shape in the IR (what `nmc run` reads).
    pub ir_shape: Vec<u32>,
    /// The same values as a `[c, h, w]` map (a vector of `n` is `[n, 1, 1]`).
    pub shape: [u32; 3],
    /// Real value of one rate-encoder level (`levels` levels fire every timestep).
    pub scale: f32,
    /// Rate-encoder levels.
    pub levels: i32,
    /// Layers that read the input (at most two: the DVS layer's destinations).
    pub consumers: Vec<usize>,
}

/// The network output: one layer's post-pool spike counts.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputDesc {
    /// Name in the source model.
    pub name: String,
    /// The layer.
    pub layer: usize,
    /// Per-sample shape in the IR.
    pub ir_shape: Vec<u32>,
    /// Real value of one spike per timestep.
    pub scale: f32,
}

/// A pooling of the network input that runs in the DVS layer (sinabs moves a pooling on the
/// input side into the DVS layer, docs/chips.md §2.8 and §7).
#[derive(Clone, Debug, PartialEq)]
pub struct DvsPool {
    /// The IR layer (a pass-through sum pool, `nmc::passes::quantize_rate::input_pool`).
    pub node: NodeId,
    /// Window `[h, w]` in the model input's axes (stride = window).
    pub kernel: [u32; 2],
}

/// A rate-mode network ready for Speck.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    /// The input.
    pub input: InputDesc,
    /// The input's pooling in the DVS layer, if the model pools its input.
    pub dvs_pool: Option<DvsPool>,
    /// Layers in topological order.
    pub layers: Vec<SpeckLayer>,
    /// The output.
    pub output: OutputDesc,
}

/// Whether a problem is a chip limit (the model does not fit) or a missing feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// A size or count beyond what the chip has (exit code 3).
    Limit,
    /// Something Speck cannot express at all (exit code 1).
    Unsupported,
}

/// One reason a graph cannot run on Speck, located at a layer when it is about one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Limit or unsupported.
    pub kind: ProblemKind,
    /// The layer (`%3 ("/conv1/Conv")`), when the problem is about one.
    pub layer: Option<NodeRef>,
    /// What is wrong, with the limit and its source.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.layer {
            Some(l) => write!(f, "layer {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Every problem found (never empty).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Whether every problem is a chip limit (so the model is valid but too big).
    pub fn all_limits(&self) -> bool {
        self.0.iter().all(|p| p.kind == ProblemKind::Limit)
    }
}

struct Cx<'g> {
    g: &'g Graph,
    spec: &'g ChipSpec,
    problems: Vec<Problem>,
}

impl Cx<'_> {
    fn push(&mut self, kind: ProblemKind, at: Option<NodeId>, message: String) {
        let layer = at.map(|id| self.g.node_ref(id));
        self.problems.push(Problem {
            kind,
            layer,
            message,
        });
    }
    fn limit(&mut self, at: NodeId, message: String) {
        self.push(ProblemKind::Limit, Some(at), message);
    }
    fn unsupported(&mut self, at: Option<NodeId>, message: String) {
        self.push(ProblemKind::Unsupported, at, message);
    }
}

/// What a value of the graph is, for Speck.
#[derive(Clone, Copy, Debug)]
enum Val {
    /// The (quantised) network input.
    Input,
    /// A layer's post-pool events.
    Layer(usize),
    /// Not something events can carry (float or unsupported).
    None,
    /// Depends on a node already reported as a problem (not reported again).
    Failed,
    /// The network input after the DVS layer's pooling.
    DvsPooled,
    /// A layer's events pooled once more by a pooling population that runs as the pooling of
    /// the destinations reading it (the layer, the cumulative pooling from its neuron map).
    Pooled(usize, u32),
}

fn u32_of(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Reads the Speck network of a quantised rate-mode graph, checking every limit of `spec`.
/// All problems are reported at once.
pub fn extract(g: &Graph, spec: &ChipSpec) -> Result<Network, Problems> {
    let mut cx = Cx {
        g,
        spec,
        problems: Vec::new(),
    };
    let order = match g.topo_order() {
        Ok(o) => o,
        Err(c) => {
            cx.unsupported(Some(c.0), "the graph has a cycle".into());
            return Err(Problems(cx.problems));
        }
    };
    if g.inputs.len() != 1 {
        cx.unsupported(
            None,
            format!(
                "the model has {} inputs; speck takes one event stream",
                g.inputs.len()
            ),
        );
    }
    if g.outputs.len() != 1 {
        cx.unsupported(
            None,
            format!(
                "the model has {} outputs; nmc reads one layer's spike counts from speck",
                g.outputs.len()
            ),
        );
    }
    let users = g.users();
    let mut vals = vec![Val::None; g.nodes.len()];
    let mut input: Option<InputDesc> = None;
    let mut layers: Vec<SpeckLayer> = Vec::new();
    let mut output: Option<OutputDesc> = None;
    let mut dvs_pool: Option<DvsPool> = None;
    // Layers that read the input unpooled (the DVS layer has one output map).
    let mut direct: Vec<NodeId> = Vec::new();
    for id in order {
        let node = g.node(id);
        let arg = |k: usize| {
            node.inputs
                .get(k)
                .map(|i| vals[i.index()])
                .unwrap_or(Val::None)
        };
        match &node.op {
            Op::Input { .. } => {}
            Op::Quantize(q) => {
                let from_input = node
                    .inputs
                    .first()
                    .is_some_and(|i| matches!(g.node(*i).op, Op::Input { .. }));
                if !from_input || input.is_some() {
                    cx.unsupported(
                        Some(id),
                        "the network input must be quantised once, directly".into(),
                    );
                    continue;
                }
                if q.min != 0 || q.max < 1 {
                    cx.unsupported(
                        Some(id),
                        format!(
                            "the input grid [{}, {}] is not a rate-encoder grid [0, levels]",
                            q.min, q.max
                        ),
                    );
                }
                let s = &node.ty.shape;
                let shape = match s.as_slice() {
                    [n] => [u32_of(*n), 1, 1],
                    [c, h, w] => [u32_of(*c), u32_of(*h), u32_of(*w)],
                    _ => {
                        cx.unsupported(
                            Some(id),
                            format!(
                                "input of shape {s:?}: speck takes [c, h, w] maps or [n] vectors"
                            ),
                        );
                        [1, 1, 1]
                    }
                };
                let name = node
                    .inputs
                    .first()
                    .and_then(|i| g.node(*i).name.clone())
                    .unwrap_or_default();
                input = Some(InputDesc {
                    name,
                    ir_shape: s.iter().map(|d| u32_of(*d)).collect(),
                    shape,
                    scale: q.scale,
                    levels: q.max,
                    consumers: Vec::new(),
                });
                vals[id.index()] = Val::Input;
            }
            Op::Reshape => vals[id.index()] = arg(0),
            Op::Layer(l)
                if matches!(arg(0), Val::Input) && is_pass_through(g, l) && {
                    let i = input.as_ref();
                    i.is_some_and(|i| is_dvs_map(&i.ir_shape, spec))
                } =>
            {
                let [_, h, w] = input.as_ref().map(|i| i.shape).unwrap_or([1, 1, 1]);
                if let Some(k) = dvs_kernel(&mut cx, id, l, [h, w]) {
                    if dvs_pool.is_some() {
                        cx.unsupported(
                            Some(id),
                            "a second pooling of the input: the DVS layer has one pooling, which every first layer reads".into(),
                        );
                    }
                    dvs_pool = Some(DvsPool {
                        node: id,
                        kernel: k,
                    });
                    vals[id.index()] = Val::DvsPooled;
                } else {
                    vals[id.index()] = Val::Failed;
                }
            }
            Op::Layer(l) => {
                // A pooling population of a layer runs as its readers' destination pooling.
                if let Val::Layer(s) = arg(0) {
                    if let Some(q) = destination_pool(g, id, l, &layers[s], &users, spec) {
                        vals[id.index()] = Val::Pooled(s, layers[s].pool * q);
                        continue;
                    }
                }
                // Every operand must be an event map of the chip (the input or a layer).
                let mut srcs: Vec<(Source, [u32; 3])> = Vec::with_capacity(node.inputs.len());
                let mut pools: Vec<u32> = Vec::with_capacity(node.inputs.len());
                let mut failed = false;
                for k in 0..node.inputs.len() {
                    let src = match arg(k) {
                        Val::Input => {
                            direct.push(id);
                            let s = input.as_ref().map(|i| i.shape).unwrap_or([1, 1, 1]);
                            (Source::Input, s)
                        }
                        Val::DvsPooled => {
                            let [c, h, w] = input.as_ref().map(|i| i.shape).unwrap_or([1, 1, 1]);
                            let [ph, pw] = dvs_pool.as_ref().map_or([1, 1], |p| p.kernel);
                            (Source::Input, [c, h / ph, w / pw])
                        }
                        Val::Layer(i) => (Source::Layer(i), layers[i].out_shape()),
                        Val::Pooled(i, p) => {
                            let [f, h, w] = layers[i].neuron_shape;
                            (Source::Layer(i), [f, h / p, w / p])
                        }
                        Val::Failed => {
                            failed = true;
                            break;
                        }
                        Val::None => {
                            cx.unsupported(
                                Some(id),
                                "its input is not an event stream of the chip".into(),
                            );
                            failed = true;
                            break;
                        }
                    };
                    pools.push(match arg(k) {
                        Val::Layer(i) => layers[i].pool,
                        Val::Pooled(_, p) => p,
                        _ => 1,
                    });
                    srcs.push(src);
                }
                if failed || srcs.is_empty() {
                    vals[id.index()] = Val::Failed;
                    continue;
                }
                if let Some(layer) = layer(&mut cx, id, l, &srcs) {
                    let idx = layers.len();
                    for ((src, _), &p) in srcs.iter().zip(&pools) {
                        match *src {
                            Source::Input => {
                                if let Some(i) = input.as_mut() {
                                    i.consumers.push(idx);
                                }
                            }
                            Source::Layer(i) => {
                                layers[i].consumers.push(idx);
                                layers[i].consumer_pools.push(p);
                            }
                        }
                    }
                    layers.push(layer);
                    vals[id.index()] = Val::Layer(idx);
                } else {
                    vals[id.index()] = Val::Failed;
                }
            }
            Op::Dequantize { scale } => match arg(0) {
                Val::Layer(i) if output.is_none() => {
                    output = Some(OutputDesc {
                        name: String::new(),
                        layer: i,
                        ir_shape: node.ty.shape.iter().map(|d| u32_of(*d)).collect(),
                        scale: *scale,
                    })
                }
                Val::Failed => {}
                // A second output is already reported ("the model has N outputs").
                Val::Layer(_) if g.outputs.len() > 1 => {}
                _ => cx.unsupported(
                    None,
                    "the output must be the spike counts of one layer".into(),
                ),
            },
            Op::Concat { .. } => {
                cx.unsupported(
                    Some(id),
                    "concatenation is not supported on speck (a core has one input map)".into(),
                );
                vals[id.index()] = Val::Failed;
            }
            other => {
                if !node
                    .inputs
                    .iter()
                    .any(|i| matches!(vals[i.index()], Val::Failed))
                {
                    cx.unsupported(
                        Some(id),
                        format!("`{}` cannot run on speck", other.mnemonic()),
                    );
                }
                vals[id.index()] = Val::Failed;
            }
        }
    }
    if let (Some(o), Some(out)) = (g.outputs.first(), output.as_mut()) {
        out.name = o.name.clone();
    }
    let Some(input) = input else {
        cx.unsupported(None, "the graph has no quantised input".into());
        return Err(Problems(cx.problems));
    };
    let Some(output) = output else {
        if cx.problems.is_empty() {
            cx.unsupported(None, "the graph has no layer output".into());
        }
        return Err(Problems(cx.problems));
    };
    if let (Some(p), Some(&first)) = (&dvs_pool, direct.first()) {
        cx.unsupported(
            Some(first),
            format!(
                "it reads the input unpooled while {} reads it through the DVS layer's pooling; the DVS layer sends one map to its destinations (pool every first layer's input alike)",
                g.node_ref(p.node)
            ),
        );
    }
    // Fan-out: the DVS layer and every core have at most two destinations.
    let max_dest = spec.max_destinations as usize;
    if input.consumers.len() > max_dest {
        let names: Vec<String> = input
            .consumers
            .iter()
            .map(|&i| g.node_ref(layers[i].node).to_string())
            .collect();
        cx.push(
            ProblemKind::Limit,
            None,
            format!(
                "the input feeds {} layers ({}); the dvs layer has at most {max_dest} destinations (sinabs docs/speck/overview.md)",
                names.len(),
                names.join(", ")
            ),
        );
    }
    for l in &layers {
        if l.consumers.len() > max_dest {
            let names: Vec<String> = l
                .consumers
                .iter()
                .map(|&i| g.node_ref(layers[i].node).to_string())
                .collect();
            cx.limit(
                l.node,
                format!(
                    "fan-out {} ({}) exceeds speck's {max_dest} destinations per layer (sinabs docs/speck/overview.md)",
                    names.len(),
                    names.join(", ")
                ),
            );
        }
    }
    if !cx.problems.is_empty() {
        return Err(Problems(cx.problems));
    }
    Ok(Network {
        input,
        dvs_pool,
        layers,
        output,
    })
}

/// Whether a network input of this shape can come from the DVS sensor: `[c, h, w]` with at
/// most two (polarity) channels and at most 128×128 (docs/chips.md §2.1).
pub fn is_dvs_map(ir_shape: &[u32], spec: &ChipSpec) -> bool {
    matches!(ir_shape, [c, h, w] if *c <= spec.dvs_channels && *h <= spec.dvs_size && *w <= spec.dvs_size)
}

/// Whether a rate-mode layer passes its input events through unchanged before its sum pool: a
/// depthwise 1×1 convolution whose weights equal the threshold, no bias, a lower bound ≤ 0 and
/// no spike cap a count can reach, so each input event makes exactly one spike and the state
/// stays 0 (what `quantize_rate` makes of a pooling of the input alone).
pub fn is_pass_through(g: &Graph, l: &Layer) -> bool {
    let (Some(q), Some(pool)) = (&l.quant, &l.pool) else {
        return false;
    };
    let Some(sq) = q.spiking() else { return false };
    let [Synapse::Conv { weight, geom }] = l.synapses.as_slice() else {
        return false;
    };
    let Some(w) = g.consts.try_get(*weight).and_then(|k| k.to_i32()) else {
        return false;
    };
    pool.kind == PoolKind::Sum
        && q.bias.is_none()
        && q.act_max == i32::MAX
        && q.weight_exp.iter().all(|e| *e == 0)
        && sq.v_min <= 0
        && geom.kernel == [1, 1]
        && geom.strides == [1, 1]
        && geom.pads == [0; 4]
        && geom.dilations == [1, 1]
        && geom.groups == w.len()
        && w.iter().all(|v| *v == sq.threshold)
}

/// The pooling `q` of a pooling population that can run as the pooling of its readers'
/// destinations instead of on a core of its own (sinabs 3 gives each destination its own sum
/// pooling, docs/chips.md §2.9): it reads one layer `src` and is an exact pass-through of its
/// events followed by a square sum pool (a depthwise 1×1 kernel equal to the threshold, no
/// bias, a lower bound ≤ 0 and a spike cap no count of `src` reaches, so each event is one
/// spike and the state stays 0: what `quantize_rate` makes of an average or sum pooling of a
/// layer that something else also reads), every reader is a layer, and the pooling it adds
/// keeps the cumulative pooling among the chip's sizes. `None` otherwise (it stays a core).
fn destination_pool(
    g: &Graph,
    id: NodeId,
    l: &Layer,
    src: &SpeckLayer,
    users: &[Vec<NodeId>],
    spec: &ChipSpec,
) -> Option<u32> {
    let (Some(q), Some(pool)) = (&l.quant, &l.pool) else {
        return None;
    };
    let sq = q.spiking()?;
    let [Synapse::Conv { weight, geom }] = l.synapses.as_slice() else {
        return None;
    };
    let w = g.consts.try_get(*weight).and_then(|k| k.to_i32())?;
    let [k, kw] = pool.kernel.map(u32_of);
    let pass_through = pool.kind == PoolKind::Sum
        && pool.strides == pool.kernel
        && pool.pads == [0; 4]
        && k == kw
        && q.bias.is_none()
        // Each of its neurons receives at most pool² of `src`'s neurons' counts per step.
        && i64::from(q.act_max) >= i64::from(src.max_spikes) * i64::from(src.pool).pow(2)
        && q.weight_exp.iter().all(|e| *e == 0)
        && sq.v_min <= 0
        && geom.kernel == [1, 1]
        && geom.strides == [1, 1]
        && geom.pads == [0; 4]
        && geom.dilations == [1, 1]
        && geom.groups == w.len()
        && w.len() == src.neuron_shape[0] as usize
        && w.iter().all(|v| *v == sq.threshold);
    let readers = &users[id.index()];
    let all_layers = !readers.is_empty()
        && readers
            .iter()
            .all(|u| matches!(g.node(*u).op, Op::Layer(_)));
    (pass_through && all_layers && spec.pool_sizes.contains(&(src.pool * k))).then_some(k)
}

/// The DVS layer's pooling window `[h, w]` of the input pooling layer `id`, or `None` with the
/// problem recorded.
fn dvs_kernel(cx: &mut Cx, id: NodeId, l: &Layer, [h, w]: [u32; 2]) -> Option<[u32; 2]> {
    let p = l.pool.as_ref()?;
    let [kh, kw] = p.kernel.map(u32_of);
    let before = cx.problems.len();
    if p.pads != [0; 4] {
        cx.unsupported(
            Some(id),
            format!(
                "pooling of the input with padding {:?}: the DVS layer pools without padding; remove the padding",
                p.pads
            ),
        );
    }
    if p.strides != p.kernel {
        cx.limit(
            id,
            format!(
                "pooling of the input with stride {:?} and window {:?}: the DVS layer pools with stride = window (Speck datasheet §3.2.3.2, docs/chips.md §2.8); make the stride equal the window",
                p.strides, p.kernel
            ),
        );
    }
    let sizes = &cx.spec.pool_sizes;
    if !sizes.contains(&kh) || !sizes.contains(&kw) {
        cx.limit(
            id,
            format!(
                "pooling of the input {kh}×{kw}: the DVS layer pools by 1, 2 or 4 per axis (Speck datasheet §3.2.3.2, docs/chips.md §2.8); pool the input by 1, 2 or 4 per axis, or pool after the first convolution"
            ),
        );
    } else if h % kh != 0 || w % kw != 0 {
        cx.limit(
            id,
            format!(
                "pooling of the input {kh}×{kw} does not divide the input map {h}×{w}: nmc aligns the DVS layer's region of interest to its pooling (docs/chips.md §2.8); give the model an input whose sides are multiples of the pooling"
            ),
        );
    }
    (cx.problems.len() == before).then_some([kh, kw])
}

/// Whether a layer's synapse groups are what one Speck core runs: one group over one map, or a
/// merge (sinabs 3's `Merge`, docs/chips.md §2.9) — two groups over two distinct sources whose
/// maps have the same shape, with the same kernel (geometry and integers), since a core applies
/// one kernel to every event it receives. Records the problem otherwise.
fn is_merge(cx: &mut Cx, id: NodeId, l: &Layer, srcs: &[(Source, [u32; 3])]) -> bool {
    let g = cx.g;
    let n = l.synapses.len();
    if n == 1 {
        return true;
    }
    if n > 2 {
        cx.unsupported(
            Some(id),
            format!(
                "the layer sums {n} maps; nmc maps a merge of two maps onto a core, as sinabs' Merge (docs/chips.md §2.9): add the maps two at a time, each sum before a convolution"
            ),
        );
        return false;
    }
    let [(a, sa), (b, sb)] = [srcs[0], srcs[1]];
    if sa != sb {
        cx.unsupported(
            Some(id),
            format!(
                "the layer merges maps of shapes {sa:?} and {sb:?}; sinabs requires merged maps of the same shape (Merge in nir_graph_extractor.py, docs/chips.md §2.9): pool or pad the operands to one shape"
            ),
        );
        return false;
    }
    let ints = |s: &Synapse| g.consts.try_get(s.weight()).and_then(|k| k.to_i32());
    let same_geometry = match (&l.synapses[0], &l.synapses[1]) {
        (Synapse::Conv { geom: x, .. }, Synapse::Conv { geom: y, .. }) => x == y,
        (Synapse::Dense { .. }, Synapse::Dense { .. }) => true,
        _ => false,
    };
    let w0 = ints(&l.synapses[0]);
    if !same_geometry || w0.is_none() || w0 != ints(&l.synapses[1]) {
        cx.unsupported(
            Some(id),
            "the layer sums two synapse groups with different kernels; a speck core applies one kernel to the events of both its sources (sinabs' Merge adds spike maps before one convolution, docs/chips.md §2.9): add the spike maps before a convolution (not a convolution's output to a map, as in relu(conv(x) + x)), with the same pooling on both, so that their spikes stand for the same amount".into(),
        );
        return false;
    }
    if a == b {
        cx.unsupported(
            Some(id),
            "the layer adds a map to itself; a source sends a core its events once (scale the weights instead)".into(),
        );
        return false;
    }
    true
}

/// One IR layer as a Speck layer, or `None` (problems recorded) when it cannot be one.
fn layer(cx: &mut Cx, id: NodeId, l: &Layer, srcs: &[(Source, [u32; 3])]) -> Option<SpeckLayer> {
    let g = cx.g;
    let spec = cx.spec;
    let node = g.node(id);
    let before = cx.problems.len();
    let Some(q) = &l.quant else {
        cx.unsupported(Some(id), "the layer is not quantised".into());
        return None;
    };
    let Some(sq) = q.spiking() else {
        cx.unsupported(
            Some(id),
            "the layer is graded, not spiking: compile with the speck target's rate mode".into(),
        );
        return None;
    };
    if !is_merge(cx, id, l, srcs) {
        return None;
    }
    let in_shape = srcs[0].1;
    if q.weight_exp.first().copied().unwrap_or(0) != 0 {
        cx.unsupported(
            Some(id),
            "speck has no weight exponent (weights are plain 8-bit integers)".into(),
        );
    }
    let [c, h, w] = in_shape;
    let weights_ir = match g
        .consts
        .try_get(l.synapses[0].weight())
        .and_then(|k| k.to_i32())
    {
        Some(v) => v,
        None => {
            cx.unsupported(Some(id), "weights are not integers".into());
            return None;
        }
    };
    let operand = node
        .inputs
        .first()
        .map(|i| g.ty(*i).shape.clone())
        .unwrap_or_default();
    let (f, kernel, stride, padding, neuron_hw, weights, dense) = match &l.synapses[0] {
        Synapse::Dense { weight } => {
            let shape = g.consts.get(*weight).shape.clone();
            let n = shape[0];
            if shape.get(1).copied().unwrap_or(0) != (c * h * w) as usize {
                cx.unsupported(Some(id), "dense weights do not match the input size".into());
                return None;
            }
            if h != w {
                cx.limit(
                    id,
                    format!(
                        "a dense layer over a {h}×{w} map becomes a {h}×{w} convolution, but speck kernels are square (samna kernel_size is one number)"
                    ),
                );
            }
            // [n, c·h·w] in C,H,W order is the conv kernel [n][c][y][x]; samna wants [n][c][x][y].
            let mut samna = vec![0i32; weights_ir.len()];
            let (hh, ww) = (h as usize, w as usize);
            for o in 0..n {
                for ch in 0..c as usize {
                    for y in 0..hh {
                        for x in 0..ww {
                            let src = ((o * c as usize + ch) * hh + y) * ww + x;
                            let dst = ((o * c as usize + ch) * ww + x) * hh + y;
                            samna[dst] = weights_ir[src];
                        }
                    }
                }
            }
            (u32_of(n), h.max(w), [1, 1], [0, 0], [1, 1], samna, true)
        }
        Synapse::Conv { weight, geom } => {
            if operand != [c as usize, h as usize, w as usize] {
                cx.unsupported(
                    Some(id),
                    format!(
                        "the convolution reads a {operand:?} view of a {:?} event map; speck cores read the map as it is",
                        in_shape
                    ),
                );
                return None;
            }
            let shape = g.consts.get(*weight).shape.clone();
            let f = shape[0];
            let [kh, kw] = geom.kernel;
            if kh != kw {
                cx.limit(
                    id,
                    format!("kernel {kh}×{kw} is not square (samna kernel_size is one number; sinabs requires square kernels)"),
                );
            }
            if geom.dilations != [1, 1] {
                cx.unsupported(
                    Some(id),
                    format!(
                        "dilation {:?}: speck convolutions are not dilated",
                        geom.dilations
                    ),
                );
            }
            let [pt, pl, pb, pr] = geom.pads;
            if pt != pb || pl != pr {
                cx.unsupported(
                    Some(id),
                    format!(
                        "asymmetric padding {:?}: speck pads both sides equally",
                        geom.pads
                    ),
                );
            }
            let Some((oh, ow)) = geom.out_hw(h as usize, w as usize) else {
                cx.unsupported(Some(id), "kernel does not fit its input".into());
                return None;
            };
            // Grouped convolutions are stored as full kernels with zeros between groups.
            let groups = geom.groups.max(1);
            let (cig, cog) = (c as usize / groups, f / groups);
            let mut samna = vec![0i32; f * c as usize * kh * kw];
            for o in 0..f {
                let grp = o / cog.max(1);
                for cl in 0..cig {
                    let ch = grp * cig + cl;
                    for y in 0..kh {
                        for x in 0..kw {
                            let src = ((o * cig + cl) * kh + y) * kw + x;
                            let dst = ((o * c as usize + ch) * kw + x) * kh + y;
                            samna[dst] = weights_ir.get(src).copied().unwrap_or(0);
                        }
                    }
                }
            }
            (
                u32_of(f),
                u32_of(kh.max(kw)),
                [u32_of(geom.strides[0]), u32_of(geom.strides[1])],
                [u32_of(pt), u32_of(pl)],
                [u32_of(oh), u32_of(ow)],
                samna,
                false,
            )
        }
    };
    // Chip limits (sinabs docs/speck/overview.md, docs/chips.md §2.1).
    if kernel > spec.max_kernel {
        cx.limit(
            id,
            format!(
                "kernel {kernel}×{kernel} exceeds speck's {m}×{m} (sinabs docs/speck/overview.md)",
                m = spec.max_kernel
            ),
        );
    }
    for (what, n) in [("input", c), ("output", f)] {
        if n > spec.max_channels {
            cx.limit(
                id,
                format!(
                    "{n} {what} channels exceed speck's {} per layer (sinabs docs/speck/overview.md)",
                    spec.max_channels
                ),
            );
        }
    }
    if h > spec.max_input || w > spec.max_input {
        cx.limit(
            id,
            format!(
                "input map {h}×{w} exceeds speck's {m}×{m} (sinabs docs/speck/overview.md)",
                m = spec.max_input
            ),
        );
    }
    let [oh, ow] = neuron_hw;
    if oh > spec.max_output || ow > spec.max_output {
        cx.limit(
            id,
            format!(
                "output feature map {oh}×{ow} exceeds speck's {m}×{m} (sinabs docs/speck/overview.md)",
                m = spec.max_output
            ),
        );
    }
    for s in stride {
        if !spec.strides.contains(&s) {
            cx.limit(
                id,
                format!(
                    "stride {:?} is not one of speck's {:?} (sinabs docs/speck/overview.md)",
                    stride, spec.strides
                ),
            );
            break;
        }
    }
    if padding.iter().any(|&p| p > spec.max_padding) {
        cx.limit(
            id,
            format!(
                "padding {:?} exceeds speck's 0..={} (sinabs docs/speck/overview.md)",
                padding, spec.max_padding
            ),
        );
    }
    let pool = match &l.pool {
        None => 1,
        Some(p) => {
            if p.kind != PoolKind::Sum {
                cx.unsupported(
                    Some(id),
                    format!("{} pooling: speck pools by summing events", p.kind.name()),
                );
            }
            if p.pads != [0; 4] {
                cx.unsupported(
                    Some(id),
                    format!(
                        "pooling with padding {:?}: speck pooling has no padding",
                        p.pads
                    ),
                );
            }
            let [ph, pw] = p.kernel;
            if ph != pw {
                cx.limit(
                    id,
                    format!(
                        "pooling window {ph}×{pw} is not square (sinabs requires square pooling)"
                    ),
                );
            }
            if p.strides != p.kernel {
                cx.limit(
                    id,
                    format!(
                        "pooling stride {:?} differs from its window {:?}; speck pools with stride = size (sinabs dynapcnn_layer_utils.py)",
                        p.strides, p.kernel
                    ),
                );
            }
            if !spec.pool_sizes.contains(&u32_of(ph)) {
                cx.limit(
                    id,
                    format!(
                        "pooling {ph}×{pw} is not one of speck's sizes {:?} (sinabs docs/speck/overview.md)",
                        spec.pool_sizes
                    ),
                );
            }
            u32_of(ph)
        }
    };
    // Integer widths (sinabs discretize.py: 8-bit weights and bias, 16-bit state and thresholds).
    let wmax = (1i32 << (spec.weight_bits - 1)) - 1;
    if let Some(bad) = weights.iter().find(|v| **v > wmax || **v < -wmax - 1) {
        cx.limit(
            id,
            format!(
                "weight {bad} does not fit speck's {}-bit weights",
                spec.weight_bits
            ),
        );
    }
    let bias = match q.bias {
        None => None,
        Some(b) => match g.consts.try_get(b).and_then(|k| k.to_i32()) {
            Some(v) if v.len() == f as usize => {
                let bmax = (1i32 << (spec.bias_bits - 1)) - 1;
                if let Some(bad) = v.iter().find(|x| **x > bmax || **x < -bmax - 1) {
                    cx.limit(
                        id,
                        format!(
                            "bias {bad} does not fit speck's {}-bit biases",
                            spec.bias_bits
                        ),
                    );
                }
                Some(v)
            }
            _ => {
                cx.unsupported(Some(id), "bias is not one integer per channel".into());
                None
            }
        },
    };
    let smax = (1i64 << (spec.state_bits - 1)) - 1;
    // A pass-through's state stays 0 whatever its declared width.
    if (q.state_bits > spec.state_bits && !is_pass_through(g, l))
        || i64::from(sq.threshold) > smax
        || i64::from(sq.v_min) < -smax - 1
    {
        cx.limit(
            id,
            format!(
                "state {} bits, threshold {} and lower bound {} must fit speck's {}-bit neuron state",
                q.state_bits, sq.threshold, sq.v_min, spec.state_bits
            ),
        );
    }
    if cx.problems.len() > before {
        return None;
    }
    let memory = MemoryUse::of(
        u64::from(c),
        u64::from(kernel),
        u64::from(f),
        u64::from(oh),
        u64::from(ow),
        bias.is_some(),
    );
    Some(SpeckLayer {
        node: id,
        name: node.name.clone().unwrap_or_else(|| id.to_string()),
        sources: srcs.iter().map(|s| s.0).collect(),
        in_shape,
        kernel,
        stride,
        padding,
        neuron_shape: [f, oh, ow],
        pool,
        weights,
        bias,
        threshold: sq.threshold,
        v_min: sq.v_min,
        reset: sq.reset,
        max_spikes: q.act_max,
        dense,
        consumers: Vec::new(),
        consumer_pools: Vec::new(),
        memory,
    })
}
