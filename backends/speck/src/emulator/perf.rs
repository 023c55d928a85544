//! Per-core counters and the latency/energy model of [`crate::spec::CostModel`].

use crate::spec::CostModel;

pub use nmc_backend::Bound;

/// Counters of one core, summed over a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CoreCounters {
    /// Core id (0..=8).
    pub id: u32,
    /// Input events received (a pixel's count of `n` in one step is `n` events).
    pub events_in: u64,
    /// Synaptic operations: kernel entries applied to events.
    pub syn_ops: u64,
    /// Neuron updates (touched or leaking neurons, per step).
    pub neuron_updates: u64,
    /// Spikes emitted by the core's neurons.
    pub spikes_out: u64,
    /// Events sent to destinations after pooling, summed over destinations.
    pub events_out: u64,
    /// Modelled busy time over the run (ns).
    pub time_ns: f64,
    /// Busy time per term: traffic (events), memory (synaptic operations), compute (neuron
    /// updates) (ns).
    pub time_by: [f64; 3],
}

impl CoreCounters {
    /// The term that took longest over the run.
    pub fn bound(&self) -> Bound {
        let order = [Bound::Traffic, Bound::Memory, Bound::Compute];
        let mut best = 1;
        for k in [0, 2] {
            if self.time_by[k] > self.time_by[best] {
                best = k;
            }
        }
        order[best]
    }
}

/// Per-step activity of one core (what the time model needs).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StepCounts {
    pub events_in: u64,
    pub syn_ops: u64,
    pub neuron_updates: u64,
    pub spikes_out: u64,
    pub events_out: u64,
}

/// The performance of one run (one sample).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerfReport {
    /// Timesteps run.
    pub timesteps: u32,
    /// Input events (from the rate encoder or the event stream).
    pub input_events: u64,
    /// Used cores, in core order.
    pub cores: Vec<CoreCounters>,
    /// Modelled latency of the run (ns): the sum over steps of the slowest core's time, plus the
    /// pipeline depth times `t_hop`.
    pub latency_ns: f64,
    /// Modelled energy (nJ).
    pub energy_nj: f64,
    /// The slowest step's time (ns).
    pub t_step_max_ns: f64,
    /// The core that bounds the slowest step.
    pub slowest_core: u32,
    /// Total synaptic operations.
    pub synaptic_events: u64,
}

pub(crate) struct PerfBuilder<'c> {
    cost: &'c CostModel,
    pub report: PerfReport,
    depth: u32,
}

impl<'c> PerfBuilder<'c> {
    pub fn new(cost: &'c CostModel, ids: &[u32], depth: u32) -> Self {
        PerfBuilder {
            cost,
            report: PerfReport {
                cores: ids
                    .iter()
                    .map(|&id| CoreCounters {
                        id,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
            depth,
        }
    }

    /// Adds one step: `counts[i]` for core `i` (in `ids` order).
    pub fn step(&mut self, input_events: u64, counts: &[StepCounts]) {
        let c = self.cost;
        let r = &mut self.report;
        r.timesteps += 1;
        r.input_events += input_events;
        let mut slowest = (0.0f64, 0u32);
        for (cc, s) in r.cores.iter_mut().zip(counts) {
            let terms = [
                s.events_in as f64 * c.t_event.value,
                s.syn_ops as f64 * c.t_syn.value,
                s.neuron_updates as f64 * c.t_neuron.value,
            ];
            let t: f64 = terms.iter().sum();
            cc.events_in += s.events_in;
            cc.syn_ops += s.syn_ops;
            cc.neuron_updates += s.neuron_updates;
            cc.spikes_out += s.spikes_out;
            cc.events_out += s.events_out;
            cc.time_ns += t;
            for (a, b) in cc.time_by.iter_mut().zip(terms) {
                *a += b;
            }
            if t > slowest.0 {
                slowest = (t, cc.id);
            }
        }
        r.latency_ns += slowest.0;
        if slowest.0 > r.t_step_max_ns {
            r.t_step_max_ns = slowest.0;
            r.slowest_core = slowest.1;
        }
    }

    pub fn finish(mut self) -> PerfReport {
        let c = self.cost;
        let r = &mut self.report;
        r.latency_ns += f64::from(self.depth) * c.t_hop.value;
        r.synaptic_events = r.cores.iter().map(|k| k.syn_ops).sum();
        let events: u64 = r.input_events + r.cores.iter().map(|k| k.events_out).sum::<u64>();
        let updates: u64 = r.cores.iter().map(|k| k.neuron_updates).sum();
        let pj = r.synaptic_events as f64 * c.e_syn.value
            + updates as f64 * c.e_neuron.value
            + events as f64 * c.e_event.value
            + c.p_static.value * r.latency_ns;
        r.energy_nj = pj / 1e3;
        self.report
    }
}
