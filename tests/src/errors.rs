//! Bad input of every kind gives a clear error of the documented kind and exit code, never a
//! panic, and leaves no output file behind.

use crate::common::{cases, root, temp_dir};
use nmc::synth::{attr_int, attr_ints, ModelBuilder};
use std::path::Path;

/// Runs the CLI in process; returns the error (the test fails if the command succeeds).
fn fails(args: &[&str]) -> nmc::Error {
    let mut argv = vec!["nmc"];
    argv.extend_from_slice(args);
    match nmc::cli::run_args(argv) {
        Ok(()) => panic!("`nmc {}` succeeded", args.join(" ")),
        Err(e) => e,
    }
}

/// Compiling `model` must fail with `kind` and `code`, and must not create the output file nor
/// leave temporary files in the output folder.
fn compile_fails(model: &Path, kind: &str, code: i32) -> String {
    let dir = model.parent().unwrap();
    let out = dir.join("out.loihi2");
    let e = fails(&[
        "compile",
        model.to_str().unwrap(),
        "--target",
        "loihi2",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!((e.kind(), e.exit_code()), (kind, code), "wrong error: {e}");
    assert!(!out.exists(), "a failed compile left {}", out.display());
    let stray: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("nmc-tmp"))
        .collect();
    assert!(stray.is_empty(), "temporary files left behind");
    e.to_string()
}

fn mlp_bytes() -> Vec<u8> {
    std::fs::read(root().join("testdata/models/digits_mlp/model.onnx")).unwrap()
}

#[test]
fn truncated_model_is_a_decode_error() {
    let d = temp_dir("truncated");
    let bytes = mlp_bytes();
    let p = d.join("model.onnx");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let msg = compile_fails(&p, "decode", 1);
    assert!(msg.contains("ONNX") || msg.contains("onnx"), "{msg}");
}

#[test]
fn random_bytes_are_a_decode_error() {
    let d = temp_dir("random");
    let mut rng = nmc::synth::Rng::new(42);
    let bytes: Vec<u8> = (0..4096).map(|_| rng.next_u64() as u8).collect();
    let p = d.join("model.onnx");
    std::fs::write(&p, bytes).unwrap();
    compile_fails(&p, "decode", 1);
}

#[test]
fn every_unsupported_operator_is_listed_at_once() {
    let d = temp_dir("unsupported");
    let mut b = ModelBuilder::new("bad", 13);
    b.input("x", &[-1, 4]);
    b.node("Relu", &["x"], &["a"], vec![]);
    b.node("Sin", &["a"], &["b"], vec![]);
    b.node("Relu", &["b"], &["c"], vec![]);
    b.node("Erf", &["c"], &["y"], vec![]);
    b.output("y");
    let p = d.join("model.onnx");
    std::fs::write(&p, b.finish()).unwrap();
    let msg = compile_fails(&p, "unsupported", 1);
    assert!(msg.contains("Sin_1") && msg.contains("Sin"), "{msg}");
    assert!(msg.contains("Erf_3") && msg.contains("Erf"), "{msg}");
}

#[test]
fn shape_mismatch_names_the_node() {
    let d = temp_dir("shape");
    let mut b = ModelBuilder::new("bad", 13);
    b.input("x", &[-1, 4]);
    b.init("w", &[3, 5], &[0.1; 15]);
    b.node("Gemm", &["x", "w"], &["y"], vec![attr_int("transB", 1)]);
    b.output("y");
    let p = d.join("model.onnx");
    std::fs::write(&p, b.finish()).unwrap();
    let msg = compile_fails(&p, "invalid", 1);
    assert!(msg.contains("Gemm_0"), "{msg}");
}

#[test]
fn missing_input_names_node_and_value() {
    let d = temp_dir("missing");
    let mut b = ModelBuilder::new("bad", 13);
    b.input("x", &[-1, 4]);
    b.node("Add", &["x", "nowhere"], &["y"], vec![]);
    b.output("y");
    let p = d.join("model.onnx");
    std::fs::write(&p, b.finish()).unwrap();
    let msg = compile_fails(&p, "missing-input", 1);
    assert!(msg.contains("nowhere") && msg.contains("Add_0"), "{msg}");
}

#[test]
fn model_too_large_for_the_chip_names_layer_and_resource() {
    // A convolution over a 64×64 image with 320 output channels: 1.3 M neurons, more than the
    // 128 cores × 8,192 neurons of one Loihi 2 chip (each channel alone fits a core).
    let d = temp_dir("toolarge");
    let mut b = ModelBuilder::new("big", 13);
    b.input("x", &[-1, 1, 64, 64]);
    b.init("w", &[320, 1, 3, 3], &[0.1; 2880]);
    b.node(
        "Conv",
        &["x", "w"],
        &["c"],
        vec![attr_ints("pads", &[1, 1, 1, 1])],
    );
    b.node("Relu", &["c"], &["y"], vec![]);
    b.output("y");
    let p = d.join("model.onnx");
    std::fs::write(&p, b.finish()).unwrap();
    let msg = compile_fails(&p, "fit", 3);
    assert!(
        msg.contains("Conv_0") && msg.contains("128 available"),
        "{msg}"
    );
}

#[test]
fn one_neuron_too_wide_for_a_core_names_the_memory() {
    // One neuron with 200,000 inputs needs 200 KB of synaptic memory; a core has 128 KiB.
    let d = temp_dir("wide");
    let n = 200_000;
    let mut b = ModelBuilder::new("wide", 13);
    b.input("x", &[-1, n]);
    b.init("w", &[1, n], &vec![0.01; n as usize]);
    b.node("Gemm", &["x", "w"], &["y"], vec![attr_int("transB", 1)]);
    b.output("y");
    let p = d.join("model.onnx");
    std::fs::write(&p, b.finish()).unwrap();
    let msg = compile_fails(&p, "fit", 3);
    assert!(msg.contains("Gemm_0") && msg.contains("synap"), "{msg}");
}

#[test]
fn corrupt_artifact_exits_4() {
    let case = cases().iter().find(|c| c.name == "digits_mlp").unwrap();
    let d = temp_dir("corrupt");
    let art = d.join("m.loihi2");
    nmc::cli::run_args([
        "nmc",
        "compile",
        case.model.to_str().unwrap(),
        "--target",
        "loihi2",
        "-o",
        art.to_str().unwrap(),
    ])
    .unwrap();
    let bytes = std::fs::read(&art).unwrap();
    let out = d.join("out.npy");
    let inputs = case.dir.join("inputs.npy");
    for (i, bad) in [
        bytes[..bytes.len() / 2].to_vec(),
        b"NMCL2ART garbage".to_vec(),
        vec![0u8; 64],
    ]
    .into_iter()
    .enumerate()
    {
        let p = d.join(format!("bad{i}.loihi2"));
        std::fs::write(&p, bad).unwrap();
        let e = fails(&[
            "run",
            p.to_str().unwrap(),
            "--input",
            inputs.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!((e.kind(), e.exit_code()), ("artifact", 4), "{e}");
        assert!(!out.exists());
    }
}

#[test]
fn input_of_the_wrong_shape_is_rejected() {
    let case = cases().iter().find(|c| c.name == "digits_mlp").unwrap();
    let d = temp_dir("badinput");
    let bad = d.join("bad.npy");
    nmc::npy::write(
        &bad,
        &nmc::npy::Array {
            shape: vec![3, 7],
            data: vec![0.0; 21],
        },
    )
    .unwrap();
    let e = fails(&[
        "eval",
        case.model.to_str().unwrap(),
        "--input",
        bad.to_str().unwrap(),
    ]);
    assert_eq!((e.kind(), e.exit_code()), ("input", 1), "{e}");
    assert!(e.to_string().contains("[3, 7]"), "{e}");
}

#[test]
fn usage_errors_exit_2() {
    let case = cases().iter().find(|c| c.name == "digits_mlp").unwrap();
    let e = fails(&[
        "compile",
        case.model.to_str().unwrap(),
        "--target",
        "loihi2",
        "--emit",
        "bogus",
    ]);
    assert_eq!(e.exit_code(), 2, "{e}");
    let e = fails(&["compile", case.model.to_str().unwrap()]);
    assert_eq!(e.exit_code(), 2, "{e}");
}
