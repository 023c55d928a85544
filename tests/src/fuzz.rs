//! Seeded mutation fuzzing of every input kind (issue 16): no mutated ONNX model, artifact,
//! `.npy` file or IR text makes nmc panic. `cargo xtask fuzz` runs the same targets at scale.

use crate::common::{all_cases, compiled};
use nmc::fuzz;

/// A few small shipped models, as bytes.
fn models() -> Vec<Vec<u8>> {
    ["digits_mlp", "digits_cnn_akida", "dvs_cnn"]
        .iter()
        .map(|n| {
            let c = all_cases().iter().find(|c| c.name == *n).expect("shipped");
            std::fs::read(&c.model).unwrap()
        })
        .collect()
}

fn assert_no_panic(what: &str, o: &fuzz::Outcome) {
    assert!(
        o.panics.is_empty(),
        "{what}: {} panics: {:#?}",
        o.panics.len(),
        o.panics
    );
    assert!(o.rejected > 0, "{what}: no mutation was rejected: {o:?}");
}

#[test]
fn fuzz_onnx_models() {
    let o = fuzz::onnx(&models(), 300, 1);
    assert_no_panic("onnx", &o);
}

#[test]
fn fuzz_artifacts_of_every_target() {
    let mut seeds = Vec::new();
    for (name, target) in [
        ("digits_mlp", "loihi2"),
        ("digits_cnn_akida", "akd1000"),
        ("dvs_cnn", "speck"),
    ] {
        let c = all_cases().iter().find(|c| c.name == name).unwrap();
        let imported = nmc::onnx::import_file(&c.model).unwrap();
        let opts = nmc::Options::new(nmc::Target::lookup(target).unwrap());
        let a = nmc::driver::compile_graph(imported.graph, &c.samples(8), &opts, 0).unwrap();
        seeds.push(a.artifact);
    }
    let o = fuzz::artifacts(&seeds, 3000, 2);
    assert_no_panic("artifacts", &o);
}

#[test]
fn fuzz_npy_inputs() {
    let c = all_cases().iter().find(|c| c.name == "dvs_cnn").unwrap();
    let mut seeds = vec![std::fs::read(c.dir.join("events.npy")).unwrap()];
    let small = nmc::npy::Array {
        shape: vec![2, 3],
        data: vec![0.0, 1.0, -2.5, 3.0, 4.0, 5.5],
    };
    seeds.push(nmc::npy::encode(&small));
    let o = fuzz::npy(&seeds, 3000, 3);
    assert_no_panic("npy", &o);
}

#[test]
fn fuzz_ir_text() {
    let c = compiled(crate::common::cases().first().unwrap());
    let seeds = vec![
        nmc_ir::print(&c.imported).into_bytes(),
        nmc::driver::print_partitioned(&c.quantized, &c.mapping).into_bytes(),
    ];
    let o = fuzz::ir_text(&seeds, 2000, 4);
    assert_no_panic("ir text", &o);
}
