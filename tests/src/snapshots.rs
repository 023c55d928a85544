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
        let calib = case.samples(CALIB_SAMPLES);
        let activity = nmc_backend::Activity::new(&c.quantized, &calib);
        let (analysis, _) = nmc::driver::floorline(
            nmc::Target::lookup("loihi2").unwrap(),
            &c.artifact,
            &activity,
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
