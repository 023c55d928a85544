//! The artifact: what the compiler hands to a Loihi 2 runtime (here, the emulator). Hand-written
//! prost messages, so no protoc is needed; the wire format is protobuf, versioned by the header.
//!
//! Encoding is deterministic: prost writes fields in tag order and the artifact has no maps.
//! Decoding checks the header, then validates the whole structure ([`crate::validate`]) so that
//! nothing downstream can index out of range or allocate without bound.

use nmc_backend::Envelope;
pub use nmc_backend::{ArtifactError, Header};

/// One graph input: the host sends it already quantised.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InputSpec {
    /// Name in the source model.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Per-sample shape.
    #[prost(uint32, repeated, tag = "2")]
    pub shape: Vec<u32>,
    /// Real value of one integer unit.
    #[prost(float, tag = "3")]
    pub scale: f32,
    /// Smallest integer value.
    #[prost(sint32, tag = "4")]
    pub min: i32,
    /// Largest integer value.
    #[prost(sint32, tag = "5")]
    pub max: i32,
}

/// Where a synapse group's input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SourceKind {
    /// A graph input (index into `Artifact::inputs`).
    Input = 0,
    /// A population's post-pool outputs (index into `Artifact::populations`).
    Population = 1,
}

/// One contiguous piece of a synapse group's (flat) input.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Source {
    /// Input or population.
    #[prost(enumeration = "SourceKind", tag = "1")]
    pub kind: i32,
    /// Index of the input or population.
    #[prost(uint32, tag = "2")]
    pub index: u32,
    /// Number of values it contributes (its whole flat size).
    #[prost(uint32, tag = "3")]
    pub length: u32,
}

/// A dense (all-to-all) synapse group: weights `[out_features, in_features]`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DenseShape {
    /// Output neurons (= the population's channels).
    #[prost(uint32, tag = "1")]
    pub out_features: u32,
    /// Input values (= the sum of the source lengths).
    #[prost(uint32, tag = "2")]
    pub in_features: u32,
}

/// A convolutional synapse group: weights `[out_channels, in_shape[0]/groups, kh, kw]`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConvShape {
    /// Input `[c, h, w]`.
    #[prost(uint32, repeated, tag = "1")]
    pub in_shape: Vec<u32>,
    /// Output channels.
    #[prost(uint32, tag = "2")]
    pub out_channels: u32,
    /// Kernel `[kh, kw]`.
    #[prost(uint32, repeated, tag = "3")]
    pub kernel: Vec<u32>,
    /// Strides `[h, w]`.
    #[prost(uint32, repeated, tag = "4")]
    pub strides: Vec<u32>,
    /// Padding `[top, left, bottom, right]`.
    #[prost(uint32, repeated, tag = "5")]
    pub pads: Vec<u32>,
    /// Dilations `[h, w]`.
    #[prost(uint32, repeated, tag = "6")]
    pub dilations: Vec<u32>,
    /// Channel groups.
    #[prost(uint32, tag = "7")]
    pub groups: u32,
}

/// Connectivity of a synapse group.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum GroupKind {
    /// Dense matrix.
    #[prost(message, tag = "3")]
    Dense(DenseShape),
    /// Convolution.
    #[prost(message, tag = "4")]
    Conv(ConvShape),
}

/// All weights, row-major over the weight shape.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DenseWeights {
    /// Effective integer weights.
    #[prost(sint32, repeated, tag = "1")]
    pub values: Vec<i32>,
}

/// Weights in compressed sparse rows over `[shape[0], product(shape[1..])]`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CsrWeights {
    /// Row starts into `indices`/`values`, `rows + 1` entries.
    #[prost(uint32, repeated, tag = "1")]
    pub indptr: Vec<u32>,
    /// Column of each stored weight, strictly increasing within a row.
    #[prost(uint32, repeated, tag = "2")]
    pub indices: Vec<u32>,
    /// Stored weights.
    #[prost(sint32, repeated, tag = "3")]
    pub values: Vec<i32>,
}

/// Weight storage, chosen by density like the IR's constant pool.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Weights {
    /// Every weight.
    #[prost(message, tag = "5")]
    Dense(DenseWeights),
    /// Non-zeros only.
    #[prost(message, tag = "6")]
    Csr(CsrWeights),
}

/// One synapse group feeding a population.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SynapseGroup {
    /// The group's input, concatenated in flat order.
    #[prost(message, repeated, tag = "1")]
    pub sources: Vec<Source>,
    /// Left shift applied to `w·x` (non-negative on this target).
    #[prost(sint32, tag = "2")]
    pub weight_exp: i32,
    /// Dense or convolutional connectivity.
    #[prost(oneof = "GroupKind", tags = "3, 4")]
    pub kind: Option<GroupKind>,
    /// The weights.
    #[prost(oneof = "Weights", tags = "5, 6")]
    pub weights: Option<Weights>,
}

/// Pooling kind of a population.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PoolKindMsg {
    /// Maximum.
    Max = 0,
    /// Floor of the mean.
    Avg = 1,
    /// Sum.
    Sum = 2,
}

/// Pooling applied to a population's activations.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PoolMsg {
    /// Max, avg or sum.
    #[prost(enumeration = "PoolKindMsg", tag = "1")]
    pub kind: i32,
    /// Window `[h, w]`.
    #[prost(uint32, repeated, tag = "2")]
    pub kernel: Vec<u32>,
    /// Strides `[h, w]`.
    #[prost(uint32, repeated, tag = "3")]
    pub strides: Vec<u32>,
    /// Padding `[top, left, bottom, right]`.
    #[prost(uint32, repeated, tag = "4")]
    pub pads: Vec<u32>,
    /// Whether padded positions count in an average's divisor.
    #[prost(bool, tag = "5")]
    pub count_include_pad: bool,
}

/// Channels `start..end` of a population live on core `core`, optionally only output rows
/// `row_start..row_end` and columns `col_start..col_end` of them (a spatial tile, in post-pool
/// coordinates; see [`nmc_ir::CoreSlice`]).
///
/// An axis with start and end both 0 is the whole axis, and proto3 does not write zeros, so a
/// slice that is not tiled encodes byte for byte as before tiling existed (fields 1–3 only), and
/// every artifact written before reads unchanged. The format version stays 2: a reader from
/// before tiling ignores fields 4–7, so it sees a tiled population as several slices over the
/// same channels, which its slice check refuses ("slice k covers channels …"); it cannot
/// misread a tiled artifact as a different network.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SliceMsg {
    /// Logical core id (index into `Artifact::cores`).
    #[prost(uint32, tag = "1")]
    pub core: u32,
    /// First channel.
    #[prost(uint32, tag = "2")]
    pub start: u32,
    /// One past the last channel.
    #[prost(uint32, tag = "3")]
    pub end: u32,
    /// First output row (0 with `row_end` 0: every row).
    #[prost(uint32, tag = "4")]
    pub row_start: u32,
    /// One past the last output row.
    #[prost(uint32, tag = "5")]
    pub row_end: u32,
    /// First output column (0 with `col_end` 0: every column).
    #[prost(uint32, tag = "6")]
    pub col_start: u32,
    /// One past the last output column.
    #[prost(uint32, tag = "7")]
    pub col_end: u32,
}

impl SliceMsg {
    /// The message of a mapping slice.
    pub fn from_ir(s: &nmc_ir::CoreSlice) -> SliceMsg {
        let (row_start, row_end) = s.rows.unwrap_or((0, 0));
        let (col_start, col_end) = s.cols.unwrap_or((0, 0));
        SliceMsg {
            core: s.core,
            start: s.start,
            end: s.end,
            row_start,
            row_end,
            col_start,
            col_end,
        }
    }

    /// The mapping slice this message stands for.
    pub fn to_ir(&self) -> nmc_ir::CoreSlice {
        let axis = |a: u32, b: u32| (a != 0 || b != 0).then_some((a, b));
        nmc_ir::CoreSlice {
            core: self.core,
            start: self.start,
            end: self.end,
            rows: axis(self.row_start, self.row_end),
            cols: axis(self.col_start, self.col_end),
        }
    }
}

/// A neuron population (one canonical layer): synapse groups, sigma-delta neurons, pooling.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Population {
    /// Layer name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Post-pool per-sample shape (what consumers see).
    #[prost(uint32, repeated, tag = "2")]
    pub shape: Vec<u32>,
    /// Pre-pool shape (the neurons).
    #[prost(uint32, repeated, tag = "3")]
    pub pre_shape: Vec<u32>,
    /// Synapse groups, summed into the neurons.
    #[prost(message, repeated, tag = "4")]
    pub groups: Vec<SynapseGroup>,
    /// Bias per channel in state units (empty: none).
    #[prost(sint32, repeated, tag = "5")]
    pub bias: Vec<i32>,
    /// Neuron state width; sums saturate to it.
    #[prost(uint32, tag = "6")]
    pub state_bits: u32,
    /// Right shift from state to activation.
    #[prost(uint32, tag = "7")]
    pub act_shift: u32,
    /// Smallest activation.
    #[prost(sint32, tag = "8")]
    pub act_min: i32,
    /// Largest activation.
    #[prost(sint32, tag = "9")]
    pub act_max: i32,
    /// Real value of one activation unit.
    #[prost(float, tag = "10")]
    pub scale: f32,
    /// Output pooling, if any.
    #[prost(message, optional, tag = "11")]
    pub pool: Option<PoolMsg>,
    /// What each core holds: a grid of channel bands × row bands × column bands, listed channel
    /// band first, covering every output once (see [`SliceMsg`]).
    #[prost(message, repeated, tag = "12")]
    pub slices: Vec<SliceMsg>,
    /// Present for an snn-mode population: its neurons are CUBA-LIF (not sigma-delta), `bias`
    /// is a constant input current per channel (input units, before the `act_shift` alignment),
    /// and its outputs are binary spikes, sent every step they occur.
    #[prost(message, optional, tag = "13")]
    pub cuba: Option<CubaMsg>,
}

/// Reset of a CUBA-LIF neuron.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ResetMsg {
    /// The voltage returns to 0 (Lava's LIF).
    Zero = 0,
    /// The threshold is subtracted.
    Subtract = 1,
}

/// The registers of a CUBA-LIF population (`nmc_ir::CubaQuant`, docs/chips.md §1.4, §1.6).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CubaMsg {
    /// Current decay, 0..=4096.
    #[prost(uint32, tag = "1")]
    pub du: u32,
    /// Voltage decay, 0..=4096.
    #[prost(uint32, tag = "2")]
    pub dv: u32,
    /// Threshold mantissa (spike when `v > vth << act_shift`).
    #[prost(sint32, tag = "3")]
    pub vth: i32,
    /// Voltage bias per step, state units.
    #[prost(sint32, tag = "4")]
    pub v_bias: i32,
    /// Voltage lower bound, state units.
    #[prost(sint32, tag = "5")]
    pub v_min: i32,
    /// Reset mode.
    #[prost(enumeration = "ResetMsg", tag = "6")]
    pub reset: i32,
}

impl CubaMsg {
    /// The message of the IR's registers.
    pub fn from_ir(c: &nmc_ir::CubaQuant) -> CubaMsg {
        CubaMsg {
            du: c.du,
            dv: c.dv,
            vth: c.vth,
            v_bias: c.v_bias,
            v_min: c.v_min,
            reset: match c.reset {
                nmc_ir::Reset::Zero => ResetMsg::Zero,
                nmc_ir::Reset::Subtract => ResetMsg::Subtract,
            } as i32,
        }
    }

    /// The IR's registers (an unknown reset reads as zero; validation refuses it first).
    pub fn to_ir(&self) -> nmc_ir::CubaQuant {
        nmc_ir::CubaQuant {
            du: self.du,
            dv: self.dv,
            vth: self.vth,
            v_bias: self.v_bias,
            v_min: self.v_min,
            reset: if self.reset == ResetMsg::Subtract as i32 {
                nmc_ir::Reset::Subtract
            } else {
                nmc_ir::Reset::Zero
            },
        }
    }
}

/// A logical core and its place on the mesh.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CoreMsg {
    /// Logical id (equal to its index in `Artifact::cores`).
    #[prost(uint32, tag = "1")]
    pub id: u32,
    /// Chip.
    #[prost(uint32, tag = "2")]
    pub chip: u32,
    /// Mesh column.
    #[prost(uint32, tag = "3")]
    pub x: u32,
    /// Mesh row.
    #[prost(uint32, tag = "4")]
    pub y: u32,
}

/// One graph output: a population's post-pool values, viewed with `shape`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OutputSpec {
    /// Name in the source model.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Index of the population.
    #[prost(uint32, tag = "2")]
    pub population: u32,
    /// Per-sample shape.
    #[prost(uint32, repeated, tag = "3")]
    pub shape: Vec<u32>,
    /// Real value of one integer unit.
    #[prost(float, tag = "4")]
    pub scale: f32,
}

/// A compiled Loihi 2 program.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Artifact {
    /// Identification.
    #[prost(message, optional, tag = "1")]
    pub header: Option<Header>,
    /// Graph inputs in order.
    #[prost(message, repeated, tag = "2")]
    pub inputs: Vec<InputSpec>,
    /// Populations in topological order (sources before consumers).
    #[prost(message, repeated, tag = "3")]
    pub populations: Vec<Population>,
    /// Logical cores.
    #[prost(message, repeated, tag = "4")]
    pub cores: Vec<CoreMsg>,
    /// Graph outputs in order.
    #[prost(message, repeated, tag = "5")]
    pub outputs: Vec<OutputSpec>,
}

/// The Loihi 2 artifact envelope: magic bytes, the format version this crate writes and reads
/// (2: header checksum), and the target name in the header.
pub const ENVELOPE: Envelope = Envelope {
    magic: b"NMCL2ART",
    version: 2,
    target: "loihi2",
};

nmc_backend::artifact_codec!(
    Artifact,
    ENVELOPE,
    |a: &Artifact| crate::validate::validate(a)
);
