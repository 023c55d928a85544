//! The memory a layer needs on a DYNAP-CNN core, by sinabs' formulas (`dynapcnn_layer.py`,
//! `DynapcnnLayer.memory_summary`, docs/chips.md §2.2), in entries:
//!
//! ```text
//! kernel = c · 2^(⌈log2(kx·ky)⌉ + ⌈log2(f)⌉)        c input channels, f output channels
//! neuron = f · 2^(⌈log2(out_h)⌉ + ⌈log2(out_w)⌉)     out = the neuron (pre-pooling) map
//! bias   = f if the layer has a bias, else 0
//! ```
//!
//! A layer fits a core when each need is at most that core's memory (`mapping.py`,
//! `LayerConstraints.fits`). sinabs evaluates the formulas in floating point with numpy; here they
//! are exact integer arithmetic, which gives the same numbers for every size up to 2^52.

use crate::spec::CoreSpec;
use std::fmt;

/// `⌈log2(n)⌉` for `n ≥ 1` (0 for `n ≤ 1`).
pub fn ceil_log2(n: u64) -> u32 {
    if n <= 1 {
        0
    } else {
        64 - (n - 1).leading_zeros()
    }
}

/// Memory entries a layer needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MemoryUse {
    /// Kernel memory entries.
    pub kernel: u64,
    /// Neuron memory entries.
    pub neuron: u64,
    /// Bias memory entries.
    pub bias: u64,
}

impl MemoryUse {
    /// The formulas above for a layer with `c` input channels, a `k × k` kernel, `f` output
    /// channels, a neuron map of `out_h × out_w` and (maybe) a bias.
    pub fn of(c: u64, k: u64, f: u64, out_h: u64, out_w: u64, bias: bool) -> Self {
        let pow = |e: u32| 1u64.checked_shl(e).unwrap_or(u64::MAX);
        MemoryUse {
            kernel: c.saturating_mul(pow(ceil_log2(k.saturating_mul(k)) + ceil_log2(f))),
            neuron: f.saturating_mul(pow(ceil_log2(out_h) + ceil_log2(out_w))),
            bias: if bias { f } else { 0 },
        }
    }

    /// The first memory of `core` this use exceeds, if any.
    pub fn overflow(&self, core: &CoreSpec) -> Option<Memory> {
        Memory::ALL
            .into_iter()
            .find(|m| m.of(self) > m.capacity(core))
    }

    /// Whether it fits `core` (sinabs `LayerConstraints.fits`).
    pub fn fits(&self, core: &CoreSpec) -> bool {
        self.overflow(core).is_none()
    }
}

/// One of a core's three memories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Memory {
    /// Kernel (weight) memory.
    Kernel,
    /// Neuron (state) memory.
    Neuron,
    /// Bias memory.
    Bias,
}

impl Memory {
    /// All three, in sinabs' order.
    pub const ALL: [Memory; 3] = [Memory::Kernel, Memory::Neuron, Memory::Bias];

    /// What a layer needs of this memory.
    pub fn of(self, u: &MemoryUse) -> u64 {
        match self {
            Memory::Kernel => u.kernel,
            Memory::Neuron => u.neuron,
            Memory::Bias => u.bias,
        }
    }

    /// What a core has of this memory.
    pub fn capacity(self, c: &CoreSpec) -> u64 {
        match self {
            Memory::Kernel => c.kernel_memory,
            Memory::Neuron => c.neuron_memory,
            Memory::Bias => c.bias_memory,
        }
    }

    /// Name used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Memory::Kernel => "kernel memory",
            Memory::Neuron => "neuron memory",
            Memory::Bias => "bias memory",
        }
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_match_sinabs_examples() {
        // sinabs docs: a 16→32 channel 3×3 conv on 64×64 (padding 1) needs 128 Ki neuron entries.
        let u = MemoryUse::of(16, 3, 32, 64, 64, true);
        assert_eq!(u.neuron, 128 * 1024);
        assert_eq!(u.kernel, 16 * 16 * 32);
        assert_eq!(u.bias, 32);
        assert!(crate::spec::CORES.iter().all(|c| !u.fits(c)));
        // docs/chips.md §6: sinabs on a digits CNN (1→8 3×3 on 8×8, 8→16 3×3 on 4×4, head 16·2·2→10)
        // reported kernel 128/2048/1024 and neuron 512/256/10 entries.
        assert_eq!(MemoryUse::of(1, 3, 8, 8, 8, true).kernel, 128);
        assert_eq!(MemoryUse::of(1, 3, 8, 8, 8, true).neuron, 512);
        assert_eq!(MemoryUse::of(8, 3, 16, 4, 4, true).kernel, 2048);
        assert_eq!(MemoryUse::of(8, 3, 16, 4, 4, true).neuron, 256);
        assert_eq!(MemoryUse::of(16, 2, 10, 1, 1, true).kernel, 1024);
        assert_eq!(MemoryUse::of(16, 2, 10, 1, 1, true).neuron, 10);
    }

    #[test]
    fn ceil_log2_is_exact() {
        for n in 1..5000u64 {
            let want = (n as f64).log2().ceil() as u32;
            assert_eq!(ceil_log2(n), want, "{n}");
        }
        assert_eq!(ceil_log2(1 << 40), 40);
        assert_eq!(ceil_log2((1 << 40) + 1), 41);
    }
}
