//! Mapping searches change cost, never results: every partitioner's artifact gives the greedy
//! artifact's outputs bit for bit, and a seed gives the same bytes every time.

use crate::common::{all_cases, cases, CALIB_SAMPLES};
use nmc::{driver, Options, PartitionKind, Target};

fn compile(name: &str, partition: PartitionKind, seed: u64) -> nmc::Compiled {
    compile_for(Target::lookup("loihi2").unwrap(), name, partition, seed, 40)
}

fn compile_for(
    target: Target,
    name: &str,
    partition: PartitionKind,
    seed: u64,
    evals: usize,
) -> nmc::Compiled {
    let case = all_cases().iter().find(|c| c.name == name).unwrap();
    let imported = nmc::onnx::import_file(&case.model).unwrap();
    let mut opts = Options::new(target);
    opts.partition = partition;
    opts.seed = seed;
    opts.evals = evals;
    driver::compile_graph(imported.graph, &case.samples(CALIB_SAMPLES), &opts, 0).unwrap()
}

fn outputs(c: &nmc::Compiled, name: &str) -> Vec<Vec<i64>> {
    let case = all_cases().iter().find(|c| c.name == name).unwrap();
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

#[test]
fn akd1000_searches_spread_layers_over_more_nps_with_the_same_outputs() {
    let name = "digits_cnn_akida";
    let greedy = compile_for(
        Target::lookup("akd1000").unwrap(),
        name,
        PartitionKind::Greedy,
        0,
        0,
    );
    let want = outputs(&greedy, name);
    let mut artifacts = Vec::new();
    for kind in [PartitionKind::Floorline, PartitionKind::Evolve] {
        let c = compile_for(Target::lookup("akd1000").unwrap(), name, kind, 5, 60);
        assert!(
            c.mapping.cores_used() > greedy.mapping.cores_used(),
            "{kind:?} should use more NPs"
        );
        assert_eq!(outputs(&c, name), want, "{kind:?} changed the outputs");
        let s = c.report.search.as_ref().expect("search summary");
        assert!(
            s.chosen.latency_ns < s.greedy.latency_ns && s.chosen.emulated,
            "{kind:?} is not faster than greedy: {s:?}"
        );
        artifacts.push(c.artifact);
    }
    // Same seed, same bytes.
    let again = compile_for(
        Target::lookup("akd1000").unwrap(),
        name,
        PartitionKind::Evolve,
        5,
        60,
    );
    assert_eq!(again.artifact, artifacts[1]);
}

#[test]
fn speck_searches_keep_the_matching_and_say_why() {
    // Speck's cores are equally fast, so no assignment beats the matching; the search must
    // return it (not a different but equal one) and say so.
    let name = "dvs_cnn";
    let greedy = compile_for(
        Target::lookup("speck").unwrap(),
        name,
        PartitionKind::Greedy,
        0,
        0,
    );
    for kind in [PartitionKind::Floorline, PartitionKind::Evolve] {
        let c = compile_for(Target::lookup("speck").unwrap(), name, kind, 2, 6);
        assert_eq!(c.artifact, greedy.artifact, "{kind:?}");
        let s = c.report.search.as_ref().expect("search summary");
        assert_eq!(s.chosen.latency_ns, s.greedy.latency_ns);
        assert!(
            s.note.as_deref().unwrap_or("").contains("same speed"),
            "{s:?}"
        );
    }
}

#[test]
fn every_targets_search_space_starts_at_its_default_mapping() {
    for case in all_cases() {
        for target in case.targets() {
            let target = match target.as_str() {
                "akd1000" => Target::lookup("akd1000").unwrap(),
                "speck" => Target::lookup("speck").unwrap(),
                _ => Target::lookup("loihi2").unwrap(),
            };
            let imported = nmc::onnx::import_file(&case.model).unwrap();
            let opts = Options::new(target);
            let calib = case.samples(CALIB_SAMPLES);
            // Cases made not to fit (speck_too_big) have no mapping to search from.
            let greedy = match driver::compile_graph(imported.graph.clone(), &calib, &opts, 0) {
                Ok(c) => c,
                Err(e) => {
                    assert_eq!(e.exit_code(), 3, "{} on {}: {e}", case.name, target.name());
                    continue;
                }
            };
            let space = target
                .search_space(&greedy.quantized, &opts.target_options())
                .unwrap_or_else(|e| panic!("{} on {}: {e}", case.name, target.name()));
            assert_eq!(space.greedy, greedy.mapping, "{}", case.name);
            let g = space.problem.greedy();
            assert_eq!(
                (space.decode)(&g).as_ref(),
                Some(&space.greedy),
                "{} on {}: the greedy genome is not the default mapping",
                case.name,
                target.name()
            );
        }
    }
}

#[test]
fn akd1000_lowering_rejects_a_mapping_it_cannot_run() {
    let name = "digits_cnn_akida";
    let c = compile_for(
        Target::lookup("akd1000").unwrap(),
        name,
        PartitionKind::Greedy,
        0,
        0,
    );
    let opts = Options::new(Target::lookup("akd1000").unwrap());
    // Two slices on one unit.
    let mut bad = c.mapping.clone();
    let (&last, slices) = bad.layers.iter_mut().next_back().unwrap();
    let first_core = slices[0].core;
    slices.push(nmc_ir::CoreSlice::channels(first_core, 0, 1));
    let e = Target::lookup("akd1000")
        .unwrap()
        .lower(&c.quantized, &bad, 0, &opts.target_options())
        .unwrap_err();
    assert!(
        e.to_string().contains("cannot run on the akd1000"),
        "{last}: {e}"
    );
    // A dense layer's unit moved to a node without an FNP.
    let mut bad = c.mapping.clone();
    let dense_core = bad.layers.values().next_back().unwrap()[0].core as usize;
    bad.placement[dense_core] = nmc_ir::CoreLoc {
        chip: 0,
        x: 99,
        y: 99,
    };
    let e = Target::lookup("akd1000")
        .unwrap()
        .lower(&c.quantized, &bad, 0, &opts.target_options())
        .unwrap_err();
    assert!(e.to_string().contains("node (99, 99)"), "{e}");
}

#[test]
fn single_device_targets_reject_more_chips() {
    for (name, target) in [("digits_mlp", "akd1000"), ("dvs_cnn", "speck")] {
        let case = all_cases().iter().find(|c| c.name == name).unwrap();
        let e = nmc::cli::run_args([
            "nmc",
            "compile",
            case.model.to_str().unwrap(),
            "--target",
            target,
            "--chips",
            "2",
            "-o",
            "/nonexistent/never-written.art",
        ])
        .unwrap_err();
        assert_eq!(e.exit_code(), 2, "{target}: {e}");
        assert!(e.to_string().contains("--chips 2"), "{target}: {e}");
    }
}

/// `--chips auto` picks the smallest Loihi 2 system a model fits (200 layers need 200 cores: two
/// chips of 128); too few chips is a fit error naming that minimum; single devices stay at one.
#[test]
fn chips_auto_picks_the_smallest_system_and_fit_errors_name_it() {
    let d = crate::common::temp_dir("chips-auto");
    let m = d.join("chain.onnx");
    std::fs::write(&m, nmc::synth::layer_chain(200)).unwrap();
    let m = m.to_str().unwrap();
    let run =
        |args: &[&str]| nmc::cli::run_args(std::iter::once("nmc").chain(args.iter().copied()));
    let one = d.join("one.loihi2");
    let e = run(&[
        "compile",
        m,
        "--target",
        "loihi2",
        "-o",
        one.to_str().unwrap(),
    ])
    .unwrap_err();
    assert_eq!((e.kind(), e.exit_code()), ("fit", 3), "{e}");
    assert!(
        e.to_string()
            .contains("the smallest loihi2 system it fits has 2 chips: use --chips 2"),
        "{e}"
    );
    assert!(!one.exists());
    let (auto, two) = (d.join("auto.loihi2"), d.join("two.loihi2"));
    run(&[
        "compile",
        m,
        "--target",
        "loihi2",
        "--chips",
        "auto",
        "-o",
        auto.to_str().unwrap(),
    ])
    .unwrap();
    run(&[
        "compile",
        m,
        "--target",
        "loihi2",
        "--chips",
        "2",
        "-o",
        two.to_str().unwrap(),
    ])
    .unwrap();
    let (a, b) = (std::fs::read(&auto).unwrap(), std::fs::read(&two).unwrap());
    assert_eq!(a, b, "--chips auto is --chips 2 here");
    let art = nmc::LoadedArtifact::decode(&a).unwrap();
    assert!(art.listing().starts_with("artifact loihi2 format 2 source"));
    assert!(art.listing().lines().next().unwrap().ends_with("chips 2"));
    // It runs, across the chip boundary, as the quantised reference computes.
    let x = nmc::npy::Array {
        shape: vec![2, 4],
        data: vec![0.5, -0.25, 1.0, 0.75, 0.1, 0.2, 0.3, 0.4],
    };
    let r = art.run(&x, None).unwrap();
    assert_eq!(r.perf.cores.len(), 200);
    assert!(r.perf.cores.iter().any(|c| c.chip == 1));
    // A single device has one size.
    let case = all_cases().iter().find(|c| c.name == "digits_mlp").unwrap();
    let akd = d.join("m.akd1000");
    run(&[
        "compile",
        case.model.to_str().unwrap(),
        "--target",
        "akd1000",
        "--chips",
        "auto",
        "-o",
        akd.to_str().unwrap(),
    ])
    .unwrap();
    let e = run(&["compile", m, "--target", "loihi2", "--chips", "two"]).unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
}
