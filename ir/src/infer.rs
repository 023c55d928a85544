//! Type inference: the type each op produces from its operand types. Used by builders (the ONNX
//! importer, passes) and re-checked by the verifier.

use crate::{ConstPool, DType, Neuron, Op, Synapse, TensorType};

/// Infers the output type of `op` applied to `inputs`; the message says what does not fit. A
/// value of more than [`crate::limits::max_elements`] elements is refused here, where every
/// builder and the verifier pass, so no later stage allocates for it.
pub fn infer_type(
    op: &Op,
    inputs: &[&TensorType],
    consts: &ConstPool,
) -> Result<TensorType, String> {
    let t = infer_unbounded(op, inputs, consts)?;
    crate::limits::check_elements(&t.shape)?;
    Ok(t)
}

fn infer_unbounded(
    op: &Op,
    inputs: &[&TensorType],
    consts: &ConstPool,
) -> Result<TensorType, String> {
    let arity = |n: usize| -> Result<(), String> {
        if inputs.len() == n {
            Ok(())
        } else {
            Err(format!("expects {n} operand(s), has {}", inputs.len()))
        }
    };
    let cshape = |id: crate::ConstId| -> Result<Vec<usize>, String> {
        consts
            .try_get(id)
            .map(|c| c.shape.clone())
            .ok_or_else(|| format!("unknown constant {id}"))
    };
    match op {
        Op::Input { .. } => Err("input types are given, not inferred".into()),
        Op::Tensor(t) => {
            if inputs.iter().any(|i| i.dtype != DType::F32) {
                return Err(format!("{} works on float values", t.mnemonic()));
            }
            crate::tensor_op::infer(t, inputs, &cshape)
        }
        Op::Dense { weight, bias } => {
            arity(1)?;
            let w = cshape(*weight)?;
            dense_out(&w, inputs[0], bias.map(cshape).transpose()?.as_deref()).map(|s| TensorType {
                dtype: inputs[0].dtype,
                shape: s,
            })
        }
        Op::Conv2d { weight, bias, geom } => {
            arity(1)?;
            let w = cshape(*weight)?;
            let s = conv_out(&w, geom, inputs[0])?;
            if let Some(b) = bias {
                check_bias(&cshape(*b)?, w[0])?;
            }
            Ok(TensorType {
                dtype: inputs[0].dtype,
                shape: s,
            })
        }
        Op::Pool2d(p) => {
            arity(1)?;
            pool_out(p, &inputs[0].shape).map(|s| TensorType {
                dtype: inputs[0].dtype,
                shape: s,
            })
        }
        Op::ChannelAffine { scale, shift } => {
            arity(1)?;
            let c = *inputs[0]
                .shape
                .first()
                .ok_or("channel affine on a scalar")?;
            for id in [scale, shift] {
                if cshape(*id)?.iter().product::<usize>() != c {
                    return Err(format!(
                        "per-channel constant {id} does not have {c} elements"
                    ));
                }
            }
            Ok(inputs[0].clone())
        }
        Op::Add => {
            arity(2)?;
            if inputs[0] != inputs[1] {
                return Err(format!(
                    "operand types differ: {} vs {}",
                    inputs[0], inputs[1]
                ));
            }
            Ok(inputs[0].clone())
        }
        Op::FakeQuant {
            scale, min, max, ..
        } => {
            arity(1)?;
            if inputs[0].dtype != DType::F32 || scale.is_nan() || *scale <= 0.0 || min > max {
                return Err(format!(
                    "bad fake quantisation: scale {scale} range [{min}, {max}] on {}",
                    inputs[0]
                ));
            }
            Ok(inputs[0].clone())
        }
        Op::Act(_) | Op::Softmax { .. } => {
            arity(1)?;
            if let Op::Act(crate::Activation::Spiking(m)) = op {
                m.check()?;
            }
            if let Op::Softmax { axis, .. } = op {
                if *axis >= inputs[0].shape.len() {
                    return Err(format!(
                        "softmax axis {axis} out of range for {}",
                        inputs[0]
                    ));
                }
            }
            Ok(inputs[0].clone())
        }
        Op::Concat { axis } => {
            if inputs.is_empty() {
                return Err("concat of nothing".into());
            }
            let first = inputs[0];
            if *axis >= first.shape.len() {
                return Err(format!("concat axis {axis} out of range for {first}"));
            }
            let mut shape = first.shape.clone();
            shape[*axis] = 0;
            for t in inputs {
                let same = t.dtype == first.dtype
                    && t.shape.len() == first.shape.len()
                    && t.shape
                        .iter()
                        .zip(&first.shape)
                        .enumerate()
                        .all(|(i, (a, b))| i == *axis || a == b);
                if !same {
                    return Err(format!(
                        "concat operands {first} and {t} differ off axis {axis}"
                    ));
                }
                shape[*axis] += t.shape[*axis];
            }
            Ok(TensorType {
                dtype: first.dtype,
                shape,
            })
        }
        Op::Reshape => Err("reshape types are given, not inferred".into()),
        Op::Transpose { perm } => {
            arity(1)?;
            let s = &inputs[0].shape;
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            if sorted != (0..s.len()).collect::<Vec<_>>() {
                return Err(format!(
                    "perm {perm:?} is not a permutation of the {} axes",
                    s.len()
                ));
            }
            Ok(TensorType {
                dtype: inputs[0].dtype,
                shape: perm.iter().map(|&p| s[p]).collect(),
            })
        }
        Op::Layer(l) => {
            if inputs.len() != l.synapses.len() || inputs.is_empty() {
                return Err(format!(
                    "layer has {} synapse group(s) but {} operand(s)",
                    l.synapses.len(),
                    inputs.len()
                ));
            }
            let mut out: Option<Vec<usize>> = None;
            for (s, t) in l.synapses.iter().zip(inputs) {
                let w = cshape(s.weight())?;
                let shape = match s {
                    Synapse::Dense { .. } => dense_out(&w, t, None)?,
                    Synapse::Conv { geom, .. } => conv_out(&w, geom, t)?,
                };
                match &out {
                    None => out = Some(shape),
                    Some(o) if *o != shape => {
                        return Err(format!(
                            "synapse groups disagree on the population shape: {o:?} vs {shape:?}"
                        ))
                    }
                    _ => {}
                }
            }
            if let Neuron::Spiking(m) = &l.neuron {
                m.check()?;
            }
            let mut shape = out.expect("at least one synapse group");
            let channels = shape[0];
            for b in l
                .bias
                .iter()
                .chain(l.quant.as_ref().and_then(|q| q.bias.as_ref()))
            {
                check_bias(&cshape(*b)?, channels)?;
            }
            if let Some(p) = &l.pool {
                shape = pool_out(p, &shape)?;
            }
            if let Some(q) = &l.quant {
                if q.weight_exp.len() != l.synapses.len() {
                    return Err("weight_exp must have one entry per synapse group".into());
                }
                if q.act_min > q.act_max {
                    return Err(format!("empty output range [{}, {}]", q.act_min, q.act_max));
                }
                if let Neuron::Relu = l.neuron {
                    if q.act_min < 0 {
                        return Err("relu population with a negative output range".into());
                    }
                }
                if let Some(step) = q.act_step() {
                    check_bias(&cshape(step)?, channels)
                        .map_err(|m| m.replace("bias", "act_step"))?;
                    let c = consts
                        .try_get(step)
                        .ok_or_else(|| format!("unknown constant {step}"))?;
                    if c.dtype() != DType::I32 {
                        return Err("act_step must be an integer constant".into());
                    }
                    // Values are known unless the graph was parsed from text (a summary only).
                    if let Some(v) = c.to_i32() {
                        if v.iter().any(|s| *s < 1) {
                            return Err("act_step values must be positive".into());
                        }
                    }
                }
                if q.pool_first() && l.pool.is_none() {
                    return Err("pool_first without a pool".into());
                }
                if let Some(s) = q.spiking() {
                    check_spiking(s, q, l.pool.as_ref())?;
                }
                if let Some(c) = q.cuba() {
                    check_cuba(c, q, l.pool.as_ref())?;
                }
            }
            let dtype = if l.quant.is_some() {
                DType::I32
            } else {
                DType::F32
            };
            if inputs.iter().any(|t| t.dtype != dtype) {
                return Err(format!("layer operands must all be {}", dtype.name()));
            }
            Ok(TensorType { dtype, shape })
        }
        Op::Quantize(q) => {
            arity(1)?;
            if inputs[0].dtype != DType::F32 {
                return Err("quantize expects an f32 operand".into());
            }
            if q.min > q.max || q.scale.is_nan() || q.scale <= 0.0 {
                return Err(format!(
                    "bad quantisation: scale {} range [{}, {}]",
                    q.scale, q.min, q.max
                ));
            }
            Ok(inputs[0].with_dtype(DType::I32))
        }
        Op::Dequantize { .. } => {
            arity(1)?;
            if inputs[0].dtype != DType::I32 {
                return Err("dequantize expects an i32 operand".into());
            }
            Ok(inputs[0].with_dtype(DType::F32))
        }
    }
}

/// A spiking layer's integer parameters are consistent (see `Interpreter::run_steps`).
/// The ranges of Loihi's CUBA-LIF registers (docs/chips.md §1.4, §1.6).
fn check_cuba(
    c: &crate::CubaQuant,
    q: &crate::LayerQuant,
    pool: Option<&crate::Pool>,
) -> Result<(), String> {
    if c.du > 4096 || c.dv > 4096 {
        return Err(format!(
            "cuba decays du {} and dv {} must be within 0..=4096",
            c.du, c.dv
        ));
    }
    if !(0..1 << 17).contains(&c.vth) {
        return Err(format!("cuba threshold {} is outside 0..2^17", c.vth));
    }
    let lim = crate::CUBA_STATE_LIMIT;
    if i64::from(c.v_min) > 0 || i64::from(c.v_min) < -lim || i64::from(c.v_bias).abs() >= lim {
        return Err(format!(
            "cuba v_min {} must be within -2^23..=0 and v_bias {} within ±(2^23 - 1)",
            c.v_min, c.v_bias
        ));
    }
    if q.state_bits != 24 || q.act_shift > 16 || q.act_min != 0 || q.act_max != 1 {
        return Err(format!(
            "a cuba layer has 24-bit state, act_shift ≤ 16 and binary spikes (range [0, 1]), not {} bits, shift {}, range [{}, {}]",
            q.state_bits, q.act_shift, q.act_min, q.act_max
        ));
    }
    if pool.is_some_and(|p| p.kind != crate::PoolKind::Sum) {
        return Err("a cuba layer pools its spikes by sum only".into());
    }
    Ok(())
}

fn check_spiking(
    s: &crate::SpikeQuant,
    q: &crate::LayerQuant,
    pool: Option<&crate::Pool>,
) -> Result<(), String> {
    if !(2..=48).contains(&q.state_bits) {
        return Err(format!(
            "spiking state width {} bits is outside 2..=48",
            q.state_bits
        ));
    }
    let max = (1i64 << (q.state_bits - 1)) - 1;
    if s.threshold < 1 || i64::from(s.threshold) > max {
        return Err(format!(
            "spiking threshold {} is outside 1..={max}",
            s.threshold
        ));
    }
    if s.v_min > 0 || i64::from(s.v_min) < -max - 1 {
        return Err(format!(
            "spiking lower bound {} is outside {}..=0",
            s.v_min,
            -max - 1
        ));
    }
    if q.act_shift != 0 || q.act_min != 0 || q.act_max < 1 {
        return Err(format!(
            "a spiking layer counts spikes: act_shift 0 and act range [0, k_max ≥ 1], not shift {} range [{}, {}]",
            q.act_shift, q.act_min, q.act_max
        ));
    }
    if q.weight_exp.iter().any(|e| *e < 0) {
        return Err("a spiking layer's weight exponents must be non-negative".into());
    }
    if let Some(p) = pool {
        if p.kind != crate::PoolKind::Sum {
            return Err(format!(
                "a spiking layer pools its events with sum pooling, not {}",
                p.kind.name()
            ));
        }
    }
    Ok(())
}

fn check_bias(b: &[usize], channels: usize) -> Result<(), String> {
    if b.iter().product::<usize>() != channels {
        return Err(format!(
            "bias has shape {b:?}, expected {channels} elements"
        ));
    }
    Ok(())
}

fn dense_out(w: &[usize], x: &TensorType, bias: Option<&[usize]>) -> Result<Vec<usize>, String> {
    if w.len() != 2 {
        return Err(format!("dense weight must be [out, in], is {w:?}"));
    }
    if x.numel() != w[1] {
        return Err(format!(
            "dense weight {w:?} expects {} inputs, operand {x} has {}",
            w[1],
            x.numel()
        ));
    }
    if let Some(b) = bias {
        check_bias(b, w[0])?;
    }
    Ok(vec![w[0]])
}

fn conv_out(w: &[usize], g: &crate::ConvGeom, x: &TensorType) -> Result<Vec<usize>, String> {
    if w.len() != 4 {
        return Err(format!("conv weight must be [co, ci/g, kh, kw], is {w:?}"));
    }
    if x.shape.len() != 3 {
        return Err(format!("conv operand must be [c, h, w], is {x}"));
    }
    if g.groups == 0 || !x.shape[0].is_multiple_of(g.groups) || !w[0].is_multiple_of(g.groups) {
        return Err(format!(
            "{} groups do not divide {} input and {} output channels",
            g.groups, x.shape[0], w[0]
        ));
    }
    if w[1] * g.groups != x.shape[0] {
        return Err(format!(
            "conv weight {w:?} with {} groups expects {} input channels, operand {x} has {}",
            g.groups,
            w[1] * g.groups,
            x.shape[0]
        ));
    }
    if [w[2], w[3]] != g.kernel {
        return Err(format!(
            "conv kernel {:?} disagrees with weight {w:?}",
            g.kernel
        ));
    }
    let (oh, ow) = g.out_hw(x.shape[1], x.shape[2]).ok_or_else(|| {
        format!(
            "kernel {:?} does not fit input {x} with pads {:?}",
            g.kernel, g.pads
        )
    })?;
    Ok(vec![w[0], oh, ow])
}

fn pool_out(p: &crate::Pool, s: &[usize]) -> Result<Vec<usize>, String> {
    if s.len() != 3 {
        return Err(format!("pooling operand must be [c, h, w], is {s:?}"));
    }
    let (oh, ow) = p
        .out_hw(s[1], s[2])
        .ok_or_else(|| format!("pool window {:?} does not fit input {s:?}", p.kernel))?;
    Ok(vec![s[0], oh, ow])
}
