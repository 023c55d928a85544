//! Snapshots per (case, stage): the text a reviewer reads when a change alters what nmc emits.
//! Stored as tests/snapshots/<stage>/<case>.snap.

use crate::common::{cases, compiled, snap, CALIB_SAMPLES};

#[test]
fn stage_snapshots() {
    for case in cases() {
        let c = compiled(case);
        snap("ir", &case.name, &nmc_ir::print(&c.imported));
        snap("opt-ir", &case.name, &nmc_ir::print(&c.quantized));
        snap(
            "partitioned-ir",
            &case.name,
            &nmc::driver::print_partitioned(&c.quantized, &c.mapping),
        );
        snap("listing-loihi2", &case.name, &c.listing());
        let profile =
            nmc::cost::ActivityProfile::measure(&c.quantized, &case.samples(CALIB_SAMPLES))
                .unwrap();
        let (analysis, _) = nmc::Target::Loihi2
            .analyze(
                &c.artifact,
                &profile,
                1,
                &nmc::target::ChipParams::default(),
            )
            .unwrap();
        snap(
            "analyze-loihi2",
            &case.name,
            &nmc::cost::report_text(&analysis),
        );
    }
}
