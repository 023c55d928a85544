//! The central invariant: the emulator's outputs on the artifact are bit-identical to the
//! reference interpreter's outputs on the quantised graph; and quantisation keeps accuracy.

use crate::common::{argmax, cases, compiled, CALIB_SAMPLES};
use nmc_ir::{Interpreter, Op, Value};

/// Integer values feeding each Dequantize (the chip's outputs) for one sample.
fn reference_ints(graph: &nmc_ir::Graph, sample: &[f32]) -> Vec<i64> {
    let interp = Interpreter::new(graph).unwrap();
    let vals = interp.run_all(&[sample]).unwrap();
    let out = graph.outputs[0].node;
    assert!(matches!(graph.node(out).op, Op::Dequantize { .. }));
    match vals[graph.node(out).inputs[0].index()].as_ref().unwrap() {
        Value::I64(v) => v.clone(),
        Value::F32(_) => panic!("chip output is not integer"),
    }
}

#[test]
fn emulator_equals_quantized_reference_bit_for_bit() {
    for case in cases() {
        let c = compiled(case);
        let art = nmc::LoadedArtifact::decode(&c.artifact).unwrap();
        let n = CALIB_SAMPLES.min(case.inputs.shape[0]);
        let per = case.inputs.data.len() / case.inputs.shape[0];
        let mut shape = case.inputs.shape.clone();
        shape[0] = n;
        let subset = nmc::npy::Array {
            shape,
            data: case.inputs.data[..n * per].to_vec(),
        };
        let run = art
            .run(&subset, None)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        for (i, got) in run.int_outputs.iter().enumerate() {
            let want = reference_ints(&c.quantized, &case.inputs.data[i * per..(i + 1) * per]);
            assert_eq!(
                got, &want,
                "{}: sample {i} differs from the quantised reference",
                case.name
            );
        }
    }
}

/// At least 98 % by default; a case may ask less in case.toml (`min_top1_agreement`, never
/// below 95 %: see `Case::min_top1_agreement`).
#[test]
fn quantized_top1_agrees_with_float_on_at_least_98_percent() {
    for case in cases() {
        let c = compiled(case);
        let n = case.inputs.shape[0];
        let q = nmc::driver::interpret(&c.quantized, &case.samples(n)).unwrap();
        let k = case.expected.data.len() / n;
        let kq = q[0].data.len() / n;
        let agree = (0..n)
            .filter(|&i| {
                argmax(&q[0].data[i * kq..(i + 1) * kq])
                    == argmax(&case.expected.data[i * k..(i + 1) * k])
            })
            .count();
        let rate = agree as f64 / n as f64;
        let min = case.min_top1_agreement();
        assert!(
            rate >= min,
            "{}: quantised top-1 agrees with float on only {rate:.3} (< {min})",
            case.name
        );
    }
}

#[test]
fn emulated_digits_models_reach_95_percent_top1() {
    for name in ["digits_mlp", "digits_cnn"] {
        let case = cases()
            .iter()
            .find(|c| c.name == name)
            .expect("shipped case");
        let c = compiled(case);
        let art = nmc::LoadedArtifact::decode(&c.artifact).unwrap();
        let run = art.run(&case.inputs, None).unwrap();
        let n = case.labels.len();
        let k = run.outputs.data.len() / n;
        let hits = (0..n)
            .filter(|&i| argmax(&run.outputs.data[i * k..(i + 1) * k]) as i64 == case.labels[i])
            .count();
        let acc = hits as f64 / n as f64;
        assert!(
            acc >= 0.95,
            "{name}: emulated top-1 accuracy {acc:.3} < 0.95"
        );
    }
}

/// Samples run in parallel; outputs, integer outputs and every figure of the report are the same,
/// bit for bit, with one thread and with four, on every shipped case of every target.
#[test]
fn runs_are_identical_with_one_thread_and_many() {
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let (one, four) = (pool(1), pool(4));
    for case in crate::common::all_cases() {
        for target in case.targets() {
            let imported = nmc::onnx::import_file(&case.model).unwrap();
            let opts = nmc::Options::new(nmc::Target::lookup(&target).unwrap());
            let Ok(c) = nmc::driver::compile_graph(imported.graph, &case.samples(8), &opts, 0)
            else {
                continue; // cases made not to fit
            };
            let art = nmc::LoadedArtifact::decode(&c.artifact).unwrap();
            let n = 24.min(case.inputs.shape[0]);
            let per = case.inputs.data.len() / case.inputs.shape[0];
            let mut shape = case.inputs.shape.clone();
            shape[0] = n;
            let x = nmc::npy::Array {
                shape,
                data: case.inputs.data[..n * per].to_vec(),
            };
            let a = one.install(|| art.run(&x, None)).unwrap();
            let b = four.install(|| art.run(&x, None)).unwrap();
            let what = format!("{} on {target}", case.name);
            assert_eq!(a.int_outputs, b.int_outputs, "{what}");
            assert_eq!(
                a.outputs
                    .data
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>(),
                b.outputs
                    .data
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>(),
                "{what}"
            );
            assert_eq!(
                serde_json::to_string(&a.perf).unwrap(),
                serde_json::to_string(&b.perf).unwrap(),
                "{what}"
            );
        }
    }
}

/// `run --stream`: on Loihi 2 a graded network settles within each frame, so a stream gives every
/// frame the output an independent run gives it, and a frame that repeats the last one sends
/// almost nothing; the AKD1000 keeps no state (a stream is the frames one by one); on Speck the
/// first frame starts from the reset state, like an independent run.
#[test]
fn streams_reset_only_before_the_first_frame() {
    let params = nmc::target::ChipParams::default();
    let frames = |case: &crate::common::Case, n: usize| {
        let per = case.inputs.data.len() / case.inputs.shape[0];
        let mut data = Vec::new();
        for i in 0..n {
            let x = &case.inputs.data[i * per..(i + 1) * per];
            data.extend_from_slice(x);
            data.extend_from_slice(x); // each frame twice
        }
        let mut shape = case.inputs.shape.clone();
        shape[0] = 2 * n;
        nmc::npy::Array { shape, data }
    };
    for (name, target) in [
        ("digits_mlp", "loihi2"),
        ("digits_cnn", "loihi2"),
        ("digits_cnn_akida", "akd1000"),
        ("dvs_cnn", "speck"),
    ] {
        let case = crate::common::all_cases()
            .iter()
            .find(|c| c.name == name)
            .unwrap();
        let imported = nmc::onnx::import_file(&case.model).unwrap();
        let opts = nmc::Options::new(nmc::Target::lookup(target).unwrap());
        let c = nmc::driver::compile_graph(imported.graph, &case.samples(8), &opts, 0).unwrap();
        let art = nmc::LoadedArtifact::decode(&c.artifact).unwrap();
        let x = frames(case, 6);
        let apart = art.run_with(&x, None, &params).unwrap();
        let stream = art.run_stream(&x, None, &params, &|| {}).unwrap();
        let again = art.run_stream(&x, None, &params, &|| {}).unwrap();
        assert_eq!(
            stream.int_outputs, again.int_outputs,
            "{name}: deterministic"
        );
        match target {
            "speck" => assert_eq!(
                stream.int_outputs[0], apart.int_outputs[0],
                "{name}: the first frame starts from the reset state"
            ),
            _ => assert_eq!(stream.int_outputs, apart.int_outputs, "{name} on {target}"),
        }
        if target == "loihi2" {
            assert!(
                stream.perf.synaptic_events < apart.perf.synaptic_events,
                "{name}: repeated frames send only changes ({} vs {})",
                stream.perf.synaptic_events,
                apart.perf.synaptic_events
            );
        }
    }
}

/// A zero `Pad` before a convolution (PyTorch's `F.pad`, asymmetric here) folds into the
/// convolution's padding: the model compiles for Loihi 2, its float meaning is unchanged, and the
/// emulator equals the quantised reference.
#[test]
fn a_zero_pad_before_a_convolution_runs_on_the_chip() {
    use nmc::synth::{attr_int, ModelBuilder};
    let mut b = ModelBuilder::new("pad-conv", 13);
    b.input("x", &[-1, 1, 8, 8]);
    let w: Vec<f32> = (0..36)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0)
        .collect();
    b.init("w", &[4, 1, 3, 3], &w);
    b.init("fc", &[3, 4 * 9 * 7], &vec![0.01; 3 * 4 * 9 * 7]);
    b.node("Pad", &["x", "pads"], &["p"], vec![]);
    b.node("Conv", &["p", "w"], &["c"], vec![]);
    b.node("Relu", &["c"], &["r"], vec![]);
    b.node("Flatten", &["r"], &["f"], vec![attr_int("axis", 1)]);
    b.node("Gemm", &["f", "fc"], &["y"], vec![attr_int("transB", 1)]);
    b.output("y");
    // N, C, H, W begins then ends: one row on top and two below, one column left.
    let bytes =
        crate::common::with_int_initializer(b.finish(), "pads", vec![0, 0, 1, 1, 0, 0, 2, 0]);
    let imported = nmc::onnx::import_bytes(&bytes, None).unwrap();
    let samples: Vec<Vec<Vec<f32>>> = (0..4)
        .map(|s| {
            vec![(0..64)
                .map(|i| ((i * 13 + s * 5) % 17) as f32 / 17.0)
                .collect()]
        })
        .collect();
    let opts = nmc::Options::new(nmc::Target::lookup("loihi2").unwrap());
    let c = nmc::driver::compile_graph(imported.graph.clone(), &samples, &opts, 0)
        .unwrap_or_else(|e| panic!("{e}"));
    // The canonical graph has no tensor op left: the pad is in the convolution.
    assert!(
        !nmc_ir::print(&c.canonical).contains("pad("),
        "{}",
        nmc_ir::print(&c.canonical)
    );
    let float = nmc::driver::interpret(&imported.graph, &samples).unwrap();
    let canon = nmc::driver::interpret(&c.canonical, &samples).unwrap();
    for (a, b) in float[0].data.iter().zip(&canon[0].data) {
        assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{a} vs {b}");
    }
    let art = nmc::LoadedArtifact::decode(&c.artifact).unwrap();
    let x = nmc::npy::Array {
        shape: vec![4, 1, 8, 8],
        data: samples.iter().flat_map(|s| s[0].clone()).collect(),
    };
    let run = art.run(&x, None).unwrap();
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(
            run.int_outputs[i],
            reference_ints(&c.quantized, &s[0]),
            "sample {i}"
        );
    }
}
