//! The artifact: a Speck configuration in the shape of samna's `SpeckConfiguration` as sinabs
//! writes it (chips.md §2.5): a DVS layer and nine CNN layers with dimensions, weights, biases,
//! thresholds, leak, reset and up to two destinations with pooling each, plus what the host
//! needs to feed and read the chip (input encoding, output readout). Hand-written prost messages,
//! versioned by the header; decoding validates everything ([`crate::validate`]).
//!
//! Coordinates follow samna: `x` is the column (width) and `y` the row (height); kernels are
//! stored `[f][c][kx][ky]`.

/// First bytes of the header: identifies an nmc Speck artifact.
pub const MAGIC: &[u8; 8] = b"NMCSPART";
/// The artifact format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Target name stored in the header.
pub const TARGET: &str = "speck";

/// Identification of the artifact.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Header {
    /// Always [`MAGIC`].
    #[prost(bytes = "vec", tag = "1")]
    pub magic: Vec<u8>,
    /// [`FORMAT_VERSION`] at writing time.
    #[prost(uint32, tag = "2")]
    pub format_version: u32,
    /// [`TARGET`].
    #[prost(string, tag = "3")]
    pub target: String,
    /// Hash of the source model, given by the compiler.
    #[prost(fixed64, tag = "4")]
    pub source_hash: u64,
    /// Timesteps `nmc run` uses unless told otherwise (`compile --timesteps`).
    #[prost(uint32, tag = "5")]
    pub timesteps: u32,
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
}

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

/// Why bytes are not a usable artifact.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    /// The bytes do not start with an nmc Speck header.
    #[error("not an nmc speck artifact (bad magic)")]
    NotAnArtifact,
    /// Written by another format version.
    #[error(
        "artifact format version {found} is not supported (this build reads version {supported})"
    )]
    Version {
        /// Version in the header.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// An nmc artifact for another chip.
    #[error("artifact is for target `{found}`, not speck")]
    WrongTarget {
        /// Target in the header.
        found: String,
    },
    /// Truncated, malformed or inconsistent.
    #[error("corrupt artifact: {0}")]
    Corrupt(String),
}

/// The artifact's bytes (deterministic for equal artifacts).
pub fn encode(a: &Artifact) -> Vec<u8> {
    prost::Message::encode_to_vec(a)
}

/// Whether `bytes` start with an nmc Speck artifact header (of any version).
pub fn is_artifact(bytes: &[u8]) -> bool {
    sniff_header(bytes).is_some_and(|h| h.magic == MAGIC)
}

/// Parses and validates an artifact.
pub fn decode(bytes: &[u8]) -> Result<Artifact, ArtifactError> {
    let a = match <Artifact as prost::Message>::decode(bytes) {
        Ok(a) => a,
        Err(e) => {
            let Some(h) = sniff_header(bytes) else {
                return Err(ArtifactError::NotAnArtifact);
            };
            check_header(&h)?;
            return Err(ArtifactError::Corrupt(format!(
                "malformed or truncated protobuf: {e}"
            )));
        }
    };
    let Some(h) = &a.header else {
        return Err(ArtifactError::NotAnArtifact);
    };
    check_header(h)?;
    crate::validate::validate(&a)?;
    Ok(a)
}

pub(crate) fn check_header(h: &Header) -> Result<(), ArtifactError> {
    if h.magic != MAGIC {
        return Err(ArtifactError::NotAnArtifact);
    }
    if h.format_version != FORMAT_VERSION {
        return Err(ArtifactError::Version {
            found: h.format_version,
            supported: FORMAT_VERSION,
        });
    }
    if h.target != TARGET {
        return Err(ArtifactError::WrongTarget {
            found: h.target.clone(),
        });
    }
    Ok(())
}

/// The header, if `bytes` start with a complete header field (field 1, length-delimited).
fn sniff_header(bytes: &[u8]) -> Option<Header> {
    if *bytes.first()? != 0x0a {
        return None;
    }
    let mut rest = &bytes[1..];
    let len = prost::encoding::decode_varint(&mut rest).ok()?;
    let body = rest.get(..usize::try_from(len).ok()?)?;
    <Header as prost::Message>::decode(body).ok()
}
