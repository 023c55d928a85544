//! Pooling → [`Op::Pool2d`]: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool and
//! ReduceMean over the spatial axes (what `AdaptiveAvgPool2d(1)` / `mean(dim=(2, 3))` export to).
//!
//! The IR has floor-mode output sizes only; `ceil_mode=1` is accepted when it gives the same
//! size (the common case for even inputs), otherwise rejected rather than silently changed.

use super::conv::{chw, pads, pair};
use super::ctx::{norm_axis, Ctx, NodeCx, Val};
use super::ImportError;
use nmc_ir::{Op, Pool, PoolKind};

type Built = Result<Vec<Val>, ImportError>;

fn windowed(ctx: &mut Ctx, n: &NodeCx, kind: PoolKind) -> Built {
    let x = n.graph_input(0, "X")?;
    let [_, h, w] = chw(ctx, n, x)?;
    let kernel = pair(n, "kernel_shape", None, 1)?;
    let strides = pair(n, "strides", Some(1), 1)?;
    if pair(n, "dilations", Some(1), 1)? != [1, 1] {
        return Err(n.invalid("dilated pooling is not supported"));
    }
    let pads = pads(n, [h, w], kernel, strides, [1, 1])?;
    let count_include_pad = n.attr_int_or("count_include_pad", 0)? != 0;
    let pool = Pool {
        kind,
        kernel,
        strides,
        pads,
        count_include_pad,
    };
    let (oh, ow) = pool.out_hw(h, w).ok_or_else(|| {
        n.invalid(format!(
            "window {kernel:?} with pads {pads:?} does not fit the {h}×{w} input"
        ))
    })?;
    let explicit = matches!(
        n.attr_string("auto_pad")?.as_deref(),
        None | Some("NOTSET") | Some("")
    );
    if explicit && n.attr_int_or("ceil_mode", 0)? != 0 {
        let ceil = |d: usize, size: usize| {
            let padded = size + pads[d] + pads[d + 2];
            let mut out = (padded - kernel[d]).div_ceil(strides[d]) + 1;
            // The last window must start inside the input or its leading padding.
            if (out - 1) * strides[d] >= size + pads[d] {
                out -= 1;
            }
            out
        };
        if (ceil(0, h), ceil(1, w)) != (oh, ow) {
            return Err(n.invalid(format!(
                "ceil_mode=1 gives a {}×{} output where floor mode gives {oh}×{ow}; only the floor size is supported",
                ceil(0, h),
                ceil(1, w)
            )));
        }
    }
    Ok(vec![Val::Graph(ctx.add(
        n,
        Op::Pool2d(pool),
        vec![x],
        None,
    )?)])
}

/// 2-D pooling that a chip can run becomes [`Op::Pool2d`]; other forms (1-D or 3-D windows,
/// dilations, a `ceil_mode` that changes the size) a float N-d pool that `eval` computes.
pub(crate) fn max_pool(ctx: &mut Ctx, n: &NodeCx) -> Built {
    windowed(ctx, n, PoolKind::Max).or_else(|_| super::tensor_ops::pool_nd(ctx, n, PoolKind::Max))
}

pub(crate) fn average_pool(ctx: &mut Ctx, n: &NodeCx) -> Built {
    windowed(ctx, n, PoolKind::Avg).or_else(|_| super::tensor_ops::pool_nd(ctx, n, PoolKind::Avg))
}

/// A pool whose window is the whole `H × W` plane (output `[C, 1, 1]`).
fn global(ctx: &mut Ctx, n: &NodeCx, kind: PoolKind) -> Result<nmc_ir::NodeId, ImportError> {
    let x = n.graph_input(0, "X")?;
    let [_, h, w] = chw(ctx, n, x)?;
    let pool = Pool {
        kind,
        kernel: [h, w],
        strides: [1, 1],
        pads: [0; 4],
        count_include_pad: false,
    };
    ctx.add(n, Op::Pool2d(pool), vec![x], None)
}

pub(crate) fn global_average_pool(ctx: &mut Ctx, n: &NodeCx) -> Built {
    Ok(vec![Val::Graph(global(ctx, n, PoolKind::Avg)?)])
}

pub(crate) fn global_max_pool(ctx: &mut Ctx, n: &NodeCx) -> Built {
    Ok(vec![Val::Graph(global(ctx, n, PoolKind::Max)?)])
}

/// ReduceMean over axes {2, 3} of an NCHW value (axes attribute before opset 18, input since)
/// is a global average pool; other axes a float reduction.
pub(crate) fn reduce_mean(ctx: &mut Ctx, n: &NodeCx) -> Built {
    spatial_mean(ctx, n).or_else(|_| super::tensor_ops::reduce(ctx, n))
}

fn spatial_mean(ctx: &mut Ctx, n: &NodeCx) -> Built {
    let x = n.graph_input(0, "data")?;
    let [c, _, _] = chw(ctx, n, x)?;
    let axes = n.ints_attr_or_input("axes", 1, 18)?;
    let axes = match axes {
        Some(a) if !a.is_empty() => a,
        _ if n.opset >= 18 && n.attr_int_or("noop_with_empty_axes", 0)? != 0 => {
            return Ok(super::shape::pass_through(ctx, x));
        }
        _ => return Err(n.invalid("reducing over all axes includes the batch axis")),
    };
    let mut norm: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, 4))
        .collect::<Option<_>>()
        .ok_or_else(|| n.invalid(format!("axes {axes:?} out of range for rank 4")))?;
    norm.sort_unstable();
    if norm != [2, 3] {
        return Err(n.invalid(format!(
            "axes {axes:?}: only the spatial axes [2, 3] of an NCHW value are supported"
        )));
    }
    let pooled = global(ctx, n, PoolKind::Avg)?;
    if n.attr_int_or("keepdims", 1)? != 0 {
        return Ok(vec![Val::Graph(pooled)]);
    }
    Ok(vec![Val::Graph(ctx.reshape(n, pooled, vec![c])?)])
}
