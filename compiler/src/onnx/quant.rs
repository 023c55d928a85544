//! QuantizeLinear / DequantizeLinear.
//!
//! On constants both are folded on the host: quantised weights and biases (`int8`/`int32`
//! initializers behind a DequantizeLinear, per-tensor or per-axis) become float constants that
//! the Dense/Conv builders consume like any other weight. On a graph value a QuantizeLinear →
//! DequantizeLinear pair is one float-rounding step, [`Op::FakeQuant`]; its scale is kept as a
//! hint for quantisation. The integer value between the two never becomes an IR value.

use super::ctx::{norm_axis, Ctx, NodeCx, Quantized, Val};
use super::tensor::{strides, Data, HostTensor};
use super::ImportError;
use nmc_ir::Op;
use onnx_protobuf::tensor_proto::DataType;
use std::rc::Rc;

/// Representable range of a quantised integer type.
fn int_range(elem: DataType) -> Option<(i64, i64)> {
    use DataType::*;
    Some(match elem {
        INT8 => (-128, 127),
        UINT8 => (0, 255),
        INT16 => (-32768, 32767),
        UINT16 => (0, 65535),
        INT32 => (i32::MIN as i64, i32::MAX as i64),
        _ => return None,
    })
}

/// Scale and zero point for every element of a tensor of `shape`: per tensor (one value) or per
/// axis (one value per index of `axis`).
struct Params {
    scale: Vec<f32>,
    zero: Vec<i64>,
    /// Element → parameter index: `(i / stride) % len`.
    stride: usize,
    /// The zero point's element type (the quantised type), if a zero point was given.
    elem: Option<DataType>,
}

impl Params {
    fn at(&self, i: usize) -> (f32, i64) {
        let k = (i / self.stride) % self.scale.len();
        (self.scale[k], self.zero[k])
    }
}

fn params(n: &NodeCx, shape: &[usize]) -> Result<Params, ImportError> {
    if n.attr_int_or("block_size", 0)? != 0 {
        return Err(n.invalid("blocked quantization is not supported"));
    }
    let scale = n.required_const(1, "scale")?;
    let zp = n.const_input(2, "zero_point")?;
    let len = scale.numel();
    if len == 0 {
        return Err(n.invalid("empty scale"));
    }
    let stride = if len == 1 {
        1
    } else {
        let a = n.attr_int_or("axis", 1)?;
        let axis = norm_axis(a, shape.len())
            .ok_or_else(|| n.invalid(format!("axis {a} out of range for rank {}", shape.len())))?;
        if scale.shape.len() != 1 || shape[axis] != len {
            return Err(n.invalid(format!(
                "per-axis scale of shape {:?} does not match axis {axis} of {shape:?}",
                scale.shape
            )));
        }
        strides(shape)[axis]
    };
    let (zero, elem) = match zp {
        None => (vec![0; len], None),
        Some(z) => {
            let v = z
                .ints()
                .ok_or_else(|| n.invalid("zero point must be an integer tensor"))?;
            if v.len() != len {
                return Err(n.invalid(format!(
                    "zero point has {} values, scale has {len}",
                    v.len()
                )));
            }
            (v.to_vec(), Some(z.elem))
        }
    };
    Ok(Params {
        scale: scale.to_f32(),
        zero,
        stride,
        elem,
    })
}

/// The quantised type of a QuantizeLinear: the zero point's type, else `output_dtype`
/// (opset 21), else uint8.
fn quant_type(n: &NodeCx, p: &Params) -> Result<(DataType, i64, i64), ImportError> {
    let elem = match p.elem {
        Some(e) => e,
        None => match n.attr_int("output_dtype")? {
            None | Some(0) => DataType::UINT8,
            Some(code) => i32::try_from(code)
                .ok()
                .and_then(super::tensor::data_type)
                .ok_or_else(|| n.invalid(format!("output_dtype {code} is not supported")))?,
        },
    };
    let (lo, hi) = int_range(elem)
        .filter(|_| elem != DataType::INT32)
        .ok_or_else(|| n.invalid(format!("quantization to {elem:?} is not supported")))?;
    if p.zero.iter().any(|z| !(lo..=hi).contains(z)) {
        return Err(n.invalid(format!("zero point outside the {elem:?} range")));
    }
    Ok((elem, lo, hi))
}

/// DequantizeLinear of a constant integer tensor.
pub(crate) fn dequantize_const(_: &mut Ctx, n: &NodeCx) -> Result<Vec<HostTensor>, ImportError> {
    let x = n.required_const(0, "x")?;
    let Data::I64(xv) = &x.data else {
        return Err(n.invalid("x must be an integer tensor"));
    };
    let p = params(n, &x.shape)?;
    let out = xv
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            let (s, z) = p.at(i);
            q.wrapping_sub(z) as f32 * s
        })
        .collect();
    Ok(vec![HostTensor::f32(x.shape.clone(), out)])
}

/// QuantizeLinear of a constant float tensor (round half to even, saturate).
pub(crate) fn quantize_const(_: &mut Ctx, n: &NodeCx) -> Result<Vec<HostTensor>, ImportError> {
    let x = n.required_const(0, "x")?;
    let p = params(n, &x.shape)?;
    let (elem, lo, hi) = quant_type(n, &p)?;
    let out = x
        .to_f32()
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (s, z) = p.at(i);
            (nmc_ir::round_even_f32(v / s) + z as f32).clamp(lo as f32, hi as f32) as i64
        })
        .collect();
    Ok(vec![HostTensor::int(x.shape.clone(), out, elem)])
}

/// Per-tensor scale and zero point of a graph-value (de)quantisation.
fn per_tensor(n: &NodeCx, p: &Params) -> Result<(f32, i64), ImportError> {
    if p.scale.len() != 1 {
        return Err(
            n.invalid("per-axis quantization of a graph value is not supported (only per-tensor)")
        );
    }
    let s = p.scale[0];
    if !(s.is_finite() && s > 0.0) {
        return Err(n.invalid(format!("scale {s} must be positive and finite")));
    }
    Ok((s, p.zero[0]))
}

/// QuantizeLinear on a graph value: remembered until its DequantizeLinear.
pub(crate) fn quantize(ctx: &mut Ctx, n: &NodeCx) -> Result<Vec<Val>, ImportError> {
    let x = n.graph_input(0, "x")?;
    let shape = ctx.onnx_shape(x);
    let p = params(n, &shape)?;
    let (scale, zero_point) = per_tensor(n, &p)?;
    let (_, min, max) = quant_type(n, &p)?;
    Ok(vec![Val::Quantized(Rc::new(Quantized {
        src: x,
        scale,
        zero_point,
        min,
        max,
        node: n.name.clone(),
    }))])
}

/// DequantizeLinear of a quantised graph value: the pair becomes one FakeQuant.
pub(crate) fn dequantize(ctx: &mut Ctx, n: &NodeCx) -> Result<Vec<Val>, ImportError> {
    let q = match n.required(0, "x")? {
        Val::Quantized(q) => q.clone(),
        Val::Graph(_) => {
            return Err(n.invalid(
                "x is a float graph value; DequantizeLinear needs a constant or the output of a QuantizeLinear",
            ))
        }
        Val::Const(_) => return Err(n.invalid("scale and zero point must be constants")),
    };
    let shape = ctx.onnx_shape(q.src);
    let p = params(n, &shape)?;
    let (scale, zero_point) = per_tensor(n, &p)?;
    if scale != q.scale || zero_point != q.zero_point {
        return Err(n.invalid(format!(
            "scale {scale} and zero point {zero_point} differ from those of QuantizeLinear node \"{}\" ({} and {})",
            q.node, q.scale, q.zero_point
        )));
    }
    let op = Op::FakeQuant {
        scale,
        zero_point: zero_point as i32,
        min: q.min as i32,
        max: q.max as i32,
    };
    Ok(vec![Val::Graph(ctx.add(n, op, vec![q.src], None)?)])
}
