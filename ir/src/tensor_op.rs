//! Float tensor ops of the import-level graph that no neuromorphic core runs: general
//! broadcasting arithmetic, leaky ReLU, padding, reductions, slicing, batched matrix products,
//! N-d pooling (ceil mode, dilations, 1-D and 3-D windows) and transposed convolution.
//!
//! They exist so that `nmc eval` computes what the ONNX model computes; the compile pipeline
//! rejects them with a "cannot run on <target>" error (like [`crate::Op::Softmax`], they are
//! never lowered to layers). Every op works on per-sample shapes: the batch axis is not
//! visible. Semantics follow ONNX (numpy broadcasting, `floor`/`ceil` output sizes, …) and are
//! spelled out on each variant.

use crate::attr::{AttrValue, Attrs};
use crate::{ConstId, TensorType};

/// An element-wise binary function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinKind {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b` (IEEE: division by zero gives ±inf or NaN).
    Div,
    /// `max(a, b)`, NaN if either is NaN (ONNX Max).
    Max,
    /// `min(a, b)`, NaN if either is NaN (ONNX Min).
    Min,
}

impl BinKind {
    /// Text-format name.
    pub fn name(self) -> &'static str {
        match self {
            BinKind::Add => "add",
            BinKind::Sub => "sub",
            BinKind::Mul => "mul",
            BinKind::Div => "div",
            BinKind::Max => "max",
            BinKind::Min => "min",
        }
    }

    fn from_name(s: &str) -> Option<BinKind> {
        [
            BinKind::Add,
            BinKind::Sub,
            BinKind::Mul,
            BinKind::Div,
            BinKind::Max,
            BinKind::Min,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }

    /// Applies the function.
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinKind::Add => a + b,
            BinKind::Sub => a - b,
            BinKind::Mul => a * b,
            BinKind::Div => a / b,
            BinKind::Max if a.is_nan() || b.is_nan() => f32::NAN,
            BinKind::Min if a.is_nan() || b.is_nan() => f32::NAN,
            BinKind::Max => a.max(b),
            BinKind::Min => a.min(b),
        }
    }
}

/// How [`TensorOp::Pad`] fills the border.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PadMode {
    /// A constant value.
    Constant,
    /// Mirror without repeating the edge (`numpy.pad` "reflect").
    Reflect,
    /// Repeat the edge value.
    Edge,
    /// Wrap around.
    Wrap,
}

impl PadMode {
    /// Text-format (and ONNX attribute) name.
    pub fn name(self) -> &'static str {
        match self {
            PadMode::Constant => "constant",
            PadMode::Reflect => "reflect",
            PadMode::Edge => "edge",
            PadMode::Wrap => "wrap",
        }
    }

    /// Parses the name.
    pub fn from_name(s: &str) -> Option<PadMode> {
        [
            PadMode::Constant,
            PadMode::Reflect,
            PadMode::Edge,
            PadMode::Wrap,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }
}

/// A reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    /// Sum of the elements.
    Sum,
    /// Mean of the elements.
    Mean,
}

/// Pooling over N spatial axes (`[C, d1, …, dN]` per sample).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolNd {
    /// Max or average ([`crate::PoolKind::Sum`] is not used here).
    pub kind: crate::PoolKind,
    /// Window per spatial axis.
    pub kernel: Vec<usize>,
    /// Stride per spatial axis.
    pub strides: Vec<usize>,
    /// Padding: N leading values, then N trailing ones.
    pub pads: Vec<usize>,
    /// Dilation per spatial axis.
    pub dilations: Vec<usize>,
    /// Output size rounds up (ONNX `ceil_mode=1`); a window must still start inside the input or
    /// its leading padding.
    pub ceil_mode: bool,
    /// For averages: the divisor counts window positions in the padding (not those past it).
    pub count_include_pad: bool,
}

impl PoolNd {
    /// Output size of spatial axis `d` for an input of `size`, `None` if the window does not fit.
    pub fn out_len(&self, d: usize, size: usize) -> Option<usize> {
        let n = self.kernel.len();
        let eff = self.kernel[d]
            .checked_sub(1)?
            .checked_mul(self.dilations[d])?
            .checked_add(1)?;
        let padded = size
            .checked_add(self.pads[d])?
            .checked_add(self.pads[d + n])?;
        let s = self.strides[d];
        if padded < eff || s == 0 {
            return None;
        }
        let span = padded - eff;
        let mut out = if self.ceil_mode {
            span.div_ceil(s) + 1
        } else {
            span / s + 1
        };
        if self.ceil_mode && (out - 1) * s >= size + self.pads[d] {
            out -= 1;
        }
        Some(out)
    }
}

/// N-d transposed convolution (ONNX ConvTranspose), weights `[C, M/groups, k1, …, kN]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConvTransposeNd {
    /// Weights.
    pub weight: ConstId,
    /// Bias `[M]`.
    pub bias: Option<ConstId>,
    /// Stride per spatial axis.
    pub strides: Vec<usize>,
    /// Padding removed from the full output: N leading values, then N trailing ones.
    pub pads: Vec<usize>,
    /// Dilation per spatial axis.
    pub dilations: Vec<usize>,
    /// Extra output size per spatial axis (added at the end).
    pub output_padding: Vec<usize>,
    /// Number of groups.
    pub groups: usize,
}

/// The float tensor ops (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub enum TensorOp {
    /// `y = f(a, b)` with numpy broadcasting. With `operand`, `a` is the input and `b` the
    /// constant (`a` the constant when `const_first`); without, `a` and `b` are the two inputs,
    /// of equal rank.
    Binary {
        /// The function.
        kind: BinKind,
        /// A constant operand (per-sample aligned shape).
        operand: Option<ConstId>,
        /// The constant is the left operand.
        const_first: bool,
    },
    /// `y = x` for `x ≥ 0`, else `alpha · x`.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
    /// Pads every axis: `pads` has the leading amounts of all axes, then the trailing ones.
    Pad {
        /// Amounts.
        pads: Vec<usize>,
        /// Border fill.
        mode: PadMode,
        /// Fill value for [`PadMode::Constant`].
        value: f32,
    },
    /// Sum or mean over `axes` (sorted, distinct); `keepdims` keeps them with size 1.
    Reduce {
        /// Sum or mean.
        kind: ReduceKind,
        /// Per-sample axes.
        axes: Vec<usize>,
        /// Keep reduced axes.
        keepdims: bool,
    },
    /// Strided slice: output axis `i` takes `counts[i]` elements from `starts[i]` in steps of
    /// `steps[i]` (negative steps go backwards).
    Slice {
        /// First index per axis.
        starts: Vec<usize>,
        /// Step per axis (non-zero).
        steps: Vec<i64>,
        /// Output size per axis.
        counts: Vec<usize>,
    },
    /// numpy `matmul(x, weight)`: 1-D operands are promoted and the promoted axis removed,
    /// leading (batch) axes broadcast.
    MatMul {
        /// The right operand.
        weight: ConstId,
    },
    /// N-d pooling.
    Pool(PoolNd),
    /// N-d transposed convolution.
    ConvTranspose(ConvTransposeNd),
    /// The constant itself, per sample (an operand of a concatenation, say); no inputs.
    Constant {
        /// The value.
        value: ConstId,
    },
}

impl TensorOp {
    /// Text-format mnemonic.
    pub fn mnemonic(&self) -> &'static str {
        match self {
            TensorOp::Binary { .. } => "binary",
            TensorOp::LeakyRelu { .. } => "leaky_relu",
            TensorOp::Pad { .. } => "pad",
            TensorOp::Reduce {
                kind: ReduceKind::Sum,
                ..
            } => "reduce_sum",
            TensorOp::Reduce {
                kind: ReduceKind::Mean,
                ..
            } => "reduce_mean",
            TensorOp::Slice { .. } => "slice",
            TensorOp::MatMul { .. } => "matmul",
            TensorOp::Pool(_) => "pool_nd",
            TensorOp::ConvTranspose(_) => "conv_transpose",
            TensorOp::Constant { .. } => "constant",
        }
    }

    /// Every mnemonic (for the parser).
    pub const MNEMONICS: &'static [&'static str] = &[
        "binary",
        "leaky_relu",
        "pad",
        "reduce_sum",
        "reduce_mean",
        "slice",
        "matmul",
        "pool_nd",
        "conv_transpose",
        "constant",
    ];

    /// Constants this op refers to, in a fixed order.
    pub fn constants(&self) -> Vec<ConstId> {
        match self {
            TensorOp::Binary { operand, .. } => operand.iter().copied().collect(),
            TensorOp::MatMul { weight } => vec![*weight],
            TensorOp::Constant { value } => vec![*value],
            TensorOp::ConvTranspose(c) => std::iter::once(c.weight).chain(c.bias).collect(),
            _ => Vec::new(),
        }
    }

    /// Rewrites every constant id with `f`.
    pub fn remap_constants(&mut self, mut f: impl FnMut(ConstId) -> ConstId) {
        match self {
            TensorOp::Binary {
                operand: Some(c), ..
            } => *c = f(*c),
            TensorOp::MatMul { weight } => *weight = f(*weight),
            TensorOp::Constant { value } => *value = f(*value),
            TensorOp::ConvTranspose(c) => {
                c.weight = f(c.weight);
                if let Some(b) = &mut c.bias {
                    *b = f(*b);
                }
            }
            _ => {}
        }
    }
}

fn ints(v: &[usize]) -> AttrValue {
    AttrValue::List(v.iter().map(|x| AttrValue::Int(*x as i64)).collect())
}

fn signed(v: &[i64]) -> AttrValue {
    AttrValue::List(v.iter().map(|x| AttrValue::Int(*x)).collect())
}

/// The attributes of a tensor op, as printed.
pub(crate) fn attrs(op: &TensorOp) -> Attrs {
    let mut m = Attrs::new();
    let mut put = |k: &str, v: AttrValue| {
        m.insert(k.into(), v);
    };
    match op {
        TensorOp::Binary {
            kind,
            operand,
            const_first,
        } => {
            put("kind", AttrValue::Ident(kind.name().into()));
            if let Some(c) = operand {
                put("operand", AttrValue::Const(*c));
                put("const_first", AttrValue::Bool(*const_first));
            }
        }
        TensorOp::LeakyRelu { alpha } => put("alpha", AttrValue::Float(*alpha)),
        TensorOp::Pad { pads, mode, value } => {
            put("pads", ints(pads));
            put("mode", AttrValue::Ident(mode.name().into()));
            put("value", AttrValue::Float(*value));
        }
        TensorOp::Reduce { axes, keepdims, .. } => {
            put("axes", ints(axes));
            put("keepdims", AttrValue::Bool(*keepdims));
        }
        TensorOp::Slice {
            starts,
            steps,
            counts,
        } => {
            put("starts", ints(starts));
            put("steps", signed(steps));
            put("counts", ints(counts));
        }
        TensorOp::MatMul { weight } => put("weight", AttrValue::Const(*weight)),
        TensorOp::Pool(p) => {
            put("kind", AttrValue::Ident(p.kind.name().into()));
            put("kernel", ints(&p.kernel));
            put("strides", ints(&p.strides));
            put("pads", ints(&p.pads));
            put("dilations", ints(&p.dilations));
            put("ceil_mode", AttrValue::Bool(p.ceil_mode));
            put("count_include_pad", AttrValue::Bool(p.count_include_pad));
        }
        TensorOp::ConvTranspose(c) => {
            put("weight", AttrValue::Const(c.weight));
            if let Some(b) = c.bias {
                put("bias", AttrValue::Const(b));
            }
            put("strides", ints(&c.strides));
            put("pads", ints(&c.pads));
            put("dilations", ints(&c.dilations));
            put("output_padding", ints(&c.output_padding));
            put("groups", AttrValue::Int(c.groups as i64));
        }
        TensorOp::Constant { value } => put("value", AttrValue::Const(*value)),
    }
    m
}

/// Rebuilds a tensor op from its mnemonic and attributes (`None`: not a tensor op).
pub(crate) fn from_attrs(mnemonic: &str, m: &Attrs) -> Option<Result<TensorOp, String>> {
    let r = crate::attr::Reader { m, what: mnemonic };
    let op = || -> Result<TensorOp, String> {
        Ok(match mnemonic {
            "binary" => {
                let k = r.ident("kind")?;
                let kind =
                    BinKind::from_name(k).ok_or_else(|| format!("binary: unknown kind `{k}`"))?;
                let operand = r.opt_const("operand")?;
                let const_first = operand.is_some() && r.bool("const_first")?;
                TensorOp::Binary {
                    kind,
                    operand,
                    const_first,
                }
            }
            "leaky_relu" => TensorOp::LeakyRelu {
                alpha: r.float("alpha")?,
            },
            "pad" => {
                let k = r.ident("mode")?;
                TensorOp::Pad {
                    pads: r.usizes("pads")?,
                    mode: PadMode::from_name(k)
                        .ok_or_else(|| format!("pad: unknown mode `{k}`"))?,
                    value: r.float("value")?,
                }
            }
            "reduce_sum" | "reduce_mean" => TensorOp::Reduce {
                kind: if mnemonic == "reduce_sum" {
                    ReduceKind::Sum
                } else {
                    ReduceKind::Mean
                },
                axes: r.usizes("axes")?,
                keepdims: r.bool("keepdims")?,
            },
            "slice" => TensorOp::Slice {
                starts: r.usizes("starts")?,
                steps: r.signed("steps")?,
                counts: r.usizes("counts")?,
            },
            "matmul" => TensorOp::MatMul {
                weight: r.konst("weight")?,
            },
            "pool_nd" => TensorOp::Pool(PoolNd {
                kind: match r.ident("kind")? {
                    "max" => crate::PoolKind::Max,
                    "avg" => crate::PoolKind::Avg,
                    k => return Err(format!("pool_nd: unknown kind `{k}`")),
                },
                kernel: r.usizes("kernel")?,
                strides: r.usizes("strides")?,
                pads: r.usizes("pads")?,
                dilations: r.usizes("dilations")?,
                ceil_mode: r.bool("ceil_mode")?,
                count_include_pad: r.bool("count_include_pad")?,
            }),
            "conv_transpose" => TensorOp::ConvTranspose(ConvTransposeNd {
                weight: r.konst("weight")?,
                bias: r.opt_const("bias")?,
                strides: r.usizes("strides")?,
                pads: r.usizes("pads")?,
                dilations: r.usizes("dilations")?,
                output_padding: r.usizes("output_padding")?,
                groups: usize::try_from(r.int("groups")?)
                    .map_err(|_| "conv_transpose: `groups` must be positive".to_string())?,
            }),
            "constant" => TensorOp::Constant {
                value: r.konst("value")?,
            },
            _ => unreachable!("checked against MNEMONICS"),
        })
    };
    TensorOp::MNEMONICS.contains(&mnemonic).then(op)
}

/// numpy broadcasting of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    (0..r)
        .map(|i| {
            let x = if i + a.len() >= r {
                a[i + a.len() - r]
            } else {
                1
            };
            let y = if i + b.len() >= r {
                b[i + b.len() - r]
            } else {
                1
            };
            match (x, y) {
                _ if x == y => Some(x),
                (1, _) => Some(y),
                (_, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// For each flat index of `out`, the flat index of the element of `src` it broadcasts from.
pub fn broadcast_index(src: &[usize], out: &[usize]) -> Vec<usize> {
    let r = out.len();
    let mut strides = vec![0usize; r];
    let mut s = 1;
    for i in (0..src.len()).rev() {
        let o = i + r - src.len();
        strides[o] = if src[i] == 1 { 0 } else { s };
        s *= src[i];
    }
    let n: usize = out.iter().product();
    let mut idx = vec![0usize; r];
    let mut res = Vec::with_capacity(n);
    for _ in 0..n {
        res.push(idx.iter().zip(&strides).map(|(i, s)| i * s).sum());
        for d in (0..r).rev() {
            idx[d] += 1;
            if idx[d] < out[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    res
}

/// Output shape, broadcast batch shape and `[m, k, n]` of a numpy matmul.
type MatMulShapes = (Vec<usize>, Vec<usize>, [usize; 3]);

/// The numpy matmul of shapes `a` and `b`.
fn matmul_shapes(a: &[usize], b: &[usize]) -> Result<MatMulShapes, String> {
    if a.is_empty() || b.is_empty() {
        return Err("matmul of a scalar".into());
    }
    let pa: Vec<usize> = if a.len() == 1 {
        vec![1, a[0]]
    } else {
        a.to_vec()
    };
    let pb: Vec<usize> = if b.len() == 1 {
        vec![b[0], 1]
    } else {
        b.to_vec()
    };
    let (m, k) = (pa[pa.len() - 2], pa[pa.len() - 1]);
    let (k2, n) = (pb[pb.len() - 2], pb[pb.len() - 1]);
    if k != k2 {
        return Err(format!("matmul of {a:?} and {b:?}: inner sizes differ"));
    }
    let batch = broadcast(&pa[..pa.len() - 2], &pb[..pb.len() - 2])
        .ok_or_else(|| format!("matmul of {a:?} and {b:?}: batch axes do not broadcast"))?;
    let mut out = batch.clone();
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    Ok((out, batch, [m, k, n]))
}

/// The output type of a tensor op.
pub(crate) fn infer(
    op: &TensorOp,
    inputs: &[&TensorType],
    cshape: &dyn Fn(ConstId) -> Result<Vec<usize>, String>,
) -> Result<TensorType, String> {
    let arity = |n: usize| {
        if inputs.len() == n {
            Ok(())
        } else {
            Err(format!(
                "{} takes {n} input(s), has {}",
                op.mnemonic(),
                inputs.len()
            ))
        }
    };
    let out = |shape: Vec<usize>| Ok(TensorType::f32(shape));
    match op {
        TensorOp::Constant { value } => {
            arity(0)?;
            out(cshape(*value)?)
        }
        TensorOp::Binary { operand, .. } => {
            let (a, b) = match operand {
                Some(c) => {
                    arity(1)?;
                    (inputs[0].shape.clone(), cshape(*c)?)
                }
                None => {
                    arity(2)?;
                    if inputs[0].shape.len() != inputs[1].shape.len() {
                        return Err(format!(
                            "binary operands {} and {} differ in rank",
                            inputs[0], inputs[1]
                        ));
                    }
                    (inputs[0].shape.clone(), inputs[1].shape.clone())
                }
            };
            out(broadcast(&a, &b)
                .ok_or_else(|| format!("shapes {a:?} and {b:?} do not broadcast"))?)
        }
        TensorOp::LeakyRelu { alpha } => {
            arity(1)?;
            if !alpha.is_finite() {
                return Err(format!("leaky_relu alpha {alpha} is not finite"));
            }
            out(inputs[0].shape.clone())
        }
        TensorOp::Pad { pads, value, .. } => {
            arity(1)?;
            let s = &inputs[0].shape;
            if pads.len() != 2 * s.len() || !value.is_finite() {
                return Err(format!("pad {pads:?} does not fit {}", inputs[0]));
            }
            s.iter()
                .enumerate()
                .map(|(i, &d)| d.checked_add(pads[i])?.checked_add(pads[i + s.len()]))
                .collect::<Option<Vec<_>>>()
                .map_or_else(|| Err("pad too large".into()), out)
        }
        TensorOp::Reduce { axes, keepdims, .. } => {
            arity(1)?;
            let s = &inputs[0].shape;
            if axes.windows(2).any(|w| w[0] >= w[1]) || axes.iter().any(|&a| a >= s.len()) {
                return Err(format!("reduce axes {axes:?} do not fit {}", inputs[0]));
            }
            out(s
                .iter()
                .enumerate()
                .filter_map(|(i, &d)| match (axes.contains(&i), keepdims) {
                    (false, _) => Some(d),
                    (true, true) => Some(1),
                    (true, false) => None,
                })
                .collect())
        }
        TensorOp::Slice {
            starts,
            steps,
            counts,
        } => {
            arity(1)?;
            let s = &inputs[0].shape;
            let r = s.len();
            if starts.len() != r || steps.len() != r || counts.len() != r {
                return Err(format!(
                    "slice of rank {r} needs {r} starts, steps and counts"
                ));
            }
            for i in 0..r {
                let last = if counts[i] == 0 {
                    Some(starts[i] as i64)
                } else {
                    (counts[i] as i64 - 1)
                        .checked_mul(steps[i])
                        .and_then(|v| v.checked_add(starts[i] as i64))
                };
                let ok = steps[i] != 0
                    && (counts[i] == 0
                        || (starts[i] < s[i]
                            && last.is_some_and(|l| (0..s[i] as i64).contains(&l))));
                if !ok {
                    return Err(format!("slice axis {i} out of range for {}", inputs[0]));
                }
            }
            out(counts.clone())
        }
        TensorOp::MatMul { weight } => {
            arity(1)?;
            out(matmul_shapes(&inputs[0].shape, &cshape(*weight)?)?.0)
        }
        TensorOp::Pool(p) => {
            arity(1)?;
            let s = &inputs[0].shape;
            let n = p.kernel.len();
            if n == 0
                || s.len() != n + 1
                || p.strides.len() != n
                || p.dilations.len() != n
                || p.pads.len() != 2 * n
                || p.kernel
                    .iter()
                    .chain(&p.strides)
                    .chain(&p.dilations)
                    .any(|&v| v == 0)
                || p.kind == crate::PoolKind::Sum
            {
                return Err(format!("pool_nd geometry does not fit {}", inputs[0]));
            }
            let mut shape = vec![s[0]];
            for d in 0..n {
                shape.push(
                    p.out_len(d, s[d + 1])
                        .ok_or_else(|| format!("pool window does not fit {}", inputs[0]))?,
                );
            }
            out(shape)
        }
        TensorOp::ConvTranspose(c) => {
            arity(1)?;
            let s = &inputs[0].shape;
            let w = cshape(c.weight)?;
            let n = w.len().saturating_sub(2);
            let ok = n >= 1
                && s.len() == n + 1
                && c.groups >= 1
                && w[0] == s[0]
                && s[0].is_multiple_of(c.groups)
                && c.strides.len() == n
                && c.dilations.len() == n
                && c.output_padding.len() == n
                && c.pads.len() == 2 * n
                && c.strides.iter().chain(&c.dilations).all(|&v| v > 0);
            if !ok {
                return Err(format!(
                    "conv_transpose weights {w:?} do not fit {}",
                    inputs[0]
                ));
            }
            let m = w[1] * c.groups;
            if let Some(b) = c.bias {
                if cshape(b)?.iter().product::<usize>() != m {
                    return Err(format!("conv_transpose bias does not have {m} values"));
                }
            }
            let mut shape = vec![m];
            for d in 0..n {
                let full = (s[d + 1] - 1)
                    .checked_mul(c.strides[d])
                    .and_then(|v| v.checked_add(c.output_padding[d]))
                    .and_then(|v| {
                        v.checked_add((w[d + 2].checked_sub(1)?).checked_mul(c.dilations[d])? + 1)
                    })
                    .ok_or("conv_transpose too large")?;
                let o = full
                    .checked_sub(c.pads[d] + c.pads[d + n])
                    .filter(|&o| o > 0)
                    .ok_or("conv_transpose pads remove the whole output")?;
                shape.push(o);
            }
            out(shape)
        }
    }
}

/// Evaluates a float tensor op on one sample. `x` are the inputs with their shapes, `c` reads a
/// constant's values and shape, `out` is the inferred output shape.
pub(crate) fn eval(
    op: &TensorOp,
    x: &[(&[f32], &[usize])],
    c: &dyn Fn(ConstId) -> (Vec<f32>, Vec<usize>),
    out: &[usize],
) -> Vec<f32> {
    let numel: usize = out.iter().product();
    match op {
        TensorOp::Constant { value } => c(*value).0,
        TensorOp::Binary {
            kind,
            operand,
            const_first,
        } => {
            let (av, ash, bv, bsh) = match operand {
                Some(k) => {
                    let (v, s) = c(*k);
                    if *const_first {
                        (v, s, x[0].0.to_vec(), x[0].1.to_vec())
                    } else {
                        (x[0].0.to_vec(), x[0].1.to_vec(), v, s)
                    }
                }
                None => (
                    x[0].0.to_vec(),
                    x[0].1.to_vec(),
                    x[1].0.to_vec(),
                    x[1].1.to_vec(),
                ),
            };
            let ia = broadcast_index(&ash, out);
            let ib = broadcast_index(&bsh, out);
            ia.iter()
                .zip(&ib)
                .map(|(&i, &j)| kind.apply(av[i], bv[j]))
                .collect()
        }
        TensorOp::LeakyRelu { alpha } => x[0]
            .0
            .iter()
            .map(|&v| if v >= 0.0 { v } else { alpha * v })
            .collect(),
        TensorOp::Pad { pads, mode, value } => {
            let (v, s) = x[0];
            let r = s.len();
            let ostr = strides(out);
            let istr = strides(s);
            (0..numel)
                .map(|flat| {
                    let mut src = 0usize;
                    for d in 0..r {
                        let o = (flat / ostr[d]) % out[d];
                        let i = o as i64 - pads[d] as i64;
                        let n = s[d] as i64;
                        let i = if (0..n).contains(&i) {
                            i
                        } else {
                            match mode {
                                PadMode::Constant => return *value,
                                _ if n == 0 => return *value,
                                PadMode::Edge => i.clamp(0, n - 1),
                                PadMode::Wrap => i.rem_euclid(n),
                                PadMode::Reflect if n == 1 => 0,
                                PadMode::Reflect => {
                                    let p = 2 * (n - 1);
                                    let m = i.rem_euclid(p);
                                    if m < n {
                                        m
                                    } else {
                                        p - m
                                    }
                                }
                            }
                        };
                        src += i as usize * istr[d];
                    }
                    v[src]
                })
                .collect()
        }
        TensorOp::Reduce { kind, axes, .. } => {
            let (v, s) = x[0];
            let kept: Vec<usize> = s
                .iter()
                .enumerate()
                .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
                .collect();
            let kstr = strides(&kept);
            let istr = strides(s);
            let mut acc = vec![0f32; kept.iter().product()];
            for (flat, &val) in v.iter().enumerate() {
                let mut o = 0;
                for d in 0..s.len() {
                    if !axes.contains(&d) {
                        o += (flat / istr[d]) % s[d] * kstr[d];
                    }
                }
                acc[o] += val;
            }
            if *kind == ReduceKind::Mean {
                let n: usize = axes.iter().map(|&a| s[a]).product();
                for a in &mut acc {
                    *a /= n as f32;
                }
            }
            acc
        }
        TensorOp::Slice { starts, steps, .. } => {
            let (v, s) = x[0];
            let ostr = strides(out);
            let istr = strides(s);
            (0..numel)
                .map(|flat| {
                    let mut src = 0i64;
                    for d in 0..s.len() {
                        let o = ((flat / ostr[d]) % out[d]) as i64;
                        src += (starts[d] as i64 + o * steps[d]) * istr[d] as i64;
                    }
                    v[src as usize]
                })
                .collect()
        }
        TensorOp::MatMul { weight } => {
            let (a, ash) = x[0];
            let (b, bsh) = c(*weight);
            let Ok((_, batch, [m, k, n])) = matmul_shapes(ash, &bsh) else {
                return vec![f32::NAN; numel];
            };
            let abatch = &ash[..ash.len().saturating_sub(2).min(ash.len())];
            let abatch = if ash.len() >= 2 { abatch } else { &[] };
            let bbatch = if bsh.len() >= 2 {
                &bsh[..bsh.len() - 2]
            } else {
                &[]
            };
            let ia = broadcast_index(abatch, &batch);
            let ib = broadcast_index(bbatch, &batch);
            let mut y = Vec::with_capacity(numel);
            for (&p, &q) in ia.iter().zip(&ib) {
                let (ao, bo) = (p * m * k, q * k * n);
                for i in 0..m {
                    for j in 0..n {
                        let mut s = 0f32;
                        for t in 0..k {
                            s += a[ao + i * k + t] * b[bo + t * n + j];
                        }
                        y.push(s);
                    }
                }
            }
            y
        }
        TensorOp::Pool(p) => pool_nd(x[0].0, x[0].1, out, p),
        TensorOp::ConvTranspose(ct) => {
            let (v, s) = x[0];
            let (w, wsh) = c(ct.weight);
            conv_transpose(v, s, &w, &wsh, ct, out, ct.bias.map(|b| c(b).0))
        }
    }
}

/// Row-major strides of a shape.
fn strides(s: &[usize]) -> Vec<usize> {
    let mut st = vec![1; s.len()];
    for d in (0..s.len().saturating_sub(1)).rev() {
        st[d] = st[d + 1] * s[d + 1];
    }
    st
}

/// Calls `f` for every index of `shape` (row-major).
fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize])) {
    if shape.contains(&0) {
        return;
    }
    let mut idx = vec![0usize; shape.len()];
    loop {
        f(&idx);
        let mut d = shape.len();
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

fn pool_nd(v: &[f32], s: &[usize], out: &[usize], p: &PoolNd) -> Vec<f32> {
    let n = p.kernel.len();
    let istr = strides(s);
    let mut y = Vec::with_capacity(out.iter().product());
    for_each_index(out, |o| {
        let ch = o[0];
        let mut best = f32::NEG_INFINITY;
        let mut sum = 0f32;
        let (mut valid, mut padded) = (0usize, 0usize);
        let mut any_valid = false;
        for_each_index(&p.kernel, |k| {
            let mut src = ch * istr[0];
            let mut inside = true;
            let mut in_pad_range = true;
            for d in 0..n {
                let pos =
                    (o[d + 1] * p.strides[d] + k[d] * p.dilations[d]) as i64 - p.pads[d] as i64;
                let size = s[d + 1] as i64;
                if pos < 0 || pos >= size {
                    inside = false;
                }
                if pos < -(p.pads[d] as i64) || pos >= size + p.pads[d + n] as i64 {
                    in_pad_range = false;
                }
                if inside {
                    src += pos as usize * istr[d + 1];
                }
            }
            if in_pad_range {
                padded += 1;
            }
            if inside {
                valid += 1;
                any_valid = true;
                let val = v[src];
                sum += val;
                if val > best || val.is_nan() {
                    best = val;
                }
            }
        });
        y.push(match p.kind {
            crate::PoolKind::Max if any_valid => best,
            crate::PoolKind::Max => f32::NEG_INFINITY,
            _ => {
                let div = if p.count_include_pad { padded } else { valid };
                if div == 0 {
                    f32::NAN
                } else {
                    sum / div as f32
                }
            }
        });
    });
    y
}

fn conv_transpose(
    v: &[f32],
    s: &[usize],
    w: &[f32],
    wsh: &[usize],
    ct: &ConvTransposeNd,
    out: &[usize],
    bias: Option<Vec<f32>>,
) -> Vec<f32> {
    let n = wsh.len() - 2;
    let cin = s[0];
    let mg = wsh[1];
    let cg = cin / ct.groups;
    let ostr = strides(out);
    let mut y = vec![0f32; out.iter().product()];
    let spatial_in = &s[1..];
    let kernel = &wsh[2..];
    let kn: usize = kernel.iter().product();
    let sin: usize = spatial_in.iter().product();
    let in_str = strides(spatial_in);
    for ci in 0..cin {
        let g = ci / cg;
        for_each_index(spatial_in, |i| {
            let iflat: usize = i.iter().zip(&in_str).map(|(a, b)| a * b).sum();
            let xv = v[ci * sin + iflat];
            let mut kflat = 0;
            for_each_index(kernel, |k| {
                let mut dst = 0usize;
                let mut ok = true;
                for d in 0..n {
                    let o =
                        (i[d] * ct.strides[d] + k[d] * ct.dilations[d]) as i64 - ct.pads[d] as i64;
                    if o < 0 || o >= out[d + 1] as i64 {
                        ok = false;
                        break;
                    }
                    dst += o as usize * ostr[d + 1];
                }
                if ok {
                    for mm in 0..mg {
                        let m = g * mg + mm;
                        y[m * ostr[0] + dst] += xv * w[(ci * mg + mm) * kn + kflat];
                    }
                }
                kflat += 1;
            });
        });
    }
    if let Some(b) = bias {
        let per = ostr[0];
        for (i, val) in y.iter_mut().enumerate() {
            *val += b[i / per];
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{infer_type, Constant, Graph, Op, Output};

    /// Every tensor op prints, parses back to the same graph text and evaluates.
    #[test]
    fn tensor_ops_round_trip_through_the_text_format_and_evaluate() {
        let mut g = Graph::new("t");
        let x = g.add_input(TensorType::f32(vec![1, 2, 3]), "x");
        let c = g.consts.add(Constant::f32(vec![3], vec![1.0, 2.0, 3.0]));
        let w = g.consts.add(Constant::f32(vec![5, 2], vec![1.0; 10]));
        let k = g
            .consts
            .add(Constant::f32(vec![1, 1, 1, 2], vec![0.5, 0.25]));
        let ops = vec![
            TensorOp::Binary {
                kind: BinKind::Max,
                operand: Some(c),
                const_first: true,
            },
            TensorOp::LeakyRelu { alpha: 0.1 },
            TensorOp::Pad {
                pads: vec![0, 1, 0, 0, 1, 0],
                mode: PadMode::Reflect,
                value: 0.0,
            },
            TensorOp::Slice {
                starts: vec![0, 2, 2],
                steps: vec![1, -1, -1],
                counts: vec![1, 2, 3],
            },
            TensorOp::Reduce {
                kind: ReduceKind::Mean,
                axes: vec![1],
                keepdims: true,
            },
            TensorOp::Pool(PoolNd {
                kind: crate::PoolKind::Avg,
                kernel: vec![1, 2],
                strides: vec![1, 2],
                pads: vec![0, 0, 0, 1],
                dilations: vec![1, 1],
                ceil_mode: true,
                count_include_pad: true,
            }),
            TensorOp::ConvTranspose(ConvTransposeNd {
                weight: k,
                bias: None,
                strides: vec![1, 2],
                pads: vec![0, 0, 0, 0],
                dilations: vec![1, 1],
                output_padding: vec![0, 1],
                groups: 1,
            }),
        ];
        let mut v = x;
        for op in ops {
            let op = Op::Tensor(op);
            let ty = infer_type(&op, &[g.ty(v)], &g.consts).unwrap();
            v = g.add(op, vec![v], ty, None);
        }
        assert_eq!(g.ty(v).shape, [1, 1, 5]);
        let op = Op::Tensor(TensorOp::MatMul { weight: w });
        let ty = infer_type(&op, &[g.ty(v)], &g.consts).unwrap();
        let mm = g.add(op, vec![v], ty, None);
        let op = Op::Tensor(TensorOp::Constant { value: c });
        let ty = infer_type(&op, &[], &g.consts).unwrap();
        let cn = g.add(op, vec![], ty, None);
        let op = Op::Tensor(TensorOp::Binary {
            kind: BinKind::Div,
            operand: None,
            const_first: false,
        });
        let ty = infer_type(&op, &[g.ty(mm), g.ty(cn)], &g.consts);
        // [1, 1, 2] and [3] differ in rank: two graph operands must have equal ranks.
        assert!(ty.is_err());
        g.outputs.push(Output {
            node: mm,
            name: "y".into(),
        });
        crate::verify(&g).unwrap();
        let text = crate::print(&g);
        let back = crate::parse(&text).unwrap();
        assert_eq!(crate::print(&back), text);
        let out = crate::Interpreter::new(&g)
            .unwrap()
            .run(&[&[1.0, -2.0, 3.0, -4.0, 5.0, -6.0]])
            .unwrap();
        assert!(matches!(&out[0], crate::Value::F32(y) if y.iter().all(|v| v.is_finite())));
    }

    #[test]
    fn pool_and_pad_follow_onnx() {
        // 1-D max pool, kernel 2 dilation 2 over [1, 5]: windows {0, 2}, {1, 3}, {2, 4}.
        let p = PoolNd {
            kind: crate::PoolKind::Max,
            kernel: vec![2],
            strides: vec![1],
            pads: vec![0, 0],
            dilations: vec![2],
            ceil_mode: false,
            count_include_pad: false,
        };
        let x = [1.0, 5.0, 2.0, 4.0, 3.0];
        assert_eq!(pool_nd(&x, &[1, 5], &[1, 3], &p), vec![2.0, 5.0, 3.0]);
        // Reflect and edge padding of [1, 2, 3] by two on each side.
        let pad = |mode| {
            let op = TensorOp::Pad {
                pads: vec![2, 2],
                mode,
                value: 0.0,
            };
            eval(
                &op,
                &[(&[1.0, 2.0, 3.0], &[3])],
                &|_| (vec![], vec![]),
                &[7],
            )
        };
        assert_eq!(pad(PadMode::Reflect), vec![3., 2., 1., 2., 3., 2., 1.]);
        assert_eq!(pad(PadMode::Edge), vec![1., 1., 1., 2., 3., 3., 3.]);
        assert_eq!(pad(PadMode::Wrap), vec![2., 3., 1., 2., 3., 1., 2.]);
    }
}
