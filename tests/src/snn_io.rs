//! Spiking-network files: the HDF5 reader on h5py's forms (`testdata/hdf5/fixtures*.h5`, made by
//! `testdata/gen/make_hdf5_fixtures.py`), lava-dl netx and NIR files imported to the expected IR
//! (snapshots in `tests/snapshots/ir-snn/`, values checked against the files), unsupported
//! constructs and hostile files as errors naming the place, never panics.

use crate::common::{root, snap};
use nmc::hdf5::{self, H5Data, H5Group};
use nmc_ir::{Activation, Op, SpikingModel};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    root().join("testdata/hdf5").join(name)
}

fn read(name: &str) -> H5Group {
    let bytes = std::fs::read(fixture(name)).unwrap();
    hdf5::read(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn check_fixture_values(f: &H5Group) {
    let d = |p: &str| f.find(p).unwrap_or_else(|| panic!("no {p}"));
    assert_eq!(d("int_scalar").data, H5Data::Int(vec![-42]));
    assert!(d("int_scalar").shape.is_empty());
    assert_eq!(d("float_scalar").data, H5Data::F32(vec![1.25]));
    assert_eq!(d("double_scalar").data, H5Data::F64(vec![-2.5]));
    assert_eq!(d("bool_scalar").data, H5Data::Int(vec![1]));
    assert_eq!(d("u8_array").data, H5Data::Int(vec![0, 1, 2, 3, 4]));
    assert_eq!(d("i16_array").data, H5Data::Int(vec![-3, 0, 3]));
    assert_eq!(d("be_i32").data, H5Data::Int(vec![1, 256, -1]));
    assert_eq!(d("i64_1d").data, H5Data::Int(vec![1, -2, 3]));
    assert_eq!(
        d("f32_1d").f32s().unwrap(),
        vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25]
    );
    assert_eq!(d("f32_2d").shape, vec![3, 4]);
    assert_eq!(
        d("f32_2d").f32s().unwrap(),
        (0..12).map(|i| i as f32 - 5.0).collect::<Vec<_>>()
    );
    assert_eq!(d("f32_3d").shape, vec![2, 3, 4]);
    assert_eq!(
        d("f32_3d").f32s().unwrap(),
        (0..24).map(|i| i as f32).collect::<Vec<_>>()
    );
    assert_eq!(d("f32_4d").shape, vec![2, 3, 4, 5]);
    assert_eq!(
        d("f32_4d").f32s().unwrap(),
        (0..120).map(|i| i as f32 * 0.5).collect::<Vec<_>>()
    );
    assert_eq!(
        d("f64_2d").data,
        H5Data::F64((0..6).map(|i| i as f64 + 0.25).collect())
    );
    assert_eq!(d("vlen_str").string().unwrap(), "CUBA");
    assert_eq!(d("py_str").string().unwrap(), "hello");
    assert_eq!(d("fixed_str").shape, vec![1]);
    assert_eq!(d("fixed_str").string().unwrap(), "dense");
    assert_eq!(d("bytes_scalar").string().unwrap(), "conv");
    assert_eq!(d("vlen_str_2d").shape, vec![2, 2]);
    assert_eq!(
        d("vlen_str_2d").strings().unwrap(),
        ["a", "bb", "ccc", "dddd"]
    );
    assert_eq!(d("gzip_f32").shape, vec![10, 100]);
    assert_eq!(
        d("gzip_f32").f32s().unwrap(),
        (0..1000).map(|i| i as f32).collect::<Vec<_>>()
    );
    assert_eq!(
        d("gzip_i64").data,
        H5Data::Int((0..50).map(|i| -3 * i).collect())
    );
    assert_eq!(
        d("chunked_plain").f32s().unwrap(),
        (0..30).map(|i| i as f32).collect::<Vec<_>>()
    );
    assert!(d("empty_f32").is_empty());
    assert_eq!(d("empty_f32").shape, vec![0]);
    assert_eq!(d("group/nested/deep").data, H5Data::F32(vec![3.0]));
    assert_eq!(d("group/nested/deep").path, "/group/nested/deep");
    let many = f.group("many").unwrap();
    let names: Vec<&str> = many.datasets.keys().map(String::as_str).collect();
    assert_eq!(names.len(), 12);
    for i in 0..12 {
        assert_eq!(many.datasets[&i.to_string()].scalar_i64().unwrap(), i);
    }
    // Attributes: strings and numbers.
    assert_eq!(f.attrs["title"], H5Data::Str(vec!["fixture".into()]));
    assert_eq!(f.attrs["count"], H5Data::Int(vec![7]));
    assert_eq!(f.attrs["scale"], H5Data::F64(vec![0.5]));
    assert_eq!(
        f.group("group").unwrap().attrs["names"],
        H5Data::Str(vec!["x".into(), "yy".into()])
    );
    // Wrong-type access is an error naming the dataset.
    let e = d("vlen_str").f32s().unwrap_err();
    assert_eq!(e.place, "/vlen_str");
    assert!(e.message.contains("expected numbers"), "{e}");
    let e = f.dataset("group").unwrap_err();
    assert!(e.message.contains("is a group"), "{e}");
}

#[test]
fn hdf5_reads_what_h5py_writes_superblock_v0() {
    check_fixture_values(&read("fixtures.h5"));
}

#[test]
fn hdf5_reads_what_h5py_writes_latest_format() {
    let f = read("fixtures_latest.h5");
    check_fixture_values(&f);
    // 40 links: dense link storage, read back sorted by name.
    let g = f.group("dense_links").unwrap();
    let names: Vec<&String> = g.datasets.keys().collect();
    assert_eq!(names.len(), 40);
    for (i, (name, d)) in g.datasets.iter().enumerate() {
        assert_eq!(name, &format!("d{i:02}"));
        assert_eq!(d.data, H5Data::Int(vec![i as i64]));
    }
}

#[test]
fn hdf5_reads_a_file_with_a_user_block() {
    let bytes = std::fs::read(fixture("userblock.h5")).unwrap();
    assert_eq!(hdf5::signature_offset(&bytes), Some(512));
    let f = hdf5::read(&bytes).unwrap();
    assert_eq!(f.dataset("x").unwrap().data, H5Data::F32(vec![9.0]));
}

/// The imported graph as IR text followed by the importer's notes.
fn imported_text(name: &str) -> (nmc::onnx::Imported, String) {
    let imp = nmc::import::import_file(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut text = nmc_ir::print(&imp.graph);
    text.push_str(&format!("producer: {}\n", imp.producer));
    for n in &imp.notes {
        text.push_str(&format!("note: {n}\n"));
    }
    (imp, text)
}

#[test]
fn snn_files_import_to_the_expected_ir() {
    for name in [
        "netx_mlp.net",
        "netx_conv.net",
        "nir_mlp.nir",
        "nir_conv.nir",
        "nir_dag.nir",
    ] {
        let (_, text) = imported_text(name);
        snap("ir-snn", &name.replace('.', "_"), &text);
    }
}

/// The spiking model of the node named `name`.
fn model_of(g: &nmc_ir::Graph, name: &str) -> SpikingModel {
    g.nodes
        .iter()
        .find_map(|n| match (&n.op, n.name.as_deref()) {
            (Op::Act(Activation::Spiking(m)), Some(x)) if x == name => Some(*m),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no spiking node {name}"))
}

/// The weight constant of the node named `name`.
fn weight_of(g: &nmc_ir::Graph, name: &str) -> (Vec<usize>, Vec<f32>) {
    let n = g
        .nodes
        .iter()
        .find(|n| n.name.as_deref() == Some(name))
        .unwrap();
    let w = match &n.op {
        Op::Dense { weight, .. } | Op::Conv2d { weight, .. } => *weight,
        op => panic!("{name} is {op:?}"),
    };
    let c = g.consts.get(w);
    (c.shape.clone(), c.to_f32().unwrap())
}

#[test]
fn netx_neurons_and_weights_follow_the_fixed_mapping() {
    let (imp, _) = imported_text("netx_mlp.net");
    let g = &imp.graph;
    assert_eq!(
        model_of(g, "layer/1/neuron"),
        SpikingModel::CubaLif {
            tau_syn: 4.0,
            tau_mem: 32.0,
            r: 1.0,
            v_leak: 0.0,
            w_in: 1.0,
            threshold: 80.0,
            reset: nmc_ir::Reset::Zero,
            v_min: f32::NEG_INFINITY,
        }
    );
    match model_of(g, "layer/2/neuron") {
        SpikingModel::CubaLif {
            tau_syn, tau_mem, ..
        } => {
            assert_eq!(tau_syn, f32::INFINITY);
            assert_eq!(tau_mem, 1.0);
        }
        m => panic!("{m:?}"),
    }
    // Weights exactly as in the file, [out, in].
    let file = read("netx_mlp.net");
    for (layer, name) in [("1", "layer/1"), ("2", "layer/2")] {
        let d = file.find(&format!("layer/{layer}/weight")).unwrap();
        let (shape, w) = weight_of(g, name);
        assert_eq!(shape, d.shape);
        assert_eq!(w, d.f32s().unwrap());
    }
    // Conv: the file's torch-order kernel, unflipped; the input in [C, H, W].
    let (imp, _) = imported_text("netx_conv.net");
    let file = read("netx_conv.net");
    let d = file.find("layer/1/weight").unwrap();
    let (shape, w) = weight_of(&imp.graph, "layer/1");
    assert_eq!(shape, vec![4, 2, 3, 3]);
    assert_eq!(w, d.f32s().unwrap());
    assert_eq!(imp.graph.ty(imp.graph.inputs[0]).shape, vec![2, 8, 6]);
}

#[test]
fn nir_parameters_are_discretised_with_dt() {
    let (imp, _) = imported_text("nir_mlp.nir");
    // tau 2e-3 s at dt 1e-4 s: 20 steps; r·dt/tau = 20 · 0.05 = 1 (up to the file's f32 tau).
    match model_of(&imp.graph, "lif1") {
        SpikingModel::Lif {
            tau_mem,
            r,
            threshold,
            ..
        } => {
            assert!((tau_mem - 20.0).abs() < 1e-4, "{tau_mem}");
            assert!((r - 1.0).abs() < 1e-6, "{r}");
            assert_eq!(threshold, 1.0);
        }
        m => panic!("{m:?}"),
    }
    // Another dt changes the steps.
    let bytes = std::fs::read(fixture("nir_mlp.nir")).unwrap();
    let imp = nmc::snn::import_hdf5(&bytes, &nmc::snn::SnnOptions { dt: 1e-3 }).unwrap();
    match model_of(&imp.graph, "cuba2") {
        SpikingModel::CubaLif {
            tau_syn,
            tau_mem,
            w_in,
            r,
            ..
        } => {
            assert!((tau_syn - 0.5).abs() < 1e-5);
            assert!((tau_mem - 1.0).abs() < 1e-5);
            assert!((w_in - 10.0).abs() < 1e-4, "{w_in}"); // 5 · 1e-3 / 5e-4
            assert!((r - 10.0).abs() < 1e-4, "{r}"); // 10 · 1e-3 / 1e-3
        }
        m => panic!("{m:?}"),
    }
    assert!(imp.notes[0].contains("dt = 0.001 s"), "{:?}", imp.notes);
}

#[test]
fn ir_text_round_trips_infinite_spiking_parameters() {
    for name in ["netx_mlp.net", "nir_conv.nir"] {
        let (imp, _) = imported_text(name);
        let text = nmc_ir::print(&imp.graph);
        let back = nmc_ir::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
        assert_eq!(nmc_ir::print(&back), text);
    }
}

#[test]
fn unsupported_constructs_name_the_place() {
    for (name, kind, needle) in [
        (
            "netx_sdnn.net",
            "unsupported",
            "netx layer/1: sigma-delta (SDNN)",
        ),
        (
            "netx_delay.net",
            "unsupported",
            "netx layer/1: synaptic delays",
        ),
        ("nir_li.nir", "unsupported", "NIR node \"li\" (LI)"),
        (
            "nir_nonuniform.nir",
            "unsupported",
            "NIR node \"lif\" (LIF): `tau` differs between neurons",
        ),
        ("fixtures.h5", "hdf5", "neither a lava-dl netx file"),
    ] {
        let e = nmc::import::import_file(&fixture(name)).unwrap_err();
        assert_eq!(e.kind(), kind, "{name}: {e}");
        assert!(e.to_string().contains(needle), "{name}: {e}");
    }
}

#[test]
fn spiking_networks_compile_for_loihi2_and_fail_clearly_elsewhere() {
    for file in ["netx_mlp.net", "nir_mlp.nir"] {
        let out = std::env::temp_dir().join(format!("nmc-snn-{}-loihi2", std::process::id()));
        nmc::cli::run_args([
            "nmc",
            "compile",
            fixture(file).to_str().unwrap(),
            "--target",
            "loihi2",
            "-o",
            out.to_str().unwrap(),
        ])
        .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(out.exists());
        let _ = std::fs::remove_file(&out);
        for target in ["akd1000", "speck"] {
            let out = std::env::temp_dir().join(format!("nmc-snn-{}-{target}", std::process::id()));
            let r = nmc::cli::run_args([
                "nmc",
                "compile",
                fixture(file).to_str().unwrap(),
                "--target",
                target,
                "-o",
                out.to_str().unwrap(),
            ]);
            let e = r.expect_err("no spiking dynamics on this target");
            assert_eq!(e.exit_code(), 1, "{file} {target}: {e}");
            assert!(
                e.to_string().contains("snn execution mode"),
                "{file} {target}: {e}"
            );
            assert!(!out.exists());
        }
    }
}

#[test]
fn inspect_prints_a_spiking_network() {
    nmc::cli::run_args(["nmc", "inspect", fixture("nir_dag.nir").to_str().unwrap()]).unwrap();
}

/// Every truncation and seeded byte corruption of each fixture is an error or a graph, never a
/// panic or a hang.
#[test]
fn hostile_hdf5_files_are_errors_not_panics() {
    for name in ["netx_conv.net", "nir_mlp.nir", "fixtures_latest.h5"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let step = (bytes.len() / 97).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            let r = nmc::import::import_bytes(&bytes[..cut], None);
            if let Err(e) = r {
                assert!(!e.to_string().is_empty());
            }
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..400 {
            let mut m = bytes.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed % m.len() as u64) as usize;
                m[i] = (seed >> 32) as u8;
            }
            let _ = nmc::import::import_bytes(&m, None);
        }
    }
}

#[test]
fn a_corrupt_offset_names_the_object() {
    // Point the root group's object header address (superblock v0: after 8 signature + 16
    // version/size bytes + 4 addresses of 8 bytes, the root symbol table entry's link name
    // offset then its header address) far past the end of the file.
    let mut bytes = std::fs::read(fixture("netx_mlp.net")).unwrap();
    assert_eq!(bytes[8], 0, "superblock v0");
    let at = 8 + 16 + 4 * 8 + 8;
    bytes[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let e = nmc::import::import_bytes(&bytes, None).unwrap_err();
    assert_eq!(e.kind(), "hdf5", "{e}");
    assert!(e.to_string().starts_with("HDF5 file /"), "{e}");
}

#[test]
fn wrong_types_in_a_netx_file_are_invalid() {
    // A netx layer whose `shape` is a string: built with the HDF5 fixture's string dataset is
    // not possible without a writer, so check the reader's accessor errors directly.
    let f = read("fixtures.h5");
    let e = f.dataset("vlen_str").unwrap().i64s().unwrap_err();
    assert!(
        e.to_string().contains("/vlen_str: expected integers"),
        "{e}"
    );
    let e = f.dataset("f32_1d").unwrap().scalar_i64().unwrap_err();
    assert!(
        e.to_string().contains("expected integers, found 0.25"),
        "{e}"
    );
}

/// The reference networks of `testdata/snn/<case>/` (made by lava-dl, snnTorch and sinabs in the
/// `snn-lava` work; only the model files are here) import to the expected IR, or, for snnTorch's
/// CubaLIF with a learned per-neuron synaptic decay, to the documented error.
#[test]
fn reference_snn_models_import() {
    let dir = root().join("testdata/snn");
    for case in [
        "netx_dense/model.net",
        "netx_conv/model.net",
        "nir_sinabs_if/model.nir",
        "nir_snntorch_lif/model.nir",
    ] {
        let imp =
            nmc::import::import_file(&dir.join(case)).unwrap_or_else(|e| panic!("{case}: {e}"));
        let mut text = nmc_ir::print(&imp.graph);
        for n in &imp.notes {
            text.push_str(&format!("note: {n}\n"));
        }
        snap("ir-snn", &case.replace(['/', '.'], "_"), &text);
    }
    let e = nmc::import::import_file(&dir.join("nir_snntorch_cuba/model.nir")).unwrap_err();
    assert_eq!(e.kind(), "unsupported");
    assert!(
        e.to_string()
            .starts_with("NIR node \"1\" (CubaLIF): `tau_syn` differs between neurons"),
        "{e}"
    );
}
