//! The artifact: a Speck configuration in the shape of samna's `SpeckConfiguration` as sinabs
//! writes it (docs/chips.md §2.5): a DVS layer and nine CNN layers with dimensions, weights, biases,
//! thresholds, leak, reset and up to two destinations with pooling each, plus what the host
//! needs to feed and read the chip (input encoding, output readout). Hand-written prost messages,
//! versioned by the header; decoding validates everything ([`crate::validate`]).
//!
//! Coordinates follow samna: `x` is the column (width) and `y` the row (height); kernels are
//! stored `[f][c][kx][ky]`.

use nmc_backend::Envelope;
pub use nmc_backend::{ArtifactError, Header};

/// The Speck artifact envelope: magic bytes, the format version this crate writes and reads
/// (2: header checksum), and the target name in the header.
pub const ENVELOPE: Envelope = Envelope {
    magic: b"NMCSPART",
    version: 2,
    target: "speck",
};

/// The header of a new artifact, with the timesteps `nmc run` uses unless told otherwise
/// (`compile --timesteps`; read them with [`Artifact::timesteps`]).
pub fn header(source_hash: u64, timesteps: u32) -> Header {
    Header {
        timesteps,
        ..ENVELOPE.header(source_hash)
    }
}

/// samna `{x, y}`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Xy {
    /// Column / width.
    #[prost(uint32, tag = "1")]
    pub x: u32,
    /// Row / height.
    #[prost(uint32, tag = "2")]
    pub y: u32,
}

/// samna `{size: {x, y}, feature_count}`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct MapShape {
    /// Width and height.
    #[prost(message, optional, tag = "1")]
    pub size: Option<Xy>,
    /// Channels.
    #[prost(uint32, tag = "2")]
    pub feature_count: u32,
}

impl MapShape {
    /// A map of `[c, h, w]`.
    pub fn chw(c: u32, h: u32, w: u32) -> Self {
        MapShape {
            size: Some(Xy { x: w, y: h }),
            feature_count: c,
        }
    }
    /// `[c, h, w]`.
    pub fn to_chw(&self) -> [u32; 3] {
        let s = self.size.unwrap_or_default();
        [self.feature_count, s.y, s.x]
    }
}

/// samna `CNNLayerDimensions`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Dimensions {
    /// Input map.
    #[prost(message, optional, tag = "1")]
    pub input_shape: Option<MapShape>,
    /// Neuron (output, before pooling) map.
    #[prost(message, optional, tag = "2")]
    pub output_shape: Option<MapShape>,
    /// Padding, both sides.
    #[prost(message, optional, tag = "3")]
    pub padding: Option<Xy>,
    /// Stride.
    #[prost(message, optional, tag = "4")]
    pub stride: Option<Xy>,
    /// Square kernel side.
    #[prost(uint32, tag = "5")]
    pub kernel_size: u32,
}

/// samna `CNNLayerDestination`: where a layer's (pooled) output events go.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Destination {
    /// Destination core (0..=8).
    #[prost(uint32, tag = "1")]
    pub layer: u32,
    /// Whether the destination is used.
    #[prost(bool, tag = "2")]
    pub enable: bool,
    /// Sum-pooling size applied on the way (1, 2 or 4).
    #[prost(uint32, tag = "3")]
    pub pooling: u32,
}

/// Memory entries a layer uses (sinabs' formulas), recorded for `nmc inspect`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct MemoryMsg {
    /// Kernel memory entries.
    #[prost(uint64, tag = "1")]
    pub kernel: u64,
    /// Neuron memory entries.
    #[prost(uint64, tag = "2")]
    pub neuron: u64,
    /// Bias memory entries.
    #[prost(uint64, tag = "3")]
    pub bias: u64,
}

/// samna `DVSLayerConfig` (the fields nmc sets).
#[derive(Clone, PartialEq, prost::Message)]
pub struct DvsLayerConfig {
    /// The network input is a DVS-shaped event stream (≤ 2 channels, ≤ 128×128) and passes the
    /// DVS layer; when false, input events are injected into the destination cores directly.
    #[prost(bool, tag = "1")]
    pub pass_sensor_events: bool,
    /// Both polarities into one channel.
    #[prost(bool, tag = "2")]
    pub merge: bool,
    /// Sum pooling of sensor events (1, 2 or 4 per axis).
    #[prost(message, optional, tag = "3")]
    pub pooling: Option<Xy>,
    /// The sensor region used (width, height).
    #[prost(message, optional, tag = "4")]
    pub input_shape: Option<Xy>,
    /// Cores that receive the input events (at most two).
    #[prost(message, repeated, tag = "5")]
    pub destinations: Vec<Destination>,
    /// Whether input events are also sent to the host.
    #[prost(bool, tag = "6")]
    pub monitor_enable: bool,
    /// Top-left corner of the region of interest, in pooled pixels (samna `origin`; sinabs
    /// writes the crop after the pooling, docs/chips.md §2.8).
    #[prost(message, optional, tag = "7")]
    pub origin: Option<Xy>,
    /// Bottom-right corner of the region of interest, inclusive, in pooled pixels (samna `cut`;
    /// absent: the whole pooled sensor).
    #[prost(message, optional, tag = "8")]
    pub cut: Option<Xy>,
    /// Mirror the region left to right (samna `mirror.x`).
    #[prost(bool, tag = "9")]
    pub mirror_x: bool,
    /// Mirror the region top to bottom (samna `mirror.y`).
    #[prost(bool, tag = "10")]
    pub mirror_y: bool,
    /// Swap x and y after mirroring (samna `mirror_diagonal`).
    #[prost(bool, tag = "11")]
    pub mirror_diagonal: bool,
    /// Polarities that pass: 0 both, 1 ON only, 2 OFF only (samna `on_channel`/`off_channel`;
    /// one polarity only with `merge`, so that it lands in channel 0).
    #[prost(uint32, tag = "12")]
    pub polarities: u32,
}

/// [`DvsLayerConfig::polarities`]: both polarities pass.
pub const POLARITIES_BOTH: u32 = 0;
/// [`DvsLayerConfig::polarities`]: ON events only.
pub const POLARITIES_ON: u32 = 1;
/// [`DvsLayerConfig::polarities`]: OFF events only.
pub const POLARITIES_OFF: u32 = 2;

/// samna `CNNLayerConfig` (one per core), plus the layer's name and memory use.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CnnLayerConfig {
    /// Name of the model layer on this core; empty for an unused core.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Whether the core runs a layer.
    #[prost(bool, tag = "2")]
    pub used: bool,
    /// Geometry.
    #[prost(message, optional, tag = "3")]
    pub dimensions: Option<Dimensions>,
    /// Kernel, `[f][c][kx][ky]` flattened.
    #[prost(sint32, repeated, packed = "true", tag = "4")]
    pub weights: Vec<i32>,
    /// Bias per output channel (empty: no bias), added every timestep.
    #[prost(sint32, repeated, packed = "true", tag = "5")]
    pub biases: Vec<i32>,
    /// sinabs: `any(bias != 0)`.
    #[prost(bool, tag = "6")]
    pub leak_enable: bool,
    /// Reset to zero after a spike (else subtract the threshold).
    #[prost(bool, tag = "7")]
    pub return_to_zero: bool,
    /// Spike threshold.
    #[prost(sint32, tag = "8")]
    pub threshold_high: i32,
    /// Lower clamp of the state.
    #[prost(sint32, tag = "9")]
    pub threshold_low: i32,
    /// Whether output events are sent to the host (the network output layer).
    #[prost(bool, tag = "10")]
    pub monitor_enable: bool,
    /// Up to two destinations.
    #[prost(message, repeated, tag = "11")]
    pub destinations: Vec<Destination>,
    /// Memory entries used.
    #[prost(message, optional, tag = "12")]
    pub memory: Option<MemoryMsg>,
    /// Largest spike count per neuron and timestep.
    #[prost(sint32, tag = "13")]
    pub max_spikes: i32,
    /// The layer was a dense (fully connected) layer, run as a full-size convolution.
    #[prost(bool, tag = "14")]
    pub from_dense: bool,
}

/// How the host turns an input tensor into events.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InputSpec {
    /// Name in the source model.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Per-sample shape of the model input.
    #[prost(uint32, repeated, tag = "2")]
    pub shape: Vec<u32>,
    /// The input as an event map `[c, h, w]`.
    #[prost(message, optional, tag = "3")]
    pub map: Option<MapShape>,
    /// Real value of one encoder level: an input `x` is level `clamp(round_half_even(x / scale),
    /// 0, levels)` (the IR's `Quantize`).
    #[prost(float, tag = "4")]
    pub scale: f32,
    /// Rate-encoder levels: level `levels` fires every timestep.
    #[prost(int32, tag = "5")]
    pub levels: i32,
}

/// Where the host reads the result: a core's output events, pooled, counted over the run.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OutputSpec {
    /// Name in the source model.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The core.
    #[prost(uint32, tag = "2")]
    pub layer: u32,
    /// Per-sample shape.
    #[prost(uint32, repeated, tag = "3")]
    pub shape: Vec<u32>,
    /// Real value of one spike per timestep.
    #[prost(float, tag = "4")]
    pub scale: f32,
    /// Sum pooling of the core's events before counting.
    #[prost(uint32, tag = "5")]
    pub pooling: u32,
}

/// A compiled Speck program.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Artifact {
    /// Identification.
    #[prost(message, optional, tag = "1")]
    pub header: Option<Header>,
    /// Input encoding.
    #[prost(message, optional, tag = "2")]
    pub input: Option<InputSpec>,
    /// The DVS layer.
    #[prost(message, optional, tag = "3")]
    pub dvs_layer: Option<DvsLayerConfig>,
    /// The nine CNN layers (cores), indexed by core id.
    #[prost(message, repeated, tag = "4")]
    pub cnn_layers: Vec<CnnLayerConfig>,
    /// Output readout.
    #[prost(message, optional, tag = "5")]
    pub output: Option<OutputSpec>,
}

nmc_backend::artifact_codec!(Artifact, ENVELOPE, |a: &Artifact| {
    crate::validate::validate(a).map(|_| ())
});

impl Artifact {
    /// The timesteps recorded in the header (`None` without a header, 0 when none were
    /// recorded).
    pub fn timesteps(&self) -> Option<u32> {
        self.header.as_ref().map(|h| h.timesteps)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::memory::MemoryUse;

    /// A valid one-core artifact: a 1×1 convolution (weight 2, threshold 3) over a 1×2×2 input,
    /// read out directly, recording 4 timesteps.
    pub(crate) fn tiny() -> Artifact {
        let mem = MemoryUse::of(1, 1, 1, 2, 2, false);
        let mut cnn_layers = vec![CnnLayerConfig::default(); 9];
        cnn_layers[0] = CnnLayerConfig {
            name: "conv".into(),
            used: true,
            dimensions: Some(Dimensions {
                input_shape: Some(MapShape::chw(1, 2, 2)),
                output_shape: Some(MapShape::chw(1, 2, 2)),
                padding: Some(Xy { x: 0, y: 0 }),
                stride: Some(Xy { x: 1, y: 1 }),
                kernel_size: 1,
            }),
            weights: vec![2],
            threshold_high: 3,
            threshold_low: -8,
            monitor_enable: true,
            memory: Some(MemoryMsg {
                kernel: mem.kernel,
                neuron: mem.neuron,
                bias: mem.bias,
            }),
            max_spikes: 4,
            ..Default::default()
        };
        Artifact {
            header: Some(header(0x0123_4567_89ab_cdef, 4)),
            input: Some(InputSpec {
                name: "x".into(),
                shape: vec![1, 2, 2],
                map: Some(MapShape::chw(1, 2, 2)),
                scale: 1.0 / 255.0,
                levels: 255,
            }),
            dvs_layer: Some(DvsLayerConfig {
                pass_sensor_events: true,
                merge: true,
                pooling: Some(Xy { x: 1, y: 1 }),
                input_shape: Some(Xy { x: 2, y: 2 }),
                destinations: vec![Destination {
                    layer: 0,
                    enable: true,
                    pooling: 1,
                }],
                ..Default::default()
            }),
            cnn_layers,
            output: Some(OutputSpec {
                name: "y".into(),
                layer: 0,
                shape: vec![4],
                scale: 0.5,
                pooling: 1,
            }),
        }
    }

    #[test]
    fn timesteps_round_trip_in_the_header() {
        let a = tiny();
        assert_eq!(a.timesteps(), Some(4));
        let bytes = encode(&a);
        assert_eq!(decode(&bytes), Ok(a));
        assert!(is_artifact(&bytes));
    }

    #[test]
    fn decode_tells_foreign_newer_and_damaged_files_apart() {
        let a = tiny();
        let bytes = encode(&a);
        let not = Err(ArtifactError::NotAnArtifact { target: "speck" });
        assert_eq!(decode(b"GIF89a...."), not);
        assert_eq!(decode(&[]), not);
        assert_eq!(
            decode(b"x").unwrap_err().to_string(),
            "not an nmc speck artifact (bad magic)"
        );
        let mut b = a.clone();
        b.header.as_mut().unwrap().format_version = ENVELOPE.version + 1;
        assert_eq!(
            decode(&encode(&b)),
            Err(ArtifactError::Version {
                found: ENVELOPE.version + 1,
                supported: ENVELOPE.version
            })
        );
        let mut b = a.clone();
        b.header.as_mut().unwrap().target = "loihi2".into();
        let e = decode(&encode(&b)).unwrap_err();
        assert!(matches!(
            &e,
            ArtifactError::WrongTarget { found, expected: "speck" } if found == "loihi2"
        ));
        assert_eq!(e.to_string(), "artifact is for target `loihi2`, not speck");
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1]),
            Err(ArtifactError::Corrupt(_))
        ));
        // A body that parses but does not validate.
        let mut b = a.clone();
        b.cnn_layers[0].weights.push(1);
        assert_eq!(
            decode(&encode(&b)).unwrap_err().to_string(),
            "corrupt artifact: core 0 \"conv\": 2 weights for [1, 1, 1, 1]"
        );
        let mut b = a;
        b.output.as_mut().unwrap().shape = vec![2, 0];
        assert_eq!(
            decode(&encode(&b)).unwrap_err().to_string(),
            "corrupt artifact: output shape [2, 0] does not hold core 0's [1, 2, 2] events"
        );
    }
}
