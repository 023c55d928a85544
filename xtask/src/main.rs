//! `cargo xtask …`: project chores that are not part of the compiler.
//!
//! - `cargo xtask testdata [--only CASE]`: regenerates testdata/models with the pinned Python
//!   environment of testdata/gen (PyTorch, onnx, onnxruntime, scikit-learn); make_models.py
//!   also builds the Speck cases and the real-architecture cases of make_pytorch_models.py.
//! - `cargo xtask bench [compile|emulator|floorline|mapping|akd1000|speck|egraph|all]`: the benchmarks;
//!   figures are ratios against a baseline measured in the same process, because machines here
//!   are noisy. `akd1000` lists, per shipped AKD1000 model, its NPs per layer and the emulated
//!   latency, throughput and energy; `speck` prints the rate-mode accuracy-vs-T curve and the
//!   Speck emulator's events/s.
//! - `cargo xtask fuzz [CASES] [SEED]`: seeded mutation fuzzing of ONNX, artifact, `.npy` and IR
//!   text inputs (`nmc::fuzz`), with counts per target.

mod bench;
mod fuzz;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent")
        .to_path_buf()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("testdata") => testdata(&args[1..]),
        Some("__compile-one") => match args.get(1) {
            Some(model) => bench::compile_one(model),
            None => ExitCode::from(2),
        },
        Some("bench") => bench::run(args.get(1).map(String::as_str).unwrap_or("all")),
        Some("fuzz") => fuzz::run(
            args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000),
            args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1),
        ),
        _ => {
            eprintln!("usage: cargo xtask testdata [--only CASE] | cargo xtask bench [compile|emulator|floorline|mapping|akd1000|speck|egraph|all] | cargo xtask fuzz [CASES] [SEED]");
            ExitCode::from(2)
        }
    }
}

fn testdata(rest: &[String]) -> ExitCode {
    let script = root().join("testdata/gen/make_models.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    eprintln!("needs: pip install -r testdata/gen/requirements.txt");
    match Command::new(python).arg(script).args(rest).status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("make_models.py failed: {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cannot run python: {e}");
            ExitCode::FAILURE
        }
    }
}
