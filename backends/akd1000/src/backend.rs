//! The AKD1000 as an nmc target: [`Akd1000`] implements [`nmc_backend::Backend`] and
//! [`LoadedAkd1000`] (a decoded [`Artifact`]) implements [`nmc_backend::Loaded`].
//!
//! The AKD1000 has its own mapper (layer kinds, NP types, spatial bands, the HRC), so
//! [`Backend::default_mapping`] replaces the generic partitioners.

use crate::artifact::{Artifact, UnitTypeMsg, ENVELOPE};
use crate::layers::AkError;
use crate::lower::LowerError;
use crate::map::{LayerChoice, UnitType};
use crate::spec::{ChipSpec, CostTable, NpType};
use nmc_backend::{
    finish_perf, split_samples, Activity, AkidaWidths, Array, ArtifactError, Backend, BackendError,
    ChipParams, Constants, CoreLoad, CorePerf, CostParam, Genome, Loaded, Loads, NativeOps,
    PerfSummary, Problem, Quantization, RunResult, SearchSpace, TargetOptions,
};
use nmc_ir::{CoreLoc, Graph, Mapping};

const NAME: &str = ENVELOPE.target;

fn spec() -> ChipSpec {
    crate::akd1000()
}

/// The BrainChip AKD1000 (Akida 1.0) target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Akd1000;

/// Constraint and fit violations exit with 3; a graph not in the expected form is a lowering bug.
fn ak_error(e: AkError) -> BackendError {
    match e {
        AkError::Invalid { .. } => BackendError::lower(NAME, e),
        _ => BackendError::fit(NAME, e),
    }
}

/// The spec with cost constants overridden (an unknown name is a usage error).
fn spec_with(params: &ChipParams) -> Result<ChipSpec, BackendError> {
    let mut spec = spec();
    spec.cost.apply(NAME, params)?;
    Ok(spec)
}

impl Backend for Akd1000 {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> String {
        let s = spec();
        let l = &s.limits;
        let count = |t: NpType| s.nps.iter().filter(|n| n.can(t)).count();
        format!(
            "akd1000  BrainChip AKD1000 (Akida 1.0; graded integer activations, event-based)\n  \
             mesh: {} nodes, {} NPs (CNP1 {}, CNP2 {}, FNP3 {}, FNP2 {}) + HRC for InputConv2D\n  \
             per NP: input SRAM {} bytes, weight SRAM {} bytes\n  \
             weights: 1, 2, 4 bits (8 for InputConv2D); activations: 1, 2, 4 bits (default 4/4); input 8-bit (1 or 3 channels) for a first convolution, zero-padded on the host when its pads are neither Same nor Valid\n  \
             Conv2D kernels 1/3/5/7 (stride 2 only 3x3), Same padding; max pool 1x1/2x2; global average pool width {}..={}; Dense inputs <= {}\n",
            s.nodes.len(),
            s.nps.len(),
            count(NpType::Cnp1),
            count(NpType::Cnp2),
            count(NpType::Fnp3),
            count(NpType::Fnp2),
            s.input_sram_bytes,
            s.weight_sram_bytes,
            l.gap_width.0,
            l.gap_width.1,
            l.dense_max_inputs,
        )
    }

    fn describe_json(&self) -> serde_json::Value {
        let s = spec();
        let l = &s.limits;
        let nps: Vec<serde_json::Value> = s
            .nps
            .iter()
            .map(|n| {
                serde_json::json!({
                    "col": n.col, "row": n.row, "id": n.id,
                    "types": n.types.iter().map(|t| t.name()).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({
            "name": NAME,
            "nodes": s.nodes.len(),
            "nps": nps,
            "input_sram_bytes": s.input_sram_bytes,
            "weight_sram_bytes": s.weight_sram_bytes,
            "weight_bits": l.weight_bits,
            "input_weight_bits": l.input_weight_bits,
            "act_bits": l.act_bits,
            "dense_max_inputs": l.dense_max_inputs,
        })
    }

    fn quantization(&self) -> Quantization {
        Quantization::Akida(AkidaWidths::default())
    }

    fn snn_refusal(&self) -> String {
        "Akida 1.0 has no spiking neuron dynamics: its neurons are graded, stateless from one input to the next (docs/chips.md §3); compile spiking networks for loihi2".into()
    }

    /// The Akida quantiser takes an average pool only (a global one, which it fuses before the
    /// activation), never a sum pool after an activation; an NP reads one input map, so there is
    /// no concatenation.
    fn native_ops(&self) -> NativeOps {
        NativeOps {
            avg_pool: true,
            sum_pool: false,
            concat: false,
        }
    }

    /// One device, and no `--timesteps`: the AKD1000 runs each sample once through its layer
    /// pipeline.
    fn check_options(&self, opts: &TargetOptions) -> Result<(), BackendError> {
        opts.dvs.none_for(NAME)?;
        opts.one_device("the akd1000 is one device (nmc does not chain AKD1000s)")?;
        match opts.timesteps {
            Some(t) => Err(BackendError::Usage(format!(
                "--timesteps {t} does not apply to the {NAME}: it runs each sample once through its layer pipeline"
            ))),
            None => Ok(()),
        }
    }

    fn cost_params(&self, params: &ChipParams) -> Result<Vec<CostParam>, BackendError> {
        Ok(spec_with(params)?.cost.params())
    }

    fn default_mapping(
        &self,
        graph: &Graph,
        opts: &TargetOptions,
    ) -> Result<Mapping, BackendError> {
        self.check_options(opts)?;
        let s = spec();
        let (a, m) = crate::map_graph(graph, &s).map_err(ak_error)?;
        Ok(crate::to_ir_mapping(&a, &m))
    }

    /// The AKD1000's mapping search space. Per NP layer (the HRC layer is fixed): extra channel
    /// groups, each taking one more NP per row band (more NPs share the layer's synaptic work,
    /// which is what bounds an NP's time), and which NPs: the placement is a priority list over
    /// all NPs, and a layer takes the first free ones that can be configured as its type (CNP1
    /// for convolutions, FNP3 or FNP2 for dense layers). The greedy genome reproduces
    /// [`Backend::default_mapping`].
    fn search_space<'g>(
        &self,
        graph: &'g Graph,
        opts: &TargetOptions,
    ) -> Result<SearchSpace<'g>, BackendError> {
        self.check_options(opts)?;
        let s = spec();
        let a = crate::analyze(graph, &s).map_err(ak_error)?;
        let passes = crate::map::plan(&a, &s).map_err(ak_error)?;
        if passes.len() > 1 {
            return Err(BackendError::Usage(format!(
                "the mapping searches place one hardware pass; this model needs {} passes on the {NAME} (its layers need more NPs than the device has at once); use --partition greedy, or a smaller model that fits in one pass",
                passes.len()
            )));
        }
        let needs = crate::needs(&a, &s).map_err(ak_error)?;
        let m = crate::map(&a, &s).map_err(ak_error)?;
        let greedy = crate::to_ir_mapping(&a, &m);
        let np_layers: Vec<(usize, NpType)> = needs
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match n.ty {
                UnitType::Np(t) => Some((i, t)),
                UnitType::Hrc => None,
            })
            .collect();
        // Base placement: greedy's NPs layer by layer, then every other NP along the fill path.
        let mut base: Vec<usize> = Vec::with_capacity(s.nps.len());
        for &(i, _) in &np_layers {
            for sl in &m.layers[i] {
                let u = &m.units[sl.unit as usize];
                let k = s
                    .nps
                    .iter()
                    .position(|n| (n.col, n.row, n.id) == (u.col, u.row, u.id))
                    .ok_or_else(|| {
                        BackendError::lower(
                            NAME,
                            format!("the mapper placed a unit on an unknown NP {u:?}"),
                        )
                    })?;
                base.push(k);
            }
        }
        let mut rest: Vec<usize> = (0..s.nps.len()).filter(|k| !base.contains(k)).collect();
        rest.sort_by_key(|&k| {
            let n = &s.nps[k];
            (s.path_index((n.col, n.row)).unwrap_or(usize::MAX), k)
        });
        base.extend(rest);
        let problem = Problem {
            min_cores: np_layers
                .iter()
                .map(|&(i, _)| needs[i].nps() as u32)
                .collect(),
            // A dense layer is never split (one FNP3 or one FNP2, docs/chips.md §7).
            max_extra: np_layers
                .iter()
                .map(|&(i, t)| match t {
                    NpType::Fnp2 | NpType::Fnp3 => 0,
                    _ => {
                        (a.layers[i].channels() as u32).saturating_sub(needs[i].groups.len() as u32)
                    }
                })
                .collect(),
            step: np_layers
                .iter()
                .map(|&(i, _)| needs[i].bands.len() as u32)
                .collect(),
            allowed: np_layers
                .iter()
                .map(|&(_, t)| s.nps.iter().map(|n| n.can(t)).collect())
                .collect(),
            base,
            spatial: Vec::new(),
            max_tiles: Vec::new(),
            positions: s
                .nps
                .iter()
                .map(|n| CoreLoc {
                    chip: 0,
                    x: n.col,
                    y: n.row,
                })
                .collect(),
        };
        let names = np_layers
            .iter()
            .map(|&(i, _)| a.layers[i].name.clone())
            .collect();
        let shape = problem.clone();
        let decode = move |g: &Genome| -> Option<Mapping> {
            let at = shape.layer_positions(g)?;
            let mut choices: Vec<LayerChoice> = needs
                .iter()
                .map(|n| LayerChoice {
                    groups: n.groups.len() as u32,
                    nps: Vec::new(),
                })
                .collect();
            for (k, (&(i, _), nps)) in np_layers.iter().zip(at).enumerate() {
                choices[i] = LayerChoice {
                    groups: needs[i].groups.len() as u32 + g.extra[k].min(shape.max_extra[k]),
                    nps,
                };
            }
            let m = crate::map_explicit(&a.layers, &s, &needs, &choices, 0).ok()?;
            Some(crate::to_ir_mapping(&a, &m))
        };
        Ok(SearchSpace {
            problem,
            names,
            greedy,
            decode: Box::new(decode),
            note: None,
        })
    }

    fn lower(
        &self,
        graph: &Graph,
        mapping: &Mapping,
        source_hash: u64,
        _opts: &TargetOptions,
    ) -> Result<Vec<u8>, BackendError> {
        let art =
            crate::lower(graph, Some(mapping), source_hash, &spec()).map_err(|e| match e {
                LowerError::Map(e) => ak_error(e),
                e => BackendError::lower(NAME, e),
            })?;
        Ok(crate::encode(&art))
    }

    fn is_artifact(&self, bytes: &[u8]) -> bool {
        crate::is_artifact(bytes)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Box<dyn Loaded>, ArtifactError> {
        Ok(Box::new(LoadedAkd1000(crate::decode(bytes)?)))
    }
}

/// A decoded, validated AKD1000 artifact.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedAkd1000(pub Artifact);

impl LoadedAkd1000 {
    /// Quantises every sample with the input grid and runs it on the emulator; calls `each`
    /// with the outputs and report of every frame.
    fn emulate(
        &self,
        samples: &Array,
        spec: &ChipSpec,
        mut each: impl FnMut(Vec<Vec<i64>>, crate::PerfReport) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        let a = &self.0;
        let input = a
            .inputs
            .first()
            .ok_or_else(|| BackendError::input("artifact has no inputs"))?;
        let per: usize = input.shape.iter().map(|d| *d as usize).product();
        let xs = split_samples(samples, per, &input.shape)?;
        let q = nmc_ir::QuantParams {
            scale: input.scale,
            min: 0,
            max: (1i32 << input.bits.min(8)) - 1,
        };
        let emu = crate::Emulator::new(a, spec).map_err(BackendError::input)?;
        // Frames run in parallel (the emulator is immutable, so the workers share it); the
        // caller folds the results in sample order.
        let runs = nmc_backend::map_samples(
            &xs,
            || Ok(&emu),
            |emu, x| {
                let x: Vec<i64> = x.iter().map(|v| nmc_ir::quantize(*v, &q)).collect();
                emu.run(&[x]).map_err(BackendError::input)
            },
        )?;
        for (outs, report) in runs {
            each(outs, report)?;
        }
        Ok(())
    }
}

impl Loaded for LoadedAkd1000 {
    fn target(&self) -> &'static str {
        NAME
    }

    fn listing(&self) -> String {
        crate::listing(&self.0)
    }

    fn to_json(&self) -> serde_json::Value {
        let a = &self.0;
        let layers: Vec<serde_json::Value> = a
            .layers
            .iter()
            .map(|l| {
                let nps: Vec<serde_json::Value> = l
                    .slices
                    .iter()
                    .map(|s| {
                        let u = a.units.get(s.unit as usize);
                        let ty =
                            u.map_or("unknown", |u| crate::listing::unit_type_name(u.unit_type));
                        serde_json::json!({
                            "col": u.map(|u| u.col),
                            "row": u.map(|u| u.row),
                            "id": if ty == "HRC" { None } else { u.map(|u| u.id) },
                            "np_type": ty,
                            "unit": s.unit,
                            "pass": u.map(|u| u.pass),
                            "channels": [s.c0, s.c1],
                            "rows": [s.r0, s.r1],
                        })
                    })
                    .collect();
                let pool = match crate::artifact::PoolMsg::try_from(l.pool) {
                    Ok(crate::artifact::PoolMsg::Max) => "max",
                    Ok(crate::artifact::PoolMsg::GlobalAvg) => "global_avg",
                    _ => "none",
                };
                let source = if l.source_kind == crate::artifact::SourceKind::Layer as i32 {
                    "layer"
                } else {
                    "input"
                };
                let mut v = serde_json::json!({
                    "name": l.name,
                    "type": crate::listing::layer_kind_name(l.kind),
                    "shape": l.out_shape,
                    "nps": nps,
                    // The integer layer as the artifact stores it (the vendor's conventions,
                    // crate::artifact): what testdata/gen/akida_reference.py rebuilds in akida.
                    "source": { "kind": source, "index": l.source_index },
                    "in_shape": l.in_shape,
                    "pre_shape": l.pre_shape,
                    "kernel": l.kernel,
                    "strides": l.strides,
                    "pads": l.pads,
                    "pool": pool,
                    "pool_size": l.pool_size,
                    "pool_stride": l.pool_stride,
                    "input_bits": l.input_bits,
                    "weight_bits": l.weight_bits,
                    "act_bits": l.act_bits,
                    "weights": l.weights,
                    "threshold": l.threshold,
                    "act_step": l.act_step,
                    "scale": l.scale,
                });
                // A SeparableConv2D's depthwise kernels `[c][kh][kw]`, flipped as stored.
                if !l.dw_weights.is_empty() {
                    v["dw_weights"] = serde_json::json!(l.dw_weights);
                }
                v
            })
            .collect();
        let hrc = UnitTypeMsg::Hrc as i32;
        serde_json::json!({
            "target": NAME,
            "format_version": a.header.as_ref().map(|h| h.format_version),
            "source_hash": a.header.as_ref().map(|h| format!("{:#018x}", h.source_hash)),
            "inputs": a.inputs.iter().map(|i| serde_json::json!({
                "name": i.name,
                "shape": i.shape,
                "bits": i.bits,
                "scale": i.scale,
                "host_pads": i.host_pads,
            })).collect::<Vec<_>>(),
            "layers": layers,
            "outputs": a.outputs.iter().map(|o| serde_json::json!({
                "name": o.name,
                "layer": o.layer,
                "shape": o.shape,
                "scale": o.scale,
            })).collect::<Vec<_>>(),
            "nps_used": a.units.iter().filter(|u| u.unit_type != hrc).count(),
            "passes": a.units.iter().map(|u| u.pass + 1).max().unwrap_or(1),
            "hrc_used": a.units.iter().any(|u| u.unit_type == hrc),
        })
    }

    fn run(
        &self,
        samples: &Array,
        timesteps: Option<u32>,
        params: &ChipParams,
    ) -> Result<RunResult, BackendError> {
        self.run_with_progress(samples, timesteps, params, &|| {})
    }

    fn input_shape(&self) -> Option<Vec<usize>> {
        match self.0.inputs.as_slice() {
            [i] => Some(i.shape.iter().map(|d| *d as usize).collect()),
            _ => None,
        }
    }

    /// The host sends `bits`-bit unsigned codes (8 for an image into the HRC).
    fn input_codes(&self) -> Option<nmc_ir::QuantParams> {
        match self.0.inputs.as_slice() {
            [i] if (1..=16).contains(&i.bits) => Some(nmc_ir::QuantParams {
                scale: i.scale,
                min: 0,
                max: (1i32 << i.bits) - 1,
            }),
            _ => None,
        }
    }

    /// Akida keeps no state between frames (each one passes through the layer pipeline once), so a
    /// stream is the frames run one by one: the same as [`Loaded::run`].
    fn run_stream(
        &self,
        samples: &Array,
        timesteps: Option<u32>,
        params: &ChipParams,
        progress: &(dyn Fn() + Sync),
    ) -> Result<RunResult, BackendError> {
        self.run_with_progress(samples, timesteps, params, progress)
    }

    fn run_with_progress(
        &self,
        samples: &Array,
        timesteps: Option<u32>,
        params: &ChipParams,
        progress: &(dyn Fn() + Sync),
    ) -> Result<RunResult, BackendError> {
        // Akida runs a frame through its layer pipeline; there are no timesteps.
        if timesteps.is_some_and(|t| t != 1) {
            return Err(BackendError::Usage(
                "the AKD1000 runs each sample once through its layer pipeline; --timesteps does not apply".into(),
            ));
        }
        let a = &self.0;
        if a.inputs.len() != 1 {
            return Err(BackendError::input(format!(
                "the artifact has {} inputs; nmc run reads one .npy",
                a.inputs.len()
            )));
        }
        let input = &a.inputs[0];
        let per: usize = input.shape.iter().map(|d| *d as usize).product();
        let n = split_samples(samples, per, &input.shape)?.len();
        let output = a
            .outputs
            .first()
            .ok_or_else(|| BackendError::input("artifact has no outputs"))?;
        let spec = spec_with(params)?;
        let mut out_shape = vec![n];
        out_shape.extend(output.shape.iter().map(|d| *d as usize));
        let mut outputs = Array {
            shape: out_shape,
            data: Vec::new(),
        };
        let mut int_outputs = Vec::with_capacity(n);
        let mut perf = PerfSummary {
            target: NAME.into(),
            samples: n,
            timesteps: 1,
            ..Default::default()
        };
        let mut bounds: Vec<[u64; 3]> = Vec::new();
        let mut workload = [0u64; 3];
        self.emulate(samples, &spec, |outs, report| {
            let o = outs
                .into_iter()
                .next()
                .ok_or_else(|| BackendError::input("emulator returned no outputs"))?;
            outputs
                .data
                .extend(o.iter().map(|v| *v as f32 * output.scale));
            int_outputs.push(o);
            perf.latency_ns += report.latency_ns;
            perf.energy_nj += report.energy_nj;
            perf.synaptic_events += report.synaptic_events;
            // The step of a pipeline is its interval (the slowest NP).
            perf.t_step_ns += report.interval_ns;
            if let Some(slowest) = report.units.iter().max_by(|a, b| a.t_ns.total_cmp(&b.t_ns)) {
                workload[slowest.bound as usize] += 1;
            }
            if perf.cores.is_empty() {
                perf.cores = report
                    .units
                    .iter()
                    .enumerate()
                    .map(|(i, u)| CorePerf {
                        id: i as u32,
                        chip: 0,
                        x: u.col,
                        y: u.row,
                        slot: (u.unit_type != "HRC").then_some(u.id),
                        unit_type: Some(u.unit_type.to_string()),
                        ..Default::default()
                    })
                    .collect();
                bounds = vec![[0; 3]; report.units.len()];
            }
            for ((p, u), b) in perf.cores.iter_mut().zip(&report.units).zip(&mut bounds) {
                p.counts.add(&u.counts);
                b[u.bound as usize] += 1;
            }
            progress();
            Ok(())
        })?;
        finish_perf(&mut perf, &bounds, &workload);
        if perf.t_step_ns > 0.0 {
            perf.throughput_fps = Some(1e9 / perf.t_step_ns);
        }
        Ok(RunResult {
            outputs,
            int_outputs,
            perf,
            steps: None,
            probes: Vec::new(),
        })
    }

    /// Per-NP loads measured by the emulator on the activity's samples (the AKD1000 runs a frame
    /// through a layer pipeline, so the step is the pipeline interval: the slowest NP, with no
    /// barrier).
    fn floorline_loads(
        &self,
        activity: &Activity<'_>,
        params: &ChipParams,
    ) -> Result<Loads, BackendError> {
        let spec = spec_with(params)?;
        let samples = activity.samples();
        let a = &self.0;
        let input = a
            .inputs
            .first()
            .ok_or_else(|| BackendError::input("artifact has no inputs"))?;
        let per: usize = input.shape.iter().map(|d| *d as usize).product();
        let count = split_samples(samples, per, &input.shape)?.len();
        let n = count.max(1) as f64;
        let mut loads: Vec<CoreLoad> = Vec::new();
        self.emulate(samples, &spec, |_, report| {
            if loads.is_empty() {
                loads = report
                    .units
                    .iter()
                    .enumerate()
                    .map(|(i, u)| CoreLoad {
                        id: i as u32,
                        chip: 0,
                        x: u.col,
                        y: u.row,
                        layer: report
                            .layers
                            .get(u.layer as usize)
                            .map(|l| l.name.clone())
                            .unwrap_or_default(),
                        ..Default::default()
                    })
                    .collect();
            }
            for (l, u) in loads.iter_mut().zip(&report.units) {
                l.s += u.counts.syn_ops as f64 / n;
                l.r += u.counts.mem_reads as f64 / n;
                l.d += u.counts.neuron_updates as f64 / n;
                l.m_in += u.counts.msgs_in as f64 / n;
                l.m_out += u.counts.msgs_out as f64 / n;
            }
            Ok(())
        })?;
        for l in &mut loads {
            l.m = l.m_in + l.m_out;
        }
        let c = &spec.cost;
        let constants = Constants {
            a_syn: c.a_syn.value,
            a_mem: c.a_mem.value,
            a_neu: c.a_neu.value,
            a_msg: c.a_event.value,
            b_sync: 0.0,
            e_syn: c.e_syn.value,
            e_mem: c.e_mem.value,
            e_neu: c.e_neu.value,
            e_msg: c.e_event.value,
            e_hop: c.e_hop.value,
            p_static: c.p_static.value,
        };
        Ok(Loads {
            cores: loads,
            link_ns: 0.0,
            hops: 0.0,
            timesteps: 1,
            chips: 1,
            constants,
            activity: format!("loads measured by the emulator on {count} sample(s)"),
            splittable: true,
            links: Vec::new(),
        })
    }
}
