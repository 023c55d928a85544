//! BrainChip AKD1000, Akida 1.0 (crate `nmc-akd1000`).
//!
//! The AKD1000 has its own mapper (layer kinds, NP types, spatial bands, the HRC), so
//! [`partition`] replaces the generic partitioners; [`core_model`] still answers the generic
//! questions (per-NP fit of a channel slice, NP locations) for tools that ask them.

use super::{split_samples, CorePerf, PerfSummary, RunResult, SearchSpace};
use crate::npy::Array;
use crate::partition::search::{Genome, Problem};
use crate::partition::{CoreModel, LayerSizer};
use crate::Error;
use nmc_akd1000::{AkError, LowerError};
use nmc_ir::{CoreLoc, Graph, Mapping, NodeId, QuantSpec};

const NAME: &str = "akd1000";

fn spec() -> nmc_akd1000::ChipSpec {
    nmc_akd1000::akd1000()
}

/// Constraint and fit violations exit with 3; a graph not in the expected form is a lowering bug.
fn ak_error(e: AkError) -> Error {
    match e {
        AkError::Invalid { .. } => Error::Lower {
            target: NAME,
            message: e.to_string(),
        },
        _ => Error::Fit {
            target: NAME,
            message: e.to_string(),
        },
    }
}

pub(super) fn quant_spec() -> QuantSpec {
    // Informational: the AKD1000 is quantised by `passes::quantize_akida`, not by these fields.
    QuantSpec {
        weight_bits: 4,
        even_weights: false,
        weight_exp_range: (0, 0),
        state_bits: 32,
        act_bits: 4,
        max_act_bits: 4,
        bias_mant_bits: 20,
        bias_exp_max: 0,
    }
}

/// The AKD1000 is one device: nmc does not chain them.
fn one_chip(chips: u32) -> Result<(), Error> {
    if chips == 1 {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "--chips {chips}: the akd1000 is one device (nmc does not chain AKD1000s)"
        )))
    }
}

pub(super) fn partition(graph: &Graph, chips: u32) -> Result<Mapping, Error> {
    one_chip(chips)?;
    crate::driver::timed("partition", || {
        let s = spec();
        let (a, m) = nmc_akd1000::map_graph(graph, &s).map_err(ak_error)?;
        Ok(nmc_akd1000::to_ir_mapping(&a, &m))
    })
}

/// The AKD1000's mapping search space. Per NP layer (the HRC layer is fixed): extra channel
/// groups, each taking one more NP per row band (more NPs share the layer's synaptic work, which
/// is what bounds an NP's time), and which NPs: the placement is a priority list over all NPs,
/// and a layer takes the first free ones that can be configured as its type (CNP1 for
/// convolutions, FNP3 or FNP2 for dense layers). The greedy genome reproduces [`partition`].
pub(super) fn search_space(graph: &Graph, chips: u32) -> Result<SearchSpace<'_>, Error> {
    one_chip(chips)?;
    let s = spec();
    let a = nmc_akd1000::analyze(graph, &s).map_err(ak_error)?;
    let needs = nmc_akd1000::needs(&a, &s).map_err(ak_error)?;
    let m = nmc_akd1000::map(&a, &s).map_err(ak_error)?;
    let greedy = nmc_akd1000::to_ir_mapping(&a, &m);
    let np_layers: Vec<(usize, nmc_akd1000::NpType)> = needs
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match n.ty {
            nmc_akd1000::UnitType::Np(t) => Some((i, t)),
            nmc_akd1000::UnitType::Hrc => None,
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
                .ok_or_else(|| Error::Lower {
                    target: NAME,
                    message: format!("the mapper placed a unit on an unknown NP {u:?}"),
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
        max_extra: np_layers
            .iter()
            .map(|&(i, _)| {
                (a.layers[i].channels() as u32).saturating_sub(needs[i].groups.len() as u32)
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
        let mut choices: Vec<nmc_akd1000::LayerChoice> = needs
            .iter()
            .map(|n| nmc_akd1000::LayerChoice {
                groups: n.groups.len() as u32,
                nps: Vec::new(),
            })
            .collect();
        for (k, (&(i, _), nps)) in np_layers.iter().zip(at).enumerate() {
            choices[i] = nmc_akd1000::LayerChoice {
                groups: needs[i].groups.len() as u32 + g.extra[k].min(shape.max_extra[k]),
                nps,
            };
        }
        let m = nmc_akd1000::map_explicit(&a, &s, &needs, &choices).ok()?;
        Some(nmc_akd1000::to_ir_mapping(&a, &m))
    };
    Ok(SearchSpace {
        problem,
        names,
        greedy,
        decode: Box::new(decode),
        note: None,
    })
}

pub(super) fn lower(graph: &Graph, mapping: &Mapping, source_hash: u64) -> Result<Vec<u8>, Error> {
    let art =
        nmc_akd1000::lower(graph, Some(mapping), source_hash, &spec()).map_err(|e| match e {
            LowerError::Map(e) => ak_error(e),
            e => Error::Lower {
                target: NAME,
                message: e.to_string(),
            },
        })?;
    Ok(crate::driver::timed("encode", || nmc_akd1000::encode(&art)))
}

pub(super) fn core_model() -> Box<dyn CoreModel> {
    Box::new(AkdCores(spec()))
}

struct AkdCores(nmc_akd1000::ChipSpec);

impl CoreModel for AkdCores {
    fn cores_available(&self) -> usize {
        self.0.nps.len()
    }
    fn sizer<'g>(
        &self,
        graph: &'g Graph,
        layer: NodeId,
    ) -> Result<Box<dyn LayerSizer + 'g>, String> {
        let a = nmc_akd1000::analyze(graph, &self.0).map_err(|e| e.to_string())?;
        let l = a
            .layers
            .into_iter()
            .find(|l| l.node == layer)
            .ok_or_else(|| format!("{layer} is not an Akida layer"))?;
        let need = nmc_akd1000::need(&l, &self.0, true).map_err(|e| e.to_string())?;
        Ok(Box::new(AkdLayer {
            spec: self.0.clone(),
            layer: l,
            need,
        }))
    }
    fn location(&self, core: usize) -> CoreLoc {
        // NPs in fill-path order.
        let s = &self.0;
        s.path
            .iter()
            .flat_map(|&(c, r)| s.nps.iter().filter(move |n| (n.col, n.row) == (c, r)))
            .nth(core)
            .map(|n| CoreLoc {
                chip: 0,
                x: n.col,
                y: n.row,
            })
            .unwrap_or(CoreLoc {
                chip: u32::MAX,
                x: 0,
                y: 0,
            })
    }
}

struct AkdLayer {
    spec: nmc_akd1000::ChipSpec,
    layer: nmc_akd1000::AkLayer,
    need: nmc_akd1000::Need,
}

impl LayerSizer for AkdLayer {
    fn check_slice(&self, start: u32, end: u32) -> Result<(), String> {
        let nmc_akd1000::UnitType::Np(t) = self.need.ty else {
            return Ok(());
        };
        let per = nmc_akd1000::map::weight_bits_per_channel(&self.layer, &self.spec);
        let need = per * u64::from(end.saturating_sub(start));
        match self.spec.weight_capacity_bits(t) {
            Some(cap) if need > cap => Err(format!(
                "{} weight SRAM: needs {} bytes, an NP has {}",
                t.name(),
                need.div_ceil(8),
                cap / 8
            )),
            _ => Ok(()),
        }
    }
    fn min_cores(&self) -> usize {
        self.need.nps().max(1)
    }
}

pub(super) fn describe() -> String {
    let s = spec();
    let l = &s.limits;
    let count = |t: nmc_akd1000::NpType| s.nps.iter().filter(|n| n.can(t)).count();
    format!(
        "akd1000  BrainChip AKD1000 (Akida 1.0; graded integer activations, event-based)\n  \
         mesh: {} nodes, {} NPs (CNP1 {}, CNP2 {}, FNP3 {}, FNP2 {}) + HRC for InputConv2D\n  \
         per NP: input SRAM {} bytes, weight SRAM {} bytes\n  \
         weights: 1, 2, 4 bits (8 for InputConv2D); activations: 1, 2, 4 bits (default 4/4); input 8-bit (1 or 3 channels) for a first convolution\n  \
         Conv2D kernels 1/3/5/7 (stride 2 only 3x3), Same padding; max pool 1x1/2x2; global average pool width {}..={}; Dense inputs <= {}\n",
        s.nodes.len(),
        s.nps.len(),
        count(nmc_akd1000::NpType::Cnp1),
        count(nmc_akd1000::NpType::Cnp2),
        count(nmc_akd1000::NpType::Fnp3),
        count(nmc_akd1000::NpType::Fnp2),
        s.input_sram_bytes,
        s.weight_sram_bytes,
        l.gap_width.0,
        l.gap_width.1,
        l.dense_max_inputs,
    )
}

pub(super) fn describe_json() -> serde_json::Value {
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

pub(super) fn to_json(a: &nmc_akd1000::Artifact) -> serde_json::Value {
    let layers: Vec<serde_json::Value> = a
        .layers
        .iter()
        .map(|l| {
            let nps: Vec<serde_json::Value> = l
                .slices
                .iter()
                .map(|s| {
                    let u = a.units.get(s.unit as usize);
                    let ty = u.map_or("unknown", |u| {
                        nmc_akd1000::listing::unit_type_name(u.unit_type)
                    });
                    serde_json::json!({
                        "col": u.map(|u| u.col),
                        "row": u.map(|u| u.row),
                        "id": if ty == "HRC" { None } else { u.map(|u| u.id) },
                        "np_type": ty,
                        "unit": s.unit,
                        "channels": [s.c0, s.c1],
                        "rows": [s.r0, s.r1],
                    })
                })
                .collect();
            serde_json::json!({
                "name": l.name,
                "type": nmc_akd1000::listing::layer_kind_name(l.kind),
                "shape": l.out_shape,
                "nps": nps,
            })
        })
        .collect();
    let hrc = nmc_akd1000::artifact::UnitTypeMsg::Hrc as i32;
    serde_json::json!({
        "target": NAME,
        "format_version": a.header.as_ref().map(|h| h.format_version),
        "source_hash": a.header.as_ref().map(|h| format!("{:#018x}", h.source_hash)),
        "layers": layers,
        "nps_used": a.units.iter().filter(|u| u.unit_type != hrc).count(),
        "hrc_used": a.units.iter().any(|u| u.unit_type == hrc),
    })
}

pub(super) fn run(
    a: &nmc_akd1000::Artifact,
    samples: &Array,
    params: &super::ChipParams,
) -> Result<RunResult, String> {
    if a.inputs.len() != 1 {
        return Err(format!(
            "the artifact has {} inputs; nmc run reads one .npy",
            a.inputs.len()
        ));
    }
    let input = &a.inputs[0];
    let per: usize = input.shape.iter().map(|d| *d as usize).product();
    let xs = split_samples(samples, per, &input.shape)?;
    let q = nmc_ir::QuantParams {
        scale: input.scale,
        min: 0,
        max: (1i32 << input.bits.min(8)) - 1,
    };
    let output = a.outputs.first().ok_or("artifact has no outputs")?;
    let spec = spec_with(params).map_err(|e| e.to_string())?;
    let emu = nmc_akd1000::Emulator::new(a, &spec).map_err(|e| e.to_string())?;
    let n = xs.len();
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
    for x in xs {
        let x: Vec<i64> = x.iter().map(|v| nmc_ir::quantize(*v, &q)).collect();
        let (outs, report) = emu.run(&[x]).map_err(|e| e.to_string())?;
        let o = outs
            .into_iter()
            .next()
            .ok_or("emulator returned no outputs")?;
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
            p.syn_ops += u.syn_ops;
            p.mem_reads += u.mem_reads;
            p.neuron_updates += u.neuron_updates;
            p.msgs_in += u.events_in;
            p.msgs_out += u.events_out;
            b[u.bound as usize] += 1;
        }
    }
    super::finish_perf(&mut perf, &bounds, &workload);
    if perf.t_step_ns > 0.0 {
        perf.throughput_fps = Some(1e9 / perf.t_step_ns);
    }
    Ok(RunResult {
        outputs,
        int_outputs,
        perf,
    })
}

pub(super) fn cost_params(params: &super::ChipParams) -> Result<Vec<super::CostParam>, Error> {
    Ok(super::cost_param_list(&spec_with(params)?.cost.entries()))
}

/// The spec with cost constants overridden.
fn spec_with(params: &super::ChipParams) -> Result<nmc_akd1000::ChipSpec, Error> {
    let mut spec = spec();
    let names: Vec<&str> = spec.cost.entries().iter().map(|e| e.0).collect();
    super::override_costs(
        "akd1000",
        &mut spec.cost,
        &names,
        nmc_akd1000::CostModel::get_mut,
        params,
    )
    .map_err(Error::Usage)?;
    Ok(spec)
}

/// The floorline analysis with per-NP loads measured by the emulator on `samples` (the AKD1000
/// runs a frame through a layer pipeline, so the step is the pipeline interval: the slowest NP,
/// with no barrier).
pub(super) fn analyze_measured(
    artifact: &[u8],
    samples: &Array,
    params: &super::ChipParams,
) -> Result<(crate::cost::Analysis, crate::cost::Constants), Error> {
    let a = nmc_akd1000::decode(artifact).map_err(|e| Error::Lower {
        target: NAME,
        message: e.to_string(),
    })?;
    let spec = spec_with(params)?;
    let input = a.inputs.first().ok_or_else(|| Error::Input {
        message: "artifact has no inputs".into(),
    })?;
    let per: usize = input.shape.iter().map(|d| *d as usize).product();
    let xs =
        split_samples(samples, per, &input.shape).map_err(|message| Error::Input { message })?;
    let q = nmc_ir::QuantParams {
        scale: input.scale,
        min: 0,
        max: (1i32 << input.bits.min(8)) - 1,
    };
    let emu = nmc_akd1000::Emulator::new(&a, &spec).map_err(|e| Error::Input {
        message: e.to_string(),
    })?;
    let mut loads: Vec<crate::cost::CoreLoad> = Vec::new();
    let n = xs.len().max(1) as f64;
    for x in &xs {
        let x: Vec<i64> = x.iter().map(|v| nmc_ir::quantize(*v, &q)).collect();
        let (_, report) = emu.run(&[x]).map_err(|e| Error::Input {
            message: e.to_string(),
        })?;
        if loads.is_empty() {
            loads = report
                .units
                .iter()
                .enumerate()
                .map(|(i, u)| crate::cost::CoreLoad {
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
            l.s += u.syn_ops as f64 / n;
            l.r += u.mem_reads as f64 / n;
            l.d += u.neuron_updates as f64 / n;
            l.m_in += u.events_in as f64 / n;
            l.m_out += u.events_out as f64 / n;
        }
    }
    for l in &mut loads {
        l.m = l.m_in + l.m_out;
    }
    let c = &spec.cost;
    let k = crate::cost::Constants {
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
    let activity = format!("loads measured by the emulator on {} sample(s)", xs.len());
    Ok((
        crate::cost::evaluate(NAME, loads, 0.0, 0.0, 1, 1, &k, &activity),
        k,
    ))
}
