//! The floorline vocabulary shared by the cost model and every emulator (docs/papers.md §1.3):
//! per-core loads `S`, `R`, `D`, `M` (counted by emulators as [`Counters`]), the constants that turn them into time and energy, which
//! term bounds a core ([`Bound`], one tie rule), and the activity a load is estimated from
//! ([`ActivityProfile`]). The compiler's cost model evaluates [`Loads`]; each backend produces
//! them, modelled from an activity profile or measured by its emulator.

use nmc_ir::{Graph, InterpError, Interpreter, NodeId, Op, Value};

/// Which floorline term limits a core or a workload (docs/papers.md §1.3): the vocabulary the cost
/// model and every emulator report in. The discriminants are stable (`Bound as usize` indexes
/// `["memory", "compute", "traffic"]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// Synaptic processing (synaptic operations and the weight reads feeding them): the
    /// floorline's slope, which sparser activity lowers.
    Memory = 0,
    /// Neuron updates: the floor that sparser inputs do not lower.
    #[default]
    Compute = 1,
    /// Messages (events) in or out, or a mesh link for the workload.
    Traffic = 2,
}

impl Bound {
    /// The bounds in the order ties go: compute, then memory, then traffic.
    pub const TIE_ORDER: [Bound; 3] = [Bound::Compute, Bound::Memory, Bound::Traffic];

    /// "memory", "compute" or "traffic".
    pub fn as_str(self) -> &'static str {
        match self {
            Bound::Memory => "memory",
            Bound::Compute => "compute",
            Bound::Traffic => "traffic",
        }
    }

    /// The largest term; ties go to compute, then memory (then traffic). The one rule every
    /// emulator and the cost model decide a core's or a step's bound by; [`crate::finish_perf`]
    /// breaks ties between bounds counted over samples in the same order ([`Bound::TIE_ORDER`]).
    pub fn of(memory: f64, compute: f64, traffic: f64) -> Bound {
        if memory > compute && memory >= traffic {
            Bound::Memory
        } else if traffic > compute && traffic > memory {
            Bound::Traffic
        } else {
            Bound::Compute
        }
    }
}

/// What one core did, counted the same way by every emulator: the floorline loads `S`, `R`, `D`
/// and `M` (docs/papers.md §1.3), per timestep or summed over a run. This is the one definition
/// of them: each emulator's per-core record holds a `Counters`, and `nmc run --report` prints one
/// per core ([`crate::CorePerf`]).
///
/// `M` is [`Counters::messages`], messages in plus out. What a chip *charges* for a load is its
/// cost model's business, not this definition's: Speck's time model charges input events only,
/// and [`CoreLoad::m`] holds the message load a backend's floorline model charges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// `S`, synaptic operations: stored synapses (weights) applied to arriving events, zero
    /// weights included where the chip stores and applies them.
    pub syn_ops: u64,
    /// `R`, synaptic-memory words read to fetch those weights (0 where a chip's model has no
    /// separate weight-read term).
    pub mem_reads: u64,
    /// `D`, neuron updates: neurons evaluated (and pooled outputs recomputed).
    pub neuron_updates: u64,
    /// Messages (events) into the core, one per event per destination core.
    pub msgs_in: u64,
    /// Messages (events) out of the core, summed over destinations.
    pub msgs_out: u64,
}

impl Counters {
    /// `M`, the core's messages: in plus out.
    pub fn messages(&self) -> u64 {
        self.msgs_in + self.msgs_out
    }

    /// Adds `other`, counter by counter.
    pub fn add(&mut self, other: &Counters) {
        *self += *other;
    }
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        self.syn_ops += o.syn_ops;
        self.mem_reads += o.mem_reads;
        self.neuron_updates += o.neuron_updates;
        self.msgs_in += o.msgs_in;
        self.msgs_out += o.msgs_out;
    }
}

/// Estimated work of one core in one timestep.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct CoreLoad {
    /// Logical core id.
    pub id: u32,
    /// Chip.
    pub chip: u32,
    /// Mesh column.
    pub x: u32,
    /// Mesh row.
    pub y: u32,
    /// The layer (population) whose slice the core holds.
    pub layer: String,
    /// Synaptic operations.
    #[serde(rename = "S")]
    pub s: f64,
    /// Synaptic-memory words read.
    #[serde(rename = "R")]
    pub r: f64,
    /// Neuron updates.
    #[serde(rename = "D")]
    pub d: f64,
    /// Messages in and out (the larger: they fall in different timesteps of the pipeline).
    #[serde(rename = "M")]
    pub m: f64,
    /// Messages into the core.
    pub m_in: f64,
    /// Messages out of the core.
    pub m_out: f64,
}

/// The constants of the model (times in ns, energies in pJ, power in mW).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Constants {
    /// Time per synaptic operation.
    pub a_syn: f64,
    /// Time per synaptic-memory word.
    pub a_mem: f64,
    /// Time per neuron update.
    pub a_neu: f64,
    /// Time per message in or out of a core.
    pub a_msg: f64,
    /// Barrier at the end of a timestep.
    pub b_sync: f64,
    /// Energy per synaptic operation.
    pub e_syn: f64,
    /// Energy per memory word.
    pub e_mem: f64,
    /// Energy per neuron update.
    pub e_neu: f64,
    /// Energy per message.
    pub e_msg: f64,
    /// Energy per link traversal.
    pub e_hop: f64,
    /// Static power per chip.
    pub p_static: f64,
}

/// Everything the floorline model needs about one mapping: per-core loads per timestep, the
/// slowest link, expected hops, the timesteps of an inference and the chip's constants.
#[derive(Clone, Debug, PartialEq)]
pub struct Loads {
    /// Per core, per timestep.
    pub cores: Vec<CoreLoad>,
    /// The slowest mesh link's time per step (ns).
    pub link_ns: f64,
    /// Expected link traversals of one inference.
    pub hops: f64,
    /// Timesteps of one inference.
    pub timesteps: u32,
    /// Chips powered.
    pub chips: u32,
    /// The chip's constants.
    pub constants: Constants,
    /// Where the activity came from, for the report.
    pub activity: String,
    /// Whether a layer can be split over more cores (Speck runs each layer on exactly one
    /// core), so that the analysis advises only what the chip can do.
    pub splittable: bool,
    /// Expected traffic of one inference over each pair of chips' links (multi-chip systems;
    /// empty on one chip).
    pub links: Vec<crate::LinkPerf>,
}

/// Event density per element of every graph input (after quantisation) and every layer output.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityProfile {
    /// Where the numbers came from, for the report.
    pub from: String,
    /// Per graph input, per element.
    pub inputs: Vec<Vec<f64>>,
    /// Per layer node in topological order: the node, its name, per output element.
    pub layers: Vec<(NodeId, Option<String>, Vec<f64>)>,
}

/// The density assumed without calibration inputs.
pub const DEFAULT_DENSITY: f64 = 0.5;

fn quantize_of(graph: &Graph, input: NodeId) -> NodeId {
    graph
        .ids()
        .find(|&n| matches!(graph.node(n).op, Op::Quantize(_)) && graph.node(n).inputs == [input])
        .unwrap_or(input)
}

/// Whether `graph` is an snn-mode graph (its layers are CUBA-LIF neurons stepped over time).
pub fn is_snn(graph: &Graph) -> bool {
    graph.ids().any(|id| {
        matches!(&graph.node(id).op, Op::Layer(l) if l.quant.as_ref().is_some_and(|q| q.cuba().is_some()))
    })
}

/// Per element of each input (its `Quantize`) and of each layer, a sum over runs, turned into
/// densities by [`Tally::finish`]: what both measurements of an activity profile collect.
struct Tally {
    inputs: Vec<(NodeId, Vec<f64>)>,
    layers: Vec<(NodeId, Vec<f64>)>,
}

impl Tally {
    fn new(graph: &Graph) -> Self {
        let zeros = |id: NodeId| (id, vec![0.0; graph.ty(id).numel()]);
        Tally {
            inputs: graph
                .inputs
                .iter()
                .map(|&i| zeros(quantize_of(graph, i)))
                .collect(),
            layers: layer_nodes(graph).into_iter().map(zeros).collect(),
        }
    }

    /// Lets `f` add one run's counts to every input's and layer's sums.
    fn add(&mut self, mut f: impl FnMut(NodeId, &mut [f64])) {
        for (id, acc) in self.inputs.iter_mut().chain(&mut self.layers) {
            f(*id, acc);
        }
    }

    /// The sums divided by `n` (runs, or steps).
    fn finish(self, graph: &Graph, n: f64, from: String) -> ActivityProfile {
        let norm = |v: Vec<f64>| v.into_iter().map(|c| c / n).collect::<Vec<f64>>();
        ActivityProfile {
            from,
            inputs: self.inputs.into_iter().map(|(_, v)| norm(v)).collect(),
            layers: self
                .layers
                .into_iter()
                .map(|(l, v)| (l, graph.node(l).name.clone(), norm(v)))
                .collect(),
        }
    }
}

fn layer_nodes(graph: &Graph) -> Vec<NodeId> {
    graph
        .topo_order()
        .unwrap_or_default()
        .into_iter()
        .filter(|&n| matches!(graph.node(n).op, Op::Layer(_)))
        .collect()
}

impl ActivityProfile {
    /// Every element active with probability `density` (the stated default without data).
    pub fn uniform(graph: &Graph, density: f64) -> Self {
        ActivityProfile {
            from: format!(
                "no calibration inputs: every value assumed non-zero with probability {density}"
            ),
            inputs: graph
                .inputs
                .iter()
                .map(|&i| vec![density; graph.ty(i).numel()])
                .collect(),
            layers: layer_nodes(graph)
                .into_iter()
                .map(|n| {
                    (
                        n,
                        graph.node(n).name.clone(),
                        vec![density; graph.ty(n).numel()],
                    )
                })
                .collect(),
        }
    }

    /// Measures densities with the reference interpreter on a quantised graph.
    pub fn measure(graph: &Graph, samples: &[Vec<Vec<f32>>]) -> Result<Self, InterpError> {
        if samples.is_empty() {
            return Ok(Self::uniform(graph, DEFAULT_DENSITY));
        }
        let interp = Interpreter::new(graph)?;
        if is_snn(graph) {
            return Self::measure_snn(graph, &interp, samples);
        }
        let mut tally = Tally::new(graph);
        // The blank-input response every inference starts from.
        let zeros: Vec<Vec<f32>> = graph
            .inputs
            .iter()
            .map(|&i| vec![0.0; graph.ty(i).numel()])
            .collect();
        let zero_refs: Vec<&[f32]> = zeros.iter().map(|v| v.as_slice()).collect();
        let blank = interp.run_all(&zero_refs)?;
        for s in samples {
            let refs: Vec<&[f32]> = s.iter().map(|v| v.as_slice()).collect();
            let vals = interp.run_all(&refs)?;
            tally.add(|id, acc| {
                if let (Some(Value::I64(x)), Some(Value::I64(b))) =
                    (&vals[id.index()], &blank[id.index()])
                {
                    acc.iter_mut()
                        .zip(x.iter().zip(b))
                        .for_each(|(a, (x, b))| *a += f64::from(u8::from(x != b)));
                }
            });
        }
        Ok(tally.finish(
            graph,
            samples.len() as f64,
            format!("measured on {} calibration sample(s)", samples.len()),
        ))
    }

    /// [`ActivityProfile::measure`] of an snn-mode graph: each sample is its inputs' spike frames
    /// (`T` frames of each input, flat), run step by step; an element's density is the fraction
    /// of steps in which it sent a spike, the probability the floorline model charges per step.
    fn measure_snn(
        graph: &Graph,
        interp: &Interpreter<'_>,
        samples: &[Vec<Vec<f32>>],
    ) -> Result<Self, InterpError> {
        let mut tally = Tally::new(graph);
        let mut steps = 0u64;
        for s in samples {
            let per: Vec<usize> = graph.inputs.iter().map(|&i| graph.ty(i).numel()).collect();
            let t = match (s.first(), per.first()) {
                (Some(x), Some(&p)) if p > 0 && x.len() % p == 0 => x.len() / p,
                _ => 0,
            };
            if t == 0 || s.len() != per.len() || s.iter().zip(&per).any(|(x, p)| x.len() != t * p) {
                return Err(InterpError::InputSize {
                    index: 0,
                    got: s.first().map_or(0, Vec::len),
                    expected: per.first().copied().unwrap_or(0),
                });
            }
            let events: Vec<Vec<Vec<i64>>> = (0..t)
                .map(|k| {
                    s.iter()
                        .zip(&per)
                        .map(|(x, &p)| x[k * p..(k + 1) * p].iter().map(|v| *v as i64).collect())
                        .collect()
                })
                .collect();
            let r = interp.run_events(&events)?;
            tally.add(|id, acc| {
                if let Some(a) = r.active_steps.get(id.index()) {
                    acc.iter_mut()
                        .zip(a)
                        .for_each(|(acc, n)| *acc += f64::from(*n));
                }
            });
            steps += t as u64;
        }
        Ok(tally.finish(
            graph,
            steps.max(1) as f64,
            format!(
                "measured on {} spike-frame sample(s), {steps} step(s) in all",
                samples.len()
            ),
        ))
    }

    /// The same profile with every density multiplied by `factor` (clamped to [0, 1]): "what if
    /// the network were this much sparser".
    pub fn scaled(&self, factor: f64) -> Self {
        let f = |v: &Vec<f64>| v.iter().map(|p| (p * factor).clamp(0.0, 1.0)).collect();
        ActivityProfile {
            from: format!("{} × {factor}", self.from),
            inputs: self.inputs.iter().map(f).collect(),
            layers: self
                .layers
                .iter()
                .map(|(n, name, v)| (*n, name.clone(), f(v)))
                .collect(),
        }
    }

    /// Mean density over all layer outputs.
    pub fn mean_layer_density(&self) -> f64 {
        let (sum, n) = self
            .layers
            .iter()
            .flat_map(|(_, _, v)| v)
            .fold((0.0, 0usize), |(s, n), p| (s + p, n + 1));
        if n == 0 {
            0.0
        } else {
            sum / n as f64
        }
    }
}
