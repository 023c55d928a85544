//! Structural validation of an artifact. After [`validate`] succeeds every core index is in range,
//! every length agrees with its dimensions, every dimension respects the chip's limits (so every
//! allocation the emulator makes is bounded: at most 1024·64·64 neurons and 64 Ki kernel entries
//! per core), the destinations form an acyclic graph in which every used core has one or two
//! sources (two: a merge, docs/chips.md §2.9) sending it maps of its input shape, and the recorded memory use equals sinabs' formulas and fits its
//! core. Decoding always validates; the emulator validates again.

use crate::artifact::{
    Artifact, ArtifactError, CnnLayerConfig, Destination, DvsLayerConfig, MapShape,
};
use crate::dvs::{DvsRoute, ModelView};
use crate::memory::MemoryUse;
use crate::spec::{speck, ChipSpec};
use nmc_backend::check::{numel, out_extent};
use nmc_backend::corrupt;

/// Values of a per-sample shape of the model (a scalar, rank 0, is one value), `None` when it is
/// not a valid shape.
fn values(shape: &[u32]) -> Option<u64> {
    if shape.is_empty() {
        Some(1)
    } else {
        numel(shape, &[], "shape").ok()
    }
}

/// Where each core's input events come from (empty: an unused core); `None` = the network input,
/// `Some(k)` = core `k`. Two sources are a merge: both maps reach the one kernel.
pub type Sources = Vec<Vec<Option<u32>>>;

/// Sources one core may have: one, or two for sinabs' `Merge` (docs/chips.md §2.9).
const MAX_SOURCES: usize = 2;

/// `[c, h, w]` of a map, each in `1..=max`.
fn map(
    m: Option<&MapShape>,
    what: &str,
    max_c: u32,
    max_side: u32,
) -> Result<[u32; 3], ArtifactError> {
    let m = m.ok_or_else(|| corrupt(format!("{what}: missing shape")))?;
    let [c, h, w] = m.to_chw();
    if !(1..=max_c).contains(&c) || !(1..=max_side).contains(&h) || !(1..=max_side).contains(&w) {
        return Err(corrupt(format!(
            "{what}: map [{c}, {h}, {w}] outside 1..={max_c} channels and 1..={max_side} per side"
        )));
    }
    Ok([c, h, w])
}

fn check_dest(
    d: &Destination,
    what: &str,
    spec: &ChipSpec,
    a: &Artifact,
) -> Result<(), ArtifactError> {
    if !d.enable {
        return Err(corrupt(format!("{what}: disabled destination listed")));
    }
    if d.layer as usize >= a.cnn_layers.len() || !a.cnn_layers[d.layer as usize].used {
        return Err(corrupt(format!(
            "{what}: destination core {} is not a used core",
            d.layer
        )));
    }
    if !spec.pool_sizes.contains(&d.pooling) {
        return Err(corrupt(format!(
            "{what}: pooling {} is not one of {:?}",
            d.pooling, spec.pool_sizes
        )));
    }
    Ok(())
}

/// Checks the whole artifact (the header is checked by [`crate::decode`]); returns each core's
/// sources ([`Sources`]).
pub fn validate(a: &Artifact) -> Result<Sources, ArtifactError> {
    let spec = speck();
    if a.cnn_layers.len() != spec.cores.len() {
        return Err(corrupt(format!(
            "{} cnn layers; speck has {}",
            a.cnn_layers.len(),
            spec.cores.len()
        )));
    }
    let input = a.input.as_ref().ok_or_else(|| corrupt("no input spec"))?;
    nmc_backend::check::named("input", 0, &input.name)?;
    // The input map is some core's input map (checked below), so the cores' limits bound it.
    let in_map = map(
        input.map.as_ref(),
        "input",
        spec.max_channels,
        spec.max_input,
    )?;
    let ir_numel =
        values(&input.shape).ok_or_else(|| corrupt(format!("input shape {:?}", input.shape)))?;
    if ir_numel != in_map.iter().map(|d| u64::from(*d)).product::<u64>() {
        return Err(corrupt("input shape and map disagree"));
    }
    if input.levels < 1 || !(input.scale.is_finite() && input.scale > 0.0) {
        return Err(corrupt(format!(
            "input encoding: levels {} scale {}",
            input.levels, input.scale
        )));
    }
    let dvs = a
        .dvs_layer
        .as_ref()
        .ok_or_else(|| corrupt("no dvs layer"))?;
    if dvs.destinations.is_empty() || dvs.destinations.len() > spec.max_destinations as usize {
        return Err(corrupt(format!(
            "the input has {} destinations (1..={})",
            dvs.destinations.len(),
            spec.max_destinations
        )));
    }
    let mut sources: Sources = vec![Vec::new(); a.cnn_layers.len()];
    let mut feeds = |core: u32, from: Option<u32>, what: &str| -> Result<(), ArtifactError> {
        let s = &mut sources[core as usize];
        if s.contains(&from) {
            return Err(corrupt(format!("{what}: core {core} is listed twice")));
        }
        if s.len() == MAX_SOURCES {
            return Err(corrupt(format!(
                "{what}: core {core} has more than {MAX_SOURCES} sources"
            )));
        }
        s.push(from);
        Ok(())
    };
    for d in &dvs.destinations {
        check_dest(d, "dvs layer", &spec, a)?;
        if d.pooling != 1 {
            return Err(corrupt(
                "dvs layer: destination pooling must be 1 (the DVS layer pools with `pooling`)",
            ));
        }
        feeds(d.layer, None, "dvs layer")?;
    }
    // What the DVS layer sends its destinations: the pooled, cut, mirrored sensor region, or
    // the input map as it is when the input bypasses it.
    let dvs_out = if dvs.pass_sensor_events {
        let route = DvsRoute::from_config(dvs, &spec).map_err(corrupt)?;
        let view = ModelView::new(route).map();
        if view != in_map {
            return Err(corrupt(format!(
                "dvs layer: its region is the model input {view:?}, but the input map is {in_map:?}"
            )));
        }
        route.out_map()
    } else {
        let plain = DvsLayerConfig {
            pass_sensor_events: false,
            pooling: dvs.pooling,
            input_shape: dvs.input_shape,
            destinations: dvs.destinations.clone(),
            monitor_enable: dvs.monitor_enable,
            ..Default::default()
        };
        if dvs.pooling.is_some_and(|p| (p.x, p.y) != (1, 1)) || *dvs != plain {
            return Err(corrupt(
                "dvs layer: bypassed, yet it pools, cuts, mirrors or merges",
            ));
        }
        in_map
    };
    for (i, l) in a.cnn_layers.iter().enumerate() {
        let what = format!("core {i}");
        if !l.used {
            if !l.weights.is_empty() || !l.biases.is_empty() || !l.destinations.is_empty() {
                return Err(corrupt(format!("{what}: unused core has a configuration")));
            }
            continue;
        }
        if l.destinations.len() > spec.max_destinations as usize {
            return Err(corrupt(format!(
                "{what}: {} destinations",
                l.destinations.len()
            )));
        }
        for d in &l.destinations {
            check_dest(d, &what, &spec, a)?;
            feeds(d.layer, Some(i as u32), &what)?;
        }
    }
    for (i, l) in a.cnn_layers.iter().enumerate() {
        if l.used {
            check_layer(i, l, &spec)?;
            if sources[i].is_empty() {
                return Err(corrupt(format!(
                    "core {i}: used but nothing sends it events"
                )));
            }
        }
    }
    // Shapes along every edge, and acyclicity (follow sources back to the input).
    let shape_of_source = |src: Option<u32>| -> [u32; 3] {
        match src {
            None => dvs_out,
            Some(k) => out_map(&a.cnn_layers[k as usize], None),
        }
    };
    for (i, l) in a.cnn_layers.iter().enumerate() {
        let got = l
            .dimensions
            .and_then(|d| d.input_shape)
            .map(|m| m.to_chw())
            .unwrap_or_default();
        for &src in &sources[i] {
            let pooling = match src {
                None => 1,
                Some(k) => a.cnn_layers[k as usize]
                    .destinations
                    .iter()
                    .find(|d| d.layer == i as u32)
                    .map_or(1, |d| d.pooling),
            };
            let s = shape_of_source(src);
            let want = [s[0], s[1] / pooling, s[2] / pooling];
            if want != got {
                return Err(corrupt(format!(
                    "core {i}: input map {got:?} but its source sends {want:?}"
                )));
            }
        }
    }
    // Acyclic: a depth-first walk from each core back along its sources never meets a core
    // still on its path.
    let n = a.cnn_layers.len();
    let mut state = vec![0u8; n]; // 0 new, 1 on the path, 2 done
    for start in 0..n {
        if state[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (k, ref mut next)) = stack.last_mut() {
            match sources[k].get(*next) {
                Some(src) => {
                    *next += 1;
                    if let Some(j) = src.map(|j| j as usize) {
                        match state[j] {
                            1 => {
                                return Err(corrupt(format!("core {j}: destinations form a cycle")))
                            }
                            0 => {
                                state[j] = 1;
                                stack.push((j, 0));
                            }
                            _ => {}
                        }
                    }
                }
                None => {
                    state[k] = 2;
                    stack.pop();
                }
            }
        }
    }
    let o = a.output.as_ref().ok_or_else(|| corrupt("no output spec"))?;
    nmc_backend::check::named("output", 0, &o.name)?;
    let ol = a
        .cnn_layers
        .get(o.layer as usize)
        .filter(|l| l.used)
        .ok_or_else(|| corrupt(format!("output core {} is not used", o.layer)))?;
    if !spec.pool_sizes.contains(&o.pooling) {
        return Err(corrupt(format!("output pooling {}", o.pooling)));
    }
    let out = out_map(ol, Some(o.pooling));
    let events: u64 = out.iter().map(|d| u64::from(*d)).product();
    if events == 0 || values(&o.shape) != Some(events) {
        return Err(corrupt(format!(
            "output shape {:?} does not hold core {}'s {out:?} events",
            o.shape, o.layer
        )));
    }
    Ok(sources)
}

/// A used layer's output map after `pooling` (its own pooling to destinations when `None` is
/// given and it has one destination; 1 otherwise).
pub fn out_map(l: &CnnLayerConfig, pooling: Option<u32>) -> [u32; 3] {
    let [f, h, w] = l
        .dimensions
        .and_then(|d| d.output_shape)
        .map(|m| m.to_chw())
        .unwrap_or([1, 1, 1]);
    let p = pooling.unwrap_or(1).max(1);
    [f, h / p, w / p]
}

fn check_layer(i: usize, l: &CnnLayerConfig, spec: &ChipSpec) -> Result<(), ArtifactError> {
    let what = nmc_backend::check::named("core", i, &l.name)?;
    let d = l
        .dimensions
        .ok_or_else(|| corrupt(format!("{what}: no dimensions")))?;
    let [c, h, w] = map(
        d.input_shape.as_ref(),
        &what,
        spec.max_channels,
        spec.max_input,
    )?;
    let [f, oh, ow] = map(
        d.output_shape.as_ref(),
        &what,
        spec.max_channels,
        spec.max_output,
    )?;
    let k = d.kernel_size;
    if !(1..=spec.max_kernel).contains(&k) {
        return Err(corrupt(format!("{what}: kernel {k}")));
    }
    let stride = d.stride.unwrap_or_default();
    let pad = d.padding.unwrap_or_default();
    if !spec.strides.contains(&stride.x) || !spec.strides.contains(&stride.y) {
        return Err(corrupt(format!(
            "{what}: stride ({}, {})",
            stride.x, stride.y
        )));
    }
    if pad.x > spec.max_padding || pad.y > spec.max_padding {
        return Err(corrupt(format!("{what}: padding ({}, {})", pad.x, pad.y)));
    }
    let extent = |n: u32, p: u32, s: u32| out_extent(n, k, s, 1, p, p);
    if extent(h, pad.y, stride.y) != Some(oh) || extent(w, pad.x, stride.x) != Some(ow) {
        return Err(corrupt(format!(
            "{what}: a {k}×{k} kernel over {h}×{w} does not give {oh}×{ow}"
        )));
    }
    let n_w = u64::from(f) * u64::from(c) * u64::from(k) * u64::from(k);
    let mem = MemoryUse::of(
        u64::from(c),
        u64::from(k),
        u64::from(f),
        u64::from(oh),
        u64::from(ow),
        !l.biases.is_empty(),
    );
    let core = &spec.cores[i];
    if let Some(m) = mem.overflow(core) {
        return Err(corrupt(format!(
            "{what}: needs {} {m} entries, the core has {}",
            m.of(&mem),
            m.capacity(core)
        )));
    }
    let recorded = l.memory.unwrap_or_default();
    if (recorded.kernel, recorded.neuron, recorded.bias) != (mem.kernel, mem.neuron, mem.bias) {
        return Err(corrupt(format!(
            "{what}: recorded memory use differs from the formulas"
        )));
    }
    if l.weights.len() as u64 != n_w {
        return Err(corrupt(format!(
            "{what}: {} weights for [{f}, {c}, {k}, {k}]",
            l.weights.len()
        )));
    }
    if !l.biases.is_empty() && l.biases.len() != f as usize {
        return Err(corrupt(format!(
            "{what}: {} biases for {f} channels",
            l.biases.len()
        )));
    }
    let wmax = (1i32 << (spec.weight_bits - 1)) - 1;
    let bmax = (1i32 << (spec.bias_bits - 1)) - 1;
    if l.weights.iter().any(|v| *v > wmax || *v < -wmax - 1)
        || l.biases.iter().any(|v| *v > bmax || *v < -bmax - 1)
    {
        return Err(corrupt(format!("{what}: weights or biases exceed 8 bits")));
    }
    let smax = (1i32 << (spec.state_bits - 1)) - 1;
    if !(1..=smax).contains(&l.threshold_high) || !(-smax - 1..=0).contains(&l.threshold_low) {
        return Err(corrupt(format!(
            "{what}: thresholds [{}, {}]",
            l.threshold_low, l.threshold_high
        )));
    }
    if l.max_spikes < 1 {
        return Err(corrupt(format!("{what}: max spikes {}", l.max_spikes)));
    }
    if l.leak_enable != l.biases.iter().any(|b| *b != 0) {
        return Err(corrupt(format!(
            "{what}: leak_enable disagrees with the biases"
        )));
    }
    Ok(())
}
