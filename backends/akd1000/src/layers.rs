//! From the quantised canonical IR to Akida 1.0 layers, checking every constraint of the
//! AKD1000 table (docs/chips.md §3.3) on the way. Mapping, lowering and the compiler's reports all
//! start from [`analyze`], so a model that passes it maps the same way everywhere.
//!
//! A layer becomes:
//! - **InputConv2D** when it is a convolution reading the graph input at 8 bits (the HRC); its
//!   padding is Same or Valid, or else the host zero-pads the input image and the layer runs
//!   Valid on the padded image (see [`InputInfo::host_pads`]);
//! - **Conv2D** when it is any other convolution;
//! - **SeparableConv2D** when it is a pointwise 1×1 convolution reading a depthwise `k×k`
//!   convolution that has no activation, no pooling and no other reader (the pair the quantiser
//!   prepares, `compiler/src/passes/quantize_akida.rs`): one Akida layer whose depthwise sums
//!   feed the pointwise kernel at full precision, with the pointwise layer's threshold, step,
//!   activation and pooling (docs/chips.md §3.6). A depthwise convolution in any other form is
//!   refused, naming the form that runs;
//! - **Dense** (Akida's FullyConnected) when it is a dense synapse group, whatever the shape of
//!   its input: a `[c, h, w]` input is flattened the vendor's way (column-major, docs/chips.md §6) in
//!   the artifact.
//!
//! Integer semantics (the IR's, see `nmc_ir::Interpreter`): the potential is `Σ w·x + bias`; a
//! layer with an activation outputs `clamp(ceil(potential / step), 0, 2^bits − 1)`; max pooling
//! pools the activations (the same as pooling potentials, since the activation is monotone);
//! global average pooling sums the potentials first (`pool_first`) and its `1/N` lives in the
//! step. Akida's threshold is `−bias`.

use crate::spec::ChipSpec;
use nmc_ir::{ActRound, ConvGeom, Graph, Layer, NodeId, NodeRef, Op, PoolKind, Synapse};

/// Why a graph cannot run on the AKD1000.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AkError {
    /// A layer breaks a rule of the Akida 1.0 constraints table (or an Akida 1.0 structural rule).
    #[error("layer {layer}: {kind}: {rule} ({detail})")]
    Constraint {
        /// The layer.
        layer: NodeRef,
        /// The Akida layer kind it would become.
        kind: &'static str,
        /// The rule, as the vendor states it.
        rule: String,
        /// What the layer has.
        detail: String,
    },
    /// A layer needs more of an NP's memory, or more NPs, than there are.
    #[error("layer {layer}: {kind}: {resource}: needs {needed}, {available}")]
    DoesNotFit {
        /// The layer.
        layer: NodeRef,
        /// The Akida layer kind.
        kind: &'static str,
        /// Which memory or unit.
        resource: String,
        /// What the layer (or one slice of it) needs.
        needed: String,
        /// What there is, then what would make it run.
        available: String,
    },
    /// The graph is not in the quantised canonical form for this target.
    #[error("{node}: {message}")]
    Invalid {
        /// The node.
        node: NodeRef,
        /// What is wrong.
        message: String,
    },
}

/// The Akida 1.0 layer kinds nmc emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// A convolution on the 8-bit graph input, run by the HRC.
    InputConv2D,
    /// A convolution on NPs configured as CNP.
    Conv2D,
    /// A depthwise convolution and the pointwise 1×1 convolution reading it, on CNPs.
    SeparableConv2D,
    /// A fully-connected layer on NPs configured as FNP.
    Dense,
}

impl LayerKind {
    /// Vendor name.
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::InputConv2D => "InputConv2D",
            LayerKind::Conv2D => "Conv2D",
            LayerKind::SeparableConv2D => "SeparableConv2D",
            LayerKind::Dense => "Dense",
        }
    }
}

/// Where a layer's input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Src {
    /// Graph input `index`.
    Input(usize),
    /// The output of layer `index` (in [`Analysis::layers`]).
    Layer(usize),
}

/// Pooling of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolSpec {
    /// Max pooling of the activations, window and stride `[h, w]`, no padding.
    Max {
        /// Window.
        size: [u32; 2],
        /// Stride.
        stride: [u32; 2],
    },
    /// Global average pooling of the potentials; the `1/N` is in the step.
    GlobalAvg,
}

/// A graph input as the chip receives it.
#[derive(Clone, Debug, PartialEq)]
pub struct InputInfo {
    /// Name in the source model.
    pub name: String,
    /// Per-sample shape.
    pub shape: Vec<usize>,
    /// Real value of one unit.
    pub scale: f32,
    /// Unsigned bits (values `0..2^bits`).
    pub bits: u32,
    /// Zero padding `[top, left, bottom, right]` the host adds around every channel of the
    /// quantised image before the HRC reads it (all zero: none).
    ///
    /// Why this is exact: a first convolution exported from PyTorch with stride 2 (pads 1/1/1/1
    /// for 3×3, 2/2/2/2 for 5×5) pads both sides, where TensorFlow's Same puts the odd row after,
    /// and the HRC only knows Same and Valid (docs/chips.md §3.3, §3.5). A Valid convolution on the
    /// zero-padded image computes exactly the padded convolution, with the same output size
    /// (`⌊(n + before + after − k) / s⌋ + 1` both ways). The padding value is the code of real
    /// 0.0, which is code 0: inputs are `clamp(round(x / scale), 0, 2^bits − 1)` with no zero
    /// point (`Op::Quantize`), so the model's float zero padding and the host's code-0 padding
    /// agree.
    pub host_pads: [usize; 4],
}

/// One Akida layer, with its integer parameters in IR conventions (cross-correlation, row-major
/// flatten); lowering converts them to the vendor's.
#[derive(Clone, Debug, PartialEq)]
pub struct AkLayer {
    /// The IR node.
    pub node: NodeId,
    /// Name (the ONNX node's, else the node id).
    pub name: String,
    /// Akida kind.
    pub kind: LayerKind,
    /// Input.
    pub src: Src,
    /// Shape of the input value before any flatten: `[c, h, w]` or `[n]`.
    pub in_shape: Vec<usize>,
    /// Neurons `[co, oh, ow]` or `[n]`.
    pub pre_shape: Vec<usize>,
    /// Output after pooling, as consumers see it.
    pub out_shape: Vec<usize>,
    /// Convolution geometry (convolutions only). A host-padded InputConv2D has zero pads here
    /// and reads the padded image: `in_shape` is the padded shape. A SeparableConv2D has its
    /// depthwise kernel's geometry (groups = input channels); its pointwise kernel is 1×1.
    pub geom: Option<ConvGeom>,
    /// A SeparableConv2D's depthwise kernels, `[c][1][kh][kw]`, IR order (empty otherwise);
    /// `weights` then holds its pointwise kernels `[co][c][1][1]`.
    pub dw_weights: Vec<i32>,
    /// The host padding this layer needs on its graph input (all zero: none; InputConv2D only).
    pub host_pads: [usize; 4],
    /// Pooling.
    pub pool: Option<PoolSpec>,
    /// Bits per input value.
    pub input_bits: u32,
    /// Bits per weight (1 means binary {0, 1}, as akida's).
    pub weight_bits: u32,
    /// Activation bits; `None` for a last layer without activation (raw 32-bit potentials).
    pub act_bits: Option<u32>,
    /// Integer weights, `[co, ci, kh, kw]` or `[out, in]`, IR order.
    pub weights: Vec<i32>,
    /// Akida threshold per channel (`−bias` of the IR).
    pub threshold: Vec<i64>,
    /// Step per channel (`act_step · 2^act_shift` of the IR; 1 without activation).
    pub act_step: Vec<i64>,
    /// Real value of one output unit.
    pub scale: f32,
}

impl AkLayer {
    /// Output channels (or neurons of a dense layer).
    pub fn channels(&self) -> usize {
        self.pre_shape[0]
    }
    /// Values one input sample of this layer has.
    pub fn in_len(&self) -> usize {
        self.in_shape.iter().product()
    }
    /// Whether the activation exists.
    pub fn has_activation(&self) -> bool {
        self.act_bits.is_some()
    }
}

/// A chip output: the value of a layer, viewed with the graph output's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputInfo {
    /// Name in the source model.
    pub name: String,
    /// Index into [`Analysis::layers`].
    pub layer: usize,
    /// Per-sample shape.
    pub shape: Vec<usize>,
    /// Real value of one unit.
    pub scale: f32,
}

/// A graph as Akida layers.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// Inputs in graph order.
    pub inputs: Vec<InputInfo>,
    /// Layers in topological order.
    pub layers: Vec<AkLayer>,
    /// Outputs in graph order.
    pub outputs: Vec<OutputInfo>,
}

/// The smallest Akida weight width holding `w`: 1 (binary {0, 1}: akida's 1-bit weights, −1 is
/// not one, docs/chips.md §7), 2, 4 or 8 bits two's complement; `None` beyond 8 bits.
pub fn weight_width(w: &[i32]) -> Option<u32> {
    if !w.is_empty() && w.iter().all(|v| *v == 0 || *v == 1) {
        return Some(1);
    }
    let (lo, hi) = w
        .iter()
        .fold((0i32, 0i32), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    [2u32, 4, 8]
        .into_iter()
        .find(|b| lo >= -(1 << (b - 1)) && hi < (1 << (b - 1)))
}

/// The "Same" padding of TensorFlow/Keras, which Akida uses: `(before, after)` for one axis.
pub fn same_pads(n: usize, k: usize, s: usize) -> (usize, usize) {
    let out = n.div_ceil(s.max(1));
    let total = ((out.saturating_sub(1)) * s + k).saturating_sub(n);
    (total / 2, total - total / 2)
}

/// A `[c, h, w]` shape with `[top, left, bottom, right]` zero padding added.
pub fn padded_shape(shape: &[usize], pads: [usize; 4]) -> Vec<usize> {
    match shape {
        [c, h, w] => vec![
            *c,
            h.saturating_add(pads[0]).saturating_add(pads[2]),
            w.saturating_add(pads[1]).saturating_add(pads[3]),
        ],
        other => other.to_vec(),
    }
}

/// A value on the way to a layer: which input or layer it is, and that producer's shape.
#[derive(Clone, Debug)]
struct Val {
    src: Src,
    shape: Vec<usize>,
    bits: u32,
}

struct Cx<'a> {
    graph: &'a Graph,
    spec: &'a ChipSpec,
    vals: Vec<Option<Val>>,
    out: Analysis,
    /// Per graph input: the first layer reading it and the host padding that layer needs. The
    /// host sends one image, so every reader needs the same padding.
    readers: Vec<Option<(usize, [usize; 4])>>,
    /// Per node: its readers.
    users: Vec<Vec<NodeId>>,
    /// Per node: a depthwise layer waiting for its pointwise layer (the node and its input).
    pending_dw: Vec<Option<Val>>,
}

fn bits_of_range(min: i64, max: i64) -> Option<u32> {
    if min != 0 || max < 1 {
        return None;
    }
    let b = 64 - (max as u64).leading_zeros();
    ((1i64 << b) - 1 == max).then_some(b)
}

fn list(v: &[u32]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Analyses a quantised canonical graph for the AKD1000: every layer's Akida kind and integer
/// parameters, or the first rule it breaks.
pub fn analyze(graph: &Graph, spec: &ChipSpec) -> Result<Analysis, AkError> {
    let mut cx = Cx {
        graph,
        spec,
        vals: vec![None; graph.nodes.len()],
        out: Analysis {
            inputs: vec![
                InputInfo {
                    name: String::new(),
                    shape: Vec::new(),
                    scale: 1.0,
                    bits: 0,
                    host_pads: [0; 4],
                };
                graph.inputs.len()
            ],
            layers: Vec::new(),
            outputs: Vec::new(),
        },
        readers: vec![None; graph.inputs.len()],
        users: graph.users(),
        pending_dw: vec![None; graph.nodes.len()],
    };
    let order = graph.topo_order().map_err(|c| AkError::Invalid {
        node: graph.node_ref(c.0),
        message: "the graph has a cycle".into(),
    })?;
    for id in order {
        cx.node(id)?;
    }
    if let Some(i) = cx.out.inputs.iter().position(|i| i.bits == 0) {
        return Err(AkError::Invalid {
            node: graph.node_ref(graph.inputs[i]),
            message: "graph input is not quantised (no quantize node uses it)".into(),
        });
    }
    if cx.out.outputs.len() != graph.outputs.len() {
        let missing = graph
            .outputs
            .iter()
            .find(|o| !matches!(graph.node(o.node).op, Op::Dequantize { .. }))
            .map(|o| o.node)
            .unwrap_or(NodeId(0));
        return Err(AkError::Invalid {
            node: graph.node_ref(missing),
            message: "every output must be a dequantize of a layer's value".into(),
        });
    }
    cx.check_consumers()?;
    Ok(cx.out)
}

impl Cx<'_> {
    fn at(&self, id: NodeId) -> NodeRef {
        self.graph.node_ref(id)
    }

    fn invalid(&self, id: NodeId, message: impl Into<String>) -> AkError {
        AkError::Invalid {
            node: self.at(id),
            message: message.into(),
        }
    }

    fn operand(&self, id: NodeId, k: usize) -> Result<Val, AkError> {
        let src = *self
            .graph
            .node(id)
            .inputs
            .get(k)
            .ok_or_else(|| self.invalid(id, format!("missing operand {k}")))?;
        self.vals[src.index()]
            .clone()
            .ok_or_else(|| self.invalid(id, format!("operand {src} is not a value of the chip")))
    }

    fn node(&mut self, id: NodeId) -> Result<(), AkError> {
        let g = self.graph;
        let node = g.node(id);
        match &node.op {
            Op::Input { .. } => {}
            Op::Quantize(q) => {
                let Some(&src) = node.inputs.first() else {
                    return Err(self.invalid(id, "quantize without operand"));
                };
                let Op::Input { index } = g.node(src).op else {
                    return Err(self.invalid(id, "quantize must directly follow a graph input"));
                };
                let bits = bits_of_range(i64::from(q.min), i64::from(q.max))
                    .filter(|b| *b <= 8)
                    .ok_or_else(|| AkError::Constraint {
                        layer: self.at(src),
                        kind: "input",
                        rule: "inputs are unsigned 1-, 2-, 4- or 8-bit integers (akida_apis: uint8 inputs encoded on 1, 2, 4 or 8 bits)".into(),
                        detail: format!("quantised to [{}, {}]", q.min, q.max),
                    })?;
                let info = self
                    .out
                    .inputs
                    .get_mut(index)
                    .ok_or_else(|| AkError::Invalid {
                        node: g.node_ref(id),
                        message: format!("input index {index} is not a graph input"),
                    })?;
                *info = InputInfo {
                    name: g.node(src).name.clone().unwrap_or_default(),
                    shape: node.ty.shape.clone(),
                    scale: q.scale,
                    bits,
                    host_pads: [0; 4],
                };
                self.vals[id.index()] = Some(Val {
                    src: Src::Input(index),
                    shape: node.ty.shape.clone(),
                    bits,
                });
            }
            Op::Reshape => {
                self.vals[id.index()] = Some(self.operand(id, 0)?);
            }
            Op::Layer(l) if self.is_depthwise(id, l) => {
                self.depthwise(id, l)?;
            }
            Op::Layer(l) => {
                let layer = self.layer(id, l)?;
                let index = self.out.layers.len();
                if let Src::Input(i) = layer.src {
                    self.host_padding(i, index, &layer)?;
                }
                self.vals[id.index()] = Some(Val {
                    src: Src::Layer(index),
                    shape: layer.out_shape.clone(),
                    bits: layer.act_bits.unwrap_or(32),
                });
                self.out.layers.push(layer);
            }
            Op::Dequantize { scale } => {
                let v = self.operand(id, 0)?;
                let Src::Layer(layer) = v.src else {
                    return Err(self.invalid(id, "an output must be the value of a layer"));
                };
                let name = g
                    .outputs
                    .iter()
                    .find(|o| o.node == id)
                    .map(|o| o.name.clone())
                    .unwrap_or_default();
                self.out.outputs.push(OutputInfo {
                    name,
                    layer,
                    shape: node.ty.shape.clone(),
                    scale: *scale,
                });
            }
            Op::Concat { .. } => {
                return Err(AkError::Constraint {
                    layer: self.at(id),
                    kind: "Concat",
                    rule: "Akida 1.0 has no concatenation layer".into(),
                    detail: format!("{} operands", node.inputs.len()),
                })
            }
            other => {
                return Err(self.invalid(
                    id,
                    format!("`{}` cannot be lowered to akd1000", other.mnemonic()),
                ))
            }
        }
        Ok(())
    }

    /// Records the host padding of graph input `i` for its reader `layer` (index `index`), or
    /// refuses a second reader that needs different padding: the host sends one image.
    fn host_padding(&mut self, i: usize, index: usize, layer: &AkLayer) -> Result<(), AkError> {
        let Some(slot) = self.readers.get_mut(i) else {
            return Err(self.invalid(layer.node, format!("input {i} is not a graph input")));
        };
        match *slot {
            None => {
                *slot = Some((index, layer.host_pads));
                if let Some(info) = self.out.inputs.get_mut(i) {
                    info.host_pads = layer.host_pads;
                }
                Ok(())
            }
            Some((_, pads)) if pads == layer.host_pads => Ok(()),
            Some((first, pads)) => {
                let p = |v: [usize; 4]| format!("{}/{}/{}/{}", v[0], v[1], v[2], v[3]);
                Err(AkError::Constraint {
                    layer: self.at(layer.node),
                    kind: layer.kind.name(),
                    rule: "the host zero-pads an input image once, so every convolution reading it needs the same host padding".into(),
                    detail: format!(
                        "it needs host pads top/left/bottom/right {}, layer \"{}\" needs {}",
                        p(layer.host_pads),
                        self.out.layers[first].name,
                        p(pads)
                    ),
                })
            }
        }
    }

    /// Whether layer `l` is a grouped convolution, which Akida 1.0 runs only as the depthwise
    /// half of a SeparableConv2D ([`Cx::depthwise`]).
    fn is_depthwise(&self, _id: NodeId, l: &Layer) -> bool {
        matches!(l.synapses.as_slice(), [Synapse::Conv { geom, .. }] if geom.groups > 1)
    }

    /// Checks that depthwise layer `id` can be the first half of a SeparableConv2D and leaves it
    /// waiting for its pointwise layer, which builds the Akida layer. Akida 1.0 has no standalone
    /// depthwise layer: its SeparableConvolutional applies the pointwise kernel to the depthwise
    /// sums directly, with one threshold, step and activation after the pointwise kernel
    /// (docs/chips.md §3.6), so nothing may sit between the two.
    fn depthwise(&mut self, id: NodeId, l: &Layer) -> Result<(), AkError> {
        let g = self.graph;
        let node = g.node(id);
        let [Synapse::Conv { geom, .. }] = l.synapses.as_slice() else {
            return Err(self.invalid(id, "not a convolution"));
        };
        let q = l
            .quant
            .as_ref()
            .ok_or_else(|| self.invalid(id, "layer is not quantised"))?;
        let input = self.operand(id, 0)?;
        let cin = g.ty(node.inputs[0]).shape.first().copied().unwrap_or(0);
        let cout = node.ty.shape.first().copied().unwrap_or(0);
        let form = "Akida 1.0 runs a grouped convolution only as the depthwise half of a SeparableConv2D: a depthwise k×k convolution (groups = input channels = output channels) with no activation, no pooling and no bias of its own, read only by a pointwise 1×1 convolution (stride 1, no padding) that takes the activation; write the block as depthwise conv (+ BatchNorm), then pointwise conv (+ BatchNorm) + ReLU";
        let refuse = |detail: String| AkError::Constraint {
            layer: self.at(id),
            kind: "SeparableConv2D",
            rule: form.into(),
            detail,
        };
        if geom.groups != cin || cout != cin {
            return Err(refuse(format!(
                "{} groups on {cin} input and {cout} output channels",
                geom.groups
            )));
        }
        let raw = q.act_min == i32::MIN && q.act_max == i32::MAX && q.act_step().is_none();
        if !raw || !matches!(l.neuron, nmc_ir::Neuron::Linear) {
            let act = match l.neuron {
                nmc_ir::Neuron::Relu => "a ReLU".to_string(),
                nmc_ir::Neuron::Clip { lo, hi } => format!("a clip to [{lo}, {hi}] (ReLU6-like)"),
                _ => format!(
                    "an activation (output clamped to [{}, {}])",
                    q.act_min, q.act_max
                ),
            };
            return Err(refuse(format!(
                "this depthwise convolution is followed by {act}, which Akida 1.0 cannot run between the depthwise and pointwise convolutions; remove it (keep the BatchNorm) and the block runs as one SeparableConv2D"
            )));
        }
        if l.pool.is_some() {
            return Err(refuse("this depthwise convolution is pooled".into()));
        }
        if q.bias.is_some() {
            return Err(refuse(
                "this depthwise convolution has a bias of its own (the quantiser moves it into the pointwise layer)".into(),
            ));
        }
        let readers = &self.users[id.index()];
        let pointwise = match readers.as_slice() {
            [r] => match &g.node(*r).op {
                Op::Layer(p) => {
                    matches!(p.synapses.as_slice(), [Synapse::Conv { geom, .. }]
                    if geom.kernel == [1, 1] && geom.groups == 1 && geom.strides == [1, 1]
                        && geom.pads == [0; 4] && geom.dilations == [1, 1])
                        && g.node(*r).inputs.first() == Some(&id)
                }
                _ => false,
            },
            _ => false,
        };
        if !pointwise {
            let what = match readers.as_slice() {
                [] => "nothing reads it".to_string(),
                [r] => format!(
                    "it is read by {} ({})",
                    self.at(*r),
                    g.node(*r).op.mnemonic()
                ),
                more => format!("{} nodes read it", more.len()),
            };
            return Err(refuse(format!(
                "this depthwise convolution is not followed by a pointwise 1×1 convolution: {what}"
            )));
        }
        self.pending_dw[id.index()] = Some(input);
        Ok(())
    }

    fn layer(&self, id: NodeId, l: &Layer) -> Result<AkLayer, AkError> {
        let g = self.graph;
        let node = g.node(id);
        let lim = &self.spec.limits;
        let q = l
            .quant
            .as_ref()
            .ok_or_else(|| self.invalid(id, "layer is not quantised"))?;
        let [syn] = l.synapses.as_slice() else {
            return Err(AkError::Constraint {
                layer: self.at(id),
                kind: "layer",
                rule: "Akida 1.0 layers have exactly one input (no residual additions)".into(),
                detail: format!("{} synapse groups", l.synapses.len()),
            });
        };
        // A pointwise layer whose operand is a waiting depthwise layer completes a
        // SeparableConv2D, which reads the depthwise layer's input.
        let dw_node = node
            .inputs
            .first()
            .copied()
            .filter(|d| self.pending_dw[d.index()].is_some());
        let (input, operand_shape) = match dw_node {
            Some(d) => {
                let v = self.pending_dw[d.index()]
                    .clone()
                    .unwrap_or_else(|| unreachable!());
                (v, g.ty(g.node(d).inputs[0]).shape.clone())
            }
            None => (self.operand(id, 0)?, g.ty(node.inputs[0]).shape.clone()),
        };
        let kind = match syn {
            Synapse::Conv { .. } if dw_node.is_some() => LayerKind::SeparableConv2D,
            Synapse::Conv { .. } if matches!(input.src, Src::Input(_)) && input.bits == 8 => {
                LayerKind::InputConv2D
            }
            Synapse::Conv { .. } => LayerKind::Conv2D,
            Synapse::Dense { .. } => LayerKind::Dense,
        };
        let kname = kind.name();
        let rule = |rule: String, detail: String| AkError::Constraint {
            layer: self.at(id),
            kind: kname,
            rule,
            detail,
        };
        let c = g
            .consts
            .try_get(syn.weight())
            .ok_or_else(|| self.invalid(id, "unknown weight constant"))?;
        let weights = c
            .to_i32()
            .ok_or_else(|| self.invalid(id, "weights are not integers"))?;
        // A SeparableConv2D's depthwise half: its weights and geometry.
        let (dw_weights, dw_geom) = match dw_node {
            Some(d) => {
                let Op::Layer(dl) = &g.node(d).op else {
                    unreachable!("pending depthwise nodes are layers")
                };
                let Synapse::Conv { weight, geom } = &dl.synapses[0] else {
                    unreachable!("depthwise layers are convolutions")
                };
                let w = g
                    .consts
                    .try_get(*weight)
                    .and_then(|c| c.to_i32())
                    .ok_or_else(|| self.invalid(d, "weights are not integers"))?;
                (w, Some(geom.clone()))
            }
            None => (Vec::new(), None),
        };
        let channels = *node
            .ty
            .shape
            .first()
            .ok_or_else(|| self.invalid(id, "layer value has no channel axis"))?;

        // Geometry.
        let mut in_shape = input.shape.clone();
        let mut host_pads = [0; 4];
        let (pre_shape, geom) = match syn {
            Synapse::Dense { .. } => {
                if l.pool.is_some() {
                    return Err(rule(
                        "a FullyConnected layer has no pooling".into(),
                        "pooling on a dense layer".into(),
                    ));
                }
                (vec![c.shape[0]], None)
            }
            Synapse::Conv { geom, .. } => {
                if operand_shape != input.shape || operand_shape.len() != 3 {
                    return Err(self.invalid(
                        id,
                        format!(
                            "convolution input {operand_shape:?} is a reshaped view of {:?}",
                            input.shape
                        ),
                    ));
                }
                // A SeparableConv2D's window is its depthwise kernel's.
                let geom = dw_geom.as_ref().unwrap_or(geom);
                let host = self.check_conv(kind, geom, &operand_shape, c.shape[0], &rule)?;
                let mut geom = geom.clone();
                if let Some(p) = host {
                    // The layer runs Valid on the image the host has padded.
                    in_shape = padded_shape(&operand_shape, p);
                    host_pads = p;
                    geom.pads = [0; 4];
                }
                let (oh, ow) = geom
                    .out_hw(in_shape[1], in_shape[2])
                    .ok_or_else(|| self.invalid(id, "kernel does not fit its input"))?;
                (vec![c.shape[0], oh, ow], Some(geom))
            }
        };

        if kind == LayerKind::Dense {
            let n = input.shape.iter().product::<usize>() as u64;
            if n > lim.dense_max_inputs {
                return Err(rule(
                    format!(
                        "input W×H×C must be at most {} (Akida 1.0 FullyConnected)",
                        lim.dense_max_inputs
                    ),
                    format!("input {:?} has {n} values", input.shape),
                ));
            }
        }

        // Input bits. A layer without activation outputs raw potentials, which no layer reads.
        if let (Src::Layer(p), 32) = (input.src, input.bits) {
            let prev = &self.out.layers[p];
            return Err(AkError::Constraint {
                layer: self.at(prev.node),
                kind: prev.kind.name(),
                rule: "only the last layer may have no activation; others output 1-, 2- or 4-bit activations".into(),
                detail: format!("feeds layer \"{}\"", node.name.clone().unwrap_or_else(|| id.to_string())),
            });
        }
        let allowed_in: &[u32] = if kind == LayerKind::InputConv2D {
            &[8]
        } else {
            lim.layer_input_bits
        };
        if !allowed_in.contains(&input.bits) {
            let why = match input.src {
                Src::Input(_) if input.bits == 8 => "8-bit inputs need a first layer that is a convolution with 1 or 3 input channels (InputConv2D)".to_string(),
                _ => format!("input bits must be {}", list(allowed_in)),
            };
            return Err(rule(why, format!("{}-bit input", input.bits)));
        }

        // Weight bits (a SeparableConv2D has one width for both kernels).
        let all: Vec<i32>;
        let ws: &[i32] = if dw_weights.is_empty() {
            &weights
        } else {
            all = weights.iter().chain(&dw_weights).copied().collect();
            &all
        };
        let wb = weight_width(ws).ok_or_else(|| {
            rule(
                "weights are at most 8 bits".into(),
                "weights exceed 8 bits".into(),
            )
        })?;
        let allowed_w = match kind {
            LayerKind::InputConv2D => lim.input_weight_bits,
            LayerKind::SeparableConv2D => lim.sep_weight_bits,
            _ => lim.weight_bits,
        };
        // A layer quantised to fewer bits than it needs is impossible; a wider allowed width
        // always holds a narrower value, so pick the smallest allowed width ≥ the need.
        let weight_bits = allowed_w
            .iter()
            .copied()
            .find(|b| *b >= wb && (*b != 1 || wb == 1))
            .ok_or_else(|| {
                rule(
                    format!("weight bits must be {}", list(allowed_w)),
                    format!("weights need {wb} bits"),
                )
            })?;

        // Activation.
        if q.state_bits != 32 {
            return Err(self.invalid(
                id,
                format!(
                    "potentials are 32-bit on akd1000, the layer has {} state bits",
                    q.state_bits
                ),
            ));
        }
        let full = q.act_min == i32::MIN && q.act_max == i32::MAX;
        let act_bits = if full {
            if q.act_step().is_some() || q.act_shift != 0 || q.act_round() != ActRound::Floor {
                return Err(self.invalid(
                    id,
                    "a layer without activation outputs its raw potential (no step, no shift)",
                ));
            }
            None
        } else {
            let b = bits_of_range(i64::from(q.act_min), i64::from(q.act_max))
                .filter(|b| lim.act_bits.contains(b))
                .ok_or_else(|| {
                    rule(
                        format!("activations are unsigned {}-bit values", list(lim.act_bits)),
                        format!("activation range [{}, {}]", q.act_min, q.act_max),
                    )
                })?;
            if q.act_round() != ActRound::Ceil {
                return Err(self.invalid(
                    id,
                    "akd1000 activations round up (ceil((potential − threshold) / step)); the layer rounds down",
                ));
            }
            Some(b)
        };
        let bias: Vec<i64> = match q.bias {
            None => vec![0; channels],
            Some(b) => g
                .consts
                .try_get(b)
                .and_then(|c| c.to_i32())
                .filter(|v| v.len() == channels)
                .ok_or_else(|| self.invalid(id, "bias is not one integer per channel"))?
                .into_iter()
                .map(i64::from)
                .collect(),
        };
        let steps: Vec<i64> = match q.act_step() {
            None => vec![1; channels],
            Some(s) => g
                .consts
                .try_get(s)
                .and_then(|c| c.to_i32())
                .filter(|v| v.len() == channels)
                .ok_or_else(|| self.invalid(id, "act_step is not one integer per channel"))?
                .into_iter()
                .map(i64::from)
                .collect(),
        };
        let shift = q.act_shift.min(62);
        let mut act_step = Vec::with_capacity(channels);
        for &s in &steps {
            let st = i128::from(s) << shift;
            if act_bits.is_some() && !(1..=i128::from(lim.act_step_max)).contains(&st) {
                return Err(rule(
                    format!("act_step is at most {} (16 bits)", lim.act_step_max),
                    format!("step {st}"),
                ));
            }
            act_step.push(st as i64);
        }
        let threshold: Vec<i64> = bias.iter().map(|b| -b).collect();
        if act_bits.is_some() {
            if let Some(t) = threshold.iter().find(|t| t.abs() > lim.threshold_max) {
                return Err(rule(
                    format!("thresholds are at most {} in magnitude", lim.threshold_max),
                    format!("threshold {t}"),
                ));
            }
        }

        // Pooling.
        let pool = match &l.pool {
            None => None,
            Some(p) => Some(self.check_pool(id, kind, q.pool_first(), p, &pre_shape, &rule)?),
        };
        if pool.is_none() && q.pool_first() {
            return Err(self.invalid(id, "pool_first without a pool"));
        }
        if pool.is_some() && act_bits.is_none() {
            return Err(rule(
                "a pooled layer has an activation".into(),
                "pooling on a layer without activation".into(),
            ));
        }
        Ok(AkLayer {
            node: id,
            name: node.name.clone().unwrap_or_else(|| id.to_string()),
            kind,
            src: input.src,
            in_shape,
            pre_shape,
            out_shape: node.ty.shape.clone(),
            geom,
            dw_weights,
            host_pads,
            pool,
            input_bits: input.bits,
            weight_bits,
            act_bits,
            weights,
            threshold,
            act_step,
            scale: q.scale,
        })
    }

    /// Checks a convolution against its row of the constraints table. Returns the host padding
    /// an InputConv2D needs when its pads are neither Same nor Valid (see
    /// [`InputInfo::host_pads`]); the HRC's size limits then apply to the padded image it reads.
    fn check_conv(
        &self,
        kind: LayerKind,
        geom: &ConvGeom,
        in_shape: &[usize],
        filters: usize,
        rule: &dyn Fn(String, String) -> AkError,
    ) -> Result<Option<[usize; 4]>, AkError> {
        let lim = &self.spec.limits;
        let [kh, kw] = geom.kernel;
        let [sh, sw] = geom.strides;
        let (c, h, w) = (in_shape[0], in_shape[1], in_shape[2]);
        if geom.groups != 1 && !(kind == LayerKind::SeparableConv2D && geom.groups == c) {
            return Err(rule(
                "convolutions have groups = 1; a depthwise convolution (groups = channels) runs only inside a SeparableConv2D, directly followed by a pointwise 1×1 convolution with no activation between them".into(),
                format!("{} groups", geom.groups),
            ));
        }
        if geom.dilations != [1, 1] {
            return Err(rule(
                "convolutions are not dilated".into(),
                format!("dilations {}×{}", geom.dilations[0], geom.dilations[1]),
            ));
        }
        let kernels = match kind {
            LayerKind::InputConv2D => lim.input_kernels,
            LayerKind::SeparableConv2D => lim.sep_kernels,
            _ => lim.conv_kernels,
        };
        let ksizes = kernels
            .iter()
            .map(|k| format!("{k}×{k}"))
            .collect::<Vec<_>>()
            .join(", ");
        if kh != kw || !kernels.contains(&(kh as u32)) {
            return Err(rule(
                format!("kernel sizes are {ksizes}"),
                format!("kernel {kh}×{kw}"),
            ));
        }
        let strides = if kind == LayerKind::InputConv2D {
            lim.input_strides
        } else {
            lim.conv_strides
        };
        if sh != sw || !strides.contains(&(sh as u32)) {
            return Err(rule(
                format!("strides are {} (equal in both axes)", list(strides)),
                format!("stride {sh}×{sw}"),
            ));
        }
        if matches!(kind, LayerKind::Conv2D | LayerKind::SeparableConv2D) && sh == 2 && kh != 3 {
            return Err(rule(
                "stride 2 is only supported with 3×3 kernels".into(),
                format!("kernel {kh}×{kw} with stride 2"),
            ));
        }
        let (t, b) = same_pads(h, kh, sh);
        let (l, r) = same_pads(w, kw, sw);
        let same = geom.pads == [t, l, b, r];
        let valid = geom.pads == [0; 4];
        let pads = geom.pads;
        let host = (kind == LayerKind::InputConv2D && !same && !valid).then_some(pads);
        if kind != LayerKind::InputConv2D && !same {
            // No exact rewrite exists on Akida 1.0: other pads move the windows relative to
            // Same's (PyTorch's 1/1/1/1 at stride 2 on an even map reads rows 2i − 1..2i + 1,
            // Same reads 2i..2i + 2), and only the 8-bit input image is padded by the host.
            return Err(rule(
                format!(
                    "padding is Same, which needs pads top/left/bottom/right {t}/{l}/{b}/{r} here (only the first convolution's 8-bit input can be zero-padded on the host; a later layer must have Same's pads)"
                ),
                format!("pads {}/{}/{}/{}", pads[0], pads[1], pads[2], pads[3]),
            ));
        }
        // The HRC reads the image as the host sends it: padded, if it pads.
        let [_, h, w] = match host {
            Some(p) => [
                c,
                h.saturating_add(p[0]).saturating_add(p[2]),
                w.saturating_add(p[1]).saturating_add(p[3]),
            ],
            None => [c, h, w],
        };
        let padded = |what: String| match host {
            Some(p) => format!(
                "{what} after host padding top/left/bottom/right {}/{}/{}/{}",
                p[0], p[1], p[2], p[3]
            ),
            None => what,
        };
        if kind == LayerKind::InputConv2D {
            if !lim.input_channels.contains(&(c as u32)) {
                return Err(rule(
                    format!(
                        "input channels are {} (8-bit inputs need a first convolution on 1 or 3 channels)",
                        list(lim.input_channels)
                    ),
                    format!("{c} channels"),
                ));
            }
            let (lo, hi) = lim.input_width;
            if !(lo as usize..=hi as usize).contains(&w) || h < lim.input_min_height as usize {
                return Err(rule(
                    format!(
                        "input width is in [{lo}, {hi}] and height at least {}",
                        lim.input_min_height
                    ),
                    padded(format!("input {h}×{w} (H×W)")),
                ));
            }
            let row = lim
                .input_max_filters
                .iter()
                .find(|(ch, _)| *ch as usize == c)
                .map(|(_, m)| *m)
                .unwrap_or([0; 3]);
            let ki = lim.input_kernels.iter().position(|k| *k as usize == kh);
            let max = ki.map(|i| row[i]).unwrap_or(0);
            if filters > max as usize {
                return Err(rule(
                    format!("at most {max} filters for a {kh}×{kw} kernel on {c} channel(s)"),
                    format!("{filters} filters"),
                ));
            }
        }
        Ok(host)
    }

    fn check_pool(
        &self,
        id: NodeId,
        kind: LayerKind,
        pool_first: bool,
        p: &nmc_ir::Pool,
        pre_shape: &[usize],
        rule: &dyn Fn(String, String) -> AkError,
    ) -> Result<PoolSpec, AkError> {
        let lim = &self.spec.limits;
        let [ph, pw] = p.kernel;
        let [sh, sw] = p.strides;
        let (oh, ow) = (pre_shape[1], pre_shape[2]);
        let global = [ph, pw] == [oh, ow] && p.pads == [0; 4];
        match p.kind {
            PoolKind::Max => {
                if p.pads != [0; 4] {
                    return Err(rule(
                        "max pooling is unpadded".into(),
                        format!("pool pads {:?}", p.pads),
                    ));
                }
                if kind == LayerKind::InputConv2D {
                    let ok =
                        lim.input_pools.contains(&(ph as u32, pw as u32)) && [sh, sw] == [ph, pw];
                    if !ok {
                        return Err(rule(
                            "max pooling is 1×1, 1×2, 2×1 or 2×2 with the stride equal to the size"
                                .into(),
                            format!("pool {ph}×{pw} stride {sh}×{sw}"),
                        ));
                    }
                } else {
                    let ok = ph == pw
                        && sh == sw
                        && lim.conv_pools.contains(&(ph as u32))
                        && lim.conv_pool_strides.contains(&(sh as u32))
                        && sh <= ph;
                    if !ok {
                        return Err(rule(
                            "max pooling is 1×1 or 2×2 with stride 1 or 2, not above the size"
                                .into(),
                            format!("pool {ph}×{pw} stride {sh}×{sw}"),
                        ));
                    }
                }
                // akida pools "same": its output has ⌈n / stride⌉ rows and columns (a 2×2/2 pool
                // turns 7×7 into 4×4, a 2×2/1 pool keeps 8×8 at 8×8; measured with akida 2.19.3,
                // docs/chips.md §7), where the model's unpadded pooling has ⌊(n − k) / stride⌋ + 1.
                let akida = |n: usize, s: usize| n.div_ceil(s.max(1));
                let model = |n: usize, k: usize, s: usize| (n.saturating_sub(k)) / s.max(1) + 1;
                if let Some(&(side, n, k, s)) = [("rows", oh, ph, sh), ("columns", ow, pw, sw)]
                    .iter()
                    .find(|&&(_, n, k, s)| akida(n, s) != model(n, k, s))
                {
                    return Err(rule(
                        format!(
                            "max pooling keeps ⌈n / stride⌉ rows and columns (akida pads the last windows: {n} {side} pool to {}, the model's unpadded {k}-wide pooling gives {})",
                            akida(n, s),
                            model(n, k, s)
                        ),
                        format!("a {ph}×{pw} pool with stride {sh}×{sw} on {oh}×{ow}: use stride = size on an even map"),
                    ));
                }
                Ok(PoolSpec::Max {
                    size: [ph as u32, pw as u32],
                    stride: [sh as u32, sw as u32],
                })
            }
            PoolKind::Avg | PoolKind::Sum => {
                if !global {
                    return Err(rule(
                        "average pooling is global only (GlobalAveragePooling)".into(),
                        format!(
                            "{} pooling {ph}×{pw} stride {sh}×{sw} on a {oh}×{ow} map",
                            p.kind.name()
                        ),
                    ));
                }
                if kind == LayerKind::InputConv2D {
                    return Err(rule(
                        "InputConv2D pools by max only".into(),
                        "global average pooling".into(),
                    ));
                }
                if !pool_first {
                    return Err(rule(
                        "global average pooling pools the potentials before the activation (Conv → GlobalAveragePool → ReLU); pooling activations is not supported".into(),
                        "average pooling after the activation".into(),
                    ));
                }
                if p.kind == PoolKind::Avg {
                    return Err(self.invalid(
                        id,
                        "pooled potentials must be a sum (the 1/N belongs in act_step)",
                    ));
                }
                let (lo, hi) = lim.gap_width;
                if !(lo as usize..=hi as usize).contains(&ow) {
                    return Err(rule(
                        format!("global average pooling width is in [{lo}, {hi}]"),
                        format!("width {ow}"),
                    ));
                }
                if oh < lim.gap_min_rows as usize {
                    return Err(rule(
                        format!(
                            "with global average pooling the output of the convolution must have at least {} rows",
                            lim.gap_min_rows
                        ),
                        format!("{oh} rows"),
                    ));
                }
                Ok(PoolSpec::GlobalAvg)
            }
        }
    }

    /// Structural rules that need the consumers: "a layer with max pooling must be followed by
    /// another Convolutional or SeparableConvolutional layer", and only the last layer may omit
    /// the activation.
    fn check_consumers(&self) -> Result<(), AkError> {
        let layers = &self.out.layers;
        for (i, l) in layers.iter().enumerate() {
            let consumers: Vec<&AkLayer> =
                layers.iter().filter(|c| c.src == Src::Layer(i)).collect();
            let is_output = self.out.outputs.iter().any(|o| o.layer == i);
            let layer = self.graph.node_ref(l.node);
            if matches!(l.pool, Some(PoolSpec::Max { size, .. }) if size != [1, 1]) {
                let bad = consumers.iter().find(|c| c.kind == LayerKind::Dense);
                // (Convolutional or SeparableConvolutional consumers are fine.)
                if bad.is_some() || is_output {
                    return Err(AkError::Constraint {
                        layer,
                        kind: l.kind.name(),
                        rule: "a layer with max pooling must be followed by another Convolutional or SeparableConvolutional layer".into(),
                        detail: match bad {
                            Some(c) => format!("followed by {} layer \"{}\"", c.kind.name(), c.name),
                            None => "it is a model output".into(),
                        },
                    });
                }
            }
            if !l.has_activation() && !consumers.is_empty() {
                return Err(AkError::Constraint {
                    layer,
                    kind: l.kind.name(),
                    rule: "only the last layer may have no activation; others output 1-, 2- or 4-bit activations".into(),
                    detail: format!("feeds layer \"{}\"", consumers[0].name),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_and_same_padding() {
        assert_eq!(weight_width(&[1, 0, 1]), Some(1));
        assert_eq!(weight_width(&[1, -1, 1]), Some(2));
        assert_eq!(weight_width(&[1, 0, -1]), Some(2));
        assert_eq!(weight_width(&[-2, 1]), Some(2));
        assert_eq!(weight_width(&[-8, 7]), Some(4));
        assert_eq!(weight_width(&[8]), Some(8));
        assert_eq!(weight_width(&[-129]), None);
        // TF "Same": stride 1 is symmetric for odd kernels; stride 2 puts the extra row after.
        assert_eq!(same_pads(8, 3, 1), (1, 1));
        assert_eq!(same_pads(8, 3, 2), (0, 1));
        assert_eq!(same_pads(7, 3, 2), (1, 1));
        assert_eq!(same_pads(8, 1, 1), (0, 0));
        assert_eq!(bits_of_range(0, 15), Some(4));
        assert_eq!(bits_of_range(0, 1), Some(1));
        assert_eq!(bits_of_range(0, 14), None);
        assert_eq!(bits_of_range(-1, 15), None);
    }
}
