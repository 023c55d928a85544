//! nmc's integration tests: one binary, data-driven over `testdata/models/*`.
//!
//! - `eval`: the float reference interpreter equals onnxruntime's `expected.npy`;
//! - `emulate`: the emulator equals the quantised reference bit for bit, and quantised top-1
//!   agrees with the float model;
//! - `snapshots`: IR text and artifact listings per (case, stage);
//! - `roundtrip`: IR print → parse → print is the identity;
//! - `errors`: bad inputs give the documented error kind, message and exit code, and no file;
//! - `determinism`: compiling twice gives byte-identical artifacts;
//! - `egraph`: the e-graph pass (-O2) keeps float semantics on every case, compiles, emulates
//!   bit-exactly and is deterministic;
//! - `akd1000`: the AKD1000 backend on the cases whose case.toml lists it (bit-exactness,
//!   accuracy, listings, NP mapping) and one error test per Akida 1.0 constraint.
//! - `akida_reference`: the AKD1000 cases against BrainChip akida 2.19.3's committed outputs
//!   and `MapMode.Minimal` mapping (`testdata/gen/akida_reference.py`);
//! - `onnx_node`: ONNX's node test cases (`testdata/onnx-node/`) pass or fail as `cases.toml`
//!   records;
//! - `hostile_io`: hostile files, paths and flags give clear errors with the documented exit
//!   codes, never hang, and touch nothing but the named outputs; `hostile_model`: hostile
//!   models (depth, sizes, ranks, non-finite numbers, names) likewise; `fuzz`: seeded mutation
//!   fuzzing of every input kind;
//! - `joins`: concatenations of differently calibrated branches (fire modules, dense blocks)
//!   share one grid, compile for Loihi 2 and run bit-exactly; chips without concatenation
//!   name the node;
//! - `kernels`: the Loihi 2 emulator's dense kernels equal its event-by-event path (outputs and
//!   counters), and runs are identical with one thread and several;
//! - `multichip`: per-chip counters and inter-chip link traffic in `run --report`;
//! - `record`: `run --record` (each step equals a run stopped there; Speck's steps add up to
//!   its counts; the AKD1000 refuses it);
//! - `sinabs_reference`: the Speck cases held to sinabs 3.1.3 as `testdata/gen/sinabs_reference.py`
//!   recorded it (cores, memory and samna configuration as sinabs writes them; every layer's
//!   spikes and the output counts per sample and step as sinabs simulates them);
//! - `speck`: rate mode on Speck: emulator == rate-mode reference, accuracy, memory formulas,
//!   matching vs brute force, listings and limit errors, the `ai.nmc` domain;
//! - `speck_branches`: branching networks as sinabs 3 maps them (two destinations, merges):
//!   random residual networks bit-exact with merges on the chip, refusals naming rule and fix;
//! - `speck_dvs`: Speck's DVS layer: input pooling in it (sum and average, bit-exact on dense
//!   and event input), region of interest, mirrors and polarity selection against transformed
//!   event streams, `--dt` binning, hostile DVS fields, refusals naming rule and fix.
//! - `tiling`: Loihi 2 populations tiled by output rows and columns run bit-exactly, each tile
//!   charged its neurons and sent its input window; 128×128 inputs compile; hostile tilings in
//!   an artifact are errors; more tiles on a hot layer lower the emulated latency.

mod akd1000;
mod akida_reference;
mod cli;
mod common;
mod determinism;
mod egraph;
mod emulate;
mod errors;
mod eval;
mod floorline;
mod fuzz;
mod hostile_io;
mod hostile_model;
mod joins;
mod kernels;
mod mapping;
mod multichip;
mod netx;
mod onnx_node;
mod record;
mod roundtrip;
mod sinabs_reference;
mod snapshots;
mod snn;
mod snn_io;
mod speck;
mod speck_branches;
mod speck_dvs;
mod tiling;
mod toy_backend;
