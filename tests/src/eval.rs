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
