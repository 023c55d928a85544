//! Lowering: a [`Network`] and its layer → core assignment → [`Artifact`] (a samna-shaped
//! configuration).

use crate::artifact::*;
use crate::network::Network;
use crate::spec::ChipSpec;
use nmc_backend::{DvsOptions, Polarity};
use nmc_ir::Reset;

/// Why lowering failed (only on an inconsistent assignment: a bug of the caller).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LowerError {
    /// The assignment does not give each layer a distinct core.
    #[error("bad core assignment: {0}")]
    Assignment(String),
    /// The DVS options do not fit the network (a usage error: the flags, not the model).
    #[error("{0}")]
    Options(String),
    /// Lowering produced an artifact that does not validate (a bug in this crate).
    #[error("lowering produced an invalid artifact (internal error): {0}")]
    Internal(String),
}

/// Builds the artifact: layer `i` runs on core `cores[i]`, the input's events pass the DVS layer
/// as `dvs` says.
pub fn lower(
    net: &Network,
    cores: &[u32],
    spec: &ChipSpec,
    source_hash: u64,
    timesteps: u32,
    dvs: &DvsOptions,
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
                .zip(&l.consumer_pools)
                .map(|(&k, &pooling)| Destination {
                    layer: cores[k],
                    enable: true,
                    pooling,
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
    let via_dvs = crate::network::is_dvs_map(&net.input.ir_shape, spec);
    let destinations = net
        .input
        .consumers
        .iter()
        .map(|&k| Destination {
            layer: cores[k],
            enable: true,
            pooling: 1,
        })
        .collect();
    let dvs_layer = if via_dvs {
        dvs_config(net, spec, dvs, destinations)?
    } else {
        if dvs.any() {
            return Err(LowerError::Options(format!(
                "--dvs-crop, --dvs-mirror and --dvs-polarity configure the DVS layer, which takes inputs of 1 or 2 polarity channels of at most {d}×{d}; this model's input is {:?}",
                net.input.ir_shape,
                d = spec.dvs_size
            )));
        }
        DvsLayerConfig {
            pass_sensor_events: false,
            pooling: Some(Xy { x: 1, y: 1 }),
            input_shape: Some(Xy { x: w, y: h }),
            destinations,
            ..Default::default()
        }
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

/// The DVS layer of a network whose input comes from the sensor: the model input `[c, h, w]` is
/// the sensor's region of interest, mirrored, then transposed, and the model's input pooling is
/// the DVS layer's (docs/chips.md §2.8). The chip pools before it cuts and mirrors, so the
/// region's corner must be a multiple of the pooling (its size is, `network::extract` checks).
fn dvs_config(
    net: &Network,
    spec: &ChipSpec,
    dvs: &DvsOptions,
    destinations: Vec<Destination>,
) -> Result<DvsLayerConfig, LowerError> {
    let [c, h, w] = net.input.shape;
    let [kh, kw] = net.dvs_pool.as_ref().map_or([1, 1], |p| p.kernel);
    // The model's axes are the sensor's, transposed by the diagonal mirror.
    let (region, pool) = if dvs.swap_xy {
        (Xy { x: h, y: w }, Xy { x: kh, y: kw })
    } else {
        (Xy { x: w, y: h }, Xy { x: kw, y: kh })
    };
    let (sensor, corner) = match dvs.crop {
        None => (region, Xy { x: 0, y: 0 }),
        Some([x, y]) => {
            let side = spec.dvs_size;
            if u64::from(x) + u64::from(region.x) > u64::from(side)
                || u64::from(y) + u64::from(region.y) > u64::from(side)
            {
                return Err(LowerError::Options(format!(
                    "--dvs-crop {x},{y}: the region of interest ({}×{} sensor pixels, the model input's size) must lie inside the {side}×{side} sensor; give a corner of at most {},{}",
                    region.x,
                    region.y,
                    side.saturating_sub(region.x),
                    side.saturating_sub(region.y)
                )));
            }
            if x % pool.x != 0 || y % pool.y != 0 {
                return Err(LowerError::Options(format!(
                    "--dvs-crop {x},{y}: the DVS layer cuts its region after pooling {}×{} (x×y), so the corner must be a multiple of the pooling (docs/chips.md §2.8); give a corner such as {},{}",
                    pool.x,
                    pool.y,
                    x / pool.x * pool.x,
                    y / pool.y * pool.y
                )));
            }
            (Xy { x: side, y: side }, Xy { x, y })
        }
    };
    let (merge, polarities) = match (c, dvs.polarity) {
        (1, None | Some(Polarity::Merge)) => (true, POLARITIES_BOTH),
        (1, Some(Polarity::On)) => (true, POLARITIES_ON),
        (1, Some(Polarity::Off)) => (true, POLARITIES_OFF),
        (_, None) => (false, POLARITIES_BOTH),
        (_, Some(p)) => {
            return Err(LowerError::Options(format!(
                "--dvs-polarity {}: the model input has {c} channels, one per polarity; merging or selecting polarities needs a one-channel input",
                p.name()
            )))
        }
    };
    let origin = Xy {
        x: corner.x / pool.x,
        y: corner.y / pool.y,
    };
    Ok(DvsLayerConfig {
        pass_sensor_events: true,
        merge,
        pooling: Some(pool),
        input_shape: Some(sensor),
        destinations,
        monitor_enable: false,
        origin: Some(origin),
        cut: Some(Xy {
            x: origin.x + region.x / pool.x - 1,
            y: origin.y + region.y / pool.y - 1,
        }),
        mirror_x: dvs.mirror_x,
        mirror_y: dvs.mirror_y,
        mirror_diagonal: dvs.swap_xy,
        polarities,
    })
}
