//! Ops as generic attribute maps. The printer and parser only know [`AttrValue`]; this module is
//! the one place that maps each op to and from its attributes, so adding an op touches one file.

use crate::{
    ActRound, Activation, ConstId, ConvGeom, CubaQuant, Layer, LayerQuant, Neuron, Op, Pool,
    PoolKind, QuantMode, QuantParams, Reset, SpikeQuant, SpikingModel, Synapse,
};
use std::collections::BTreeMap;

/// An attribute value of the text format.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// Integer.
    Int(i64),
    /// Float, printed in shortest round-trip form.
    Float(f32),
    /// Boolean.
    Bool(bool),
    /// Bare word.
    Ident(String),
    /// Constant reference `@cN`.
    Const(ConstId),
    /// `[a, b, …]`.
    List(Vec<AttrValue>),
    /// `{k=v, …}` with sorted keys.
    Map(Attrs),
}

/// Sorted attribute map.
pub type Attrs = BTreeMap<String, AttrValue>;

fn ints(v: &[usize]) -> AttrValue {
    AttrValue::List(v.iter().map(|x| AttrValue::Int(*x as i64)).collect())
}

fn geom_attrs(m: &mut Attrs, g: &ConvGeom) {
    m.insert("kernel".into(), ints(&g.kernel));
    m.insert("strides".into(), ints(&g.strides));
    m.insert("pads".into(), ints(&g.pads));
    m.insert("dilations".into(), ints(&g.dilations));
    m.insert("groups".into(), AttrValue::Int(g.groups as i64));
}

fn pool_attrs(p: &Pool) -> Attrs {
    let mut m = Attrs::new();
    m.insert("kind".into(), AttrValue::Ident(p.kind.name().into()));
    m.insert("kernel".into(), ints(&p.kernel));
    m.insert("strides".into(), ints(&p.strides));
    m.insert("pads".into(), ints(&p.pads));
    m.insert(
        "count_include_pad".into(),
        AttrValue::Bool(p.count_include_pad),
    );
    m
}

/// The parameters of a spiking model (without its kind).
fn spiking_attrs(m: &mut Attrs, model: &SpikingModel) {
    let mut f = |k: &str, v: f32| {
        m.insert(k.into(), AttrValue::Float(v));
    };
    match *model {
        SpikingModel::If {
            threshold, v_min, ..
        } => {
            f("threshold", threshold);
            f("v_min", v_min);
        }
        SpikingModel::Lif {
            tau_mem,
            r,
            v_leak,
            threshold,
            v_min,
            ..
        } => {
            f("tau_mem", tau_mem);
            f("r", r);
            f("v_leak", v_leak);
            f("threshold", threshold);
            f("v_min", v_min);
        }
        SpikingModel::CubaLif {
            tau_syn,
            tau_mem,
            r,
            v_leak,
            w_in,
            threshold,
            v_min,
            ..
        } => {
            f("tau_syn", tau_syn);
            f("tau_mem", tau_mem);
            f("r", r);
            f("v_leak", v_leak);
            f("w_in", w_in);
            f("threshold", threshold);
            f("v_min", v_min);
        }
        SpikingModel::SigmaDelta { threshold, relu } => {
            f("threshold", threshold);
            m.insert("relu".into(), AttrValue::Bool(relu));
        }
    }
    match model {
        SpikingModel::If { reset, .. }
        | SpikingModel::Lif { reset, .. }
        | SpikingModel::CubaLif { reset, .. } => {
            m.insert("reset".into(), AttrValue::Ident(reset.name().into()));
        }
        SpikingModel::SigmaDelta { .. } => {}
    }
}

fn read_spiking(kind: &str, r: &Reader) -> Result<Option<SpikingModel>, String> {
    let reset = || -> Result<Reset, String> {
        let w = r.ident("reset")?;
        Reset::from_name(w).ok_or_else(|| format!("{}: unknown reset `{w}`", r.what))
    };
    Ok(Some(match kind {
        "if" => SpikingModel::If {
            threshold: r.float("threshold")?,
            reset: reset()?,
            v_min: r.float("v_min")?,
        },
        "lif" => SpikingModel::Lif {
            tau_mem: r.float("tau_mem")?,
            r: r.float("r")?,
            v_leak: r.float("v_leak")?,
            threshold: r.float("threshold")?,
            reset: reset()?,
            v_min: r.float("v_min")?,
        },
        "cuba_lif" => SpikingModel::CubaLif {
            tau_syn: r.float("tau_syn")?,
            tau_mem: r.float("tau_mem")?,
            r: r.float("r")?,
            v_leak: r.float("v_leak")?,
            w_in: r.float("w_in")?,
            threshold: r.float("threshold")?,
            reset: reset()?,
            v_min: r.float("v_min")?,
        },
        "sigma_delta" => SpikingModel::SigmaDelta {
            threshold: r.float("threshold")?,
            relu: r.bool("relu")?,
        },
        _ => return Ok(None),
    }))
}

fn opt_const(m: &mut Attrs, k: &str, c: Option<ConstId>) {
    if let Some(c) = c {
        m.insert(k.into(), AttrValue::Const(c));
    }
}

/// The attributes of an op, as printed.
pub fn op_attrs(op: &Op) -> Attrs {
    let mut m = Attrs::new();
    match op {
        Op::Input { index } => {
            m.insert("index".into(), AttrValue::Int(*index as i64));
        }
        Op::Dense { weight, bias } => {
            m.insert("weight".into(), AttrValue::Const(*weight));
            opt_const(&mut m, "bias", *bias);
        }
        Op::Conv2d { weight, bias, geom } => {
            m.insert("weight".into(), AttrValue::Const(*weight));
            opt_const(&mut m, "bias", *bias);
            geom_attrs(&mut m, geom);
        }
        Op::Pool2d(p) => m = pool_attrs(p),
        Op::Tensor(t) => m = crate::tensor_op::attrs(t),
        Op::ChannelAffine { scale, shift } => {
            m.insert("scale".into(), AttrValue::Const(*scale));
            m.insert("shift".into(), AttrValue::Const(*shift));
        }
        Op::Act(Activation::Clip { lo, hi }) => {
            m.insert("lo".into(), AttrValue::Float(*lo));
            m.insert("hi".into(), AttrValue::Float(*hi));
        }
        Op::Act(Activation::Spiking(model)) => spiking_attrs(&mut m, model),
        Op::Add | Op::Reshape | Op::Act(Activation::Relu) => {}
        Op::Concat { axis } => {
            m.insert("axis".into(), AttrValue::Int(*axis as i64));
        }
        Op::Transpose { perm } => {
            m.insert("perm".into(), ints(perm));
        }
        Op::Softmax { axis, log } => {
            m.insert("axis".into(), AttrValue::Int(*axis as i64));
            m.insert("log".into(), AttrValue::Bool(*log));
        }
        Op::Layer(l) => {
            let syn = l
                .synapses
                .iter()
                .map(|s| {
                    let mut sm = Attrs::new();
                    match s {
                        Synapse::Dense { weight } => {
                            sm.insert("kind".into(), AttrValue::Ident("dense".into()));
                            sm.insert("weight".into(), AttrValue::Const(*weight));
                        }
                        Synapse::Conv { weight, geom } => {
                            sm.insert("kind".into(), AttrValue::Ident("conv".into()));
                            sm.insert("weight".into(), AttrValue::Const(*weight));
                            geom_attrs(&mut sm, geom);
                        }
                    }
                    AttrValue::Map(sm)
                })
                .collect();
            m.insert("synapses".into(), AttrValue::List(syn));
            opt_const(&mut m, "bias", l.bias);
            let neuron = match l.neuron {
                Neuron::Relu => AttrValue::Ident("relu".into()),
                Neuron::Linear => AttrValue::Ident("linear".into()),
                Neuron::Clip { lo, hi } => {
                    let mut nm = Attrs::new();
                    nm.insert("kind".into(), AttrValue::Ident("clip".into()));
                    nm.insert("lo".into(), AttrValue::Float(lo));
                    nm.insert("hi".into(), AttrValue::Float(hi));
                    AttrValue::Map(nm)
                }
                Neuron::Spiking(model) => {
                    let mut nm = Attrs::new();
                    nm.insert("kind".into(), AttrValue::Ident(model.name().into()));
                    spiking_attrs(&mut nm, &model);
                    AttrValue::Map(nm)
                }
            };
            m.insert("neuron".into(), neuron);
            if let Some(p) = &l.pool {
                m.insert("pool".into(), AttrValue::Map(pool_attrs(p)));
            }
            if let Some(q) = &l.quant {
                let mut qm = Attrs::new();
                qm.insert(
                    "weight_exp".into(),
                    AttrValue::List(
                        q.weight_exp
                            .iter()
                            .map(|e| AttrValue::Int(*e as i64))
                            .collect(),
                    ),
                );
                opt_const(&mut qm, "bias", q.bias);
                qm.insert("state_bits".into(), AttrValue::Int(q.state_bits as i64));
                qm.insert("act_shift".into(), AttrValue::Int(q.act_shift as i64));
                qm.insert("act_min".into(), AttrValue::Int(q.act_min as i64));
                qm.insert("act_max".into(), AttrValue::Int(q.act_max as i64));
                qm.insert("scale".into(), AttrValue::Float(q.scale));
                // The mode's fields, printed only when not the default, so that a shift-and-floor
                // layer prints none.
                opt_const(&mut qm, "act_step", q.act_step());
                if q.act_round() != ActRound::Floor {
                    qm.insert(
                        "act_round".into(),
                        AttrValue::Ident(q.act_round().name().into()),
                    );
                }
                if q.pool_first() {
                    qm.insert("pool_first".into(), AttrValue::Bool(true));
                }
                if let Some(sq) = q.spiking() {
                    let mut sm = Attrs::new();
                    sm.insert("threshold".into(), AttrValue::Int(sq.threshold as i64));
                    sm.insert("v_min".into(), AttrValue::Int(sq.v_min as i64));
                    sm.insert("reset".into(), AttrValue::Ident(sq.reset.name().into()));
                    qm.insert("spiking".into(), AttrValue::Map(sm));
                }
                if let Some(c) = q.cuba() {
                    let mut cm = Attrs::new();
                    cm.insert("du".into(), AttrValue::Int(i64::from(c.du)));
                    cm.insert("dv".into(), AttrValue::Int(i64::from(c.dv)));
                    cm.insert("vth".into(), AttrValue::Int(i64::from(c.vth)));
                    cm.insert("v_bias".into(), AttrValue::Int(i64::from(c.v_bias)));
                    cm.insert("v_min".into(), AttrValue::Int(i64::from(c.v_min)));
                    cm.insert("reset".into(), AttrValue::Ident(c.reset.name().into()));
                    qm.insert("cuba".into(), AttrValue::Map(cm));
                }
                m.insert("quant".into(), AttrValue::Map(qm));
            }
        }
        Op::Quantize(q) => {
            m.insert("scale".into(), AttrValue::Float(q.scale));
            m.insert("min".into(), AttrValue::Int(q.min as i64));
            m.insert("max".into(), AttrValue::Int(q.max as i64));
        }
        Op::Dequantize { scale } => {
            m.insert("scale".into(), AttrValue::Float(*scale));
        }
        Op::FakeQuant {
            scale,
            zero_point,
            min,
            max,
        } => {
            m.insert("scale".into(), AttrValue::Float(*scale));
            m.insert("zero_point".into(), AttrValue::Int(*zero_point as i64));
            m.insert("min".into(), AttrValue::Int(*min as i64));
            m.insert("max".into(), AttrValue::Int(*max as i64));
        }
    }
    m
}

/// Typed access to an op's attribute map, with messages naming the op (shared by every op's text
/// form).
pub(crate) struct Reader<'a> {
    pub(crate) m: &'a Attrs,
    pub(crate) what: &'a str,
}

impl<'a> Reader<'a> {
    pub(crate) fn get(&self, k: &str) -> Result<&'a AttrValue, String> {
        self.m
            .get(k)
            .ok_or_else(|| format!("{}: missing attribute `{k}`", self.what))
    }
    pub(crate) fn int(&self, k: &str) -> Result<i64, String> {
        match self.get(k)? {
            AttrValue::Int(i) => Ok(*i),
            _ => Err(format!("{}: `{k}` must be an integer", self.what)),
        }
    }
    pub(crate) fn usize(&self, k: &str) -> Result<usize, String> {
        usize::try_from(self.int(k)?)
            .map_err(|_| format!("{}: `{k}` must be non-negative", self.what))
    }
    pub(crate) fn i32(&self, k: &str) -> Result<i32, String> {
        i32::try_from(self.int(k)?).map_err(|_| format!("{}: `{k}` out of range", self.what))
    }
    pub(crate) fn float(&self, k: &str) -> Result<f32, String> {
        match self.get(k)? {
            AttrValue::Float(f) => Ok(*f),
            AttrValue::Int(i) => Ok(*i as f32),
            _ => Err(format!("{}: `{k}` must be a number", self.what)),
        }
    }
    pub(crate) fn bool(&self, k: &str) -> Result<bool, String> {
        match self.get(k)? {
            AttrValue::Bool(b) => Ok(*b),
            _ => Err(format!("{}: `{k}` must be true or false", self.what)),
        }
    }
    pub(crate) fn ident(&self, k: &str) -> Result<&'a str, String> {
        match self.get(k)? {
            AttrValue::Ident(s) => Ok(s),
            _ => Err(format!("{}: `{k}` must be a word", self.what)),
        }
    }
    pub(crate) fn konst(&self, k: &str) -> Result<ConstId, String> {
        match self.get(k)? {
            AttrValue::Const(c) => Ok(*c),
            _ => Err(format!("{}: `{k}` must be a constant @cN", self.what)),
        }
    }
    pub(crate) fn opt_const(&self, k: &str) -> Result<Option<ConstId>, String> {
        if self.m.contains_key(k) {
            self.konst(k).map(Some)
        } else {
            Ok(None)
        }
    }
    pub(crate) fn list(&self, k: &str) -> Result<&'a [AttrValue], String> {
        match self.get(k)? {
            AttrValue::List(l) => Ok(l),
            _ => Err(format!("{}: `{k}` must be a list", self.what)),
        }
    }
    pub(crate) fn usizes(&self, k: &str) -> Result<Vec<usize>, String> {
        self.list(k)?
            .iter()
            .map(|v| match v {
                AttrValue::Int(i) if *i >= 0 => Ok(*i as usize),
                _ => Err(format!(
                    "{}: `{k}` must list non-negative integers",
                    self.what
                )),
            })
            .collect()
    }
    pub(crate) fn array<const N: usize>(&self, k: &str) -> Result<[usize; N], String> {
        let v = self.usizes(k)?;
        v.try_into()
            .map_err(|_| format!("{}: `{k}` must have {N} entries", self.what))
    }
    pub(crate) fn signed(&self, k: &str) -> Result<Vec<i64>, String> {
        self.list(k)?
            .iter()
            .map(|v| match v {
                AttrValue::Int(i) => Ok(*i),
                _ => Err(format!("{}: `{k}` must be a list of integers", self.what)),
            })
            .collect()
    }
    pub(crate) fn map(&self, k: &str) -> Result<&'a Attrs, String> {
        match self.get(k)? {
            AttrValue::Map(m) => Ok(m),
            _ => Err(format!("{}: `{k}` must be a map", self.what)),
        }
    }
}

fn read_geom(r: &Reader) -> Result<ConvGeom, String> {
    Ok(ConvGeom {
        kernel: r.array("kernel")?,
        strides: r.array("strides")?,
        pads: r.array("pads")?,
        dilations: r.array("dilations")?,
        groups: r.usize("groups")?,
    })
}

fn read_pool(m: &Attrs) -> Result<Pool, String> {
    let r = Reader { m, what: "pool" };
    let kind = match r.ident("kind")? {
        "max" => PoolKind::Max,
        "avg" => PoolKind::Avg,
        "sum" => PoolKind::Sum,
        k => return Err(format!("pool: unknown kind `{k}`")),
    };
    Ok(Pool {
        kind,
        kernel: r.array("kernel")?,
        strides: r.array("strides")?,
        pads: r.array("pads")?,
        count_include_pad: r.bool("count_include_pad")?,
    })
}

/// Rebuilds an op from its mnemonic and attributes (the inverse of [`op_attrs`]).
pub fn op_from_attrs(mnemonic: &str, m: &Attrs) -> Result<Op, String> {
    if let Some(t) = crate::tensor_op::from_attrs(mnemonic, m) {
        return t.map(Op::Tensor);
    }
    let r = Reader { m, what: mnemonic };
    Ok(match mnemonic {
        "input" => Op::Input {
            index: r.usize("index")?,
        },
        "dense" => Op::Dense {
            weight: r.konst("weight")?,
            bias: r.opt_const("bias")?,
        },
        "conv2d" => Op::Conv2d {
            weight: r.konst("weight")?,
            bias: r.opt_const("bias")?,
            geom: read_geom(&r)?,
        },
        "pool2d" => Op::Pool2d(read_pool(m)?),
        "channel_affine" => Op::ChannelAffine {
            scale: r.konst("scale")?,
            shift: r.konst("shift")?,
        },
        "add" => Op::Add,
        "relu" => Op::Act(Activation::Relu),
        "clip" => Op::Act(Activation::Clip {
            lo: r.float("lo")?,
            hi: r.float("hi")?,
        }),
        "concat" => Op::Concat {
            axis: r.usize("axis")?,
        },
        "reshape" => Op::Reshape,
        "transpose" => Op::Transpose {
            perm: r.usizes("perm")?,
        },
        "softmax" => Op::Softmax {
            axis: r.usize("axis")?,
            log: r.bool("log")?,
        },
        "layer" => {
            let synapses = r
                .list("synapses")?
                .iter()
                .map(|s| {
                    let AttrValue::Map(sm) = s else {
                        return Err("layer: synapses must be maps".to_string());
                    };
                    let sr = Reader {
                        m: sm,
                        what: "synapse",
                    };
                    match sr.ident("kind")? {
                        "dense" => Ok(Synapse::Dense {
                            weight: sr.konst("weight")?,
                        }),
                        "conv" => Ok(Synapse::Conv {
                            weight: sr.konst("weight")?,
                            geom: read_geom(&sr)?,
                        }),
                        k => Err(format!("synapse: unknown kind `{k}`")),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            let neuron = match r.get("neuron")? {
                AttrValue::Ident(s) if s == "relu" => Neuron::Relu,
                AttrValue::Ident(s) if s == "linear" => Neuron::Linear,
                AttrValue::Map(nm) => {
                    let nr = Reader {
                        m: nm,
                        what: "neuron",
                    };
                    match nr.ident("kind")? {
                        "clip" => Neuron::Clip {
                            lo: nr.float("lo")?,
                            hi: nr.float("hi")?,
                        },
                        k => match read_spiking(k, &nr)? {
                            Some(model) => Neuron::Spiking(model),
                            None => return Err(format!("neuron: unknown kind `{k}`")),
                        },
                    }
                }
                _ => return Err("layer: unknown neuron".into()),
            };
            let pool = if m.contains_key("pool") {
                Some(read_pool(r.map("pool")?)?)
            } else {
                None
            };
            let quant = if m.contains_key("quant") {
                let qr = Reader {
                    m: r.map("quant")?,
                    what: "quant",
                };
                Some(LayerQuant {
                    weight_exp: qr
                        .list("weight_exp")?
                        .iter()
                        .map(|v| match v {
                            AttrValue::Int(i) => i32::try_from(*i)
                                .map_err(|_| "quant: weight_exp out of range".to_string()),
                            _ => Err("quant: weight_exp must list integers".to_string()),
                        })
                        .collect::<Result<_, _>>()?,
                    bias: qr.opt_const("bias")?,
                    state_bits: qr.usize("state_bits")? as u32,
                    act_shift: qr.usize("act_shift")? as u32,
                    act_min: qr.i32("act_min")?,
                    act_max: qr.i32("act_max")?,
                    scale: qr.float("scale")?,
                    mode: {
                        let step = qr.opt_const("act_step")?;
                        let round = if qr.m.contains_key("act_round") {
                            match qr.ident("act_round")? {
                                "floor" => ActRound::Floor,
                                "ceil" => ActRound::Ceil,
                                k => return Err(format!("quant: unknown act_round `{k}`")),
                            }
                        } else {
                            ActRound::Floor
                        };
                        let pool_first =
                            qr.m.contains_key("pool_first") && qr.bool("pool_first")?;
                        let stepped = step.is_some() || round != ActRound::Floor || pool_first;
                        if qr.m.contains_key("cuba") {
                            if stepped || qr.m.contains_key("spiking") {
                                return Err(
                                    "quant: a cuba layer has no act_step, act_round, pool_first or spiking"
                                        .into(),
                                );
                            }
                            let cr = Reader {
                                m: qr.map("cuba")?,
                                what: "cuba",
                            };
                            let w = cr.ident("reset")?;
                            let decay = |k: &str| -> Result<u32, String> {
                                u32::try_from(cr.i32(k)?)
                                    .map_err(|_| format!("cuba: {k} must be non-negative"))
                            };
                            QuantMode::Cuba(CubaQuant {
                                du: decay("du")?,
                                dv: decay("dv")?,
                                vth: cr.i32("vth")?,
                                v_bias: cr.i32("v_bias")?,
                                v_min: cr.i32("v_min")?,
                                reset: Reset::from_name(w)
                                    .ok_or_else(|| format!("cuba: unknown reset `{w}`"))?,
                            })
                        } else if qr.m.contains_key("spiking") {
                            if stepped {
                                return Err(
                                    "quant: a spiking layer has no act_step, act_round or pool_first"
                                        .into(),
                                );
                            }
                            let sr = Reader {
                                m: qr.map("spiking")?,
                                what: "spiking",
                            };
                            let w = sr.ident("reset")?;
                            QuantMode::Spiking(SpikeQuant {
                                threshold: sr.i32("threshold")?,
                                v_min: sr.i32("v_min")?,
                                reset: Reset::from_name(w)
                                    .ok_or_else(|| format!("spiking: unknown reset `{w}`"))?,
                            })
                        } else if stepped {
                            QuantMode::Step {
                                act_step: step,
                                act_round: round,
                                pool_first,
                            }
                        } else {
                            QuantMode::Shift
                        }
                    },
                })
            } else {
                None
            };
            Op::Layer(Layer {
                synapses,
                bias: r.opt_const("bias")?,
                neuron,
                pool,
                quant,
            })
        }
        "quantize" => Op::Quantize(QuantParams {
            scale: r.float("scale")?,
            min: r.i32("min")?,
            max: r.i32("max")?,
        }),
        "fake_quant" => Op::FakeQuant {
            scale: r.float("scale")?,
            zero_point: r.i32("zero_point")?,
            min: r.i32("min")?,
            max: r.i32("max")?,
        },
        "dequantize" => Op::Dequantize {
            scale: r.float("scale")?,
        },
        other => match read_spiking(other, &r)? {
            Some(model) => Op::Act(Activation::Spiking(model)),
            None => return Err(format!("unknown op `{other}`")),
        },
    })
}
