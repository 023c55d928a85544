//! Lowering errors name the node and the problem; the listing is deterministic.

mod common;

use common::*;
use nmc_ir::{Constant, CoreLoc, CoreSlice, Graph, Layer, Mapping, Op, Synapse};
use nmc_loihi2::{listing, loihi2, lower, LowerError, Resource};

fn dense_op(g: &mut Graph, out: usize, n_in: usize, w: i32) -> Op {
    let weight = g
        .consts
        .add(Constant::i32(vec![out, n_in], vec![w; out * n_in]));
    let (neuron, quant) = quant(&mut Rng(5), 1, None);
    Op::Layer(Layer {
        synapses: vec![Synapse::Dense { weight }],
        bias: None,
        neuron,
        pool: None,
        quant: Some(quant),
    })
}

#[test]
fn unsupported_op_and_missing_mapping_name_the_node() {
    let mut g = Graph::new("t");
    let (x, _) = quantized_input(&mut g, vec![4], "x");
    let s = add(
        &mut g,
        Op::Softmax {
            axis: 0,
            log: false,
        },
        vec![x],
        "sm",
    );
    g.outputs.push(nmc_ir::Output {
        node: s,
        name: "p".into(),
    });
    let e = lower(&g, &Mapping::default(), 0, &loihi2()).unwrap_err();
    assert!(
        matches!(&e, LowerError::Unsupported { op, .. } if op == "softmax"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "%2 (\"sm\"): `softmax` cannot be lowered to loihi2"
    );

    let mut g = Graph::new("t");
    let (_, q) = quantized_input(&mut g, vec![4], "x");
    let op = dense_op(&mut g, 3, 4, 2);
    let l = add(&mut g, op, vec![q], "fc");
    dequantize(&mut g, l, "y");
    let e = lower(&g, &Mapping::default(), 0, &loihi2()).unwrap_err();
    assert!(
        matches!(&e, LowerError::Unmapped { node } if node.id == l),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "%2 (\"fc\"): layer has no core mapping");
}

#[test]
fn concat_must_be_flat() {
    let mut g = Graph::new("t");
    let (_, q) = quantized_input(&mut g, vec![2, 3], "x");
    // Axis 1 of [2, 3] ++ [2, 3] interleaves rows: not a flat concatenation.
    let c = add(&mut g, Op::Concat { axis: 1 }, vec![q, q], "cat");
    let op = dense_op(&mut g, 2, 12, 2);
    let l = add(&mut g, op, vec![c], "fc");
    dequantize(&mut g, l, "y");
    let m = single_core_mapping(&g);
    let e = lower(&g, &m, 0, &loihi2()).unwrap_err();
    assert!(
        matches!(&e, LowerError::Invalid { node, .. } if node.id == c),
        "{e:?}"
    );
    assert!(e.to_string().contains("\"cat\"") && e.to_string().contains("axis 1"));

    // Axis 1 of [1, 3] ++ [1, 3] is flat, hence fine.
    let mut g = Graph::new("t");
    let (_, q) = quantized_input(&mut g, vec![1, 3], "x");
    let c = add(&mut g, Op::Concat { axis: 1 }, vec![q, q], "cat");
    let op = dense_op(&mut g, 2, 6, 2);
    let l = add(&mut g, op, vec![c], "fc");
    dequantize(&mut g, l, "y");
    let a = lower(&g, &single_core_mapping(&g), 0, &loihi2()).unwrap();
    assert_eq!(a.populations[0].groups[0].sources.len(), 2);
}

#[test]
fn slices_that_overflow_a_core_do_not_fit() {
    // 5,000 + 5,000 neurons on one core exceed its 8,192.
    let mut g = Graph::new("t");
    let (_, q) = quantized_input(&mut g, vec![1], "x");
    let op = dense_op(&mut g, 5000, 1, 2);
    let a = add(&mut g, op, vec![q], "a");
    let op = dense_op(&mut g, 5000, 1, 2);
    let b = add(&mut g, op, vec![q], "b");
    dequantize(&mut g, a, "ya");
    dequantize(&mut g, b, "yb");
    let mut m = single_core_mapping(&g);
    let e = lower(&g, &m, 0, &loihi2()).unwrap_err();
    let LowerError::DoesNotFit { node, core, fit } = &e else {
        panic!("{e:?}")
    };
    assert_eq!((node.id, *core), (b, 0));
    assert_eq!(
        (fit.resource, fit.needed, fit.available),
        (Resource::Neurons, 10000, 8192)
    );
    assert_eq!(
        e.to_string(),
        "%3 (\"b\"): core 0 does not fit: neurons: needs 10000, a core has 8192"
    );
    // On two cores it fits.
    m.placement.push(CoreLoc {
        chip: 0,
        x: 1,
        y: 0,
    });
    m.layers.insert(b, vec![CoreSlice::channels(1, 0, 5000)]);
    lower(&g, &m, 0, &loihi2()).unwrap();
    // A core outside the mesh is a placement error.
    m.placement[1] = CoreLoc {
        chip: 0,
        x: 8,
        y: 0,
    };
    assert!(matches!(
        lower(&g, &m, 0, &loihi2()),
        Err(LowerError::Placement { core: 1, .. })
    ));
}

#[test]
fn widths_are_checked() {
    let mut g = Graph::new("t");
    let (_, q) = quantized_input(&mut g, vec![4], "x");
    let op = dense_op(&mut g, 3, 4, 3); // odd weights with exponent ≤ 3: not representable
    let l = add(&mut g, op, vec![q], "fc");
    dequantize(&mut g, l, "y");
    let mut g0 = g.clone();
    if let Op::Layer(layer) = &mut g0.node_mut(l).op {
        layer.quant.as_mut().unwrap().weight_exp = vec![0];
    }
    let e = lower(&g0, &single_core_mapping(&g0), 0, &loihi2()).unwrap_err();
    assert!(matches!(&e, LowerError::OutOfRange { .. }), "{e:?}");
    assert!(e.to_string().contains("8-bit even mantissas"), "{e}");
    // With exponent 1 the odd mantissas absorb the doubling.
    let mut g1 = g.clone();
    if let Op::Layer(layer) = &mut g1.node_mut(l).op {
        layer.quant.as_mut().unwrap().weight_exp = vec![1];
    }
    lower(&g1, &single_core_mapping(&g1), 0, &loihi2()).unwrap();
    let mut g2 = g1.clone();
    if let Op::Layer(layer) = &mut g2.node_mut(l).op {
        layer.quant.as_mut().unwrap().state_bits = 32;
    }
    let e = lower(&g2, &single_core_mapping(&g2), 0, &loihi2()).unwrap_err();
    assert!(e.to_string().contains("state width 32 bits"), "{e}");
}

#[test]
fn listing_is_readable_and_stable() {
    let mut g = Graph::new("t");
    let (_, q) = quantized_input(&mut g, vec![1, 4, 4], "image");
    let weight = g.consts.add(Constant::i32(
        vec![2, 1, 3, 3],
        (0..18).map(|i| 2 * (i % 5) - 4).collect(),
    ));
    let bias = g.consts.add(Constant::i32(vec![2], vec![64, -128]));
    let conv = add(
        &mut g,
        Op::Layer(Layer {
            synapses: vec![Synapse::Conv {
                weight,
                geom: nmc_ir::ConvGeom {
                    kernel: [3, 3],
                    strides: [1, 1],
                    pads: [1, 1, 1, 1],
                    dilations: [1, 1],
                    groups: 1,
                },
            }],
            bias: None,
            neuron: nmc_ir::Neuron::Relu,
            pool: Some(nmc_ir::Pool {
                kind: nmc_ir::PoolKind::Max,
                kernel: [2, 2],
                strides: [2, 2],
                pads: [0; 4],
                count_include_pad: false,
            }),
            quant: Some(nmc_ir::LayerQuant {
                weight_exp: vec![1],
                bias: Some(bias),
                state_bits: 24,
                act_shift: 6,
                act_min: 0,
                act_max: 127,
                scale: 0.125,
                mode: nmc_ir::QuantMode::Shift,
            }),
        }),
        vec![q],
        "conv",
    );
    let flat = reshape(&mut g, conv, vec![8], "flat");
    let mut w = vec![0; 24];
    w[2] = 4;
    w[13] = -6;
    let fcw = g.consts.add(Constant::i32(vec![3, 8], w));
    let fc = add(
        &mut g,
        Op::Layer(Layer {
            synapses: vec![Synapse::Dense { weight: fcw }],
            bias: None,
            neuron: nmc_ir::Neuron::Linear,
            pool: None,
            quant: Some(nmc_ir::LayerQuant {
                weight_exp: vec![0],
                bias: None,
                state_bits: 24,
                act_shift: 2,
                act_min: -128,
                act_max: 127,
                scale: 0.5,
                mode: nmc_ir::QuantMode::Shift,
            }),
        }),
        vec![flat],
        "fc",
    );
    dequantize(&mut g, fc, "logits");
    let m = Mapping {
        layers: [
            (
                conv,
                vec![CoreSlice::channels(0, 0, 1), CoreSlice::channels(1, 1, 2)],
            ),
            (fc, vec![CoreSlice::channels(1, 0, 3)]),
        ]
        .into_iter()
        .collect(),
        placement: vec![
            CoreLoc {
                chip: 0,
                x: 0,
                y: 0,
            },
            CoreLoc {
                chip: 0,
                x: 1,
                y: 0,
            },
        ],
    };
    let a = lower(&g, &m, 0xfeed, &loihi2()).unwrap();
    let text = listing(&a);
    let conv_hash = g.consts.get(weight).hash();
    let expected = format!(
        r#"artifact loihi2 format 2 source 000000000000feed chips 1
input 0 "image" [1, 4, 4] scale 0.0625 range [-128, 127]
population 0 "conv" shape [2, 2, 2] pre [2, 4, 4] neurons 32
  neuron sigma-delta state 24b shift 6 act [0, 127] scale 0.125
  group 0 conv in [1, 4, 4] out 2 kernel [3, 3] stride [1, 1] pads [1, 1, 1, 1] dilation [1, 1] groups 1 exp 1 from input 0 (16)
    weights [2, 1, 3, 3] dense nnz 14 hash {conv_hash:016x}
  bias [2] nnz 2 hash {bias_hash:016x}
  pool max kernel [2, 2] stride [2, 2] pads [0, 0, 0, 0]
  slice channels [0, 1) neurons [0, 16) -> core 0 (chip 0, x 0, y 0)
  slice channels [1, 2) neurons [16, 32) -> core 1 (chip 0, x 1, y 0)
population 1 "fc" shape [3] pre [3] neurons 3
  neuron sigma-delta state 24b shift 2 act [-128, 127] scale 0.5
  group 0 dense 3x8 exp 0 from population 0 (8)
    weights [3, 8] csr nnz 2 hash {fc_hash:016x}
  bias none
  slice channels [0, 3) neurons [0, 3) -> core 1 (chip 0, x 1, y 0)
output 0 "logits" [3] scale 0.05 <- population 1
cores 2
  core 0 chip 0 x 0 y 0
  core 1 chip 0 x 1 y 0
"#,
        bias_hash = g.consts.get(bias).hash(),
        fc_hash = g.consts.get(fcw).hash(),
    );
    assert_eq!(text, expected);
    assert_eq!(listing(&a), text);
}
