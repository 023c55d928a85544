//! The AKD1000 description: the mesh of 20 nodes and 78 neural processors (NPs) with their
//! capability sets, per-NP SRAM, the HRC, the Akida 1.0 layer constraints, and the constants of
//! the latency and energy model, each with its source (docs/chips.md §3, §5, §6).
//!
//! BrainChip publishes no per-NP throughput or energy figures (docs/chips.md §5.5–5.6): every cost
//! constant's `source` says "assumed" with the reasoning, so that reports can show the user which
//! numbers to distrust.

/// The type an NP is configured as. An NP can take any type in its capability set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NpType {
    /// Convolutional NP, type 1 (all 78 NPs).
    Cnp1,
    /// Convolutional NP, type 2 (ids 1–3 of the 18 ordinary nodes).
    Cnp2,
    /// Fully-connected NP with external (DDR) weight memory (the 4 NPs of node (4,1)).
    Fnp2,
    /// Fully-connected NP with on-chip weights (id 0 of the 18 ordinary nodes).
    Fnp3,
}

impl NpType {
    /// Vendor name.
    pub fn name(self) -> &'static str {
        match self {
            NpType::Cnp1 => "CNP1",
            NpType::Cnp2 => "CNP2",
            NpType::Fnp2 => "FNP2",
            NpType::Fnp3 => "FNP3",
        }
    }
}

/// One NP slot of the mesh: `NP.Ident(col, row, id)` and the types it can take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpSlot {
    /// Mesh column of its node.
    pub col: u32,
    /// Mesh row of its node.
    pub row: u32,
    /// Slot in the node (0–3).
    pub id: u32,
    /// Capability set.
    pub types: Vec<NpType>,
}

impl NpSlot {
    /// Whether the NP can be configured as `t`.
    pub fn can(&self, t: NpType) -> bool {
        self.types.contains(&t)
    }
    /// Whether it can serve a fully-connected layer (so convolutions should leave it free).
    pub fn is_fnp_capable(&self) -> bool {
        self.can(NpType::Fnp2) || self.can(NpType::Fnp3)
    }
}

/// The Akida 1.0 / AKD1000 layer constraints (docs/chips.md §3.3, from
/// brainchip-inc.github.io/akida_examples_2.4.0-doc-1/user_guide/1.0_hw_constraints.html and the
/// notes of the 2.3.0 `hw_constraints.html`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// InputConv2D input width range.
    pub input_width: (u32, u32),
    /// InputConv2D smallest input height.
    pub input_min_height: u32,
    /// InputConv2D input channels.
    pub input_channels: &'static [u32],
    /// InputConv2D square kernel sizes.
    pub input_kernels: &'static [u32],
    /// InputConv2D strides.
    pub input_strides: &'static [u32],
    /// InputConv2D most filters for (input channels, [k=3, k=5, k=7]).
    pub input_max_filters: &'static [(u32, [u32; 3])],
    /// InputConv2D max-pool windows (h, w); the pool stride equals the window.
    pub input_pools: &'static [(u32, u32)],
    /// InputConv2D input bits (8) and weight bits.
    pub input_bits: u32,
    /// InputConv2D weight bits.
    pub input_weight_bits: &'static [u32],
    /// Conv2D square kernel sizes.
    pub conv_kernels: &'static [u32],
    /// Conv2D strides ("stride 2 is only supported with 3x3 kernels").
    pub conv_strides: &'static [u32],
    /// Conv2D max-pool square windows; pool strides 1 or 2 and at most the window.
    pub conv_pools: &'static [u32],
    /// Conv2D pool strides.
    pub conv_pool_strides: &'static [u32],
    /// Global average pooling: input width range.
    pub gap_width: (u32, u32),
    /// Global average pooling: "the output of the convolution must have at least 3 rows".
    pub gap_min_rows: u32,
    /// Dense (FullyConnected): most inputs W×H×C.
    pub dense_max_inputs: u64,
    /// Input bits of Conv2D, SeparableConv2D and Dense layers.
    pub layer_input_bits: &'static [u32],
    /// Weight bits of Conv2D and Dense layers.
    pub weight_bits: &'static [u32],
    /// Activation bits of every layer.
    pub act_bits: &'static [u32],
    /// SeparableConv2D square kernel sizes (docs/chips.md §3.3; 1×1 is not a separable kernel).
    pub sep_kernels: &'static [u32],
    /// SeparableConv2D weight bits, for both kernels: 2 or 4 (docs/chips.md §3.3; akida 2.19.3
    /// runs 1-bit separable layers in software only, §3.6).
    pub sep_weight_bits: &'static [u32],
    /// Largest `act_step`: "act_step should fit in 16bit" (cnn2snn `fix_v1_activation_variables`,
    /// `ACT_STEP_HW_LIMIT = (1 << 16) - 1`; BrainChip, Apache-2.0, public code whose repository
    /// was not identified).
    pub act_step_max: u32,
    /// Largest threshold magnitude (same source, `THRESHOLD_HW_LIMIT = (1 << 19) - 1`).
    pub threshold_max: i64,
}

fn akd1000_limits() -> Limits {
    Limits {
        input_width: (5, 256),
        input_min_height: 5,
        input_channels: &[1, 3],
        input_kernels: &[3, 5, 7],
        input_strides: &[1, 2, 3],
        input_max_filters: &[(1, [512, 192, 96]), (3, [192, 64, 32])],
        input_pools: &[(1, 1), (1, 2), (2, 1), (2, 2)],
        input_bits: 8,
        input_weight_bits: &[1, 2, 4, 8],
        conv_kernels: &[1, 3, 5, 7],
        conv_strides: &[1, 2],
        conv_pools: &[1, 2],
        conv_pool_strides: &[1, 2],
        gap_width: (1, 32),
        gap_min_rows: 3,
        dense_max_inputs: 57_334,
        layer_input_bits: &[1, 2, 4],
        weight_bits: &[1, 2, 4],
        act_bits: &[1, 2, 4],
        sep_kernels: &[3, 5, 7],
        sep_weight_bits: &[2, 4],
        act_step_max: (1 << 16) - 1,
        threshold_max: (1 << 19) - 1,
    }
}

pub use nmc_backend::{Cost, CostTable};

nmc_backend::cost_table! {
    /// Latency and energy constants. Per NP and frame the emulator counts synaptic operations `S`
    /// (one weight applied to one event), weight words read `R`, neuron evaluations `D` and events
    /// in and out `M`; then `t_np = max(a_syn·S, a_mem·R, a_neu·D, a_event·M)`. Layers form a
    /// pipeline: a frame's latency is the sum along the layers of the slowest NP of each layer plus
    /// `a_hop` per mesh hop between consecutive layers, and the throughput is set by the slowest
    /// NP. Energy per frame is
    /// `Σ (e_syn·S + e_mem·R + e_neu·D + e_event·M) + e_hop·hops + p_static·latency`.
    ///
    /// A model in several hardware passes (docs/chips.md §7) runs them one after another, the mesh
    /// reconfigured between them: each pass starts when the previous one has finished, after
    /// `a_pass + a_load·bytes`, where `bytes` is the pass's program (its NPs' weight memory,
    /// [`ChipSpec::np_weight_bytes`]) plus the activations crossing the boundary, out and in; each
    /// such transfer costs `e_load·bytes`. With several passes every frame reloads every pass, so
    /// the throughput interval is the whole latency.
    ///
    /// Times in ns, energies in pJ, power in mW (mW × ns = pJ).
    pub struct CostModel {
        /// Time per synaptic operation on one NP.
        a_syn,
        /// Time per weight-SRAM word read.
        a_mem,
        /// Time per neuron evaluation (threshold, step, activation).
        a_neu,
        /// Time per event entering or leaving an NP.
        a_event,
        /// Time per mesh hop of a layer's output.
        a_hop,
        /// Energy per synaptic operation.
        e_syn,
        /// Energy per weight-SRAM word read.
        e_mem,
        /// Energy per neuron evaluation.
        e_neu,
        /// Energy per event in or out of an NP.
        e_event,
        /// Energy per event per mesh hop.
        e_hop,
        /// Static power of the chip while a frame is in flight.
        p_static,
        /// Time per byte moved between host and device at a hardware-pass boundary (the next
        /// pass's program, and the activations that cross the boundary, out and back in).
        a_load,
        /// Fixed time per hardware-pass boundary (the host reads the pass's outputs and starts
        /// the next).
        a_pass,
        /// Energy per byte moved between host and device at a pass boundary.
        e_load,
    }
}

/// The NP clock nmc assumes (no public figure in docs/chips.md): 300 MHz, so one cycle is 3.33 ns.
const CYCLE_NS: f64 = 1e3 / 300.0;

fn akd1000_costs() -> CostModel {
    let c = |value: f64, unit: &'static str, source: &'static str| Cost {
        value,
        unit,
        source,
    };
    CostModel {
        a_syn: c(
            CYCLE_NS / 8.0,
            "ns/op",
            "assumed: 8 multiply-accumulates per cycle per NP at an assumed 300 MHz clock (no public per-NP throughput, docs/chips.md §5.5)",
        ),
        a_mem: c(
            CYCLE_NS,
            "ns/word",
            "assumed: one 50-bit weight-SRAM word per cycle (word width from the SramSize_v1 header, docs/chips.md §3.1; clock assumed)",
        ),
        a_neu: c(
            CYCLE_NS,
            "ns/neuron",
            "assumed: one threshold-and-step evaluation per cycle",
        ),
        a_event: c(
            CYCLE_NS,
            "ns/event",
            "assumed: one event per cycle through an NP's input or output port",
        ),
        a_hop: c(
            2.0 * CYCLE_NS,
            "ns/hop",
            "assumed: two cycles per mesh hop between the nodes of consecutive layers",
        ),
        e_syn: c(
            0.5,
            "pJ/op",
            "assumed: order of a 4-bit multiply-accumulate with its SRAM access; no public per-op figure (docs/chips.md §5.6)",
        ),
        e_mem: c(
            2.0,
            "pJ/word",
            "assumed: a 50-bit SRAM read, a few pJ",
        ),
        e_neu: c(1.0, "pJ/neuron", "assumed: same order as a few synaptic operations"),
        e_event: c(1.5, "pJ/event", "assumed: one event packet in or out of an NP"),
        e_hop: c(1.0, "pJ/hop", "assumed: one event packet over one mesh link"),
        p_static: c(
            30.0,
            "mW",
            "assumed: static power of the neural fabric while a frame is processed; no public figure in docs/chips.md",
        ),
        a_load: c(
            1.0,
            "ns/byte",
            "assumed: about 1 GB/s between host and device (no public AKD1000 host-link figure was found, docs/chips.md §7.1)",
        ),
        a_pass: c(
            10_000.0,
            "ns/pass",
            "assumed: 10 µs of host round trip per pass boundary (no public figure, docs/chips.md §7.1)",
        ),
        e_load: c(
            10.0,
            "pJ/byte",
            "assumed: order of an off-chip transfer per byte (no public figure, docs/chips.md §5.6)",
        ),
    }
}

/// Everything nmc knows about the AKD1000 that affects compilation and emulation.
#[derive(Clone, Debug, PartialEq)]
pub struct ChipSpec {
    /// Target name used in artifacts ("akd1000").
    pub name: &'static str,
    /// The 20 nodes `(col, row)`: cols 1–2 rows 3–5, col 3 rows 1–5, col 4 rows 1–5, col 5
    /// rows 2–5 (the `AKD1000()` virtual device, docs/chips.md §3.1).
    pub nodes: Vec<(u32, u32)>,
    /// The 78 NPs, sorted by (col, row, id).
    pub nps: Vec<NpSlot>,
    /// The DMA engines `(col, row, id)`: `dma_event = (3,1,0)`, `dma_conf = (3,1,1)` (docs/chips.md §3.1).
    pub dmas: [(u32, u32, u32); 2],
    /// Where the HRC sits (the hardware input converter that runs InputConv2D layers;
    /// `NP.Info.hrc(False)`, no LUT on v1): node (0, 0), slot 0, as akida's mapping reports it
    /// (docs/chips.md §7; the device definition itself does not list it).
    pub hrc_node: (u32, u32),
    /// Input SRAM per NP: 2 blocks of 5.25 × 1024 32-bit words = 43,008 bytes (`SramSize_v1`,
    /// docs/chips.md §3.1).
    pub input_sram_bytes: u64,
    /// Weight SRAM per NP: 7 × 1024 50-bit words = 44,800 bytes (`SramSize_v1`).
    pub weight_sram_bytes: u64,
    /// Width of a weight-SRAM word in bits (50).
    pub weight_word_bits: u64,
    /// Bits of a weight word an FNP3 uses ("48 bits are used per 50-bit word",
    /// `compute_minimal_memory()`, docs/chips.md §3.1).
    pub fnp3_word_bits: u64,
    /// Order in which nmc fills the nodes: a Hamiltonian path through the mesh starting at the
    /// DMA node, so that a layer's NPs and consecutive layers sit on adjacent nodes.
    pub path: Vec<(u32, u32)>,
    /// Akida 1.0 layer constraints.
    pub limits: Limits,
    /// Latency and energy constants.
    pub cost: CostModel,
}

/// The AKD1000 ("NSoC_v2", Akida 1.0 IP).
pub fn akd1000() -> ChipSpec {
    let mut nodes = Vec::new();
    for (col, rows) in [(1, 3..=5), (2, 3..=5), (3, 1..=5), (4, 1..=5), (5, 2..=5)] {
        for row in rows {
            nodes.push((col, row));
        }
    }
    let mut nps = Vec::new();
    for &(col, row) in &nodes {
        for id in 0..4u32 {
            let types = match ((col, row), id) {
                // Node (3,1): ids 0 and 1 are the DMAs, ids 2 and 3 are CNP1 only.
                ((3, 1), 0 | 1) => continue,
                ((3, 1), _) => vec![NpType::Cnp1],
                // Node (4,1): four CNP1 + FNP2 NPs.
                ((4, 1), _) => vec![NpType::Cnp1, NpType::Fnp2],
                (_, 0) => vec![NpType::Cnp1, NpType::Fnp3],
                _ => vec![NpType::Cnp1, NpType::Cnp2],
            };
            nps.push(NpSlot {
                col,
                row,
                id,
                types,
            });
        }
    }
    let path = vec![
        (3, 1),
        (4, 1),
        (4, 2),
        (3, 2),
        (3, 3),
        (2, 3),
        (1, 3),
        (1, 4),
        (1, 5),
        (2, 5),
        (2, 4),
        (3, 4),
        (3, 5),
        (4, 5),
        (5, 5),
        (5, 4),
        (4, 4),
        (4, 3),
        (5, 3),
        (5, 2),
    ];
    ChipSpec {
        name: "akd1000",
        nodes,
        nps,
        dmas: [(3, 1, 0), (3, 1, 1)],
        hrc_node: (0, 0),
        input_sram_bytes: 43_008,
        weight_sram_bytes: 44_800,
        weight_word_bits: 50,
        fnp3_word_bits: 48,
        path,
        limits: akd1000_limits(),
        cost: akd1000_costs(),
    }
}

/// Bytes of one FNP3 neuron's 32-input block of weights at 1, 2 and 4 bits, as akida 2.19.3's
/// mapper reports them (`mem_info.weight_size`, docs/chips.md §7.1): 4, 8 and 24 bytes.
const FNP3_BLOCK_BYTES: [(u32, u64); 3] = [(1, 4), (2, 8), (4, 24)];

/// Bytes per FNP3 neuron besides its weights (akida 2.19.3, docs/chips.md §7.1).
const FNP3_NEURON_BYTES: u64 = 16;

/// Weight-SRAM bits one group of 8 filters takes per input channel on a CNP, by kernel size and
/// weight bits, as akida 2.19.3's mapper reports them (`mem_info.weight_size`, docs/chips.md
/// §7.1). Rows: weight bits 1, 2, 4; columns: kernels 1, 3, 5, 7.
const CNP_GROUP_BITS: [(u32, [u64; 4]); 3] = [
    (1, [25, 80, 200, 400]),
    (2, [25, 160, 400, 800]),
    (4, [50, 300, 800, 2100]),
];

/// The most pointwise filters akida puts on one NP for a SeparableConv2D: 504 filters take one
/// NP, 512 take two (256 each) and 1,016 three, whatever the input size (measured, akida 2.19.3,
/// testdata/gen/akida_separable_probe.py; docs/chips.md §3.6).
pub const SEP_MAX_FILTERS_PER_NP: u64 = 504;

/// Input rows of a SeparableConv2D one NP takes at most: akida splits its input into at least
/// `⌈H / 32⌉` row bands whatever the width, channels, bits and stride, more when the input SRAM
/// needs it (`crate::map`; measured, akida 2.19.3, testdata/gen/akida_separable_probe.py;
/// docs/chips.md §3.6).
pub const SEP_BAND_ROWS: u64 = 32;

impl ChipSpec {
    /// Weight bytes akida gives one FNP3 neuron with `inputs` inputs of `bits`-bit weights:
    /// `16 + ⌈inputs / 32⌉ · B(bits)`, `B = 4, 8, 24` bytes for 1, 2, 4 bits (docs/chips.md §7.1;
    /// `None` for another width).
    pub fn fnp3_neuron_bytes(&self, inputs: u64, bits: u32) -> Option<u64> {
        let (_, block) = FNP3_BLOCK_BYTES.iter().find(|(b, _)| *b == bits)?;
        Some(FNP3_NEURON_BYTES + inputs.div_ceil(32) * block)
    }

    /// An FNP3's weight capacity in bytes: 48 of every 50 bits of its 7 × 1024-word weight SRAM,
    /// 43,008 bytes (docs/chips.md §3.1, §7.1).
    pub fn fnp3_capacity_bytes(&self) -> u64 {
        self.weight_sram_bytes * 8 / self.weight_word_bits * self.fnp3_word_bits / 8
    }

    /// Neurons of `inputs` inputs at `bits`-bit weights one FNP3 holds (0: not even one).
    pub fn fnp3_max_neurons(&self, inputs: u64, bits: u32) -> u64 {
        self.fnp3_neuron_bytes(inputs, bits)
            .map_or(0, |per| self.fnp3_capacity_bytes() / per)
    }

    /// A CNP's weight SRAM in 50-bit words (7 × 1024, docs/chips.md §3.1).
    pub fn cnp_capacity_words(&self) -> u64 {
        self.weight_sram_bytes * 8 / self.weight_word_bits
    }

    /// Weight-SRAM words a CNP needs for `filters` filters of a `kernel`×`kernel` convolution
    /// over `in_channels` input channels at `bits`-bit weights (docs/chips.md §7.1): filters go in
    /// groups of 8; per input channel the groups take `⌈g · G(k, bits) / 50⌉` words rounded up to
    /// a block of `R` words (`R` = 16 at 4 bits, 8 at 1 and 2 bits), where `G` is
    /// [`CNP_GROUP_BITS`]. `None` for a kernel or width the table does not have.
    pub fn cnp_words(&self, kernel: u32, bits: u32, in_channels: u64, filters: u64) -> Option<u64> {
        let col = match kernel {
            1 => 0,
            3 => 1,
            5 => 2,
            7 => 3,
            _ => return None,
        };
        let (_, row) = CNP_GROUP_BITS.iter().find(|(b, _)| *b == bits)?;
        let block: u64 = if bits == 4 { 16 } else { 8 };
        let groups = filters.div_ceil(8);
        let bits_per_channel = groups * row[col];
        let words = bits_per_channel.div_ceil(self.weight_word_bits * block) * block;
        Some(in_channels * words)
    }

    /// Weight-SRAM words a CNP needs for `filters` pointwise filters of a `kernel`×`kernel`
    /// SeparableConv2D over `in_channels` channels at `bits`-bit weights — a rule fitted to
    /// akida's `mem_info.weight_size` (docs/chips.md §3.6), over the channels rounded up to a
    /// block (8 at 4 bits, 16 at 2 bits): the depthwise kernels packed whole into 50-bit words
    /// when two or more fit one (3×3 at 2 bits), else per channel their rows packed whole
    /// (`⌈k / ⌊50 / (k · bits)⌋⌉` words); plus per channel its pointwise weights at 48 bits per
    /// word (`⌈bits · filters / 48⌉`). It gives every measured layer whose channels fill whole
    /// blocks exactly, and more than akida for partial blocks (at most a block's worth);
    /// `None` for a kernel or width a separable layer does not take.
    pub fn sep_words(&self, kernel: u32, bits: u32, in_channels: u64, filters: u64) -> Option<u64> {
        if ![3, 5, 7].contains(&kernel) || ![2, 4].contains(&bits) {
            return None;
        }
        let block: u64 = if bits == 4 { 8 } else { 16 };
        let channels = in_channels.div_ceil(block) * block;
        let kernel_bits = u64::from(kernel * kernel * bits);
        let kernels_per_word = self.weight_word_bits / kernel_bits;
        let dw = if kernels_per_word >= 2 {
            channels.div_ceil(kernels_per_word)
        } else {
            let rows_per_word = (self.weight_word_bits / u64::from(kernel * bits)).max(1);
            channels * u64::from(kernel).div_ceil(rows_per_word)
        };
        let pw = channels * (u64::from(bits) * filters).div_ceil(48);
        Some(dw + pw)
    }

    /// The most pointwise filters of a SeparableConv2D one CNP holds (0: not even one): within
    /// [`ChipSpec::sep_words`]' capacity and at most [`SEP_MAX_FILTERS_PER_NP`].
    pub fn sep_max_filters(&self, kernel: u32, bits: u32, in_channels: u64, filters: u64) -> u64 {
        let cap = self.cnp_capacity_words();
        let fits = |f: u64| {
            self.sep_words(kernel, bits, in_channels, f)
                .is_some_and(|w| w <= cap)
        };
        let (mut lo, mut hi) = (0u64, filters.min(SEP_MAX_FILTERS_PER_NP));
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    /// The weight-memory bytes an NP of type `t` holds for `filters` channels of a layer
    /// (`kernel`, `in_channels` or `inputs`, `bits`), by the rules of docs/chips.md §7.1: what
    /// akida reports as `mem_info.weight_size`; an FNP2 is counted as an FNP3 would hold it (its
    /// weights still travel with the program, to external memory). `None` off the tables.
    #[allow(clippy::too_many_arguments)]
    pub fn np_weight_bytes(
        &self,
        t: NpType,
        kernel: u32,
        bits: u32,
        in_channels: u64,
        inputs: u64,
        filters: u64,
    ) -> Option<u64> {
        match t {
            NpType::Fnp2 | NpType::Fnp3 => Some(self.fnp3_neuron_bytes(inputs, bits)? * filters),
            NpType::Cnp1 | NpType::Cnp2 => Some(
                (self.cnp_words(kernel, bits, in_channels, filters)? * self.weight_word_bits)
                    .div_ceil(8),
            ),
        }
    }

    /// The most filters of a layer a CNP holds (0: not even one), by [`ChipSpec::cnp_words`].
    pub fn cnp_max_filters(&self, kernel: u32, bits: u32, in_channels: u64, filters: u64) -> u64 {
        let cap = self.cnp_capacity_words();
        let fits = |f: u64| {
            self.cnp_words(kernel, bits, in_channels, f)
                .is_some_and(|w| w <= cap)
        };
        // The words grow with the filters: bisect for the largest that fits.
        let (mut lo, mut hi) = (0u64, filters);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    /// Position of node `(col, row)` on the fill path.
    pub fn path_index(&self, node: (u32, u32)) -> Option<usize> {
        self.path.iter().position(|&n| n == node)
    }

    /// The NP at `(col, row, id)`.
    pub fn np(&self, col: u32, row: u32, id: u32) -> Option<&NpSlot> {
        self.nps
            .iter()
            .find(|n| n.col == col && n.row == row && n.id == id)
    }

    /// Mesh hops between two nodes (dimension-order routing).
    pub fn hops(a: (u32, u32), b: (u32, u32)) -> u64 {
        u64::from(a.0.abs_diff(b.0)) + u64::from(a.1.abs_diff(b.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_the_vendor_device() {
        let s = akd1000();
        assert_eq!(s.nodes.len(), 20);
        assert_eq!(s.nps.len(), 78);
        let count = |t: NpType| s.nps.iter().filter(|n| n.can(t)).count();
        assert_eq!(count(NpType::Cnp1), 78);
        assert_eq!(count(NpType::Cnp2), 54);
        assert_eq!(count(NpType::Fnp3), 18);
        assert_eq!(count(NpType::Fnp2), 4);
        assert_eq!(s.nps.iter().filter(|n| n.types.len() == 1).count(), 2);
        // The fill path visits every node once, through mesh neighbours.
        let mut seen = s.path.clone();
        seen.sort();
        assert_eq!(seen, s.nodes);
        assert!(s.path.windows(2).all(|w| ChipSpec::hops(w[0], w[1]) == 1));
        assert_eq!(s.fnp3_capacity_bytes(), 43_008);
        assert_eq!(s.cnp_capacity_words(), 7 * 1024);
        assert!(s.cost.entries().iter().all(|(_, c)| c.value > 0.0));
    }

    /// The SeparableConv2D weight rule against akida 2.19.3's `mem_info.weight_size` (bytes,
    /// docs/chips.md §3.6, testdata/gen/akida_separable_probe.json), and the filters per NP.
    #[test]
    fn separable_weight_words_match_akida() {
        let s = akd1000();
        let bytes = |w: u64| (w * 50).div_ceil(8);
        // (kernel, bits, channels, filters, weight_size)
        for (k, b, c, f, size) in [
            (3, 4, 8, 8, 100),
            (3, 4, 64, 64, 2800),
            (3, 4, 256, 256, 36800),
            (5, 4, 64, 64, 3600),
            (7, 4, 64, 64, 5200),
            (3, 2, 64, 64, 1400),
            (3, 2, 16, 256, 1150),
            (7, 2, 16, 256, 1400),
            (3, 4, 32, 256, 4600),
            (3, 4, 512, 128, 38400),
        ] {
            assert_eq!(
                bytes(s.sep_words(k, b, c, f).unwrap()),
                size,
                "{k} {b} {c} {f}"
            );
        }
        // 512 × 512 at 3×3 takes four NPs of 128 filters (akida's split); 504 filters one NP.
        assert_eq!(s.sep_max_filters(3, 4, 512, 512).div_ceil(1), 156);
        assert_eq!(512u64.div_ceil(s.sep_max_filters(3, 4, 512, 512)), 4);
        assert_eq!(s.sep_max_filters(3, 4, 8, 504), 504);
        assert_eq!(1016u64.div_ceil(s.sep_max_filters(3, 4, 8, 1016)), 3);
        assert_eq!(s.sep_words(3, 1, 8, 8), None);
    }

    /// The FNP3 rule against akida 2.19.3's `MapMode.Minimal` (docs/chips.md §7): the most
    /// neurons of 4-bit weights one FNP3 takes, and the one more that sends the layer to an FNP2.
    #[test]
    fn fnp3_capacity_matches_akida() {
        let s = akd1000();
        for (inputs, most) in [(784, 69), (512, 107), (4096, 13), (100, 384)] {
            assert_eq!(s.fnp3_max_neurons(inputs, 4), most, "{inputs} inputs");
        }
        // The per-neuron weight sizes akida reports (`mem_info.weight_size` / units).
        for (inputs, bits, bytes) in [
            (1, 4, 40),
            (33, 4, 64),
            (100, 4, 112),
            (784, 4, 616),
            (4096, 4, 3088),
            (784, 2, 216),
            (1024, 2, 272),
            (784, 1, 116),
            (1024, 1, 144),
        ] {
            assert_eq!(
                s.fnp3_neuron_bytes(inputs, bits),
                Some(bytes),
                "{inputs}@{bits}"
            );
        }
        assert_eq!(s.fnp3_max_neurons(1, 1), 2150);
        assert_eq!(s.fnp3_neuron_bytes(8, 8), None);
    }

    /// The CNP rule against akida 2.19.3 (docs/chips.md §7.1): weight words per input channel
    /// and the filters per NP it chose.
    #[test]
    fn cnp_capacity_matches_akida() {
        let s = akd1000();
        // Words per input channel (weight_size · 8 / 50 / channels) akida reports.
        let per = |k, b, f| s.cnp_words(k, b, 1, f).unwrap();
        let k3_4: Vec<u64> = (1..=16).map(|g| per(3, 4, 8 * g)).collect();
        assert_eq!(
            k3_4,
            [16, 16, 32, 32, 32, 48, 48, 48, 64, 64, 80, 80, 80, 96, 96, 96]
        );
        let k7_4: Vec<u64> = (1..=16).map(|g| per(7, 4, 8 * g)).collect();
        assert_eq!(
            k7_4,
            [48, 96, 128, 176, 224, 256, 304, 336, 384, 432, 464, 512, 560, 592, 640, 672]
        );
        let k3_2: Vec<u64> = (1..=16).map(|g| per(3, 2, 8 * g)).collect();
        assert_eq!(
            k3_2,
            [8, 8, 16, 16, 16, 24, 24, 32, 32, 32, 40, 40, 48, 48, 48, 56]
        );
        let k3_1: Vec<u64> = (1..=16).map(|g| per(3, 1, 8 * g)).collect();
        assert_eq!(
            k3_1,
            [8, 8, 8, 8, 8, 16, 16, 16, 16, 16, 24, 24, 24, 24, 24, 32]
        );
        assert_eq!(per(1, 4, 128), 16);
        assert_eq!(per(1, 4, 256), 32);
        assert_eq!(per(5, 4, 33), 80);
        assert_eq!(per(7, 1, 256), 256);
        // NPs akida took (in_channels, kernel, filters → NPs; filters split evenly), and the
        // layers it could not map at all (0).
        for (c, k, f, nps) in [
            (128, 7, 128, 16),
            (128, 3, 128, 2),
            (128, 3, 100, 2),
            (128, 3, 72, 2),
            (256, 3, 256, 16),
            (64, 3, 130, 1),
            (64, 3, 64, 1),
            (64, 5, 64, 2),
            (32, 1, 32, 1),
            (448, 5, 8, 1),
            (449, 5, 8, 0),
            (448, 1, 8, 1),
            (896, 1, 8, 0),
        ] {
            let most = s.cnp_max_filters(k, 4, c, f);
            let got = if most == 0 { 0 } else { f.div_ceil(most) };
            assert_eq!(got, nps, "{c}ch k{k} {f}");
        }
    }
}
