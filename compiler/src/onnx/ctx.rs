//! The state shared by op builders: the value table entries ([`Val`]), the graph under
//! construction ([`Ctx`]) and one ONNX node being imported ([`NodeCx`]) with typed attribute and
//! operand accessors that turn every malformed input into an [`ImportError::Invalid`].

use super::tensor::{HostTensor, Loader};
use super::ImportError;
use nmc_ir::{infer_type, ConstId, Constant, Graph, NodeId, Op, TensorType};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, NodeProto, TensorProto};
use std::rc::Rc;

/// What an ONNX value name stands for during import.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    /// Known at import time (initializers, folded subgraphs); full ONNX shape.
    Const(Rc<HostTensor>),
    /// A per-sample IR value; its ONNX shape is `[batch] ++ ir_shape`.
    Graph(NodeId),
    /// The integer output of a QuantizeLinear on a graph value. Only a DequantizeLinear may
    /// consume it; together they become one [`Op::FakeQuant`].
    Quantized(Rc<Quantized>),
}

/// A pending QuantizeLinear on a graph value.
#[derive(Debug)]
pub(crate) struct Quantized {
    pub src: NodeId,
    pub scale: f32,
    pub zero_point: i64,
    pub min: i64,
    pub max: i64,
    /// Name of the QuantizeLinear node (for messages).
    pub node: String,
}

/// The graph under construction and what builders need besides the node itself.
pub(crate) struct Ctx {
    pub graph: Graph,
    /// Per IR node: how many ONNX consumers (node inputs and graph outputs) read it. A producer
    /// with exactly one consumer may be replaced by a fused copy (bias folding) without
    /// duplicating work for another consumer.
    pub uses: Vec<usize>,
    /// Batch size of the graph inputs when it is static, else `None` (symbolic).
    pub batch: Option<usize>,
    pub loader: Loader,
}

impl Ctx {
    /// Per-sample type of an IR value.
    pub fn ty(&self, id: NodeId) -> &TensorType {
        self.graph.ty(id)
    }

    /// The batch size used when resolving shapes that mention the batch axis.
    pub fn batch(&self) -> usize {
        self.batch.unwrap_or(1)
    }

    /// ONNX shape of an IR value: the batch axis in front of the per-sample shape.
    pub fn onnx_shape(&self, id: NodeId) -> Vec<usize> {
        let mut s = vec![self.batch()];
        s.extend_from_slice(&self.ty(id).shape);
        s
    }

    /// Adds a float constant to the pool.
    pub fn constant(&mut self, shape: Vec<usize>, values: Vec<f32>) -> ConstId {
        self.graph.consts.add(Constant::f32(shape, values))
    }

    /// Float values of a pool constant.
    pub fn const_values(&self, id: ConstId) -> Vec<f32> {
        self.graph.consts.get(id).to_f32().unwrap_or_default()
    }

    /// Adds a node whose type is inferred from its operands; a type error is reported as an
    /// invalid ONNX node.
    pub fn add(
        &mut self,
        n: &NodeCx,
        op: Op,
        inputs: Vec<NodeId>,
        name: Option<String>,
    ) -> Result<NodeId, ImportError> {
        let tys: Vec<&TensorType> = inputs.iter().map(|i| self.graph.ty(*i)).collect();
        let ty = infer_type(&op, &tys, &self.graph.consts).map_err(|m| n.invalid(m))?;
        Ok(self.push(op, inputs, ty, name.unwrap_or_else(|| n.name.clone())))
    }

    /// Adds a reshape view to `shape` (or returns `src` when the shape is already that).
    pub fn reshape(
        &mut self,
        n: &NodeCx,
        src: NodeId,
        shape: Vec<usize>,
    ) -> Result<NodeId, ImportError> {
        let from = self.ty(src).clone();
        if from.shape == shape {
            return Ok(src);
        }
        let ty = TensorType {
            dtype: from.dtype,
            shape,
        };
        if ty.numel() != from.numel() {
            return Err(n.invalid(format!("cannot reshape {from} to {ty}")));
        }
        Ok(self.push(Op::Reshape, vec![src], ty, n.name.clone()))
    }

    fn push(&mut self, op: Op, inputs: Vec<NodeId>, ty: TensorType, name: String) -> NodeId {
        let id = self.graph.add(op, inputs, ty, Some(name));
        self.uses.resize(self.graph.nodes.len(), 0);
        id
    }
}

/// One ONNX node being imported: its proto, display name, opset and operand values.
pub(crate) struct NodeCx<'a> {
    pub proto: &'a NodeProto,
    /// The node name, or its first output name when the node is unnamed.
    pub name: String,
    /// Opset of the default domain.
    pub opset: i64,
    /// Operand values in input order; `None` for omitted optional inputs.
    pub inputs: Vec<Option<Val>>,
}

impl NodeCx<'_> {
    pub fn op(&self) -> &str {
        &self.proto.op_type
    }

    /// An invalid-node error for this node.
    pub fn invalid(&self, message: impl Into<String>) -> ImportError {
        ImportError::Invalid {
            node: self.name.clone(),
            op_type: self.proto.op_type.clone(),
            message: message.into(),
        }
    }

    fn attr(
        &self,
        name: &str,
        want: AttributeType,
    ) -> Result<Option<&AttributeProto>, ImportError> {
        let Some(a) = self.proto.attribute.iter().find(|a| a.name == name) else {
            return Ok(None);
        };
        match a.type_.enum_value() {
            Ok(t) if t == want => Ok(Some(a)),
            // Very old writers leave the type unset; trust the field the caller asks for.
            Ok(AttributeType::UNDEFINED) => Ok(Some(a)),
            Ok(t) => Err(self.invalid(format!("attribute '{name}' must be {want:?}, is {t:?}"))),
            Err(code) => {
                Err(self.invalid(format!("attribute '{name}' has unknown type code {code}")))
            }
        }
    }

    pub fn attr_int(&self, name: &str) -> Result<Option<i64>, ImportError> {
        Ok(self.attr(name, AttributeType::INT)?.map(|a| a.i))
    }

    pub fn attr_int_or(&self, name: &str, default: i64) -> Result<i64, ImportError> {
        Ok(self.attr_int(name)?.unwrap_or(default))
    }

    pub fn attr_ints(&self, name: &str) -> Result<Option<Vec<i64>>, ImportError> {
        Ok(self
            .attr(name, AttributeType::INTS)?
            .map(|a| a.ints.clone()))
    }

    /// A float attribute. NaN is never a valid attribute; infinity only as a bound (`min`,
    /// `max`, as old Clip writes them).
    pub fn attr_float(&self, name: &str) -> Result<Option<f32>, ImportError> {
        let v = self.attr(name, AttributeType::FLOAT)?.map(|a| a.f);
        match v {
            Some(f) if f.is_nan() || (f.is_infinite() && !matches!(name, "min" | "max")) => {
                Err(self.invalid(format!("attribute `{name}` is {f}, not a finite number")))
            }
            _ => Ok(v),
        }
    }

    pub fn attr_floats(&self, name: &str) -> Result<Option<Vec<f32>>, ImportError> {
        Ok(self
            .attr(name, AttributeType::FLOATS)?
            .map(|a| a.floats.clone()))
    }

    pub fn attr_string(&self, name: &str) -> Result<Option<String>, ImportError> {
        Ok(self
            .attr(name, AttributeType::STRING)?
            .map(|a| String::from_utf8_lossy(&a.s).into_owned()))
    }

    pub fn attr_tensor(&self, name: &str) -> Result<Option<&TensorProto>, ImportError> {
        match self.attr(name, AttributeType::TENSOR)? {
            None => Ok(None),
            Some(a) => {
                a.t.as_ref()
                    .map(Some)
                    .ok_or_else(|| self.invalid(format!("attribute '{name}' has no tensor")))
            }
        }
    }

    /// Operand `k`, if given.
    pub fn input(&self, k: usize) -> Option<&Val> {
        self.inputs.get(k).and_then(Option::as_ref)
    }

    /// ONNX name of operand `k` (for messages).
    pub fn input_name(&self, k: usize) -> &str {
        self.proto.input.get(k).map(String::as_str).unwrap_or("")
    }

    /// Operand `k`, which must be present.
    pub fn required(&self, k: usize, what: &str) -> Result<&Val, ImportError> {
        self.input(k)
            .ok_or_else(|| self.invalid(format!("input {k} ({what}) is required")))
    }

    /// Operand `k` as a graph value.
    pub fn graph_input(&self, k: usize, what: &str) -> Result<NodeId, ImportError> {
        match self.required(k, what)? {
            Val::Graph(id) => Ok(*id),
            _ => Err(self.invalid(format!(
                "input {k} ({what}, '{}') must be a graph value, not a constant",
                self.input_name(k)
            ))),
        }
    }

    /// Optional operand `k`, which must be a constant when present.
    pub fn const_input(&self, k: usize, what: &str) -> Result<Option<&HostTensor>, ImportError> {
        match self.input(k) {
            None => Ok(None),
            Some(Val::Const(t)) => Ok(Some(t)),
            Some(_) => Err(self.invalid(format!(
                "input {k} ({what}, '{}') must be a constant, but it is computed from the graph inputs",
                self.input_name(k)
            ))),
        }
    }

    /// Operand `k`, which must be a present constant.
    pub fn required_const(&self, k: usize, what: &str) -> Result<&HostTensor, ImportError> {
        self.required(k, what)?;
        Ok(self.const_input(k, what)?.expect("present"))
    }

    /// An integer list operand (shape, axes, pads) given as a constant.
    pub fn ints_input(&self, k: usize, what: &str) -> Result<Option<Vec<i64>>, ImportError> {
        match self.const_input(k, what)? {
            None => Ok(None),
            Some(t) => t.ints().map(|v| Some(v.to_vec())).ok_or_else(|| {
                self.invalid(format!("input {k} ({what}) must be an integer tensor"))
            }),
        }
    }

    /// A scalar float operand.
    pub fn scalar_input(&self, k: usize, what: &str) -> Result<Option<f32>, ImportError> {
        match self.const_input(k, what)? {
            None => Ok(None),
            Some(t) => t
                .scalar_f32()
                .map(Some)
                .ok_or_else(|| self.invalid(format!("input {k} ({what}) must be a scalar"))),
        }
    }

    /// Integer list from an attribute before `input_from_opset`, from input `k` since.
    pub fn ints_attr_or_input(
        &self,
        attr: &str,
        k: usize,
        input_from_opset: i64,
    ) -> Result<Option<Vec<i64>>, ImportError> {
        if self.opset < input_from_opset {
            self.attr_ints(attr)
        } else {
            self.ints_input(k, attr)
        }
    }
}

/// Normalises a possibly negative axis for a tensor of rank `rank`.
pub(crate) fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis.checked_add(r)? } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}

/// Formats an ONNX shape of a graph value, showing the batch axis as `N`.
pub(crate) fn show_shape(per_sample: &[usize]) -> String {
    let mut s = String::from("[N");
    for d in per_sample {
        s.push_str(&format!(", {d}"));
    }
    s.push(']');
    s
}
