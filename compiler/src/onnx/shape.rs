//! Shape ops (Shape, Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Identity, Dropout)
//! on graph values, plus the shape arithmetic shared with their constant folds.
//!
//! A graph value's ONNX shape is `[batch] ++ per-sample shape`. Views are resolved on that full
//! shape (with the batch as 1, or its static size) and accepted only when the batch axis stays
//! the leading axis of its own; the IR result is the per-sample remainder. An op that would move
//! or merge the batch axis is invalid: the chip sees one sample at a time.

use super::ctx::{norm_axis, show_shape, Ctx, NodeCx, Val};
use super::tensor::{checked_numel, HostTensor};
use super::ImportError;
use nmc_ir::limits::shape_text;
use nmc_ir::{NodeId, Op};
use std::rc::Rc;

/// Output shape of ONNX Reshape: `0` copies the input dim (unless `allowzero`), `-1` is inferred.
pub(crate) fn resolve_reshape(
    input: &[usize],
    target: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>, String> {
    let numel: usize = input.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer.is_some() => return Err(format!("shape {target:?} has two -1 entries")),
            -1 => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(*input.get(i).ok_or_else(|| {
                format!("shape {target:?} copies axis {i}, which the input lacks")
            })?),
            t if t >= 0 => out.push(t as usize),
            t => return Err(format!("shape {target:?} has the negative entry {t}")),
        }
    }
    let known = out
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("shape {} is too large", shape_text(target)))?;
    if let Some(i) = infer {
        if known == 0 || !numel.is_multiple_of(known) {
            return Err(format!(
                "cannot infer the -1 of {target:?} for {numel} elements"
            ));
        }
        out[i] = numel / known;
    } else if known != numel {
        return Err(format!(
            "shape {target:?} has {known} elements, the input {input:?} has {numel}"
        ));
    }
    if checked_numel(&out).is_none() {
        return Err(format!("shape {} is too large", shape_text(target)));
    }
    Ok(out)
}

/// Output shape of Unsqueeze: `axes` refer to the output rank.
pub(crate) fn unsqueeze_shape(shape: &[usize], axes: &[i64]) -> Result<Vec<usize>, String> {
    let rank = shape.len() + axes.len();
    let mut ins = vec![false; rank];
    for &a in axes {
        let a =
            norm_axis(a, rank).ok_or_else(|| format!("axis {a} out of range for rank {rank}"))?;
        if std::mem::replace(&mut ins[a], true) {
            return Err(format!("axis {a} given twice"));
        }
    }
    let mut it = shape.iter();
    Ok(ins
        .iter()
        .map(|&new| if new { 1 } else { *it.next().expect("rank") })
        .collect())
}

/// Output shape of Squeeze: the listed axes (which must be 1), or every axis of size 1.
pub(crate) fn squeeze_shape(shape: &[usize], axes: Option<&[i64]>) -> Result<Vec<usize>, String> {
    let Some(axes) = axes else {
        return Ok(shape.iter().copied().filter(|&d| d != 1).collect());
    };
    let mut drop = vec![false; shape.len()];
    for &a in axes {
        let i = norm_axis(a, shape.len())
            .ok_or_else(|| format!("axis {a} out of range for rank {}", shape.len()))?;
        if shape[i] != 1 {
            return Err(format!("axis {a} has size {}, not 1", shape[i]));
        }
        drop[i] = true;
    }
    Ok(shape
        .iter()
        .zip(&drop)
        .filter(|(_, d)| !**d)
        .map(|(s, _)| *s)
        .collect())
}

/// Flatten's split point: `axis` in `[-rank, rank]`.
pub(crate) fn flatten_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..=r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {axis} out of range for rank {rank}"))
    }
}

/// Transpose's permutation: the `perm` attribute (default: reversed axes), validated.
pub(crate) fn perm(n: &NodeCx, rank: usize) -> Result<Vec<usize>, ImportError> {
    let p: Vec<usize> = match n.attr_ints("perm")? {
        None => (0..rank).rev().collect(),
        Some(v) => v
            .iter()
            .map(|&a| norm_axis(a, rank))
            .collect::<Option<_>>()
            .ok_or_else(|| n.invalid(format!("perm {v:?} out of range for rank {rank}")))?,
    };
    let mut sorted = p.clone();
    sorted.sort_unstable();
    if sorted != (0..rank).collect::<Vec<_>>() {
        return Err(n.invalid(format!("perm {p:?} is not a permutation of {rank} axes")));
    }
    Ok(p)
}

/// Squeeze/Unsqueeze axes: attribute before opset 13, input since.
pub(crate) fn axes(n: &NodeCx) -> Result<Option<Vec<i64>>, ImportError> {
    n.ints_attr_or_input("axes", 1, 13)
}

/// Per-sample result of a view computed on the full ONNX shape `out`: the batch must remain
/// the leading axis unchanged.
fn per_sample(ctx: &Ctx, n: &NodeCx, out: Vec<usize>) -> Result<Vec<usize>, ImportError> {
    match out.split_first() {
        Some((&b, rest)) if b == ctx.batch() => Ok(rest.to_vec()),
        _ => Err(n.invalid(format!(
            "the result {out:?} does not keep the batch axis as the first axis (the batch axis is the sample axis and cannot be reshaped)"
        ))),
    }
}

/// Pass-through (Identity, Dropout at inference): the output is the input value.
pub(crate) fn identity(ctx: &mut Ctx, n: &NodeCx) -> Result<Vec<Val>, ImportError> {
    match n.required(0, "input")? {
        Val::Graph(id) => Ok(pass_through(ctx, *id)),
        v => Ok(vec![v.clone()]),
    }
}

/// The node's result is its graph operand `x` itself: the node's read of `x` is replaced by the
/// readers of its output, so `x` keeps an exact reader count.
pub(crate) fn pass_through(ctx: &mut Ctx, x: NodeId) -> Vec<Val> {
    ctx.uses[x.index()] = ctx.uses[x.index()].saturating_sub(1);
    vec![Val::Graph(x)]
}

/// Shape of a constant, or of a graph value with the batch axis as its (static or unit) size.
pub(crate) fn shape(ctx: &mut Ctx, n: &NodeCx) -> Result<Vec<Val>, ImportError> {
    let full = match n.required(0, "data")? {
        Val::Const(t) => t.shape.clone(),
        Val::Graph(id) => ctx.onnx_shape(*id),
        Val::Quantized(q) => ctx.onnx_shape(q.src),
    };
    let r = full.len() as i64;
    let clampi = |v: i64| (if v < 0 { v.saturating_add(r) } else { v }).clamp(0, r) as usize;
    let (mut start, mut end) = (0, full.len());
    if n.opset >= 15 {
        start = clampi(n.attr_int_or("start", 0)?);
        end = clampi(n.attr_int_or("end", r)?);
    }
    let dims: Vec<i64> = full[start..end.max(start)]
        .iter()
        .map(|&d| d as i64)
        .collect();
    Ok(vec![Val::Const(Rc::new(HostTensor::i64(
        vec![dims.len()],
        dims,
    )))])
}

pub(crate) fn reshape(ctx: &mut Ctx, n: &NodeCx) -> Result<Vec<Val>, ImportError> {
    let x = n.graph_input(0, "data")?;
    let target = n.ints_attr_or_input("shape", 1, 5)?.ok_or_else(|| {
        n.invalid("the target shape is required (input 1; attribute before opset 5)")
    })?;
    let allowzero = n.attr_int_or("allowzero", 0)? != 0;
    let full = ctx.onnx_shape(x);
    let out = resolve_reshape(&full, &target, allowzero).map_err(|m| n.invalid(m))?;
    let ir = per_sample(ctx, n, out)?;
    Ok(vec![Val::Graph(ctx.reshape(n, x, ir)?)])
}

pub(crate) fn flatten(ctx: &mut Ctx, n: &NodeCx) -> Result<Vec<Val>, ImportError> {
    let x = n.graph_input(0, "input")?;
    let rank = ctx.ty(x).shape.len() + 1;
    let axis = flatten_axis(n.attr_int_or("axis", 1)?, rank).map_err(|m| n.invalid(m))?;
    if axis != 1 {
        return Err(n.invalid(format!(
            "axis {axis} would merge the batch axis with other axes; only axis 1 is supported for graph values"
        )));
    }
    let numel = ctx.ty(x).numel();
    Ok(vec![Val::Graph(ctx.reshape(n, x, vec![numel])?)])
}

pub(crate) fn squeeze(ctx: &mut Ctx, n: &NodeCx) -> Result<Vec<Val>, ImportError> {
    let x = n.graph_input(0, "data")?;
    let ir = ctx.ty(x).shape.clone();
    let out = match axes(n)? {
        None => squeeze_shape(&ir, None).map_err(|m| n.invalid(m))?,
        Some(a) => {
            let rank = ir.len() + 1;
            if a.iter().any(|&a| norm_axis(a, rank) == Some(0)) {
                return Err(n.invalid("cannot squeeze axis 0, the batch axis"));
            }
            per_sample(
                ctx,
                n,
                squeeze_shape(&ctx.onnx_shape(x), Some(&a)).map_err(|m| n.invalid(m))?,
            )?
        }
    };
    Ok(vec![Val::Graph(ctx.reshape(n, x, out)?)])
}

pub(crate) fn unsqueeze(ctx: &mut Ctx, n: &NodeCx) -> Result<Vec<Val>, ImportError> {
    let x = n.graph_input(0, "data")?;
    let a = axes(n)?.ok_or_else(|| n.invalid("axes are required"))?;
    let rank = ctx.ty(x).shape.len() + 1 + a.len();
    if a.iter().any(|&a| norm_axis(a, rank) == Some(0)) {
        return Err(n.invalid("cannot insert an axis before the batch axis (axis 0)"));
    }
    let out = unsqueeze_shape(&ctx.onnx_shape(x), &a).map_err(|m| n.invalid(m))?;
    let ir = per_sample(ctx, n, out)?;
    Ok(vec![Val::Graph(ctx.reshape(n, x, ir)?)])
}

pub(crate) fn transpose(ctx: &mut Ctx, n: &NodeCx) -> Result<Vec<Val>, ImportError> {
    let x = n.graph_input(0, "data")?;
    let rank = ctx.ty(x).shape.len() + 1;
    let p = perm(n, rank)?;
    if p[0] != 0 {
        return Err(n.invalid(format!(
            "perm {p:?} moves the batch axis; perm[0] must be 0"
        )));
    }
    let per: Vec<usize> = p[1..].iter().map(|&a| a - 1).collect();
    if per.iter().enumerate().all(|(i, &a)| i == a) {
        return Ok(pass_through(ctx, x));
    }
    Ok(vec![Val::Graph(ctx.add(
        n,
        Op::Transpose { perm: per },
        vec![x],
        None,
    )?)])
}

pub(crate) fn concat(ctx: &mut Ctx, n: &NodeCx) -> Result<Vec<Val>, ImportError> {
    // Constant operands become per-sample constant nodes (they must not vary by sample).
    let rank_of = |ctx: &Ctx| {
        n.inputs.iter().flatten().find_map(|v| match v {
            Val::Graph(id) => Some(ctx.ty(*id).shape.len()),
            _ => None,
        })
    };
    let Some(graph_rank) = rank_of(ctx) else {
        return Err(n.invalid("no graph operand"));
    };
    let mut ids: Vec<NodeId> = Vec::new();
    for k in 0..n.inputs.len() {
        ids.push(match n.required(k, "input")? {
            Val::Const(c) => super::tensor_ops::const_node(ctx, n, c, graph_rank)?,
            _ => n.graph_input(k, "input")?,
        });
    }
    let Some(&first) = ids.first() else {
        return Err(n.invalid("no inputs"));
    };
    let rank = ctx.ty(first).shape.len() + 1;
    // Concat-1 to -3 default to axis 1; the attribute is required since opset 4.
    let a = match n.attr_int("axis")? {
        Some(a) => a,
        None if n.opset < 4 => 1,
        None => return Err(n.invalid("attribute 'axis' is required")),
    };
    let axis = norm_axis(a, rank)
        .ok_or_else(|| n.invalid(format!("axis {a} out of range for rank {rank}")))?;
    if axis == 0 {
        return Err(n.invalid("cannot concatenate along axis 0, the batch axis"));
    }
    if ids.len() == 1 {
        return Ok(pass_through(ctx, first));
    }
    let shapes: Vec<String> = ids.iter().map(|&i| show_shape(&ctx.ty(i).shape)).collect();
    let id = ctx
        .add(n, Op::Concat { axis: axis - 1 }, ids, None)
        .map_err(|_| {
            n.invalid(format!(
                "cannot concatenate {} along axis {axis}",
                shapes.join(", ")
            ))
        })?;
    if checked_numel(&ctx.ty(id).shape).is_none() {
        return Err(n.invalid("result too large"));
    }
    Ok(vec![Val::Graph(id)])
}
