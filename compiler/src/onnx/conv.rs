//! Conv (2-D) → [`Op::Conv2d`], and the window geometry (kernel, strides, dilations, explicit or
//! `auto_pad` padding) shared with pooling.
//!
//! `SAME_*` padding depends on the input size, which the importer knows statically, so it is
//! resolved into explicit pads here and the IR only has explicit pads.

use super::ctx::{show_shape, Ctx, NodeCx, Val};
use super::ImportError;
use nmc_ir::{ConvGeom, Op};

/// Largest kernel, stride, dilation or pad accepted; keeps window arithmetic far from overflow.
const MAX_GEOM: i64 = 1 << 20;

/// A two-entry integer attribute (`[h, w]`), each in `min..=MAX_GEOM`.
pub(crate) fn pair(
    n: &NodeCx,
    name: &str,
    default: Option<usize>,
    min: i64,
) -> Result<[usize; 2], ImportError> {
    match n.attr_ints(name)? {
        None => default
            .map(|d| [d, d])
            .ok_or_else(|| n.invalid(format!("attribute '{name}' is required"))),
        Some(v) => match v.as_slice() {
            &[h, w] if (min..=MAX_GEOM).contains(&h) && (min..=MAX_GEOM).contains(&w) => {
                Ok([h as usize, w as usize])
            }
            _ => Err(n.invalid(format!(
                "attribute '{name}' must be two values in {min}..={MAX_GEOM} (2-D), is {v:?}"
            ))),
        },
    }
}

/// Padding (top, left, bottom, right) from `auto_pad` or `pads` for input `hw`.
pub(crate) fn pads(
    n: &NodeCx,
    hw: [usize; 2],
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
) -> Result<[usize; 4], ImportError> {
    let auto = n
        .attr_string("auto_pad")?
        .unwrap_or_else(|| "NOTSET".into());
    let explicit = n.attr_ints("pads")?;
    match auto.as_str() {
        "NOTSET" | "" => match explicit {
            None => Ok([0; 4]),
            Some(p) => match p.as_slice() {
                &[t, l, b, r] if [t, l, b, r].iter().all(|v| (0..=MAX_GEOM).contains(v)) => {
                    Ok([t as usize, l as usize, b as usize, r as usize])
                }
                _ => Err(n.invalid(format!(
                    "pads must be four values in 0..={MAX_GEOM} (2-D), is {p:?}"
                ))),
            },
        },
        "VALID" => Ok([0; 4]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut begin = [0; 2];
            let mut end = [0; 2];
            for d in 0..2 {
                let out = hw[d].div_ceil(strides[d]);
                let eff = dilations[d] * (kernel[d] - 1) + 1;
                let total = ((out - 1) * strides[d] + eff).saturating_sub(hw[d]);
                let small = total / 2;
                (begin[d], end[d]) = if auto == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
            }
            Ok([begin[0], begin[1], end[0], end[1]])
        }
        other => Err(n.invalid(format!("auto_pad '{other}' is not supported"))),
    }
}

/// The `[C, H, W]` per-sample shape of a 2-D (NCHW) graph operand.
pub(crate) fn chw(ctx: &Ctx, n: &NodeCx, x: nmc_ir::NodeId) -> Result<[usize; 3], ImportError> {
    match ctx.ty(x).shape.as_slice() {
        &[c, h, w] => Ok([c, h, w]),
        s => Err(n.invalid(format!(
            "only 2-D (NCHW) inputs are supported, the input is {}",
            show_shape(s)
        ))),
    }
}

pub(crate) fn conv(ctx: &mut Ctx, n: &NodeCx) -> Result<Vec<Val>, ImportError> {
    let x = n.graph_input(0, "X")?;
    let [_, h, w] = chw(ctx, n, x)?;
    let wt = n.required_const(1, "W")?;
    let &[m, _, kh, kw] = wt.shape.as_slice() else {
        return Err(n.invalid(format!(
            "W must be 4-D [M, C/group, kH, kW], has shape {:?}",
            wt.shape
        )));
    };
    if kh == 0 || kw == 0 || m == 0 {
        return Err(n.invalid(format!("W of shape {:?} is empty", wt.shape)));
    }
    let kernel = [kh, kw];
    if let Some(ks) = n.attr_ints("kernel_shape")? {
        if ks != [kh as i64, kw as i64] {
            return Err(n.invalid(format!(
                "kernel_shape {ks:?} disagrees with W of shape {:?}",
                wt.shape
            )));
        }
    }
    let strides = pair(n, "strides", Some(1), 1)?;
    let dilations = pair(n, "dilations", Some(1), 1)?;
    let group = n.attr_int_or("group", 1)?;
    let groups = usize::try_from(group)
        .ok()
        .filter(|&g| g >= 1)
        .ok_or_else(|| n.invalid(format!("group {group} must be positive")))?;
    let pads = pads(n, [h, w], kernel, strides, dilations)?;
    let bias = match n.const_input(2, "B")? {
        None => None,
        Some(b) if b.numel() == m => Some(ctx.constant(vec![m], b.to_f32())),
        Some(b) => {
            return Err(n.invalid(format!(
                "B has {} values, W has {m} output channels",
                b.numel()
            )))
        }
    };
    let weight = ctx.constant(wt.shape.clone(), wt.to_f32());
    let geom = ConvGeom {
        kernel,
        strides,
        pads,
        dilations,
        groups,
    };
    let op = Op::Conv2d { weight, bias, geom };
    Ok(vec![Val::Graph(ctx.add(n, op, vec![x], None)?)])
}
