//! `nmc-ir`: the sparse-dataflow IR of the nmc neuromorphic compiler.
//!
//! A [`Graph`] is a dataflow graph whose values are tensors of events for one sample (the batch axis
//! of the source model is not represented: chips process one frame at a time). Each [`Node`]
//! produces one value; weights and biases live in a [`ConstPool`] and are stored sparse when they
//! are sparse.
//!
//! Three forms of the same graph exist along the pipeline:
//! - **imported**: ONNX-level ops ([`Op::Dense`], [`Op::Conv2d`], [`Op::Add`], …) in float;
//! - **canonical**: [`Op::Layer`] populations (synapse groups + neuron model + pooling), views
//!   ([`Op::Reshape`], [`Op::Concat`]) and an optional float tail ([`Op::Softmax`]); float
//!   tensor ops ([`Op::Tensor`]) are evaluated by the interpreter but never canonicalised;
//! - **quantised**: the canonical graph with [`LayerQuant`] integer semantics, bracketed by
//!   [`Op::Quantize`] and [`Op::Dequantize`] at the chip boundary.
//!
//! The [`verify`] function checks a graph and reports every problem; the text format ([`print`],
//! [`parse`]) round-trips; the [`Interpreter`] is the golden model that emulators must match bit
//! for bit in the integer domain. Mapping results live in side tables ([`Mapping`]).
//!
//! This crate knows nothing of ONNX, e-graphs or artifact formats.
#![deny(missing_docs)]

mod attr;
mod constant;
mod graph;
mod infer;
mod interp;
pub mod limits;
mod op;
mod parse;
mod partition;
mod print;
mod round;
pub mod tensor_op;
mod types;
mod verify;

pub use attr::{op_attrs, op_from_attrs, AttrValue, Attrs};
pub use constant::{
    fnv1a, hash_bytes, ConstData, ConstId, ConstPool, Constant, Storage, SPARSE_DENSITY_THRESHOLD,
};
pub use graph::{Cycle, Graph, Node, NodeId, NodeRef, Output};
pub use infer::infer_type;
pub use interp::{
    activate, activate_div, if_step, quantize, saturate, shift, InterpError, Interpreter,
    RateEncoder, StepRun, Value,
};
pub use op::{
    remap_constants, ActRound, Activation, ConvGeom, CubaQuant, Layer, LayerQuant, Neuron, Op,
    Pool, PoolKind, QuantMode, QuantParams, Reset, SpikeQuant, SpikingModel, Synapse,
    CUBA_STATE_LIMIT,
};
pub use parse::{parse, ParseError};
pub use partition::{even_split, CoreLoc, CoreSlice, Mapping};
pub use print::print;
pub use round::{round_even, round_even_f32};
pub use tensor_op::{BinKind, ConvTransposeNd, PadMode, PoolNd, ReduceKind, TensorOp};
pub use types::{DType, TensorType};
pub use verify::{verify, VerifyError, VerifyErrors};
