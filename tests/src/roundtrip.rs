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

/// `--emit partitioned-ir` reads back (`inspect` takes it) and prints identically, mapping
/// included; a damaged mapping block is an input error, not a panic.
#[test]
fn partitioned_ir_round_trips_and_inspect_reads_it() {
    for case in cases() {
        let c = compiled(case);
        let text = nmc::driver::print_partitioned(&c.quantized, &c.mapping);
        let (g, m) =
            nmc::driver::parse_partitioned(&text).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(m.as_ref(), Some(&c.mapping), "{}", case.name);
        assert_eq!(
            nmc::driver::print_partitioned(&g, &m.unwrap()),
            text,
            "{}",
            case.name
        );
    }
    let c = compiled(cases().first().unwrap());
    let text = nmc::driver::print_partitioned(&c.quantized, &c.mapping);
    let d = crate::common::temp_dir("partitioned-inspect");
    let p = d.join("p.txt");
    std::fs::write(&p, &text).unwrap();
    nmc::cli::run_args(["nmc", "inspect", p.to_str().unwrap()]).unwrap();
    for broken in [
        text.replace("-> core 0 ", "-> core 7 "),
        text.trim_end_matches("}\n").to_string(),
        format!("{text}extra\n"),
    ] {
        if broken == text {
            continue;
        }
        std::fs::write(&p, &broken).unwrap();
        let e = nmc::cli::run_args(["nmc", "inspect", p.to_str().unwrap()]).unwrap_err();
        assert_eq!(e.exit_code(), 1, "{e}");
    }
}
