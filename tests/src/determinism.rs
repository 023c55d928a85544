//! The same model and options give byte-identical artifacts and dumps.

use crate::common::{cases, CALIB_SAMPLES};

#[test]
fn compiling_twice_gives_identical_bytes() {
    for case in cases().iter().take(3) {
        let build = || {
            let imported = nmc::onnx::import_file(&case.model).unwrap();
            let opts = nmc::Options::new(nmc::Target::lookup("loihi2").unwrap());
            nmc::driver::compile_graph(imported.graph, &case.samples(CALIB_SAMPLES), &opts, 7)
                .unwrap()
        };
        let (a, b) = (build(), build());
        assert_eq!(
            a.artifact, b.artifact,
            "{}: artifact bytes differ",
            case.name
        );
        assert_eq!(a.listing(), b.listing(), "{}: listing differs", case.name);
        assert_eq!(
            nmc_ir::print(&a.quantized),
            nmc_ir::print(&b.quantized),
            "{}: IR differs",
            case.name
        );
    }
}
