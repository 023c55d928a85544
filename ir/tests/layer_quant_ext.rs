//! The additive `LayerQuant` fields (`act_step`, `act_round`, `pool_first`): their defaults keep
//! the shift-and-floor semantics and are not printed; set, they give Akida's
//! `ceil((acc − threshold) / step)` rule and pooling of potentials; the text format round-trips.

use nmc_ir::{
    activate, activate_div, ActRound, ConstId, Constant, ConvGeom, Graph, Interpreter, Layer,
    LayerQuant, Neuron, Op, Output, Pool, PoolKind, QuantMode, QuantParams, Synapse, TensorType,
    Value,
};

fn quant(bias: Option<ConstId>, step: Option<ConstId>, round: ActRound, first: bool) -> LayerQuant {
    LayerQuant {
        weight_exp: vec![0],
        bias,
        state_bits: 32,
        act_shift: 0,
        act_min: 0,
        act_max: 15,
        scale: 0.5,
        mode: nmc_ir::QuantMode::Step {
            act_step: step,
            act_round: round,
            pool_first: first,
        },
    }
}

#[test]
fn defaults_are_the_shift_and_floor_rule() {
    let mut q = quant(None, None, ActRound::Floor, false);
    q.act_shift = 2;
    q.act_min = -8;
    q.act_max = 7;
    for v in [-13i64, -4, -1, 0, 1, 3, 4, 27, 1000] {
        assert_eq!(activate(v, &q), (v >> 2).clamp(-8, 7), "v = {v}");
        assert_eq!(activate_div(v, &q, 1), activate(v, &q));
    }
}

#[test]
fn ceil_division_by_an_integer_step() {
    let q = quant(None, None, ActRound::Ceil, false);
    // clip(ceil(v / 5), 0, 15)
    let cases = [
        (-7, 0),
        (0, 0),
        (1, 1),
        (5, 1),
        (6, 2),
        (10, 2),
        (11, 3),
        (74, 15),
        (76, 15),
    ];
    for (v, want) in cases {
        assert_eq!(activate_div(v, &q, 5), want, "v = {v}");
    }
    let mut f = q.clone();
    if let QuantMode::Step { act_round, .. } = &mut f.mode {
        *act_round = ActRound::Floor;
    }
    f.act_min = -100;
    assert_eq!(activate_div(-7, &f, 5), -2);
    assert_eq!(activate_div(9, &f, 5), 1);
    // The shift composes with the step: ceil(v / (3 · 4)).
    let mut s = q;
    s.act_shift = 2;
    assert_eq!(activate_div(13, &s, 3), 2);
    assert_eq!(activate_div(12, &s, 3), 1);
}

/// A 1×4×4 input, a 2-channel 1×1 convolution and a global pool, pooled first or last.
fn gap_graph(first: bool, kind: PoolKind) -> Graph {
    let mut g = Graph::new("gap");
    let x = g.add_input(TensorType::f32(vec![1, 4, 4]), "x");
    let q = g.add(
        Op::Quantize(QuantParams {
            scale: 1.0,
            min: 0,
            max: 15,
        }),
        vec![x],
        TensorType::i32(vec![1, 4, 4]),
        None,
    );
    let w = g.consts.add(Constant::i32(vec![2, 1, 1, 1], vec![1, -1]));
    let bias = g.consts.add(Constant::i32(vec![2], vec![-3, 40]));
    let step = g.consts.add(Constant::i32(vec![2], vec![16, 4]));
    let pool = Pool {
        kind,
        kernel: [4, 4],
        strides: [1, 1],
        pads: [0; 4],
        count_include_pad: false,
    };
    let l = g.add(
        Op::Layer(Layer {
            synapses: vec![Synapse::Conv {
                weight: w,
                geom: ConvGeom {
                    kernel: [1, 1],
                    strides: [1, 1],
                    pads: [0; 4],
                    dilations: [1, 1],
                    groups: 1,
                },
            }],
            bias: None,
            neuron: Neuron::Relu,
            pool: Some(pool),
            quant: Some(quant(Some(bias), Some(step), ActRound::Ceil, first)),
        }),
        vec![q],
        TensorType::i32(vec![2, 1, 1]),
        Some("gap".into()),
    );
    g.outputs.push(Output {
        node: l,
        name: "y".into(),
    });
    g
}

fn run(g: &Graph, x: &[f32]) -> Vec<i64> {
    nmc_ir::verify(g).unwrap();
    match &Interpreter::new(g).unwrap().run(&[x]).unwrap()[0] {
        Value::I64(v) => v.clone(),
        Value::F32(_) => panic!("integer layer gave floats"),
    }
}

#[test]
fn pool_first_pools_the_sums_before_bias_and_activation() {
    let x: Vec<f32> = (0..16).map(|i| (i % 7) as f32).collect();
    let sum: i64 = x.iter().map(|v| *v as i64).sum(); // 45
    let ceil = |a: i64, d: i64| -((-a).div_euclid(d));
    // Pool first: channel 0 = ceil((45 − 3) / 16), channel 1 = ceil((−45 + 40) / 4) → 0.
    let want = vec![
        ceil(sum - 3, 16).clamp(0, 15),
        ceil(-sum + 40, 4).clamp(0, 15),
    ];
    assert_eq!(run(&gap_graph(true, PoolKind::Sum), &x), want);
    // Pool last: activations per position, then summed.
    let per = |c: usize| -> i64 {
        x.iter()
            .map(|v| {
                let v = *v as i64;
                if c == 0 {
                    ceil(v - 3, 16).clamp(0, 15)
                } else {
                    ceil(-v + 40, 4).clamp(0, 15)
                }
            })
            .sum()
    };
    assert_eq!(
        run(&gap_graph(false, PoolKind::Sum), &x),
        vec![per(0), per(1)]
    );
    // Max pooling commutes with the monotone activation: both orders agree.
    assert_eq!(
        run(&gap_graph(true, PoolKind::Max), &x),
        run(&gap_graph(false, PoolKind::Max), &x)
    );
}

#[test]
fn text_format_prints_only_non_defaults_and_round_trips() {
    let g = gap_graph(true, PoolKind::Sum);
    let text = nmc_ir::print(&g);
    assert!(text.contains("act_round=ceil"), "{text}");
    assert!(text.contains("act_step=@c"), "{text}");
    assert!(text.contains("pool_first=true"), "{text}");
    let back = nmc_ir::parse(&text).unwrap();
    assert_eq!(nmc_ir::print(&back), text);
    // Parsed constants are summaries (no values), but the graph verifies.
    nmc_ir::verify(&back).unwrap();
    match &back.nodes[2].op {
        Op::Layer(l) => {
            let q = l.quant.as_ref().unwrap();
            assert_eq!((q.act_round(), q.pool_first()), (ActRound::Ceil, true));
            assert!(q.act_step().is_some());
        }
        other => panic!("{other:?}"),
    }

    let mut plain = g.clone();
    if let Op::Layer(l) = &mut plain.nodes[2].op {
        let q = l.quant.as_mut().unwrap();
        q.mode = QuantMode::Shift;
    }
    let text = nmc_ir::print(&plain);
    for key in ["act_round", "act_step", "pool_first"] {
        assert!(!text.contains(key), "default {key} printed:\n{text}");
    }
    assert_eq!(nmc_ir::print(&nmc_ir::parse(&text).unwrap()), text);
}

fn set_step(q: &mut nmc_ir::LayerQuant, step: nmc_ir::ConstId) {
    if let QuantMode::Step { act_step, .. } = &mut q.mode {
        *act_step = Some(step);
    }
}

#[test]
fn verifier_rejects_bad_steps() {
    let mut g = gap_graph(true, PoolKind::Sum);
    let bad = g.consts.add(Constant::i32(vec![2], vec![4, 0]));
    if let Op::Layer(l) = &mut g.nodes[2].op {
        set_step(l.quant.as_mut().unwrap(), bad);
    }
    let e = nmc_ir::verify(&g).unwrap_err().to_string();
    assert!(e.contains("act_step values must be positive"), "{e}");
    let short = g.consts.add(Constant::i32(vec![3], vec![4, 4, 4]));
    if let Op::Layer(l) = &mut g.nodes[2].op {
        set_step(l.quant.as_mut().unwrap(), short);
    }
    let e = nmc_ir::verify(&g).unwrap_err().to_string();
    assert!(e.contains("act_step"), "{e}");
    let mut g = gap_graph(true, PoolKind::Sum);
    if let Op::Layer(l) = &mut g.nodes[2].op {
        l.pool = None;
    }
    g.nodes[2].ty = TensorType::i32(vec![2, 4, 4]);
    let e = nmc_ir::verify(&g).unwrap_err().to_string();
    assert!(e.contains("pool_first without a pool"), "{e}");
}
