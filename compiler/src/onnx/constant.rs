//! Host-side constant folding: evaluates nodes whose operands are all constants. Exporters emit
//! shape arithmetic (Shape → Gather → Unsqueeze → Concat → Reshape) and weight preprocessing
//! (Transpose, Cast, DequantizeLinear) that must disappear before the graph reaches the chip.
//!
//! Only what real exporters emit is covered, with ONNX semantics (numpy broadcasting, negative
//! axes and indices, Slice clamping). Integer arithmetic wraps instead of panicking, and every
//! result size is checked against the element limit before it is allocated.

use super::ctx::{norm_axis, Ctx, NodeCx};
use super::shape::{axes, flatten_axis, perm, resolve_reshape, squeeze_shape, unsqueeze_shape};
use super::tensor::{
    broadcast_shape, broadcast_src, checked_numel, decode, index_map, strides, Data, HostTensor,
};
use super::{tensor_error, ImportError};
use nmc_ir::limits::shape_text;
use onnx_protobuf::tensor_proto::DataType;

type Folded = Result<Vec<HostTensor>, ImportError>;

fn check_size(n: &NodeCx, shape: &[usize]) -> Result<usize, ImportError> {
    checked_numel(shape)
        .ok_or_else(|| n.invalid(format!("result shape {} is too large", shape_text(shape))))
}

/// `Constant`: the value from whichever `value*` attribute is set.
pub(crate) fn constant(ctx: &mut Ctx, n: &NodeCx) -> Folded {
    if let Some(t) = n.attr_tensor("value")? {
        let h =
            decode(t, &mut ctx.loader).map_err(|e| tensor_error(e, &t.name, &n.name, n.op()))?;
        return Ok(vec![h]);
    }
    if let Some(f) = n.attr_float("value_float")? {
        return Ok(vec![HostTensor::f32(vec![], vec![f])]);
    }
    if let Some(v) = n.attr_floats("value_floats")? {
        return Ok(vec![HostTensor::f32(vec![v.len()], v)]);
    }
    if let Some(i) = n.attr_int("value_int")? {
        return Ok(vec![HostTensor::i64(vec![], vec![i])]);
    }
    if let Some(v) = n.attr_ints("value_ints")? {
        return Ok(vec![HostTensor::i64(vec![v.len()], v)]);
    }
    Err(n.invalid("no supported value attribute (value, value_float(s), value_int(s))"))
}

/// `ConstantOfShape`: a tensor of the given shape filled with `value` (default float 0).
pub(crate) fn constant_of_shape(ctx: &mut Ctx, n: &NodeCx) -> Folded {
    let dims = n.ints_input(0, "shape")?.unwrap_or_default();
    let shape = super::tensor::dims_to_shape(&dims).map_err(|m| n.invalid(m))?;
    let count = check_size(n, &shape)?;
    let fill = match n.attr_tensor("value")? {
        Some(t) => {
            decode(t, &mut ctx.loader).map_err(|e| tensor_error(e, &t.name, &n.name, n.op()))?
        }
        None => HostTensor::f32(vec![1], vec![0.0]),
    };
    if fill.numel() != 1 {
        return Err(n.invalid("attribute 'value' must have exactly one element"));
    }
    Ok(vec![fill.select(shape, &vec![0; count])])
}

pub(crate) fn identity(_: &mut Ctx, n: &NodeCx) -> Folded {
    Ok(vec![n.required_const(0, "input")?.clone()])
}

pub(crate) fn relu(_: &mut Ctx, n: &NodeCx) -> Folded {
    let x = n.required_const(0, "X")?;
    let v = x.to_f32().into_iter().map(|v| v.max(0.0)).collect();
    Ok(vec![HostTensor::f32(x.shape.clone(), v)])
}

/// Add, Sub, Mul, Div with numpy broadcasting. Integer operands stay integers (Div truncates,
/// as ONNX does); a float operand makes the result float.
pub(crate) fn binary(_: &mut Ctx, n: &NodeCx) -> Folded {
    let a = n.required_const(0, "A")?;
    let b = n.required_const(1, "B")?;
    let shape = broadcast_shape(&a.shape, &b.shape).ok_or_else(|| {
        n.invalid(format!(
            "shapes {:?} and {:?} do not broadcast",
            a.shape, b.shape
        ))
    })?;
    let count = check_size(n, &shape)?;
    // Index maps only where an operand broadcasts, and float data borrowed, not copied: a
    // folded operation costs its output and little more.
    let map = |s: &[usize]| (s != shape.as_slice()).then(|| broadcast_src(s, &shape));
    let (ia, ib) = (map(&a.shape), map(&b.shape));
    let at = |m: &Option<Vec<usize>>, k: usize| m.as_ref().map_or(k, |m| m[k]);
    let op = n.op();
    match (&a.data, &b.data) {
        (Data::I64(x), Data::I64(y)) => {
            let mut out = Vec::with_capacity(count);
            for k in 0..count {
                let (p, q) = (x[at(&ia, k)], y[at(&ib, k)]);
                out.push(match op {
                    "Add" => p.wrapping_add(q),
                    "Sub" => p.wrapping_sub(q),
                    "Mul" => p.wrapping_mul(q),
                    _ => p
                        .checked_div(q)
                        .ok_or_else(|| n.invalid("integer division by zero or overflow"))?,
                });
            }
            Ok(vec![HostTensor::int(shape, out, a.elem)])
        }
        _ => {
            fn floats(t: &HostTensor) -> std::borrow::Cow<'_, [f32]> {
                match &t.data {
                    Data::F32(v) => std::borrow::Cow::Borrowed(v.as_slice()),
                    Data::I64(_) => std::borrow::Cow::Owned(t.to_f32()),
                }
            }
            let (x, y) = (floats(a), floats(b));
            let f = |p: f32, q: f32| match op {
                "Add" => p + q,
                "Sub" => p - q,
                "Mul" => p * q,
                _ => p / q,
            };
            let out = (0..count)
                .map(|k| f(x[at(&ia, k)], y[at(&ib, k)]))
                .collect();
            Ok(vec![HostTensor::f32(shape, out)])
        }
    }
}

/// `Cast` to float or integer types (float → integer truncates toward zero, then wraps to the
/// target width).
pub(crate) fn cast(_: &mut Ctx, n: &NodeCx) -> Folded {
    use DataType::*;
    let x = n.required_const(0, "input")?;
    // Cast-1 to -5 name the type ("FLOAT", "INT64", …); since opset 6 it is a type code.
    let code = if n.opset < 6 {
        let name = n
            .attr_string("to")?
            .ok_or_else(|| n.invalid("attribute 'to' is required"))?;
        <DataType as protobuf::Enum>::from_str(&name.to_ascii_uppercase())
            .map(|t| t as i64)
            .ok_or_else(|| n.invalid(format!("cannot cast to element type '{name}'")))?
    } else {
        n.attr_int("to")?
            .ok_or_else(|| n.invalid("attribute 'to' is required"))?
    };
    let to = i32::try_from(code)
        .ok()
        .and_then(super::tensor::data_type)
        .ok_or_else(|| n.invalid(format!("cannot cast to element type code {code}")))?;
    if matches!(to, FLOAT | DOUBLE | FLOAT16 | BFLOAT16) {
        return Ok(vec![HostTensor::f32(x.shape.clone(), x.to_f32())]);
    }
    let ints: Vec<i64> = match &x.data {
        Data::I64(v) => v.clone(),
        Data::F32(v) => v.iter().map(|&f| f as i64).collect(),
    };
    let wrap = |v: i64| -> i64 {
        match to {
            INT8 => v as i8 as i64,
            UINT8 => v as u8 as i64,
            INT16 => v as i16 as i64,
            UINT16 => v as u16 as i64,
            INT32 => v as i32 as i64,
            UINT32 => v as u32 as i64,
            BOOL => (v != 0) as i64,
            _ => v,
        }
    };
    let out = match (&x.data, to) {
        (Data::F32(v), BOOL) => v.iter().map(|&f| (f != 0.0) as i64).collect(),
        _ => ints.into_iter().map(wrap).collect(),
    };
    Ok(vec![HostTensor::int(x.shape.clone(), out, to)])
}

/// `Gather` along `axis` with (possibly negative) integer indices.
pub(crate) fn gather(_: &mut Ctx, n: &NodeCx) -> Folded {
    let data = n.required_const(0, "data")?;
    let idx = n.required_const(1, "indices")?;
    let ind = idx
        .ints()
        .ok_or_else(|| n.invalid("indices must be integers"))?;
    let r = data.shape.len();
    let a = n.attr_int_or("axis", 0)?;
    let axis =
        norm_axis(a, r).ok_or_else(|| n.invalid(format!("axis {a} out of range for rank {r}")))?;
    let dim = data.shape[axis];
    let ind: Vec<usize> = ind
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + dim as i64 } else { i };
            usize::try_from(j).ok().filter(|&j| j < dim).ok_or_else(|| {
                n.invalid(format!(
                    "index {i} out of range for axis {axis} of size {dim}"
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let mut shape = data.shape[..axis].to_vec();
    shape.extend_from_slice(&idx.shape);
    shape.extend_from_slice(&data.shape[axis + 1..]);
    check_size(n, &shape)?;
    let st = strides(&data.shape);
    let k = idx.shape.len();
    let ist = strides(&idx.shape);
    let src = index_map(&shape, |o| {
        let outer: usize = (0..axis).map(|d| o[d] * st[d]).sum();
        let flat_idx = o[axis..axis + k]
            .iter()
            .zip(&ist)
            .map(|(i, s)| i * s)
            .sum::<usize>();
        let inner: usize = (axis + 1..r).map(|d| o[d + k - 1] * st[d]).sum();
        outer + ind[flat_idx] * st[axis] + inner
    });
    Ok(vec![data.select(shape, &src)])
}

pub(crate) fn unsqueeze(_: &mut Ctx, n: &NodeCx) -> Folded {
    let x = n.required_const(0, "data")?;
    let a = axes(n)?.ok_or_else(|| n.invalid("axes are required"))?;
    let shape = unsqueeze_shape(&x.shape, &a).map_err(|m| n.invalid(m))?;
    Ok(vec![x.reshaped(shape)])
}

pub(crate) fn squeeze(_: &mut Ctx, n: &NodeCx) -> Folded {
    let x = n.required_const(0, "data")?;
    let a = axes(n)?;
    let shape = squeeze_shape(&x.shape, a.as_deref()).map_err(|m| n.invalid(m))?;
    Ok(vec![x.reshaped(shape)])
}

pub(crate) fn reshape(_: &mut Ctx, n: &NodeCx) -> Folded {
    let x = n.required_const(0, "data")?;
    let target = n.ints_attr_or_input("shape", 1, 5)?.ok_or_else(|| {
        n.invalid("the target shape is required (input 1; attribute before opset 5)")
    })?;
    let allowzero = n.attr_int_or("allowzero", 0)? != 0;
    let shape = resolve_reshape(&x.shape, &target, allowzero).map_err(|m| n.invalid(m))?;
    Ok(vec![x.reshaped(shape)])
}

pub(crate) fn flatten(_: &mut Ctx, n: &NodeCx) -> Folded {
    let x = n.required_const(0, "input")?;
    let axis = flatten_axis(n.attr_int_or("axis", 1)?, x.shape.len()).map_err(|m| n.invalid(m))?;
    let rows = x.shape[..axis].iter().product();
    let cols = x.shape[axis..].iter().product();
    Ok(vec![x.reshaped(vec![rows, cols])])
}

pub(crate) fn transpose(_: &mut Ctx, n: &NodeCx) -> Folded {
    let x = n.required_const(0, "data")?;
    let p = perm(n, x.shape.len())?;
    let shape: Vec<usize> = p.iter().map(|&a| x.shape[a]).collect();
    let st = strides(&x.shape);
    let src = index_map(&shape, |o| o.iter().zip(&p).map(|(i, &a)| i * st[a]).sum());
    Ok(vec![x.select(shape, &src)])
}

pub(crate) fn concat(_: &mut Ctx, n: &NodeCx) -> Folded {
    let parts: Vec<&HostTensor> = (0..n.inputs.len())
        .map(|k| n.required_const(k, "input"))
        .collect::<Result<_, _>>()?;
    let Some(first) = parts.first() else {
        return Err(n.invalid("no inputs"));
    };
    let r = first.shape.len();
    let a = n
        .attr_int("axis")?
        .ok_or_else(|| n.invalid("attribute 'axis' is required"))?;
    let axis =
        norm_axis(a, r).ok_or_else(|| n.invalid(format!("axis {a} out of range for rank {r}")))?;
    let mut shape = first.shape.clone();
    shape[axis] = 0;
    for p in &parts {
        let same = p.shape.len() == r && (0..r).all(|d| d == axis || p.shape[d] == first.shape[d]);
        if !same {
            return Err(n.invalid(format!(
                "shapes {:?} and {:?} differ off axis {axis}",
                first.shape, p.shape
            )));
        }
        shape[axis] = shape[axis]
            .checked_add(p.shape[axis])
            .ok_or_else(|| n.invalid("result too large"))?;
    }
    check_size(n, &shape)?;
    let outer: usize = shape[..axis].iter().product();
    let float = parts.iter().any(|p| p.is_float());
    let floats: Vec<Vec<f32>> = if float {
        parts.iter().map(|p| p.to_f32()).collect()
    } else {
        Vec::new()
    };
    let (mut fv, mut iv) = (Vec::new(), Vec::new());
    for o in 0..outer {
        for (k, p) in parts.iter().enumerate() {
            let block: usize = p.shape[axis..].iter().product();
            let range = o * block..(o + 1) * block;
            match &p.data {
                Data::I64(v) if !float => iv.extend_from_slice(&v[range]),
                _ => fv.extend_from_slice(&floats[k][range]),
            }
        }
    }
    Ok(vec![if float {
        HostTensor::f32(shape, fv)
    } else {
        HostTensor::int(shape, iv, first.elem)
    }])
}

/// `Slice`'s starts, ends, axes and steps (attributes before opset 10, inputs since; axes default
/// to the first ones, steps to 1), all of one length.
pub(crate) type SliceArgs = (Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>);

/// Reads [`SliceArgs`].
pub(crate) fn slice_args(n: &NodeCx) -> Result<SliceArgs, ImportError> {
    let (starts, ends, axes, steps) = if n.opset < 10 {
        (
            n.attr_ints("starts")?,
            n.attr_ints("ends")?,
            n.attr_ints("axes")?,
            None,
        )
    } else {
        (
            n.ints_input(1, "starts")?,
            n.ints_input(2, "ends")?,
            n.ints_input(3, "axes")?,
            n.ints_input(4, "steps")?,
        )
    };
    let starts = starts.ok_or_else(|| n.invalid("starts are required"))?;
    let ends = ends.ok_or_else(|| n.invalid("ends are required"))?;
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(n.invalid("starts, ends, axes and steps differ in length"));
    }
    Ok((starts, ends, axes, steps))
}

/// `Slice` (attributes before opset 10, inputs since) with ONNX clamping rules.
pub(crate) fn slice(_: &mut Ctx, n: &NodeCx) -> Folded {
    let x = n.required_const(0, "data")?;
    let r = x.shape.len();
    let (starts, ends, axes, steps) = slice_args(n)?;
    // Per axis: first index and step (as i128 to keep clamping arithmetic overflow-free).
    let mut first = vec![0i128; r];
    let mut step = vec![1i128; r];
    let mut shape = x.shape.clone();
    let mut seen = vec![false; r];
    for k in 0..starts.len() {
        let a = norm_axis(axes[k], r)
            .ok_or_else(|| n.invalid(format!("axis {} out of range for rank {r}", axes[k])))?;
        if std::mem::replace(&mut seen[a], true) {
            return Err(n.invalid(format!("axis {a} sliced twice")));
        }
        let d = x.shape[a] as i128;
        let s = steps[k] as i128;
        if s == 0 {
            return Err(n.invalid("step 0"));
        }
        let norm = |v: i64| {
            let v = v as i128;
            if v < 0 {
                v + d
            } else {
                v
            }
        };
        if d == 0 {
            shape[a] = 0;
            continue;
        }
        let (b, e) = if s > 0 {
            (norm(starts[k]).clamp(0, d), norm(ends[k]).clamp(0, d))
        } else {
            (
                norm(starts[k]).clamp(0, d - 1),
                norm(ends[k]).clamp(-1, d - 1),
            )
        };
        let count = if s > 0 {
            ((e - b + s - 1) / s).max(0)
        } else {
            ((b - e + (-s) - 1) / (-s)).max(0)
        };
        first[a] = b;
        step[a] = s;
        shape[a] = count as usize;
    }
    check_size(n, &shape)?;
    let st = strides(&x.shape);
    let src = index_map(&shape, |o| {
        (0..r)
            .map(|d| (first[d] + o[d] as i128 * step[d]) as usize * st[d])
            .sum()
    });
    Ok(vec![x.select(shape, &src)])
}

/// `Range(start, limit, delta)`.
pub(crate) fn range(_: &mut Ctx, n: &NodeCx) -> Folded {
    let s = n.required_const(0, "start")?;
    let l = n.required_const(1, "limit")?;
    let d = n.required_const(2, "delta")?;
    if s.numel() != 1 || l.numel() != 1 || d.numel() != 1 {
        return Err(n.invalid("start, limit and delta must be scalars"));
    }
    match (s.ints(), l.ints(), d.ints()) {
        (Some(s), Some(l), Some(d)) => {
            let (s, l, d) = (s[0] as i128, l[0] as i128, d[0] as i128);
            if d == 0 {
                return Err(n.invalid("delta 0"));
            }
            let count = ((l - s) + d - d.signum()) / d;
            let count = usize::try_from(count.max(0)).unwrap_or(usize::MAX);
            check_size(n, &[count])?;
            let v = (0..count as i128).map(|i| (s + i * d) as i64).collect();
            Ok(vec![HostTensor::i64(vec![count], v)])
        }
        _ => {
            let (s, l, d) = (s.to_f32()[0], l.to_f32()[0], d.to_f32()[0]);
            let count = ((l - s) / d).ceil();
            if !count.is_finite() {
                return Err(n.invalid("range has no finite length"));
            }
            let count = count.max(0.0) as usize;
            check_size(n, &[count])?;
            let v = (0..count).map(|i| s + i as f32 * d).collect();
            Ok(vec![HostTensor::f32(vec![count], v)])
        }
    }
}
