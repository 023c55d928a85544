//! Rule tests (start ⇒ goal) and semantics checks of the whole pass.

use super::lang::Table;
use super::rules::{algebra, layout};
use super::*;
use nmc_ir::{ConstPool, Constant, Interpreter, Layer, Neuron, NodeId, Op, Synapse, TensorType};

fn layer(weight: nmc_ir::ConstId, neuron: Neuron) -> Op {
    Op::Layer(Layer {
        synapses: vec![Synapse::Dense { weight }],
        bias: None,
        neuron,
        pool: None,
        quant: None,
    })
}

fn eye(n: usize) -> Constant {
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    Constant::f32(vec![n, n], v)
}

/// a0 = input 0, a1 = reshape, a2 = dense 4×3 relu, a3 = identity linear, a4 = identity relu,
/// a5 = dense 4×3 linear; t0 = [3], t1 = [4], t2 = [2, 2], t3 = [4, 1].
fn fixture() -> (Table, ConstPool) {
    let mut consts = ConstPool::default();
    let w = consts.add(Constant::f32(
        vec![4, 3],
        (0..12).map(|i| i as f32 * 0.25 - 1.0).collect(),
    ));
    let i4 = consts.add(eye(4));
    let mut t = Table::default();
    t.op(&Op::Input { index: 0 }, &Some("x".into()));
    t.op(&Op::Reshape, &None);
    t.op(&layer(w, Neuron::Relu), &None);
    t.op(&layer(i4, Neuron::Linear), &None);
    t.op(&layer(i4, Neuron::Relu), &None);
    t.op(&layer(w, Neuron::Linear), &None);
    for s in [vec![3], vec![4], vec![2, 2], vec![4, 1]] {
        t.ty(&TensorType::f32(s));
    }
    (t, consts)
}

fn check(start: &str, rules: &[egg::Rewrite<Nmc, TypeAnalysis>], goal: &str) {
    let (t, c) = fixture();
    check_rewrite(t, c, start, rules, goal).unwrap();
}

#[test]
fn egraph_reshape_of_reshape() {
    check(
        "(outputs (reshape a1 t3 (reshape a1 t2 (layer a2 t1 (input a0 t0)))))",
        &layout::rules()[..1],
        "(outputs (reshape a1 t3 (layer a2 t1 (input a0 t0))))",
    );
}

#[test]
fn egraph_reshape_elim() {
    check(
        "(outputs (reshape a1 t1 (reshape a1 t2 (layer a2 t1 (input a0 t0)))))",
        &layout::rules(),
        "(outputs (layer a2 t1 (input a0 t0)))",
    );
}

#[test]
fn egraph_reshape_elim_keeps_input_behind_a_view() {
    // An output that is a same-type view of the input stays a view.
    let start = "(outputs (reshape a1 t0 (input a0 t0)))";
    let (t, c) = fixture();
    check_rewrite(t, c, start, &layout::rules(), start).unwrap();
}

#[test]
fn egraph_identity_layer_elim() {
    check(
        "(outputs (layer a3 t1 (layer a2 t1 (input a0 t0))))",
        &algebra::rules(),
        "(outputs (layer a2 t1 (input a0 t0)))",
    );
}

#[test]
fn egraph_relu_of_nonneg() {
    check(
        "(outputs (layer a4 t1 (layer a2 t1 (input a0 t0))))",
        &algebra::rules(),
        "(outputs (layer a2 t1 (input a0 t0)))",
    );
}

#[test]
fn egraph_relu_of_signed_stays() {
    // ReLU over a linear (signed) layer is not a wire.
    let start = "(outputs (layer a4 t1 (layer a5 t1 (input a0 t0))))";
    let (t, c) = fixture();
    assert!(check_rewrite(
        t,
        c,
        start,
        &algebra::rules(),
        "(outputs (layer a5 t1 (input a0 t0)))"
    )
    .is_err());
    let (t, c) = fixture();
    check_rewrite(t, c, start, &rules::layout::rules(), start).unwrap();
}

#[test]
fn egraph_fuse_identity_neuron() {
    // relu(I · linear(W x)) = relu(W x): a4 over a5 becomes a2 (W with relu, interned).
    check(
        "(outputs (layer a4 t1 (layer a5 t1 (input a0 t0))))",
        &algebra::fold_rules(),
        "(outputs (layer a2 t1 (input a0 t0)))",
    );
}

/// conv 3×3 (pads 1) → linear → identity depthwise + global avg pool → reshape → identity relu.
fn gap_graph(seed: u64, groups: usize) -> Graph {
    gap_graph_with(seed, groups, false)
}

/// `relu_on_map`: the ReLU is a depthwise identity conv on `[C, 1, 1]`, before the flatten.
fn gap_graph_with(seed: u64, groups: usize, relu_on_map: bool) -> Graph {
    let mut r = Prng(seed | 1);
    let mut g = Graph::new("gap");
    let (ci, co, h) = (2 * groups, 3 * groups, 4 + seed as usize % 3);
    let x = g.add_input(TensorType::f32(vec![ci, h, h]), "x");
    let w = g.consts.add(Constant::f32(
        vec![co, ci / groups, 3, 3],
        (0..co * ci / groups * 9).map(|_| r.f()).collect(),
    ));
    let b = g
        .consts
        .add(Constant::f32(vec![co], (0..co).map(|_| r.f()).collect()));
    let geom = nmc_ir::ConvGeom {
        kernel: [3, 3],
        strides: [1 + seed as usize % 2, 1],
        pads: [1, 1, 1, 1],
        dilations: [1, 1],
        groups,
    };
    let (oh, ow) = geom.out_hw(h, h).unwrap();
    let conv = g.add(
        Op::Layer(Layer {
            synapses: vec![Synapse::Conv { weight: w, geom }],
            bias: Some(b),
            neuron: Neuron::Linear,
            pool: None,
            quant: None,
        }),
        vec![x],
        TensorType::f32(vec![co, oh, ow]),
        Some("conv".into()),
    );
    let ones = g
        .consts
        .add(Constant::f32(vec![co, 1, 1, 1], vec![1.0; co]));
    let gap = g.add(
        Op::Layer(Layer {
            synapses: vec![Synapse::Conv {
                weight: ones,
                geom: nmc_ir::ConvGeom {
                    kernel: [1, 1],
                    strides: [1, 1],
                    pads: [0; 4],
                    dilations: [1, 1],
                    groups: co,
                },
            }],
            bias: None,
            neuron: Neuron::Linear,
            pool: Some(nmc_ir::Pool {
                kind: nmc_ir::PoolKind::Avg,
                kernel: [oh, ow],
                strides: [1, 1],
                pads: [0; 4],
                count_include_pad: false,
            }),
            quant: None,
        }),
        vec![conv],
        TensorType::f32(vec![co, 1, 1]),
        Some("gap".into()),
    );
    let relu = if relu_on_map {
        let relu = g.add(
            Op::Layer(Layer {
                synapses: vec![Synapse::Conv {
                    weight: ones,
                    geom: nmc_ir::ConvGeom {
                        kernel: [1, 1],
                        strides: [1, 1],
                        pads: [0; 4],
                        dilations: [1, 1],
                        groups: co,
                    },
                }],
                bias: None,
                neuron: Neuron::Relu,
                pool: None,
                quant: None,
            }),
            vec![gap],
            TensorType::f32(vec![co, 1, 1]),
            Some("relu".into()),
        );
        g.add(Op::Reshape, vec![relu], TensorType::f32(vec![co]), None)
    } else {
        let flat = g.add(Op::Reshape, vec![gap], TensorType::f32(vec![co]), None);
        let id = g.consts.add(eye(co));
        g.add(
            layer(id, Neuron::Relu),
            vec![flat],
            TensorType::f32(vec![co]),
            Some("relu".into()),
        )
    };
    g.outputs.push(nmc_ir::Output {
        node: relu,
        name: "y".into(),
    });
    g
}

fn assert_same_outputs(g: &Graph, h: &Graph, seed: u64) {
    let n_in = g.ty(g.inputs[0]).numel();
    let mut r = Prng(seed + 7);
    for _ in 0..4 {
        let x: Vec<f32> = (0..n_in).map(|_| r.f() * 2.0).collect();
        let a = Interpreter::new(g).unwrap().run(&[&x]).unwrap();
        let b = Interpreter::new(h).unwrap().run(&[&x]).unwrap();
        assert_eq!(a.len(), b.len());
        for (a, b) in a.iter().zip(&b) {
            let (a, b) = (a.to_f32(), b.to_f32());
            assert_eq!(a.len(), b.len());
            for (p, q) in a.iter().zip(&b) {
                assert!((p - q).abs() <= 1e-5, "seed {seed}: {p} vs {q}");
            }
        }
    }
}

#[test]
fn egraph_global_avgpool_fold() {
    for (seed, groups, on_map) in [
        (1, 1, false),
        (2, 1, false),
        (3, 2, false),
        (4, 1, false),
        (5, 1, true),
        (6, 2, true),
    ] {
        let g = gap_graph_with(seed, groups, on_map);
        nmc_ir::verify(&g).unwrap();
        let (h, rep) = optimize(&g).unwrap();
        assert!(rep.changed, "{rep:?}");
        let names: Vec<&str> = rep.fired.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"global-avgpool-fold"), "{names:?}");
        assert!(names.contains(&"fuse-identity-neuron"), "{names:?}");
        assert_eq!(names.contains(&"conv1x1-on-vector"), on_map, "{names:?}");
        // One population: dense with relu, straight from the input.
        let layers: Vec<&Layer> = h
            .nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::Layer(l) => Some(l),
                _ => None,
            })
            .collect();
        assert_eq!(layers.len(), 1, "{}", nmc_ir::print(&h));
        assert_eq!(layers[0].neuron, Neuron::Relu);
        assert!(matches!(layers[0].synapses[0], Synapse::Dense { .. }));
        assert_same_outputs(&g, &h, seed);
    }
}

#[test]
fn egraph_global_avgpool_fold_needs_linear_conv() {
    // A ReLU conv does not commute with the average: nothing folds.
    let mut g = gap_graph(1, 1);
    if let Op::Layer(l) = &mut g.nodes[1].op {
        l.neuron = Neuron::Relu;
    }
    let (h, rep) = optimize(&g).unwrap();
    assert!(!rep.fired.iter().any(|(n, _)| n == "global-avgpool-fold"));
    assert_same_outputs(&g, &h, 1);
}

/// Tiny deterministic PRNG (xorshift64*).
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// A random chain of dense layers with identity layers and reshape pairs sprinkled in.
fn random_graph(seed: u64) -> Graph {
    let mut r = Prng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut g = Graph::new(format!("rand{seed}"));
    let mut n = 2 + r.below(5);
    let mut x = g.add_input(TensorType::f32(vec![n]), "x");
    let steps = 2 + r.below(6);
    for k in 0..steps {
        match r.below(5) {
            0 => {
                let id = g.consts.add(eye(n));
                let neuron = if r.below(2) == 0 {
                    Neuron::Linear
                } else {
                    Neuron::Relu
                };
                x = g.add(
                    layer(id, neuron),
                    vec![x],
                    TensorType::f32(vec![n]),
                    Some(format!("id{k}")),
                );
            }
            1 if n.is_multiple_of(2) => {
                let y = g.add(Op::Reshape, vec![x], TensorType::f32(vec![2, n / 2]), None);
                x = g.add(Op::Reshape, vec![y], TensorType::f32(vec![n]), None);
            }
            _ => {
                let m = 2 + r.below(5);
                let w = g.consts.add(Constant::f32(
                    vec![m, n],
                    (0..m * n).map(|_| r.f()).collect(),
                ));
                let neuron = match r.below(3) {
                    0 => Neuron::Linear,
                    1 => Neuron::Relu,
                    _ => Neuron::Clip { lo: 0.0, hi: 0.5 },
                };
                n = m;
                x = g.add(
                    layer(w, neuron),
                    vec![x],
                    TensorType::f32(vec![n]),
                    Some(format!("fc{k}")),
                );
            }
        }
    }
    g.outputs.push(nmc_ir::Output {
        node: x,
        name: "y".into(),
    });
    // Sometimes a second output taps the middle of the chain (fan-out).
    if r.below(3) == 0 && g.nodes.len() > 2 {
        let tap = NodeId(1 + r.below(g.nodes.len() as u64 - 2) as u32);
        g.outputs.push(nmc_ir::Output {
            node: tap,
            name: "tap".into(),
        });
    }
    g
}

#[test]
fn egraph_random_graphs_keep_semantics() {
    let mut changed = 0;
    for seed in 0..120 {
        let g = random_graph(seed);
        nmc_ir::verify(&g).unwrap();
        let (h, rep) = optimize(&g).unwrap();
        changed += rep.changed as usize;
        assert_same_outputs(&g, &h, seed);
        // Deterministic: a second run gives the same graph and report.
        let (h2, rep2) = optimize(&g).unwrap();
        assert_eq!(nmc_ir::print(&h), nmc_ir::print(&h2));
        assert_eq!(rep, rep2);
    }
    assert!(changed > 20, "only {changed} random graphs changed");
}

#[test]
fn egraph_fuse_needs_single_user() {
    // The linear layer a5 is also an output (through a reshape): fusing the ReLU into a copy
    // would run W·x twice on the chip, so the rule does not fire.
    let start = "(outputs (layer a4 t1 (layer a5 t1 (input a0 t0))) \
                 (reshape a1 t2 (layer a5 t1 (input a0 t0))))";
    let (t, c) = fixture();
    check_rewrite(t, c, start, &algebra::fold_rules(), start).unwrap();
}

/// The rules of the fold chain (layout, algebra, folds, conv1x1-on-vector) without the pooling
/// rule and the inverse view rule, whose extra attributes would renumber the goal's symbols.
fn fold_chain_rules() -> Vec<egg::Rewrite<Nmc, TypeAnalysis>> {
    let mut r = layout::rules();
    r.extend(algebra::rules());
    r.extend(algebra::fold_rules());
    r.extend(algebra::view_rules().into_iter().take(1));
    r
}

#[test]
fn egraph_global_avgpool_fold_start_goal() {
    // Symbols from the conversion of `gap_graph`: a0 input, a1 conv, a2 gap, a3 flatten, a4
    // identity relu; t0 input, t1 conv map, t2 [C, 1, 1], t3 [C]. The fold interns a5 (dense,
    // named "conv") and a6 (the view, named "gap"); the fuse interns a7 (dense + ReLU).
    let g = gap_graph(1, 1);
    let mut table = Table::default();
    let start = convert::to_expr(&g, &mut table).unwrap().to_string();
    assert_eq!(
        start,
        "(outputs (layer a4 t3 (reshape a3 t3 (layer a2 t2 (layer a1 t1 (input a0 t0))))))"
    );
    check_rewrite(
        table.clone(),
        g.consts.clone(),
        &start,
        &algebra::fold_rules(),
        "(outputs (layer a4 t3 (reshape a3 t3 (reshape a6 t2 (layer a5 t3 (input a0 t0))))))",
    )
    .unwrap();
    check_rewrite(
        table,
        g.consts.clone(),
        &start,
        &fold_chain_rules(),
        "(outputs (layer a7 t3 (input a0 t0)))",
    )
    .unwrap();
}

#[test]
fn egraph_conv1x1_on_vector_start_goal() {
    // a3 is the ReLU as a depthwise identity conv on [C, 1, 1], before the flatten a4. After the
    // fold (a5, a6), conv1x1-on-vector makes it dense (a7) and the fuse merges it (a8).
    let g = gap_graph_with(5, 1, true);
    let mut table = Table::default();
    let start = convert::to_expr(&g, &mut table).unwrap().to_string();
    assert_eq!(
        start,
        "(outputs (reshape a4 t3 (layer a3 t2 (layer a2 t2 (layer a1 t1 (input a0 t0))))))"
    );
    check_rewrite(
        table,
        g.consts.clone(),
        &start,
        &fold_chain_rules(),
        "(outputs (layer a8 t3 (input a0 t0)))",
    )
    .unwrap();
}

/// Extraction cost of a chip that pools by summing only (Speck).
const SUM_ONLY: NativeOps = NativeOps {
    avg_pool: false,
    sum_pool: true,
    concat: true,
};

/// `x : [ci, h, h]` → conv 3×3 (pads 1) + ReLU + `pool` → flatten → dense (linear) `[5]`.
/// With `tap`, the pooled map is an output too (two consumers).
fn pooled_graph(seed: u64, pool: nmc_ir::Pool, tap: bool) -> Graph {
    let mut r = Prng(seed | 1);
    let mut g = Graph::new("pooled");
    let (ci, co, h) = (2, 3, 4 + 2 * (seed as usize % 2));
    let x = g.add_input(TensorType::f32(vec![ci, h, h]), "x");
    let w = g.consts.add(Constant::f32(
        vec![co, ci, 3, 3],
        (0..co * ci * 9).map(|_| r.f()).collect(),
    ));
    let (ph, pw) = pool.out_hw(h, h).expect("pool fits");
    let b = g.add(
        Op::Layer(Layer {
            synapses: vec![Synapse::Conv {
                weight: w,
                geom: nmc_ir::ConvGeom {
                    kernel: [3, 3],
                    strides: [1, 1],
                    pads: [1, 1, 1, 1],
                    dilations: [1, 1],
                    groups: 1,
                },
            }],
            bias: None,
            neuron: Neuron::Relu,
            pool: Some(pool),
            quant: None,
        }),
        vec![x],
        TensorType::f32(vec![co, ph, pw]),
        Some("conv".into()),
    );
    let n = co * ph * pw;
    let flat = g.add(Op::Reshape, vec![b], TensorType::f32(vec![n]), None);
    let d = g.consts.add(Constant::f32(
        vec![5, n],
        (0..5 * n).map(|_| r.f()).collect(),
    ));
    let fc = g.add(
        layer(d, Neuron::Linear),
        vec![flat],
        TensorType::f32(vec![5]),
        Some("fc".into()),
    );
    g.outputs.push(nmc_ir::Output {
        node: fc,
        name: "y".into(),
    });
    if tap {
        g.outputs.push(nmc_ir::Output {
            node: b,
            name: "map".into(),
        });
    }
    g
}

fn avg_pool(k: usize, pads: usize, count_include_pad: bool) -> nmc_ir::Pool {
    nmc_ir::Pool {
        kind: nmc_ir::PoolKind::Avg,
        kernel: [k, k],
        strides: [k, k],
        pads: [pads; 4],
        count_include_pad,
    }
}

fn pools_of(g: &Graph) -> Vec<nmc_ir::PoolKind> {
    g.nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Layer(l) => l.pool.as_ref().map(|p| p.kind),
            _ => None,
        })
        .collect()
}

#[test]
fn egraph_avgpool_to_sumpool_start_goal() {
    // a0 input, a1 conv + avg pool, a2 flatten, a3 dense; t0 input, t1 pooled map, t2 [12],
    // t3 [5]. The rule interns a4 (dense with W/4) and a5 (the conv with a sum pool).
    let g = pooled_graph(2, avg_pool(2, 0, false), false);
    let mut table = Table::default();
    let start = convert::to_expr(&g, &mut table).unwrap().to_string();
    assert_eq!(
        start,
        "(outputs (layer a3 t3 (reshape a2 t2 (layer a1 t1 (input a0 t0)))))"
    );
    let goal = "(outputs (layer a4 t3 (reshape a2 t2 (layer a5 t1 (input a0 t0)))))";
    check_rewrite_for(
        table.clone(),
        g.consts.clone(),
        &start,
        &rules::pooling::rules(),
        goal,
        SUM_ONLY,
    )
    .unwrap();
    // A chip with both poolings keeps the input's form (equal cost: the older node wins).
    let e = check_rewrite(
        table,
        g.consts.clone(),
        &start,
        &rules::pooling::rules(),
        goal,
    )
    .unwrap_err();
    assert!(e.starts_with("extracted"), "{e}");
}

#[test]
fn egraph_avgpool_to_sumpool_keeps_semantics() {
    for (seed, pool) in [
        (1, avg_pool(2, 0, false)),
        (2, avg_pool(3, 0, false)),
        (3, avg_pool(2, 1, true)),
        (4, avg_pool(3, 1, true)),
    ] {
        let g = pooled_graph(seed, pool.clone(), false);
        nmc_ir::verify(&g).unwrap();
        let (h, rep) = optimize_for(&g, &rules::all(), SUM_ONLY).unwrap();
        assert!(rep.changed, "{pool:?}: {rep:?}");
        assert!(rep.fired.iter().any(|(n, _)| n == "avgpool-to-sumpool"));
        assert_eq!(pools_of(&h), [nmc_ir::PoolKind::Sum], "{pool:?}");
        assert_same_outputs(&g, &h, seed);
        // The consumer's weights are the original times 1/(kh·kw), bit for bit.
        let weights = |g: &Graph| -> Vec<f32> {
            g.nodes
                .iter()
                .find_map(|n| match &n.op {
                    Op::Layer(l) if l.pool.is_none() => {
                        g.consts.get(l.synapses[0].weight()).to_f32()
                    }
                    _ => None,
                })
                .unwrap()
        };
        let f = 1.0 / (pool.kernel[0] * pool.kernel[1]) as f32;
        let want: Vec<f32> = weights(&g).iter().map(|x| x * f).collect();
        assert_eq!(weights(&h), want);
        // Without a target constraint the graph is left alone.
        let (_, rep) = optimize(&g).unwrap();
        assert!(!rep.changed, "{rep:?}");
    }
}

#[test]
fn egraph_avgpool_to_sumpool_needs_one_divisor_and_one_consumer() {
    // Pads not counted in the divisor: border windows divide by less than kh·kw.
    let g = pooled_graph(1, avg_pool(2, 1, false), false);
    let (h, rep) = optimize_for(&g, &rules::all(), SUM_ONLY).unwrap();
    assert!(rep.fired.is_empty(), "{rep:?}");
    assert_eq!(pools_of(&h), [nmc_ir::PoolKind::Avg]);
    // The pooled map is also an output: its average must stay.
    let g = pooled_graph(1, avg_pool(2, 0, false), true);
    let mut table = Table::default();
    let start = convert::to_expr(&g, &mut table).unwrap().to_string();
    check_rewrite_for(
        table,
        g.consts.clone(),
        &start,
        &rules::pooling::rules(),
        &start,
        SUM_ONLY,
    )
    .unwrap();
    let (_, rep) = optimize_for(&g, &rules::all(), SUM_ONLY).unwrap();
    assert!(rep.fired.is_empty(), "{rep:?}");
}

/// A random chain of 3×3 convolutions with random average pools (padded or not, pads counted
/// or not), random neurons and sometimes a tap of a pooled map, ending in flatten → dense.
fn random_pooled_graph(seed: u64) -> Graph {
    let mut r = Prng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
    let mut g = Graph::new(format!("pooled{seed}"));
    let (mut c, mut h) = (1 + r.below(2), 6 + 2 * r.below(3));
    let mut x = g.add_input(TensorType::f32(vec![c, h, h]), "x");
    let mut taps = Vec::new();
    for k in 0..1 + r.below(3) {
        let co = 1 + r.below(3);
        let w = g.consts.add(Constant::f32(
            vec![co, c, 3, 3],
            (0..co * c * 9).map(|_| r.f()).collect(),
        ));
        let pool = match r.below(4) {
            0 => None,
            1 => Some(avg_pool(2, 0, false)),
            2 => Some(avg_pool(2, 1, r.below(2) == 0)),
            _ => Some(avg_pool(3, 0, false)),
        }
        .filter(|p| p.out_hw(h, h).is_some_and(|(a, b)| a > 0 && b > 0));
        let (oh, ow) = pool.as_ref().map_or((h, h), |p| p.out_hw(h, h).unwrap());
        let neuron = match r.below(3) {
            0 => Neuron::Linear,
            1 => Neuron::Relu,
            _ => Neuron::Clip { lo: 0.0, hi: 0.5 },
        };
        x = g.add(
            Op::Layer(Layer {
                synapses: vec![Synapse::Conv {
                    weight: w,
                    geom: nmc_ir::ConvGeom {
                        kernel: [3, 3],
                        strides: [1, 1],
                        pads: [1, 1, 1, 1],
                        dilations: [1, 1],
                        groups: 1,
                    },
                }],
                bias: None,
                neuron,
                pool,
                quant: None,
            }),
            vec![x],
            TensorType::f32(vec![co, oh, ow]),
            Some(format!("conv{k}")),
        );
        if r.below(4) == 0 {
            taps.push(x);
        }
        (c, h) = (co, oh);
        debug_assert_eq!(oh, ow);
    }
    let n = g.ty(x).numel();
    let flat = g.add(Op::Reshape, vec![x], TensorType::f32(vec![n]), None);
    let d = g.consts.add(Constant::f32(
        vec![4, n],
        (0..4 * n).map(|_| r.f()).collect(),
    ));
    let y = g.add(
        layer(d, Neuron::Linear),
        vec![flat],
        TensorType::f32(vec![4]),
        Some("fc".into()),
    );
    g.outputs.push(nmc_ir::Output {
        node: y,
        name: "y".into(),
    });
    for (k, t) in taps.into_iter().enumerate() {
        g.outputs.push(nmc_ir::Output {
            node: t,
            name: format!("tap{k}"),
        });
    }
    g
}

#[test]
fn egraph_random_pooled_graphs_keep_semantics_on_every_target() {
    let targets = [
        NativeOps::ANY,
        SUM_ONLY,
        NativeOps {
            avg_pool: true,
            sum_pool: false,
            concat: true,
        },
    ];
    let mut summed = 0;
    for seed in 0..40 {
        let g = random_pooled_graph(seed);
        nmc_ir::verify(&g).unwrap();
        for (i, &t) in targets.iter().enumerate() {
            let (h, rep) = optimize_for(&g, &rules::all(), t).unwrap();
            assert_same_outputs(&g, &h, seed);
            let (h2, rep2) = optimize_for(&g, &rules::all(), t).unwrap();
            assert_eq!(nmc_ir::print(&h), nmc_ir::print(&h2));
            assert_eq!(rep, rep2);
            let sums = pools_of(&h)
                .iter()
                .filter(|k| **k == nmc_ir::PoolKind::Sum)
                .count();
            // Only a sum-only chip trades an average pool for a sum pool.
            if i == 1 {
                summed += sums;
            } else {
                assert_eq!(sums, 0, "seed {seed}, {t:?}");
            }
        }
    }
    assert!(summed > 10, "only {summed} pools became sums");
}

/// x : [3] → fc (dense 4×3, ReLU) → res = linear(W·x + V·fc) → identity population with
/// `outer` as neuron.
fn residual_graph(res_neuron: Neuron, outer: Neuron) -> Graph {
    let mut r = Prng(11);
    let mut g = Graph::new("res");
    let x = g.add_input(TensorType::f32(vec![3]), "x");
    let mut dense = |g: &mut Graph, o: usize, i: usize| {
        g.consts.add(Constant::f32(
            vec![o, i],
            (0..o * i).map(|_| r.f()).collect(),
        ))
    };
    let (w1, w, v) = (
        dense(&mut g, 4, 3),
        dense(&mut g, 4, 3),
        dense(&mut g, 4, 4),
    );
    let t4 = TensorType::f32(vec![4]);
    let fc = g.add(
        layer(w1, Neuron::Relu),
        vec![x],
        t4.clone(),
        Some("fc".into()),
    );
    let res = g.add(
        Op::Layer(Layer {
            synapses: vec![Synapse::Dense { weight: w }, Synapse::Dense { weight: v }],
            bias: None,
            neuron: res_neuron,
            pool: None,
            quant: None,
        }),
        vec![x, fc],
        t4.clone(),
        Some("res".into()),
    );
    let i4 = g.consts.add(eye(4));
    let y = g.add(layer(i4, outer), vec![res], t4, Some("act".into()));
    g.outputs.push(nmc_ir::Output {
        node: y,
        name: "y".into(),
    });
    g
}

#[test]
fn egraph_fuse_identity_neuron_into_two_groups() {
    // a0 input, a1 fc, a2 res (two groups), a3 identity ReLU; the fuse interns a4 (res + ReLU).
    let g = residual_graph(Neuron::Linear, Neuron::Relu);
    let mut table = Table::default();
    let start = convert::to_expr(&g, &mut table).unwrap().to_string();
    assert_eq!(
        start,
        "(outputs (layer a3 t1 (layer a2 t1 (input a0 t0) (layer a1 t1 (input a0 t0)))))"
    );
    check_rewrite(
        table,
        g.consts.clone(),
        &start,
        &algebra::fold_rules(),
        "(outputs (layer a4 t1 (input a0 t0) (layer a1 t1 (input a0 t0))))",
    )
    .unwrap();
    let (h, rep) = optimize(&g).unwrap();
    assert!(rep.fired.iter().any(|(n, _)| n == "fuse-identity-neuron-2"));
    assert_eq!(
        h.nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Layer(_)))
            .count(),
        2
    );
    assert_same_outputs(&g, &h, 11);
}

#[test]
fn egraph_fuse_two_groups_needs_linear_inner() {
    // A clipped residual sum is not linear: the outer ReLU cannot move into it.
    let g = residual_graph(Neuron::Clip { lo: -1.0, hi: 1.0 }, Neuron::Relu);
    let mut table = Table::default();
    let start = convert::to_expr(&g, &mut table).unwrap().to_string();
    check_rewrite(
        table,
        g.consts.clone(),
        &start,
        &algebra::fold_rules(),
        &start,
    )
    .unwrap();
    let (h, rep) = optimize(&g).unwrap();
    assert!(
        !rep.fired.iter().any(|(n, _)| n.starts_with("fuse")),
        "{rep:?}"
    );
    assert_same_outputs(&g, &h, 11);
}

/// x : [3] → dense 4×3 ReLU → view `shape`.
fn dense_view_graph(shape: Vec<usize>) -> Graph {
    let mut g = Graph::new("view");
    let x = g.add_input(TensorType::f32(vec![3]), "x");
    let w = g.consts.add(Constant::f32(
        vec![4, 3],
        (0..12).map(|i| i as f32 * 0.25 - 1.0).collect(),
    ));
    let fc = g.add(
        layer(w, Neuron::Relu),
        vec![x],
        TensorType::f32(vec![4]),
        Some("fc".into()),
    );
    let v = g.add(Op::Reshape, vec![fc], TensorType::f32(shape), None);
    g.outputs.push(nmc_ir::Output {
        node: v,
        name: "y".into(),
    });
    g
}

#[test]
fn egraph_dense_to_conv1x1_start_goal() {
    // a0 input, a1 dense, a2 view; t0 [3], t1 [4], t2 [4, 1, 1]. The rule interns a3 (the 1×1
    // conv) and t3 ([3, 1, 1]). Both forms are one class; the dense one is extracted (tie).
    let g = dense_view_graph(vec![4, 1, 1]);
    let mut table = Table::default();
    let start = convert::to_expr(&g, &mut table).unwrap().to_string();
    assert_eq!(
        start,
        "(outputs (reshape a2 t2 (layer a1 t1 (input a0 t0))))"
    );
    let conv = "(outputs (layer a3 t2 (reshape a2 t3 (input a0 t0))))";
    let e = check_rewrite(
        table.clone(),
        g.consts.clone(),
        &start,
        &algebra::view_rules(),
        conv,
    )
    .unwrap_err();
    assert!(e.starts_with("extracted"), "{e}");
    check_rewrite(
        table,
        g.consts.clone(),
        &start,
        &algebra::view_rules(),
        &start,
    )
    .unwrap();
    // Both directions together saturate (the inverse finds the original weights again).
    let (h, rep) = optimize(&g).unwrap();
    assert_eq!(rep.stop_reason, "saturated", "{rep:?}");
    assert!(rep.fired.iter().any(|(n, _)| n == "dense-to-conv1x1"));
    assert!(!rep.changed);
    assert_eq!(nmc_ir::print(&h), nmc_ir::print(&g));
}

#[test]
fn egraph_dense_to_conv1x1_needs_a_pointwise_view() {
    // A [2, 2] view is not a map of 1×1 pixels: no convolution form.
    let g = dense_view_graph(vec![2, 2]);
    let (_, rep) = optimize(&g).unwrap();
    assert!(
        !rep.fired.iter().any(|(n, _)| n == "dense-to-conv1x1"),
        "{rep:?}"
    );
}

#[test]
fn egraph_conv1x1_round_trip_saturates() {
    // conv1x1-on-vector then dense-to-conv1x1 returns to the input's kernel, not a copy.
    for on_map in [false, true] {
        let g = gap_graph_with(5, 1, on_map);
        let (_, rep) = optimize(&g).unwrap();
        assert_eq!(rep.stop_reason, "saturated", "{rep:?}");
    }
}

/// Siblings over `x : [3]` (or `[2, 5, 5]` with `conv`): population `a` (`ca` channels, with a
/// bias) and `b` (`cb` channels, neuron `nb`), concatenated along channels; with `hot`, a dense
/// consumer of 40 outputs reads the concatenation (and is the slowest population).
fn siblings_graph(seed: u64, ca: usize, cb: usize, nb: Neuron, conv: bool, hot: bool) -> Graph {
    let mut r = Prng(seed | 1);
    let mut g = Graph::new("siblings");
    let (xs, tail) = if conv {
        (vec![2, 5, 5], vec![5, 5])
    } else {
        (vec![3], vec![])
    };
    let x = g.add_input(TensorType::f32(xs.clone()), "x");
    let geom = nmc_ir::ConvGeom {
        kernel: [3, 3],
        strides: [1, 1],
        pads: [1; 4],
        dilations: [1, 1],
        groups: 1,
    };
    let mut pop = |g: &mut Graph, c: usize, neuron: Neuron, bias: bool, name: &str| {
        let per: usize = if conv { 2 * 9 } else { 3 };
        let mut shape = vec![c];
        if conv {
            shape.extend([2, 3, 3]);
        } else {
            shape.push(3);
        }
        let weight = g
            .consts
            .add(Constant::f32(shape, (0..c * per).map(|_| r.f()).collect()));
        let bias = bias.then(|| {
            g.consts
                .add(Constant::f32(vec![c], (0..c).map(|_| r.f()).collect()))
        });
        let synapses = vec![if conv {
            Synapse::Conv {
                weight,
                geom: geom.clone(),
            }
        } else {
            Synapse::Dense { weight }
        }];
        let mut ty = vec![c];
        ty.extend(&tail);
        g.add(
            Op::Layer(Layer {
                synapses,
                bias,
                neuron,
                pool: None,
                quant: None,
            }),
            vec![x],
            TensorType::f32(ty),
            Some(name.into()),
        )
    };
    let a = pop(&mut g, ca, Neuron::Relu, true, "a");
    let b = pop(&mut g, cb, nb, false, "b");
    let mut ty = vec![ca + cb];
    ty.extend(&tail);
    let cat = g.add(
        Op::Concat { axis: 0 },
        vec![a, b],
        TensorType::f32(ty.clone()),
        Some("cat".into()),
    );
    let out = if hot {
        let n_in: usize = ty.iter().product();
        let flat = g.add(
            Op::Reshape,
            vec![cat],
            TensorType::f32(vec![n_in]),
            Some("flat".into()),
        );
        let w = g.consts.add(Constant::f32(
            vec![40, n_in],
            (0..40 * n_in).map(|_| r.f()).collect(),
        ));
        g.add(
            layer(w, Neuron::Linear),
            vec![flat],
            TensorType::f32(vec![40]),
            Some("fc".into()),
        )
    } else {
        cat
    };
    g.outputs.push(nmc_ir::Output {
        node: out,
        name: "y".into(),
    });
    g
}

/// Concatenation nodes and layer nodes of a graph.
fn concats_and_layers(g: &Graph) -> (usize, usize) {
    let n = |f: fn(&Op) -> bool| g.nodes.iter().filter(|n| f(&n.op)).count();
    (
        n(|o| matches!(o, Op::Concat { .. })),
        n(|o| matches!(o, Op::Layer(_))),
    )
}

#[test]
fn egraph_merge_siblings_start_goal() {
    // a0 input, a1/a2 the siblings, a3 concat, a4 reshape, a5 the hot consumer; the rule interns
    // a6 (both siblings stacked). t0 [3], t1 [2], t2 [4], t3 [6], t4 [40].
    let g = siblings_graph(1, 2, 4, Neuron::Relu, false, true);
    let mut table = Table::default();
    let start = convert::to_expr(&g, &mut table).unwrap().to_string();
    assert_eq!(
        start,
        "(outputs (layer a5 t4 (reshape a4 t3 (concat a3 t3 (layer a1 t1 (input a0 t0)) \
         (layer a2 t2 (input a0 t0))))))"
    );
    let goal = "(outputs (layer a5 t4 (reshape a4 t3 (layer a6 t3 (input a0 t0)))))";
    check_rewrite(
        table.clone(),
        g.consts.clone(),
        &start,
        &rules::mapping::rules(),
        goal,
    )
    .unwrap();
    // Without the hot consumer the merged pair would be the slowest population: it stays split.
    let g = siblings_graph(1, 2, 4, Neuron::Relu, false, false);
    let mut table = Table::default();
    let start = convert::to_expr(&g, &mut table).unwrap().to_string();
    let merged = "(outputs (layer a4 t3 (input a0 t0)))";
    let e = check_rewrite(
        table.clone(),
        g.consts.clone(),
        &start,
        &rules::mapping::rules(),
        merged,
    )
    .unwrap_err();
    assert!(e.starts_with("extracted"), "{e}");
    // A chip without a concatenation takes the merged form even so.
    let no_concat = NativeOps {
        concat: false,
        ..NativeOps::ANY
    };
    check_rewrite_for(
        table,
        g.consts.clone(),
        &start,
        &rules::mapping::rules(),
        merged,
        no_concat,
    )
    .unwrap();
}

#[test]
fn egraph_merge_siblings_needs_equal_neurons_and_one_consumer() {
    // Different neurons: not one population.
    let g = siblings_graph(2, 2, 4, Neuron::Linear, false, true);
    let (h, rep) = optimize(&g).unwrap();
    assert!(
        !rep.fired.iter().any(|(n, _)| n == "merge-siblings"),
        "{rep:?}"
    );
    assert_eq!(concats_and_layers(&h), (1, 3));
    // A sibling that is also an output has two consumers: merging would duplicate it.
    let mut g = siblings_graph(3, 2, 4, Neuron::Relu, false, true);
    let a = g
        .nodes
        .iter()
        .position(|n| n.name.as_deref() == Some("a"))
        .unwrap();
    g.outputs.push(nmc_ir::Output {
        node: NodeId(a as u32),
        name: "tap".into(),
    });
    let (_, rep) = optimize(&g).unwrap();
    assert!(
        !rep.fired.iter().any(|(n, _)| n == "merge-siblings"),
        "{rep:?}"
    );
}

#[test]
fn egraph_merge_siblings_keeps_semantics() {
    for (seed, conv) in [(1, false), (2, false), (3, true), (4, true)] {
        let g = siblings_graph(seed, 2 + seed as usize % 3, 3, Neuron::Relu, conv, true);
        nmc_ir::verify(&g).unwrap();
        let (h, rep) = optimize(&g).unwrap();
        assert!(rep.changed, "{rep:?}");
        assert_eq!(concats_and_layers(&h), (0, 2), "{}", nmc_ir::print(&h));
        assert_same_outputs(&g, &h, seed);
    }
}

/// Convolution siblings over `x : [2, 5, 5]`, both ReLU with one consumer, of kernels and pads
/// `(ka, pa)` and `(kb, pb)` (each must give a 5×5 map), concatenated along channels.
fn conv_siblings_graph(
    seed: u64,
    (ka, pa): ([usize; 2], [usize; 4]),
    (kb, pb): ([usize; 2], [usize; 4]),
) -> Graph {
    let mut r = Prng(seed | 1);
    let mut g = Graph::new("conv-siblings");
    let x = g.add_input(TensorType::f32(vec![2, 5, 5]), "x");
    let mut pop = |g: &mut Graph, c: usize, kernel: [usize; 2], pads: [usize; 4], name: &str| {
        let n = c * 2 * kernel[0] * kernel[1];
        let weight = g.consts.add(Constant::f32(
            vec![c, 2, kernel[0], kernel[1]],
            (0..n).map(|_| r.f()).collect(),
        ));
        let bias = Some(
            g.consts
                .add(Constant::f32(vec![c], (0..c).map(|_| r.f()).collect())),
        );
        let geom = nmc_ir::ConvGeom {
            kernel,
            strides: [1, 1],
            pads,
            dilations: [1, 1],
            groups: 1,
        };
        g.add(
            Op::Layer(Layer {
                synapses: vec![Synapse::Conv { weight, geom }],
                bias,
                neuron: Neuron::Relu,
                pool: None,
                quant: None,
            }),
            vec![x],
            TensorType::f32(vec![c, 5, 5]),
            Some(name.into()),
        )
    };
    let a = pop(&mut g, 3, ka, pa, "a");
    let b = pop(&mut g, 2, kb, pb, "b");
    let cat = g.add(
        Op::Concat { axis: 0 },
        vec![a, b],
        TensorType::f32(vec![5, 5, 5]),
        Some("cat".into()),
    );
    g.outputs.push(nmc_ir::Output {
        node: cat,
        name: "y".into(),
    });
    g
}

#[test]
fn egraph_merge_siblings_embeds_a_smaller_kernel() {
    // A fire module's expands (1×1 and 3×3 "same"), either order, and an off-centre 2×2 kernel
    // (pads top/left 0) inside a 3×3 window: one 3×3 population with the same float outputs.
    let k3 = ([3, 3], [1; 4]);
    let no_concat = NativeOps {
        concat: false,
        ..NativeOps::ANY
    };
    for (seed, a, b) in [
        (1, k3, ([1, 1], [0; 4])),
        (2, ([1, 1], [0; 4]), k3),
        (3, k3, ([2, 2], [0, 0, 1, 1])),
    ] {
        let g = conv_siblings_graph(seed, a, b);
        nmc_ir::verify(&g).unwrap();
        let (h, rep) = optimize_for(&g, &rules::all(), no_concat).unwrap();
        assert!(
            rep.fired.iter().any(|(n, _)| n == "merge-siblings"),
            "{rep:?}"
        );
        assert_eq!(concats_and_layers(&h), (0, 1), "{}", nmc_ir::print(&h));
        let merged = h
            .nodes
            .iter()
            .find_map(|n| match &n.op {
                Op::Layer(l) => Some(l.synapses[0].clone()),
                _ => None,
            })
            .unwrap();
        let Synapse::Conv { geom, weight } = merged else {
            panic!("not a convolution")
        };
        assert_eq!((geom.kernel, geom.pads), k3);
        assert_eq!(h.consts.get(weight).shape, vec![5, 2, 3, 3]);
        assert_same_outputs(&g, &h, seed);
    }
}

#[test]
fn egraph_merge_siblings_needs_one_kernel_inside_the_other() {
    // 1×3 and 3×1 windows: neither contains the other. Two 2×2 windows shifted by one pixel
    // (pads top/left 0 and 1): same size, but one starts before the other ends. Both pairs give
    // 5×5 maps, so only the geometry stops the merge.
    let no_concat = NativeOps {
        concat: false,
        ..NativeOps::ANY
    };
    for (a, b) in [
        (([1, 3], [0, 1, 0, 1]), ([3, 1], [1, 0, 1, 0])),
        (([2, 2], [0, 0, 1, 1]), ([2, 2], [1, 1, 0, 0])),
    ] {
        let g = conv_siblings_graph(4, a, b);
        nmc_ir::verify(&g).unwrap();
        let (h, rep) = optimize_for(&g, &rules::all(), no_concat).unwrap();
        assert!(
            !rep.fired.iter().any(|(n, _)| n == "merge-siblings"),
            "{a:?} {b:?}: {rep:?}"
        );
        assert_eq!(concats_and_layers(&h), (1, 2));
    }
}
