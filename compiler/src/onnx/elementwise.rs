//! Element-wise ops on graph values: Add/Sub/Mul/Div, Relu, Clip, BatchNormalization and
//! Softmax/LogSoftmax.
//!
//! Arithmetic with a constant becomes a per-channel affine map, because that is what a
//! neuromorphic core can absorb (into a bias or a neuron's scale). When the graph operand is a
//! Dense or Conv2d read by nothing else, an added constant goes straight into its bias; an
//! affine map after another single-use affine map is merged with it. Arithmetic whose constant
//! varies inside a channel has no such form and is rejected.

use super::ctx::{norm_axis, show_shape, Ctx, NodeCx, Val};
use super::shape::pass_through;
use super::tensor::{broadcast_shape, broadcast_src, HostTensor};
use super::ImportError;
use nmc_ir::{Activation, NodeId, Op};

type Built = Result<Vec<Val>, ImportError>;

/// The constant `c` as one value per channel (axis 0 of the per-sample shape) of `x`, when `c`
/// broadcasts to `x` without changing its shape and is uniform within each channel.
fn per_channel(ctx: &Ctx, n: &NodeCx, x: NodeId, c: &HostTensor) -> Result<Vec<f32>, ImportError> {
    let ir = ctx.ty(x).shape.clone();
    let Some(&channels) = ir.first().filter(|&&c| c > 0) else {
        return Err(n.invalid("the graph operand is a scalar per sample; it needs a channel axis"));
    };
    let mut full = vec![1];
    full.extend_from_slice(&ir);
    if broadcast_shape(&c.shape, &full).as_deref() != Some(&full[..]) {
        return Err(n.invalid(format!(
            "constant of shape {:?} does not broadcast to the graph operand's shape {} without changing it",
            c.shape,
            show_shape(&ir)
        )));
    }
    let vals = c.to_f32();
    let src = broadcast_src(&c.shape, &full);
    let per = src.len() / channels;
    let mut out = Vec::with_capacity(channels);
    for ch in src.chunks(per) {
        let v = vals[ch[0]];
        if ch.iter().any(|&i| vals[i].to_bits() != v.to_bits()) {
            return Err(n.invalid(format!(
                "constant of shape {:?} varies within a channel of {}; only per-channel or scalar constants are supported",
                c.shape,
                show_shape(&ir)
            )));
        }
        out.push(v);
    }
    Ok(out)
}

/// Add/Sub/Mul/Div where at least one operand is a graph value.
///
/// The forms a neuromorphic core absorbs (Add of equal shapes, a per-channel constant) become
/// [`Op::Add`] and per-channel affine maps; any other broadcasting becomes a float
/// [`nmc_ir::TensorOp::Binary`] that `eval` computes and no chip runs.
pub(crate) fn binary(ctx: &mut Ctx, n: &NodeCx) -> Built {
    let a = n.required(0, "A")?.clone();
    let b = n.required(1, "B")?.clone();
    let b = super::tensor_ops::old_broadcast(ctx, n, &a, b)?;
    let kind = match n.op() {
        "Add" => nmc_ir::BinKind::Add,
        "Sub" => nmc_ir::BinKind::Sub,
        "Mul" => nmc_ir::BinKind::Mul,
        _ => nmc_ir::BinKind::Div,
    };
    let general = |ctx: &mut Ctx| -> Built {
        Ok(vec![Val::Graph(super::tensor_ops::binary_vals(
            ctx, n, kind, &a, &b,
        )?)])
    };
    match (&a, &b) {
        (Val::Graph(x), Val::Graph(y)) => {
            if n.op() == "Add" && ctx.ty(*x) == ctx.ty(*y) {
                Ok(vec![Val::Graph(ctx.add(n, Op::Add, vec![*x, *y], None)?)])
            } else {
                general(ctx)
            }
        }
        (Val::Graph(x), Val::Const(c)) | (Val::Const(c), Val::Graph(x)) => {
            let const_first = matches!(a, Val::Const(_));
            // A constant divided by a graph value, or a division by zero (IEEE infinities), has
            // no per-channel affine form.
            let affine_form = per_channel(ctx, n, *x, c)
                .ok()
                .filter(|v| n.op() != "Div" || (!const_first && !v.contains(&0.0)));
            match affine_form {
                Some(v) => with_const(ctx, n, *x, v, const_first),
                None => general(ctx),
            }
        }
        _ => Err(n.invalid("unsupported operand combination")),
    }
}

fn with_const(ctx: &mut Ctx, n: &NodeCx, x: NodeId, v: Vec<f32>, const_first: bool) -> Built {
    let ones = vec![1.0; v.len()];
    let zeros = vec![0.0; v.len()];
    let (scale, shift) = match (n.op(), const_first) {
        ("Add", _) => (ones, v),
        ("Sub", false) => (ones, v.iter().map(|s| -s).collect()),
        ("Sub", true) => (ones.iter().map(|s| -s).collect(), v),
        ("Mul", _) => (v, zeros),
        ("Div", false) => {
            if v.contains(&0.0) {
                return Err(n.invalid("division by zero"));
            }
            (v.iter().map(|d| 1.0 / d).collect(), zeros)
        }
        _ => return Err(n.invalid("division of a constant by a graph value is not supported")),
    };
    affine(ctx, n, x, scale, shift)
}

/// `y = x · scale[c] + shift[c]`, folded into the producer of `x` when that is exact and the
/// producer has no other reader.
pub(crate) fn affine(
    ctx: &mut Ctx,
    n: &NodeCx,
    x: NodeId,
    scale: Vec<f32>,
    shift: Vec<f32>,
) -> Built {
    let unit_scale = scale.iter().all(|&s| s == 1.0);
    if unit_scale && shift.iter().all(|&t| t == 0.0) {
        return Ok(pass_through(ctx, x));
    }
    if ctx.uses[x.index()] == 1 {
        let producer = ctx.graph.node(x).clone();
        let merged = match producer.op {
            Op::Dense { weight, bias } if unit_scale => {
                let bias = Some(add_bias(ctx, bias, &shift));
                Some(Op::Dense { weight, bias })
            }
            Op::Conv2d { weight, bias, geom } if unit_scale => {
                let bias = Some(add_bias(ctx, bias, &shift));
                Some(Op::Conv2d { weight, bias, geom })
            }
            Op::ChannelAffine {
                scale: s1,
                shift: t1,
            } => {
                let (s1, t1) = (ctx.const_values(s1), ctx.const_values(t1));
                let s: Vec<f32> = s1.iter().zip(&scale).map(|(a, b)| a * b).collect();
                let t: Vec<f32> = t1
                    .iter()
                    .zip(&scale)
                    .zip(&shift)
                    .map(|((t, s), u)| t * s + u)
                    .collect();
                let len = s.len();
                Some(Op::ChannelAffine {
                    scale: ctx.constant(vec![len], s),
                    shift: ctx.constant(vec![len], t),
                })
            }
            _ => None,
        };
        if let Some(op) = merged {
            let id = ctx.add(n, op, producer.inputs.clone(), producer.name.clone())?;
            return Ok(vec![Val::Graph(id)]);
        }
    }
    let len = scale.len();
    let op = Op::ChannelAffine {
        scale: ctx.constant(vec![len], scale),
        shift: ctx.constant(vec![len], shift),
    };
    Ok(vec![Val::Graph(ctx.add(n, op, vec![x], None)?)])
}

fn add_bias(ctx: &mut Ctx, bias: Option<nmc_ir::ConstId>, shift: &[f32]) -> nmc_ir::ConstId {
    let old = bias
        .map(|b| ctx.const_values(b))
        .unwrap_or_else(|| vec![0.0; shift.len()]);
    let new = old.iter().zip(shift).map(|(a, b)| a + b).collect();
    ctx.constant(vec![shift.len()], new)
}

pub(crate) fn relu(ctx: &mut Ctx, n: &NodeCx) -> Built {
    let x = n.graph_input(0, "X")?;
    Ok(vec![Val::Graph(ctx.add(
        n,
        Op::Act(Activation::Relu),
        vec![x],
        None,
    )?)])
}

/// Clip: bounds are attributes before opset 11 and optional constant inputs since; an absent
/// bound is the float range's end. `Clip(0, ∞)` is a ReLU.
pub(crate) fn clip(ctx: &mut Ctx, n: &NodeCx) -> Built {
    let x = n.graph_input(0, "input")?;
    let (lo, hi) = if n.opset < 11 {
        (n.attr_float("min")?, n.attr_float("max")?)
    } else {
        (n.scalar_input(1, "min")?, n.scalar_input(2, "max")?)
    };
    let lo = lo.unwrap_or(f32::MIN);
    let hi = hi.unwrap_or(f32::MAX);
    if lo.is_nan() || hi.is_nan() {
        return Err(n.invalid("bounds must not be NaN"));
    }
    let act = if lo == 0.0 && hi >= f32::MAX {
        Activation::Relu
    } else {
        Activation::Clip {
            lo: lo.max(f32::MIN),
            hi: hi.min(f32::MAX),
        }
    };
    Ok(vec![Val::Graph(ctx.add(n, Op::Act(act), vec![x], None)?)])
}

/// Inference-mode BatchNormalization as a per-channel affine map.
pub(crate) fn batch_norm(ctx: &mut Ctx, n: &NodeCx) -> Built {
    let x = n.graph_input(0, "X")?;
    if n.attr_int_or("training_mode", 0)? != 0 {
        return Err(n.invalid("training mode is not supported"));
    }
    let eps = n.attr_float("epsilon")?.unwrap_or(1e-5);
    let channels = *ctx
        .ty(x)
        .shape
        .first()
        .ok_or_else(|| n.invalid("input has no channel axis"))?;
    let param = |k: usize, what: &str| -> Result<Vec<f32>, ImportError> {
        let t = n.required_const(k, what)?;
        if t.numel() != channels {
            return Err(n.invalid(format!(
                "{what} has {} values, the input has {channels} channels",
                t.numel()
            )));
        }
        Ok(t.to_f32())
    };
    let (gamma, beta, mean, var) = (
        param(1, "scale")?,
        param(2, "B")?,
        param(3, "input_mean")?,
        param(4, "input_var")?,
    );
    if let Some(c) = var
        .iter()
        .position(|v| (v + eps).is_nan() || v + eps <= 0.0)
    {
        return Err(n.invalid(format!(
            "input_var + epsilon is {} at channel {c}: the variance of a batch norm must be positive",
            var[c] + eps
        )));
    }
    let scale: Vec<f32> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + eps).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(&mean)
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    affine(ctx, n, x, scale, shift)
}

/// Softmax / LogSoftmax. Before opset 13 the op works on the input flattened to 2-D at `axis`
/// (default 1); since 13 on one axis (default -1). Both mean the class axis of an `[N, K]` input.
pub(crate) fn softmax(ctx: &mut Ctx, n: &NodeCx) -> Built {
    let x = n.graph_input(0, "input")?;
    let log = n.op() == "LogSoftmax";
    let ir = ctx.ty(x).shape.clone();
    let rank = ir.len() + 1;
    let default = if n.opset < 13 { 1 } else { -1 };
    let a = n.attr_int_or("axis", default)?;
    let axis = norm_axis(a, rank)
        .ok_or_else(|| n.invalid(format!("axis {a} out of range for rank {rank}")))?;
    if axis == 0 {
        return Err(n.invalid("softmax over the batch axis is not supported"));
    }
    if n.opset >= 13 || axis == rank - 1 {
        let op = Op::Softmax {
            axis: axis - 1,
            log,
        };
        return Ok(vec![Val::Graph(ctx.add(n, op, vec![x], None)?)]);
    }
    // Old semantics: softmax over all axes from `axis` on, flattened.
    let mut flat = ir[..axis - 1].to_vec();
    flat.push(ir[axis - 1..].iter().product());
    let r = ctx.reshape(n, x, flat)?;
    let op = Op::Softmax {
        axis: axis - 1,
        log,
    };
    let s = ctx.add(n, op, vec![r], None)?;
    Ok(vec![Val::Graph(ctx.reshape(n, s, ir)?)])
}
