//! The Loihi 2 chip description: core counts, per-core limits, integer widths and the constants of
//! the floorline cost model, each with the source it comes from (docs/chips.md §1, docs/papers.md §1.6).
//!
//! Public numbers for Loihi 2 are thin. Where a figure is secondary or unverified the comment says
//! so; where no public figure exists at all the constant's `source` says "assumed" and gives the
//! reasoning, so that reports can show the user which numbers to distrust (ARCHITECTURE.md §5).

use crate::memory::{FitError, Resource, SliceUsage};
use nmc_backend::QuantSpec;
use nmc_ir::CoreLoc;

pub use nmc_backend::Cost;

nmc_backend::cost_table! {
    /// Constants of the floorline model (ARCHITECTURE.md §5), the max-affine form of Timcheck, Pierro
    /// & Shrestha (docs/papers.md §1.6): per core and timestep
    /// `T = max(a_syn·S, a_mem·R, a_neu·D, a_msg·M, a_link·bits) + b_sync` and
    /// `E = Σ_k (e_syn·S + e_mem·R + e_neu·D + e_msg·M) + e_hop·hops + p_static·T`.
    ///
    /// Times are in ns, energies in pJ, power in mW (so that mW × ns = pJ).
    pub struct CostModel {
        /// Time per synaptic operation (one stored synapse applied to one event).
        a_syn,
        /// Time per 32-bit synaptic-memory word read.
        a_mem,
        /// Time per neuron (dendrite) update.
        a_neu,
        /// Time per message entering or leaving a core.
        a_msg,
        /// Time per bit on one directed intra-chip mesh link.
        a_link,
        /// Time per bit on one directed inter-chip link.
        a_link_interchip,
        /// Barrier synchronisation at the end of every timestep.
        b_sync,
        /// Energy per synaptic operation.
        e_syn,
        /// Energy per synaptic-memory word read.
        e_mem,
        /// Energy per neuron update.
        e_neu,
        /// Energy per message in or out of a core.
        e_msg,
        /// Energy per link traversal (hop) of one message.
        e_hop,
        /// Static power per chip in use.
        p_static,
    }
}

/// Hala Point (docs/chips.md §1.2) has 140,544 neuro-cores; its aggregate figures divided by this give
/// per-core rates, the only per-core throughput numbers with a public origin.
const HALA_POINT_CORES: f64 = 140_544.0;

fn loihi2_costs() -> CostModel {
    let c = |value: f64, unit: &'static str, source: &'static str| Cost {
        value,
        unit,
        source,
    };
    CostModel {
        // 380e12 synaptic ops/s over 140,544 cores = 2.70e9 /s per core.
        a_syn: c(
            1e9 / (380e12 / HALA_POINT_CORES),
            "ns/op",
            "Hala Point: over 380 trillion 8-bit synaptic ops/s over 140,544 cores (docs/chips.md §1.2); per-core rate, a lower bound on time",
        ),
        // 16 PB/s over 140,544 cores = 113.8 GB/s per core = 28.5e9 32-bit words/s.
        a_mem: c(
            1e9 / (16e15 / 4.0 / HALA_POINT_CORES),
            "ns/word",
            "Hala Point: 16 PB/s memory bandwidth over 140,544 cores (docs/chips.md §1.2), 4-byte words",
        ),
        // 240e12 neuron ops/s over 140,544 cores = 1.71e9 /s per core.
        a_neu: c(
            1e9 / (240e12 / HALA_POINT_CORES),
            "ns/update",
            "Hala Point: over 240 trillion neuron ops/s over 140,544 cores (docs/chips.md §1.2)",
        ),
        a_msg: c(
            1.0,
            "ns/msg",
            "assumed: no public per-message injection/ejection time for Loihi 2 (docs/papers.md §1.6 constants not reachable)",
        ),
        // 3.5 PB/s over 140,544 cores = 24.9 GB/s = 199 Gbit/s per core, taken as one link.
        a_link: c(
            1e9 / (3.5e15 * 8.0 / HALA_POINT_CORES),
            "ns/bit",
            "Hala Point: 3.5 PB/s inter-core bandwidth over 140,544 cores (docs/chips.md §1.2), taken as one link per core [assumption]",
        ),
        // 5 TB/s over 1,152 chips = 4.34 GB/s = 34.7 Gbit/s per chip, taken as one link.
        a_link_interchip: c(
            1e9 / (5e12 * 8.0 / 1152.0),
            "ns/bit",
            "Hala Point: 5 TB/s inter-chip bandwidth over 1,152 chips (docs/chips.md §1.2), taken as one link per chip [assumption]",
        ),
        b_sync: c(
            500.0,
            "ns",
            "assumed: barrier time not public (docs/papers.md §1.6: 'five system constants' not reachable)",
        ),
        e_syn: c(
            1.0 / 15.0,
            "pJ/op",
            "Hala Point: over 15 TOPS/W on 8-bit DNN ops (docs/chips.md §1.2) = 1/15 pJ per op; system-level, includes memory and static power",
        ),
        e_mem: c(
            0.02,
            "pJ/word",
            "assumed: small next to e_syn because the Hala Point per-op figure already includes memory",
        ),
        e_neu: c(
            0.1,
            "pJ/update",
            "assumed: same order as e_syn (Hala Point counts neuron ops separately but gives no energy)",
        ),
        e_msg: c(
            0.5,
            "pJ/msg",
            "assumed: no public per-message energy for Loihi 2",
        ),
        e_hop: c(
            0.2,
            "pJ/hop",
            "assumed: no public per-hop energy for Loihi 2 (inter-chip hops charged the same)",
        ),
        // Hala Point's 2,600 W maximum is 2.26 W per chip including boards, hosts and cooling;
        // its aggregate rates and 15 TOPS/W do not agree with that power to better than 100×,
        // so the chip's static share is simply assumed.
        p_static: c(
            100.0,
            "mW/chip",
            "assumed: well under Hala Point's 2.26 W per chip maximum (2,600 W / 1,152 chips, docs/chips.md §1.2), which includes the system",
        ),
    }
}

/// Everything nmc knows about Loihi 2 that affects compilation and emulation.
#[derive(Clone, Debug, PartialEq)]
pub struct ChipSpec {
    /// Target name used in artifacts ("loihi2").
    pub name: &'static str,
    /// Chips in the system (a parameter: Kapoho Point has 4 or 8, Hala Point 1,152; docs/chips.md §1.2).
    pub chips: u32,
    /// Neuro-cores per chip: Lava's `NUM_VIRTUAL_CORES_L2 = 128` (docs/chips.md §1.1).
    pub cores_per_chip: u32,
    /// Mesh columns. The 8×16 mesh is a secondary source (fbhtechinfo.com) **\[UNVERIFIED\]**.
    pub mesh_width: u32,
    /// Mesh rows (see `mesh_width`).
    pub mesh_height: u32,
    /// Neurons per core: "max 8,192" (Intel brief via emergentmind, **\[UNVERIFIED\]**; the real
    /// limit depends on the neuron model).
    pub max_neurons_per_core: u32,
    /// Synaptic memory per core in bytes: 128 KiB (fbhtechinfo.com "128 Kbyte of local SRAM";
    /// Intel's brief is usually quoted as 192 KB; nmc takes the conservative value).
    pub synapse_bytes_per_core: u64,
    /// Neuron-state memory per core in bytes. Assumed: sized so that exactly
    /// `max_neurons_per_core` unpooled sigma-delta neurons fit (see [`crate::memory`]). The real
    /// chip partitions one SRAM flexibly between synapses and state; nmc models two fixed pools.
    pub state_bytes_per_core: u64,
    /// Bits of a weight mantissa, sign included (8; Lava `num_weight_bits`, docs/chips.md §1.4).
    pub weight_bits: u32,
    /// Effective weights are even: mixed-sign mode drops the mantissa's LSB (docs/chips.md §6).
    pub even_weights: bool,
    /// Shared weight exponents nmc uses: 0..=7. Lava allows negative ones, but a right shift of
    /// the accumulated sum is not linear in the events, so nmc keeps exponents non-negative.
    pub weight_exp_range: (i32, i32),
    /// Neuron state width (Lava sigma-delta: int32 holding 24 bits, docs/chips.md §1.4).
    pub state_bits: u32,
    /// Default graded-spike (activation) width.
    pub act_bits: u32,
    /// Widest graded spike in Lava's bit-accurate models (24 bits; the hardware allows up to 32).
    pub max_act_bits: u32,
    /// Bias mantissa bits, sign included (Lava LIF `bias_mant`: 13 bits).
    pub bias_mant_bits: u32,
    /// Largest bias exponent (Lava LIF `bias_exp`: unsigned 3 bits).
    pub bias_exp_max: u32,
    /// Bits of one spike message on the mesh: 24-bit graded payload plus an 8-bit header
    /// (assumed; the real packet format is proprietary, docs/chips.md §1.5).
    pub message_bits: u32,
    /// Cost model constants.
    pub cost: CostModel,
}

/// The Loihi 2 spec for a one-chip system.
pub fn loihi2() -> ChipSpec {
    ChipSpec {
        name: "loihi2",
        chips: 1,
        cores_per_chip: 128,
        mesh_width: 8,
        mesh_height: 16,
        max_neurons_per_core: 8192,
        synapse_bytes_per_core: 128 * 1024,
        state_bytes_per_core: 8192 * crate::memory::STATE_BYTES_PER_NEURON,
        weight_bits: 8,
        even_weights: true,
        weight_exp_range: (0, 7),
        state_bits: 24,
        act_bits: 8,
        max_act_bits: 24,
        bias_mant_bits: 13,
        bias_exp_max: 7,
        message_bits: 32,
        cost: loihi2_costs(),
    }
}

impl ChipSpec {
    /// The same spec for a system of `chips` chips.
    pub fn with_chips(mut self, chips: u32) -> Self {
        self.chips = chips;
        self
    }

    /// Cores in the whole system.
    pub fn total_cores(&self) -> u32 {
        self.chips.saturating_mul(self.cores_per_chip)
    }

    /// Location of logical core `id` when cores are placed in id order (chip by chip, row by
    /// row), the placement vendor toolchains use; `None` past the last core.
    pub fn core_loc(&self, id: u32) -> Option<CoreLoc> {
        if id >= self.total_cores() || self.mesh_width == 0 {
            return None;
        }
        let local = id % self.cores_per_chip;
        Some(CoreLoc {
            chip: id / self.cores_per_chip,
            x: local % self.mesh_width,
            y: local / self.mesh_width,
        })
    }

    /// Whether a location exists in this system.
    pub fn has_loc(&self, loc: CoreLoc) -> bool {
        loc.chip < self.chips && loc.x < self.mesh_width && loc.y < self.mesh_height
    }

    /// The integer widths the quantiser must respect on this target.
    pub fn quant_spec(&self) -> QuantSpec {
        QuantSpec {
            weight_bits: self.weight_bits,
            even_weights: self.even_weights,
            weight_exp_range: self.weight_exp_range,
            state_bits: self.state_bits,
            act_bits: self.act_bits,
            max_act_bits: self.max_act_bits,
            bias_mant_bits: self.bias_mant_bits,
            bias_exp_max: self.bias_exp_max,
        }
    }

    /// Checks one core's memory use (one slice or the sum of all slices on the core).
    pub fn check_slice(&self, usage: &SliceUsage) -> Result<(), FitError> {
        let checks = [
            (
                Resource::Neurons,
                usage.neurons,
                u64::from(self.max_neurons_per_core),
            ),
            (
                Resource::SynapseMemory,
                usage.synapse_bytes,
                self.synapse_bytes_per_core,
            ),
            (
                Resource::StateMemory,
                usage.state_bytes,
                self.state_bytes_per_core,
            ),
        ];
        for (resource, needed, available) in checks {
            if needed > available {
                return Err(FitError {
                    resource,
                    needed,
                    available,
                });
            }
        }
        Ok(())
    }

    /// The hardware exponent of a synapse group whose effective weights are `weights` with nmc
    /// exponent `exp`, or `None` if the group cannot be stored: every `w << exp` must equal
    /// `(m << s) << e` with one shared `e` in `weight_exp_range`, `m` a `weight_bits` mantissa and
    /// `s = 1` for even weights. (A quantiser may store odd mantissas and fold the doubling into
    /// the exponent, or store even values; both are representable.)
    pub fn group_exponent(&self, weights: &[i32], exp: i32) -> Option<i32> {
        if !(0..=62).contains(&exp) {
            return None;
        }
        let s = i32::from(self.even_weights);
        let m_max = (1i64 << (self.weight_bits - 1)) - 1;
        (self.weight_exp_range.0.max(0)..=self.weight_exp_range.1).find(|&e| {
            let k = (e + s) as u32;
            weights.iter().all(|&w| {
                let v = i64::from(w) << exp;
                v % (1i64 << k) == 0 && (-m_max - 1..=m_max).contains(&(v >> k))
            })
        })
    }

    /// Whether an integer bias (state units) is `mant << exp` with a `bias_mant_bits` mantissa
    /// and `exp ≤ bias_exp_max` (Lava LIF `bias_mant`/`bias_exp`).
    pub fn bias_fits(&self, b: i64) -> bool {
        let m_max = (1i64 << (self.bias_mant_bits - 1)) - 1;
        (0..=self.bias_exp_max.min(62))
            .any(|e| b % (1i64 << e) == 0 && (-m_max - 1..=m_max).contains(&(b >> e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nmc_backend::CostTable;

    #[test]
    fn loihi2_numbers() {
        let s = loihi2();
        assert_eq!(s.total_cores(), 128);
        assert_eq!(s.mesh_width * s.mesh_height, s.cores_per_chip);
        assert_eq!(
            s.core_loc(9),
            Some(CoreLoc {
                chip: 0,
                x: 1,
                y: 1
            })
        );
        assert_eq!(s.core_loc(128), None);
        let two = loihi2().with_chips(2);
        assert_eq!(two.core_loc(130).map(|l| l.chip), Some(1));
        let q = s.quant_spec();
        assert_eq!((q.weight_bits, q.state_bits, q.act_bits), (8, 24, 8));
        assert!(s.cost.entries().iter().all(|(_, c)| c.value > 0.0));
    }

    #[test]
    fn weight_and_bias_representability() {
        let s = loihi2();
        // Even weights in [-256, 254] fit with exponent 0.
        assert_eq!(s.group_exponent(&[-256, 254, 0, 2], 0), Some(0));
        // Odd mantissas fit once the exponent can absorb the doubling.
        assert_eq!(s.group_exponent(&[127, -128, 3], 1), Some(0));
        assert_eq!(s.group_exponent(&[3], 0), None);
        // 256 alone is 64·2 << 1, but next to 2 no shared exponent works.
        assert_eq!(s.group_exponent(&[256], 0), Some(1));
        assert_eq!(s.group_exponent(&[256, 2], 0), None);
        assert!(s.bias_fits(4095));
        assert!(s.bias_fits(-4096 << 7));
        assert!(!s.bias_fits(4097));
        assert!(!s.bias_fits(4096 << 7));
    }
}
