//! What the compiler hands a loaded artifact to run, and what a run gives back: samples, event
//! streams, and the `nmc run --report` figures every backend fills the same way.

use crate::{Bound, Counters};

/// A dense array: shape and row-major values.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, C order.
    pub data: Vec<f32>,
}

impl Array {
    /// Splits the first axis: one flattened sample per entry.
    pub fn samples(&self) -> Vec<Vec<f32>> {
        let n = self.shape.first().copied().unwrap_or(1).max(1);
        let per = self.data.len() / n;
        self.data.chunks(per.max(1)).map(|c| c.to_vec()).collect()
    }
}

/// A DVS-style event stream: a structured `.npy` with (at least) integer fields `x`, `y`, `t`,
/// `p` (specksim's and samna's event form, each usually `uint32`; other fields are ignored).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventArray {
    /// Columns.
    pub x: Vec<u32>,
    /// Rows.
    pub y: Vec<u32>,
    /// Timestamps.
    pub t: Vec<u64>,
    /// Polarities.
    pub p: Vec<u32>,
}

/// How an event stream is cut into timesteps (`nmc run --dt/--t-start/--timesteps`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventBinning {
    /// Steps (`None`: the artifact's default, or with `dt` as many as reach the last event).
    pub timesteps: Option<u32>,
    /// Time units (µs in specksim's format) per step (`None`: the stream's own span is cut into
    /// `timesteps` equal bins).
    pub dt: Option<u64>,
    /// Start of step 0 with `dt` (`None`: the first event's time).
    pub t_start: Option<u64>,
}

impl EventBinning {
    /// Events a run over `timesteps` steps of this binning leaves out: `(before t_start, after
    /// the last step)`; none without `dt`.
    pub fn dropped(&self, events: &EventArray, timesteps: u32) -> (usize, usize) {
        let Some(dt) = self.dt.filter(|d| *d > 0) else {
            return (0, 0);
        };
        let Some(t0) = self.t_start.or(events.t.iter().copied().min()) else {
            return (0, 0);
        };
        let end = u128::from(t0) + u128::from(dt) * u128::from(timesteps);
        let before = events.t.iter().filter(|t| **t < t0).count();
        let after = events.t.iter().filter(|t| u128::from(**t) >= end).count();
        (before, after)
    }
}

impl EventArray {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.x.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }
}

/// Per-core figures of a run, summed over samples and timesteps.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CorePerf {
    /// Logical core id.
    pub id: u32,
    /// Chip.
    pub chip: u32,
    /// Mesh column.
    pub x: u32,
    /// Mesh row.
    pub y: u32,
    /// The core's [`Counters`] (`syn_ops`, `mem_reads`, `neuron_updates`, `msgs_in`, `msgs_out`,
    /// in that order in the JSON, between `y` and `bound`).
    #[serde(flatten)]
    pub counts: Counters,
    /// The bound that held most often over the run: "memory", "compute" or "traffic".
    pub bound: String,
    /// Slot of the unit in its mesh node (AKD1000 NPs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// What the unit is configured as (AKD1000: "HRC", "CNP1", "FNP3", …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_type: Option<String>,
}

/// Per-chip figures of a run: the sums of its cores' counters (every target fills them from
/// [`CorePerf`] in [`finish_perf`]).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ChipPerf {
    /// Chip index in the system.
    pub chip: u32,
    /// Cores of the chip the artifact uses.
    pub cores: usize,
    /// Σ of the chip's cores' [`Counters`], summed over samples and timesteps.
    #[serde(flatten)]
    pub counts: Counters,
}

/// Traffic over the links from one chip to another (both directions listed apart), summed over
/// samples and timesteps: what a multi-chip system's inter-chip links carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkPerf {
    /// Chip the messages leave.
    pub from_chip: u32,
    /// Chip they enter.
    pub to_chip: u32,
    /// Messages that crossed.
    pub messages: u64,
    /// Bits that crossed.
    pub bits: u64,
}

/// Adds `more` into `into`, merging entries of the same (from, to) pair; kept sorted.
pub fn add_links(into: &mut Vec<LinkPerf>, more: &[LinkPerf]) {
    for l in more {
        match into.binary_search_by_key(&(l.from_chip, l.to_chip), |x| (x.from_chip, x.to_chip)) {
            Ok(i) => {
                into[i].messages += l.messages;
                into[i].bits += l.bits;
            }
            Err(i) => into.insert(i, *l),
        }
    }
}

/// The `nmc run --report` JSON.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PerfSummary {
    /// Target name.
    pub target: String,
    /// Samples run.
    pub samples: usize,
    /// Timesteps per sample.
    pub timesteps: u32,
    /// Mean latency per inference (ns).
    pub latency_ns: f64,
    /// Mean energy per inference (nJ).
    pub energy_nj: f64,
    /// Mean time of the slowest timestep of an inference (ns): the emulated `T_step`.
    pub t_step_ns: f64,
    /// The bound of the slowest timesteps, most often over the samples.
    pub workload_bound: String,
    /// Total synaptic events.
    pub synaptic_events: u64,
    /// Per-core counters, summed over all samples.
    pub cores: Vec<CorePerf>,
    /// Frames per second a pipelined chip sustains (AKD1000: 1 / the slowest NP's time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput_fps: Option<f64>,
    /// Per chip: the sums of its cores' counters (one entry on a single-chip target).
    pub chips: Vec<ChipPerf>,
    /// Per pair of chips: what their links carried (multi-chip Loihi 2 systems; absent when no
    /// message crossed a chip boundary).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkPerf>,
}

/// Closes a run report: each core's and the workload's bound become the one that held most often
/// (`core_bounds[i]` and `workload` count samples per bound, indexed by `Bound as usize`), and the
/// sums over samples become means per inference.
///
/// A tie between counts goes the way [`Bound::of`] breaks a tie between times: to compute, then
/// memory, then traffic ([`Bound::TIE_ORDER`]); no samples at all give compute.
pub fn finish_perf(perf: &mut PerfSummary, core_bounds: &[[u64; 3]], workload: &[u64; 3]) {
    let most = |b: &[u64; 3]| {
        let mut best = Bound::TIE_ORDER[0];
        for k in Bound::TIE_ORDER {
            if b[k as usize] > b[best as usize] {
                best = k;
            }
        }
        best.as_str()
    };
    for (p, b) in perf.cores.iter_mut().zip(core_bounds) {
        p.bound = most(b).to_string();
    }
    perf.chips.clear();
    for c in &perf.cores {
        let at = match perf.chips.binary_search_by_key(&c.chip, |x| x.chip) {
            Ok(i) => i,
            Err(i) => {
                perf.chips.insert(
                    i,
                    ChipPerf {
                        chip: c.chip,
                        ..ChipPerf::default()
                    },
                );
                i
            }
        };
        perf.chips[at].cores += 1;
        perf.chips[at].counts.add(&c.counts);
    }
    perf.workload_bound = most(workload).to_string();
    if perf.samples > 0 {
        let n = perf.samples as f64;
        perf.latency_ns /= n;
        perf.energy_nj /= n;
        perf.t_step_ns /= n;
    }
}

/// What `run` returns.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Dequantised outputs of the first output, `[N, …]`.
    pub outputs: Array,
    /// Integer outputs of the first output, one vector per sample (for bit-exact checks).
    pub int_outputs: Vec<Vec<i64>>,
    /// Performance figures.
    pub perf: PerfSummary,
    /// The first output after every timestep, `[N, T, …]`, when the run recorded it
    /// ([`crate::Loaded::run_recorded`]).
    pub steps: Option<Array>,
    /// The probed layers' spikes and voltages ([`crate::Loaded::run_probed`]).
    pub probes: Vec<Probe>,
}

/// What a probe recorded of one layer, after every timestep (as Lava's `Monitor` reads a
/// neuron's `s_out` and `v` after each step's update).
#[derive(Clone, Debug)]
pub struct Probe {
    /// The layer (its population's name).
    pub layer: String,
    /// Spikes, `[N, T, …layer shape]`.
    pub spikes: Array,
    /// Voltages in the neuron's state units (Loihi: `vth << 6` is the threshold),
    /// `[N, T, …layer shape]`.
    pub v: Array,
}

/// Splits `[N, …]` samples (or one unbatched sample) into flat per-sample slices of `per` values.
pub fn split_samples<'a>(
    samples: &'a Array,
    per: usize,
    shape: &[u32],
) -> Result<Vec<&'a [f32]>, crate::BackendError> {
    let n = if samples.shape.len() > 1 && samples.shape[1..].iter().product::<usize>() == per {
        samples.shape[0]
    } else if samples.data.len() == per {
        1
    } else {
        return Err(crate::BackendError::input(format!(
            "array of shape {:?} does not hold samples of the input shape {shape:?}",
            samples.shape
        )));
    };
    Ok((0..n)
        .map(|i| &samples.data[i * per..(i + 1) * per])
        .collect())
}

/// Integer inputs an emulator cannot take (the host quantises inputs before sending them).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// Wrong number of input tensors.
    #[error("the model has {expected} input(s), {got} given")]
    Count {
        /// Inputs expected.
        expected: usize,
        /// Inputs given.
        got: usize,
    },
    /// An input tensor has the wrong size.
    #[error("input {index} has {got} values, the model expects {expected}")]
    Size {
        /// Input position.
        index: usize,
        /// Values given.
        got: usize,
        /// Values expected.
        expected: usize,
    },
    /// An input value is outside its quantised range.
    #[error("input {index} value {value} at position {position} is outside its quantised range [{min}, {max}]")]
    Range {
        /// Input position.
        index: usize,
        /// Flat position of the value.
        position: usize,
        /// The value.
        value: i64,
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
}

/// What an emulator expects of one integer input: its length and value range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntInput {
    /// Values per sample.
    pub len: usize,
    /// Smallest value.
    pub min: i64,
    /// Largest value.
    pub max: i64,
}

/// Checks integer inputs against what the artifact declares, the one check every emulator runs
/// before touching them.
pub fn check_int_inputs(inputs: &[Vec<i64>], expected: &[IntInput]) -> Result<(), InputError> {
    if inputs.len() != expected.len() {
        return Err(InputError::Count {
            expected: expected.len(),
            got: inputs.len(),
        });
    }
    for (index, (x, e)) in inputs.iter().zip(expected).enumerate() {
        if x.len() != e.len {
            return Err(InputError::Size {
                index,
                got: x.len(),
                expected: e.len,
            });
        }
        if let Some(position) = x.iter().position(|v| !(e.min..=e.max).contains(v)) {
            return Err(InputError::Range {
                index,
                position,
                value: x[position],
                min: e.min,
                max: e.max,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_perf_json_keys_and_order() {
        let p = CorePerf {
            id: 1,
            chip: 2,
            x: 3,
            y: 4,
            counts: Counters {
                syn_ops: 5,
                mem_reads: 6,
                neuron_updates: 7,
                msgs_in: 8,
                msgs_out: 9,
            },
            bound: "memory".into(),
            slot: Some(10),
            unit_type: Some("CNP1".into()),
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"id":1,"chip":2,"x":3,"y":4,"syn_ops":5,"mem_reads":6,"neuron_updates":7,"msgs_in":8,"msgs_out":9,"bound":"memory","slot":10,"unit_type":"CNP1"}"#
        );
        let q = CorePerf {
            slot: None,
            unit_type: None,
            ..p
        };
        assert_eq!(
            serde_json::to_string(&q).unwrap(),
            r#"{"id":1,"chip":2,"x":3,"y":4,"syn_ops":5,"mem_reads":6,"neuron_updates":7,"msgs_in":8,"msgs_out":9,"bound":"memory"}"#
        );
    }

    #[test]
    fn most_often_ties_follow_bound_of() {
        let bound = |b: [u64; 3]| {
            let mut perf = PerfSummary {
                cores: vec![CorePerf::default()],
                ..Default::default()
            };
            finish_perf(&mut perf, &[b], &b);
            assert_eq!(perf.cores[0].bound, perf.workload_bound);
            perf.workload_bound
        };
        assert_eq!(bound([0, 0, 0]), "compute");
        assert_eq!(bound([2, 2, 2]), "compute");
        assert_eq!(bound([2, 1, 2]), "memory");
        assert_eq!(bound([1, 2, 2]), "compute");
        assert_eq!(bound([1, 1, 2]), "traffic");
        assert_eq!(bound([3, 1, 2]), "memory");
        // The same order as `Bound::of` on equal times.
        assert_eq!(Bound::of(2.0, 1.0, 2.0).as_str(), bound([2, 1, 2]));
        assert_eq!(Bound::of(1.0, 2.0, 2.0).as_str(), bound([1, 2, 2]));
        assert_eq!(Bound::of(2.0, 2.0, 2.0).as_str(), bound([2, 2, 2]));
    }
}

/// Why an emulator cannot run an artifact: the cases every emulator shares (a backend whose
/// emulator can fail in more ways wraps these in its own error).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The inputs do not suit the artifact.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The artifact is invalid.
    #[error(transparent)]
    Artifact(#[from] crate::ArtifactError),
}

/// Runs `work` on every sample on all of rayon's threads, each worker with its own emulator from
/// `init` (emulators keep per-run state), and returns the results in sample order, so that what
/// the caller then folds over them in order is the same, bit for bit, with one thread or many.
/// The first error in sample order wins.
pub fn map_samples<S, R, E>(
    xs: &[&[f32]],
    init: impl Fn() -> Result<S, E> + Sync,
    work: impl Fn(&mut S, &[f32]) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E>
where
    R: Send,
    E: Send,
{
    use rayon::prelude::*;
    let chunk = xs
        .len()
        .div_ceil(rayon::current_num_threads().max(1))
        .max(1);
    let parts: Vec<Result<Vec<R>, E>> = xs
        .par_chunks(chunk)
        .map(|c| {
            let mut state = init()?;
            c.iter().map(|x| work(&mut state, x)).collect()
        })
        .collect();
    let mut out = Vec::with_capacity(xs.len());
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}
