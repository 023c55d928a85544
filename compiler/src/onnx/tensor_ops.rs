//! Builders for ONNX operators (or operator forms) that become float tensor ops
//! ([`nmc_ir::TensorOp`]): arithmetic whose constant is not per-channel, Max/Min, the variadic
//! Sum/Mean/Max/Min, LeakyRelu, Pad, ReduceSum/ReduceMean over any per-sample axes, Slice of a
//! graph value, batched MatMul, pooling the 2-D [`nmc_ir::Op::Pool2d`] cannot express (1-D/3-D,
//! dilations, `ceil_mode`) and ConvTranspose. `nmc eval` computes them; the compile pipeline
//! says that no chip runs them.
//!
//! Constants meet graph values in the per-sample frame: a constant's axes aligned with the batch
//! axis (and any before it) must have size 1 and are dropped; a constant that differs from sample
//! to sample cannot be expressed and is an error naming the node.

use super::ctx::{norm_axis, show_shape, Ctx, NodeCx, Val};
use super::shape::pass_through;
use super::tensor::HostTensor;
use super::ImportError;
use nmc_ir::{
    BinKind, ConvTransposeNd, NodeId, Op, PadMode, PoolKind, PoolNd, ReduceKind, TensorOp,
};

type Built = Result<Vec<Val>, ImportError>;

/// Largest kernel, stride, dilation or pad accepted (as for 2-D convolutions).
const MAX_GEOM: i64 = 1 << 20;

/// The per-sample form of constant `c` that meets a graph value of per-sample rank `rank`
/// under numpy broadcasting.
pub(crate) fn per_sample_const(
    n: &NodeCx,
    c: &HostTensor,
    rank: usize,
) -> Result<(Vec<usize>, Vec<f32>), ImportError> {
    let onnx_rank = rank + 1;
    let mut shape = c.shape.clone();
    if shape.len() >= onnx_rank {
        let drop = shape.len() - onnx_rank + 1;
        if shape[..drop].iter().any(|&d| d != 1) {
            return Err(n.invalid(format!(
                "constant of shape {:?} differs along the batch axis of the graph operand; a per-sample model cannot express it",
                c.shape
            )));
        }
        shape.drain(..drop);
    }
    Ok((shape, c.to_f32()))
}

fn add(
    ctx: &mut Ctx,
    n: &NodeCx,
    op: TensorOp,
    inputs: Vec<NodeId>,
) -> Result<NodeId, ImportError> {
    ctx.add(n, Op::Tensor(op), inputs, None)
}

/// `a ⊙ b` for two operands of which at least one is a graph value.
pub(crate) fn binary_vals(
    ctx: &mut Ctx,
    n: &NodeCx,
    kind: BinKind,
    a: &Val,
    b: &Val,
) -> Result<NodeId, ImportError> {
    match (a, b) {
        (Val::Graph(x), Val::Graph(y)) => {
            if ctx.ty(*x).shape.len() != ctx.ty(*y).shape.len() {
                return Err(n.invalid(format!(
                    "graph operands {} and {} differ in rank, so their batch axes do not align",
                    show_shape(&ctx.ty(*x).shape),
                    show_shape(&ctx.ty(*y).shape)
                )));
            }
            let op = TensorOp::Binary {
                kind,
                operand: None,
                const_first: false,
            };
            add(ctx, n, op, vec![*x, *y])
        }
        (Val::Graph(x), Val::Const(c)) | (Val::Const(c), Val::Graph(x)) => {
            let const_first = matches!(a, Val::Const(_));
            let rank = ctx.ty(*x).shape.len();
            let (shape, values) = per_sample_const(n, c, rank)?;
            if shape.len() > rank {
                return Err(n.invalid("the constant has more axes than the graph operand"));
            }
            let operand = Some(ctx.constant(shape, values));
            let op = TensorOp::Binary {
                kind,
                operand,
                const_first,
            };
            add(ctx, n, op, vec![*x])
        }
        _ => Err(n.invalid("unsupported operand combination")),
    }
}

fn kind_of(op: &str) -> Option<BinKind> {
    Some(match op {
        "Add" | "Sum" | "Mean" => BinKind::Add,
        "Sub" => BinKind::Sub,
        "Mul" => BinKind::Mul,
        "Div" => BinKind::Div,
        "Max" => BinKind::Max,
        "Min" => BinKind::Min,
        _ => return None,
    })
}

/// Before opset 7, arithmetic broadcast only with `broadcast=1`, and aligned a constant B with A
/// from `axis` on (numpy aligns trailing axes): B gets trailing unit axes, so that both mean the
/// same.
pub(crate) fn old_broadcast(ctx: &Ctx, n: &NodeCx, a: &Val, b: Val) -> Result<Val, ImportError> {
    if n.opset >= 7 || n.attr_int_or("broadcast", 0)? == 0 {
        return Ok(b);
    }
    let (Some(axis), Val::Const(c), Val::Graph(x)) = (n.attr_int("axis")?, &b, a) else {
        return Ok(b);
    };
    let rank = ctx.ty(*x).shape.len() + 1;
    let axis = norm_axis(axis, rank)
        .ok_or_else(|| n.invalid(format!("axis {axis} out of range for rank {rank}")))?;
    let trailing = rank.checked_sub(axis + c.shape.len()).ok_or_else(|| {
        n.invalid(format!(
            "B of shape {:?} does not fit from axis {axis}",
            c.shape
        ))
    })?;
    let mut shape = c.shape.clone();
    shape.extend(std::iter::repeat_n(1, trailing));
    Ok(Val::Const(std::rc::Rc::new(c.reshaped(shape))))
}

/// Sum/Mean/Max/Min of any number of operands, at least one a graph value.
pub(crate) fn variadic(ctx: &mut Ctx, n: &NodeCx) -> Built {
    let kind = kind_of(n.op()).ok_or_else(|| n.invalid("not a variadic operator"))?;
    let vals: Vec<Val> = (0..n.inputs.len())
        .map(|k| n.required(k, "data").cloned())
        .collect::<Result<_, _>>()?;
    let Some(first) = vals.iter().position(|v| matches!(v, Val::Graph(_))) else {
        return Err(n.invalid("no graph operand"));
    };
    let mut acc = vals[first].clone();
    for (k, v) in vals.iter().enumerate() {
        if k == first {
            continue;
        }
        // Sum, Max and Min are commutative: the graph operand goes first.
        acc = Val::Graph(binary_vals(ctx, n, kind, &acc, v)?);
    }
    let Val::Graph(mut id) = acc else {
        return Err(n.invalid("no graph operand"));
    };
    if n.op() == "Mean" && vals.len() > 1 {
        // The sum divided by the count, as onnx's reference computes the mean.
        let op = TensorOp::Binary {
            kind: BinKind::Div,
            operand: Some(ctx.constant(vec![], vec![vals.len() as f32])),
            const_first: false,
        };
        id = add(ctx, n, op, vec![id])?;
    }
    if vals.len() == 1 {
        return Ok(pass_through(ctx, id));
    }
    Ok(vec![Val::Graph(id)])
}

pub(crate) fn leaky_relu(ctx: &mut Ctx, n: &NodeCx) -> Built {
    let x = n.graph_input(0, "X")?;
    let alpha = n.attr_float("alpha")?.unwrap_or(0.01);
    Ok(vec![Val::Graph(add(
        ctx,
        n,
        TensorOp::LeakyRelu { alpha },
        vec![x],
    )?)])
}

/// Pad: `paddings` attribute in opset 1, `pads`/`value` attributes in 2–10, inputs since 11
/// (`axes` since 18). The batch axis must not be padded.
pub(crate) fn pad(ctx: &mut Ctx, n: &NodeCx) -> Built {
    let x = n.graph_input(0, "data")?;
    let ir = ctx.ty(x).shape.clone();
    let rank = ir.len() + 1;
    let mode = n.attr_string("mode")?.unwrap_or_else(|| "constant".into());
    let mode = PadMode::from_name(&mode)
        .ok_or_else(|| n.invalid(format!("mode '{mode}' is not supported")))?;
    let (pads, value, axes) = if n.opset < 11 {
        let name = if n.opset < 2 { "paddings" } else { "pads" };
        let p = n
            .attr_ints(name)?
            .ok_or_else(|| n.invalid(format!("attribute '{name}' is required")))?;
        (p, n.attr_float("value")?.unwrap_or(0.0), None)
    } else {
        let p = n
            .ints_input(1, "pads")?
            .ok_or_else(|| n.invalid("input 1 (pads) is required"))?;
        let v = n.scalar_input(2, "constant_value")?.unwrap_or(0.0);
        (p, v, n.ints_input(3, "axes")?)
    };
    if !value.is_finite() {
        return Err(n.invalid(format!("pad value {value} is not finite")));
    }
    let axes: Vec<usize> = match axes {
        None => (0..rank).collect(),
        Some(a) => a
            .iter()
            .map(|&v| norm_axis(v, rank))
            .collect::<Option<_>>()
            .ok_or_else(|| n.invalid(format!("axes {a:?} out of range for rank {rank}")))?,
    };
    if pads.len() != 2 * axes.len() {
        return Err(n.invalid(format!("{} pads for {} axes", pads.len(), axes.len())));
    }
    let k = axes.len();
    let mut full = vec![0i64; 2 * rank];
    for (i, &a) in axes.iter().enumerate() {
        full[a] = pads[i];
        full[a + rank] = pads[i + k];
    }
    if full.iter().any(|&p| !(0..=MAX_GEOM).contains(&p)) {
        return Err(n.invalid(format!(
            "pads {pads:?}: only pads in 0..={MAX_GEOM} are supported (no cropping)"
        )));
    }
    if full[0] != 0 || full[rank] != 0 {
        return Err(n.invalid("cannot pad axis 0, the batch axis"));
    }
    let mut per: Vec<usize> = full[1..rank].iter().map(|&p| p as usize).collect();
    per.extend(full[rank + 1..].iter().map(|&p| p as usize));
    if per.iter().all(|&p| p == 0) {
        return Ok(pass_through(ctx, x));
    }
    let op = TensorOp::Pad {
        pads: per,
        mode,
        value,
    };
    Ok(vec![Val::Graph(add(ctx, n, op, vec![x])?)])
}

/// ReduceSum (axes input since 13) and ReduceMean (since 18) over per-sample axes.
pub(crate) fn reduce(ctx: &mut Ctx, n: &NodeCx) -> Built {
    let x = n.graph_input(0, "data")?;
    let ir = ctx.ty(x).shape.clone();
    let rank = ir.len() + 1;
    let (kind, from) = match n.op() {
        "ReduceSum" => (ReduceKind::Sum, 13),
        _ => (ReduceKind::Mean, 18),
    };
    let axes = n.ints_attr_or_input("axes", 1, from)?;
    let axes = match axes {
        Some(a) if !a.is_empty() => a,
        _ if n.opset >= from && n.attr_int_or("noop_with_empty_axes", 0)? != 0 => {
            return Ok(pass_through(ctx, x));
        }
        _ => return Err(n.invalid("reducing over all axes includes the batch axis")),
    };
    let mut norm: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<Option<_>>()
        .ok_or_else(|| n.invalid(format!("axes {axes:?} out of range for rank {rank}")))?;
    norm.sort_unstable();
    norm.dedup();
    if norm.first() == Some(&0) {
        return Err(n.invalid("reducing over axis 0, the batch axis, is not supported"));
    }
    let op = TensorOp::Reduce {
        kind,
        axes: norm.iter().map(|a| a - 1).collect(),
        keepdims: n.attr_int_or("keepdims", 1)? != 0,
    };
    Ok(vec![Val::Graph(add(ctx, n, op, vec![x])?)])
}

/// Slice of a graph value (attributes before opset 10, inputs since), ONNX clamping rules; the
/// batch axis must be taken whole.
pub(crate) fn slice(ctx: &mut Ctx, n: &NodeCx) -> Built {
    let x = n.graph_input(0, "data")?;
    let full = ctx.onnx_shape(x);
    let r = full.len();
    let (starts, ends, axes, steps) = super::constant::slice_args(n)?;
    let mut first: Vec<usize> = vec![0; r];
    let mut step: Vec<i64> = vec![1; r];
    let mut count: Vec<usize> = full.clone();
    let mut seen = vec![false; r];
    for k in 0..starts.len() {
        let a = norm_axis(axes[k], r)
            .ok_or_else(|| n.invalid(format!("axis {} out of range for rank {r}", axes[k])))?;
        if std::mem::replace(&mut seen[a], true) {
            return Err(n.invalid(format!("axis {a} sliced twice")));
        }
        let d = full[a] as i128;
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
        let (b, e) = if s > 0 {
            (norm(starts[k]).clamp(0, d), norm(ends[k]).clamp(0, d))
        } else {
            (
                norm(starts[k]).clamp(-1, d - 1),
                norm(ends[k]).clamp(-1, d - 1),
            )
        };
        let c = if s > 0 {
            if e > b {
                (e - b + s - 1) / s
            } else {
                0
            }
        } else if b > e {
            (b - e + (-s) - 1) / (-s)
        } else {
            0
        };
        first[a] = if c == 0 { 0 } else { b as usize };
        step[a] = steps[k].clamp(-MAX_GEOM, MAX_GEOM);
        count[a] = c as usize;
    }
    if first[0] != 0 || step[0] != 1 || count[0] != full[0] {
        return Err(n.invalid("slicing axis 0, the batch axis, is not supported"));
    }
    if count.contains(&0) {
        return Err(n.invalid("the slice is empty"));
    }
    if first[1..].iter().all(|&f| f == 0) && step[1..].iter().all(|&s| s == 1) && count == full {
        return Ok(pass_through(ctx, x));
    }
    let op = TensorOp::Slice {
        starts: first[1..].to_vec(),
        steps: step[1..].to_vec(),
        counts: count[1..].to_vec(),
    };
    Ok(vec![Val::Graph(add(ctx, n, op, vec![x])?)])
}

/// MatMul of a graph value of any rank by a constant (numpy semantics; batch axes of the
/// constant that align with the sample axis must have size 1).
pub(crate) fn matmul(ctx: &mut Ctx, n: &NodeCx) -> Built {
    let x = n.graph_input(0, "A")?;
    let b = n.required_const(1, "B")?;
    let ir = ctx.ty(x).shape.clone();
    let ra = ir.len() + 1;
    let mut w = b.shape.clone();
    if w.len() >= 3 {
        // Batch axes of A are [N] ++ ir[..len-2] when A is at least 3-D; a 2-D A has none
        // besides the sample axis, which is then its row axis.
        let a_batch = if ra >= 3 { ra - 2 } else { 0 };
        let wb = w.len() - 2;
        if wb >= a_batch {
            let drop = if a_batch == 0 { wb } else { wb - a_batch + 1 };
            if w[..drop].iter().any(|&d| d != 1) {
                return Err(n.invalid(format!(
                    "B of shape {:?} differs along the batch axis of A; a per-sample model cannot express it",
                    b.shape
                )));
            }
            w.drain(..drop);
        }
    }
    let weight = ctx.constant(w, b.to_f32());
    Ok(vec![Val::Graph(add(
        ctx,
        n,
        TensorOp::MatMul { weight },
        vec![x],
    )?)])
}

/// An N-valued integer attribute, each in `min..=MAX_GEOM`.
fn nd(
    n: &NodeCx,
    name: &str,
    len: usize,
    default: Option<usize>,
    min: i64,
) -> Result<Vec<usize>, ImportError> {
    match n.attr_ints(name)? {
        None => default
            .map(|d| vec![d; len])
            .ok_or_else(|| n.invalid(format!("attribute '{name}' is required"))),
        Some(v) if v.len() == len && v.iter().all(|x| (min..=MAX_GEOM).contains(x)) => {
            Ok(v.iter().map(|&x| x as usize).collect())
        }
        Some(v) => Err(n.invalid(format!(
            "attribute '{name}' must be {len} values in {min}..={MAX_GEOM}, is {v:?}"
        ))),
    }
}

/// Explicit pads (N leading then N trailing) from `pads` or `auto_pad` for pooling and
/// convolution windows (`SAME_*`: output `ceil(in / stride)`).
fn nd_pads(
    n: &NodeCx,
    spatial: &[usize],
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
) -> Result<Vec<usize>, ImportError> {
    let k = spatial.len();
    let auto = n
        .attr_string("auto_pad")?
        .unwrap_or_else(|| "NOTSET".into());
    match auto.as_str() {
        "NOTSET" | "" => nd(n, "pads", 2 * k, Some(0), 0),
        "VALID" => Ok(vec![0; 2 * k]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut p = vec![0; 2 * k];
            for d in 0..k {
                let out = spatial[d].div_ceil(strides[d]);
                let eff = dilations[d] * (kernel[d] - 1) + 1;
                let total = ((out - 1) * strides[d] + eff).saturating_sub(spatial[d]);
                let small = total / 2;
                (p[d], p[d + k]) = if auto == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
            }
            Ok(p)
        }
        other => Err(n.invalid(format!("auto_pad '{other}' is not supported"))),
    }
}

/// MaxPool/AveragePool as N-d pooling (what [`nmc_ir::Op::Pool2d`] cannot express).
pub(crate) fn pool_nd(ctx: &mut Ctx, n: &NodeCx, kind: PoolKind) -> Built {
    let x = n.graph_input(0, "X")?;
    let ir = ctx.ty(x).shape.clone();
    if ir.len() < 2 {
        return Err(n.invalid(format!(
            "pooling needs a [N, C, spatial…] input, the input is {}",
            show_shape(&ir)
        )));
    }
    let k = ir.len() - 1;
    let kernel = nd(n, "kernel_shape", k, None, 1)?;
    let strides = nd(n, "strides", k, Some(1), 1)?;
    let dilations = nd(n, "dilations", k, Some(1), 1)?;
    let pads = nd_pads(n, &ir[1..], &kernel, &strides, &dilations)?;
    if n.attr_int_or("storage_order", 0)? != 0 {
        return Err(n.invalid("storage_order=1 is not supported"));
    }
    let p = PoolNd {
        kind,
        kernel,
        strides,
        pads,
        dilations,
        ceil_mode: n.attr_int_or("ceil_mode", 0)? != 0,
        count_include_pad: n.attr_int_or("count_include_pad", 0)? != 0,
    };
    Ok(vec![Val::Graph(add(ctx, n, TensorOp::Pool(p), vec![x])?)])
}

/// ConvTranspose with constant weights `[C, M/group, k…]` (explicit pads, `auto_pad`, or
/// `output_shape`).
pub(crate) fn conv_transpose(ctx: &mut Ctx, n: &NodeCx) -> Built {
    let x = n.graph_input(0, "X")?;
    let ir = ctx.ty(x).shape.clone();
    let w = n.required_const(1, "W")?;
    if w.shape.len() < 3 || w.shape.len() != ir.len() + 1 || w.shape[0] != ir[0] {
        return Err(n.invalid(format!(
            "W of shape {:?} does not fit the input {}",
            w.shape,
            show_shape(&ir)
        )));
    }
    let k = w.shape.len() - 2;
    let kernel = w.shape[2..].to_vec();
    if kernel.contains(&0) {
        return Err(n.invalid("W is empty"));
    }
    let strides = nd(n, "strides", k, Some(1), 1)?;
    let dilations = nd(n, "dilations", k, Some(1), 1)?;
    let mut output_padding = nd(n, "output_padding", k, Some(0), 0)?;
    let group = n.attr_int_or("group", 1)?;
    let groups = usize::try_from(group)
        .ok()
        .filter(|&g| g >= 1 && ir[0].is_multiple_of(g))
        .ok_or_else(|| n.invalid(format!("group {group} does not divide {} channels", ir[0])))?;
    // The full output size per axis before pads are removed.
    let full = |d: usize, op: usize| {
        strides[d] * (ir[d + 1] - 1) + op + (kernel[d] - 1) * dilations[d] + 1
    };
    let auto = n
        .attr_string("auto_pad")?
        .unwrap_or_else(|| "NOTSET".into());
    let output_shape = n.attr_ints("output_shape")?;
    let pads = if let Some(os) = output_shape {
        let os: Vec<usize> = match os.len() {
            l if l == k => os.iter().map(|&v| v.max(0) as usize).collect(),
            l if l == k + 2 => os[2..].iter().map(|&v| v.max(0) as usize).collect(),
            _ => return Err(n.invalid(format!("output_shape {os:?} does not have {k} values"))),
        };
        let mut p = vec![0; 2 * k];
        for d in 0..k {
            let f = full(d, output_padding[d]);
            if os[d] > f {
                // A larger output is reached with output padding at the end.
                output_padding[d] += os[d] - f;
                continue;
            }
            let total = f - os[d];
            (p[d], p[d + k]) = if auto == "SAME_LOWER" {
                (total - total / 2, total / 2)
            } else {
                (total / 2, total - total / 2)
            };
        }
        p
    } else {
        match auto.as_str() {
            "NOTSET" | "" => nd(n, "pads", 2 * k, Some(0), 0)?,
            "VALID" => vec![0; 2 * k],
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut p = vec![0; 2 * k];
                for d in 0..k {
                    let total = full(d, output_padding[d]).saturating_sub(ir[d + 1] * strides[d]);
                    (p[d], p[d + k]) = if auto == "SAME_UPPER" {
                        (total / 2, total - total / 2)
                    } else {
                        (total - total / 2, total / 2)
                    };
                }
                p
            }
            other => return Err(n.invalid(format!("auto_pad '{other}' is not supported"))),
        }
    };
    let m = w.shape[1] * groups;
    let bias = match n.const_input(2, "B")? {
        None => None,
        Some(b) if b.numel() == m => Some(ctx.constant(vec![m], b.to_f32())),
        Some(b) => {
            return Err(n.invalid(format!(
                "B has {} values, the output has {m} channels",
                b.numel()
            )))
        }
    };
    let weight = ctx.constant(w.shape.clone(), w.to_f32());
    let op = TensorOp::ConvTranspose(ConvTransposeNd {
        weight,
        bias,
        strides,
        pads,
        dilations,
        output_padding,
        groups,
    });
    Ok(vec![Val::Graph(add(ctx, n, op, vec![x])?)])
}

/// A constant operand of a node that otherwise reads graph values, as a per-sample node.
pub(crate) fn const_node(
    ctx: &mut Ctx,
    n: &NodeCx,
    c: &HostTensor,
    rank: usize,
) -> Result<NodeId, ImportError> {
    let (shape, values) = per_sample_const(n, c, rank)?;
    if shape.len() != rank {
        return Err(n.invalid(format!(
            "constant of shape {:?} does not have the graph operands' rank",
            c.shape
        )));
    }
    let value = ctx.constant(shape, values);
    add(ctx, n, TensorOp::Constant { value }, vec![])
}

/// Gather of a graph value along a per-sample axis with constant indices: one single-element
/// slice per index, concatenated along the axis, then reshaped to the indices' shape.
pub(crate) fn gather(ctx: &mut Ctx, n: &NodeCx) -> Built {
    let x = n.graph_input(0, "data")?;
    let ir = ctx.ty(x).shape.clone();
    let rank = ir.len() + 1;
    let idx = n.required_const(1, "indices")?;
    let ints = idx
        .ints()
        .ok_or_else(|| n.invalid("indices must be an integer tensor"))?
        .to_vec();
    let a = n.attr_int_or("axis", 0)?;
    let axis = norm_axis(a, rank)
        .ok_or_else(|| n.invalid(format!("axis {a} out of range for rank {rank}")))?;
    if axis == 0 {
        return Err(n.invalid("gathering along axis 0, the batch axis, is not supported"));
    }
    let ax = axis - 1;
    let d = ir[ax] as i64;
    if ints.is_empty() {
        return Err(n.invalid("no indices"));
    }
    let mut parts = Vec::with_capacity(ints.len());
    for &i in &ints {
        let j = if i < 0 { i + d } else { i };
        if !(0..d).contains(&j) {
            return Err(n.invalid(format!("index {i} out of range for size {d}")));
        }
        let mut counts = ir.clone();
        counts[ax] = 1;
        let mut starts = vec![0; ir.len()];
        starts[ax] = j as usize;
        let op = TensorOp::Slice {
            starts,
            steps: vec![1; ir.len()],
            counts,
        };
        parts.push(add(ctx, n, op, vec![x])?);
    }
    let cat = if parts.len() == 1 {
        parts[0]
    } else {
        ctx.add(n, Op::Concat { axis: ax }, parts, None)?
    };
    let mut shape = ir[..ax].to_vec();
    shape.extend_from_slice(&idx.shape);
    shape.extend_from_slice(&ir[ax + 1..]);
    Ok(vec![Val::Graph(ctx.reshape(n, cat, shape)?)])
}
