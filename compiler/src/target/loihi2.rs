//! Intel Loihi 2 (crate `nmc-loihi2`).

use super::{split_samples, ChipParams, CorePerf, CostParam, PerfSummary, RunResult};
use crate::npy::Array;
use crate::partition::{CoreModel, LayerSizer};
use crate::Error;
use nmc_ir::{CoreLoc, Graph, Mapping, NodeId, QuantSpec};

pub(super) fn quant_spec() -> QuantSpec {
    nmc_loihi2::loihi2().quant_spec()
}

pub(super) fn core_model(chips: u32) -> Box<dyn CoreModel> {
    Box::new(Loihi2Cores(nmc_loihi2::loihi2().with_chips(chips)))
}

pub(super) fn lower(
    graph: &Graph,
    mapping: &Mapping,
    source_hash: u64,
    chips: u32,
) -> Result<Vec<u8>, Error> {
    let spec = nmc_loihi2::loihi2().with_chips(chips);
    let art = nmc_loihi2::lower(graph, mapping, source_hash, &spec).map_err(|e| Error::Lower {
        target: "loihi2",
        message: e.to_string(),
    })?;
    Ok(crate::driver::timed("encode", || nmc_loihi2::encode(&art)))
}

pub(super) fn describe() -> String {
    let s = nmc_loihi2::loihi2();
    format!(
        "loihi2  Intel Loihi 2 (graded sigma-delta neurons)\n  cores per chip: {} on a {}x{} mesh\n  \
         neurons per core: {}\n  synaptic memory per core: {} bytes\n  weights: {}-bit mantissa{}, \
         shared exponent {}..={}\n  neuron state: {} bits; graded spikes up to {} bits (default {})\n",
        s.cores_per_chip,
        s.mesh_width,
        s.mesh_height,
        s.max_neurons_per_core,
        s.synapse_bytes_per_core,
        s.weight_bits,
        if s.even_weights { " (effective weights even)" } else { "" },
        s.weight_exp_range.0,
        s.weight_exp_range.1,
        s.state_bits,
        s.max_act_bits,
        s.act_bits
    )
}

pub(super) fn describe_json() -> serde_json::Value {
    let s = nmc_loihi2::loihi2();
    serde_json::json!({
        "name": "loihi2",
        "cores_per_chip": s.cores_per_chip,
        "mesh": [s.mesh_width, s.mesh_height],
        "max_neurons_per_core": s.max_neurons_per_core,
        "synapse_bytes_per_core": s.synapse_bytes_per_core,
        "weight_bits": s.weight_bits,
        "state_bits": s.state_bits,
        "max_act_bits": s.max_act_bits,
    })
}

struct Loihi2Cores(nmc_loihi2::ChipSpec);

impl CoreModel for Loihi2Cores {
    fn cores_available(&self) -> usize {
        self.0.total_cores() as usize
    }
    fn sizer<'g>(
        &self,
        graph: &'g Graph,
        layer: NodeId,
    ) -> Result<Box<dyn LayerSizer + 'g>, String> {
        let fp = nmc_loihi2::LayerFootprint::of(graph, layer).map_err(|e| e.to_string())?;
        Ok(Box::new(Loihi2Layer {
            spec: self.0.clone(),
            fp,
        }))
    }
    fn location(&self, core: usize) -> CoreLoc {
        self.0.core_loc(core as u32).unwrap_or(CoreLoc {
            chip: u32::MAX,
            x: 0,
            y: 0,
        })
    }
}

struct Loihi2Layer {
    spec: nmc_loihi2::ChipSpec,
    fp: nmc_loihi2::LayerFootprint,
}

impl LayerSizer for Loihi2Layer {
    fn check_slice(&self, start: u32, end: u32) -> Result<(), String> {
        self.spec
            .check_slice(&self.fp.usage(start, end))
            .map_err(|e| e.to_string())
    }
    fn min_cores(&self) -> usize {
        let u = self.fp.usage(0, self.fp.channels as u32);
        let by = |need: u64, have: u64| need.div_ceil(have.max(1)) as usize;
        by(u.neurons, u64::from(self.spec.max_neurons_per_core))
            .max(by(u.synapse_bytes, self.spec.synapse_bytes_per_core))
            .max(by(u.state_bytes, self.spec.state_bytes_per_core))
            .max(1)
    }
}

pub(super) fn to_json(a: &nmc_loihi2::Artifact) -> serde_json::Value {
    let layers: Vec<serde_json::Value> = a
        .populations
        .iter()
        .map(|p| {
            let cores: Vec<serde_json::Value> = p
                .slices
                .iter()
                .map(|s| {
                    let c = a.cores.iter().find(|c| c.id == s.core);
                    serde_json::json!({
                        "core": s.core,
                        "channels": [s.start, s.end],
                        "chip": c.map(|c| c.chip),
                        "x": c.map(|c| c.x),
                        "y": c.map(|c| c.y),
                    })
                })
                .collect();
            serde_json::json!({ "name": p.name, "shape": p.shape, "cores": cores })
        })
        .collect();
    serde_json::json!({
        "target": "loihi2",
        "format_version": a.header.as_ref().map(|h| h.format_version),
        "source_hash": a.header.as_ref().map(|h| format!("{:#018x}", h.source_hash)),
        "layers": layers,
        "cores_used": a.cores.len(),
    })
}

/// The spec for `chips` chips with cost constants overridden.
fn spec_with(chips: u32, params: &ChipParams) -> Result<nmc_loihi2::ChipSpec, String> {
    let mut spec = nmc_loihi2::loihi2().with_chips(chips.max(1));
    let names: Vec<&str> = spec.cost.entries().iter().map(|e| e.0).collect();
    super::override_costs(
        "loihi2",
        &mut spec.cost,
        &names,
        nmc_loihi2::CostModel::get_mut,
        params,
    )?;
    Ok(spec)
}

pub(super) fn cost_params(params: &ChipParams) -> Result<Vec<CostParam>, Error> {
    Ok(super::cost_param_list(
        &spec_with(1, params).map_err(Error::Usage)?.cost.entries(),
    ))
}

/// The floorline model's constants, from the same spec the emulator uses.
fn constants(spec: &nmc_loihi2::ChipSpec) -> crate::cost::Constants {
    let c = &spec.cost;
    crate::cost::Constants {
        a_syn: c.a_syn.value,
        a_mem: c.a_mem.value,
        a_neu: c.a_neu.value,
        a_msg: c.a_msg.value,
        b_sync: c.b_sync.value,
        e_syn: c.e_syn.value,
        e_mem: c.e_mem.value,
        e_neu: c.e_neu.value,
        e_msg: c.e_msg.value,
        e_hop: c.e_hop.value,
        p_static: c.p_static.value,
    }
}

pub(super) fn analyze(
    artifact: &[u8],
    profile: &crate::cost::ActivityProfile,
    chips: u32,
    params: &ChipParams,
) -> Result<(crate::cost::Analysis, crate::cost::Constants), Error> {
    let art = nmc_loihi2::decode(artifact).map_err(|e| Error::Lower {
        target: "loihi2",
        message: e.to_string(),
    })?;
    let spec = spec_with(chips, params).map_err(Error::Usage)?;
    let (loads, link_ns, hops) = crate::cost::loihi2_loads(&art, &spec, profile);
    let k = constants(&spec);
    let used_chips = art.header.as_ref().map_or(1, |h| h.chips).max(1);
    let a = crate::cost::evaluate(
        "loihi2",
        loads,
        link_ns,
        hops,
        nmc_loihi2::min_timesteps(&art),
        used_chips,
        &k,
        &profile.from,
    );
    Ok((a, k))
}

pub(super) fn run(
    a: &nmc_loihi2::Artifact,
    samples: &Array,
    timesteps: Option<u32>,
    params: &ChipParams,
) -> Result<RunResult, String> {
    let spec = spec_with(
        a.header.as_ref().map(|h| h.chips).unwrap_or(1).max(1),
        params,
    )?;
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
        min: input.min,
        max: input.max,
    };
    let output = a.outputs.first().ok_or("artifact has no outputs")?;
    let t = timesteps.unwrap_or_else(|| nmc_loihi2::min_timesteps(a));
    let mut emu = nmc_loihi2::Emulator::new(a, &spec).map_err(|e| e.to_string())?;
    let n = xs.len();
    let mut out_shape = vec![n];
    out_shape.extend(output.shape.iter().map(|d| *d as usize));
    let mut outputs = Array {
        shape: out_shape,
        data: Vec::new(),
    };
    let mut int_outputs = Vec::with_capacity(n);
    let mut perf = PerfSummary {
        target: "loihi2".into(),
        samples: n,
        timesteps: t,
        ..Default::default()
    };
    let mut bounds: Vec<[u64; 3]> = Vec::new();
    let mut workload = [0u64; 3];
    for x in xs {
        let x: Vec<i64> = x.iter().map(|v| nmc_ir::quantize(*v, &q)).collect();
        let (outs, report) = emu.run(&[x], t).map_err(|e| e.to_string())?;
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
        if let Some(slowest) = report
            .per_step
            .iter()
            .max_by(|a, b| a.t_ns.total_cmp(&b.t_ns))
        {
            perf.t_step_ns += slowest.t_ns;
            workload[slowest.bound as usize] += 1;
        }
        if perf.cores.is_empty() {
            perf.cores = report
                .cores
                .iter()
                .map(|c| CorePerf {
                    id: c.id,
                    chip: c.chip,
                    x: c.x,
                    y: c.y,
                    ..Default::default()
                })
                .collect();
            bounds = vec![[0; 3]; report.cores.len()];
        }
        for ((p, c), b) in perf.cores.iter_mut().zip(&report.cores).zip(&mut bounds) {
            p.syn_ops += c.syn_ops;
            p.mem_reads += c.mem_reads;
            p.neuron_updates += c.neuron_updates;
            p.msgs_in += c.msgs_in;
            p.msgs_out += c.msgs_out;
            b[c.bound as usize] += 1;
        }
    }
    super::finish_perf(&mut perf, &bounds, &workload);
    Ok(RunResult {
        outputs,
        int_outputs,
        perf,
    })
}
