//! The op registry: one entry per supported ONNX op type (default domain), found by binary search
//! in a table sorted by name. Adding an op means writing its builder in the family module and
//! adding one line here.
//!
//! An entry has up to two functions. `fold` evaluates the node on the host and is used when every
//! operand is a constant (shape subgraphs, weight preprocessing). `build` handles the general case
//! and emits IR nodes; it may still return constants (e.g. `Shape` of a graph value).

use super::ctx::{Ctx, NodeCx, Val};
use super::tensor::HostTensor;
use super::{constant, conv, elementwise, linear, pool, quant, shape, tensor_ops, ImportError};

/// Imports a node whose operands include graph values.
pub(crate) type BuildFn = fn(&mut Ctx, &NodeCx) -> Result<Vec<Val>, ImportError>;
/// Evaluates a node whose operands are all constants.
pub(crate) type FoldFn = fn(&mut Ctx, &NodeCx) -> Result<Vec<HostTensor>, ImportError>;

pub(crate) struct Entry {
    pub op: &'static str,
    pub fold: Option<FoldFn>,
    pub build: Option<BuildFn>,
}

const fn both(op: &'static str, fold: FoldFn, build: BuildFn) -> Entry {
    Entry {
        op,
        fold: Some(fold),
        build: Some(build),
    }
}
const fn fold(op: &'static str, fold: FoldFn) -> Entry {
    Entry {
        op,
        fold: Some(fold),
        build: None,
    }
}
const fn build(op: &'static str, build: BuildFn) -> Entry {
    Entry {
        op,
        fold: None,
        build: Some(build),
    }
}

/// Sorted by op type (checked by a unit test).
static TABLE: &[Entry] = &[
    both("Add", constant::binary, elementwise::binary),
    build("AveragePool", pool::average_pool),
    build("BatchNormalization", elementwise::batch_norm),
    fold("Cast", constant::cast),
    build("Clip", elementwise::clip),
    both("Concat", constant::concat, shape::concat),
    fold("Constant", constant::constant),
    fold("ConstantOfShape", constant::constant_of_shape),
    build("Conv", conv::conv),
    build("ConvTranspose", tensor_ops::conv_transpose),
    both(
        "DequantizeLinear",
        quant::dequantize_const,
        quant::dequantize,
    ),
    both("Div", constant::binary, elementwise::binary),
    both("Dropout", constant::identity, shape::identity),
    both("Flatten", constant::flatten, shape::flatten),
    both("Gather", constant::gather, tensor_ops::gather),
    build("Gemm", linear::gemm),
    build("GlobalAveragePool", pool::global_average_pool),
    build("GlobalMaxPool", pool::global_max_pool),
    both("Identity", constant::identity, shape::identity),
    build("LeakyRelu", tensor_ops::leaky_relu),
    build("LogSoftmax", elementwise::softmax),
    build("MatMul", linear::matmul),
    build("Max", tensor_ops::variadic),
    build("MaxPool", pool::max_pool),
    build("Mean", tensor_ops::variadic),
    build("Min", tensor_ops::variadic),
    both("Mul", constant::binary, elementwise::binary),
    build("Pad", tensor_ops::pad),
    both("QuantizeLinear", quant::quantize_const, quant::quantize),
    fold("Range", constant::range),
    build("ReduceMean", pool::reduce_mean),
    build("ReduceSum", tensor_ops::reduce),
    both("Relu", constant::relu, elementwise::relu),
    both("Reshape", constant::reshape, shape::reshape),
    build("Shape", shape::shape),
    both("Slice", constant::slice, tensor_ops::slice),
    build("Softmax", elementwise::softmax),
    both("Squeeze", constant::squeeze, shape::squeeze),
    both("Sub", constant::binary, elementwise::binary),
    build("Sum", tensor_ops::variadic),
    both("Transpose", constant::transpose, shape::transpose),
    both("Unsqueeze", constant::unsqueeze, shape::unsqueeze),
];

/// The entry for a default-domain op type.
pub(crate) fn lookup(op_type: &str) -> Option<&'static Entry> {
    TABLE
        .binary_search_by(|e| e.op.cmp(op_type))
        .ok()
        .map(|i| &TABLE[i])
}

/// Every supported default-domain op type, sorted.
pub fn supported_ops() -> Vec<&'static str> {
    TABLE.iter().map(|e| e.op).collect()
}

#[cfg(test)]
mod unit {
    #[test]
    fn table_is_sorted_and_unique() {
        let ops = super::supported_ops();
        assert!(ops.windows(2).all(|w| w[0] < w[1]), "{ops:?}");
        assert!(super::lookup("Gemm").is_some());
        assert!(super::lookup("LSTM").is_none());
    }
}
