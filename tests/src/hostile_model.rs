//! Hostile models (issue 16, the model side): each ends in a clear error or a correct result,
//! within seconds and bounded memory, never a panic, a stack overflow or an allocation abort.

use crate::common::temp_dir;
use nmc::synth::{attr_float, attr_int, attr_ints, ModelBuilder};

fn cli(args: &[&str]) -> Result<(), nmc::Error> {
    nmc::cli::run_args(std::iter::once("nmc").chain(args.iter().copied()))
}

/// A Gemm followed by `n` Relu nodes.
fn relu_chain(n: usize) -> Vec<u8> {
    let mut b = ModelBuilder::new("chain", 13);
    b.input("x", &[1, 4]);
    b.init("w", &[3, 4], &[0.5; 12]).init("b", &[3], &[0.1; 3]);
    b.node(
        "Gemm",
        &["x", "w", "b"],
        &["h0"],
        vec![attr_int("transB", 1)],
    );
    let names: Vec<String> = (0..=n).map(|i| format!("h{i}")).collect();
    for i in 0..n {
        b.node("Relu", &[&names[i]], &[&names[i + 1]], vec![]);
    }
    b.output(&names[n]);
    b.finish()
}

/// 65,000 chained nodes: every command that reads the model finishes (no recursion that grows
/// with the model), and the chain folds to one layer.
#[test]
fn a_very_deep_chain_neither_overflows_nor_takes_quadratic_time() {
    let d = temp_dir("deep-chain");
    let m = d.join("chain.onnx");
    std::fs::write(&m, relu_chain(65_000)).unwrap();
    let m = m.to_str().unwrap();
    cli(&["inspect", m]).unwrap();
    let art = d.join("chain.loihi2");
    cli(&[
        "compile",
        m,
        "--target",
        "loihi2",
        "-o",
        art.to_str().unwrap(),
    ])
    .unwrap();
    let x = d.join("x.npy");
    nmc::npy::write(
        &x,
        &nmc::npy::Array {
            shape: vec![1, 4],
            data: vec![1.0, -1.0, 0.5, 2.0],
        },
    )
    .unwrap();
    cli(&["eval", m, "--input", x.to_str().unwrap()]).unwrap();
}

/// Writes a model into the test's directory (and, with `NMC_KEEP_HOSTILE=dir`, a copy there).
fn model_file(dir: &std::path::Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    if let Some(keep) = std::env::var_os("NMC_KEEP_HOSTILE") {
        std::fs::copy(&p, std::path::Path::new(&keep).join(name)).unwrap();
    }
    p.to_str().unwrap().to_string()
}

fn conv_with_pads(pad: i64) -> Vec<u8> {
    let mut b = ModelBuilder::new("pads", 13);
    b.input("x", &[1, 1, 4, 4]);
    b.init("w", &[1, 1, 3, 3], &[1.0; 9]);
    b.node(
        "Conv",
        &["x", "w"],
        &["y"],
        vec![attr_ints("pads", &[pad; 4])],
    );
    b.output("y");
    b.finish()
}

#[test]
fn huge_pads_are_a_model_error_not_an_allocation_abort() {
    let d = temp_dir("pads");
    let m = model_file(&d, "pads.onnx", &conv_with_pads(1 << 20));
    let out = d.join("pads.loihi2");
    let out = out.to_str().unwrap();
    for args in [
        vec!["inspect", m.as_str()],
        vec!["compile", m.as_str(), "--target", "loihi2", "-o", out],
    ] {
        let e = cli(&args).unwrap_err();
        assert_eq!((e.kind(), e.exit_code()), ("invalid", 1), "{args:?}: {e}");
    }
    assert!(!std::path::Path::new(out).exists());
}

/// A one-layer MLP `[1, 4] → [3]` whose weights, bias and Gemm `alpha` the caller chooses.
fn gemm(w: &[f32], bias: &[f32], alpha: f32) -> Vec<u8> {
    let mut b = ModelBuilder::new("gemm", 13);
    b.input("x", &[1, 4]);
    b.init("fc.weight", &[3, 4], w).init("fc.bias", &[3], bias);
    b.node(
        "Gemm",
        &["x", "fc.weight", "fc.bias"],
        &["y"],
        vec![attr_int("transB", 1), attr_float("alpha", alpha)],
    );
    b.output("y");
    b.finish()
}

/// Runs a command that must fail on the model: exit 1, a model-kind error.
fn expect_model_error(args: &[&str], what: &str) -> nmc::Error {
    let e = cli(args).unwrap_err();
    assert_eq!(e.exit_code(), 1, "{what}: {e}");
    assert!(
        !matches!(e.kind(), "usage" | "fit" | "artifact"),
        "{what}: {e}"
    );
    e
}

#[test]
fn non_finite_numbers_are_errors_on_every_target_and_ieee_in_eval() {
    let d = temp_dir("non-finite");
    let good = [0.5f32; 12];
    let mut nan_w = good;
    nan_w[5] = f32::NAN;
    let cases = [
        (
            "nan-weight.onnx",
            gemm(&nan_w, &[0.1; 3], 1.0),
            "NaN or infinite",
        ),
        (
            "inf-bias.onnx",
            gemm(&good, &[0.1, f32::INFINITY, 0.1], 1.0),
            "NaN or infinite",
        ),
        (
            "inf-alpha.onnx",
            gemm(&good, &[0.1; 3], f32::INFINITY),
            "alpha",
        ),
        ("nan-alpha.onnx", gemm(&good, &[0.1; 3], f32::NAN), "alpha"),
    ];
    for (name, bytes, says) in &cases {
        let m = model_file(&d, name, bytes);
        for target in ["loihi2", "akd1000", "speck"] {
            let out = d.join(format!("{name}.{target}"));
            let e = expect_model_error(
                &[
                    "compile",
                    &m,
                    "--target",
                    target,
                    "-o",
                    out.to_str().unwrap(),
                ],
                name,
            );
            assert!(e.to_string().contains(says), "{name} on {target}: {e}");
            assert!(!out.exists(), "{name} on {target} left {}", out.display());
        }
    }
    // eval computes what IEEE 754 (and onnxruntime) computes: a NaN weight gives a NaN output.
    let m = model_file(&d, "nan-eval.onnx", &gemm(&nan_w, &[0.1; 3], 1.0));
    let x = d.join("x.npy");
    nmc::npy::write(
        &x,
        &nmc::npy::Array {
            shape: vec![1, 4],
            data: vec![1.0; 4],
        },
    )
    .unwrap();
    let y = d.join("y.npy");
    cli(&[
        "eval",
        &m,
        "--input",
        x.to_str().unwrap(),
        "-o",
        y.to_str().unwrap(),
    ])
    .unwrap();
    let out = nmc::npy::read(&y).unwrap();
    assert!(
        out.data[1].is_nan() && out.data[0].is_finite(),
        "{:?}",
        out.data
    );
}

fn batch_norm(var: f32) -> Vec<u8> {
    let mut b = ModelBuilder::new("bn", 13);
    b.input("x", &[1, 2, 4, 4]);
    b.init("w", &[2, 2, 1, 1], &[1.0, 0.0, 0.0, 1.0]);
    b.init("g", &[2], &[1.0; 2]).init("b", &[2], &[0.0; 2]);
    b.init("m", &[2], &[0.0; 2]).init("v", &[2], &[1.0, var]);
    b.node("Conv", &["x", "w"], &["c"], vec![]);
    b.node(
        "BatchNormalization",
        &["c", "g", "b", "m", "v"],
        &["y"],
        vec![attr_float("epsilon", 0.0)],
    );
    b.output("y");
    b.finish()
}

#[test]
fn batch_norm_without_a_positive_variance_is_an_error_naming_it() {
    let d = temp_dir("bn-var");
    for var in [0.0, -1.0, f32::NAN] {
        let m = model_file(&d, "bn.onnx", &batch_norm(var));
        let e = expect_model_error(&["inspect", &m], "bn");
        assert!(e.to_string().contains("input_var + epsilon"), "{e}");
        assert!(e.to_string().contains("BatchNormalization"), "{e}");
    }
}

/// An output of rank 100,000 (a Reshape to that many ones): a clear error, not a panic.
#[test]
fn an_absurd_rank_is_refused() {
    let d = temp_dir("rank");
    let mut b = ModelBuilder::new("rank", 13);
    b.input("x", &[1, 4]);
    b.node("Reshape", &["x", "s"], &["y"], vec![]);
    b.output("y");
    let shape: Vec<i64> = std::iter::repeat_n(1, 100_000).chain([4]).collect();
    let m = model_file(
        &d,
        "rank.onnx",
        &crate::common::with_int_initializer(b.finish(), "s", shape),
    );
    let e = expect_model_error(&["inspect", &m], "rank");
    assert!(e.to_string().contains("rank"), "{e}");
}

/// Shape arithmetic nothing reads costs nothing; what is read is bounded in all.
#[test]
fn host_folded_constants_have_a_total_budget() {
    let d = temp_dir("folded");
    // An unused Range(0, 2^28) beside a working model.
    let mut b = ModelBuilder::new("range", 13);
    b.input("x", &[1, 4]);
    b.init("w", &[3, 4], &[0.5; 12]);
    b.node("Gemm", &["x", "w"], &["y"], vec![attr_int("transB", 1)]);
    b.node("Range", &["r0", "r1", "r2"], &["unused"], vec![]);
    b.output("y");
    let bytes = crate::common::with_int_initializer(b.finish(), "r0", vec![0]);
    let bytes = crate::common::with_int_initializer(bytes, "r1", vec![1 << 28]);
    let bytes = crate::common::with_int_initializer(bytes, "r2", vec![1]);
    let m = model_file(&d, "range.onnx", &bytes);
    cli(&["inspect", &m]).unwrap();
    // Eight ConstantOfShape of 2^26 elements summed, sliced, and added to the input: all of it
    // folds on the host, and the total budget stops it.
    let mut b = ModelBuilder::new("cos", 13);
    b.input("x", &[1, 4]);
    let mut acc = String::new();
    for i in 0..8 {
        let c = format!("c{i}");
        b.node("ConstantOfShape", &["shape"], &[&c], vec![]);
        if i == 0 {
            acc = c;
        } else {
            let sum = format!("sum{i}");
            b.node("Add", &[&acc, &c], &[&sum], vec![]);
            acc = sum;
        }
    }
    b.node("Slice", &[&acc, "starts", "ends"], &["s"], vec![]);
    b.node("Add", &["x", "s"], &["y"], vec![]);
    b.output("y");
    let bytes = crate::common::with_int_initializer(b.finish(), "starts", vec![0]);
    let bytes = crate::common::with_int_initializer(bytes, "ends", vec![4]);
    let bytes = crate::common::with_int_initializer(bytes, "shape", vec![1 << 26]);
    let m = model_file(&d, "cos.onnx", &bytes);
    let e = expect_model_error(&["inspect", &m], "constant of shape");
    assert!(e.to_string().contains("NMC_MAX_ELEMENTS"), "{e}");
}

/// Escape sequences in names never reach the terminal: messages and dumps show them escaped.
#[test]
fn control_characters_in_names_are_escaped() {
    let d = temp_dir("escapes");
    let mut w = [0.5f32; 12];
    w[0] = f32::NAN;
    let mut bytes = gemm(&w, &[0.1; 3], 1.0);
    {
        use protobuf::Message;
        let mut model = onnx_protobuf::ModelProto::parse_from_bytes(&bytes).unwrap();
        let g = model.graph.as_mut().unwrap();
        g.node[0].name = "\u{1b}[31mred\u{7}".into();
        g.node[0].op_type = "Gemm".into();
        bytes = model.write_to_bytes().unwrap();
    }
    let m = model_file(&d, "esc.onnx", &bytes);
    let e = expect_model_error(&["compile", &m, "--target", "loihi2"], "escapes");
    let text = e.to_string();
    assert!(!text.chars().any(char::is_control), "{text:?}");
    assert!(text.contains("\\u{1b}[31mred\\u{7}"), "{text:?}");
    let out = d.join("ir.txt");
    cli(&[
        "compile",
        &model_file(&d, "ok.onnx", &{
            use protobuf::Message;
            let mut model =
                onnx_protobuf::ModelProto::parse_from_bytes(&gemm(&[0.5; 12], &[0.1; 3], 1.0))
                    .unwrap();
            model.graph.as_mut().unwrap().node[0].name = "\u{1b}]0;title\u{7}".into();
            model.write_to_bytes().unwrap()
        }),
        "--target",
        "loihi2",
        "-o",
        d.join("ok.loihi2").to_str().unwrap(),
        "--emit",
        &format!("quantized-ir={}", out.display()),
    ])
    .unwrap();
    let ir = std::fs::read_to_string(&out).unwrap();
    assert!(!ir.chars().any(|c| c.is_control() && c != '\n'), "{ir:?}");
}

/// 25,000 layers (50,000 nodes): every stage up to the fit check is linear enough to finish in
/// seconds, and the error names the limit.
#[test]
fn a_long_chain_of_layers_compiles_to_a_fit_error_quickly() {
    let d = temp_dir("gemm-chain");
    let m = model_file(&d, "gemms.onnx", &nmc::synth::layer_chain(25_000));
    let e = cli(&[
        "compile",
        &m,
        "--target",
        "loihi2",
        "-o",
        d.join("g.loihi2").to_str().unwrap(),
    ])
    .unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
    cli(&["inspect", &m]).unwrap();
}
