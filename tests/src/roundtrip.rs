//! The IR text format round-trips: print → parse → print is the identity, at every stage.

use crate::common::{cases, compiled};

fn check(stage: &str, case: &str, g: &nmc_ir::Graph) {
    let text = nmc_ir::print(g);
    let parsed = nmc_ir::parse(&text).unwrap_or_else(|e| panic!("{case}/{stage}: {e}\n{text}"));
    assert_eq!(
        nmc_ir::print(&parsed),
        text,
        "{case}/{stage}: print(parse(print(g))) != print(g)"
    );
    nmc_ir::verify(&parsed)
        .unwrap_or_else(|e| panic!("{case}/{stage}: parsed graph does not verify: {e}"));
}

#[test]
fn ir_text_round_trips_at_every_stage() {
    for case in cases() {
        let c = compiled(case);
        check("ir", &case.name, &c.imported);
        check("canonical", &case.name, &c.canonical);
        check("quantized-ir", &case.name, &c.quantized);
    }
}
