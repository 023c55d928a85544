//! A fourth target that exists only in the tests, to show that the compiler reaches a chip through
//! the `nmc_backend::Backend` contract alone: the driver quantises, maps, lowers and runs a model
//! on it without knowing it. "toychip" is a graded chip of 16 interchangeable cores of 256 neurons
//! whose artifact carries the quantised graph itself (the IR text plus its constants) and whose
//! "emulator" is the reference interpreter, with per-core counters from the mapping.

use nmc_backend::{
    Activity, ArtifactError, Backend, BackendError, ChipParams, Constants, CoreLoad, CoreModel,
    CorePerf, CostParam, Counters, Envelope, Enveloped, Header, LayerSizer, Loaded, Loads,
    NativeOps, PerfSummary, QuantSpec, Quantization, RunResult, SearchSpace, TargetOptions,
};
use nmc_ir::{Constant, CoreLoc, Graph, Interpreter, Mapping, NodeId, Op, Value};

/// The toy chip.
pub struct ToyChip;

/// The one instance the tests hand to `Target::from_backend`.
pub static TOY: ToyChip = ToyChip;

const NAME: &str = "toychip";
const CORES: usize = 16;
const NEURONS_PER_CORE: u32 = 256;

const ENVELOPE: Envelope = Envelope {
    magic: b"NMCTOYAR",
    version: 1,
    target: NAME,
};

/// A stored constant: shape and values of one dtype.
#[derive(Clone, PartialEq, prost::Message)]
struct TensorMsg {
    #[prost(uint64, repeated, tag = "1")]
    shape: Vec<u64>,
    #[prost(float, repeated, tag = "2")]
    f32s: Vec<f32>,
    #[prost(sint32, repeated, tag = "3")]
    i32s: Vec<i32>,
    #[prost(bool, tag = "4")]
    is_i32: bool,
}

/// One slice of a layer on a core.
#[derive(Clone, PartialEq, prost::Message)]
struct SliceMsg {
    #[prost(string, tag = "1")]
    layer: String,
    #[prost(uint32, tag = "2")]
    core: u32,
    #[prost(uint32, tag = "3")]
    neurons: u32,
}

/// The artifact: the quantised graph's text, its constants in pool order, and the mapping.
#[derive(Clone, PartialEq, prost::Message)]
struct ToyArtifact {
    #[prost(message, optional, tag = "1")]
    header: Option<Header>,
    #[prost(string, tag = "2")]
    ir: String,
    #[prost(message, repeated, tag = "3")]
    constants: Vec<TensorMsg>,
    #[prost(message, repeated, tag = "4")]
    slices: Vec<SliceMsg>,
}

impl Enveloped for ToyArtifact {
    fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }
    fn header_mut(&mut self) -> Option<&mut Header> {
        self.header.as_mut()
    }
}

struct Cores;

struct Neurons(u32);

impl LayerSizer for Neurons {
    fn check_slice(&self, start: u32, end: u32) -> Result<(), nmc_backend::error::Source> {
        let n = (end - start) * self.0;
        if n > NEURONS_PER_CORE {
            return Err(format!("neurons: needs {n}, a core has {NEURONS_PER_CORE}").into());
        }
        Ok(())
    }
    fn min_cores(&self) -> usize {
        1
    }
}

impl CoreModel for Cores {
    fn cores_available(&self) -> usize {
        CORES
    }
    fn sizer<'g>(
        &self,
        graph: &'g Graph,
        layer: NodeId,
    ) -> Result<Box<dyn LayerSizer + 'g>, nmc_backend::error::Source> {
        let shape = &graph.ty(layer).shape;
        let per_channel = shape.iter().skip(1).product::<usize>().max(1) as u32;
        Ok(Box::new(Neurons(per_channel)))
    }
    fn location(&self, core: usize) -> CoreLoc {
        CoreLoc {
            chip: 0,
            x: (core % 4) as u32,
            y: (core / 4) as u32,
        }
    }
}

impl Backend for ToyChip {
    fn name(&self) -> &'static str {
        NAME
    }
    fn description(&self) -> String {
        format!("{NAME}  a test-only graded chip: {CORES} cores of {NEURONS_PER_CORE} neurons\n")
    }
    fn describe_json(&self) -> serde_json::Value {
        serde_json::json!({ "name": NAME, "cores": CORES })
    }
    fn quantization(&self) -> Quantization {
        Quantization::Graded(QuantSpec {
            weight_bits: 8,
            even_weights: false,
            weight_exp_range: (0, 6),
            state_bits: 24,
            act_bits: 8,
            max_act_bits: 16,
            bias_mant_bits: 13,
            bias_exp_max: 6,
        })
    }
    fn native_ops(&self) -> NativeOps {
        NativeOps::ANY
    }
    fn check_options(&self, opts: &TargetOptions) -> Result<(), BackendError> {
        opts.dvs.none_for(NAME)?;
        if opts.chips != 1 {
            return Err(BackendError::Usage(format!("{NAME} is one chip")));
        }
        Ok(())
    }
    fn cost_params(&self, _params: &ChipParams) -> Result<Vec<CostParam>, BackendError> {
        Ok(Vec::new())
    }
    fn default_mapping(
        &self,
        graph: &Graph,
        _opts: &TargetOptions,
    ) -> Result<Mapping, BackendError> {
        nmc_backend::greedy(graph, &Cores).map_err(|e| BackendError::fit(NAME, e))
    }
    fn search_space<'g>(
        &self,
        graph: &'g Graph,
        _opts: &TargetOptions,
    ) -> Result<SearchSpace<'g>, BackendError> {
        nmc_backend::uniform_space(graph, Box::new(Cores)).map_err(|e| BackendError::fit(NAME, e))
    }
    fn lower(
        &self,
        graph: &Graph,
        mapping: &Mapping,
        source_hash: u64,
        _opts: &TargetOptions,
    ) -> Result<Vec<u8>, BackendError> {
        let constants = graph
            .consts
            .iter()
            .map(|(_, c)| {
                let shape = c.shape.iter().map(|&d| d as u64).collect();
                match (c.to_i32(), c.to_f32()) {
                    (Some(v), _) => Ok(TensorMsg {
                        shape,
                        i32s: v,
                        is_i32: true,
                        ..Default::default()
                    }),
                    (None, Some(v)) => Ok(TensorMsg {
                        shape,
                        f32s: v,
                        ..Default::default()
                    }),
                    (None, None) => Err(BackendError::lower(NAME, "a constant has no values")),
                }
            })
            .collect::<Result<_, _>>()?;
        let slices = mapping
            .layers
            .iter()
            .flat_map(|(id, s)| {
                let per = graph.ty(*id).shape.iter().skip(1).product::<usize>().max(1) as u32;
                s.iter().map(move |s| SliceMsg {
                    layer: nmc_backend::layer_name(graph, *id),
                    core: s.core,
                    neurons: (s.end - s.start) * per,
                })
            })
            .collect();
        let art = ToyArtifact {
            header: Some(ENVELOPE.header(source_hash)),
            ir: nmc_ir::print(graph),
            constants,
            slices,
        };
        Ok(ENVELOPE.encode(&art))
    }
    fn is_artifact(&self, bytes: &[u8]) -> bool {
        ENVELOPE.is_artifact(bytes)
    }
    fn decode(&self, bytes: &[u8]) -> Result<Box<dyn Loaded>, ArtifactError> {
        let art: ToyArtifact = ENVELOPE.decode(bytes)?;
        let mut graph = nmc_ir::parse(&art.ir).map_err(|e| nmc_backend::corrupt(e.to_string()))?;
        if graph.consts.len() != art.constants.len() {
            return Err(nmc_backend::corrupt("constant count differs from the IR"));
        }
        let mut pool = nmc_ir::ConstPool::default();
        for t in &art.constants {
            let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
            pool.add(if t.is_i32 {
                Constant::i32(shape, t.i32s.clone())
            } else {
                Constant::f32(shape, t.f32s.clone())
            });
        }
        for ((_, parsed), (_, stored)) in graph.consts.iter().zip(pool.iter()) {
            if parsed.hash() != stored.hash() {
                return Err(nmc_backend::corrupt("a constant does not match its hash"));
            }
        }
        graph.consts = pool;
        Ok(Box::new(LoadedToy {
            graph,
            slices: art.slices,
        }))
    }
}

/// A decoded toy artifact.
pub struct LoadedToy {
    graph: Graph,
    slices: Vec<SliceMsg>,
}

impl Loaded for LoadedToy {
    fn target(&self) -> &'static str {
        NAME
    }
    fn listing(&self) -> String {
        let mut s = nmc_ir::print(&self.graph);
        for sl in &self.slices {
            s.push_str(&format!(
                "core {}: {} ({} neurons)\n",
                sl.core, sl.layer, sl.neurons
            ));
        }
        s
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "target": NAME, "cores_used": self.slices.len() })
    }
    fn input_shape(&self) -> Option<Vec<usize>> {
        match self.graph.inputs.as_slice() {
            [i] => Some(self.graph.ty(*i).shape.clone()),
            _ => None,
        }
    }
    fn run(
        &self,
        samples: &nmc_backend::Array,
        _timesteps: Option<u32>,
        _params: &ChipParams,
    ) -> Result<RunResult, BackendError> {
        let input = self
            .graph
            .inputs
            .first()
            .ok_or_else(|| BackendError::input("no input"))?;
        let per = self.graph.ty(*input).numel();
        let xs = nmc_backend::split_samples(samples, per, &[per as u32])?;
        let out = self.graph.outputs[0].node;
        let chip_out = self.graph.node(out).inputs[0];
        let interp = Interpreter::new(&self.graph).map_err(BackendError::input)?;
        let mut outputs = nmc_backend::Array {
            shape: vec![xs.len()],
            data: Vec::new(),
        };
        outputs
            .shape
            .extend(self.graph.ty(out).shape.iter().copied());
        let mut int_outputs = Vec::new();
        for x in &xs {
            let vals = interp.run_all(&[x]).map_err(BackendError::input)?;
            match (&vals[chip_out.index()], &vals[out.index()]) {
                (Some(Value::I64(i)), Some(Value::F32(f))) => {
                    int_outputs.push(i.clone());
                    outputs.data.extend(f);
                }
                _ => return Err(BackendError::input("the chip's output is not integer")),
            }
        }
        let perf = PerfSummary {
            target: NAME.into(),
            samples: xs.len(),
            timesteps: 1,
            cores: self
                .slices
                .iter()
                .map(|s| CorePerf {
                    id: s.core,
                    counts: Counters {
                        neuron_updates: u64::from(s.neurons) * xs.len() as u64,
                        ..Default::default()
                    },
                    bound: "compute".into(),
                    ..Default::default()
                })
                .collect(),
            workload_bound: "compute".into(),
            ..Default::default()
        };
        Ok(RunResult {
            outputs,
            int_outputs,
            perf,
            steps: None,
            probes: Vec::new(),
        })
    }
    /// The reference interpreter keeps no state: a stream is the frames one by one.
    fn run_stream(
        &self,
        samples: &nmc_backend::Array,
        timesteps: Option<u32>,
        params: &ChipParams,
        progress: &(dyn Fn() + Sync),
    ) -> Result<RunResult, BackendError> {
        self.run_with_progress(samples, timesteps, params, progress)
    }

    fn floorline_loads(
        &self,
        activity: &Activity<'_>,
        _params: &ChipParams,
    ) -> Result<Loads, BackendError> {
        let profile = activity.profile()?;
        let cores = self
            .slices
            .iter()
            .map(|s| CoreLoad {
                id: s.core,
                layer: s.layer.clone(),
                d: f64::from(s.neurons),
                s: f64::from(s.neurons) * profile.mean_layer_density(),
                ..Default::default()
            })
            .collect();
        Ok(Loads {
            cores,
            link_ns: 0.0,
            hops: 0.0,
            timesteps: 1,
            chips: 1,
            constants: Constants {
                a_syn: 1.0,
                a_neu: 1.0,
                ..Default::default()
            },
            activity: profile.from.clone(),
            splittable: true,
            links: Vec::new(),
        })
    }
}

/// The digits MLP compiles for the toy chip through the trait alone and its "emulator" (the
/// reference interpreter on the decoded artifact) gives the quantised graph's outputs; a mapping
/// search and the floorline analysis run on it too.
#[test]
fn a_fourth_target_compiles_and_runs_through_the_backend_trait() {
    let target = nmc::Target::from_backend(&TOY);
    let case = crate::common::cases()
        .iter()
        .find(|c| c.name == "digits_mlp")
        .expect("shipped case");
    let imported = nmc::onnx::import_file(&case.model).unwrap();
    let calib = case.samples(crate::common::CALIB_SAMPLES);
    let opts = nmc::Options::new(target);
    let c = nmc::driver::compile_graph(imported.graph.clone(), &calib, &opts, 7).unwrap();
    assert_eq!(c.report.target, NAME);
    assert!(ENVELOPE.is_artifact(&c.artifact));
    let loaded = nmc::LoadedArtifact::decode_for(target, &c.artifact).unwrap();
    assert_eq!(loaded.target(), NAME);
    // The registry does not know the toy chip: only the handle decodes it.
    assert!(nmc::LoadedArtifact::decode(&c.artifact).is_err());
    let run = loaded.run(&case.inputs, None).unwrap();
    let want = nmc::driver::interpret(&c.quantized, &case.samples(case.inputs.shape[0])).unwrap();
    assert_eq!(run.outputs.data, want[0].data);
    assert_eq!(run.perf.cores.len(), c.mapping.cores_used());
    // Mapping searches and the floorline model go through the same trait.
    let mut fl = opts.clone();
    fl.partition = nmc::PartitionKind::Floorline;
    let searched = nmc::driver::compile_graph(imported.graph, &calib, &fl, 7).unwrap();
    assert!(searched.report.search.is_some());
    let activity = nmc_backend::Activity::new(&c.quantized, &calib);
    let (analysis, _) =
        nmc::driver::floorline(target, &c.artifact, &activity, &ChipParams::default()).unwrap();
    assert_eq!(analysis.cores.len(), c.mapping.cores_used());
    // A second chip is refused by the backend's own option check.
    let mut two = nmc::Options::new(target);
    two.chips = 2;
    let e = nmc::driver::compile_graph(case_graph(case), &calib, &two, 0).unwrap_err();
    assert_eq!((e.kind(), e.exit_code()), ("usage", 2), "{e}");
}

fn case_graph(case: &crate::common::Case) -> Graph {
    nmc::onnx::import_file(&case.model).unwrap().graph
}

#[test]
fn a_corrupt_toy_artifact_is_an_artifact_error() {
    let junk = ENVELOPE.encode(&ToyArtifact {
        header: Some(ENVELOPE.header(0)),
        ir: "not ir".into(),
        ..Default::default()
    });
    let e = nmc::LoadedArtifact::decode_for(nmc::Target::from_backend(&TOY), &junk)
        .err()
        .expect("rejected");
    assert!(matches!(e, ArtifactError::Corrupt(_)), "{e}");
}

/// `Op` is matched here only to keep the toy chip honest about what it runs: every layer of the
/// shipped MLP is a population the interpreter executes.
#[test]
fn toy_chip_maps_every_layer() {
    let case = crate::common::cases()
        .iter()
        .find(|c| c.name == "digits_mlp")
        .expect("shipped case");
    let opts = nmc::Options::new(nmc::Target::from_backend(&TOY));
    let c = nmc::driver::compile_graph(case_graph(case), &[], &opts, 0).unwrap();
    let layers = c
        .quantized
        .ids()
        .filter(|&i| matches!(c.quantized.node(i).op, Op::Layer(_)))
        .count();
    assert_eq!(c.mapping.layers.len(), layers);
}
