//! `cargo xtask fuzz [CASES] [SEED]`: the seeded mutation fuzz targets of `nmc::fuzz` at scale,
//! on the shipped models, their artifacts for every target, their `.npy` files and IR dumps.
//! Prints, per target, the cases run, accepted, rejected and panicked; exits 1 on any panic.

use nmc::{driver, fuzz, Options, Target};
use std::process::ExitCode;

pub fn run(cases: usize, seed: u64) -> ExitCode {
    let root = crate::root().join("testdata/models");
    let mut models = Vec::new();
    let mut artifacts = Vec::new();
    let mut npys = Vec::new();
    let mut irs = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("testdata/models")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    dirs.sort();
    for dir in dirs {
        let Ok(bytes) = std::fs::read(dir.join("model.onnx")) else {
            continue;
        };
        if let Ok(imported) = nmc::onnx::import_file(&dir.join("model.onnx")) {
            irs.push(nmc_ir::print(&imported.graph).into_bytes());
            for t in Target::all() {
                if let Ok(c) =
                    driver::compile_graph(imported.graph.clone(), &[], &Options::new(*t), 0)
                {
                    irs.push(driver::print_partitioned(&c.quantized, &c.mapping).into_bytes());
                    artifacts.push(c.artifact);
                }
            }
        }
        models.push(bytes);
        for f in ["inputs.npy", "labels.npy", "events.npy"] {
            if let Ok(b) = std::fs::read(dir.join(f)) {
                npys.push(b);
            }
        }
    }
    let mut failed = false;
    println!("| target | seeds | cases | accepted | rejected | panics |");
    println!("|---|---|---|---|---|---|");
    for (name, seeds, out) in [
        ("onnx", models.len(), fuzz::onnx(&models, cases / 10, seed)),
        (
            "artifact",
            artifacts.len(),
            fuzz::artifacts(&artifacts, cases, seed + 1),
        ),
        ("npy", npys.len(), fuzz::npy(&npys, cases, seed + 2)),
        ("ir-text", irs.len(), fuzz::ir_text(&irs, cases, seed + 3)),
    ] {
        println!(
            "| {name} | {seeds} | {} | {} | {} | {} |",
            out.cases,
            out.accepted,
            out.rejected,
            out.panics.len()
        );
        for p in out.panics.iter().take(10) {
            println!("  panic: {p}");
        }
        failed |= !out.panics.is_empty();
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
