//! The artifact: what the compiler hands to an AKD1000 runtime (here, the emulator). Hand-written
//! prost messages (no protoc); the wire format is protobuf, versioned by the header.
//!
//! Weights and parameters are stored in the vendor's conventions, not the IR's:
//! - `Conv2D` kernels are **flipped** (`w_art[o][c][kh−1−y][kw−1−x] = w_ir[o][c][y][x]`),
//!   because Akida's `Convolutional` computes a true convolution (docs/chips.md §6), while
//!   `InputConv2D` kernels are stored **as the IR has them**, because Akida's
//!   `InputConvolutional` computes a cross-correlation (docs/chips.md §7);
//! - a `SeparableConv2D` stores its depthwise kernels **flipped** too (akida's
//!   SeparableConvolutional is a true convolution, measured: docs/chips.md §3.6) in
//!   [`LayerMsg::dw_weights`], and its pointwise 1×1 kernels in `weights`;
//! - a dense layer after a spatial `[c, h, w]` input has its weight columns in Akida's
//!   **column-major** flatten order `h + H·w + H·W·c` (docs/chips.md §6);
//! - a layer stores Akida's per-neuron `threshold` (the IR's `−bias`) and integer `act_step`,
//!   and outputs `clamp(ceil((potential − threshold) / act_step), 0, 2^act_bits − 1)`, or its raw
//!   32-bit `potential − threshold` when it has no activation.
//!
//! Decoding validates everything ([`crate::validate`]), so a corrupt artifact is an error, never
//! a panic downstream.

use nmc_backend::Envelope;
pub use nmc_backend::{ArtifactError, Header};

/// The AKD1000 artifact envelope: magic bytes, the format version this crate writes and reads
/// (2: header checksum; 3: host padding of inputs, [`InputMsg::host_pads`], which a reader that
/// ignored it would run wrongly; 4: hardware passes, [`UnitMsg::pass`], which a reader that
/// ignored it would see as NPs used twice; 5: InputConv2D kernels unflipped, in akida's
/// convention, which a reader of format 4 would run mirrored; 6: SeparableConv2D layers,
/// [`LayerKindMsg::SeparableConv2d`] with [`LayerMsg::dw_weights`], which a reader of format 5
/// would run as a Conv2D without its depthwise half), and the target name in the header.
pub const ENVELOPE: Envelope = Envelope {
    magic: b"NMCAKART",
    version: 6,
    target: "akd1000",
};

/// One graph input: the host sends it quantised to `bits` unsigned bits.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InputMsg {
    /// Name in the source model.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Per-sample shape (`[c, h, w]` or `[n]`).
    #[prost(uint32, repeated, tag = "2")]
    pub shape: Vec<u32>,
    /// Real value of one unit.
    #[prost(float, tag = "3")]
    pub scale: f32,
    /// Unsigned bits per value (1, 2, 4 or 8).
    #[prost(uint32, tag = "4")]
    pub bits: u32,
    /// Zero padding `[top, left, bottom, right]` the host adds around each channel of the
    /// quantised `[c, h, w]` image before sending it (empty: none). The padding is code 0, the
    /// code of real 0.0 (inputs have no zero point). `shape` stays the model's; the layers
    /// reading this input see `[c, h + top + bottom, w + left + right]`.
    #[prost(uint32, repeated, tag = "5")]
    pub host_pads: Vec<u32>,
}

/// What a unit is configured as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum UnitTypeMsg {
    /// The HRC.
    Hrc = 0,
    /// Convolutional NP type 1.
    Cnp1 = 1,
    /// Convolutional NP type 2.
    Cnp2 = 2,
    /// Fully-connected NP with external weights.
    Fnp2 = 3,
    /// Fully-connected NP with on-chip weights.
    Fnp3 = 4,
}

/// A unit in use.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UnitMsg {
    /// Mesh column.
    #[prost(uint32, tag = "1")]
    pub col: u32,
    /// Mesh row.
    #[prost(uint32, tag = "2")]
    pub row: u32,
    /// NP slot (0 for the HRC).
    #[prost(uint32, tag = "3")]
    pub id: u32,
    /// Configured type.
    #[prost(enumeration = "UnitTypeMsg", tag = "4")]
    pub unit_type: i32,
    /// The hardware pass the unit is configured in. Passes run one after another, each on a
    /// freshly configured mesh (so an NP may appear once per pass); a layer's units are all in
    /// one pass, and layers are in pass order (docs/chips.md §7).
    #[prost(uint32, tag = "5")]
    pub pass: u32,
}

/// The part of a layer a unit computes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SliceMsg {
    /// Index into `Artifact::units`.
    #[prost(uint32, tag = "1")]
    pub unit: u32,
    /// First output channel.
    #[prost(uint32, tag = "2")]
    pub c0: u32,
    /// One past the last output channel.
    #[prost(uint32, tag = "3")]
    pub c1: u32,
    /// First neuron row.
    #[prost(uint32, tag = "4")]
    pub r0: u32,
    /// One past the last neuron row.
    #[prost(uint32, tag = "5")]
    pub r1: u32,
}

/// Akida layer kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum LayerKindMsg {
    /// InputConv2D (on the HRC).
    InputConv2d = 0,
    /// Conv2D (on CNPs).
    Conv2d = 1,
    /// Dense / FullyConnected (on FNPs).
    Dense = 2,
    /// SeparableConv2D (depthwise then pointwise, on CNPs).
    SeparableConv2d = 3,
}

/// Where a layer reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SourceKind {
    /// A graph input.
    Input = 0,
    /// An earlier layer's output.
    Layer = 1,
}

/// Pooling of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PoolMsg {
    /// None.
    None = 0,
    /// Max pooling of the activations (`pool_size`, `pool_stride`, unpadded).
    Max = 1,
    /// Global average pooling of the potentials; the divisor is in `act_step`.
    GlobalAvg = 2,
}

/// One Akida layer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LayerMsg {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Kind.
    #[prost(enumeration = "LayerKindMsg", tag = "2")]
    pub kind: i32,
    /// Input or layer.
    #[prost(enumeration = "SourceKind", tag = "3")]
    pub source_kind: i32,
    /// Index of the input or (earlier) layer.
    #[prost(uint32, tag = "4")]
    pub source_index: u32,
    /// Shape of the input value (`[c, h, w]` or `[n]`); a dense layer flattens it column-major.
    #[prost(uint32, repeated, tag = "5")]
    pub in_shape: Vec<u32>,
    /// Neurons: `[c, h, w]` (convolutions) or `[n]` (dense).
    #[prost(uint32, repeated, tag = "6")]
    pub pre_shape: Vec<u32>,
    /// Output after pooling.
    #[prost(uint32, repeated, tag = "7")]
    pub out_shape: Vec<u32>,
    /// Kernel `[kh, kw]` (convolutions).
    #[prost(uint32, repeated, tag = "8")]
    pub kernel: Vec<u32>,
    /// Strides `[h, w]`.
    #[prost(uint32, repeated, tag = "9")]
    pub strides: Vec<u32>,
    /// Padding `[top, left, bottom, right]` (Same or Valid, made explicit; Valid for an
    /// InputConv2D on a host-padded input).
    #[prost(uint32, repeated, tag = "10")]
    pub pads: Vec<u32>,
    /// Pooling.
    #[prost(enumeration = "PoolMsg", tag = "11")]
    pub pool: i32,
    /// Max-pool window `[h, w]`.
    #[prost(uint32, repeated, tag = "12")]
    pub pool_size: Vec<u32>,
    /// Max-pool stride `[h, w]`.
    #[prost(uint32, repeated, tag = "13")]
    pub pool_stride: Vec<u32>,
    /// Input bits.
    #[prost(uint32, tag = "14")]
    pub input_bits: u32,
    /// Weight bits (1 = binary {0, 1}, as akida's).
    #[prost(uint32, tag = "15")]
    pub weight_bits: u32,
    /// Activation bits; 0 = no activation (raw potentials).
    #[prost(uint32, tag = "16")]
    pub act_bits: u32,
    /// Weights in the vendor's order (see the module docs).
    #[prost(sint32, repeated, tag = "17")]
    pub weights: Vec<i32>,
    /// Threshold per output channel.
    #[prost(sint32, repeated, tag = "18")]
    pub threshold: Vec<i32>,
    /// Activation step per output channel.
    #[prost(uint32, repeated, tag = "19")]
    pub act_step: Vec<u32>,
    /// Real value of one output unit.
    #[prost(float, tag = "20")]
    pub scale: f32,
    /// Which unit computes which part.
    #[prost(message, repeated, tag = "21")]
    pub slices: Vec<SliceMsg>,
    /// A SeparableConv2D's depthwise kernels `[c][kh][kw]`, flipped (akida's orientation);
    /// `kernel`, `strides` and `pads` are the depthwise kernel's, and `weights` holds the
    /// pointwise kernels `[co][c]`, applied to the depthwise sums at full precision. Empty for
    /// other kinds.
    #[prost(sint32, repeated, tag = "22")]
    pub dw_weights: Vec<i32>,
}

/// A chip output.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OutputMsg {
    /// Name in the source model.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Index of the layer.
    #[prost(uint32, tag = "2")]
    pub layer: u32,
    /// Per-sample shape.
    #[prost(uint32, repeated, tag = "3")]
    pub shape: Vec<u32>,
    /// Real value of one unit.
    #[prost(float, tag = "4")]
    pub scale: f32,
}

/// A compiled AKD1000 program.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Artifact {
    /// Identification.
    #[prost(message, optional, tag = "1")]
    pub header: Option<Header>,
    /// Graph inputs.
    #[prost(message, repeated, tag = "2")]
    pub inputs: Vec<InputMsg>,
    /// HRC and NPs in use (logical core ids are indices).
    #[prost(message, repeated, tag = "3")]
    pub units: Vec<UnitMsg>,
    /// Layers in topological order.
    #[prost(message, repeated, tag = "4")]
    pub layers: Vec<LayerMsg>,
    /// Graph outputs.
    #[prost(message, repeated, tag = "5")]
    pub outputs: Vec<OutputMsg>,
}

nmc_backend::artifact_codec!(
    Artifact,
    ENVELOPE,
    |a: &Artifact| crate::validate::validate(a, &crate::akd1000())
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checks() {
        let a = Artifact {
            header: Some(ENVELOPE.header(7)),
            ..Default::default()
        };
        assert_eq!(decode(&encode(&a)), Ok(a.clone()));
        assert!(is_artifact(&encode(&a)));
        assert_eq!(
            decode(b"NMCL2ART"),
            Err(ArtifactError::NotAnArtifact {
                target: ENVELOPE.target
            })
        );
        let mut b = a.clone();
        b.header.as_mut().unwrap().format_version = 9;
        assert!(matches!(
            decode(&encode(&b)),
            Err(ArtifactError::Version { found: 9, .. })
        ));
        let mut b = a;
        b.header.as_mut().unwrap().target = "loihi2".into();
        assert!(matches!(
            decode(&encode(&b)),
            Err(ArtifactError::WrongTarget {
                expected: "akd1000",
                ..
            })
        ));
    }
}
