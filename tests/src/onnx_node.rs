//! ONNX's own node test cases (`testdata/onnx-node/`, made by
//! `testdata/gen/onnx_node_cases.py` from the pinned onnx wheel): each case is imported and run
//! the way `nmc eval` runs it (`import_file`, `load_samples`, `interpret`), and the first output
//! is compared with onnx's reference output (rtol 1e-4, atol 1e-5, NaN equals NaN).
//!
//! `cases.toml` records for every case whether nmc is expected to pass; the test fails when a
//! case disagrees in either direction, so a case that starts passing is noticed. With
//! `NMC_BLESS_ONNX_NODE=1` the test rewrites the expectations from the observed results instead;
//! `NMC_ONNX_NODE_VERBOSE=1` prints why each failing case fails.

use crate::common::root;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const RTOL: f32 = 1e-4;
const ATOL: f32 = 1e-5;

fn dir() -> PathBuf {
    root().join("testdata/onnx-node")
}

/// Runs one case; `Err` says why it does not pass.
fn run(case: &Path) -> Result<(), String> {
    let imported = nmc::onnx::import_file(&case.join("model.onnx")).map_err(|e| e.to_string())?;
    let samples = nmc::driver::load_samples(&case.join("input.npy"), &imported.graph)
        .map_err(|e| e.to_string())?;
    let outs = nmc::driver::interpret(&imported.graph, &samples).map_err(|e| e.to_string())?;
    let got = outs.into_iter().next().ok_or("no output")?;
    let want = nmc::npy::read(&case.join("expected.npy"))?;
    if got.shape != want.shape {
        return Err(format!(
            "output shape {:?}, expected {:?}",
            got.shape, want.shape
        ));
    }
    for (i, (&a, &b)) in got.data.iter().zip(&want.data).enumerate() {
        let same = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= ATOL + RTOL * b.abs();
        if !same {
            return Err(format!("value {a} at flat index {i}, expected {b}"));
        }
    }
    Ok(())
}

struct Case {
    name: String,
    op: String,
    opset: i64,
    expect_pass: bool,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(dir().join("cases.toml")).expect("cases.toml");
    let table: toml::Table = text.parse().expect("cases.toml parses");
    table
        .into_iter()
        .map(|(name, v)| {
            let get = |k: &str| v.get(k).unwrap_or_else(|| panic!("{name}: no `{k}`"));
            Case {
                op: get("op").as_str().expect("op").to_string(),
                opset: get("opset").as_integer().expect("opset"),
                expect_pass: match get("expect").as_str() {
                    Some("pass") => true,
                    Some("fail") => false,
                    other => panic!("{name}: expect must be \"pass\" or \"fail\", is {other:?}"),
                },
                name,
            }
        })
        .collect()
}

/// Rewrites the `expect` line of every case in cases.toml.
fn bless(results: &BTreeMap<String, bool>) {
    let path = dir().join("cases.toml");
    let text = std::fs::read_to_string(&path).expect("cases.toml");
    let mut current: Option<&str> = None;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name);
        }
        match (
            current.and_then(|c| results.get(c)),
            line.starts_with("expect = "),
        ) {
            (Some(&pass), true) => {
                out.push_str(if pass {
                    "expect = \"pass\""
                } else {
                    "expect = \"fail\""
                });
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    std::fs::write(&path, out).expect("write cases.toml");
}

#[test]
fn onnx_node_cases_match_their_expectations() {
    let cases = cases();
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    let mut results = BTreeMap::new();
    let mut per_op: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let mut panics = Vec::new();
    for c in &cases {
        let path = dir().join(&c.name);
        let r = std::panic::catch_unwind(|| run(&path)).unwrap_or_else(|_| {
            panics.push(c.name.clone());
            Err("panicked".into())
        });
        let e = per_op.entry(c.op.as_str()).or_default();
        e.1 += 1;
        if r.is_ok() {
            e.0 += 1;
        }
        if r.is_ok() != c.expect_pass {
            unexpected.push(match &r {
                Ok(()) => format!(
                    "  {} ({}, opset {}): passes, cases.toml expects a failure",
                    c.name, c.op, c.opset
                ),
                Err(m) => format!(
                    "  {} ({}, opset {}): fails, cases.toml expects a pass: {m}",
                    c.name, c.op, c.opset
                ),
            });
        }
        if let (Err(m), Some(_)) = (&r, std::env::var_os("NMC_ONNX_NODE_VERBOSE")) {
            println!("FAIL {} ({}, opset {}): {m}", c.name, c.op, c.opset);
        }
        results.insert(c.name.clone(), r.is_ok());
    }
    let passed = results.values().filter(|&&p| p).count();
    let summary: Vec<String> = per_op
        .iter()
        .map(|(op, (p, n))| format!("{op} {p}/{n}"))
        .collect();
    println!(
        "onnx-node: {passed}/{} cases pass ({})",
        cases.len(),
        summary.join(", ")
    );
    assert!(panics.is_empty(), "nmc panicked on {panics:?}");
    if std::env::var_os("NMC_BLESS_ONNX_NODE").is_some() {
        bless(&results);
        return;
    }
    assert!(
        unexpected.is_empty(),
        "{} case(s) disagree with testdata/onnx-node/cases.toml (NMC_BLESS_ONNX_NODE=1 rewrites it):\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}
