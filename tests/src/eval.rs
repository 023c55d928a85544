//! The float reference interpreter equals onnxruntime on every shipped case.

use crate::common::all_cases;

#[test]
fn float_eval_matches_onnxruntime_within_1e_4() {
    for case in all_cases() {
        let imported =
            nmc::onnx::import_file(&case.model).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let n = case.inputs.shape[0];
        let outs = nmc::driver::interpret(&imported.graph, &case.samples(n)).unwrap();
        let got = &outs[0];
        assert_eq!(
            got.shape, case.expected.shape,
            "{}: output shape",
            case.name
        );
        let worst = got
            .data
            .iter()
            .zip(&case.expected.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= 1e-4,
            "{}: largest difference to onnxruntime is {worst}",
            case.name
        );
    }
}

/// A case targets at least one chip, or says in case.toml why not yet (`pending`); a pending
/// case targets no chip, so no chip test runs it by accident, and it still has a well-formed
/// agreement threshold for when it is enabled.
#[test]
fn every_case_targets_a_chip_or_says_why_not() {
    for case in all_cases() {
        match case.pending() {
            None => assert!(
                !case.targets().is_empty(),
                "{}: no targets and no `pending` reason",
                case.name
            ),
            Some(why) => {
                assert!(!why.trim().is_empty(), "{}: empty `pending`", case.name);
                assert!(
                    case.targets().is_empty(),
                    "{}: pending ({why}) but targets {:?}",
                    case.name,
                    case.targets()
                );
            }
        }
        case.min_top1_agreement();
    }
}

/// A pending case is pending for a reason: it still does not compile for Loihi 2 (the 128x128
/// cases wait for spatial tiling). When this fails, the feature has landed: enable the case
/// (`targets = ["loihi2"]`, no `pending`) so that every chip test runs it.
#[test]
fn pending_cases_still_do_not_compile_for_loihi2() {
    for case in all_cases().iter().filter(|c| c.pending().is_some()) {
        let imported =
            nmc::onnx::import_file(&case.model).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let opts = nmc::Options::new(nmc::Target::lookup("loihi2").unwrap());
        match nmc::driver::compile_graph(imported.graph, &case.samples(4), &opts, 0) {
            Ok(_) => panic!(
                "{} compiles for loihi2 now (pending: {}): enable it in case.toml",
                case.name,
                case.pending().unwrap_or_default()
            ),
            Err(e) => eprintln!("{}: still pending: {e}", case.name),
        }
    }
}
