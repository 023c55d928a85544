//! Writing a compiled spiking network back out (`--emit netx=FILE`, `--emit nir=FILE`), so that
//! what nmc found can be taken to Lava, sinabs or any NIR tool.
//!
//! Both writers read the quantised snn-mode graph, the integers the chip runs, not the float
//! model: a netx file holds exactly the registers Lava loads (its layers compile back to the same
//! artifact), and a NIR graph holds those integers as floats with the time constants that give
//! the same decays. Only a chain of CUBA-LIF layers maps (input, then dense or convolution layers
//! each reading the previous one, flattened between a convolution and a dense layer); anything
//! else is an error naming the node and what the format cannot hold.
//!
//! netx (lava-dl 0.6 `netx/hdf5.py`, docs/chips.md §1.6, §7.2): per layer a group `layer/<i>` with
//! `type` (`[1]` fixed-length ASCII), `shape`, `weight` (`float32`, read by netx as integers),
//! convolution geometry as `(h, w)` pairs, and `neuron` (`type` "CUBA", `iDecay` = `du`,
//! `vDecay` = `dv`, `vThMant` = `vth`, `refDelay` 1). Lava's neuron resets to 0 with no voltage
//! bias and no lower bound beyond its 24 bits, and its `Dense` applies netx's weight optimisation
//! to the stored integers, so a layer must have exactly that form (weights that optimisation
//! leaves unchanged).
//!
//! NIR (nir 1.0.8 `serialization.py`, docs/chips.md §4): `version`, `node/type` "NIRGraph",
//! `node/edges` (`[E, 2]` strings) and `node/nodes/<name>`; each layer is a `Linear` (or
//! `Affine`, with a bias) or `Conv2d` node and a neuron node with per-neuron parameters. With
//! timestep `dt` (seconds) a CUBA layer of decays `du`, `dv` and threshold `vth` becomes
//! `CubaLIF { tau_syn: dt·4096/du, w_in: 4096/du, tau_mem: dt·4096/dv, r: 4096/dv, v_leak: 0,
//! v_threshold: vth, v_reset: 0 }` (forward Euler gives back Lava's `u ← (1 − du/4096)·u + a`
//! and `v ← (1 − dv/4096)·v + u`, in units where a weight adds itself), `LIF` when `du` = 4096
//! and `IF { r: 1 }` when also `dv` = 0. NIR has no rounding toward zero, no 24-bit wrap and no
//! subtractive reset in 1.0.8, so the NIR graph is the network's float reading, not bit-exact.

use crate::hdf5::H5Out;
use nmc_ir::{CubaQuant, Graph, LayerQuant, NodeId, Op, Reset, Synapse, CUBA_STATE_LIMIT};

/// One layer of the chain, as both writers need it.
struct ChainLayer<'g> {
    id: NodeId,
    syn: &'g Synapse,
    weights: Vec<i32>,
    weight_shape: Vec<usize>,
    /// The layer's input shape (`[C, H, W]` or `[n]`).
    in_shape: Vec<usize>,
    out_shape: Vec<usize>,
    q: &'g LayerQuant,
    c: CubaQuant,
    /// A flatten sits between the previous layer and this one: the shape it flattens.
    flattened: Option<Vec<usize>>,
}

/// The network as a chain of CUBA layers, or why it is not one.
fn chain(g: &Graph) -> Result<(Vec<usize>, Vec<ChainLayer<'_>>), String> {
    let at = |id: NodeId| g.node_ref(id).to_string();
    let [input] = g.inputs.as_slice() else {
        return Err(format!(
            "the network has {} inputs; the format holds one",
            g.inputs.len()
        ));
    };
    let [output] = g.outputs.as_slice() else {
        return Err(format!(
            "the network has {} outputs; the format holds one",
            g.outputs.len()
        ));
    };
    let order = g
        .topo_order()
        .map_err(|c| format!("{} is on a cycle", at(c.0)))?;
    let mut tail = *input;
    let mut flattened: Option<Vec<usize>> = None;
    let mut layers = Vec::new();
    for id in order {
        let n = g.node(id);
        match &n.op {
            Op::Input { .. } => {}
            Op::Quantize(_) | Op::Reshape | Op::Dequantize { .. } => {
                if n.inputs.first() != Some(&tail) {
                    return Err(format!("{} does not continue the chain of layers", at(id)));
                }
                if matches!(n.op, Op::Reshape) && flattened.is_none() {
                    flattened = Some(g.ty(tail).shape.clone());
                }
                tail = id;
            }
            Op::Layer(l) => {
                let q = l
                    .quant
                    .as_ref()
                    .ok_or_else(|| format!("{} is not quantised", at(id)))?;
                let c = *q.cuba().ok_or_else(|| {
                    format!(
                        "{} is not a CUBA-LIF layer (compile the spiking network for loihi2)",
                        at(id)
                    )
                })?;
                let ([syn], [src]) = (l.synapses.as_slice(), n.inputs.as_slice()) else {
                    return Err(format!(
                        "{} has {} synapse groups; the format holds one input per layer",
                        at(id),
                        l.synapses.len()
                    ));
                };
                if *src != tail {
                    return Err(format!(
                        "{} does not read the previous layer: the format holds a chain",
                        at(id)
                    ));
                }
                if l.pool.is_some() {
                    return Err(format!(
                        "{} pools its spikes; the format has no pooling here",
                        at(id)
                    ));
                }
                let w = g.consts.get(syn.weight());
                layers.push(ChainLayer {
                    id,
                    syn,
                    weights: w
                        .to_i32()
                        .ok_or_else(|| format!("{}: weights are not integers", at(id)))?,
                    weight_shape: w.shape.clone(),
                    in_shape: g.ty(*src).shape.clone(),
                    out_shape: n.ty.shape.clone(),
                    q,
                    c,
                    flattened: flattened.take(),
                });
                tail = id;
            }
            other => {
                return Err(format!(
                    "{} (`{}`) has no place in the format",
                    at(id),
                    other.mnemonic()
                ))
            }
        }
    }
    if output.node != tail {
        return Err("the output is not the last layer of the chain".into());
    }
    if layers.is_empty() {
        return Err("the network has no layers".into());
    }
    Ok((g.ty(*input).shape.clone(), layers))
}

/// The convolution geometry as netx and NIR hold it: symmetric `(h, w)` padding only.
fn conv_pairs(at: &str, geom: &nmc_ir::ConvGeom) -> Result<[[i64; 2]; 3], String> {
    let [t, l, b, r] = geom.pads;
    if t != b || l != r {
        return Err(format!(
            "{at}: padding top/left/bottom/right {t}/{l}/{b}/{r} is not symmetric; the format holds (h, w) padding"
        ));
    }
    let pair = |a: usize, b: usize| [a as i64, b as i64];
    Ok([
        pair(geom.strides[0], geom.strides[1]),
        pair(t, l),
        pair(geom.dilations[0], geom.dilations[1]),
    ])
}

/// The compiled network as a lava-dl netx file.
pub fn netx(g: &Graph) -> Result<Vec<u8>, String> {
    let (input, layers) = chain(g)?;
    let mut groups: Vec<H5Out> = Vec::new();
    if matches!(layers[0].syn, Synapse::Conv { .. }) {
        // A convolution needs the input's shape, which netx takes from an input layer.
        let mut l = H5Out::default();
        l.ascii("type", &["input"]);
        l.i64(
            "shape",
            &[input.len()],
            input.iter().map(|&d| d as i64).collect(),
        );
        groups.push(l);
    }
    for cl in &layers {
        let at = g.node_ref(cl.id).to_string();
        let c = &cl.c;
        if c.reset != Reset::Zero || c.v_bias != 0 || i64::from(c.v_min) != -(CUBA_STATE_LIMIT - 1)
        {
            return Err(format!(
                "{at}: Lava's LIF resets to 0 with no voltage bias or lower bound (here reset {}, v_bias {}, v_min {})",
                c.reset.name(),
                c.v_bias,
                c.v_min
            ));
        }
        if cl.q.bias.is_some() {
            return Err(format!(
                "{at}: a bias current has no netx form (netx biases the voltage)"
            ));
        }
        if cl.q.act_shift != 6 || cl.q.weight_exp.iter().any(|&e| e != 0) {
            return Err(format!(
                "{at}: not Lava's 6-bit alignment with folded weight exponents"
            ));
        }
        if crate::passes::quantize_snn::lava_weights(&cl.weights)? != cl.weights {
            return Err(format!(
                "{at}: netx's weight optimisation would change these weights (Lava would run other numbers)"
            ));
        }
        if cl.flattened.is_some() {
            let mut l = H5Out::default();
            l.ascii("type", &["flatten"]);
            let n: usize = cl.in_shape.iter().product();
            l.i64("shape", &[3], vec![n as i64, 1, 1]);
            groups.push(l);
        }
        let mut l = H5Out::default();
        let shape: Vec<i64> = cl.out_shape.iter().map(|&d| d as i64).collect();
        let w: Vec<f32> = cl.weights.iter().map(|&x| x as f32).collect();
        match cl.syn {
            Synapse::Dense { .. } => {
                l.ascii("type", &["dense"]);
                l.i64("inFeatures", &[], vec![cl.weight_shape[1] as i64]);
                l.i64("outFeatures", &[], vec![cl.weight_shape[0] as i64]);
            }
            Synapse::Conv { geom, .. } => {
                let [stride, padding, dilation] = conv_pairs(&at, geom)?;
                l.ascii("type", &["conv"]);
                l.i64("inChannels", &[], vec![cl.in_shape[0] as i64]);
                l.i64("outChannels", &[], vec![cl.weight_shape[0] as i64]);
                l.i64(
                    "kernelSize",
                    &[2],
                    vec![geom.kernel[0] as i64, geom.kernel[1] as i64],
                );
                l.i64("stride", &[2], stride.to_vec());
                l.i64("padding", &[2], padding.to_vec());
                l.i64("dilation", &[2], dilation.to_vec());
                l.i64("groups", &[], vec![geom.groups as i64]);
            }
        }
        l.i64("shape", &[shape.len()], shape);
        l.f32("weight", &cl.weight_shape, w);
        let n = l.group("neuron");
        n.text("type", &[], &["CUBA"]);
        n.i64("iDecay", &[], vec![i64::from(c.du)]);
        n.i64("vDecay", &[], vec![i64::from(c.dv)]);
        n.i64("vThMant", &[], vec![i64::from(c.vth)]);
        n.i64("refDelay", &[], vec![1]);
        groups.push(l);
    }
    let mut f = H5Out::default();
    let root = f.group("layer");
    for (i, l) in groups.into_iter().enumerate() {
        *root.group(&i.to_string()) = l;
    }
    f.to_bytes()
}

/// The compiled network as a NIR graph, with timestep `dt` seconds.
pub fn nir(g: &Graph, dt: f64) -> Result<Vec<u8>, String> {
    let (input, layers) = chain(g)?;
    let mut f = H5Out::default();
    f.text("version", &[], &["1.0.8"]);
    let node = f.group("node");
    node.text("type", &[], &["NIRGraph"]);
    let nodes = node.group("nodes");
    let dims = |s: &[usize]| s.iter().map(|&d| d as i64).collect::<Vec<i64>>();
    let inp = nodes.group("input");
    inp.text("type", &[], &["Input"]);
    inp.i64("shape", &[input.len()], dims(&input));
    let mut edges: Vec<(String, String)> = Vec::new();
    let mut prev = "input".to_string();
    let mut k = 0usize;
    let mut name = || {
        let s = k.to_string();
        k += 1;
        s
    };
    for cl in &layers {
        let at = g.node_ref(cl.id).to_string();
        let c = &cl.c;
        if c.reset != Reset::Zero || i64::from(c.v_min) != -(CUBA_STATE_LIMIT - 1) {
            return Err(format!(
                "{at}: NIR 1.0.8 resets to v_reset and has no lower bound (here reset {}, v_min {})",
                c.reset.name(),
                c.v_min
            ));
        }
        if let Some(from) = &cl.flattened {
            let fl = name();
            let n = nodes.group(&fl);
            n.text("type", &[], &["Flatten"]);
            n.i64("start_dim", &[], vec![0]);
            n.i64("end_dim", &[], vec![-1]);
            n.i64("input_type", &[from.len()], dims(from));
            edges.push((prev, fl.clone()));
            prev = fl;
        }
        // Weights and biases in the units of the voltage's input: one Loihi unit per weight,
        // the bias current likewise.
        let w: Vec<f32> = cl.weights.iter().map(|&x| x as f32).collect();
        let bias: Option<Vec<f32>> =
            cl.q.bias
                .map(|b| {
                    g.consts
                        .get(b)
                        .to_i32()
                        .map(|v| v.iter().map(|&x| x as f32).collect())
                        .ok_or_else(|| format!("{at}: bias is not integer"))
                })
                .transpose()?;
        let syn = name();
        let s = nodes.group(&syn);
        match cl.syn {
            Synapse::Dense { .. } => match &bias {
                Some(b) => {
                    s.text("type", &[], &["Affine"]);
                    s.f32("bias", &[b.len()], b.clone());
                    s.f32("weight", &cl.weight_shape, w);
                }
                None => {
                    s.text("type", &[], &["Linear"]);
                    s.f32("weight", &cl.weight_shape, w);
                }
            },
            Synapse::Conv { geom, .. } => {
                let [stride, padding, dilation] = conv_pairs(&at, geom)?;
                let co = cl.weight_shape[0];
                s.text("type", &[], &["Conv2d"]);
                s.f32("weight", &cl.weight_shape, w);
                s.f32("bias", &[co], bias.unwrap_or_else(|| vec![0.0; co]));
                s.i64("stride", &[2], stride.to_vec());
                s.i64("padding", &[2], padding.to_vec());
                s.i64("dilation", &[2], dilation.to_vec());
                s.i64("groups", &[], vec![geom.groups as i64]);
                s.i64("input_shape", &[2], dims(&cl.in_shape[1..]));
            }
        }
        edges.push((prev, syn.clone()));
        let neu = name();
        let n = nodes.group(&neu);
        let count: usize = cl.out_shape.iter().product();
        let shape = cl.out_shape.clone();
        let param = |n: &mut H5Out, k: &str, v: f64| {
            n.f32(k, &shape, vec![v as f32; count]);
        };
        // The voltage in Loihi's 6-bit-aligned units, so the threshold is `vth` itself.
        let vth = f64::from(c.vth);
        if c.v_bias != 0 {
            return Err(format!("{at}: a voltage bias has no NIR form here"));
        }
        let (du, dv) = (f64::from(c.du), f64::from(c.dv));
        if c.du == 4096 && c.dv == 0 {
            n.text("type", &[], &["IF"]);
            param(n, "r", 1.0);
            param(n, "v_threshold", vth);
            param(n, "v_reset", 0.0);
        } else if c.dv == 0 {
            return Err(format!(
                "{at}: a non-leaky voltage with a decaying current (du {}, dv 0) has no NIR form",
                c.du
            ));
        } else if c.du == 4096 {
            n.text("type", &[], &["LIF"]);
            param(n, "tau", dt * 4096.0 / dv);
            param(n, "r", 4096.0 / dv);
            param(n, "v_leak", 0.0);
            param(n, "v_threshold", vth);
            param(n, "v_reset", 0.0);
        } else {
            if c.du == 0 {
                return Err(format!(
                    "{at}: a current that never decays (du 0) has no NIR form"
                ));
            }
            n.text("type", &[], &["CubaLIF"]);
            param(n, "tau_syn", dt * 4096.0 / du);
            param(n, "w_in", 4096.0 / du);
            param(n, "tau_mem", dt * 4096.0 / dv);
            param(n, "r", 4096.0 / dv);
            param(n, "v_leak", 0.0);
            param(n, "v_threshold", vth);
            param(n, "v_reset", 0.0);
        }
        edges.push((syn, neu.clone()));
        prev = neu;
    }
    let out = nodes.group("output");
    out.text("type", &[], &["Output"]);
    let last = &layers[layers.len() - 1].out_shape;
    out.i64("shape", &[last.len()], dims(last));
    edges.push((prev, "output".into()));
    edges.sort();
    let flat: Vec<&str> = edges
        .iter()
        .flat_map(|(a, b)| [a.as_str(), b.as_str()])
        .collect();
    f.group("node").text("edges", &[edges.len(), 2], &flat);
    f.to_bytes()
}
