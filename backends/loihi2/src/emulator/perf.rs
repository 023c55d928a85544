//! Performance report of an emulation: per core and timestep counters, the floorline latency and
//! energy of each step, and which bound held. Plain data with public fields, so the compiler can
//! serialise it as it likes.

use super::noc::LinkLoad;
use crate::spec::CostModel;
use nmc_ir::CoreLoc;

pub use nmc_backend::{Bound, Counters};

/// What one core did in one timestep.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CoreStep {
    /// The step's counters, as Loihi 2 counts them:
    /// - `S`: stored synapses applied to arriving events (zeros included where the weights are
    ///   stored densely, because the core reads and applies them);
    /// - `R`: per event and core, the weight bytes touched (1 per dense weight, 3 per sparse
    ///   synapse) divided by 4, rounded up;
    /// - `D`: pre-pool neurons updated plus pooled outputs recomputed;
    /// - messages in: one per event per destination core; out: one per emitted delta per
    ///   destination core.
    pub counts: Counters,
    /// The core's time: `max(a_syn·S, a_mem·R, a_neu·D, a_msg·M)` in ns (`M` = in + out).
    pub t_ns: f64,
    /// Which term was largest.
    pub bound: Bound,
}

/// One timestep.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    /// Step latency: slowest core or link, plus the barrier (ns).
    pub t_ns: f64,
    /// Step energy (nJ).
    pub energy_nj: f64,
    /// Per core, indexed by core id (empty if the emulator was told not to record them).
    pub cores: Vec<CoreStep>,
    /// Most bits on one directed link.
    pub max_link_bits: u64,
    /// Time of the busiest link (ns).
    pub link_ns: f64,
    /// Link traversals of all messages.
    pub hops: u64,
    /// What limited the step: the slowest core's bound, or traffic if a link was slower.
    pub bound: Bound,
}

/// A core's totals over the run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CoreTotals {
    /// Logical core id.
    pub id: u32,
    /// Chip.
    pub chip: u32,
    /// Mesh column.
    pub x: u32,
    /// Mesh row.
    pub y: u32,
    /// Σ of the per-step counters ([`CoreStep::counts`]).
    pub counts: Counters,
    /// Σ of the core's per-step times (ns).
    pub busy_ns: f64,
    /// Largest term over the run's totals.
    pub bound: Bound,
}

/// Performance of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct PerfReport {
    /// Timesteps run.
    pub timesteps: u32,
    /// Σ step latencies (ns).
    pub latency_ns: f64,
    /// Σ step energies (nJ).
    pub energy_nj: f64,
    /// Every step.
    pub per_step: Vec<StepReport>,
    /// Every core.
    pub cores: Vec<CoreTotals>,
    /// Σ S over cores and steps.
    pub synaptic_events: u64,
    /// Σ link traversals.
    pub hops: u64,
    /// The workload's bound: the one that limited the most step time (barrier excluded).
    pub bound: Bound,
    /// Traffic over each pair of chips' links (multi-chip systems; empty on one chip).
    pub links: Vec<nmc_backend::LinkPerf>,
}

/// The floorline terms of a core's counters in ns: (memory, compute, traffic).
///
/// Floorline vocabulary (docs/papers.md §1.3): synaptic processing (synops and the weight reads
/// that feed them) is the memory slope; neuron updates are the compute floor.
fn terms(cost: &CostModel, c: &Counters) -> (f64, f64, f64) {
    let memory = (cost.a_syn.value * c.syn_ops as f64).max(cost.a_mem.value * c.mem_reads as f64);
    let compute = cost.a_neu.value * c.neuron_updates as f64;
    let traffic = cost.a_msg.value * c.messages() as f64;
    (memory, compute, traffic)
}

/// Builds the report step by step.
pub(crate) struct PerfBuilder {
    per_step: Vec<StepReport>,
    cores: Vec<CoreTotals>,
    /// Step time (barrier excluded) attributed to each bound: memory, compute, traffic.
    by_bound: [f64; 3],
    /// Keep per-core step entries.
    record: bool,
}

impl PerfBuilder {
    pub(crate) fn new(cores: &[CoreLoc], record: bool) -> PerfBuilder {
        PerfBuilder {
            per_step: Vec::new(),
            cores: cores
                .iter()
                .enumerate()
                .map(|(i, l)| CoreTotals {
                    id: i as u32,
                    chip: l.chip,
                    x: l.x,
                    y: l.y,
                    counts: Counters::default(),
                    busy_ns: 0.0,
                    bound: Bound::Compute,
                })
                .collect(),
            by_bound: [0.0; 3],
            record,
        }
    }

    /// Closes a step: costs the counters (then zeroes them) and the link load.
    pub(crate) fn step(
        &mut self,
        cost: &CostModel,
        counters: &mut [Counters],
        links: LinkLoad,
        chips: u32,
    ) {
        // Without per-core records a step keeps no per-core memory (long runs stay small).
        let mut cores = Vec::with_capacity(if self.record { counters.len() } else { 0 });
        let mut energy_pj = cost.e_hop.value * links.hops as f64;
        let mut slowest: Option<(f64, Bound)> = None;
        for (k, c) in counters.iter_mut().enumerate() {
            let (memory, compute, traffic) = terms(cost, c);
            let t = compute.max(memory).max(traffic);
            let bound = Bound::of(memory, compute, traffic);
            if slowest.is_none_or(|(s, _)| t > s) {
                slowest = Some((t, bound));
            }
            energy_pj += cost.e_syn.value * c.syn_ops as f64
                + cost.e_mem.value * c.mem_reads as f64
                + cost.e_neu.value * c.neuron_updates as f64
                + cost.e_msg.value * c.messages() as f64;
            let tot = &mut self.cores[k];
            tot.counts.add(c);
            tot.busy_ns += t;
            if self.record {
                cores.push(CoreStep {
                    counts: *c,
                    t_ns: t,
                    bound,
                });
            }
            *c = Counters::default();
        }
        let (core_t, core_bound) = slowest.unwrap_or((0.0, Bound::Compute));
        let (work, bound) = if links.max_ns > core_t {
            (links.max_ns, Bound::Traffic)
        } else {
            (core_t, core_bound)
        };
        self.by_bound[bound as usize] += work;
        let t_ns = work + cost.b_sync.value;
        energy_pj += cost.p_static.value * f64::from(chips) * t_ns;
        self.per_step.push(StepReport {
            t_ns,
            energy_nj: energy_pj / 1000.0,
            cores,
            max_link_bits: links.max_bits,
            link_ns: links.max_ns,
            hops: links.hops,
            bound,
        });
    }

    pub(crate) fn finish(mut self, cost: &CostModel) -> PerfReport {
        for c in &mut self.cores {
            let (memory, compute, traffic) = terms(cost, &c.counts);
            c.bound = Bound::of(memory, compute, traffic);
        }
        let [m, c, t] = self.by_bound;
        PerfReport {
            timesteps: self.per_step.len() as u32,
            latency_ns: self.per_step.iter().map(|s| s.t_ns).sum(),
            energy_nj: self.per_step.iter().map(|s| s.energy_nj).sum(),
            synaptic_events: self.cores.iter().map(|c| c.counts.syn_ops).sum(),
            hops: self.per_step.iter().map(|s| s.hops).sum(),
            bound: Bound::of(m, c, t),
            per_step: self.per_step,
            cores: self.cores,
            links: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_ties_and_names() {
        assert_eq!(Bound::of(0.0, 0.0, 0.0), Bound::Compute);
        assert_eq!(Bound::of(2.0, 1.0, 2.0), Bound::Memory);
        assert_eq!(Bound::of(2.0, 1.0, 3.0), Bound::Traffic);
        assert_eq!(Bound::of(2.0, 3.0, 3.0), Bound::Compute);
        assert_eq!(Bound::Traffic.as_str(), "traffic");
    }

    #[test]
    fn step_latency_is_slowest_core_or_link_plus_barrier() {
        let cost = crate::loihi2().cost;
        let locs = [
            CoreLoc {
                chip: 0,
                x: 0,
                y: 0,
            },
            CoreLoc {
                chip: 0,
                x: 1,
                y: 0,
            },
        ];
        let mut b = PerfBuilder::new(&locs, true);
        let mut c = vec![Counters::default(); 2];
        c[0].syn_ops = 1000;
        c[1].msgs_in = 10;
        b.step(&cost, &mut c, LinkLoad::default(), 1);
        let r = b.finish(&cost);
        let s = &r.per_step[0];
        let expect = cost.a_syn.value * 1000.0;
        assert!((s.t_ns - expect - cost.b_sync.value).abs() < 1e-9);
        assert_eq!(s.bound, Bound::Memory, "synaptic work is the memory slope");
        assert_eq!(r.cores[1].bound, Bound::Traffic);
        assert_eq!(r.synaptic_events, 1000);
        assert!(r.energy_nj > 0.0);
    }
}
