//! Snapshots per (case, stage): the text a reviewer reads when a change alters what nmc emits.
//! Stored as tests/snapshots/<emit kind>-<target>/<case>.snap (see `common::snap_dump`).

use crate::common::{cases, compiled, snap, snap_dump, CALIB_SAMPLES};
use nmc::Emit;

#[test]
fn stage_snapshots() {
    for case in cases() {
        let c = compiled(case);
        for kind in [
            Emit::Ir,
            Emit::QuantizedIr,
            Emit::PartitionedIr,
            Emit::Listing,
        ] {
            snap_dump(kind, &case.name, c);
        }
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
