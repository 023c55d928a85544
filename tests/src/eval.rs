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
