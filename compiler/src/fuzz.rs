//! Seeded mutation fuzzing of every kind of input nmc reads: ONNX bytes, artifact bytes, `.npy`
//! bytes and IR text. Each case mutates a valid seed (bit flips, overwritten, inserted, deleted
//! and duplicated byte runs, truncation) and feeds it to the same entry points the commands use;
//! a case passes when it ends in a value or an error, and fails when it panics. The integration
//! tests run a few thousand cases on every build; `cargo xtask fuzz` runs as many as asked and
//! prints the counts.

use crate::synth::Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a fuzz run found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Cases run.
    pub cases: usize,
    /// Cases the entry point accepted (a mutation that is still a valid input).
    pub accepted: usize,
    /// Cases rejected with an error.
    pub rejected: usize,
    /// Cases that panicked: `case index: message`.
    pub panics: Vec<String>,
}

impl Outcome {
    fn record(&mut self, case: usize, r: std::thread::Result<bool>) {
        self.cases += 1;
        match r {
            Ok(true) => self.accepted += 1,
            Ok(false) => self.rejected += 1,
            Err(p) => {
                let m = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                self.panics.push(format!("case {case}: {m}"));
            }
        }
    }
}

/// One random mutation of `bytes` (never larger than twice the input plus 64 bytes).
pub fn mutate(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let n = b.len().max(1);
    let at = |rng: &mut Rng, n: usize| (rng.next_u64() % n as u64) as usize;
    let edits = 1 + rng.next_u64() % 4;
    for _ in 0..edits {
        let len = b.len();
        match rng.next_u64() % 7 {
            0 | 1 if len > 0 => {
                let i = at(rng, len);
                b[i] ^= 1 << (rng.next_u64() % 8);
            }
            2 if len > 0 => {
                let i = at(rng, len);
                b[i] = rng.next_u64() as u8;
            }
            3 if len > 0 => b.truncate(at(rng, len)),
            4 if len > 0 => {
                let i = at(rng, len);
                let k = (1 + rng.next_u64() % 16) as usize;
                b.drain(i..(i + k).min(len));
            }
            5 if len > 0 && len < 2 * n + 64 => {
                let i = at(rng, len);
                let k = (1 + rng.next_u64() % 32) as usize;
                let run: Vec<u8> = b[i..(i + k).min(len)].to_vec();
                let j = at(rng, len);
                b.splice(j..j, run);
            }
            _ => {
                let i = at(rng, len + 1);
                let k = (1 + rng.next_u64() % 8) as usize;
                let run: Vec<u8> = (0..k).map(|_| rng.next_u64() as u8).collect();
                b.splice(i..i, run);
            }
        }
    }
    b
}

/// Runs `cases` mutations of the seeds through `check` (which returns whether the input was
/// accepted), each case inside `catch_unwind`.
fn run(seeds: &[Vec<u8>], cases: usize, seed: u64, check: impl Fn(&[u8]) -> bool) -> Outcome {
    let mut rng = Rng::new(seed);
    let mut out = Outcome::default();
    if seeds.is_empty() {
        return out;
    }
    for case in 0..cases {
        let base = &seeds[case % seeds.len()];
        let m = mutate(base, &mut rng);
        out.record(case, catch_unwind(AssertUnwindSafe(|| check(&m))));
    }
    out
}

/// ONNX bytes: import; what imports is also compiled for every target (weight-only ranges).
pub fn onnx(seeds: &[Vec<u8>], cases: usize, seed: u64) -> Outcome {
    run(seeds, cases, seed, |b| {
        let Ok(imported) = crate::onnx::import_bytes(b, None) else {
            return false;
        };
        for t in crate::Target::all() {
            let opts = crate::Options::new(*t);
            let _ = crate::driver::compile_graph(imported.graph.clone(), &[], &opts, 0);
        }
        true
    })
}

/// Artifact bytes: decode; what decodes is also run on one all-zero sample.
pub fn artifacts(seeds: &[Vec<u8>], cases: usize, seed: u64) -> Outcome {
    run(seeds, cases, seed, |b| {
        let Ok(a) = crate::LoadedArtifact::decode(b) else {
            return false;
        };
        let _ = a.listing();
        let _ = a.to_json();
        let x = crate::npy::Array {
            shape: vec![1, 1],
            data: vec![0.0],
        };
        let _ = a.run(&x, Some(2));
        true
    })
}

/// `.npy` bytes: parsed as a run or calibration input.
pub fn npy(seeds: &[Vec<u8>], cases: usize, seed: u64) -> Outcome {
    run(seeds, cases, seed, |b| crate::npy::parse_input(b).is_ok())
}

/// IR text: parse; what parses is verified, and interpreted on zeros when it verifies.
pub fn ir_text(seeds: &[Vec<u8>], cases: usize, seed: u64) -> Outcome {
    run(seeds, cases, seed, |b| {
        let Ok(text) = std::str::from_utf8(b) else {
            return false;
        };
        let Ok((g, _)) = crate::driver::parse_partitioned(text) else {
            return false;
        };
        if nmc_ir::verify(&g).is_err() {
            return false;
        }
        if let Ok(interp) = nmc_ir::Interpreter::new(&g) {
            let zeros: Vec<Vec<f32>> = g
                .inputs
                .iter()
                .map(|&i| vec![0.0; g.ty(i).numel()])
                .collect();
            let refs: Vec<&[f32]> = zeros.iter().map(|v| v.as_slice()).collect();
            let _ = interp.run(&refs);
        }
        true
    })
}
