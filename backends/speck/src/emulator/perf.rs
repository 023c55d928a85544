//! Per-core counters and the latency/energy model of [`crate::spec::CostModel`].

use crate::spec::CostModel;

pub use nmc_backend::{Bound, Counters};

/// Counters of one core, summed over a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CoreCounters {
    /// Core id (0..=8).
    pub id: u32,
    /// The core's counters, as Speck counts them:
    /// - `S`: kernel entries applied to input events;
    /// - `R`: 0 (the time model has no separate weight-read term; each synaptic operation reads
    ///   one kernel-memory entry);
    /// - `D`: touched or leaking neurons, per step;
    /// - messages in: input events received (a pixel's count of `n` in one step is `n` events);
    ///   out: events sent to destinations after pooling, summed over destinations.
    pub counts: Counters,
    /// Spikes emitted by the core's neurons (before pooling and fan-out).
    pub spikes_out: u64,
    /// Modelled busy time over the run (ns).
    pub time_ns: f64,
    /// Busy time per term: traffic (input events), memory (synaptic operations), compute (neuron
    /// updates) (ns).
    pub time_by: [f64; 3],
}

impl CoreCounters {
    /// The term that took longest over the run, by [`Bound::of`] (ties go to compute, then
    /// memory): memory is the synaptic-operation time, compute the neuron-update time, traffic
    /// the event time.
    pub fn bound(&self) -> Bound {
        let [traffic, memory, compute] = self.time_by;
        Bound::of(memory, compute, traffic)
    }
}

/// Per-step activity of one core (what the time model needs).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StepCounts {
    pub counts: Counters,
    pub spikes_out: u64,
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
    ///
    /// A core's step time is `t_event·msgs_in + t_syn·S + t_neuron·D`: Speck's cost model
    /// charges the events a core receives and decodes, not the ones it sends (routing them is the
    /// chip's router's work). That is the chip's time model, not the counter definition:
    /// `msgs_out` is counted all the same, and `M` ([`Counters::messages`]) is in plus out.
    pub fn step(&mut self, input_events: u64, counts: &[StepCounts]) {
        let c = self.cost;
        let r = &mut self.report;
        r.timesteps += 1;
        r.input_events += input_events;
        let mut slowest = (0.0f64, 0u32);
        for (cc, s) in r.cores.iter_mut().zip(counts) {
            let terms = [
                s.counts.msgs_in as f64 * c.t_event.value,
                s.counts.syn_ops as f64 * c.t_syn.value,
                s.counts.neuron_updates as f64 * c.t_neuron.value,
            ];
            let t: f64 = terms.iter().sum();
            cc.counts.add(&s.counts);
            cc.spikes_out += s.spikes_out;
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
        r.synaptic_events = r.cores.iter().map(|k| k.counts.syn_ops).sum();
        let events: u64 = r.input_events + r.cores.iter().map(|k| k.counts.msgs_out).sum::<u64>();
        let updates: u64 = r.cores.iter().map(|k| k.counts.neuron_updates).sum();
        let pj = r.synaptic_events as f64 * c.e_syn.value
            + updates as f64 * c.e_neuron.value
            + events as f64 * c.e_event.value
            + c.p_static.value * r.latency_ns;
        r.energy_nj = pj / 1e3;
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_is_bound_of_the_term_times() {
        let bound = |time_by: [f64; 3]| {
            CoreCounters {
                time_by,
                ..Default::default()
            }
            .bound()
        };
        // time_by is [traffic, memory, compute].
        assert_eq!(bound([3.0, 1.0, 2.0]), Bound::Traffic);
        assert_eq!(bound([1.0, 3.0, 2.0]), Bound::Memory);
        assert_eq!(bound([1.0, 2.0, 3.0]), Bound::Compute);
        // Ties go to compute, then memory, as everywhere.
        assert_eq!(bound([0.0, 0.0, 0.0]), Bound::Compute);
        assert_eq!(bound([2.0, 2.0, 1.0]), Bound::Memory);
        assert_eq!(bound([2.0, 1.0, 2.0]), Bound::Compute);
    }
}
