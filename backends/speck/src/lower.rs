//! Lowering: a [`Network`] and its layer → core assignment → [`Artifact`] (a samna-shaped
//! configuration).

use crate::artifact::*;
use crate::network::Network;
use crate::spec::ChipSpec;
use nmc_ir::Reset;

/// Why lowering failed (only on an inconsistent assignment: a bug of the caller).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LowerError {
    /// The assignment does not give each layer a distinct core.
    #[error("bad core assignment: {0}")]
    Assignment(String),
    /// Lowering produced an artifact that does not validate (a bug in this crate).
    #[error("lowering produced an invalid artifact (internal error): {0}")]
    Internal(String),
}

/// Builds the artifact: layer `i` runs on core `cores[i]`.
pub fn lower(
    net: &Network,
    cores: &[u32],
    spec: &ChipSpec,
    source_hash: u64,
    timesteps: u32,
) -> Result<Artifact, LowerError> {
    if cores.len() != net.layers.len() {
        return Err(LowerError::Assignment(format!(
            "{} cores for {} layers",
            cores.len(),
            net.layers.len()
        )));
    }
    let mut seen = vec![false; spec.cores.len()];
    for &c in cores {
        match seen.get_mut(c as usize) {
            Some(s) if !*s => *s = true,
            _ => {
                return Err(LowerError::Assignment(format!(
                    "core {c} is out of range or used twice"
                )))
            }
        }
    }
    let mut cnn_layers: Vec<CnnLayerConfig> = vec![CnnLayerConfig::default(); spec.cores.len()];
    for (i, l) in net.layers.iter().enumerate() {
        let [c, h, w] = l.in_shape;
        let [f, oh, ow] = l.neuron_shape;
        let bias = l.bias.clone().unwrap_or_default();
        cnn_layers[cores[i] as usize] = CnnLayerConfig {
            name: l.name.clone(),
            used: true,
            dimensions: Some(Dimensions {
                input_shape: Some(MapShape::chw(c, h, w)),
                output_shape: Some(MapShape::chw(f, oh, ow)),
                padding: Some(Xy {
                    x: l.padding[1],
                    y: l.padding[0],
                }),
                stride: Some(Xy {
                    x: l.stride[1],
                    y: l.stride[0],
                }),
                kernel_size: l.kernel,
            }),
            weights: l.weights.clone(),
            leak_enable: bias.iter().any(|b| *b != 0),
            biases: bias,
            return_to_zero: l.reset == Reset::Zero,
            threshold_high: l.threshold,
            threshold_low: l.v_min,
            monitor_enable: net.output.layer == i,
            destinations: l
                .consumers
                .iter()
                .map(|&k| Destination {
                    layer: cores[k],
                    enable: true,
                    pooling: l.pool,
                })
                .collect(),
            memory: Some(MemoryMsg {
                kernel: l.memory.kernel,
                neuron: l.memory.neuron,
                bias: l.memory.bias,
            }),
            max_spikes: l.max_spikes,
            from_dense: l.dense,
        };
    }
    let [c, h, w] = net.input.shape;
    let via_dvs = net.input.ir_shape.len() == 3
        && c <= spec.dvs_channels
        && h <= spec.dvs_size
        && w <= spec.dvs_size;
    let dvs_layer = DvsLayerConfig {
        pass_sensor_events: via_dvs,
        merge: via_dvs && c == 1,
        pooling: Some(Xy { x: 1, y: 1 }),
        input_shape: Some(Xy { x: w, y: h }),
        destinations: net
            .input
            .consumers
            .iter()
            .map(|&k| Destination {
                layer: cores[k],
                enable: true,
                pooling: 1,
            })
            .collect(),
        monitor_enable: false,
    };
    let out = &net.layers[net.output.layer];
    let artifact = Artifact {
        header: Some(header(source_hash, timesteps)),
        input: Some(InputSpec {
            name: net.input.name.clone(),
            shape: net.input.ir_shape.clone(),
            map: Some(MapShape::chw(c, h, w)),
            scale: net.input.scale,
            levels: net.input.levels,
        }),
        dvs_layer: Some(dvs_layer),
        cnn_layers,
        output: Some(OutputSpec {
            name: net.output.name.clone(),
            layer: cores[net.output.layer],
            shape: net.output.ir_shape.clone(),
            scale: net.output.scale,
            pooling: out.pool,
        }),
    };
    crate::validate::validate(&artifact).map_err(|e| LowerError::Internal(e.to_string()))?;
    Ok(artifact)
}
