//! Gemm and MatMul with a constant weight → [`Op::Dense`] (`y = W x + b`, `W: [out, in]`).
//!
//! The graph operand is `[N, K]` (per sample `[K]`); the constant operand is transposed and
//! scaled into the IR's row-major `[out, in]` layout at import, so the chip never transposes.
//! A bias added by a later Add is folded in by the element-wise builder.

use super::ctx::{show_shape, Ctx, NodeCx, Val};
use super::tensor::{broadcast_shape, broadcast_src};
use super::ImportError;
use nmc_ir::Op;

type Built = Result<Vec<Val>, ImportError>;

/// The per-sample input length `K` of a graph operand that must be `[N, K]`.
fn vector_len(ctx: &Ctx, n: &NodeCx, x: nmc_ir::NodeId) -> Result<usize, ImportError> {
    match ctx.ty(x).shape.as_slice() {
        [k] => Ok(*k),
        s => Err(n.invalid(format!("input A must be 2-D [N, K], is {}", show_shape(s)))),
    }
}

pub(crate) fn gemm(ctx: &mut Ctx, n: &NodeCx) -> Built {
    if matches!(n.input(0), Some(Val::Const(_))) {
        return Err(
            n.invalid("A is a constant and B is not; only a constant B (the weight) is supported")
        );
    }
    let a = n.graph_input(0, "A")?;
    if n.attr_int_or("transA", 0)? != 0 {
        return Err(n.invalid("transA=1 on the graph operand is not supported"));
    }
    let trans_b = n.attr_int_or("transB", 0)? != 0;
    let alpha = n.attr_float("alpha")?.unwrap_or(1.0);
    let beta = n.attr_float("beta")?.unwrap_or(1.0);
    let k = vector_len(ctx, n, a)?;
    let b = n.required_const(1, "B")?;
    let &[r, c] = b.shape.as_slice() else {
        return Err(n.invalid(format!("B must be 2-D, has shape {:?}", b.shape)));
    };
    let (bk, m) = if trans_b { (c, r) } else { (r, c) };
    if m == 0 {
        return Err(n.invalid("B has no output columns"));
    }
    if bk != k {
        return Err(n.invalid(format!(
            "A has {k} columns but B{} has {bk} rows",
            if trans_b { "ᵀ" } else { "" }
        )));
    }
    let bv = b.to_f32();
    // PyTorch's Linear exports transB = 1, alpha = 1: B is already the weight, row-major.
    let w: Vec<f32> = if trans_b && alpha == 1.0 {
        bv
    } else {
        (0..m * k)
            .map(|i| {
                let (o, j) = (i / k, i % k);
                alpha
                    * if trans_b {
                        bv[o * k + j]
                    } else {
                        bv[j * m + o]
                    }
            })
            .collect()
    };
    let bias = match n.const_input(2, "C")? {
        Some(cst) if beta != 0.0 => {
            if broadcast_shape(&cst.shape, &[1, m]).as_deref() != Some(&[1, m][..]) {
                return Err(n.invalid(format!(
                    "C of shape {:?} does not broadcast to one row of {m} outputs",
                    cst.shape
                )));
            }
            let cv = cst.to_f32();
            let vals = broadcast_src(&cst.shape, &[1, m])
                .into_iter()
                .map(|i| beta * cv[i])
                .collect();
            Some(ctx.constant(vec![m], vals))
        }
        _ => None,
    };
    let weight = ctx.constant(vec![m, k], w);
    Ok(vec![Val::Graph(ctx.add(
        n,
        Op::Dense { weight, bias },
        vec![a],
        None,
    )?)])
}

pub(crate) fn matmul(ctx: &mut Ctx, n: &NodeCx) -> Built {
    if matches!(n.input(0), Some(Val::Const(_))) {
        return Err(
            n.invalid("A is a constant and B is not; only a constant B (the weight) is supported")
        );
    }
    let a = n.graph_input(0, "A")?;
    let b = n.required_const(1, "B")?;
    // A vector per sample times a matrix is a dense layer; any other ranks are a batched
    // product that `eval` computes (numpy semantics) and no chip runs.
    let (&[k], &[bk, m]) = (ctx.ty(a).shape.as_slice(), b.shape.as_slice()) else {
        return super::tensor_ops::matmul(ctx, n);
    };
    if bk != k {
        return Err(n.invalid(format!("A has {k} columns but B has {bk} rows")));
    }
    if m == 0 {
        return Err(n.invalid("B has no output columns"));
    }
    let bv = b.to_f32();
    let w: Vec<f32> = (0..m * k).map(|i| bv[(i % k) * m + i / k]).collect();
    let weight = ctx.constant(vec![m, k], w);
    let op = Op::Dense { weight, bias: None };
    Ok(vec![Val::Graph(ctx.add(n, op, vec![a], None)?)])
}
