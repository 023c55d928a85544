//! The e-graph pass (issue #7) on the shipped models: -O2 keeps the float semantics of -O0, the
//! rewritten graphs still compile and emulate bit-exactly, and the pass is deterministic.

use crate::common::{cases, cases_for, CALIB_SAMPLES};
use nmc::{driver, Options, Target};

fn canonical_at(case: &crate::common::Case, level: u8) -> nmc_ir::Graph {
    canonical_for(case, level, Target::lookup("loihi2").unwrap())
}

fn canonical_for(case: &crate::common::Case, level: u8, target: Target) -> nmc_ir::Graph {
    let imported = nmc::onnx::import_file(&case.model).unwrap();
    let canonical = nmc::passes::canonicalize(&imported.graph).unwrap();
    driver::optimize_at(canonical, level, target).unwrap().0
}

/// Float reference outputs of two graphs agree within 1e-5 (relative above 1).
fn assert_same_float(name: &str, a: &nmc_ir::Graph, b: &nmc_ir::Graph, samples: &[Vec<Vec<f32>>]) {
    let a = driver::interpret(a, samples).unwrap();
    let b = driver::interpret(b, samples).unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.shape, y.shape, "{name}");
        for (p, q) in x.data.iter().zip(&y.data) {
            assert!(
                (p - q).abs() <= 1e-5 * p.abs().max(1.0),
                "{name}: -O0 {p} vs -O2 {q}"
            );
        }
    }
}

/// Pool kinds of a graph's layers, in node order.
fn pool_kinds(g: &nmc_ir::Graph) -> Vec<nmc_ir::PoolKind> {
    g.nodes
        .iter()
        .filter_map(|n| match &n.op {
            nmc_ir::Op::Layer(l) => l.pool.as_ref().map(|p| p.kind),
            _ => None,
        })
        .collect()
}

/// Speck pools by summing: at -O2 the e-graph makes every average pool of dvs_cnn a sum pool
/// (rescaling the next layer's weights by 1/(k·k)), which `quantize_rate` did alone at -O0.
/// The float graphs agree, the integer weights are the same constants, and the artifacts give
/// the same spike counts bit for bit.
#[test]
fn egraph_speck_sum_pooling_matches_quantize_rate_bit_for_bit() {
    for name in ["dvs_cnn", "dvs_cnn_if"] {
        let case = crate::common::cases_for("speck")
            .into_iter()
            .find(|c| c.name == name)
            .expect("shipped case");
        let samples = case.samples(CALIB_SAMPLES);
        let (o0, o2) = (
            canonical_for(case, 0, Target::lookup("speck").unwrap()),
            canonical_for(case, 2, Target::lookup("speck").unwrap()),
        );
        assert_eq!(pool_kinds(&o0), [nmc_ir::PoolKind::Avg; 3], "{name}");
        assert_eq!(pool_kinds(&o2), [nmc_ir::PoolKind::Sum; 3], "{name}");
        assert_same_float(name, &o0, &o2, &samples[..8]);
        // Loihi 2 runs both poolings: ties keep the model's average pools.
        assert_eq!(
            pool_kinds(&canonical_for(case, 2, Target::lookup("loihi2").unwrap())),
            [nmc_ir::PoolKind::Avg; 3]
        );
        let mut outs = Vec::new();
        let mut consts = Vec::new();
        for level in [0u8, 2] {
            let imported = nmc::onnx::import_file(&case.model).unwrap();
            let mut opts = Options::new(Target::lookup("speck").unwrap());
            opts.opt_level = level;
            let c = driver::compile_graph(imported.graph, &samples, &opts, 0).unwrap();
            assert_eq!(
                c.report.notes.join("\n").contains("avgpool-to-sumpool"),
                level == 2,
                "{name} -O{level}"
            );
            let mut cs: Vec<String> = nmc_ir::print(&c.quantized)
                .lines()
                .filter(|l| l.starts_with("const "))
                .filter_map(|l| l.split_once(" : ").map(|(_, rest)| rest.to_string()))
                .collect();
            cs.sort();
            consts.push(cs);
            let art = nmc::LoadedArtifact::decode(&c.artifact).unwrap();
            let n = 8;
            let per = case.inputs.data.len() / case.inputs.shape[0];
            let mut shape = case.inputs.shape.clone();
            shape[0] = n;
            let subset = nmc::npy::Array {
                shape,
                data: case.inputs.data[..n * per].to_vec(),
            };
            let run = art.run(&subset, None).unwrap();
            outs.push((run.int_outputs, run.outputs.data));
        }
        assert_eq!(consts[0], consts[1], "{name}: integer weights differ");
        assert_eq!(outs[0], outs[1], "{name}: -O0 and -O2 artifacts disagree");
    }
}

#[test]
fn egraph_o2_keeps_float_semantics_on_every_loihi2_case() {
    for case in cases() {
        let samples = case.samples(32);
        let a = driver::interpret(&canonical_at(case, 0), &samples).unwrap();
        let b = driver::interpret(&canonical_at(case, 2), &samples).unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.shape, y.shape, "{}", case.name);
            for (p, q) in x.data.iter().zip(&y.data) {
                assert!(
                    (p - q).abs() <= 1e-5 * p.abs().max(1.0),
                    "{}: -O0 {p} vs -O2 {q}",
                    case.name
                );
            }
        }
    }
}

/// Integer chip outputs of the quantised reference for one sample.
fn reference_ints(graph: &nmc_ir::Graph, sample: &[f32]) -> Vec<i64> {
    let vals = nmc_ir::Interpreter::new(graph)
        .unwrap()
        .run_all(&[sample])
        .unwrap();
    let out = graph.node(graph.outputs[0].node).inputs[0];
    match vals[out.index()].as_ref().unwrap() {
        nmc_ir::Value::I64(v) => v.clone(),
        nmc_ir::Value::F32(_) => panic!("chip output is not integer"),
    }
}

#[test]
fn egraph_global_avgpool_fold_compiles_and_emulates_bit_exactly() {
    let case = cases_for("loihi2")
        .into_iter()
        .find(|c| c.name == "digits_cnn_akida_gap")
        .expect("shipped case");
    for target in [
        Target::lookup("loihi2").unwrap(),
        Target::lookup("akd1000").unwrap(),
    ] {
        let mut layers = Vec::new();
        for level in [0u8, 2] {
            let imported = nmc::onnx::import_file(&case.model).unwrap();
            let mut opts = Options::new(target);
            opts.opt_level = level;
            let c = driver::compile_graph(imported.graph, &case.samples(CALIB_SAMPLES), &opts, 0)
                .unwrap();
            let n_layers = c
                .quantized
                .nodes
                .iter()
                .filter(|n| matches!(n.op, nmc_ir::Op::Layer(_)))
                .count();
            layers.push(n_layers);
            let notes = c.report.notes.join("\n");
            assert_eq!(
                notes.contains("global-avgpool-fold"),
                level == 2,
                "{target:?} -O{level}: {notes}"
            );
            let art = nmc::LoadedArtifact::decode(&c.artifact).unwrap();
            let n = 16;
            let per = case.inputs.data.len() / case.inputs.shape[0];
            let mut shape = case.inputs.shape.clone();
            shape[0] = n;
            let subset = nmc::npy::Array {
                shape,
                data: case.inputs.data[..n * per].to_vec(),
            };
            let run = art.run(&subset, None).unwrap();
            if target == Target::lookup("loihi2").unwrap() {
                for (i, got) in run.int_outputs.iter().enumerate() {
                    let want =
                        reference_ints(&c.quantized, &case.inputs.data[i * per..(i + 1) * per]);
                    assert_eq!(got, &want, "{target:?} -O{level}: sample {i}");
                }
            }
        }
        // Loihi 2: conv3 + global average pool + ReLU become one dense population (the Akida
        // quantiser already merges the pool into its layers, so the count stays there).
        if target == Target::lookup("loihi2").unwrap() {
            assert_eq!(layers[0] - 2, layers[1], "{target:?}");
        } else {
            assert!(layers[1] <= layers[0], "{target:?}: {layers:?}");
        }
    }
}

#[test]
fn egraph_compile_is_deterministic_at_o2() {
    let case = cases()
        .iter()
        .find(|c| c.name == "digits_cnn_akida_gap")
        .expect("shipped case");
    let run = || {
        let imported = nmc::onnx::import_file(&case.model).unwrap();
        let opts = Options::new(Target::lookup("loihi2").unwrap());
        let c = driver::compile_graph(imported.graph, &case.samples(8), &opts, 0).unwrap();
        (c.artifact, nmc_ir::print(&c.canonical), c.report.notes)
    };
    assert_eq!(run(), run());
}

#[test]
fn egraph_opt_level_flag_on_compile() {
    let case = cases()
        .iter()
        .find(|c| c.name == "digits_cnn_akida_gap")
        .expect("shipped case");
    let d = crate::common::temp_dir("egraph-opt-level");
    let ir = |level: &str| {
        let out = d.join(format!("m{level}.nmc"));
        let emit = d.join(format!("opt{level}.ir"));
        nmc::cli::run_args(vec![
            "nmc".to_string(),
            "compile".into(),
            case.model.to_string_lossy().into_owned(),
            "--target".into(),
            "loihi2".into(),
            level.into(),
            "-o".into(),
            out.to_string_lossy().into_owned(),
            "--emit".into(),
            format!("quantized-ir={}", emit.display()),
        ])
        .unwrap();
        std::fs::read_to_string(emit).unwrap()
    };
    let (o0, o1, o2) = (ir("-O0"), ir("--opt-level=1"), ir("-O2"));
    assert!(o0.contains("GlobalAveragePool"));
    assert!(!o2.contains("GlobalAveragePool"));
    // -O1 (layout rules only) folds no population.
    assert_eq!(
        o0.matches("= layer(").count(),
        o1.matches("= layer(").count()
    );
    assert_eq!(
        o0.matches("= layer(").count(),
        o2.matches("= layer(").count() + 2
    );
    let e = nmc::cli::run_args(vec![
        "nmc",
        "compile",
        case.model.to_str().unwrap(),
        "--target",
        "loihi2",
        "-O3",
    ])
    .unwrap_err();
    assert!(e.to_string().contains("opt-level"), "{e}");
}

/// A fire-module-like model: two 3×3 ReLU convolutions over one 1×8×8 input, concatenated along
/// channels, then flatten and a dense layer of 10.
fn sibling_branches_model() -> Vec<u8> {
    use nmc::synth::{attr_int, attr_ints, ModelBuilder, Rng};
    let mut rng = Rng::new(17);
    let mut w = |n: usize, s: f32| -> Vec<f32> { (0..n).map(|_| rng.uniform(-s, s)).collect() };
    let mut b = ModelBuilder::new("fire", 13);
    b.input("x", &[-1, 1, 8, 8]);
    let (wa, wb, wf) = (w(4 * 9, 0.6), w(3 * 9, 0.3), w(10 * 7 * 64, 0.1));
    b.init("wa", &[4, 1, 3, 3], &wa)
        .init("wb", &[3, 1, 3, 3], &wb)
        .init("wf", &[10, 7 * 64], &wf);
    let conv = || {
        vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("pads", &[1, 1, 1, 1]),
        ]
    };
    b.node("Conv", &["x", "wa"], &["ca"], conv())
        .node("Relu", &["ca"], &["ra"], vec![])
        .node("Conv", &["x", "wb"], &["cb"], conv())
        .node("Relu", &["cb"], &["rb"], vec![])
        .node("Concat", &["ra", "rb"], &["cat"], vec![attr_int("axis", 1)])
        .node("Flatten", &["cat"], &["flat"], vec![])
        .node("Gemm", &["flat", "wf"], &["y"], vec![attr_int("transB", 1)])
        .output("y");
    b.finish()
}

#[test]
fn egraph_merge_siblings_lets_concatenated_branches_compile() {
    let bytes = sibling_branches_model();
    let mut rng = nmc::synth::Rng::new(3);
    let calib: Vec<Vec<Vec<f32>>> = (0..8)
        .map(|_| vec![(0..64).map(|_| rng.uniform(0.0, 1.0)).collect()])
        .collect();
    for target in [
        Target::lookup("loihi2").unwrap(),
        Target::lookup("speck").unwrap(),
    ] {
        let graph = nmc::onnx::import_bytes(&bytes, None).unwrap().graph;
        let mut opts = Options::new(target);
        opts.opt_level = 0;
        // Without the e-graph: Loihi 2 runs the concatenation (its operands quantised onto one
        // grid, `tests/src/joins.rs`) with three populations; Speck has no concatenation at all.
        match driver::compile_graph(graph.clone(), &calib, &opts, 0) {
            Ok(c) if target == Target::lookup("loihi2").unwrap() => {
                let layers = c
                    .quantized
                    .nodes
                    .iter()
                    .filter(|n| matches!(n.op, nmc_ir::Op::Layer(_)))
                    .count();
                assert_eq!(layers, 3);
            }
            Ok(_) => panic!("{}: -O0 should fail", target.name()),
            Err(e) => {
                assert_ne!(target, Target::lookup("loihi2").unwrap(), "{e}");
                assert!(e.to_string().contains("concat"), "{}: {e}", target.name());
            }
        }
        opts.opt_level = 2;
        let c = driver::compile_graph(graph, &calib, &opts, 0)
            .unwrap_or_else(|e| panic!("{}: {e}", target.name()));
        let eg = c.report.egraph.as_ref().unwrap();
        assert!(
            eg.changed && eg.fired.iter().any(|(r, _)| r == "merge-siblings"),
            "{eg:?}"
        );
        let layers = c
            .quantized
            .nodes
            .iter()
            .filter(|n| matches!(n.op, nmc_ir::Op::Layer(_)))
            .count();
        assert_eq!(layers, 2, "{}", target.name());
        if target == Target::lookup("loihi2").unwrap() {
            // The emulator agrees with the integer reference on the merged population.
            let x = nmc::npy::Array {
                shape: vec![calib.len(), 64],
                data: calib.iter().flat_map(|s| s[0].clone()).collect(),
            };
            let run = nmc::LoadedArtifact::decode(&c.artifact)
                .unwrap()
                .run(&x, None)
                .unwrap();
            for (s, got) in calib.iter().zip(&run.int_outputs) {
                assert_eq!(got, &reference_ints(&c.quantized, &s[0]));
            }
        }
    }
}
