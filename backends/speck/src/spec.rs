//! The Speck (DYNAP-CNN) chip description: the nine cores and their memories, the per-layer limits,
//! the integer widths, and the constants of the latency/energy model, each with its source
//! (docs/chips.md §2, which cites sinabs' code and docs).
//!
//! No public figure gives Speck's per-event or per-synaptic-operation time or energy (docs/chips.md §5,
//! items 4 and 6), so every cost constant is marked "assumed" with its reasoning: latencies and
//! energies from the emulator are for comparing mappings, not predictions of the silicon.

/// Memories of one DYNAP-CNN core, in entries (words), not bytes: sinabs writes them as
/// `16 * 1024` etc. (docs/chips.md §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CoreSpec {
    /// Kernel (weight) memory entries.
    pub kernel_memory: u64,
    /// Neuron (state) memory entries.
    pub neuron_memory: u64,
    /// Bias memory entries.
    pub bias_memory: u64,
}

/// The nine cores: sinabs `chips/dynapcnn.py` `DynapcnnConfigBuilder.get_constraints()` and
/// `mapping.py` (`_WEIGHTS_MEMORY_SIZE`, `_NEURONS_MEMORY_SIZE`, `_BIAS_MEMORY_SIZE`), docs/chips.md §2.2.
pub const CORES: [CoreSpec; 9] = {
    const fn c(k: u64, n: u64) -> CoreSpec {
        CoreSpec {
            kernel_memory: k * 1024,
            neuron_memory: n * 1024,
            bias_memory: 1024,
        }
    }
    [
        c(16, 64),
        c(16, 64),
        c(16, 64),
        c(32, 32),
        c(32, 32),
        c(64, 16),
        c(64, 16),
        c(16, 16),
        c(16, 16),
    ]
};

pub use nmc_backend::Cost;

nmc_backend::cost_table! {
    /// Throughput and energy constants of a core. A core handles its input events one at a time:
    /// per event it reads the kernel entries the event reaches and updates those neurons' states
    /// (one synaptic operation each); per timestep it also runs the neuron update (threshold, reset,
    /// clamp) of every neuron that received input or leaks. Its time per timestep is
    /// `events·t_event + syn_ops·t_syn + neuron_updates·t_neuron`; the nine cores work in parallel,
    /// so a timestep takes as long as its slowest core, plus one `t_hop` per layer of pipeline depth
    /// for the first events to travel through.
    pub struct CostModel {
        /// Time to accept and decode one input event.
        t_event,
        /// Time per synaptic operation (one kernel entry applied to one event).
        t_syn,
        /// Time per neuron update (threshold, reset, clamp, spike generation).
        t_neuron,
        /// Latency of one event from a core's output to the next core's input.
        t_hop,
        /// Energy per synaptic operation.
        e_syn,
        /// Energy per neuron update.
        e_neuron,
        /// Energy per event routed between cores (or from the sensor).
        e_event,
        /// Static power of the chip while it runs.
        p_static,
    }
}

fn speck_costs() -> CostModel {
    let c = |value: f64, unit: &'static str, source: &'static str| Cost {
        value,
        unit,
        source,
    };
    CostModel {
        t_event: c(
            10.0,
            "ns/event",
            "assumed: one event per cycle of an assumed 100 MHz core clock (no public DYNAP-CNN clock or event rate; docs/chips.md §5 item 6)",
        ),
        t_syn: c(
            10.0,
            "ns/op",
            "assumed: one kernel entry per cycle at 100 MHz (no public per-synop figure; docs/chips.md §5 item 6)",
        ),
        t_neuron: c(
            10.0,
            "ns/update",
            "assumed: one neuron-memory read-modify-write per cycle at 100 MHz",
        ),
        t_hop: c(
            100.0,
            "ns",
            "assumed: core-to-core event latency (Speck is asynchronous; docs/chips.md §5 item 4)",
        ),
        e_syn: c(
            10.0,
            "pJ/op",
            "assumed: order of magnitude of published mixed-signal/digital SNN chips; no Speck figure (docs/chips.md §5 item 6)",
        ),
        e_neuron: c(10.0, "pJ/update", "assumed: same order as e_syn"),
        e_event: c(
            20.0,
            "pJ/event",
            "assumed: routing one event costs about two synaptic operations",
        ),
        p_static: c(
            0.7,
            "mW",
            "assumed: sub-milliwatt idle power of an always-on vision SoC (no datasheet figure in docs/chips.md)",
        ),
    }
}

/// Everything nmc knows about Speck that affects compilation and emulation. Limits are
/// inclusive. Sources: sinabs `docs/speck/overview.md` ("Per DYNAP-CNN layer"), the FAQ
/// `available_algorithmic_operation.md`, and `discretize.py` (docs/chips.md §2.1, §2.3, §2.4).
#[derive(Clone, Debug, PartialEq)]
pub struct ChipSpec {
    /// Target name used in artifacts ("speck").
    pub name: &'static str,
    /// The nine DYNAP-CNN cores (docs/chips.md §2.2).
    pub cores: [CoreSpec; 9],
    /// Largest kernel side: "max kernel 16×16" (overview.md; the FAQ writes "< 16", nmc follows
    /// the overview). Kernels must be square (`kernel_size` is one integer in samna).
    pub max_kernel: u32,
    /// Most input or output channels of a layer: "max channels 1024" (overview.md).
    pub max_channels: u32,
    /// Largest input feature map side: "max input 128×128" (overview.md).
    pub max_input: u32,
    /// Largest output (neuron) feature map side: "max output feature map 64×64" (overview.md).
    pub max_output: u32,
    /// Convolution strides: "stride 1, 2, 4 or 8" (overview.md).
    pub strides: [u32; 4],
    /// Largest padding: "padding 0..7" (overview.md).
    pub max_padding: u32,
    /// Sum-pooling sizes, pool stride = size: "sum-pooling 1×1, 2×2 or 4×4" (overview.md;
    /// `dynapcnn_layer_utils.py` requires stride = size).
    pub pool_sizes: [u32; 3],
    /// Destinations per layer: "Each layer can be configured to set 1-2 destination" (overview.md).
    pub max_destinations: u32,
    /// Weight bits, sign included: `DYNAPCNN_WEIGHT_PRECISION_BITS = 8` (discretize.py).
    pub weight_bits: u32,
    /// Bias bits: discretised with the weight precision (discretize.py, docs/chips.md §2.3).
    pub bias_bits: u32,
    /// Neuron state, threshold and lower bound bits: `DYNAPCNN_STATE_PRECISION_BITS = 16`.
    pub state_bits: u32,
    /// The DVS sensor side: "DVS: 128×128 array" (overview.md).
    pub dvs_size: u32,
    /// DVS polarity channels (2; 1 when merged).
    pub dvs_channels: u32,
    /// Latency and energy constants (all assumed).
    pub cost: CostModel,
}

/// The Speck spec.
pub fn speck() -> ChipSpec {
    ChipSpec {
        name: "speck",
        cores: CORES,
        max_kernel: 16,
        max_channels: 1024,
        max_input: 128,
        max_output: 64,
        strides: [1, 2, 4, 8],
        max_padding: 7,
        pool_sizes: [1, 2, 4],
        max_destinations: 2,
        weight_bits: 8,
        bias_bits: 8,
        state_bits: 16,
        dvs_size: 128,
        dvs_channels: 2,
        cost: speck_costs(),
    }
}

/// Timesteps `nmc run` uses when neither the artifact nor the command line says. On the shipped
/// DVS digits CNN (`dvs_cnn`) the spike-count argmax agrees with the float model on 75.5 % of the
/// test images at T = 1, 97 % at 2 and 99.5 % from 4 on (`cargo xtask bench speck` prints the
/// curve); 8 is twice the first T on that plateau, a margin for models with lower rates.
pub const DEFAULT_TIMESTEPS: u32 = 8;

/// Most timesteps nmc runs (about a million): binned event input and per-step records take memory
/// proportional to the timesteps.
pub const MAX_TIMESTEPS: u32 = 1 << 20;

/// Integer levels of the input rate encoder: an input at full scale fires every timestep, one at
/// `q / INPUT_LEVELS` of full scale `q` times every `INPUT_LEVELS` steps (8-bit levels).
pub const INPUT_LEVELS: i32 = 255;

impl ChipSpec {
    /// The largest kernel, neuron and bias memories of any core, with the cores that have them.
    pub fn largest(&self, f: impl Fn(&CoreSpec) -> u64) -> (u64, Vec<u32>) {
        let max = self.cores.iter().map(&f).max().unwrap_or(0);
        let ids = (0..self.cores.len() as u32)
            .filter(|&i| f(&self.cores[i as usize]) == max)
            .collect();
        (max, ids)
    }
}
