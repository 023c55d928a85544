//! Mapping searches change cost, never results: every partitioner's artifact gives the greedy
//! artifact's outputs bit for bit, and a seed gives the same bytes every time.

use crate::common::{cases, CALIB_SAMPLES};
use nmc::{driver, Options, PartitionKind, Target};

fn compile(name: &str, partition: PartitionKind, seed: u64) -> nmc::Compiled {
    let case = cases().iter().find(|c| c.name == name).unwrap();
    let imported = nmc::onnx::import_file(&case.model).unwrap();
    let mut opts = Options::new(Target::Loihi2);
    opts.partition = partition;
    opts.seed = seed;
    opts.evals = 40;
    driver::compile_graph(imported.graph, &case.samples(CALIB_SAMPLES), &opts, 0).unwrap()
}

fn outputs(c: &nmc::Compiled, name: &str) -> Vec<Vec<i64>> {
    let case = cases().iter().find(|c| c.name == name).unwrap();
    nmc::LoadedArtifact::decode(&c.artifact)
        .unwrap()
        .run(&case.inputs, None)
        .unwrap()
        .int_outputs
}

#[test]
fn every_partitioner_gives_greedys_outputs_bit_for_bit() {
    for name in ["digits_mlp", "digits_cnn"] {
        let greedy = compile(name, PartitionKind::Greedy, 0);
        let want = outputs(&greedy, name);
        for kind in [PartitionKind::Floorline, PartitionKind::Evolve] {
            let c = compile(name, kind, 3);
            assert!(
                c.mapping.cores_used() > greedy.mapping.cores_used(),
                "{name}: {kind:?} should use more cores"
            );
            assert_eq!(
                outputs(&c, name),
                want,
                "{name}: {kind:?} changed the outputs"
            );
            let s = c.report.search.as_ref().expect("search summary");
            assert!(
                s.chosen.latency_ns < s.greedy.latency_ns,
                "{name}: {kind:?} is not faster than greedy: {s:?}"
            );
        }
    }
}

#[test]
fn a_seed_gives_the_same_artifact_bytes() {
    let a = compile("digits_cnn", PartitionKind::Evolve, 11);
    let b = compile("digits_cnn", PartitionKind::Evolve, 11);
    assert_eq!(a.artifact, b.artifact);
    let f1 = compile("digits_cnn", PartitionKind::Floorline, 0);
    let f2 = compile("digits_cnn", PartitionKind::Floorline, 0);
    assert_eq!(f1.artifact, f2.artifact);
}

#[test]
fn evolve_without_calibration_is_a_usage_error() {
    let case = cases().iter().find(|c| c.name == "digits_mlp").unwrap();
    let e = nmc::cli::run_args([
        "nmc",
        "compile",
        case.model.to_str().unwrap(),
        "--target",
        "loihi2",
        "--partition",
        "evolve",
        "-o",
        "/nonexistent/never-written.loihi2",
    ])
    .unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(e.to_string().contains("--calibrate"), "{e}");
}
