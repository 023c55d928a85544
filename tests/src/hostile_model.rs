//! Hostile models (issue 16, the model side): each ends in a clear error or a correct result,
//! within seconds and bounded memory, never a panic, a stack overflow or an allocation abort.

use crate::common::temp_dir;
use nmc::synth::{attr_int, attr_ints, ModelBuilder};

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
    for args in [
        vec!["inspect", m.as_str()],
        vec![
            "compile",
            m.as_str(),
            "--target",
            "loihi2",
            "-o",
            "/dev/null/x",
        ],
    ] {
        let e = cli(&args).unwrap_err();
        assert_eq!((e.kind(), e.exit_code()), ("invalid", 1), "{args:?}: {e}");
    }
}
